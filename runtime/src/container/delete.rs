//! `delete`: removes everything a container had, then runs its poststop hooks
//! (before the state directory goes; their failures are logged).
//!
//! What it kills and removes is what [`super::identity`] allows: the verified
//! init, the cgroup that holds it or (once it is gone) the cgroup amphi created
//! for the container, and of that cgroup only the directories amphi made.

use nix::sys::signal::Signal;

use super::Error;
use super::identity::Init;
use super::open::Opened;
use crate::cgroups::Cgroup;
use crate::hooks::{self, HookKind};
use crate::id::ContainerId;
use crate::state::{OciState, StateError, Status, Store, Verb};

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
            // cgroup; the directories whose mark says amphi made them for this
            // container are removed, with what is in them (the init included).
            let spec_path = oci_spec::runtime::Spec::load(locked.dir().config())
                .ok()
                .and_then(|spec| spec.linux().as_ref().and_then(|l| l.cgroups_path().clone()));
            if let Ok(path) = Cgroup::resolve_path(spec_path.as_deref(), id.as_str(), false)
                && let Ok(cgroup) = Cgroup::open_owned(&path, &locked.dir().mark(), None)
            {
                cgroup.remove()?;
            }
            locked.remove()?;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let opened = Opened::check(locked, record, if force { Verb::ForceDelete } else { Verb::Delete })?;
    let cgroup = opened.own_cgroup(Verb::Delete)?;
    let Opened { locked, record, init, status } = opened;
    if let Init::Alive(live) = &init {
        // A frozen (v1) process acts on SIGKILL only once thawed: a paused
        // container is killed through its cgroup, which thaws it. So is one
        // whose cgroup existed before it, which `remove` leaves as it is.
        if let Some(cgroup) = &cgroup
            && (status == Status::Paused || !cgroup.procs_created())
        {
            cgroup.signal_all(Signal::SIGKILL)?;
        }
        let _ = live.pidfd.send_signal(Signal::SIGKILL);
        live.pidfd.wait_exit(None).map_err(|source| Error::Io {
            id: id.clone(),
            what: format!("wait for pid {}", live.pid),
            source,
        })?;
    }
    if let Some(cgroup) = cgroup {
        cgroup.remove()?;
    }
    let poststop = record.hooks.as_ref().map_or(&[][..], |h| HookKind::Poststop.list(h));
    if !poststop.is_empty() {
        let state = OciState::of(&record, HookKind::Poststop.status()).to_json();
        hooks::run_logged(HookKind::Poststop, poststop, &state);
    }
    locked.remove()?;
    Ok(())
}
