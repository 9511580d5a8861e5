//! `start`: lifts the start barrier of a created container, then runs the
//! poststart hooks once the workload was executed.
//!
//! The init runs its startContainer hooks after the lift, in the container, and
//! then becomes the workload. Without poststart hooks `start` returns as soon as
//! the barrier is lifted, as `runc start` does. With them, it first waits until
//! the workload was executed — a native workload's `execve` succeeded, a wasm
//! guest was entered — as the runtime-spec asks; the wait ends with the init's
//! descriptor of the barrier, so it lasts as long as the startContainer hooks
//! and never longer than the init lives ([`barrier::Watch`]). Each poststart
//! hook's failure is logged as a warning and the rest still run; `start`
//! succeeds.
//!
//! When the init ends before its workload was executed (a startContainer hook
//! failed, `execve` failed, the init was killed), `start` succeeds as `runc
//! start` does — the barrier was lifted, and the failure is one line on the
//! container's stderr — but no poststart hook runs: a warning says why.

use super::Error;
use crate::hooks::{self, HookKind};
use crate::id::ContainerId;
use crate::process::barrier::{self, LiftError, Outcome};
use crate::state::{OciState, Status, Store, Verb};

/// `start`: lifts the start barrier of a created container, so its init runs the
/// workload, then runs the poststart hooks.
pub fn start(store: &Store, id: &ContainerId) -> Result<(), Error> {
    let super::open::Opened { locked, record, .. } = store.open(id, Verb::Start)?;
    let poststart = record.hooks.as_ref().map_or(&[][..], |h| HookKind::Poststart.list(h));
    let lifted = if poststart.is_empty() {
        barrier::lift(&locked.dir().barrier()).map(|()| None)
    } else {
        barrier::lift_watching(&locked.dir().barrier()).map(Some)
    };
    let io_error = |what: String, source| Error::Io { id: id.clone(), what, source };
    let watch = match lifted {
        Ok(watch) => watch,
        // The init died between the status check and the lift.
        Err(LiftError::NotWaiting) => {
            return Err(Error::bad_status(id.clone(), Status::Stopped, Verb::Start));
        }
        Err(LiftError::Io { path, source }) => {
            return Err(io_error(format!("start barrier {}", path.display()), source));
        }
    };
    // Unlocked first: the container counts as running from the lift on (the
    // fifo is gone), so `kill` works while we wait, and a poststart hook may
    // itself ask for the state.
    drop(locked);
    let Some(watch) = watch else { return Ok(()) };
    match watch.wait().map_err(|source| io_error("wait for the workload to start".to_owned(), source))? {
        Outcome::Executed => {
            let state = OciState::of(&record, HookKind::Poststart.status()).to_json();
            hooks::run_logged(HookKind::Poststart, poststart, &state);
        }
        Outcome::Ended => {
            tracing::warn!("poststart hooks not run: the container's process ended before its workload started");
        }
    }
    Ok(())
}
