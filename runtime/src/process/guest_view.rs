//! The guest's view: the container's files without any procfs, for a workload
//! that runs inside this very process (wasm).
//!
//! A wasm guest runs in the container's process itself, so `/proc/self` (and
//! `/proc/<pid>`, `/proc/thread-self`, `/dev/fd`, every thread's entry) would
//! be the runtime's own entries: `mem` (write it and run native code in the
//! process), `environ`, `cmdline`, `fd`, `exe`. The kernel always lets a
//! process open its own entries, whatever its dumpable flag or capabilities,
//! so they are taken out of reach instead: before any of the guest's files is
//! opened, the process moves to a private copy of the container's mount
//! namespace (mounts still propagate into it from the container's, never the
//! other way) and detaches every procfs mount from that copy: `/proc`, and a
//! procfs bound or mounted anywhere else, found in the kernel's own mount list.
//! The list is read again afterwards: a procfs left in the view fails `create`.
//!
//! The container itself keeps its view: the process holds a descriptor of the
//! container's mount namespace, opened before `pivot_root` from the host's
//! `/proc`, and a process exec'd into the container joins that namespace
//! through it ([`crate::container`]'s exec), so native tools still see `/proc`.
//! The guest's view lives as long as the process.
//!
//! What the guest no longer sees: `/proc` of any process, its own included.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;

use super::{Stage, StageFailure};
use crate::sys::inroot;
use crate::sys::procfs;

/// Opens this process's mount namespace through the host's `/proc`: call it
/// before `pivot_root`, when `/proc` is still the host's.
pub(crate) fn open_container_view(stage: Stage) -> Result<OwnedFd, StageFailure> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/proc/self/ns/mnt")
        .map(OwnedFd::from)
        .map_err(|e| StageFailure::new(stage, "guest view", e.raw_os_error(), format!("open the mount namespace: {e}")))
}

/// Moves this process into the guest's view (see the module docs). Runs after
/// `pivot_root` and the read-only and masked paths, while the process still
/// has its capabilities. A container without a mount namespace of its own runs
/// it before its `chroot`, at the root of the runtime's namespace: the view is
/// a slave copy of that one, without any procfs, and the chroot is made in it.
pub(crate) fn enter(stage: Stage) -> Result<(), StageFailure> {
    let fail = |what: &str, errno: Option<i32>, cause: String| {
        StageFailure::new(stage, "guest view", errno, format!("hide /proc from the wasm guest: {what}: {cause}"))
    };
    nix::sched::unshare(CloneFlags::CLONE_NEWNS)
        .map_err(|e| fail("unshare the mount namespace", Some(e as i32), e.desc().to_lowercase()))?;
    nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>)
        .map_err(|e| fail("make the view a slave", Some(e as i32), e.desc().to_lowercase()))?;
    let proc = trusted_procfs()
        .map_err(|e| fail("find a procfs to read the mount list", e.raw_os_error(), crate::sys::errno_text(&e)))?;
    let mounts =
        procfs_mounts(&proc).map_err(|e| fail("read the mount list", e.raw_os_error(), crate::sys::errno_text(&e)))?;
    for mount_point in outermost(&mounts) {
        nix::mount::umount2(mount_point, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW)
            .map_err(|e| fail(&format!("detach {}", mount_point.display()), Some(e as i32), e.desc().to_lowercase()))?;
    }
    let left =
        procfs_mounts(&proc).map_err(|e| fail("read the mount list", e.raw_os_error(), crate::sys::errno_text(&e)))?;
    if let Some(first) = left.first() {
        return Err(fail("check", None, format!("a procfs is still mounted at {}", first.display())));
    }
    Ok(())
}

/// A procfs of this process's pid namespace: the container's `/proc` when it is
/// one (checked on the descriptor), else a private instance mounted nowhere.
fn trusted_procfs() -> std::io::Result<OwnedFd> {
    let root = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_PATH | libc::O_DIRECTORY).open("/")?;
    if let Ok(proc) = inroot::open_in_root(root.as_fd(), Path::new("/proc"), OFlag::O_PATH | OFlag::O_DIRECTORY)
        && procfs::is_procfs(&proc)?
        && open_mountinfo(&proc).is_ok()
    {
        return Ok(proc);
    }
    procfs::detached_instance()
}

fn open_mountinfo(proc: &OwnedFd) -> std::io::Result<std::fs::File> {
    // `thread-self` is procfs's own symlink to this thread's directory, within
    // the same mount; no magic link and no other mount is crossed.
    let resolve = libc::RESOLVE_NO_XDEV | libc::RESOLVE_NO_MAGICLINKS | libc::RESOLVE_BENEATH;
    inroot::openat2(proc.as_fd(), Path::new("thread-self/mountinfo"), OFlag::O_RDONLY, Mode::empty(), resolve)
        .map(std::fs::File::from)
}

/// The mount points of every procfs mount in this process's view, as the
/// kernel lists them (relative to the process's root).
fn procfs_mounts(proc: &OwnedFd) -> std::io::Result<Vec<PathBuf>> {
    use std::io::Read;
    let mut text = String::new();
    open_mountinfo(proc)?.read_to_string(&mut text)?;
    Ok(crate::mountinfo::parse(&text).filter(|m| m.fs_type == "proc").map(|m| m.mount_point).collect())
}

/// The mount points not below another one of the list: detaching those
/// detaches the rest with them.
fn outermost(points: &[PathBuf]) -> Vec<&Path> {
    let mut out: Vec<&Path> = Vec::new();
    let mut sorted: Vec<&Path> = points.iter().map(PathBuf::as_path).collect();
    sorted.sort_by_key(|p| p.components().count());
    for point in sorted {
        if point != Path::new("/") && !out.iter().any(|outer| point.starts_with(outer)) {
            out.push(point);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_outermost_procfs_mounts_are_detached() {
        let points: Vec<PathBuf> = ["/proc/sys", "/proc", "/host/proc", "/proc/sys/fs/binfmt_misc", "/procfs2"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let mut got = outermost(&points);
        got.sort();
        assert_eq!(got, vec![Path::new("/host/proc"), Path::new("/proc"), Path::new("/procfs2")]);
    }

    #[test]
    fn the_root_is_never_detached() {
        let points = vec![PathBuf::from("/"), PathBuf::from("/proc")];
        assert_eq!(outermost(&points), vec![Path::new("/proc")]);
    }
}
