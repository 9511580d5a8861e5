//! A private procfs instance: a fresh `proc` superblock mounted nowhere
//! ([`super::mount::new_filesystem`]), for reading this process's own `/proc`
//! files when the container's `/proc` cannot be trusted or is not there.

use std::io;
use std::os::fd::OwnedFd;

/// Mounts a new procfs for the caller's pid namespace and returns the root of
/// that detached mount (`O_PATH`-like mount descriptor, close-on-exec). Needs
/// `CAP_SYS_ADMIN` over the pid namespace's owner, and in a user namespace a
/// procfs that is already fully visible.
pub fn detached_instance() -> io::Result<OwnedFd> {
    super::mount::new_filesystem(c"proc", libc::MOUNT_ATTR_RDONLY)
}

/// Whether `fd` is on a procfs.
pub fn is_procfs(fd: &impl std::os::fd::AsFd) -> io::Result<bool> {
    Ok(nix::sys::statfs::fstatfs(fd)?.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC)
}
