//! One entry of `mounts`: its target made inside the rootfs, the mount, and the
//! `mount_setattr` calls that finish it.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;

use super::{RootfsError, cgroup, errno_of};
use crate::plan::RootfsPlan;
use crate::plan::mounts::options::attr_from_flags;
use crate::plan::mounts::{MountKind, MountPlan, SetAttr};
use crate::sys::inroot::{create_file_in_root, mkdir_all_in_root, open_in_root, proc_fd_path};
use crate::sys::mount::mount_setattr;

pub(super) fn mount(root: BorrowedFd<'_>, m: &MountPlan, plan: &RootfsPlan) -> Result<(), RootfsError> {
    let dest = m.destination.as_path();
    let fail =
        |step: Option<&'static str>| move |errno: Errno| RootfsError::Mount { destination: dest.into(), step, errno };
    match &m.kind {
        MountKind::Bind { source, recursive, source_is_dir } => {
            let target = target(root, dest, *source_is_dir).map_err(fail(Some("create target")))?;
            let flags = if *recursive { MsFlags::MS_BIND | MsFlags::MS_REC } else { MsFlags::MS_BIND };
            mount_on(Some(source.as_path()), &target, None, flags, None).map_err(|errno| match errno {
                Errno::ENOENT => RootfsError::SourceMissing { destination: dest.into(), source_path: source.clone() },
                errno => fail(None)(errno),
            })?;
        }
        MountKind::Filesystem { fstype, source } => {
            let target = target(root, dest, true).map_err(fail(Some("create target")))?;
            match mount_on(Some(source.as_path()), &target, Some(fstype), m.flags, m.data.as_deref()) {
                Ok(()) => {}
                // sysfs belongs to the network namespace; a user namespace without
                // its own cannot mount one. Bind the host's, as runc does.
                Err(Errno::EPERM) if fstype == "sysfs" && plan.user_ns => {
                    mount_on(Some(Path::new("/sys")), &target, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)
                        .map_err(fail(Some("bind /sys in place of sysfs")))?;
                    let attr = SetAttr { recursive: false, attr: attr_from_flags(m.flags, MsFlags::empty()) };
                    return finish(root, dest, std::iter::once(&attr).chain(&m.setattr));
                }
                Err(errno) => return Err(fail(None)(errno)),
            }
        }
        MountKind::Cgroup => return cgroup::mount(root, m, plan),
    }
    finish(root, dest, &m.setattr)
}

/// Applies `steps` to the mount now at `dest` (opened again: the target's
/// descriptor still points under the new mount).
pub(super) fn finish<'a>(
    root: BorrowedFd<'_>,
    dest: &Path,
    steps: impl IntoIterator<Item = &'a SetAttr>,
) -> Result<(), RootfsError> {
    let fail = |step: &'static str| {
        move |errno: Errno| RootfsError::Mount { destination: dest.into(), step: Some(step), errno }
    };
    let mut top: Option<OwnedFd> = None;
    for step in steps.into_iter().filter(|s| !s.attr.is_empty()) {
        let fd = match &top {
            Some(fd) => fd,
            None => top.insert(open_in_root(root, dest, OFlag::O_PATH).map_err(|e| fail("open")(errno_of(e)))?),
        };
        mount_setattr(fd.as_fd(), step.recursive, &step.attr).map_err(|e| fail("set mount attributes")(errno_of(e)))?;
    }
    Ok(())
}

/// Opens the mount target `dest` inside the rootfs, making it first if it is
/// missing: a directory, or an empty file when `dir` is false.
pub(super) fn target(root: BorrowedFd<'_>, dest: &Path, dir: bool) -> Result<OwnedFd, Errno> {
    if dir {
        return mkdir_all_in_root(root, dest, 0o755).map_err(errno_of);
    }
    match open_in_root(root, dest, OFlag::O_PATH) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => create_file_in_root(root, dest, 0o644).map_err(errno_of),
        other => other.map_err(errno_of),
    }
}

/// `mount(2)` onto an open target.
pub(super) fn mount_on(
    source: Option<&Path>,
    target: &OwnedFd,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> nix::Result<()> {
    nix::mount::mount(source, proc_fd_path(target).as_str(), fstype, flags, data)
}
