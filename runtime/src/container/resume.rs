//! `resume`: thaws a paused container.

use super::Error;
use crate::id::ContainerId;
use crate::state::{Record, Store, Verb};

/// Thaws container `id`; its status is `running` again. Only a paused container
/// can be resumed; any other is left as it is.
pub fn resume(store: &Store, id: &ContainerId) -> Result<(), Error> {
    let opened = store.open(id, Verb::Resume)?;
    opened.cgroup(Verb::Resume)?.thaw()?;
    opened.locked.write(&Record { paused: false, ..opened.record })?;
    Ok(())
}
