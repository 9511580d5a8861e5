//! `delete`: removes everything a container had, then runs its poststop hooks
//! (before the state directory goes; their failures are logged).

use nix::sys::signal::Signal;

use super::kill::init_pidfd;
use super::{Error, status_of};
use crate::cgroups::Cgroup;
use crate::hooks::{self, HookKind, HookState};
use crate::id::ContainerId;
use crate::state::{StateError, Status, Store};

/// Deletes container `id`. Without `force` only a container that runs no
/// workload (stopped, or created and never started) is deleted; with `force` a
/// running one is killed first. A container whose state file is corrupt can still
/// be deleted with `force`.
pub fn delete(store: &Store, id: &ContainerId, force: bool) -> Result<(), Error> {
    let locked = store.lock(id)?;
    let record = match locked.read() {
        Ok(record) => record,
        Err(e @ (StateError::Corrupt { .. } | StateError::Creating(_))) => {
            if !force {
                return Err(e.into());
            }
            tracing::warn!(id = %id, error = %e, "deleting a container whose state cannot be read");
            // Without a record, the config copied at create still names the
            // cgroup; everything in it (the init included) is killed with it.
            let config = locked.dir().join(super::exec::CONFIG);
            let spec_path = oci_spec::runtime::Spec::load(&config)
                .ok()
                .and_then(|spec| spec.linux().as_ref().and_then(|l| l.cgroups_path().clone()));
            if let Ok(path) = Cgroup::resolve_path(spec_path.as_deref(), id.as_str(), false)
                && let Ok(cgroup) = Cgroup::open(&path)
            {
                cgroup.remove()?;
            }
            locked.remove()?;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let status = status_of(&record, locked.dir());
    if !force && !status.can_delete() {
        return Err(Error::BadStatus { id: id.clone(), status, verb: "delete", hint: " without --force" });
    }
    // A frozen (v1) process acts on SIGKILL only once thawed: a paused
    // container is killed through its cgroup, which thaws it.
    if status == Status::Paused {
        Cgroup::open(&record.cgroup_path)?.signal_all(Signal::SIGKILL)?;
    }
    if status != Status::Stopped
        && let Some(pidfd) = init_pidfd(&record)
    {
        let _ = pidfd.send_signal(Signal::SIGKILL);
        pidfd.wait_exit(None).map_err(|source| Error::Io {
            id: id.clone(),
            what: format!("wait for pid {}", record.pid),
            source,
        })?;
    }
    if !record.cgroup_skipped {
        Cgroup::open(&record.cgroup_path)?.remove()?;
    }
    let poststop = record.hooks.as_ref().map_or(&[][..], |h| HookKind::Poststop.list(h));
    if !poststop.is_empty() {
        hooks::run_logged(HookKind::Poststop, poststop, &HookState::from_record(&record, Status::Stopped).to_json());
    }
    locked.remove()?;
    Ok(())
}
