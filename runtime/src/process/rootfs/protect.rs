//! Masked and read-only paths, applied after the pivot (so `/` is the
//! container's and every path is read as the container reads it).
//!
//! A masked file gets `/dev/null` bound over it, a masked directory an empty
//! read-only tmpfs; a read-only path is bound onto itself and the new tree made
//! read-only. Missing paths are skipped.
//!
//! Every mount here is made by descriptor (`open_tree`, `fsmount`,
//! `move_mount`): after the pivot `/proc` is the container's, so no
//! `/proc/self/fd/N` path is used to name a descriptor.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::SFlag;

use super::{RootfsError, errno_of};
use crate::sys::inroot::open_in_root;
use crate::sys::mount::{MountAttr, attach_tree, clone_tree, mount_setattr, new_filesystem};

/// Opens the container's `/dev/null` and checks that it is the null device, so
/// that no file of the image (or a symlink to one) is what masks the paths.
pub(super) fn dev_null(root: BorrowedFd<'_>) -> Result<OwnedFd, RootfsError> {
    let path = Path::new("/dev/null");
    let fail = |errno| RootfsError::Masked { path: path.into(), errno };
    let fd = open_in_root(root, path, OFlag::O_PATH).map_err(|e| fail(errno_of(e)))?;
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(fail)?;
    let is_char = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
    if !is_char || st.st_rdev != nix::sys::stat::makedev(1, 3) {
        let found = if is_char {
            format!("device {}:{}", nix::sys::stat::major(st.st_rdev), nix::sys::stat::minor(st.st_rdev))
        } else {
            format!("file mode {:o}", st.st_mode)
        };
        return Err(RootfsError::NotDevNull { found });
    }
    Ok(fd)
}

pub(super) fn mask(root: BorrowedFd<'_>, path: &Path, null: &OwnedFd) -> Result<(), RootfsError> {
    let fail = |errno| RootfsError::Masked { path: path.into(), errno };
    let Some(target) = open_existing(root, path).map_err(fail)? else { return Ok(()) };
    let st = nix::sys::stat::fstat(target.as_raw_fd()).map_err(fail)?;
    let cover = if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
        // A directory: cover it with an empty read-only tmpfs.
        let attrs =
            libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOEXEC;
        new_filesystem(c"tmpfs", attrs)
    } else {
        clone_tree(null.as_fd(), false)
    };
    let cover = cover.map_err(|e| fail(errno_of(e)))?;
    attach_tree(cover.as_fd(), target.as_fd()).map_err(|e| fail(errno_of(e)))
}

pub(super) fn readonly(root: BorrowedFd<'_>, path: &Path) -> Result<(), RootfsError> {
    let fail = |errno| RootfsError::Readonly { path: path.into(), errno };
    let Some(target) = open_existing(root, path).map_err(fail)? else { return Ok(()) };
    // A read-only copy of the tree at the path, attached over it.
    let tree = clone_tree(target.as_fd(), true).map_err(|e| fail(errno_of(e)))?;
    let ro = MountAttr { set: libc::MOUNT_ATTR_RDONLY, ..MountAttr::default() };
    mount_setattr(tree.as_fd(), true, &ro).map_err(|e| fail(errno_of(e)))?;
    attach_tree(tree.as_fd(), target.as_fd()).map_err(|e| fail(errno_of(e)))
}

/// Opens `path` inside the root, `None` when it does not exist.
fn open_existing(root: BorrowedFd<'_>, path: &Path) -> Result<Option<OwnedFd>, Errno> {
    match open_in_root(root, path, OFlag::O_PATH) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(errno_of(e)),
    }
}
