//! The start barrier: a fifo in the container's state directory, and the way
//! `start` learns that the workload began.
//!
//! ## Lifting it
//!
//! `create` makes the fifo and opens it read-write *before* cloning the init, which
//! inherits that descriptor (close-on-exec) and, once it reports ready, sleeps in
//! `poll` until the fifo is readable. A fifo opened read-write never reports
//! end-of-file, so the init sleeps in the kernel until a byte arrives: no polling
//! loop, no timer. `start` opens the fifo write-only and non-blocking — which fails
//! with `ENXIO` when no reader exists, that is, when the init is gone — writes one
//! byte (the *go* byte) and removes the fifo. The fifo's existence is what tells
//! `created` from `running`.
//!
//! ## Seeing the workload begin
//!
//! The runtime-spec runs the poststart hooks only after the user's program was
//! executed, so a `start` with poststart hooks ([`lift_watching`]) also opens the
//! fifo for reading before it writes its byte, and keeps that reader after the
//! fifo's name is gone. The init's read-write descriptor is then the fifo's last
//! writer, and it goes away exactly when the init becomes its workload or ends:
//!
//! - the init leaves the go byte in the fifo while it runs the startContainer
//!   hooks, and takes it ([`take_go`]) only at the workload's door: a native
//!   workload right before `execve`, whose close-on-exec shuts the descriptor
//!   when the exec succeeded; an in-process (wasm) workload right before the
//!   guest's entry point is called, closing the descriptor with it
//!   ([`crate::executor::WorkloadEntry`]);
//! - when `execve` fails after the byte was taken, the init puts a byte back
//!   ([`put_back`]) before it exits.
//!
//! The reader sees `POLLHUP` when the last writer is gone (a reader opened while a
//! writer exists gets it, checked on Linux 6.18: only a reader opened with no
//! writer at all waits for a writer to come and go). An empty fifo then means the
//! workload was executed; a byte still there means the init ended before it (a
//! failing startContainer hook, a failed `execve`, a kill at any point before the
//! byte was taken). The wait is bounded by the init's life, not by a timer: its
//! descriptor closes when it exits, however it exits. What cannot be told apart is
//! a `SIGKILL` in the few instructions between taking the byte and `execve`, which
//! counts as executed.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;

// Each function takes the fifo's path, which the state directory names
// ([`crate::state::ContainerDir::barrier`]).

/// Whether the barrier is still up (the container has not been started).
pub fn is_up(fifo: &Path) -> bool {
    fifo.exists()
}

/// Makes the fifo and opens it read-write for the init to inherit.
pub fn create(fifo: &Path) -> io::Result<OwnedFd> {
    nix::unistd::mkfifo(fifo, Mode::from_bits_truncate(0o600))?;
    // Read-write: the open does not wait for a writer, and reads never see EOF.
    let file = fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_CLOEXEC).open(fifo)?;
    Ok(OwnedFd::from(file))
}

/// In the init: sleeps until `start` has written its byte, and leaves the byte
/// in the fifo (see [`take_go`]).
pub fn wait(fd: BorrowedFd<'_>) -> io::Result<()> {
    loop {
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) if fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLIN)) => return Ok(()),
            Ok(_) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "start barrier closed")),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The handlers with which the waiting init ends on a signal, until the
/// hand-over removes them ([`WaitingHandlers::remove`]).
#[derive(Debug)]
pub struct WaitingHandlers(crate::sys::signal::SavedDispositions);

impl WaitingHandlers {
    /// While the init waits at the barrier it is pid 1 of its namespace, where
    /// a signal without a handler is ignored even when sent from the host. So
    /// that `kill` of a created container works as it does for a running one,
    /// the waiting init ends on any signal whose default action would end a
    /// process, with status 128+N, and unblocks every signal.
    pub fn install() -> nix::Result<Self> {
        use crate::sys::signal;
        let saved = signal::exit_on(Signal::iterator().filter(|s| signal::terminates_by_default(*s)))?;
        signal::unblock(&nix::sys::signal::SigSet::all())?;
        Ok(Self(saved))
    }

    /// At the hand-over to the executor: puts back what the handlers replaced
    /// (the default, an ignored SIGPIPE, the wasm engine's trap handlers), so
    /// the runtime leaves no handler of its own to the workload
    /// ([`crate::executor::Handover`]). The mask stays as it is (nothing blocked).
    pub fn remove(self) -> nix::Result<()> {
        self.0.restore()
    }
}

/// In the init, at the workload's door: takes the go byte, so that the fifo is
/// empty when the descriptor closes with the workload's start.
pub fn take_go(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(fd.as_raw_fd(), &mut byte) {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "start barrier closed")),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// In the init, when the workload could not be executed after [`take_go`]:
/// leaves a byte for `start` to find, so that it runs no poststart hook.
pub fn put_back(fd: BorrowedFd<'_>) -> io::Result<()> {
    loop {
        match nix::unistd::write(fd, &[1]) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Why the barrier could not be lifted.
#[derive(Debug, thiserror::Error)]
pub enum LiftError {
    #[error("the container's init is not waiting to start")]
    NotWaiting,
    #[error("start barrier {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Lifts the barrier: the init proceeds to the workload.
pub fn lift(fifo: &Path) -> Result<(), LiftError> {
    lift_with(fifo, false).map(drop)
}

/// Lifts the barrier and keeps a reader of the fifo, to learn whether the
/// workload was executed ([`Watch::wait`]).
pub fn lift_watching(fifo: &Path) -> Result<Watch, LiftError> {
    lift_with(fifo, true).map(|reader| Watch { reader: reader.expect("asked for a reader") })
}

fn lift_with(fifo: &Path, watch: bool) -> Result<Option<fs::File>, LiftError> {
    let io_err = |source| LiftError::Io { path: fifo.to_owned(), source };
    let open = |options: &mut fs::OpenOptions| options.custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open(fifo);
    // Write-only first: ENXIO says that no reader, so no init, is there.
    let mut writer = match open(fs::OpenOptions::new().write(true)) {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) || e.kind() == io::ErrorKind::NotFound => {
            return Err(LiftError::NotWaiting);
        }
        Err(e) => return Err(io_err(e)),
    };
    // Our writer is open, so this reader will see the hang-up of the last one.
    let reader = if watch { Some(open(fs::OpenOptions::new().read(true)).map_err(io_err)?) } else { None };
    writer.write_all(&[0]).map_err(io_err)?;
    drop(writer);
    fs::remove_file(fifo).map_err(io_err)?;
    Ok(reader)
}

/// A reader of a lifted barrier's fifo, held by `start`.
#[derive(Debug)]
pub struct Watch {
    reader: fs::File,
}

/// How the init left the barrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The workload was executed (native: `execve` succeeded; in-process: the
    /// guest was entered).
    Executed,
    /// The init ended before its workload began.
    Ended,
}

impl Watch {
    /// Sleeps until the init's descriptor is gone (the workload began, or the
    /// init ended) and says which.
    pub fn wait(mut self) -> io::Result<Outcome> {
        loop {
            // No events asked: POLLHUP is always reported.
            let mut fds = [PollFd::new(self.reader.as_fd(), PollFlags::empty())];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let mut byte = [0u8; 1];
            match self.reader.read(&mut byte) {
                Ok(0) => return Ok(Outcome::Executed),
                Ok(_) => return Ok(Outcome::Ended),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path for a fifo in a fresh directory (kept while the test runs).
    fn fifo_path() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        (dir, fifo)
    }

    #[test]
    fn lift_wakes_a_waiting_reader() {
        let (_dir, fifo) = fifo_path();
        let fd = create(&fifo).unwrap();
        assert!(is_up(&fifo));
        lift(&fifo).unwrap();
        assert!(!is_up(&fifo));
        // The byte was buffered in the fifo; the init sees it at once and takes it.
        wait(fd.as_fd()).unwrap();
        take_go(fd.as_fd()).unwrap();
    }

    #[test]
    fn lift_without_a_reader_says_not_waiting() {
        let (_dir, fifo) = fifo_path();
        let fd = create(&fifo).unwrap();
        drop(fd);
        assert!(matches!(lift(&fifo), Err(LiftError::NotWaiting)));
        let (_missing, missing) = fifo_path();
        assert!(matches!(lift(&missing), Err(LiftError::NotWaiting)));
        assert!(matches!(lift_watching(&missing), Err(LiftError::NotWaiting)));
    }

    #[test]
    fn a_taken_byte_and_a_closed_descriptor_mean_executed() {
        let (_dir, fifo) = fifo_path();
        let fd = create(&fifo).unwrap();
        let watch = lift_watching(&fifo).unwrap();
        assert!(!is_up(&fifo));
        wait(fd.as_fd()).unwrap();
        take_go(fd.as_fd()).unwrap();
        // What close-on-exec does at a successful execve.
        drop(fd);
        assert_eq!(watch.wait().unwrap(), Outcome::Executed);
    }

    #[test]
    fn an_init_that_ends_before_its_workload_leaves_a_byte() {
        // It never took the go byte (a startContainer hook failed, it was killed).
        let (_dir, fifo) = fifo_path();
        let fd = create(&fifo).unwrap();
        let watch = lift_watching(&fifo).unwrap();
        wait(fd.as_fd()).unwrap();
        drop(fd);
        assert_eq!(watch.wait().unwrap(), Outcome::Ended);

        // It took it, and execve failed.
        let (_dir, fifo) = fifo_path();
        let fd = create(&fifo).unwrap();
        let watch = lift_watching(&fifo).unwrap();
        take_go(fd.as_fd()).unwrap();
        put_back(fd.as_fd()).unwrap();
        drop(fd);
        assert_eq!(watch.wait().unwrap(), Outcome::Ended);
    }

    #[test]
    fn the_watch_ends_with_the_init_process() {
        // A real process holds the descriptor and exits without a word: the
        // wait ends with it, with no timer.
        let (_dir, fifo) = fifo_path();
        let fd = create(&fifo).unwrap();
        let watch = lift_watching(&fifo).unwrap();
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 0.2"])
            .stdin(std::process::Stdio::from(fd))
            .spawn()
            .unwrap();
        assert_eq!(watch.wait().unwrap(), Outcome::Ended);
        child.wait().unwrap();
    }
}
