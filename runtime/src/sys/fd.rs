//! File-descriptor housekeeping for the container process.

use std::io;
use std::os::fd::RawFd;

/// Marks every descriptor from `first` upwards close-on-exec, so that nothing the
/// runtime had open (its log, lock or state files) reaches a native workload.
/// Descriptors below `first` (stdio and `--preserve-fds`) are left alone.
pub fn cloexec_from(first: RawFd) -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on descriptors
    // in the range; it closes nothing and touches no memory.
    let ret = unsafe {
        libc::close_range(first as libc::c_uint, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int)
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Clears close-on-exec on `fd` (for `--preserve-fds` and `LISTEN_FDS`).
pub fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))?;
    Ok(())
}
