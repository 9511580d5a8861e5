//! The process plan: what turns a process in the container into the spec's
//! `process` — its cwd, identity and LSM labels. The init and every exec'd
//! process carry one out, after the container around them exists.
//!
//! The rules of a `process` object live here ([`check`], then
//! [`ProcessPlan::new`] and [`super::identity`]): the container's process at
//! `create`, and every process `exec` runs (`--process FILE` or built from
//! flags) go through the same ones.

use std::path::PathBuf;

use oci_spec::runtime::{LinuxSchedulerPolicy, LinuxSeccomp, Process, Scheduler, Spec};

use super::{IdentityPlan, SpecError};
use crate::seccomp::SeccompPlan;
use crate::sys::pty::WinSize;

#[derive(Debug, Clone)]
pub(crate) struct ProcessPlan {
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
    pub fn new(process: &Process, seccomp: Option<&LinuxSeccomp>) -> Result<Self, SpecError> {
        let cwd = PathBuf::from(process.cwd());
        if !cwd.is_absolute() {
            return Err(SpecError::new("process.cwd", format!("{cwd:?} is not an absolute path")));
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

/// The spec's `process`, which `create` needs.
pub(crate) fn of(spec: &Spec) -> Result<&Process, SpecError> {
    spec.process().as_ref().ok_or_else(|| SpecError::new("process", "missing (create needs a process to run)"))
}

/// The rules of a `process` that need nothing but the object: its args and env
/// as `execve` and the WASI context take them, and the ranges the kernel would
/// refuse later with a bare `EINVAL` (oomScoreAdj, scheduler, ioPriority).
pub fn check(p: &Process) -> Result<(), SpecError> {
    let args = p.args().as_deref().unwrap_or_default();
    if args.is_empty() {
        return Err(SpecError::new("process.args", "must not be empty"));
    }
    if args[0].is_empty() {
        return Err(SpecError::new("process.args[0]", "the program name must not be empty"));
    }
    if let Some(i) = args.iter().position(|a| a.contains('\0')) {
        return Err(SpecError::new(format!("process.args[{i}]"), "contains a NUL byte"));
    }
    env("process.env", p.env().as_deref().unwrap_or_default())?;
    if let Some(adj) = p.oom_score_adj()
        && !(-1000..=1000).contains(&adj)
    {
        return Err(SpecError::new("process.oomScoreAdj", format!("{adj} is not between -1000 and 1000")));
    }
    if let Some(s) = p.scheduler() {
        scheduler(s)?;
    }
    if let Some(io) = p.io_priority()
        && !(0..=7).contains(&io.priority())
    {
        return Err(SpecError::new("process.ioPriority.priority", format!("{} is not between 0 and 7", io.priority())));
    }
    Ok(())
}

/// `KEY=VALUE` entries, as `execve` and the WASI context need them (`field` is
/// the list: `process.env`, or a hook's `env`).
pub(crate) fn env(field: &str, entries: &[String]) -> Result<(), SpecError> {
    for (i, entry) in entries.iter().enumerate() {
        let reason = match entry.split_once('=') {
            None => format!("{entry:?} is not KEY=VALUE (no \"=\")"),
            Some(("", _)) => format!("{entry:?} has an empty name"),
            Some(_) if entry.contains('\0') => "contains a NUL byte".into(),
            Some(_) => continue,
        };
        return Err(SpecError::new(format!("{field}[{i}]"), reason));
    }
    Ok(())
}

/// `sched_setattr(2)`'s rules, checked before the process exists.
fn scheduler(s: &Scheduler) -> Result<(), SpecError> {
    use LinuxSchedulerPolicy::{SchedDeadline, SchedFifo, SchedRr};
    let refuse = |name: &str, reason: String| Err(SpecError::new(format!("process.scheduler.{name}"), reason));
    if let Some(nice) = *s.nice()
        && !(-20..=19).contains(&nice)
    {
        return refuse("nice", format!("{nice} is not between -20 and 19"));
    }
    let policy = *s.policy();
    let priority = s.priority().unwrap_or(0);
    if matches!(policy, SchedFifo | SchedRr) {
        if !(1..=99).contains(&priority) {
            return refuse("priority", format!("{priority} is not between 1 and 99, as SCHED_FIFO and SCHED_RR need"));
        }
    } else if priority != 0 {
        return refuse("priority", "only SCHED_FIFO and SCHED_RR take a priority".into());
    }
    let (runtime, deadline, period) = (s.runtime().unwrap_or(0), s.deadline().unwrap_or(0), s.period().unwrap_or(0));
    if policy != SchedDeadline {
        for (name, value) in [("runtime", runtime), ("deadline", deadline), ("period", period)] {
            if value != 0 {
                return refuse(name, "only SCHED_DEADLINE takes a runtime, deadline or period".into());
            }
        }
        return Ok(());
    }
    if runtime < 1024 {
        return refuse("runtime", "SCHED_DEADLINE needs a runtime of at least 1024 ns".into());
    }
    if deadline < runtime {
        return refuse("deadline", format!("{deadline} is below the runtime {runtime}"));
    }
    if period != 0 && period < deadline {
        return refuse("period", format!("{period} is below the deadline {deadline}"));
    }
    Ok(())
}

/// `process.consoleSize` in cells; each side must fit a terminal's 16 bits.
fn console_size(process: &Process) -> Result<Option<WinSize>, SpecError> {
    let Some(size) = process.console_size() else { return Ok(None) };
    let side = |field: &str, value: u64| {
        u16::try_from(value).map_err(|_| {
            SpecError::new(
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

    /// A process that passes, with `patch`'s keys replacing its own.
    fn process_with(patch: serde_json::Value) -> Process {
        let mut base =
            serde_json::json!({"cwd": "/", "user": {"uid": 0, "gid": 0}, "args": ["sh"], "env": ["PATH=/bin"]});
        base.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    /// The error of [`check`] for `patch`, checked to be one line naming `field`.
    fn refused(patch: serde_json::Value, field: &str) -> String {
        let err = check(&process_with(patch)).unwrap_err().to_string();
        assert_eq!(err.lines().count(), 1, "not one line: {err}");
        assert!(err.starts_with(&format!("config.json: {field}: ")), "expected field {field}: {err}");
        err
    }

    fn passes(patch: serde_json::Value) -> bool {
        check(&process_with(patch)).is_ok()
    }

    #[test]
    fn a_process_is_required() {
        let spec: Spec = serde_json::from_str(r#"{"ociVersion":"1.2.0"}"#).unwrap();
        assert_eq!(of(&spec).unwrap_err().to_string(), "config.json: process: missing (create needs a process to run)");
    }

    #[test]
    fn args_must_name_a_program() {
        assert!(passes(serde_json::json!({})));
        let err = refused(serde_json::json!({"args": []}), "process.args");
        assert_eq!(err, "config.json: process.args: must not be empty");
        refused(serde_json::json!({"args": null}), "process.args");
        refused(serde_json::json!({"args": [""]}), "process.args[0]");
        refused(serde_json::json!({"args": ["sh", "a\u{0}b"]}), "process.args[1]");
    }

    #[test]
    fn env_entries_need_an_equals_sign_and_a_name() {
        let err = refused(serde_json::json!({"env": ["PATH=/bin", "FOO"]}), "process.env[1]");
        assert_eq!(err, r#"config.json: process.env[1]: "FOO" is not KEY=VALUE (no "=")"#);
        refused(serde_json::json!({"env": ["=x"]}), "process.env[0]");
        refused(serde_json::json!({"env": ["A=\u{0}"]}), "process.env[0]");
        assert!(passes(serde_json::json!({"env": ["EMPTY=", "A=b=c"]})));
        assert!(env("hooks.prestart[0].env", &["X".into()]).unwrap_err().field == "hooks.prestart[0].env[0]");
    }

    #[test]
    fn oom_score_adj_range() {
        refused(serde_json::json!({"oomScoreAdj": 1001}), "process.oomScoreAdj");
        assert!(passes(serde_json::json!({"oomScoreAdj": -1000})));
    }

    #[test]
    fn scheduler_rules() {
        let s = |v| serde_json::json!({"scheduler": v});
        refused(s(serde_json::json!({"policy": "SCHED_OTHER", "nice": 20})), "process.scheduler.nice");
        refused(s(serde_json::json!({"policy": "SCHED_OTHER", "priority": 5})), "process.scheduler.priority");
        refused(s(serde_json::json!({"policy": "SCHED_FIFO"})), "process.scheduler.priority");
        refused(s(serde_json::json!({"policy": "SCHED_RR", "priority": 100})), "process.scheduler.priority");
        refused(s(serde_json::json!({"policy": "SCHED_BATCH", "runtime": 5})), "process.scheduler.runtime");
        refused(s(serde_json::json!({"policy": "SCHED_DEADLINE", "runtime": 10})), "process.scheduler.runtime");
        refused(
            s(serde_json::json!({"policy": "SCHED_DEADLINE", "runtime": 2000, "deadline": 1000})),
            "process.scheduler.deadline",
        );
        refused(
            s(serde_json::json!({"policy": "SCHED_DEADLINE", "runtime": 2000, "deadline": 3000, "period": 2500})),
            "process.scheduler.period",
        );
        for ok in [
            serde_json::json!({"policy": "SCHED_FIFO", "priority": 10}),
            serde_json::json!({"policy": "SCHED_OTHER", "nice": -5}),
            serde_json::json!({"policy": "SCHED_DEADLINE", "runtime": 2000, "deadline": 3000, "period": 4000}),
        ] {
            assert!(passes(s(ok.clone())), "{ok}");
        }
    }

    #[test]
    fn io_priority_range() {
        refused(
            serde_json::json!({"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 8}}),
            "process.ioPriority.priority",
        );
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
