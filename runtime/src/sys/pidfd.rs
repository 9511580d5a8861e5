//! Process file descriptors: signal and wait for a process that is not our child,
//! without racing against pid reuse.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// An open pidfd.
#[derive(Debug)]
pub struct PidFd(OwnedFd);

impl AsFd for PidFd {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl PidFd {
    /// Opens a pidfd for `pid`. Fails with `ESRCH` when no such process exists.
    pub fn open(pid: Pid) -> io::Result<Self> {
        // SAFETY: pidfd_open takes a pid and flags by value and returns a new fd or -1.
        let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this fd to us; nothing else owns it.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(ret as i32) }))
    }

    /// A duplicate of the process's descriptor `target` (`pidfd_getfd(2)`,
    /// close-on-exec). Needs ptrace access to the process.
    pub fn get_fd(&self, target: i32) -> io::Result<OwnedFd> {
        // SAFETY: the pidfd is valid and owned by self; target and flags are
        // plain integers; the call returns a new descriptor or -1.
        let ret = unsafe { libc::syscall(libc::SYS_pidfd_getfd, self.0.as_raw_fd(), target, 0) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this fd to us; nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(ret as i32) })
    }

    /// Sends `signal` to the process this pidfd names (never to a reused pid).
    pub fn send_signal(&self, signal: Signal) -> io::Result<()> {
        // SAFETY: the fd is a valid pidfd owned by self; a null siginfo asks the
        // kernel to fill it in as kill(2) would.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                signal as libc::c_int,
                std::ptr::null_mut::<libc::siginfo_t>(),
                0,
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Whether the process this pidfd names has not been reaped yet: its pid
    /// still names it, so whatever `/proc/<pid>` showed since the pidfd was
    /// opened was this process, not a later one that reused the pid.
    pub fn is_alive(&self) -> io::Result<bool> {
        // SAFETY: the fd is a valid pidfd owned by self; signal 0 only checks
        // that the process exists and may be signalled, and a null siginfo is
        // allowed.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                0,
                std::ptr::null_mut::<libc::siginfo_t>(),
                0,
            )
        };
        if ret == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ESRCH) => Ok(false),
            _ => Err(err),
        }
    }

    /// Waits until the process has exited (become a zombie or been reaped), or the
    /// timeout passes. Returns whether it exited. No polling loop: the pidfd becomes
    /// readable when the process ends.
    pub fn wait_exit(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let timeout = match timeout {
            None => PollTimeout::NONE,
            Some(t) => PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX),
        };
        let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
        loop {
            match poll(&mut fds, timeout) {
                Ok(0) => return Ok(false),
                Ok(_) => return Ok(true),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}
