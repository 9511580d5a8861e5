//! The process plan: what turns a process in the container into the spec's
//! `process` — its cwd, identity and LSM labels. The init and every exec'd
//! process carry one out, after the container around them exists.

use std::path::PathBuf;

use oci_spec::runtime::{LinuxSeccomp, Process};

use super::{IdentityPlan, PlanError};
use crate::seccomp::SeccompPlan;
use crate::sys::pty::WinSize;

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
    /// `process.terminal`: the process gets a pty made inside the container.
    pub terminal: bool,
    /// `process.consoleSize`, when both its height and width are set (as runc
    /// reads it, a zero leaves the pty's size alone).
    pub console_size: Option<WinSize>,
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
            terminal: process.terminal().unwrap_or(false),
            console_size: console_size(process)?,
        })
    }
}

/// `process.consoleSize` in cells; each side must fit a terminal's 16 bits.
fn console_size(process: &Process) -> Result<Option<WinSize>, PlanError> {
    let Some(size) = process.console_size() else { return Ok(None) };
    let side = |field: &str, value: u64| {
        u16::try_from(value).map_err(|_| {
            PlanError::new(
                format!("process.consoleSize.{field}"),
                format!("{value} is more than a terminal holds (65535)"),
            )
        })
    };
    let (rows, cols) = (side("height", size.height())?, side("width", size.width())?);
    Ok((rows != 0 && cols != 0).then_some(WinSize { rows, cols }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(json: &str) -> Process {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn terminal_and_console_size() {
        let p = ProcessPlan::new(
            &process(r#"{"cwd":"/","user":{"uid":0,"gid":0},"args":["sh"],"terminal":true,"consoleSize":{"height":24,"width":80}}"#),
            None,
        )
        .unwrap();
        assert!(p.terminal);
        assert_eq!(p.console_size, Some(WinSize { rows: 24, cols: 80 }));
        let p = ProcessPlan::new(
            &process(r#"{"cwd":"/","user":{"uid":0,"gid":0},"args":["sh"],"consoleSize":{"height":0,"width":80}}"#),
            None,
        )
        .unwrap();
        assert!(!p.terminal);
        assert_eq!(p.console_size, None);
    }

    #[test]
    fn a_console_size_too_big_is_named() {
        let err = ProcessPlan::new(
            &process(r#"{"cwd":"/","user":{"uid":0,"gid":0},"args":["sh"],"consoleSize":{"height":24,"width":70000}}"#),
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "config.json: process.consoleSize.width: 70000 is more than a terminal holds (65535)"
        );
    }
}
