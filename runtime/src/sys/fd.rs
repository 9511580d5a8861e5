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

/// Receives one datagram into `buf` from a unix socket, with up to `max_fds`
/// descriptors passed along it (`SCM_RIGHTS`), which arrive close-on-exec.
/// Returns the datagram's length (0 when the peer closed) and the descriptors.
pub fn recv_with_fds(
    socket: std::os::fd::BorrowedFd<'_>,
    buf: &mut [u8],
    max_fds: usize,
) -> nix::Result<(usize, Vec<std::os::fd::OwnedFd>)> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut cmsg = vec![0u8; nix::sys::socket::cmsg_space::<RawFd>() * max_fds.max(1)];
    loop {
        let mut iov = [std::io::IoSliceMut::new(buf)];
        match recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC) {
            Ok(msg) => {
                let mut fds = Vec::new();
                for c in msg.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        // SAFETY: SCM_RIGHTS installed these descriptors in this
                        // process for us; nothing else owns them yet.
                        fds.extend(raw.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
                    }
                }
                return Ok((msg.bytes, fds));
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}
