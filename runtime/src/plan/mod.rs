//! Pure functions from the spec to what the container process will do.
//!
//! A plan is plain data computed in the caller before the first clone: every
//! decision (which namespaces to create or join, which mounts in which order, which
//! ids and capabilities) is made here, without a syscall, so it can be unit-tested
//! without root. The stages in [`crate::process`] only carry plans out.

pub mod identity;
pub mod mounts;
pub mod namespaces;
pub mod process;

use std::path::PathBuf;

use oci_spec::runtime::Spec;

pub use identity::IdentityPlan;
pub use mounts::{MountContext, RootfsPlan};
pub use namespaces::NamespacePlan;
pub use process::ProcessPlan;

/// A spec field that cannot be carried out, named by its path in config.json.
#[derive(Debug, thiserror::Error)]
#[error("config.json: {field}: {reason}")]
pub struct PlanError {
    pub field: String,
    pub reason: String,
}

impl PlanError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }
}

/// Everything the container's init will do, decided up front.
#[derive(Debug, Clone)]
pub struct ContainerPlan {
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
    ) -> Result<Self, PlanError> {
        let namespaces = NamespacePlan::new(spec)?;
        let process = spec.process().as_ref().ok_or_else(|| PlanError::new("process", "missing"))?;
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
            return Err(PlanError::new("hostname", "setting the hostname needs a private UTS namespace"));
        }
        let mut sysctl: Vec<(PathBuf, String)> = linux
            .and_then(|l| l.sysctl().as_ref())
            .map(|map| map.iter().map(|(k, v)| (PathBuf::from("/proc/sys").join(sysctl_path(k)), v.clone())).collect())
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

/// A sysctl key as a path under `/proc/sys`, as sysctl(8) reads it: when the
/// first separator is `.`, dots separate and a `/` stands for a dot inside a
/// name (`net.ipv4.conf.eth0/100.rp_filter`); when it is `/`, the key is a path.
fn sysctl_path(key: &str) -> String {
    match key.find(['.', '/']) {
        Some(i) if key.as_bytes()[i] == b'.' => key
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect(),
        _ => key.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::sysctl_path;

    #[test]
    fn sysctl_keys_become_proc_paths_both_ways() {
        assert_eq!(sysctl_path("net.ipv4.ip_forward"), "net/ipv4/ip_forward");
        assert_eq!(sysctl_path("net.ipv4.conf.eth0/100.rp_filter"), "net/ipv4/conf/eth0.100/rp_filter");
        assert_eq!(sysctl_path("net/ipv4/conf/eth0.100/rp_filter"), "net/ipv4/conf/eth0.100/rp_filter");
        assert_eq!(sysctl_path("kernel.shmmax"), "kernel/shmmax");
    }
}
