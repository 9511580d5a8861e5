//! One entry of `mounts`: its target made inside the rootfs, the mount, and the
//! `mount_setattr` calls that finish it.
//!
//! Every mount lands on the target's descriptor. A bind is a copy of its
//! source's mount ([`clone_tree`]) attached there; a source inside the rootfs is
//! resolved inside it, like a target, so a symlink of the image cannot turn it
//! into a host path. A filesystem is made detached with `fsopen(2)`, one
//! `fsconfig(2)` call per superblock flag and per data option (so the option a
//! filesystem refuses is named: `mounts[i].options`), then `fsmount(2)` with
//! the per-mount flags, and attached to the target's descriptor.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::SFlag;

use super::{RootfsError, cgroup, errno_of};
use crate::plan::RootfsPlan;
use crate::plan::mounts::options::{attr_from_flags, superblock_flags};
use crate::plan::mounts::{MountKind, MountPlan, SetAttr};
use crate::sys::inroot::{FileKind, create_file_in_root, mkdir_all_in_root, open_in_root};
use crate::sys::mount::{FsContext, ProcRoot, attach_tree, clone_tree, mount_setattr};

pub(super) fn mount(
    root: BorrowedFd<'_>,
    proc: &ProcRoot,
    m: &MountPlan,
    plan: &RootfsPlan,
) -> Result<(), RootfsError> {
    let dest = m.destination.as_path();
    let fail =
        |step: Option<&'static str>| move |errno: Errno| RootfsError::Mount { destination: dest.into(), step, errno };
    match &m.kind {
        MountKind::Bind { source, recursive, .. } => {
            let source_fd = open_source(root, plan.rootfs(), source).map_err(|errno| match errno {
                Errno::ENOENT => RootfsError::SourceMissing { destination: dest.into(), source_path: source.clone() },
                errno => fail(Some("open source"))(errno),
            })?;
            bind(root, dest, source_fd.as_fd(), *recursive, None)?;
        }
        MountKind::Filesystem { fstype, source } => {
            let target = target(root, dest, true).map_err(fail(Some("create target")))?;
            match new_filesystem(m, fstype, source) {
                Ok(tree) => attach_tree(tree.as_fd(), target.as_fd()).map_err(|e| fail(None)(errno_of(e)))?,
                // sysfs belongs to the network namespace; a user namespace without
                // its own cannot mount one. Bind the host's, as runc does.
                Err(RootfsError::Filesystem { errno: Errno::EPERM, .. }) if fstype == "sysfs" && plan.user_ns => {
                    let sys = open_host(Path::new("/sys")).map_err(fail(Some("bind /sys in place of sysfs")))?;
                    let tree = clone_tree(sys.as_fd(), true)
                        .map_err(|e| fail(Some("bind /sys in place of sysfs"))(errno_of(e)))?;
                    attach_tree(tree.as_fd(), target.as_fd())
                        .map_err(|e| fail(Some("bind /sys in place of sysfs"))(errno_of(e)))?;
                    let attr = SetAttr { recursive: false, attr: attr_from_flags(m.flags, MsFlags::empty()) };
                    return finish(root, dest, std::iter::once(&attr).chain(&m.setattr));
                }
                Err(e) => return Err(e),
            }
        }
        MountKind::Cgroup => return cgroup::mount(root, proc, m, plan),
    }
    finish(root, dest, &m.setattr)
}

/// A new filesystem for `m`, detached: configured as `mount(2)` would configure
/// it (superblock flags, the source, then each data option in order), so that
/// an option the filesystem refuses is named, with the filesystem's own reason.
fn new_filesystem(m: &MountPlan, fstype: &str, source: &Path) -> Result<OwnedFd, RootfsError> {
    let dest = m.destination.as_path();
    let fail = |step: Option<&'static str>, fs: Option<&FsContext>, e: std::io::Error| RootfsError::Filesystem {
        destination: dest.into(),
        fstype: fstype.to_owned(),
        step,
        errno: errno_of(e),
        detail: fs.and_then(FsContext::error_message),
    };
    let cstring = |s: &[u8]| CString::new(s).map_err(|_| Errno::EINVAL);
    let fs = FsContext::open(&cstring(fstype.as_bytes()).map_err(|e| fail(None, None, e.into()))?)
        .map_err(|e| fail(None, None, e))?;
    for flag in superblock_flags(m.flags) {
        let key = cstring(flag.as_bytes()).map_err(|e| fail(None, None, e.into()))?;
        fs.set_flag(&key).map_err(|e| fail(Some(flag), Some(&fs), e))?;
    }
    let value = cstring(source.as_os_str().as_bytes()).map_err(|e| fail(Some("source"), None, e.into()))?;
    fs.set_string(c"source", &value).map_err(|e| fail(Some("source"), Some(&fs), e))?;
    for option in &m.data {
        let refused = |e: std::io::Error| RootfsError::Option {
            index: m.index,
            option: option.clone(),
            fstype: fstype.to_owned(),
            destination: dest.into(),
            errno: errno_of(e),
            detail: fs.error_message(),
        };
        let set = match option.split_once('=') {
            Some((key, value)) => cstring(key.as_bytes())
                .and_then(|key| Ok((key, cstring(value.as_bytes())?)))
                .map_err(std::io::Error::from)
                .and_then(|(key, value)| fs.set_string(&key, &value)),
            None => cstring(option.as_bytes()).map_err(std::io::Error::from).and_then(|key| fs.set_flag(&key)),
        };
        set.map_err(refused)?;
    }
    fs.create().map_err(|e| fail(None, Some(&fs), e))?;
    fs.mount(attr_from_flags(m.flags, MsFlags::empty()).set).map_err(|e| fail(None, Some(&fs), e))
}

/// Binds the file or directory `source` is open on onto `dest` inside the
/// rootfs (made as a directory or an empty file to match the source), by
/// descriptor. `step` names the step in errors (`None`: the mount itself).
pub(super) fn bind(
    root: BorrowedFd<'_>,
    dest: &Path,
    source: BorrowedFd<'_>,
    recursive: bool,
    step: Option<&'static str>,
) -> Result<(), RootfsError> {
    let fail =
        |step: Option<&'static str>| move |errno: Errno| RootfsError::Mount { destination: dest.into(), step, errno };
    let kind = FileKind::of(source).map_err(|e| fail(Some("look at the source"))(errno_of(e)))?;
    let tree = clone_tree(source, recursive).map_err(|e| fail(step)(errno_of(e)))?;
    let target = target(root, dest, kind.file_type() == SFlag::S_IFDIR).map_err(fail(Some("create target")))?;
    attach_tree(tree.as_fd(), target.as_fd()).map_err(|e| fail(step)(errno_of(e)))
}

/// Opens a bind mount's `source` (an absolute path of the host) `O_PATH`. A
/// source inside the rootfs is resolved inside it, as a path of the container
/// (no symlink leads out); any other is the host's, as the bundle names it.
fn open_source(root: BorrowedFd<'_>, rootfs: &Path, source: &Path) -> Result<OwnedFd, Errno> {
    match source.strip_prefix(rootfs) {
        Ok(inside) => open_in_root(root, inside, OFlag::O_PATH).map_err(errno_of),
        Err(_) => open_host(source),
    }
}

/// Opens a path of the host `O_PATH` (following symlinks, as `mount(2)` does
/// with a source).
pub(super) fn open_host(path: &Path) -> Result<OwnedFd, Errno> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(path)
        .map(OwnedFd::from)
        .map_err(errno_of)
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
