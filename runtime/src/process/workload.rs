//! Becoming the workload: the steps the init and every exec'd process share once
//! the container around them exists — LSM labels, rlimits, cwd, identity — and,
//! after the last word with the caller, the hand-over to the executor
//! ([`crate::executor::Handover`]).

use std::os::fd::OwnedFd;
use std::path::Path;

use oci_spec::runtime::{Process, Spec};

use super::barrier::WaitingHandlers;
use super::{Stage, StageFailure, identity};
use crate::executor::{ArmContext, ExecContext, Executor, Handover, WorkloadEntry};
use crate::plan::ProcessPlan;
use crate::sys::clone::exit_now;

/// The exit status of a process that could not become its workload after the
/// caller let it go (what a shell reports for a command it cannot run).
pub(crate) const EXEC_FAILED: i32 = 127;

/// `process.apparmorProfile` and `process.selinuxLabel`: applied on the next
/// exec where the host has that LSM; a clear error where it does not. Written
/// through the host's `/proc` (before pivot_root for the init).
pub(crate) fn apply_lsm_labels(plan: &ProcessPlan, stage: Stage) -> Result<(), StageFailure> {
    let fail = |errno, msg| StageFailure::new(stage, "lsm", errno, msg);
    if let Some(profile) = &plan.apparmor_profile {
        if !Path::new("/sys/kernel/security/apparmor").exists() {
            return Err(fail(
                None,
                format!("process.apparmorProfile {profile:?}: apparmor is not enabled on this host"),
            ));
        }
        let attr = if Path::new("/proc/self/attr/apparmor/exec").exists() {
            "/proc/self/attr/apparmor/exec"
        } else {
            "/proc/self/attr/exec"
        };
        std::fs::write(attr, format!("exec {profile}"))
            .map_err(|e| fail(e.raw_os_error(), format!("process.apparmorProfile {profile:?}: {e}")))?;
    }
    if let Some(label) = &plan.selinux_label {
        if !Path::new("/sys/fs/selinux/enforce").exists() {
            return Err(fail(None, format!("process.selinuxLabel {label:?}: selinux is not enabled on this host")));
        }
        std::fs::write("/proc/self/attr/exec", label)
            .map_err(|e| fail(e.raw_os_error(), format!("process.selinuxLabel {label:?}: {e}")))?;
    }
    Ok(())
}

/// The real steps that make this process the one `process` describes
/// ([`super::steps::ProcessSteps`]' identity part), shared by the init and
/// every exec'd process; [`super::steps::become_process`] orders them. Runs
/// inside the container's mount namespace, after pivot_root.
pub(crate) struct Becoming<'p> {
    plan: &'p ProcessPlan,
    stage: Stage,
    /// Whether `setgroups` is allowed (a rootless user namespace denies it):
    /// read from `/proc` ([`Becoming::check_setgroups`]) before the guest's
    /// view hides it.
    setgroups_allowed: bool,
    /// The seccomp notify descriptor, when the profile has one: for the
    /// caller to hand to its listener.
    pub(crate) notify: Option<OwnedFd>,
}

impl<'p> Becoming<'p> {
    pub(crate) fn new(plan: &'p ProcessPlan, stage: Stage) -> Self {
        Self { plan, stage, setgroups_allowed: true, notify: None }
    }

    fn fail(&self, step: &str, errno: Option<i32>, msg: String) -> StageFailure {
        StageFailure::new(self.stage, step, errno, msg)
    }

    fn identity(&self, e: identity::IdentityError) -> StageFailure {
        self.fail("identity", e.errno(), format!("process.user: {e}"))
    }
}

impl super::steps::IdentitySteps for Becoming<'_> {
    fn check_setgroups(&mut self) -> Result<(), StageFailure> {
        self.setgroups_allowed =
            std::fs::read_to_string("/proc/self/setgroups").map(|s| s.trim() != "deny").unwrap_or(true);
        Ok(())
    }

    fn set_rlimits(&mut self) -> Result<(), StageFailure> {
        identity::apply_rlimits(&self.plan.identity.rlimits).map_err(|e| self.fail("rlimits", e.errno(), e.to_string()))
    }

    fn enter_cwd(&mut self) -> Result<(), StageFailure> {
        let cwd = &self.plan.cwd;
        enter_cwd(cwd).map_err(|e| {
            let msg = format!("process.cwd {}: {}", cwd.display(), crate::sys::errno_text(&e));
            self.fail("cwd", e.raw_os_error(), msg)
        })
    }

    fn load_seccomp(&mut self) -> Result<(), StageFailure> {
        if let Some(seccomp) = &self.plan.seccomp {
            self.notify = crate::seccomp::load(seccomp).map_err(|e| self.fail("seccomp", e.errno(), e.to_string()))?;
        }
        Ok(())
    }

    fn set_user(&mut self) -> Result<(), StageFailure> {
        identity::set_user(&self.plan.identity, self.setgroups_allowed).map_err(|e| self.identity(e))
    }

    fn set_capabilities(&mut self) -> Result<(), StageFailure> {
        identity::set_capabilities(&self.plan.identity).map_err(|e| self.identity(e))
    }

    fn set_no_new_privs(&mut self) -> Result<(), StageFailure> {
        identity::set_no_new_privs().map_err(|e| self.identity(e))
    }

    fn set_umask(&mut self) -> Result<(), StageFailure> {
        identity::set_umask(&self.plan.identity);
        Ok(())
    }
}

/// Enters `process.cwd` through a descriptor resolved inside the container's
/// root (the process's `/`, after `pivot_root` or after joining the container's
/// mount namespace): `..` stops at the root, absolute symlinks are read against
/// it, and a magic link (`/proc/self/fd/N`, `/proc/1/cwd`) is refused, so a cwd
/// the image turned into a symlink can never lead the process to a host
/// directory (CVE-2024-21626). It must be a directory.
fn enter_cwd(cwd: &Path) -> std::io::Result<()> {
    use std::os::fd::{AsFd, AsRawFd};
    use std::os::unix::fs::OpenOptionsExt;
    let root = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_PATH | libc::O_DIRECTORY).open("/")?;
    let flags = nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY;
    let dir = crate::sys::inroot::open_in_root(root.as_fd(), cwd, flags)?;
    nix::unistd::fchdir(dir.as_raw_fd())?;
    Ok(())
}

/// Lets the executor make the workload ready (instantiate it) now that every
/// isolation step is done, before the barrier: a failure still fails `create`.
pub(crate) fn arm(
    executor: &mut dyn Executor,
    process: &Process,
    spec: &Spec,
    stage: Stage,
) -> Result<(), StageFailure> {
    executor
        .arm(&ArmContext { process, spec })
        .map_err(|e| StageFailure::new(stage, "arm", None, error_chain(e.as_ref())))
}

/// Hands the process over to the executor. Nothing the runtime holds may reach
/// the workload: every descriptor from 3+N is close-on-exec, the first N
/// preserved ones are not; the init's waiting handlers (`waiting`) are removed,
/// with what they replaced put back; an in-process init that is PID 1 reaps
/// orphans from here on ([`super::orphans`]). The executor gets that state as
/// [`ExecContext::handover`] and changes the signals as its workload needs (a
/// native one resets them for `execve`). Never returns.
///
/// `barrier` is the init's start-barrier descriptor, its go byte still unread
/// (None for an exec'd process): it tells `start` when the workload began
/// ([`crate::executor::WorkloadEntry`], [`super::barrier`]).
pub(crate) fn run(
    executor: Box<dyn Executor>,
    process: &Process,
    spec: &Spec,
    preserve_fds: u32,
    barrier: Option<OwnedFd>,
    waiting: Option<WaitingHandlers>,
) -> ! {
    use std::os::fd::{AsFd, AsRawFd};
    let first_closed = 3 + preserve_fds as i32;
    let _ = crate::sys::fd::cloexec_from(first_closed);
    for fd in 3..first_closed {
        // A number the caller did not have open may be the barrier's: it stays
        // close-on-exec, or `start` would wait for the workload's end.
        if barrier.as_ref().is_some_and(|b| b.as_raw_fd() == fd) {
            continue;
        }
        let _ = crate::sys::fd::clear_cloexec(fd);
    }
    if let Some(waiting) = waiting {
        let _ = waiting.remove();
    }
    let releases_orphans = super::orphans::reap_if_pid1(executor.as_ref());
    let handover = match Handover::measure(first_closed, releases_orphans) {
        Ok(handover) => handover,
        Err(e) => {
            report_failure(&std::io::Error::other(format!("read the signal state: {}", e.desc())));
            exit_now(EXEC_FAILED)
        }
    };
    let in_process = executor.runs_in_process();
    let mut ctx = ExecContext::new(process, spec, handover);
    // An executor that execs: the byte goes now, the descriptor with execve.
    let held = match barrier {
        Some(fd) if in_process => {
            ctx.entry = WorkloadEntry::new(fd);
            None
        }
        Some(fd) => {
            let _ = super::barrier::take_go(fd.as_fd());
            Some(fd)
        }
        None => None,
    };
    match executor.exec(&ctx) {
        Ok(code) => exit_now(code),
        Err(e) => {
            // Not executed: a byte in the fifo tells `start` (an in-process
            // executor that failed before entering left the go byte there).
            if let Some(fd) = &held {
                let _ = super::barrier::put_back(fd.as_fd());
            }
            drop(ctx.entry.take());
            report_failure(e.as_ref());
            exit_now(EXEC_FAILED)
        }
    }
}

/// An error and its sources on one line: `a: b: c`.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// After the caller let go nobody listens on the channel any more: the
/// workload's own stderr is where a late failure can be seen, as it would be for
/// a shell.
pub(crate) fn report_failure(error: &(dyn std::error::Error + 'static)) {
    use std::io::Write;
    let line = format!("amphi: {}\n", error_chain(error));
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(line.as_bytes());
    let _ = stderr.flush();
}
