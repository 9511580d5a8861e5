//! Pseudo-terminals and the terminal ioctls `nix` leaves to `ioctl(2)`.
//!
//! A pty is made from a devpts instance's `ptmx` (the container's own, once the
//! process has pivoted into its rootfs): [`open_master`] opens and unlocks it,
//! [`open_peer`] opens its slave through the master (`TIOCGPTPEER`, so no path
//! under `/dev/pts` is looked up and trusted). The rest reads and sets window
//! sizes and makes a terminal the controlling one.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// A terminal's window size, in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WinSize {
    pub rows: u16,
    pub cols: u16,
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// Opens the pty multiplexer at `ptmx` (`/dev/ptmx`) and unlocks the new pty's
/// slave. The master is close-on-exec and never becomes a controlling terminal.
pub fn open_master(ptmx: &Path) -> io::Result<OwnedFd> {
    let master = OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC).open(ptmx)?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer, which points at a
    // live local; the fd is the master we just opened.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) })?;
    Ok(OwnedFd::from(master))
}

/// Opens the slave of `master` (read-write, close-on-exec, not as a controlling
/// terminal).
pub fn open_peer(master: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes its flags by value and returns a new fd or -1.
    let fd = check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) })?;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The number of the pty whose master is `master` (`/dev/pts/<n>`).
pub fn pty_number(master: BorrowedFd<'_>) -> io::Result<u32> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int through the pointer, which points
    // at a live local.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) })?;
    Ok(n)
}

/// The window size of the terminal `fd`.
pub fn window_size(fd: BorrowedFd<'_>) -> io::Result<WinSize> {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one struct winsize through the pointer, which
    // points at a live local of that type.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) })?;
    Ok(WinSize { rows: ws.ws_row, cols: ws.ws_col })
}

/// Sets the window size of the terminal `fd` (the pty's processes get SIGWINCH).
pub fn set_window_size(fd: BorrowedFd<'_>, size: WinSize) -> io::Result<()> {
    let ws = libc::winsize { ws_row: size.rows, ws_col: size.cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one struct winsize through the pointer, which
    // points at a live local of that type.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) })?;
    Ok(())
}

/// Makes the terminal `fd` the controlling terminal of the calling process, which
/// must lead a session that has none (never stealing one from another session).
pub fn set_controlling_terminal(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int by value (0: do not steal).
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0 as libc::c_int) })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn a_pty_pair_carries_bytes_and_its_size() {
        let master = open_master(Path::new("/dev/ptmx")).expect("open /dev/ptmx");
        let slave = open_peer(master.as_fd()).expect("open the slave");
        let size = WinSize { rows: 33, cols: 101 };
        set_window_size(master.as_fd(), size).unwrap();
        assert_eq!(window_size(slave.as_fd()).unwrap(), size);
        let n = pty_number(master.as_fd()).unwrap();
        let link = std::fs::read_link(format!("/proc/self/fd/{}", slave.as_raw_fd())).unwrap();
        assert_eq!(link, Path::new(&format!("/dev/pts/{n}")));
        nix::unistd::write(&master, b"x\n").unwrap();
        let mut buf = [0u8; 8];
        let got = nix::unistd::read(slave.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..got], b"x\n");
    }

    #[test]
    fn a_file_is_not_a_terminal() {
        let file = tempfile::tempfile().unwrap();
        assert!(window_size(file.as_fd()).is_err());
        assert!(set_controlling_terminal(file.as_fd()).is_err());
    }
}
