//! Mount syscalls that `nix` does not wrap: `mount_setattr(2)` and
//! `open_tree(2)`.
//!
//! (`pivot_root`, `mount`, `umount2` and `chroot` come from `nix`.)

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What one `mount_setattr(2)` call changes on a mount (or, with `recursive`, on
/// a whole mount tree): `MOUNT_ATTR_*` bits to set and to clear, and an optional
/// propagation type (`MS_SHARED`, `MS_SLAVE`, `MS_PRIVATE` or `MS_UNBINDABLE`, 0
/// for none). Attributes not named stay as they are, so the flags the kernel
/// locked on a mount copied into a user namespace are kept without being read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MountAttr {
    pub set: u64,
    pub clear: u64,
    pub propagation: u64,
}

impl MountAttr {
    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clear == 0 && self.propagation == 0
    }
}

/// Applies `attr` to the mount that `fd` (any descriptor, `O_PATH` is fine) sits
/// on top of, and with `recursive` to every mount below it.
pub fn mount_setattr(fd: BorrowedFd<'_>, recursive: bool, attr: &MountAttr) -> io::Result<()> {
    setattr(fd, c"", libc::AT_EMPTY_PATH as libc::c_uint, recursive, attr)
}

/// Like [`mount_setattr`], for the mount on `name` in the directory `dir`: one
/// lookup that crosses into whatever is mounted there, following no symlink.
/// For directories the runtime made itself, where nothing can have replaced
/// `name` since.
pub fn mount_setattr_at(dir: BorrowedFd<'_>, name: &Path, recursive: bool, attr: &MountAttr) -> io::Result<()> {
    let name = CString::new(name.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    setattr(dir, &name, libc::AT_SYMLINK_NOFOLLOW as libc::c_uint, recursive, attr)
}

/// A detached copy of the mount that `path` names, as `open_tree(2)` with
/// `OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC` makes it: a bind mount of `path` alone
/// (a file or a directory) that no mount namespace holds. It lives as long as
/// a descriptor or a path (an open file, a process's executable) refers to it;
/// once the returned descriptor is closed nobody can attach it or change its
/// attributes any more.
pub fn open_tree_clone(path: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call;
    // open_tree only reads it and returns a new descriptor or -1.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            (libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC) as libc::c_uint,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as i32) })
}

fn setattr(
    fd: BorrowedFd<'_>,
    path: &CStr,
    mut flags: libc::c_uint,
    recursive: bool,
    attr: &MountAttr,
) -> io::Result<()> {
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    let raw =
        libc::mount_attr { attr_set: attr.set, attr_clr: attr.clear, propagation: attr.propagation, userns_fd: 0 };
    // SAFETY: `path` is a valid NUL-terminated string (empty with AT_EMPTY_PATH,
    // which makes the call act on `fd` itself) and `raw` is a valid mount_attr
    // whose size we pass; both outlive the call, which only reads them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            path.as_ptr(),
            flags,
            &raw as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_attr_is_empty() {
        assert!(MountAttr::default().is_empty());
        assert!(!MountAttr { set: libc::MOUNT_ATTR_RDONLY, ..Default::default() }.is_empty());
    }
}
