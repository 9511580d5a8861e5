//! `resume`: thaws a paused container.

use super::Error;
use super::identity;
use crate::id::ContainerId;
use crate::state::{Record, Store};

/// Thaws container `id`; its status is `running` again. Only a paused container
/// can be resumed; any other is left as it is.
pub fn resume(store: &Store, id: &ContainerId) -> Result<(), Error> {
    let locked = store.lock(id)?;
    let record = locked.read()?;
    let (init, status) = identity::inspect(&record, locked.dir());
    if !status.can_resume() {
        return Err(Error::BadStatus { id: id.clone(), status, verb: "resume", hint: "" });
    }
    identity::container_cgroup(&record, locked.dir(), &init, "resume")?.thaw()?;
    locked.write(&Record { paused: false, ..record })?;
    Ok(())
}
