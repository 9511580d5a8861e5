//! `pause`: freezes every process of a running container.

use super::Error;
use super::identity;
use crate::id::ContainerId;
use crate::state::{Record, Store};

/// Freezes container `id` (cgroup v1 `freezer.state`, v2 `cgroup.freeze`) and
/// waits until the kernel says it is frozen; its status is then `paused`. Only a
/// running container can be paused; any other is left as it is.
pub fn pause(store: &Store, id: &ContainerId) -> Result<(), Error> {
    let locked = store.lock(id)?;
    let record = locked.read()?;
    let (init, status) = identity::inspect(&record, locked.dir());
    if !status.can_pause() {
        return Err(Error::BadStatus { id: id.clone(), status, verb: "pause", hint: "" });
    }
    let cgroup = identity::container_cgroup(&record, locked.dir(), &init, "pause")?;
    cgroup.freeze()?;
    if let Err(e) = locked.write(&Record { paused: true, ..record }) {
        // Not recorded as paused: do not leave it frozen behind our back.
        let _ = cgroup.thaw();
        return Err(e.into());
    }
    Ok(())
}
