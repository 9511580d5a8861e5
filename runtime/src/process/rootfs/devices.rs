//! Device nodes and the `/dev` symlinks.
//!
//! A node is made with `mknodat` on its parent directory, opened inside the
//! rootfs, so it cannot land outside it; a node already there is kept. Where
//! `mknod` is not allowed (a user namespace) the host's node of the same path is
//! bound onto an empty file instead, as runc does.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid};

use super::mounts::open_host;
use super::{RootfsError, errno_of};
use crate::plan::RootfsPlan;
use crate::plan::mounts::{DeviceKind, DevicePlan};
use crate::sys::inroot::{create_file_in_root, mkdir_all_in_root, split_parent};
use crate::sys::mount::{attach_tree, clone_tree};

/// `/dev` entries every container gets: (link target, name under /dev).
const SYMLINKS: [(&str, &str); 4] = [
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
];

/// Makes the plan's devices, then the `/dev` symlinks and `/dev/ptmx`.
pub(super) fn create(root: BorrowedFd<'_>, plan: &RootfsPlan) -> Result<(), RootfsError> {
    // The last parent directory opened: all default devices share /dev.
    let mut parent: Option<(PathBuf, OwnedFd)> = None;
    // A node's mode is the plan's, not the plan's less the umask.
    let umask = (!plan.user_ns).then(|| nix::sys::stat::umask(Mode::empty()));
    let made = plan.devices.iter().try_for_each(|d| create_one(root, d, plan.user_ns, &mut parent));
    if let Some(umask) = umask {
        nix::sys::stat::umask(umask);
    }
    made?;

    let dev = Path::new("/dev");
    let dev_fd = match parent.take() {
        Some((path, fd)) if path == dev => fd,
        _ => mkdir_all_in_root(root, dev, 0o755).map_err(|e| RootfsError::Device {
            path: dev.into(),
            step: Some("create"),
            errno: errno_of(e),
        })?,
    };
    let symlink = |target: &str, name: &str| nix::unistd::symlinkat(target, Some(dev_fd.as_raw_fd()), name);
    for (target, name) in SYMLINKS {
        match symlink(target, name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(errno) => return Err(RootfsError::Symlink { path: dev.join(name), errno }),
        }
    }
    // /dev/ptmx must be the devpts instance's, whatever the image put there.
    let ptmx = |errno| RootfsError::Symlink { path: dev.join("ptmx"), errno };
    match symlink("pts/ptmx", "ptmx") {
        Ok(()) => {}
        Err(Errno::EEXIST) => {
            nix::unistd::unlinkat(Some(dev_fd.as_raw_fd()), "ptmx", nix::unistd::UnlinkatFlags::NoRemoveDir)
                .map_err(ptmx)?;
            symlink("pts/ptmx", "ptmx").map_err(ptmx)?;
        }
        Err(errno) => return Err(ptmx(errno)),
    }
    Ok(())
}

fn create_one(
    root: BorrowedFd<'_>,
    d: &DevicePlan,
    user_ns: bool,
    parent: &mut Option<(PathBuf, OwnedFd)>,
) -> Result<(), RootfsError> {
    let fail =
        |step: Option<&'static str>| move |errno: Errno| RootfsError::Device { path: d.path.clone(), step, errno };
    if user_ns {
        return bind_from_host(root, d);
    }
    let (dir_path, name) = split_parent(&d.path).map_err(|e| fail(None)(errno_of(e)))?;
    let dir = match parent.take() {
        Some((path, fd)) if path == dir_path => fd,
        _ => mkdir_all_in_root(root, dir_path, 0o755).map_err(|e| fail(Some("create parent"))(errno_of(e)))?,
    };
    let dir = &parent.insert((dir_path.to_path_buf(), dir)).1;
    let kind = match d.kind {
        DeviceKind::Char => SFlag::S_IFCHR,
        DeviceKind::Block => SFlag::S_IFBLK,
        DeviceKind::Fifo => SFlag::S_IFIFO,
    };
    let dev = nix::sys::stat::makedev(d.major, d.minor);
    match nix::sys::stat::mknodat(Some(dir.as_raw_fd()), name, kind, Mode::from_bits_truncate(d.mode), dev) {
        Ok(()) => {}
        // Keep what the image (or an earlier mount) put there.
        Err(Errno::EEXIST) => return Ok(()),
        Err(Errno::EPERM) => return bind_from_host(root, d),
        Err(errno) => return Err(fail(None)(errno)),
    }
    if d.uid != 0 || d.gid != 0 {
        nix::unistd::fchownat(
            Some(dir.as_raw_fd()),
            name,
            Some(Uid::from_raw(d.uid)),
            Some(Gid::from_raw(d.gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(fail(Some("chown")))?;
    }
    Ok(())
}

/// Binds the host's node at the device's path onto an empty file in the rootfs,
/// by descriptor (the node is a path of the host: this runs before the pivot).
fn bind_from_host(root: BorrowedFd<'_>, d: &DevicePlan) -> Result<(), RootfsError> {
    let fail =
        |step: &'static str| move |errno: Errno| RootfsError::Device { path: d.path.clone(), step: Some(step), errno };
    let source = open_host(&d.path).map_err(fail("bind from the host"))?;
    let tree = clone_tree(source.as_fd(), false).map_err(|e| fail("bind from the host")(errno_of(e)))?;
    let target = create_file_in_root(root, &d.path, 0o644).map_err(|e| fail("create target")(errno_of(e)))?;
    attach_tree(tree.as_fd(), target.as_fd()).map_err(|e| fail("bind from the host")(errno_of(e)))
}
