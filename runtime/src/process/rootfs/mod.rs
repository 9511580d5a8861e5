//! The container's root filesystem, built in its init.
//!
//! The init (already in its new mount namespace, root there, single-threaded)
//! calls two functions around the executor's `prepare`:
//!
//! 1. [`prepare`], before the pivot, while the host's paths are still reachable:
//!    the whole tree gets the rootfs propagation (`rslave` unless the spec says
//!    otherwise), the rootfs is bound onto itself so it is a mount point whose
//!    parent is not shared, the spec's `mounts` are made in order, then the
//!    default and `linux.devices` nodes and the `/dev` symlinks. Every target is
//!    made and opened *inside* the rootfs ([`crate::sys::inroot`]): a symlink in
//!    the rootfs is read as the container will read it and can never lead a
//!    mkdir, mknod or mount out of it. Mounts land on the `O_PATH` descriptor of
//!    their target, never on a path that is looked up again: a bind is a copy of
//!    its source's mount attached there (`open_tree`, `move_mount`); a filesystem
//!    is made detached (`fsopen`, one `fsconfig` per flag and data option, so the
//!    option a filesystem refuses is named, `fsmount`) and attached the same way;
//!    the v1 cgroup hierarchies are mounted on `self/fd/N` of the host's procfs,
//!    opened and checked (`fstatfs`) before anything of the container is touched.
//! 2. [`enter`] = [`pivot`] then [`seal`]: `pivot_root` (or `MS_MOVE` + `chroot`
//!    with `--no-pivot`), the old root detached, then the read-only paths, the
//!    masked paths and, last, a read-only `/` if `root.readonly`. An init that
//!    writes `linux.sysctl` must do so between the two halves, since `/proc/sys`
//!    is usually a read-only path. These mounts are made by descriptor alone:
//!    the container's `/proc` is never trusted to name a descriptor.
//!
//! Mount flags are changed with `mount_setattr(2)`, which sets and clears only
//! the attributes named: a read-only bind in a user namespace keeps the
//! `nosuid`/`nodev`/`noexec`/atime flags the kernel locked on its source without
//! reading them first. The hot path reads no mountinfo: only a `cgroup` mount on
//! a v1 or hybrid host does (its hierarchies are the host's).
//!
//! A container without a mount namespace of its own (none in
//! `linux.namespaces`, [`crate::plan::mounts::inherited`]) lives in the
//! runtime's: [`prepare`] mounts nothing and only opens the rootfs, and
//! [`pivot`] enters it with `chroot` through that descriptor (`fchdir` to it,
//! `chroot(".")`), never `pivot_root`, which would move the root of every
//! process in the namespace. The plan has no mounts, devices, masked or
//! read-only paths then, so nothing is left in the host's mount table.
//!
//! A failure is one [`RootfsError`]: one line naming the mount destination or
//! path, the step and the errno.

mod cgroup;
mod devices;
mod mounts;
mod protect;
#[cfg(test)]
mod tests;

use std::fs::OpenOptions;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

use crate::plan::RootfsPlan;
use crate::sys::mount::{MountAttr, ProcRoot, mount_setattr};

/// Why the rootfs could not be built or entered.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// A step on the rootfs itself (propagation, the self-bind, the pivot...).
    #[error("rootfs {}: {step}: {}", .path.display(), cause(*.errno))]
    Rootfs { path: PathBuf, step: &'static str, errno: Errno },
    /// One entry of `mounts`; `step` is `None` for the mount call itself.
    #[error("mount {}: {}{}", .destination.display(), prefix(*.step), cause(*.errno))]
    Mount { destination: PathBuf, step: Option<&'static str>, errno: Errno },
    #[error("mount {}: source {} does not exist", .destination.display(), .source_path.display())]
    SourceMissing { destination: PathBuf, source_path: PathBuf },
    /// A new filesystem could not be made; `detail` is the filesystem's own
    /// reason when it logged one.
    #[error("mount {}: {fstype}: {}{}{}", .destination.display(), prefix(*.step), cause(*.errno), detail_of(.detail))]
    Filesystem {
        destination: PathBuf,
        fstype: String,
        step: Option<&'static str>,
        errno: Errno,
        detail: Option<String>,
    },
    /// The filesystem refused one of the options it was given as data.
    #[error(
        "mounts[{index}].options: {option:?} refused by {fstype} at {}: {}{}",
        .destination.display(), cause(*.errno), detail_of(.detail)
    )]
    Option { index: usize, option: String, fstype: String, destination: PathBuf, errno: Errno, detail: Option<String> },
    /// The host's cgroup hierarchies could not be found or read.
    #[error("mount {}: {reason}", .destination.display())]
    Cgroup { destination: PathBuf, reason: String, errno: Option<Errno> },
    #[error("device {}: {}{}", .path.display(), prefix(*.step), cause(*.errno))]
    Device { path: PathBuf, step: Option<&'static str>, errno: Errno },
    #[error("symlink {}: {}", .path.display(), cause(*.errno))]
    Symlink { path: PathBuf, errno: Errno },
    #[error("masked path {}: {}", .path.display(), cause(*.errno))]
    Masked { path: PathBuf, errno: Errno },
    #[error("read-only path {}: {}", .path.display(), cause(*.errno))]
    Readonly { path: PathBuf, errno: Errno },
    /// The container's `/dev/null`, bound over masked files, is something else.
    #[error("masked paths: /dev/null is not the null device ({found})")]
    NotDevNull { found: String },
}

impl RootfsError {
    /// The errno behind the failure, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Rootfs { errno, .. }
            | Self::Mount { errno, .. }
            | Self::Filesystem { errno, .. }
            | Self::Option { errno, .. }
            | Self::Device { errno, .. }
            | Self::Symlink { errno, .. }
            | Self::Masked { errno, .. }
            | Self::Readonly { errno, .. } => Some(*errno as i32),
            Self::SourceMissing { .. } => Some(libc::ENOENT),
            Self::Cgroup { errno, .. } => errno.map(|e| e as i32),
            Self::NotDevNull { .. } => None,
        }
    }
}

/// The errno's text as the rest of amphi's messages read: lowercase.
fn cause(errno: Errno) -> String {
    let desc = errno.desc();
    let mut chars = desc.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("errno {}", errno as i32),
    }
}

fn prefix(step: Option<&'static str>) -> String {
    step.map(|s| format!("{s}: ")).unwrap_or_default()
}

/// A filesystem's own reason, in parentheses after the errno, on one line.
fn detail_of(detail: &Option<String>) -> String {
    detail.as_deref().map(|d| format!(" ({})", d.replace('\n', " "))).unwrap_or_default()
}

/// The errno of an `io::Error` from the `sys` wrappers.
fn errno_of(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EINVAL))
}

/// Builds the container's rootfs before the pivot (see the module docs) and
/// returns it opened `O_PATH`, so the executor can open the entrypoint inside it.
pub fn prepare(plan: &RootfsPlan) -> Result<OwnedFd, RootfsError> {
    let rootfs = plan.rootfs();
    let fail = |step: &'static str| move |errno: Errno| RootfsError::Rootfs { path: rootfs.into(), step, errno };
    if plan.inherits_mount_ns {
        // The host's mount namespace: nothing may be mounted in it.
        return open_dir(rootfs).map_err(fail("open"));
    }
    // Before the first path of the container is looked at.
    let proc = ProcRoot::open(Path::new("/proc")).map_err(|e| RootfsError::Rootfs {
        path: "/proc".into(),
        step: "open the host's procfs",
        errno: errno_of(e),
    })?;

    mount_flags(Path::new("/"), plan.propagation).map_err(fail("set the propagation of /"))?;
    if !plan.nothing_shared() {
        // pivot_root refuses a shared parent of the new root (and a shared
        // current root); a recursive slave or private tree has none.
        make_parent_private(rootfs).map_err(fail("make its parent mount private"))?;
        if plan.propagation.contains(MsFlags::MS_SHARED) {
            mount_flags(Path::new("/"), MsFlags::MS_PRIVATE).map_err(fail("make / private"))?;
        }
    }
    nix::mount::mount(Some(rootfs), rootfs, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .map_err(fail("bind onto itself"))?;
    let root = open_dir(rootfs).map_err(fail("open"))?;

    for m in &plan.mounts {
        mounts::mount(root.as_fd(), &proc, m, plan)?;
    }
    if plan.setup_dev {
        devices::create(root.as_fd(), plan)?;
        if plan.dev_readonly {
            let dev = Path::new("/dev");
            let fail = |errno| RootfsError::Mount { destination: dev.into(), step: Some("make read-only"), errno };
            let fd = crate::sys::inroot::open_in_root(root.as_fd(), dev, nix::fcntl::OFlag::O_PATH)
                .map_err(|e| fail(errno_of(e)))?;
            let ro = MountAttr { set: libc::MOUNT_ATTR_RDONLY, ..MountAttr::default() };
            mount_setattr(fd.as_fd(), false, &ro).map_err(|e| fail(errno_of(e)))?;
        }
    }
    Ok(root)
}

/// Moves the process into the prepared rootfs and protects it: [`pivot`], then
/// [`seal`].
#[cfg(test)]
pub fn enter(plan: &RootfsPlan) -> Result<(), RootfsError> {
    pivot(plan)?;
    seal(plan)
}

/// Makes the prepared rootfs the process's `/`: `pivot_root(".", ".")` and a
/// lazy unmount of the old root stacked on it, or with `--no-pivot` a move of the
/// rootfs onto `/` and a `chroot`, or in the runtime's own mount namespace a
/// `chroot` alone. Leaves the cwd at `/` and applies `linux.rootfsPropagation`
/// to the new `/`.
pub fn pivot(plan: &RootfsPlan) -> Result<(), RootfsError> {
    let rootfs = plan.rootfs();
    let fail = |step: &'static str| move |errno: Errno| RootfsError::Rootfs { path: rootfs.into(), step, errno };
    let new_root = open_dir(rootfs).map_err(fail("open"))?;
    nix::unistd::fchdir(new_root.as_raw_fd()).map_err(fail("chdir"))?;
    drop(new_root);
    if plan.inherits_mount_ns {
        // No mount and no pivot in the host's namespace: the directory the
        // descriptor named becomes the root, whatever its path leads to now.
        nix::unistd::chroot(".").map_err(fail("chroot"))?;
    } else if plan.no_pivot {
        nix::mount::mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>).map_err(fail("move onto /"))?;
        nix::unistd::chroot(".").map_err(fail("chroot"))?;
    } else {
        nix::unistd::pivot_root(".", ".").map_err(fail("pivot_root"))?;
        // The old root now sits on top of the new one, at ".". Unless the tree is
        // already a recursive slave (the default), make it one so that detaching
        // it cannot propagate unmounts to the host.
        if !plan.nothing_shared() {
            mount_flags(Path::new("."), MsFlags::MS_SLAVE | MsFlags::MS_REC)
                .map_err(fail("make the old root a slave"))?;
        }
        nix::mount::umount2(".", MntFlags::MNT_DETACH).map_err(fail("detach the old root"))?;
    }
    nix::unistd::chdir("/").map_err(fail("chdir /"))?;
    if let Some(propagation) = plan.root_propagation {
        mount_flags(Path::new("/"), propagation).map_err(fail("set the propagation of the new /"))?;
    }
    Ok(())
}

/// After [`pivot`]: the read-only paths, the masked paths, then `/` read-only
/// if `root.readonly`.
pub fn seal(plan: &RootfsPlan) -> Result<(), RootfsError> {
    let fail = |step: &'static str| move |errno: Errno| RootfsError::Rootfs { path: "/".into(), step, errno };
    if plan.readonly_paths.is_empty() && plan.masked_paths.is_empty() && !plan.readonly {
        return Ok(());
    }
    let root = open_dir(Path::new("/")).map_err(fail("open"))?;
    for path in &plan.readonly_paths {
        protect::readonly(root.as_fd(), path)?;
    }
    if !plan.masked_paths.is_empty() {
        let null = protect::dev_null(root.as_fd())?;
        for path in &plan.masked_paths {
            protect::mask(root.as_fd(), path, &null)?;
        }
    }
    if plan.readonly {
        // Not recursive: /proc, /dev and the spec's mounts keep their own flags.
        let ro = MountAttr { set: libc::MOUNT_ATTR_RDONLY, ..MountAttr::default() };
        mount_setattr(root.as_fd(), false, &ro).map_err(|e| fail("make read-only")(errno_of(e)))?;
    }
    Ok(())
}

/// Changes the propagation (or other flags without a source) of the mount at `path`.
fn mount_flags(path: &Path, flags: MsFlags) -> nix::Result<()> {
    nix::mount::mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
}

/// Makes the mount that holds `path` private: the first of `path` and its
/// ancestors that is a mount point (EINVAL says it is not one).
fn make_parent_private(path: &Path) -> nix::Result<()> {
    let mut path = path;
    loop {
        match mount_flags(path, MsFlags::MS_PRIVATE) {
            Err(Errno::EINVAL) if path != Path::new("/") => path = path.parent().unwrap_or(Path::new("/")),
            other => return other,
        }
    }
}

/// Opens a directory `O_PATH` (with `O_CLOEXEC`).
fn open_dir(path: &Path) -> nix::Result<OwnedFd> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(path)
        .map(OwnedFd::from)
        .map_err(errno_of)
}

#[cfg(test)]
mod error_tests {
    use super::*;

    #[test]
    fn messages_are_one_lowercase_line_naming_the_destination() {
        let e = RootfsError::Mount { destination: "/proc".into(), step: None, errno: Errno::EPERM };
        assert_eq!(e.to_string(), "mount /proc: operation not permitted");
        assert_eq!(e.errno(), Some(libc::EPERM));
        let e = RootfsError::SourceMissing { destination: "/data".into(), source_path: "/nonexistent/src".into() };
        assert_eq!(e.to_string(), "mount /data: source /nonexistent/src does not exist");
        assert_eq!(e.errno(), Some(libc::ENOENT));
        let e = RootfsError::Option {
            index: 3,
            option: "nr_inodes=lots".into(),
            fstype: "tmpfs".into(),
            destination: "/mnt".into(),
            errno: Errno::EINVAL,
            detail: Some("tmpfs: Bad value for 'nr_inodes'".into()),
        };
        assert_eq!(
            e.to_string(),
            r#"mounts[3].options: "nr_inodes=lots" refused by tmpfs at /mnt: invalid argument (tmpfs: Bad value for 'nr_inodes')"#
        );
        assert_eq!(e.errno(), Some(libc::EINVAL));
        let e = RootfsError::Filesystem {
            destination: "/o".into(),
            fstype: "overlay".into(),
            step: None,
            errno: Errno::EINVAL,
            detail: None,
        };
        assert_eq!(e.to_string(), "mount /o: overlay: invalid argument");
        let e = RootfsError::Mount { destination: "/x".into(), step: Some("create target"), errno: Errno::ENOENT };
        assert_eq!(e.to_string(), "mount /x: create target: no such file or directory");
        let e = RootfsError::Rootfs { path: "/r".into(), step: "pivot_root", errno: Errno::EINVAL };
        assert_eq!(e.to_string(), "rootfs /r: pivot_root: invalid argument");
        let e = RootfsError::NotDevNull { found: "a regular file".into() };
        assert_eq!(e.errno(), None);
    }
}
