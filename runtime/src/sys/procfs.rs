//! A private procfs instance: a fresh `proc` superblock mounted nowhere
//! (`fsopen`/`fsmount`), for reading this process's own `/proc` files when the
//! container's `/proc` cannot be trusted or is not there.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `statfs` magic of procfs.
pub const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// Mounts a new procfs for the caller's pid namespace and returns the root of
/// that detached mount (`O_PATH`-like mount descriptor, close-on-exec). Needs
/// `CAP_SYS_ADMIN` over the pid namespace's owner, and in a user namespace a
/// procfs that is already fully visible.
pub fn detached_instance() -> io::Result<OwnedFd> {
    // SAFETY: fsopen takes a NUL-terminated fs type name and flags; it returns a
    // new descriptor or -1.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, c"proc".as_ptr(), libc::FSOPEN_CLOEXEC) };
    if fs < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as i32) };
    // SAFETY: FSCONFIG_CMD_CREATE takes no key, value or aux (null, null, 0).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            libc::FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fsmount takes the configured fs context fd, flags and mount
    // attributes by value; it returns a new mount descriptor or -1.
    let mnt =
        unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), libc::FSMOUNT_CLOEXEC, libc::MOUNT_ATTR_RDONLY) };
    if mnt < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(mnt as i32) })
}

/// Whether `fd` is on a procfs.
pub fn is_procfs(fd: &impl std::os::fd::AsFd) -> io::Result<bool> {
    let stat = nix::sys::statfs::fstatfs(fd)?;
    Ok(stat.filesystem_type().0 as i64 == PROC_SUPER_MAGIC)
}
