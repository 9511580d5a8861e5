//! Terminals, from the caller's side: the console socket and the relay.
//!
//! A process whose `process.terminal` is true gets a pty made **inside** the
//! container ([`crate::process`]'s terminal step, after `pivot_root`, from the
//! container's own devpts), so that the pty belongs to the container's devpts
//! instance and nothing of the host's `/dev/pts` is visible in it. Its slave
//! becomes the process's stdin, stdout, stderr and controlling terminal; its
//! master leaves the container over a unix socket with `SCM_RIGHTS`, as runc
//! sends it: one message whose payload is the master's name (`/dev/ptmx`) and
//! whose one descriptor is the master. containerd's shim (go-runc's console
//! socket) reads exactly that.
//!
//! Who receives the master depends on how the runtime was called, with runc's
//! rules ([`check_modes`]):
//!
//! - **`--console-socket SOCK`** (create, `run -d`, `exec -d`): the caller
//!   connects to `SOCK` before anything is made ([`connect`]) — a missing socket
//!   is a one-line error that leaves nothing behind — and hands the connected
//!   socket to the container process, which sends the master itself. The
//!   container process may not be able to reach the host path (a mount
//!   namespace, a user namespace), but it can always use a descriptor.
//! - **foreground `run` or `exec -t` without a socket**: the caller makes a
//!   socket pair ([`pair`]) and hands one end to the container process, which
//!   sends the master over it exactly as over a console socket: one code path in
//!   the container for both cases, and no new stage message. The caller
//!   receives it ([`receive_master`]) and [`relay()`]s between its own terminal
//!   and the master until the process exits.
//!
//! Nothing here starts a thread: the relay is one `poll` loop.

pub mod relay;

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};

pub use relay::{HostConsole, relay};

/// The payload of the message that carries the master: its name, as runc sends
/// it (go-runc makes an `os.File` with this name).
pub const MASTER_NAME: &str = "/dev/ptmx";

/// Why a terminal could not be set up or relayed. Each message names the flag or
/// the field.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("--console-socket {}: connect: {source}", .path.display())]
    Connect { path: PathBuf, source: std::io::Error },
    /// runc's own words for a terminal nobody would receive.
    #[error("cannot allocate tty if amphi will detach without setting console socket")]
    DetachWithoutSocket,
    #[error("cannot use console socket if amphi will not detach or allocate tty")]
    SocketWithoutTty,
    #[error(
        "process.terminal: no terminal to relay to (stdin, stdout and stderr are not terminals): open /dev/tty: {0}"
    )]
    NoHostTerminal(std::io::Error),
    #[error("process.terminal: {step}: {source}")]
    Io { step: &'static str, source: std::io::Error },
    #[error("process.terminal: the container process sent no pty master")]
    NoMaster,
}

fn io(step: &'static str) -> impl FnOnce(nix::Error) -> ConsoleError {
    move |e| ConsoleError::Io { step, source: e.into() }
}

/// runc's rules for a process's terminal: with `detach` (always for `create`) a
/// terminal needs a console socket to go to, and a console socket is only for
/// a detached process with a terminal.
pub fn check_modes(terminal: bool, detach: bool, console_socket: bool) -> Result<(), ConsoleError> {
    if detach && terminal && !console_socket {
        return Err(ConsoleError::DetachWithoutSocket);
    }
    if console_socket && (!detach || !terminal) {
        return Err(ConsoleError::SocketWithoutTty);
    }
    Ok(())
}

/// Connects to the console socket at `path` (a listening `SOCK_STREAM` unix
/// socket), for the container process to send its master over.
pub fn connect(path: &Path) -> Result<OwnedFd, ConsoleError> {
    UnixStream::connect(path)
        .map(OwnedFd::from)
        .map_err(|source| ConsoleError::Connect { path: path.to_owned(), source })
}

/// A connected socket pair: the caller keeps the first end and receives the
/// master on it; the container process gets the second.
pub fn pair() -> Result<(OwnedFd, OwnedFd), ConsoleError> {
    let (ours, theirs) =
        UnixStream::pair().map_err(|source| ConsoleError::Io { step: "make a socket pair", source })?;
    Ok((OwnedFd::from(ours), OwnedFd::from(theirs)))
}

/// Sends `master` over `socket` as runc does.
pub fn send_master(socket: BorrowedFd<'_>, master: BorrowedFd<'_>) -> nix::Result<()> {
    let fds = [master.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(MASTER_NAME.as_bytes())];
    loop {
        match sendmsg::<()>(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => return other.map(drop),
        }
    }
}

/// Receives the master the container process sent over `socket`.
pub fn receive_master(socket: BorrowedFd<'_>) -> Result<OwnedFd, ConsoleError> {
    let mut name = [0u8; 4096];
    let (_, mut fds) = crate::sys::fd::recv_with_fds(socket, &mut name, 1).map_err(io("receive the pty master"))?;
    fds.pop().ok_or(ConsoleError::NoMaster)
}

/// Whether `fd` is a terminal.
pub fn is_terminal(fd: impl AsFd) -> bool {
    nix::sys::termios::tcgetattr(fd.as_fd()).is_ok()
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn runc_terminal_rules() {
        // create (always detached) and run -d.
        assert!(check_modes(true, true, true).is_ok());
        assert!(matches!(check_modes(true, true, false), Err(ConsoleError::DetachWithoutSocket)));
        assert!(matches!(check_modes(false, true, true), Err(ConsoleError::SocketWithoutTty)));
        assert!(check_modes(false, true, false).is_ok());
        // Foreground run and exec.
        assert!(check_modes(true, false, false).is_ok());
        assert!(matches!(check_modes(true, false, true), Err(ConsoleError::SocketWithoutTty)));
        assert!(check_modes(false, false, false).is_ok());
        assert_eq!(
            ConsoleError::DetachWithoutSocket.to_string(),
            "cannot allocate tty if amphi will detach without setting console socket"
        );
    }

    #[test]
    fn a_master_travels_with_its_name() {
        let (ours, theirs) = pair().unwrap();
        let file = tempfile::tempfile().unwrap();
        send_master(theirs.as_fd(), file.as_fd()).unwrap();
        let got = receive_master(ours.as_fd()).unwrap();
        let meta = |fd: BorrowedFd<'_>| nix::sys::stat::fstat(fd.as_raw_fd()).unwrap();
        assert_eq!(meta(got.as_fd()).st_ino, meta(file.as_fd()).st_ino);
    }

    #[test]
    fn no_master_is_an_error() {
        let (ours, theirs) = pair().unwrap();
        drop(theirs);
        assert!(matches!(receive_master(ours.as_fd()), Err(ConsoleError::NoMaster)));
    }

    #[test]
    fn a_missing_socket_names_the_flag() {
        let err = connect(Path::new("/nonexistent/console.sock")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--console-socket /nonexistent/console.sock: connect: No such file or directory (os error 2)"
        );
    }
}
