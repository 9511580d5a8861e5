//! `start`: lifts the start barrier of a created container, then runs the
//! poststart hooks (their failures are logged, as the runtime-spec asks).
//!
//! The init's startContainer hooks run after the lift, in the container: `start`
//! has returned by then, so it succeeds even when one of them fails (as `runc
//! start` does); that failure is one line on the container's stderr, and the
//! container stops before its workload runs.

use super::{Error, status_of};
use crate::hooks::{self, HookKind, HookState};
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
        Ok(()) => {
            // Unlocked first: a poststart hook may itself ask for the state.
            drop(locked);
            let poststart = record.hooks.as_ref().map_or(&[][..], |h| HookKind::Poststart.list(h));
            if !poststart.is_empty() {
                let state = HookState::from_record(&record, Status::Running).to_json();
                hooks::run_logged(HookKind::Poststart, poststart, &state);
            }
            Ok(())
        }
        // The init died between the status check and the lift.
        Err(LiftError::NotWaiting) => {
            Err(Error::BadStatus { id: id.clone(), status: Status::Stopped, verb: "start", hint: "" })
        }
        Err(LiftError::Io { path, source }) => {
            Err(Error::Io { id: id.clone(), what: format!("start barrier {}", path.display()), source })
        }
    }
}
