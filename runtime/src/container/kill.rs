//! `kill`: signals a container's init, or with `--all` every process in its cgroup.

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::{Error, status_of};
use crate::cgroups::{Cgroup, CgroupError};
use crate::id::ContainerId;
use crate::state::{Record, Status, Store};
use crate::sys::pidfd::PidFd;
use crate::sys::proc::ProcStat;

pub fn kill(store: &Store, id: &ContainerId, signal: Signal, all: bool) -> Result<(), Error> {
    let locked = store.lock(id)?;
    let record = locked.read()?;
    let status = status_of(&record, locked.dir());
    // As runc's, `kill --all` also reaches what is left in the cgroup once the
    // init has exited: containerd's shim calls it then for a container that
    // shares another's pid namespace (a pod with shareProcessNamespace).
    let stopped_all = all && status == Status::Stopped;
    if !status.can_kill() && !stopped_all {
        return Err(Error::BadStatus { id: id.clone(), status, verb: "kill", hint: "" });
    }
    // Without a cgroup (rootless) `--all` reaches the init alone, as runc's
    // does: in its own pid namespace, SIGKILL of the init ends every process.
    if all && !record.cgroup_skipped {
        let cgroup = Cgroup::open(&record.cgroup_path)?;
        return match cgroup.signal_all(signal) {
            // A stopped container whose cgroup is gone has nothing to signal.
            Err(CgroupError::Io { source, .. }) if stopped_all && source.kind() == std::io::ErrorKind::NotFound => {
                Ok(())
            }
            other => Ok(other?),
        };
    }
    signal_init(&record, signal).map_err(|source| Error::Io {
        id: id.clone(),
        what: format!("signal {signal} to pid {}", record.pid),
        source,
    })?;
    // A frozen (v1) process acts on SIGKILL only once thawed (as runc, thaw
    // after the kill); other signals wait for `resume`.
    if status == Status::Paused && signal == Signal::SIGKILL {
        Cgroup::open(&record.cgroup_path)?.thaw()?;
        locked.write(&Record { paused: false, ..record })?;
    }
    Ok(())
}

/// Signals the init through a pidfd, after checking that the pid still names the
/// init (same start time): a reused pid is never signalled.
pub(crate) fn signal_init(record: &Record, signal: Signal) -> std::io::Result<()> {
    match init_pidfd(record) {
        Some(pidfd) => pidfd.send_signal(signal),
        None => Err(std::io::Error::from_raw_os_error(libc::ESRCH)),
    }
}

/// A pidfd of the container's init, or None if it is gone.
pub(crate) fn init_pidfd(record: &Record) -> Option<PidFd> {
    let pid = Pid::from_raw(record.pid);
    let pidfd = PidFd::open(pid).ok()?;
    // Opened first, checked second: if the start time matches now, the pidfd
    // names the init for as long as we hold it.
    let stat = ProcStat::read(pid).ok()?;
    (stat.start_time == record.start_time && !stat.is_exited()).then_some(pidfd)
}
