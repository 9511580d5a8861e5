//! The rootfs plan: which mounts, devices, masked and read-only paths, in order.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use super::PlanError;

/// What the mount plan depends on besides the spec.
#[derive(Debug, Clone)]
pub struct MountContext {
    /// The bundle directory: relative bind-mount sources are read against it.
    pub bundle: PathBuf,
    pub new_user_ns: bool,
    pub new_cgroup_ns: bool,
    /// The container's cgroup (relative to each hierarchy's root).
    pub cgroup_path: PathBuf,
    /// `--no-pivot`: chroot instead of pivot_root.
    pub no_pivot: bool,
}

/// The rootfs plan.
#[derive(Debug, Clone)]
pub struct RootfsPlan {
    pub rootfs: PathBuf,
    pub readonly: bool,
    pub no_pivot: bool,
}

impl RootfsPlan {
    pub fn new(spec: &Spec, rootfs: PathBuf, ctx: &MountContext) -> Result<Self, PlanError> {
        let readonly = spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false);
        Ok(Self { rootfs, readonly, no_pivot: ctx.no_pivot })
    }

    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }
}
