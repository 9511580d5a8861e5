//! The process plan: what turns a process in the container into the spec's
//! `process` — its cwd, identity and LSM labels. The init and every exec'd
//! process carry one out, after the container around them exists.

use std::path::PathBuf;

use oci_spec::runtime::{LinuxSeccomp, Process};

use super::{IdentityPlan, PlanError};
use crate::seccomp::SeccompPlan;

#[derive(Debug, Clone)]
pub struct ProcessPlan {
    /// The cwd inside the container (absolute).
    pub cwd: PathBuf,
    pub identity: IdentityPlan,
    pub apparmor_profile: Option<String>,
    pub selinux_label: Option<String>,
    /// `linux.seccomp`, compiled: the container's filter applies to its init
    /// and to every process exec'd into it.
    pub seccomp: Option<SeccompPlan>,
}

impl ProcessPlan {
    pub fn new(process: &Process, seccomp: Option<&LinuxSeccomp>) -> Result<Self, PlanError> {
        let cwd = PathBuf::from(process.cwd());
        if !cwd.is_absolute() {
            return Err(PlanError::new("process.cwd", format!("{cwd:?} is not an absolute path")));
        }
        Ok(Self {
            cwd,
            identity: IdentityPlan::new(process)?,
            apparmor_profile: process.apparmor_profile().clone().filter(|p| !p.is_empty()),
            selinux_label: process.selinux_label().clone().filter(|p| !p.is_empty()),
            seccomp: seccomp.map(SeccompPlan::new).transpose()?,
        })
    }
}
