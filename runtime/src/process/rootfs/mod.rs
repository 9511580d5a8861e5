//! PROVISIONAL: a minimal rootfs (bind + proc + tmpfs + pivot) so the lifecycle can
//! be exercised while the full mount implementation is written on its own branch.
//! The full module replaces this file when it lands.

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::plan::RootfsPlan;

#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct RootfsError {
    what: String,
    source: nix::Error,
}

impl RootfsError {
    pub fn errno(&self) -> Option<i32> {
        Some(self.source as i32)
    }
}

fn err(what: impl Into<String>) -> impl FnOnce(nix::Error) -> RootfsError {
    let what = what.into();
    move |source| RootfsError { what, source }
}

pub fn prepare(plan: &RootfsPlan) -> Result<OwnedFd, RootfsError> {
    let root = plan.rootfs();
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>)
        .map_err(err("make / rslave"))?;
    mount(Some(root), root, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .map_err(err("bind rootfs"))?;
    let _ = std::fs::create_dir_all(root.join("proc"));
    mount(Some("proc"), &root.join("proc"), Some("proc"), MsFlags::empty(), None::<&str>)
        .map_err(err("mount /proc"))?;
    let fd =
        nix::fcntl::open(root, nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
            .map_err(err("open rootfs"))?;
    // SAFETY: open returned a fresh descriptor that nothing else owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

pub fn enter(plan: &RootfsPlan) -> Result<(), RootfsError> {
    let root = plan.rootfs();
    nix::unistd::chdir(root).map_err(err("chdir rootfs"))?;
    nix::unistd::pivot_root(".", ".").map_err(err("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(err("detach old root"))?;
    nix::unistd::chdir(Path::new("/")).map_err(err("chdir /"))?;
    Ok(())
}
