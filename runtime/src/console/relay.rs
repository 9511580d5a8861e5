//! The foreground relay: the caller's terminal ↔ the container's pty master.
//!
//! As `runc run` does: the caller's terminal (the first of stderr, stdout and
//! stdin that is one, else `/dev/tty`) is put in raw mode — output processing
//! stays on, so the host terminal still turns `\n` into `\r\n`, and the pty's own
//! `ONLCR` is cleared so that it does not happen twice — stdin is copied to the
//! master and the master to stdout, a `SIGWINCH` copies the terminal's size to
//! the pty, every other signal goes to the container process, and the terminal
//! is restored however the relay ends ([`HostConsole`]'s `Drop`).
//!
//! One `poll` loop over a `signalfd`, stdin and the master: the caller must
//! have every signal blocked (so that none is lost and none kills the caller
//! while the terminal is raw). Writes to the master are non-blocking and queued,
//! so a container that does not read its input cannot stall its output.

use std::fs::OpenOptions;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, OutputFlags, SetArg, Termios};

use super::{ConsoleError, io, is_terminal};
use crate::sys::pty::{set_window_size, window_size};

/// How much is read from either side at once.
const CHUNK: usize = 4096;

/// The caller's own terminal. Dropping it restores the mode [`HostConsole::set_raw`]
/// changed.
#[derive(Debug)]
pub struct HostConsole {
    fd: OwnedFd,
    saved: Option<Termios>,
}

impl HostConsole {
    /// Finds the caller's terminal: stderr, stdout or stdin if one of them is a
    /// terminal, else the controlling terminal (`/dev/tty`). Fails, as runc does,
    /// when there is none.
    pub fn find() -> Result<Self, ConsoleError> {
        let (stderr, stdout, stdin) = (std::io::stderr(), std::io::stdout(), std::io::stdin());
        let streams = [stderr.as_fd(), stdout.as_fd(), stdin.as_fd()];
        if let Some(fd) = streams.into_iter().find(|fd| is_terminal(fd)) {
            let fd = fd.try_clone_to_owned().map_err(|source| ConsoleError::Io { step: "dup the terminal", source })?;
            return Ok(Self { fd, saved: None });
        }
        let tty = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
            .open("/dev/tty")
            .map_err(ConsoleError::NoHostTerminal)?;
        Ok(Self { fd: OwnedFd::from(tty), saved: None })
    }

    /// Raw input and no echo; output processing stays on.
    pub fn set_raw(&mut self) -> Result<(), ConsoleError> {
        let current = termios::tcgetattr(&self.fd).map_err(io("read the terminal's mode"))?;
        let mut raw = current.clone();
        termios::cfmakeraw(&mut raw);
        raw.output_flags |= OutputFlags::OPOST;
        termios::tcsetattr(&self.fd, SetArg::TCSANOW, &raw).map_err(io("make the terminal raw"))?;
        self.saved.get_or_insert(current);
        Ok(())
    }

    /// Copies this terminal's window size to the pty `master`.
    pub fn resize(&self, master: BorrowedFd<'_>) -> Result<(), ConsoleError> {
        let size =
            window_size(self.fd.as_fd()).map_err(|source| ConsoleError::Io { step: "read the window size", source })?;
        set_window_size(master, size).map_err(|source| ConsoleError::Io { step: "set the window size", source })
    }
}

impl Drop for HostConsole {
    fn drop(&mut self) {
        if let Some(saved) = self.saved.take() {
            let _ = termios::tcsetattr(&self.fd, SetArg::TCSANOW, &saved);
        }
    }
}

/// Relays between the caller's stdio and `master` until `reap` reports the
/// container process's exit status, then copies what the process left in the
/// pty and returns that status. `forward` gets every signal but `SIGCHLD` and
/// `SIGWINCH`. Every signal must be blocked in the calling thread.
pub fn relay(
    master: OwnedFd,
    host: &mut HostConsole,
    mut reap: impl FnMut() -> nix::Result<Option<i32>>,
    mut forward: impl FnMut(Signal),
) -> Result<i32, ConsoleError> {
    let mut mode = termios::tcgetattr(&master).map_err(io("read the pty's mode"))?;
    mode.output_flags.remove(OutputFlags::ONLCR);
    termios::tcsetattr(&master, SetArg::TCSANOW, &mode).map_err(io("clear ONLCR"))?;
    set_nonblocking(master.as_fd())?;
    let signals = SignalFd::with_flags(&SigSet::all(), SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(io("make a signalfd"))?;
    host.set_raw()?;
    // As runc: the host terminal's size wins over process.consoleSize. Not
    // fatal: the host "terminal" may be /dev/tty of a detached session.
    let _ = host.resize(master.as_fd());

    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut state = Relay { master_open: true, stdin_open: true, to_master: Vec::new() };
    let mut buf = vec![0u8; CHUNK];
    loop {
        if let Some(code) = reap().map_err(io("wait for the container process"))? {
            state.drain(master.as_fd(), stdout.as_fd(), &mut buf);
            return Ok(code);
        }
        // A descriptor at its end reports POLLHUP whatever it is asked for:
        // one that is done with is left out, not polled for nothing.
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        let master_at = state.master_open.then(|| {
            let mut events = PollFlags::POLLIN;
            if !state.to_master.is_empty() {
                events |= PollFlags::POLLOUT;
            }
            fds.push(PollFd::new(master.as_fd(), events));
            fds.len() - 1
        });
        let stdin_at = (state.stdin_open && state.master_open && state.to_master.is_empty()).then(|| {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(io("poll")(e)),
        }
        let ready = |at: Option<usize>| at.and_then(|i| fds[i].revents()).unwrap_or(PollFlags::empty());
        let (sig, mst, inp) = (ready(Some(0)), ready(master_at), ready(stdin_at));
        drop(fds);

        if !sig.is_empty() {
            while let Some(info) = signals.read_signal().map_err(io("read a signal"))? {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) | Err(_) => {}
                    Ok(Signal::SIGWINCH) => {
                        let _ = host.resize(master.as_fd());
                    }
                    Ok(signal) => forward(signal),
                }
            }
        }
        if mst.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            state.copy_output(master.as_fd(), stdout.as_fd(), &mut buf);
        }
        if mst.contains(PollFlags::POLLOUT) {
            state.flush_input(master.as_fd());
        }
        if inp.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL) {
            state.take_input(stdin.as_fd(), &mut buf);
        }
    }
}

/// What the loop knows between two polls.
struct Relay {
    /// False once the pty reports that every slave is closed (EIO).
    master_open: bool,
    /// False once stdin ended.
    stdin_open: bool,
    /// Input read from stdin, not yet taken by the pty.
    to_master: Vec<u8>,
}

impl Relay {
    /// Copies what the master has to stdout; returns whether anything came.
    fn copy_output(&mut self, master: BorrowedFd<'_>, stdout: BorrowedFd<'_>, buf: &mut [u8]) -> bool {
        match read(master, buf) {
            Ok(n) if n > 0 => {
                write_all(stdout, &buf[..n]);
                true
            }
            Err(Errno::EAGAIN) => false,
            // EIO (or end of file): the last slave closed. Nothing more will come.
            Ok(_) | Err(_) => {
                self.master_open = false;
                false
            }
        }
    }

    /// Copies whatever the pty still holds after the process ended (the
    /// master is non-blocking: this stops when it is empty).
    fn drain(&mut self, master: BorrowedFd<'_>, stdout: BorrowedFd<'_>, buf: &mut [u8]) {
        while self.master_open && self.copy_output(master, stdout, buf) {}
    }

    fn flush_input(&mut self, master: BorrowedFd<'_>) {
        match nix::unistd::write(master, &self.to_master) {
            Ok(n) => {
                self.to_master.drain(..n);
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(_) => {
                self.to_master.clear();
                self.master_open = false;
            }
        }
    }

    fn take_input(&mut self, stdin: BorrowedFd<'_>, buf: &mut [u8]) {
        match read(stdin, buf) {
            Ok(0) => self.stdin_open = false,
            Ok(n) => self.to_master.extend_from_slice(&buf[..n]),
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(_) => self.stdin_open = false,
        }
    }
}

fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> nix::Result<usize> {
    use std::os::fd::AsRawFd;
    loop {
        match nix::unistd::read(fd.as_raw_fd(), buf) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// Writes all of `bytes`; output that cannot be written (a closed stdout) is
/// dropped, as a terminal that went away would drop it.
fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::NONE);
            }
            Err(_) => return,
        }
    }
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> Result<(), ConsoleError> {
    use std::os::fd::AsRawFd;
    let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL).map_err(io("read the pty's flags"))?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags)).map_err(io("make the pty non-blocking"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_copies_what_is_left_and_marks_a_closed_pty() {
        let nix::pty::OpenptyResult { master, slave } = nix::pty::openpty(None, None).unwrap();
        let out = tempfile::tempfile().unwrap();
        nix::unistd::write(&slave, b"bye\n").unwrap();
        drop(slave);
        let mut relay = Relay { master_open: true, stdin_open: true, to_master: Vec::new() };
        let mut buf = vec![0u8; 64];
        relay.drain(master.as_fd(), out.as_fd(), &mut buf);
        assert!(!relay.master_open);
        let mut text = String::new();
        use std::io::{Read, Seek};
        let mut out = out;
        out.rewind().unwrap();
        out.read_to_string(&mut text).unwrap();
        assert_eq!(text, "bye\r\n", "the pty's own ONLCR was left on here");
    }

    #[test]
    fn drain_of_an_open_pty_stops_when_it_is_empty() {
        let nix::pty::OpenptyResult { master, slave: _slave } = nix::pty::openpty(None, None).unwrap();
        set_nonblocking(master.as_fd()).unwrap();
        let out = tempfile::tempfile().unwrap();
        let mut relay = Relay { master_open: true, stdin_open: true, to_master: Vec::new() };
        let mut buf = vec![0u8; 64];
        relay.drain(master.as_fd(), out.as_fd(), &mut buf);
        assert!(relay.master_open, "an empty pty is not a closed one");
    }
}
