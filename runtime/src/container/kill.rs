//! `kill`: signals a container's init, or with `--all` every process in its cgroup.
//!
//! Only a verified init is signalled, through its pidfd, and `--all` acts only
//! on a cgroup [`super::identity`] allows: the one holding the verified init, or,
//! once the init is gone, the cgroup amphi created for this container.

use nix::sys::signal::Signal;

use super::Error;
use super::identity::{self, Init};
use crate::cgroups::CgroupError;
use crate::id::ContainerId;
use crate::state::{Record, Status, Store, Verb};

/// `kill`: sends `signal` to the container's init, or with `all` to every
/// process of its cgroup.
pub fn kill(store: &Store, id: &ContainerId, signal: Signal, all: bool) -> Result<(), Error> {
    // `kill --all` also reaches what is left in the cgroup once the init has
    // exited (a pod with shareProcessNamespace: [`Status::permits`]).
    let opened = store.open(id, if all { Verb::KillAll } else { Verb::Kill })?;
    let status = opened.status;
    let stopped_all = all && status == Status::Stopped;
    // Without a cgroup (rootless) `--all` reaches the init alone, as runc's
    // does: in its own pid namespace, SIGKILL of the init ends every process.
    if all && let Some(cgroup) = opened.own_cgroup(Verb::Kill)? {
        if stopped_all && !cgroup.procs_created() {
            // A stopped container whose cgroup is gone has nothing to signal.
            return if cgroup.exists() { Err(identity::not_created(&opened.record, &cgroup)) } else { Ok(()) };
        }
        return match cgroup.signal_all(signal) {
            Err(CgroupError::Io { source, .. }) if stopped_all && source.kind() == std::io::ErrorKind::NotFound => {
                Ok(())
            }
            other => Ok(other?),
        };
    }
    let Init::Alive(live) = &opened.init else {
        return Err(Error::bad_status(id.clone(), Status::Stopped, Verb::Kill));
    };
    live.pidfd.send_signal(signal).map_err(|source| Error::Io {
        id: id.clone(),
        what: format!("signal {signal} to pid {}", live.pid),
        source,
    })?;
    // A frozen (v1) process acts on SIGKILL only once thawed (as runc, thaw
    // after the kill); other signals wait for `resume`.
    if status == Status::Paused && signal == Signal::SIGKILL {
        opened.cgroup(Verb::Kill)?.thaw()?;
        opened.locked.write(&Record { paused: false, ..opened.record })?;
    }
    Ok(())
}
