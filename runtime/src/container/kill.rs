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
use crate::state::{Record, Status, Store};

pub fn kill(store: &Store, id: &ContainerId, signal: Signal, all: bool) -> Result<(), Error> {
    let locked = store.lock(id)?;
    let record = locked.read()?;
    let (init, status) = identity::inspect(&record, locked.dir());
    // As runc's, `kill --all` also reaches what is left in the cgroup once the
    // init has exited: containerd's shim calls it then for a container that
    // shares another's pid namespace (a pod with shareProcessNamespace).
    let stopped_all = all && status == Status::Stopped;
    if !status.can_kill() && !stopped_all {
        if let Init::Foreign { pid, why } = init {
            return Err(Error::NotTheInit { id: id.clone(), pid, why });
        }
        return Err(Error::BadStatus { id: id.clone(), status, verb: "kill", hint: "" });
    }
    // Without a cgroup (rootless) `--all` reaches the init alone, as runc's
    // does: in its own pid namespace, SIGKILL of the init ends every process.
    if all && !record.cgroup_skipped {
        let cgroup = identity::container_cgroup(&record, locked.dir(), &init, "kill")?;
        if stopped_all && !cgroup.procs_created() {
            // A stopped container whose cgroup is gone has nothing to signal.
            return if cgroup.exists() { Err(identity::not_created(&record, &cgroup)) } else { Ok(()) };
        }
        return match cgroup.signal_all(signal) {
            Err(CgroupError::Io { source, .. }) if stopped_all && source.kind() == std::io::ErrorKind::NotFound => {
                Ok(())
            }
            other => Ok(other?),
        };
    }
    let Init::Alive(live) = &init else {
        return Err(Error::BadStatus { id: id.clone(), status: Status::Stopped, verb: "kill", hint: "" });
    };
    live.pidfd.send_signal(signal).map_err(|source| Error::Io {
        id: id.clone(),
        what: format!("signal {signal} to pid {}", live.pid),
        source,
    })?;
    // A frozen (v1) process acts on SIGKILL only once thawed (as runc, thaw
    // after the kill); other signals wait for `resume`.
    if status == Status::Paused && signal == Signal::SIGKILL {
        identity::container_cgroup(&record, locked.dir(), &init, "kill")?.thaw()?;
        locked.write(&Record { paused: false, ..record })?;
    }
    Ok(())
}
