//! `pause`: freezes every process of a running container.

use super::Error;
use crate::id::ContainerId;
use crate::state::{Record, Store, Verb};

/// Freezes container `id` (cgroup v1 `freezer.state`, v2 `cgroup.freeze`) and
/// waits until the kernel says it is frozen; its status is then `paused`. Only a
/// running container can be paused; any other is left as it is.
pub fn pause(store: &Store, id: &ContainerId) -> Result<(), Error> {
    let opened = store.open(id, Verb::Pause)?;
    let cgroup = opened.cgroup(Verb::Pause)?;
    cgroup.freeze()?;
    if let Err(e) = opened.locked.write(&Record { paused: true, ..opened.record }) {
        // Not recorded as paused: do not leave it frozen behind our back.
        let _ = cgroup.thaw();
        return Err(e.into());
    }
    Ok(())
}
