//! Pseudo-terminals and the terminal ioctls `nix` leaves to `ioctl(2)`.
//!
//! A pty is made from a devpts instance's `ptmx` (the container's own, once the
//! process has pivoted into its rootfs): [`open_master`] finds it inside a root
//! without trusting what the path leads to (it must be the `ptmx` of a devpts
//! filesystem) and unlocks it, [`open_peer`] opens its slave through the master
//! (`TIOCGPTPEER`, so no path under `/dev/pts` is looked up and trusted), and
//! [`is_devpts_slave`] checks what that gave. The rest reads and sets window
//! sizes and makes a terminal the controlling one.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::statfs::DEVPTS_SUPER_MAGIC;

use super::inroot::{FileKind, VerifiedOpenError, open_verified_in_root};

/// A terminal's window size, in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WinSize {
    /// Rows of character cells.
    pub rows: u16,
    /// Columns of character cells.
    pub cols: u16,
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// Where a root's pty multiplexer is looked for, in order: `/dev/ptmx` (the
/// `pts/ptmx` symlink a container's `/dev` has), then the devpts instance's own.
pub const PTMX_PATHS: [&str; 2] = ["/dev/ptmx", "/dev/pts/ptmx"];

/// The device number of every `ptmx` (5:2).
fn ptmx_rdev() -> u64 {
    nix::sys::stat::makedev(5, 2)
}

/// Whether `kind` is the `ptmx` of a devpts filesystem.
pub fn is_devpts_ptmx(kind: &FileKind) -> bool {
    kind.fs_type == DEVPTS_SUPER_MAGIC && kind.is_char_device() && kind.rdev == ptmx_rdev()
}

/// Whether `kind` is a pty slave of a devpts filesystem.
pub fn is_devpts_slave(kind: &FileKind) -> bool {
    kind.fs_type == DEVPTS_SUPER_MAGIC && kind.is_char_device() && kind.rdev != ptmx_rdev()
}

/// Why no pty master could be opened in a root: what the first place of
/// [`PTMX_PATHS`] held (the path the container asks for).
#[derive(Debug, thiserror::Error)]
#[error("{}: {}", .path.display(), describe(.source))]
pub struct OpenMasterError {
    pub path: PathBuf,
    pub source: VerifiedOpenError,
}

fn describe(e: &VerifiedOpenError) -> String {
    match e {
        VerifiedOpenError::Refused(kind) => format!("not the ptmx of a devpts filesystem (a {})", kind.describe()),
        VerifiedOpenError::Io(e) => super::errno_text(e),
        VerifiedOpenError::Replaced => e.to_string(),
    }
}

/// Opens a new pty's master inside `root` and unlocks its slave: the first of
/// [`PTMX_PATHS`] that, resolved inside `root` (no magic link, no symlink out
/// of it), is the `ptmx` of a devpts filesystem. Nothing else there is opened
/// for real. The master is close-on-exec and never becomes a controlling
/// terminal.
pub fn open_master(root: BorrowedFd<'_>) -> Result<OwnedFd, OpenMasterError> {
    let mut first = None;
    for path in PTMX_PATHS {
        match open_verified_in_root(root, Path::new(path), OFlag::O_RDWR, is_devpts_ptmx) {
            Ok((master, _)) => {
                unlock(master.as_fd())
                    .map_err(|e| OpenMasterError { path: path.into(), source: VerifiedOpenError::Io(e) })?;
                return Ok(master);
            }
            Err(source) => {
                first.get_or_insert(OpenMasterError { path: path.into(), source });
            }
        }
    }
    Err(first.expect("PTMX_PATHS is not empty"))
}

/// Unlocks the slave of the pty whose master is `master`.
fn unlock(master: BorrowedFd<'_>) -> io::Result<()> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer, which points at a
    // live local; the fd is a pty master.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) })?;
    Ok(())
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
#[cfg(test)]
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

    fn host_root() -> OwnedFd {
        std::fs::File::open("/").map(OwnedFd::from).expect("open /")
    }

    #[test]
    fn a_pty_pair_carries_bytes_and_its_size() {
        // The host's /dev/ptmx is a device node on devtmpfs: the devpts
        // instance's own ptmx is the one taken.
        let master = open_master(host_root().as_fd()).expect("open a pty master");
        let slave = open_peer(master.as_fd()).expect("open the slave");
        assert!(is_devpts_slave(&FileKind::of(slave.as_fd()).unwrap()));
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
    fn a_ptmx_that_is_no_devpts_ptmx_is_refused_unopened() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("dev/pts")).unwrap();
        // A fifo would hang an open for reading: it is only looked at.
        nix::unistd::mkfifo(&dir.path().join("dev/ptmx"), nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
        std::os::unix::fs::symlink("/proc/self/fd/0", dir.path().join("dev/pts/ptmx")).unwrap();
        let root = std::fs::File::open(dir.path()).map(OwnedFd::from).unwrap();
        let err = open_master(root.as_fd()).unwrap_err();
        assert_eq!(err.to_string(), "/dev/ptmx: not the ptmx of a devpts filesystem (a fifo)");
    }

    #[test]
    fn a_file_is_not_a_terminal() {
        let file = tempfile::tempfile().unwrap();
        assert!(window_size(file.as_fd()).is_err());
        assert!(set_controlling_terminal(file.as_fd()).is_err());
    }
}
