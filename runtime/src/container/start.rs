//! `start`: lifts the start barrier of a created container.

use super::{Error, status_of};
use crate::id::ContainerId;
use crate::process::barrier::{self, LiftError};
use crate::state::{Status, Store};

pub fn start(store: &Store, id: &ContainerId) -> Result<(), Error> {
    let locked = store.lock(id)?;
    let record = locked.read()?;
    let status = status_of(&record, locked.dir());
    if !status.can_start() {
        return Err(Error::BadStatus { id: id.clone(), status, verb: "start", hint: "" });
    }
    match barrier::lift(locked.dir()) {
        Ok(()) => Ok(()),
        // The init died between the status check and the lift.
        Err(LiftError::NotWaiting) => {
            Err(Error::BadStatus { id: id.clone(), status: Status::Stopped, verb: "start", hint: "" })
        }
        Err(LiftError::Io { path, source }) => {
            Err(Error::Io { id: id.clone(), what: format!("start barrier {}", path.display()), source })
        }
    }
}
