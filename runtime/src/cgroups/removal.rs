//! Taking a container's cgroup down: killing what is in it and removing the
//! directories amphi made, and only those.
//!
//! A directory that existed before the container (adopted by
//! [`super::Cgroup::create`] because it was empty) is never removed, and nothing
//! in it is killed here: it loses the container's mark and is left as it was
//! found. Whether a directory was made by amphi is known to the process that made
//! it, or, in a later command, from the record *and* the directory's own mark
//! ([`super::ownership`]), never from the record alone.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::freezer::Freezer;
use super::{Cgroup, CgroupError, Layout, collect_pids, ownership, proc_dir, write_file};
use crate::sys::pidfd::PidFd;

/// How long [`Cgroup::remove`] waits for killed processes to leave a cgroup.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a SIGKILL of every process waits for them to exit.
const KILL_TIMEOUT: Duration = Duration::from_secs(2);

impl Cgroup {
    /// Removes the directories amphi made for the container (and any cgroup the
    /// container made below them), killing what is left in each first, and
    /// clears the container's mark from the directories it adopted, which stay.
    /// A cgroup that is already gone is fine. Parent directories (`/amphi`) are
    /// left, as runc leaves them.
    pub fn remove(&self) -> Result<(), CgroupError> {
        let mut first_error = None;
        let procs_dir = self.procs_dir();
        if self.made_dir(&procs_dir) && procs_dir.exists() {
            first_error = self.kill_all().err();
        }
        let made: Vec<PathBuf> =
            self.named_dirs().filter(|(name, dir)| self.made(name) && dir.exists()).map(|(_, dir)| dir).collect();
        for dir in &made {
            if let Err(e) = remove_tree(dir) {
                first_error.get_or_insert(e);
            }
        }
        if let Some(owner) = &self.owner {
            for (name, dir) in self.named_dirs() {
                if !self.made(&name) && dir.exists() {
                    ownership::clear(&dir, owner);
                }
            }
        }
        match first_error {
            // The kill failed but every directory is gone: nothing is left to kill.
            Some(_) if made.iter().all(|d| !d.exists()) => Ok(()),
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// SIGKILLs every process in the cgroup (the directory that lists them) and
    /// waits until they have exited.
    pub(super) fn kill_all(&self) -> Result<(), CgroupError> {
        let deadline = Instant::now() + KILL_TIMEOUT;
        if self.layout == Layout::V2 {
            let file = self.procs_dir().join("cgroup.kill");
            match write_file(&file, "1") {
                Ok(()) => {}
                // Before Linux 5.14 there is no cgroup.kill: the loop below does it.
                Err(CgroupError::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound && file.parent().is_some_and(Path::exists) => {}
                Err(e) => return Err(e),
            }
        }
        kill_and_wait(&self.procs_dir(), self.freezer().ok().as_ref(), deadline)
    }
}

/// Removes the directories [`Cgroup::create`] made, children first. They hold no
/// process yet; a parent (`/amphi`) that another container's cgroup has meanwhile
/// moved into is left to it.
pub(super) fn remove_made(made: &[PathBuf]) -> Result<(), CgroupError> {
    let mut first_error = None;
    for dir in made.iter().rev() {
        match fs::remove_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::ENOTEMPTY)) => {}
            Err(source) => {
                first_error.get_or_insert(CgroupError::Io { op: "rmdir", file: dir.clone(), source });
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Removes `dir` and every cgroup below it, children first.
fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(CgroupError::Io { op: "list", file: dir.to_owned(), source }),
    };
    for entry in entries {
        let entry = entry.map_err(CgroupError::io("list", dir))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    rmdir_waiting(dir)
}

/// `rmdir` of a cgroup fails with `EBUSY` while a process is inside (a zombie
/// does not count): kill and wait for whatever is still listed, then retry.
fn rmdir_waiting(dir: &Path) -> Result<(), CgroupError> {
    let start = Instant::now();
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                if start.elapsed() > REMOVE_TIMEOUT {
                    return Err(CgroupError::Busy { dir: dir.to_owned(), waited_ms: start.elapsed().as_millis() });
                }
                kill_and_wait(dir, None, start + REMOVE_TIMEOUT)?;
                // Listed nothing, yet busy: the last exits are being accounted.
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(source) => return Err(CgroupError::Io { op: "rmdir", file: dir.to_owned(), source }),
        }
    }
}

/// SIGKILLs every process listed in `dir` and below, and waits (on pidfds, no
/// polling) until each has exited, round after round until none is listed: a
/// process forked before the kill reached its parent is caught by the next round,
/// and a process with a pending SIGKILL cannot fork. A frozen v1 cgroup is thawed
/// once the signals are pending, so that its processes wake only to die.
fn kill_and_wait(dir: &Path, freezer: Option<&Freezer>, deadline: Instant) -> Result<(), CgroupError> {
    let started = Instant::now();
    loop {
        let mut pids = Vec::new();
        match collect_pids(dir, &mut pids) {
            Ok(()) => {}
            Err(CgroupError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound && !dir.exists() => {
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        if pids.is_empty() {
            return Ok(());
        }
        let mut dying = Vec::with_capacity(pids.len());
        for pid in pids {
            match PidFd::open(pid) {
                Ok(fd) => match fd.send_signal(Signal::SIGKILL) {
                    Ok(()) => dying.push(fd),
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                    Err(source) => return Err(CgroupError::Io { op: "signal", file: proc_dir(pid), source }),
                },
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(source) => return Err(CgroupError::Io { op: "pidfd_open", file: proc_dir(pid), source }),
            }
        }
        if let Some(freezer) = freezer
            && freezer.is_frozen()?
        {
            freezer.thaw()?;
        }
        for fd in &dying {
            let left = deadline.saturating_duration_since(Instant::now());
            let exited = fd.wait_exit(Some(left)).unwrap_or(false);
            if !exited {
                return Err(CgroupError::KillTimeout { dir: dir.to_owned(), waited_ms: started.elapsed().as_millis() });
            }
        }
    }
}
