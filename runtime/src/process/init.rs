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

use std::borrow::Cow;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sched::CloneFlags;
use oci_spec::runtime::Process;

use super::channel::ChannelError;
use super::spawn::{InitEnds, InitRequest};
use super::{FromInit, Stage, StageFailure, ToInit, barrier, home, rootfs, terminal, workload};
use crate::executor::{CacheDir, PrepareContext};
use crate::hooks::{self, HookKind};
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
    let InitRequest {
        plan, spec, mut executor, barrier: barrier_fd, preserve_fds, console_socket, may_show_exe, ..
    } = request;
    // The caller has written our id maps by now (it needs our /proc files for
    // that): from here on they are closed to the container.
    if let Err(failure) = super::exe_guard::hide(Stage::Init) {
        let _ = ends.to_parent.send(&FromInit::Failed(failure));
        exit_now(1);
    }

    let Built { notify, container_view, process } =
        match build(plan, spec, executor.as_mut(), &ends, console_socket, may_show_exe) {
            Ok(built) => built,
            Err(failure) => {
                let _ = ends.to_parent.send(&FromInit::Failed(failure));
                exit_now(1);
            }
        };
    // From Ready on the container counts as created, and `kill` of a created
    // container must work: the handlers go in before the caller can return.
    let _ = crate::sys::signal::exit_on_terminating_signals();
    // The seccomp notify descriptor travels with Ready: the caller hands it to
    // the profile's listener once the state exists.
    let fds: Vec<i32> = notify.iter().map(|fd| fd.as_raw_fd()).collect();
    // The container's view stays open for the container's life: exec joins it.
    let container_view_fd = container_view.as_ref().map(AsRawFd::as_raw_fd);
    let ready = FromInit::Ready { executor: executor.name().to_owned(), container_view_fd };
    if ends.to_parent.send_with_fds(&ready, &fds).is_err() {
        exit_now(1);
    }
    drop(notify);
    let start_state = match ends.from_parent.recv() {
        Ok(ToInit::Commit) => None,
        Ok(ToInit::CommitWithState { state }) => Some(state),
        Ok(ToInit::Go | ToInit::HooksDone { .. } | ToInit::CacheDir { .. } | ToInit::CacheDirRefused { .. })
        | Err(ChannelError::Closed | ChannelError::Sys(_) | ChannelError::Decode(_)) => exit_now(1),
    };
    drop(ends);

    // Sleep until `start`. Killing the container before then ends us here. The
    // go byte stays in the fifo until the workload's door (`workload::run`):
    // if we end before it, `start` finds it there and runs no poststart hook.
    if barrier::wait(barrier_fd.as_fd()).is_err() {
        exit_now(1);
    }

    // startContainer: inside the container, as its user, before the workload.
    // A failure is told on the container's stderr and ends the init before the
    // workload runs; `start` then succeeds (as runc's does) without poststart.
    let start_hooks = HookKind::StartContainer.of(spec);
    if !start_hooks.is_empty()
        && let Err(e) = hooks::run(HookKind::StartContainer, start_hooks, start_state.as_deref().unwrap_or("{}"))
    {
        workload::report_failure(&e);
        exit_now(workload::EXEC_FAILED);
    }

    workload::run(executor, &process, spec, preserve_fds, Some(barrier_fd))
}

/// What [`build`] leaves for the rest of the init's life.
struct Built<'s> {
    /// The seccomp notify descriptor, when the profile has one.
    notify: Option<OwnedFd>,
    /// For a workload that runs in this process: the container's mount
    /// namespace ([`super::guest_view`]).
    container_view: Option<OwnedFd>,
    /// The process to run (`HOME` added from the container's passwd, [`home`]).
    process: Cow<'s, Process>,
}

/// Everything between Go and Ready.
fn build<'s>(
    plan: &crate::plan::ContainerPlan,
    spec: &'s oci_spec::runtime::Spec,
    executor: &mut dyn crate::executor::Executor,
    ends: &InitEnds,
    console_socket: Option<OwnedFd>,
    may_show_exe: bool,
) -> Result<Built<'s>, StageFailure> {
    let fail = |step: &str, errno: Option<i32>, msg: String| StageFailure::new(Stage::Init, step, errno, msg);
    let ns = &plan.namespaces;

    if ns.new_user {
        super::intermediate::become_root_in_userns();
    }
    if ns.new_cgroup {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .map_err(|e| fail("cgroup namespace", Some(e as i32), format!("unshare cgroup namespace: {e}")))?;
    }
    // Modes given in the spec (devices, mount targets) are meant exactly.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());

    if let Some(adj) = plan.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| fail("oom score", e.raw_os_error(), format!("process.oomScoreAdj: set {adj}: {e}")))?;
    }

    let rootfs_fd = rootfs::prepare(&plan.rootfs).map_err(|e| fail("rootfs", e.errno(), e.to_string()))?;
    crate::sys::inroot::mkdir_all_in_root(rootfs_fd.as_fd(), &plan.process.cwd, 0o755)
        .map_err(|e| fail("cwd", e.raw_os_error(), format!("process.cwd {}: {e}", plan.process.cwd.display())))?;

    let process = spec.process().as_ref().expect("validated: process present");
    // With the mounts in place and as root: the passwd the workload will see.
    let process = home::with_home(process, rootfs_fd.as_fd(), plan.process.identity.uid);
    let ask = || super::spawn::ask_for_cache_dir(&ends.to_parent, &ends.from_parent);
    let ctx = PrepareContext {
        rootfs: plan.rootfs.rootfs(),
        rootfs_fd: rootfs_fd.as_fd(),
        process: &process,
        spec,
        cache_dir: CacheDir::new(&ask),
    };
    executor.prepare(&ctx).map_err(|e| fail("prepare", None, workload::error_chain(e.as_ref())))?;
    drop(rootfs_fd);
    let in_process = executor.runs_in_process();
    // Without a mount namespace of its own the container's is the host's: exec
    // joins the init's (its guest view) and enters its root instead.
    let keep_view = in_process && !plan.rootfs.inherits_mount_ns;
    let container_view = keep_view.then(|| super::guest_view::open_container_view(Stage::Init)).transpose()?;

    for (path, value) in &plan.sysctl {
        std::fs::write(path, value).map_err(|e| {
            let key = path.strip_prefix("/proc/sys").unwrap_or(path).to_string_lossy().replace('/', ".");
            fail("sysctl", e.raw_os_error(), format!("linux.sysctl {key}: {e}"))
        })?;
    }
    if let Some(name) = &plan.hostname {
        nix::unistd::sethostname(name)
            .map_err(|e| fail("hostname", Some(e as i32), format!("hostname {name:?}: {e}")))?;
    }
    if let Some(name) = &plan.domainname {
        crate::sys::uts::set_domainname(name)
            .map_err(|e| fail("domainname", e.raw_os_error(), format!("domainname {name:?}: {e}")))?;
    }
    workload::apply_lsm_labels(&plan.process, Stage::Init)?;
    if let Some(name) = &plan.session_keyring {
        match crate::sys::keyring::join_new_session_keyring(name) {
            // A kernel without keyrings, or one that refuses them in a user
            // namespace, leaves the container with the caller's (as runc does).
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EACCES | libc::EPERM)) => {}
            Err(e) => return Err(fail("keyring", e.raw_os_error(), format!("session keyring {name}: {e}"))),
            Ok(()) => {}
        }
    }

    if hooks::pauses_before_pivot(spec) {
        create_hooks(spec, ends)?;
    }

    // In the runtime's mount namespace the chroot's `/` is no mount point to make
    // a slave of: the guest's view is made first, from the namespace's root.
    let chroot = plan.rootfs.inherits_mount_ns;
    if in_process && chroot {
        super::guest_view::enter(Stage::Init)?;
    }
    rootfs::pivot(&plan.rootfs).map_err(|e| fail("rootfs", e.errno(), e.to_string()))?;
    // The pty comes from the container's devpts, so after the pivot; before the
    // read-only and masked paths, as runc orders it.
    if let Some(socket) = console_socket {
        terminal::attach(socket, &plan.process, true, Stage::Init)?;
    }
    rootfs::seal(&plan.rootfs).map_err(|e| fail("rootfs", e.errno(), e.to_string()))?;
    let setgroups_allowed = workload::setgroups_allowed();
    if in_process && !chroot {
        super::guest_view::enter(Stage::Init)?;
    }

    let notify = workload::become_process(&plan.process, Stage::Init, setgroups_allowed)?;
    workload::arm(executor, &process, spec, Stage::Init)?;
    super::exe_guard::show_if_harmless(may_show_exe, Stage::Init)?;
    Ok(Built { notify, container_view, process })
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
