//! The init stage: the container's first process. It builds the container around
//! itself in a fixed order, reports ready, waits at the start barrier, and becomes
//! the workload through the executor.
//!
//! Order matters and follows runc's where the spec is silent:
//! the cgroup namespace is made only after the caller placed us in the cgroup; the
//! rootfs is mounted before the executor opens the entrypoint (so bind mounts are
//! visible) and before `pivot_root` (so the host's files still are); sysctls,
//! `oom_score_adj` and LSM labels go through the host's `/proc` before
//! `readonlyPaths` make the container's `/proc/sys` read-only; the identity change
//! comes last because it drops the privileges every other step needs. A
//! container without a mount namespace of its own mounts nothing and enters its
//! rootfs with `chroot` ([`rootfs`]).
//!
//! The order itself is [`super::steps::init`], unit-tested against a recording
//! fake; this file holds the real steps ([`LinuxInit`]).

use std::borrow::Cow;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sched::CloneFlags;
use oci_spec::runtime::{Process, Spec};

use super::barrier::WaitingHandlers;
use super::channel::ChannelError;
use super::spawn::{InitEnds, InitRequest};
use super::steps::{InitSteps, ProcessSteps, Shape};
use super::workload::Becoming;
use super::{FromInit, Stage, StageFailure, ToInit, barrier, home, rootfs, terminal, workload};
use crate::executor::{CacheDir, Executor, PrepareContext};
use crate::hooks::{self, HookKind};
use crate::plan::ContainerPlan;
use crate::sys::clone::exit_now;

/// Runs the init. Never returns: the process becomes the workload or exits.
pub(crate) fn run(mut request: InitRequest<'_>, ends: InitEnds) -> ! {
    let entered = super::spawn::enter_stage(c"amphi:init", &request.close_in_child, &mut request.cgroup, Stage::Init);
    if let Err(failure) = entered {
        let _ = ends.to_parent.send(&FromInit::Failed(failure));
        exit_now(1);
    }
    match ends.from_parent.recv() {
        Ok(ToInit::Go) => {}
        // The caller died or gave up: nobody will ever start us.
        _ => exit_now(1),
    }
    let InitRequest { plan, spec, executor, barrier, preserve_fds, console_socket, may_show_exe, .. } = request;
    // The caller has written our id maps by now (it needs our /proc files for
    // that): from here on they are closed to the container.
    if let Err(failure) = super::exe_guard::hide(Stage::Init) {
        let _ = ends.to_parent.send(&FromInit::Failed(failure));
        exit_now(1);
    }

    let shape =
        Shape { no_new_privileges: plan.process.identity.no_new_privileges, chroot: plan.rootfs.inherits_mount_ns };
    let mut init = LinuxInit {
        plan,
        spec,
        executor,
        ends: Some(ends),
        barrier,
        console_socket,
        may_show_exe,
        rootfs_fd: None,
        process: None,
        container_view: None,
        becoming: Becoming::new(&plan.process, Stage::Init),
        waiting: None,
        start_state: None,
    };
    if let Err(failure) = super::steps::init(&mut init, shape) {
        // Every step after Ready ends the process itself: the channel is open.
        if let Some(ends) = &init.ends {
            let _ = ends.to_parent.send(&FromInit::Failed(failure));
        }
        exit_now(1);
    }
    // The container's view stays open for the container's life: exec joins it.
    let LinuxInit { executor, barrier, process, waiting, container_view: _container_view, .. } = init;
    let process = process.expect("set by mount_rootfs");
    workload::run(executor, &process, spec, preserve_fds, Some(barrier), waiting)
}

/// The init's real steps, in the order [`super::steps::init`] runs them, and
/// what they leave for each other and for the hand-over.
struct LinuxInit<'s> {
    plan: &'s ContainerPlan,
    spec: &'s Spec,
    executor: Box<dyn Executor>,
    /// The channel to the caller, until the commit.
    ends: Option<InitEnds>,
    /// The start barrier, open read-write ([`barrier`]).
    barrier: OwnedFd,
    console_socket: Option<OwnedFd>,
    may_show_exe: bool,
    /// The container's root, from the mounts to the executor's `prepare`.
    rootfs_fd: Option<OwnedFd>,
    /// The process to run (`HOME` added from the container's passwd, [`home`]).
    process: Option<Cow<'s, Process>>,
    /// For a workload that runs in this process: the container's mount
    /// namespace ([`super::guest_view`]), open for the container's life: exec
    /// joins it.
    container_view: Option<OwnedFd>,
    becoming: Becoming<'s>,
    /// The handlers with which the init ends on a signal while it waits.
    waiting: Option<WaitingHandlers>,
    /// The state for the startContainer hooks, sent with the commit.
    start_state: Option<String>,
}

impl LinuxInit<'_> {
    fn fail(step: &str, errno: Option<i32>, msg: String) -> StageFailure {
        StageFailure::new(Stage::Init, step, errno, msg)
    }

    fn ends(&self) -> &InitEnds {
        self.ends.as_ref().expect("the channel is open until the commit")
    }
}

impl<'s> ProcessSteps for LinuxInit<'s> {
    type Identity = Becoming<'s>;
    fn identity(&mut self) -> &mut Self::Identity {
        &mut self.becoming
    }

    fn prepare_executor(&mut self) -> Result<bool, StageFailure> {
        let ends = self.ends.as_ref().expect("the channel is open until the commit");
        let rootfs_fd = self.rootfs_fd.take().expect("set by mount_rootfs");
        let process = self.process.as_ref().expect("set by mount_rootfs");
        let ask = || super::spawn::ask_for_cache_dir(&ends.to_parent, &ends.from_parent);
        let ctx = PrepareContext {
            rootfs: self.plan.rootfs.rootfs(),
            rootfs_fd: rootfs_fd.as_fd(),
            process,
            spec: self.spec,
            cache_dir: CacheDir::new(&ask),
        };
        self.executor.prepare(&ctx).map_err(|e| Self::fail("prepare", None, workload::error_chain(e.as_ref())))?;
        drop(rootfs_fd);
        let in_process = self.executor.runs_in_process();
        // Without a mount namespace of its own the container's is the host's: exec
        // joins the init's (its guest view) and enters its root instead.
        if in_process && !self.plan.rootfs.inherits_mount_ns {
            self.container_view = Some(super::guest_view::open_container_view(Stage::Init)?);
        }
        Ok(in_process)
    }

    fn lsm_labels(&mut self) -> Result<(), StageFailure> {
        workload::apply_lsm_labels(&self.plan.process, Stage::Init)
    }

    fn attach_terminal(&mut self) -> Result<(), StageFailure> {
        match self.console_socket.take() {
            Some(socket) => terminal::attach(socket, &self.plan.process, true, Stage::Init),
            None => Ok(()),
        }
    }

    fn enter_guest_view(&mut self) -> Result<(), StageFailure> {
        super::guest_view::enter(Stage::Init)
    }

    fn arm_executor(&mut self) -> Result<(), StageFailure> {
        let process = self.process.as_ref().expect("set by mount_rootfs");
        workload::arm(self.executor.as_mut(), process, self.spec, Stage::Init)
    }

    fn show_exe(&mut self) -> Result<(), StageFailure> {
        super::exe_guard::show_if_harmless(self.may_show_exe, Stage::Init)
    }

    /// From Ready on nothing is reported to the caller: a failure ends the
    /// process here.
    fn report_ready(&mut self) -> Result<(), StageFailure> {
        // From Ready on the container counts as created, and `kill` of a created
        // container must work: the handlers go in before the caller can return.
        self.waiting = WaitingHandlers::install().ok();
        let ends = self.ends.take().expect("the channel is open until the commit");
        // The seccomp notify descriptor travels with Ready: the caller hands it to
        // the profile's listener once the state exists.
        let notify = self.becoming.notify.take();
        let fds: Vec<i32> = notify.iter().map(|fd| fd.as_raw_fd()).collect();
        let container_view_fd = self.container_view.as_ref().map(AsRawFd::as_raw_fd);
        let ready = FromInit::Ready { executor: self.executor.name().to_owned(), container_view_fd };
        if ends.to_parent.send_with_fds(&ready, &fds).is_err() {
            exit_now(1);
        }
        drop(notify);
        self.start_state = match ends.from_parent.recv() {
            Ok(ToInit::Commit) => None,
            Ok(ToInit::CommitWithState { state }) => Some(state),
            Ok(ToInit::Go | ToInit::HooksDone { .. } | ToInit::CacheDir { .. } | ToInit::CacheDirRefused { .. })
            | Err(ChannelError::Closed | ChannelError::Sys(_) | ChannelError::Decode(_)) => exit_now(1),
        };
        Ok(())
    }
}

impl InitSteps for LinuxInit<'_> {
    fn enter_namespaces(&mut self) -> Result<(), StageFailure> {
        let ns = &self.plan.namespaces;
        if ns.new_user {
            super::intermediate::become_root_in_userns();
        }
        if ns.new_cgroup {
            nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).map_err(|e| {
                Self::fail("cgroup namespace", Some(e as i32), format!("unshare cgroup namespace: {e}"))
            })?;
        }
        // Modes given in the spec (devices, mount targets) are meant exactly.
        nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        if let Some(adj) = self.plan.oom_score_adj {
            std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(|e| {
                Self::fail("oom score", e.raw_os_error(), format!("process.oomScoreAdj: set {adj}: {e}"))
            })?;
        }
        Ok(())
    }

    fn mount_rootfs(&mut self) -> Result<(), StageFailure> {
        let plan = self.plan;
        let rootfs_fd = rootfs::prepare(&plan.rootfs).map_err(|e| Self::fail("rootfs", e.errno(), e.to_string()))?;
        crate::sys::inroot::mkdir_all_in_root(rootfs_fd.as_fd(), &plan.process.cwd, 0o755).map_err(|e| {
            Self::fail("cwd", e.raw_os_error(), format!("process.cwd {}: {e}", plan.process.cwd.display()))
        })?;
        let process = self.spec.process().as_ref().expect("validated: process present");
        // With the mounts in place and as root: the passwd the workload will see.
        self.process = Some(home::with_home(process, rootfs_fd.as_fd(), plan.process.identity.uid));
        self.rootfs_fd = Some(rootfs_fd);
        Ok(())
    }

    fn kernel_settings(&mut self) -> Result<(), StageFailure> {
        let plan = self.plan;
        for (path, value) in &plan.sysctl {
            std::fs::write(path, value).map_err(|e| {
                let key = path.strip_prefix("/proc/sys").unwrap_or(path).to_string_lossy().replace('/', ".");
                Self::fail("sysctl", e.raw_os_error(), format!("linux.sysctl {key}: {e}"))
            })?;
        }
        if let Some(name) = &plan.hostname {
            nix::unistd::sethostname(name)
                .map_err(|e| Self::fail("hostname", Some(e as i32), format!("hostname {name:?}: {e}")))?;
        }
        if let Some(name) = &plan.domainname {
            crate::sys::uts::set_domainname(name)
                .map_err(|e| Self::fail("domainname", e.raw_os_error(), format!("domainname {name:?}: {e}")))?;
        }
        Ok(())
    }

    fn session_keyring(&mut self) -> Result<(), StageFailure> {
        let Some(name) = &self.plan.session_keyring else { return Ok(()) };
        match crate::sys::keyring::join_new_session_keyring(name) {
            // A kernel without keyrings, or one that refuses them in a user
            // namespace, leaves the container with the caller's (as runc does).
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EACCES | libc::EPERM)) => Ok(()),
            Err(e) => Err(Self::fail("keyring", e.raw_os_error(), format!("session keyring {name}: {e}"))),
            Ok(()) => Ok(()),
        }
    }

    fn create_hooks(&mut self) -> Result<(), StageFailure> {
        if !hooks::pauses_before_pivot(self.spec) {
            return Ok(());
        }
        create_hooks(self.spec, self.ends())
    }

    fn pivot_root(&mut self) -> Result<(), StageFailure> {
        rootfs::pivot(&self.plan.rootfs).map_err(|e| Self::fail("rootfs", e.errno(), e.to_string()))
    }

    fn seal_rootfs(&mut self) -> Result<(), StageFailure> {
        rootfs::seal(&self.plan.rootfs).map_err(|e| Self::fail("rootfs", e.errno(), e.to_string()))
    }

    /// Sleeps until `start`. Killing the container before then ends us here.
    /// The go byte stays in the fifo until the workload's door
    /// (`workload::run`): if we end before it, `start` finds it there and runs
    /// no poststart hook.
    fn wait_for_start(&mut self) -> Result<(), StageFailure> {
        if barrier::wait(self.barrier.as_fd()).is_err() {
            exit_now(1);
        }
        Ok(())
    }

    /// startContainer: inside the container, as its user, before the workload.
    /// A failure is told on the container's stderr and ends the init before the
    /// workload runs; `start` then succeeds (as runc's does) without poststart.
    fn start_hooks(&mut self) -> Result<(), StageFailure> {
        let start_hooks = HookKind::StartContainer.of(self.spec);
        if !start_hooks.is_empty()
            && let Err(e) =
                hooks::run(HookKind::StartContainer, start_hooks, self.start_state.as_deref().unwrap_or("{}"))
        {
            workload::report_failure(&e);
            exit_now(workload::EXEC_FAILED);
        }
        Ok(())
    }
}

/// The hooks of the create phase, with the mounts in place and before
/// `pivot_root`: the runtime runs prestart and createRuntime while we wait,
/// then we run createContainer here, in the container's namespaces.
fn create_hooks(spec: &oci_spec::runtime::Spec, ends: &InitEnds) -> Result<(), StageFailure> {
    let fail = |msg: String| StageFailure::new(Stage::Init, "hooks", None, msg);
    ends.to_parent.send(&FromInit::RunHooks).map_err(|e| fail(format!("ask for the runtime's hooks: {e}")))?;
    let state = match ends.from_parent.recv() {
        Ok(ToInit::HooksDone { state }) => state,
        // The runtime's hooks failed: the caller kills us; nothing to report.
        Err(ChannelError::Closed) => exit_now(1),
        Ok(other) => return Err(fail(format!("unexpected message {other:?} while the runtime ran hooks"))),
        Err(e) => return Err(fail(format!("wait for the runtime's hooks: {e}"))),
    };
    hooks::run(HookKind::CreateContainer, HookKind::CreateContainer.of(spec), &state).map_err(|e| fail(e.to_string()))
}
