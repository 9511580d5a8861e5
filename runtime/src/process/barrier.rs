//! The start barrier: a fifo in the container's state directory.
//!
//! `create` makes the fifo and opens it read-write *before* cloning the init, which
//! inherits that descriptor and blocks in `read` on it after it reports ready. A
//! fifo opened read-write never reports end-of-file, so the init sleeps in the
//! kernel until a byte arrives: no polling, no timer. `start` opens the fifo
//! write-only and non-blocking — which fails with `ENXIO` when no reader exists,
//! that is, when the init is gone — writes one byte and removes the fifo. The
//! fifo's existence is what tells `created` from `running`.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::Mode;

const FIFO: &str = "exec.fifo";

/// The path of the barrier fifo in a container's state directory.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FIFO)
}

/// Whether the barrier is still up (the container has not been started).
pub fn is_up(state_dir: &Path) -> bool {
    path(state_dir).exists()
}

/// Makes the fifo and opens it read-write for the init to inherit.
pub fn create(state_dir: &Path) -> io::Result<OwnedFd> {
    let fifo = path(state_dir);
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600))?;
    // Read-write: the open does not wait for a writer, and reads never see EOF.
    let file = fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_CLOEXEC).open(&fifo)?;
    Ok(OwnedFd::from(file))
}

/// In the init: sleeps until `start` writes its byte.
pub fn wait(fd: OwnedFd) -> io::Result<()> {
    let mut file = fs::File::from(fd);
    let mut byte = [0u8; 1];
    loop {
        match file.read(&mut byte) {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "start barrier closed")),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
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
pub fn lift(state_dir: &Path) -> Result<(), LiftError> {
    let fifo = path(state_dir);
    let io_err = |source| LiftError::Io { path: fifo.clone(), source };
    let mut file = match fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open(&fifo)
    {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) || e.kind() == io::ErrorKind::NotFound => {
            return Err(LiftError::NotWaiting);
        }
        Err(e) => return Err(io_err(e)),
    };
    file.write_all(&[0]).map_err(io_err)?;
    fs::remove_file(&fifo).map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lift_wakes_a_waiting_reader() {
        let dir = tempfile::tempdir().unwrap();
        let fd = create(dir.path()).unwrap();
        assert!(is_up(dir.path()));
        lift(dir.path()).unwrap();
        assert!(!is_up(dir.path()));
        // The byte was buffered in the fifo; the reader gets it at once.
        wait(fd).unwrap();
    }

    #[test]
    fn lift_without_a_reader_says_not_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let fd = create(dir.path()).unwrap();
        drop(fd);
        assert!(matches!(lift(dir.path()), Err(LiftError::NotWaiting)));
        let missing = tempfile::tempdir().unwrap();
        assert!(matches!(lift(missing.path()), Err(LiftError::NotWaiting)));
    }
}
