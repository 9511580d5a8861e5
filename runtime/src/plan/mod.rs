//! Pure functions from the spec to what the container process will do, and the
//! spec's rules.
//!
//! A plan is plain data computed in the caller before the first clone: every
//! decision (which namespaces to create or join, which mounts in which order, which
//! ids and capabilities) is made here, without a syscall, so it can be unit-tested
//! without root. The stages in [`crate::process`] only carry plans out.
//!
//! ## One owner per rule
//! Each module owns the rules of its section of the runtime-spec and is the only
//! place that states them: [`version`] (`ociVersion`), [`process`] and
//! [`identity`] (`process`), [`namespaces`] (`linux.namespaces`, id mappings,
//! time offsets), [`sysctl`] (`linux.sysctl`), [`mounts`] (`mounts`,
//! `linux.rootfsPropagation`, `linux.devices`, masked and read-only paths),
//! [`resources`] (`linux.cgroupsPath`, `linux.resources`, `linux.intelRdt`) and
//! [`hooks`]. Every refusal is one [`SpecError`] naming the field.
//!
//! The rules run in two passes, both pure. [`check`] runs first, from
//! [`crate::bundle::Bundle::load`], before the host is asked anything: the rules
//! that need nothing but the spec. [`ContainerPlan::new`] runs when `create` knows
//! the container's cgroup: the rules that come with building a plan (duplicate
//! namespaces, a relative cwd, capability names, mount options, bind sources). A
//! rule both passes need (a device node, the rootfs propagation) is one function
//! that both call. `exec` puts its process through [`process::check`] and
//! [`ProcessPlan::new`], as `create` does.

pub(crate) mod hooks;
pub(crate) mod identity;
pub(crate) mod mounts;
pub(crate) mod namespaces;
pub mod process;
pub(crate) mod resources;
pub(crate) mod sysctl;
pub(crate) mod version;

#[cfg(test)]
pub(crate) mod tests;

use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::Spec;

pub(crate) use identity::IdentityPlan;
pub(crate) use mounts::{MountContext, RootfsPlan};
pub(crate) use namespaces::NamespacePlan;
pub(crate) use process::ProcessPlan;

/// A spec field that is refused, named by its path in config.json (`process.env[1]`).
#[derive(Debug, thiserror::Error)]
#[error("config.json: {field}: {reason}")]
pub struct SpecError {
    /// The field's path in config.json (`process.env[1]`).
    pub field: String,
    /// Why it is refused.
    pub reason: String,
}

impl SpecError {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }
}

/// `path` read from `/`, with `.` and `..` taken out lexically (`..` stops at
/// `/`): how a container path (a mount destination, a device) and a cgroup path
/// (`linux.cgroupsPath`, see [`crate::cgroups`]) are read.
pub(crate) fn clean_absolute(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// The rules that need nothing but the spec, section by section in a fixed
/// order (so the first refusal of a bundle with several faults is always the
/// same one). Returns `root.path`.
pub(crate) fn check(spec: &Spec) -> Result<&Path, SpecError> {
    version::check(spec.version())?;
    let root = spec.root().as_ref().ok_or_else(|| SpecError::new("root", "missing"))?;
    if root.path().as_os_str().is_empty() {
        return Err(SpecError::new("root.path", "missing"));
    }
    process::check(process::of(spec)?)?;
    if let Some(linux) = spec.linux() {
        namespaces::check(linux)?;
        sysctl::check(linux, spec.hostname().as_deref().is_some_and(|h| !h.is_empty()))?;
        mounts::rootfs_propagation(linux)?;
        resources::check(linux)?;
        mounts::devices::check(linux.devices().as_deref().unwrap_or_default())?;
        resources::check_intel_rdt(linux)?;
    }
    if let Some(hooks) = spec.hooks() {
        hooks::check(hooks)?;
    }
    if spec.annotations().as_ref().is_some_and(|a| a.contains_key("")) {
        return Err(SpecError::new("annotations", "a key is empty"));
    }
    Ok(root.path())
}

/// Everything the container's init will do, decided up front.
#[derive(Debug, Clone)]
pub(crate) struct ContainerPlan {
    pub namespaces: NamespacePlan,
    pub rootfs: RootfsPlan,
    /// Who the init becomes after the container is built.
    pub process: ProcessPlan,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    /// `linux.sysctl`, as (`/proc/sys/...` path, value), sorted by key.
    pub sysctl: Vec<(PathBuf, String)>,
    pub oom_score_adj: Option<i32>,
    /// The name of the session keyring to join (`None` with `--no-new-keyring`).
    pub session_keyring: Option<String>,
}

impl ContainerPlan {
    /// Plans the init of a container made from `spec` (whose bundle directory is
    /// `bundle`, which relative bind-mount sources are read against), whose rootfs
    /// is at `rootfs` and whose cgroup is `cgroup_path`.
    pub fn new(
        spec: &Spec,
        bundle: PathBuf,
        rootfs: PathBuf,
        cgroup_path: PathBuf,
        no_pivot: bool,
    ) -> Result<Self, SpecError> {
        let namespaces = NamespacePlan::new(spec)?;
        let process = process::of(spec)?;
        let process_plan = ProcessPlan::new(process, spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()))?;
        let linux = spec.linux().as_ref();
        let ctx = MountContext {
            bundle,
            new_user_ns: namespaces.new_user,
            new_cgroup_ns: namespaces.new_cgroup,
            cgroup_path,
            no_pivot,
        };
        let rootfs = RootfsPlan::new(spec, rootfs, &ctx)?;
        let hostname = spec.hostname().clone().filter(|h| !h.is_empty());
        let domainname = spec.domainname().clone().filter(|d| !d.is_empty());
        if (hostname.is_some() || domainname.is_some()) && !namespaces.has_uts() {
            return Err(SpecError::new("hostname", "setting the hostname needs a private UTS namespace"));
        }
        let mut sysctl: Vec<(PathBuf, String)> = linux
            .and_then(|l| l.sysctl().as_ref())
            .map(|map| map.iter().map(|(k, v)| (PathBuf::from("/proc/sys").join(sysctl::path(k)), v.clone())).collect())
            .unwrap_or_default();
        sysctl.sort();
        Ok(Self {
            namespaces,
            rootfs,
            process: process_plan,
            hostname,
            domainname,
            sysctl,
            oom_score_adj: process.oom_score_adj(),
            session_keyring: None,
        })
    }
}
