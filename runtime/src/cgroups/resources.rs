//! `linux.resources` onto the cgroup files, and statistics back, through
//! `libcgroups`' v1 and v2 managers; plus the two things a new cgroup needs before
//! any value can be written: a v1 cpuset that is not empty, and the v2 controllers
//! enabled in its parents.

use std::fs;
use std::path::Path;

use libcgroups::common::{AnyManagerError, CgroupManager, ControllerOpt, WrappedIoError};
use oci_spec::runtime::LinuxResources;

use super::{Cgroup, CgroupError, Layout, devices, write_file};

/// Why resources are applied: a new cgroup gets a device filter even without
/// rules (the defaults only); an update without rules keeps the filter it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Create,
    Update,
}

/// Applies `resources` to an existing cgroup.
pub fn apply(cgroup: &Cgroup, resources: &LinuxResources, purpose: Purpose) -> Result<(), CgroupError> {
    let opt = ControllerOpt {
        resources,
        disable_oom_killer: resources.memory().as_ref().and_then(|m| m.disable_oom_killer()).unwrap_or(false),
        // The process's oom_score_adj is set on the process, not here.
        oom_score_adj: None,
        freezer_state: None,
    };
    let failed = |source: AnyManagerError| CgroupError::Resources { cgroup: cgroup.path.clone(), source };
    match (cgroup.layout, &cgroup.hierarchies.unified) {
        (Layout::V2, Some(root)) => {
            let manager = libcgroups::v2::manager::Manager::new(root.clone(), cgroup.path.clone())
                .map_err(|e| failed(e.into()))?;
            manager.apply(&opt).map_err(|e| failed(e.into()))?;
            if purpose == Purpose::Update && resources.devices().is_none() {
                return Ok(());
            }
            devices::apply(&root.join(cgroup.relative()), resources.devices().as_deref())
                .map_err(|source| CgroupError::Devices { cgroup: cgroup.path.clone(), source })
        }
        _ => {
            if resources.unified().as_ref().is_some_and(|u| !u.is_empty()) {
                return Err(CgroupError::UnifiedNeedsV2 { cgroup: cgroup.path.clone(), layout: cgroup.layout });
            }
            if only_devices(resources) {
                return apply_v1_devices(cgroup, resources);
            }
            let manager = libcgroups::v1::manager::Manager::new(&cgroup.path).map_err(|e| failed(e.into()))?;
            manager.apply(&opt).map_err(|e| failed(e.into()))
        }
    }
}

/// Whether `resources` sets nothing but device rules, as the default spec and
/// `ctr run`'s do.
fn only_devices(resources: &LinuxResources) -> bool {
    resources.memory().is_none()
        && resources.cpu().is_none()
        && resources.pids().is_none()
        && resources.block_io().is_none()
        && resources.hugepage_limits().as_ref().is_none_or(|limits| limits.is_empty())
        && resources.network().is_none()
        && resources.rdma().as_ref().is_none_or(|rdma| rdma.is_empty())
        && resources.unified().as_ref().is_none_or(|unified| unified.is_empty())
}

/// The v1 device rules, written as `libcgroups`' v1 devices controller writes
/// them (the spec's rules in order, then the same defaults), without building
/// its v1 manager: that reads `mountinfo` and `/proc/self/cgroup` once per controller,
/// about a millisecond of every `create` on this kind of host, for the one
/// controller the rules need.
fn apply_v1_devices(cgroup: &Cgroup, resources: &LinuxResources) -> Result<(), CgroupError> {
    let hierarchy = cgroup
        .hierarchies
        .v1_with("devices")
        .ok_or_else(|| CgroupError::NoDevicesController { cgroup: cgroup.path.clone() })?;
    let dir = hierarchy.mount.join(cgroup.relative());
    let lines = devices::v1_lines(resources.devices().as_deref())
        .map_err(|source| CgroupError::Devices { cgroup: cgroup.path.clone(), source })?;
    for (allow, line) in lines {
        write_file(&dir.join(if allow { "devices.allow" } else { "devices.deny" }), &line)?;
    }
    Ok(())
}

/// Reads the cgroup's statistics.
pub fn stats(cgroup: &Cgroup) -> Result<libcgroups::stats::Stats, CgroupError> {
    let failed = |source: AnyManagerError| CgroupError::Stats { cgroup: cgroup.path.clone(), source };
    match (cgroup.layout, &cgroup.hierarchies.unified) {
        (Layout::V2, Some(root)) => libcgroups::v2::manager::Manager::new(root.clone(), cgroup.path.clone())
            .map_err(|e| failed(e.into()))?
            .stats()
            .map_err(|e| failed(e.into())),
        _ => libcgroups::v1::manager::Manager::new(&cgroup.path)
            .map_err(|e| failed(e.into()))?
            .stats()
            .map_err(|e| failed(e.into())),
    }
}

/// A v1 cpuset cgroup starts with empty `cpuset.cpus` and `cpuset.mems`, and
/// neither a process nor a child can join it until they are set: copy the
/// parent's values into any that is empty (the parent was seen to first).
pub fn inherit_cpuset(dir: &Path) -> Result<(), CgroupError> {
    let Some(parent) = dir.parent() else { return Ok(()) };
    for name in ["cpuset.cpus", "cpuset.mems"] {
        let file = dir.join(name);
        let value = fs::read_to_string(&file).map_err(CgroupError::io("read", &file))?;
        if value.trim().is_empty() {
            let from = parent.join(name);
            let inherited = fs::read_to_string(&from).map_err(CgroupError::io("read", &from))?;
            write_file(&file, inherited.trim())?;
        }
    }
    Ok(())
}

/// Enables in `dir`'s `cgroup.subtree_control` every controller `dir` has that is
/// not enabled yet, so that its children can be limited (as runc does). Best
/// effort per controller: one that cannot be enabled (a threaded subtree, a
/// controller busy elsewhere) only fails the limit that needs it, with the name
/// of the missing file.
pub fn enable_controllers(dir: &Path) -> Result<(), CgroupError> {
    let available = dir.join("cgroup.controllers");
    let enabled = dir.join("cgroup.subtree_control");
    let available = fs::read_to_string(&available).map_err(CgroupError::io("read", &available))?;
    let enabled_now = fs::read_to_string(&enabled).map_err(CgroupError::io("read", &enabled))?;
    let missing: Vec<String> = available
        .split_whitespace()
        .filter(|c| !enabled_now.split_whitespace().any(|e| e == *c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() || write_file(&enabled, &missing.join(" ")).is_ok() {
        return Ok(());
    }
    for controller in &missing {
        if let Err(e) = write_file(&enabled, controller) {
            tracing::debug!("cgroup: cannot enable {controller} in {}: {e}", enabled.display());
        }
    }
    Ok(())
}

/// One line for a `libcgroups` error: the innermost file error when there is one
/// (`write "999" to …/cpuset.cpus: Invalid argument`), without the layers of
/// "io error:" around it; else the error as `libcgroups` words it.
pub fn describe(error: &AnyManagerError) -> String {
    let mut current: &(dyn std::error::Error + 'static) = error;
    loop {
        if let Some(io) = current.downcast_ref::<WrappedIoError>() {
            return match io {
                WrappedIoError::Open { err, path } => format!("open {}: {err}", path.display()),
                WrappedIoError::Write { err, path, data } => format!("write {data:?} to {}: {err}", path.display()),
                WrappedIoError::Read { err, path } => format!("read {}: {err}", path.display()),
                WrappedIoError::CreateDir { err, path } => format!("mkdir {}: {err}", path.display()),
                WrappedIoError::Other { err, path } => format!("{}: {err}", path.display()),
            };
        }
        match current.source() {
            Some(next) => current = next,
            None => return error.to_string(),
        }
    }
}
