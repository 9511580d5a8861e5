//! The caller's side of building a container process.

use std::io;
use std::os::fd::{OwnedFd, RawFd};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use super::channel::{ChannelError, Receiver, Sender, channel};
use super::{FromInit, FromIntermediate, Stage, StageFailure, ToInit, ToIntermediate, init, intermediate};
use crate::executor::{CacheDir, Executor, HostDir};
use crate::plan::ContainerPlan;
use crate::sys::clone::{Forked, clone_fork, clone_fork_into, exit_now};

/// Why the container process could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// A stage reported its own failure (the usual case: its message names the
    /// field or file).
    #[error(transparent)]
    Stage(#[from] StageFailure),
    #[error("{step}: {source}")]
    Sys { step: String, source: io::Error },
    #[error("the container's {stage:?} process exited before it was ready ({status})")]
    Died { stage: Stage, status: String },
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The caller's own step (cgroup placement) failed.
    #[error("{0}")]
    Caller(String),
    /// A prestart or createRuntime hook failed.
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
}

/// What the init needs, moved into it by the clone.
#[derive(Debug)]
pub struct InitRequest<'a> {
    pub plan: &'a ContainerPlan,
    pub spec: &'a Spec,
    pub executor: Box<dyn Executor>,
    /// The start barrier, open read-write ([`super::barrier::create`]).
    pub barrier: OwnedFd,
    /// Descriptors the child must close at once (the state lock).
    pub close_in_child: Vec<RawFd>,
    /// `--preserve-fds`: fds 3..3+N stay open in the workload.
    pub preserve_fds: u32,
    /// The hooks the caller runs while the init waits before `pivot_root`
    /// (None when the spec has no hook of the create phase). Stays with the
    /// caller: the init reads its own hooks from the spec.
    pub runtime_hooks: Option<crate::hooks::RuntimeHooks>,
    /// With `process.terminal`: the connected socket the init sends its pty
    /// master over ([`crate::console`]).
    pub console_socket: Option<OwnedFd>,
    /// [`super::exe_guard::may_show`], decided by the caller.
    pub may_show_exe: bool,
    /// The container's cgroup, which the first cloned stage joins by itself
    /// ([`clone_stage`], [`enter_stage`]).
    pub cgroup: Option<crate::cgroups::SelfPlacement>,
    /// Opens the executor's cache directory when the init asks for it. Stays
    /// with the caller.
    pub cache_dir: CacheDir<'a>,
}

/// The channel ends a cloned stage keeps.
pub(crate) struct InitEnds {
    pub to_parent: Sender<FromInit>,
    pub from_parent: Receiver<ToInit>,
}

/// An init that is ready and waits for [`Spawned::commit`].
#[derive(Debug)]
pub struct Spawned {
    pub pid: Pid,
    /// The seccomp user-notification descriptor, when the profile has one.
    pub seccomp_notify: Option<OwnedFd>,
    /// The executor the process chose in `prepare` (`native`, `wasm`).
    pub executor: String,
    /// The init's descriptor of the container's mount namespace, when the init
    /// itself lives in a guest's view (a wasm workload): exec joins through it.
    pub container_view_fd: Option<i32>,
    to_init: Sender<ToInit>,
    from_init: Receiver<FromInit>,
}

impl Spawned {
    /// Tells the init that the state is written: it goes to the start barrier.
    /// After this the caller may exit; the init lives on.
    pub fn commit(self) -> Result<(), SpawnError> {
        self.to_init.send(&ToInit::Commit)?;
        drop(self.from_init);
        Ok(())
    }

    /// [`Spawned::commit`] with the state the init's startContainer hooks get.
    pub fn commit_with_state(self, state: String) -> Result<(), SpawnError> {
        self.to_init.send(&ToInit::CommitWithState { state })?;
        drop(self.from_init);
        Ok(())
    }

    /// Kills the init and reaps it (create failed after the init was ready).
    pub fn abort(self) {
        kill_and_reap(self.pid);
    }
}

/// Clones the container's init (through an intermediate when the plan needs
/// one; the first child joins the container's cgroup by itself), writes the id
/// maps, and waits until the init reports ready. On failure everything that was
/// cloned is killed and reaped before the error returns.
pub fn spawn(mut request: InitRequest<'_>) -> Result<Spawned, SpawnError> {
    let hooks = request.runtime_hooks.take();
    let cache_dir = std::mem::replace(&mut request.cache_dir, CacheDir::none());
    let (to_init, init_from_parent) = channel::<ToInit>()?;
    let (init_to_parent, from_init) = channel::<FromInit>()?;
    let ns = &request.plan.namespaces;

    if !ns.needs_intermediate() {
        let flags = ns.clone_flags();
        let pid = match clone_stage(flags, &request.cgroup, "clone")? {
            Forked::Child => {
                drop(to_init);
                drop(from_init);
                init::run(request, InitEnds { to_parent: init_to_parent, from_parent: init_from_parent })
            }
            Forked::Parent(pid) => pid,
        };
        drop(init_to_parent);
        drop(init_from_parent);
        let guard = KillOnDrop(Some(pid));
        if ns.new_user {
            write_id_maps(pid, ns.uid_map.as_deref(), ns.gid_map.as_deref())?;
        }
        return finish(guard, to_init, from_init, hooks.as_ref(), cache_dir);
    }

    let (to_mid, mid_from_parent) = channel::<ToIntermediate>()?;
    let (mid_to_parent, from_mid) = channel::<FromIntermediate>()?;
    let mid = match clone_stage(0, &request.cgroup, "clone intermediate")? {
        Forked::Child => {
            drop((to_init, from_init, to_mid, from_mid));
            let code = intermediate::run(request, mid_to_parent, mid_from_parent, init_to_parent, init_from_parent);
            exit_now(code)
        }
        Forked::Parent(pid) => pid,
    };
    drop((mid_to_parent, mid_from_parent, init_to_parent, init_from_parent));
    let mid_guard = KillOnDrop(Some(mid));
    to_mid.send(&ToIntermediate::Go)?;
    let init_pid = loop {
        match from_mid.recv() {
            Ok(FromIntermediate::NeedMaps) => {
                write_id_maps(mid, ns.uid_map.as_deref(), ns.gid_map.as_deref())?;
                to_mid.send(&ToIntermediate::MapsWritten)?;
            }
            Ok(FromIntermediate::InitPid(pid)) => break Pid::from_raw(pid),
            Ok(FromIntermediate::Failed(failure)) => return Err(failure.into()),
            Err(ChannelError::Closed) => {
                let status = reap(mid);
                return Err(SpawnError::Died { stage: Stage::Intermediate, status });
            }
            Err(e) => return Err(e.into()),
        }
    };
    // The init is our child (CLONE_PARENT): guard it before the intermediate goes.
    let guard = KillOnDrop(Some(init_pid));
    mid_guard.reap();
    finish(guard, to_init, from_init, hooks.as_ref(), cache_dir)
}

/// Sends Go and waits for the init's verdict, running the runtime's hooks
/// when the init stops before `pivot_root` for them and opening the cache
/// directory when its executor asks.
pub(crate) fn finish(
    mut guard: KillOnDrop,
    to_init: Sender<ToInit>,
    from_init: Receiver<FromInit>,
    hooks: Option<&crate::hooks::RuntimeHooks>,
    cache_dir: CacheDir<'_>,
) -> Result<Spawned, SpawnError> {
    let pid = guard.0.expect("guard holds the init");
    to_init.send(&ToInit::Go)?;
    loop {
        return match from_init.recv_with_fds() {
            Ok((FromInit::RunHooks, _)) => {
                let Some(hooks) = hooks else {
                    return Err(SpawnError::Caller("the init asked for hooks the spec does not have".into()));
                };
                // A failure returns here: the guard kills the waiting init.
                let state = hooks.run(pid)?;
                to_init.send(&ToInit::HooksDone { state })?;
                continue;
            }
            Ok((FromInit::NeedCacheDir, _)) => {
                give_cache_dir(&to_init, cache_dir)?;
                continue;
            }
            Ok((FromInit::Ready { executor, container_view_fd }, mut fds)) => {
                guard.0 = None;
                Ok(Spawned { pid, seccomp_notify: fds.pop(), executor, container_view_fd, to_init, from_init })
            }
            Ok((FromInit::Failed(failure), _)) => Err(failure.into()),
            Err(ChannelError::Closed) => {
                guard.0 = None;
                let status = reap(pid);
                Err(SpawnError::Died { stage: Stage::Init, status })
            }
            Err(e) => Err(e.into()),
        };
    }
}

/// Answers a stage's [`FromInit::NeedCacheDir`]: opens the directory here, on
/// the host, sends its descriptor and closes the caller's copy.
fn give_cache_dir(to_init: &Sender<ToInit>, cache_dir: CacheDir<'_>) -> Result<(), SpawnError> {
    use std::os::fd::AsRawFd;
    match cache_dir.ask() {
        Ok(Some(HostDir { fd, path })) => {
            to_init.send_with_fds(&ToInit::CacheDir { path: Some(path) }, &[fd.as_raw_fd()])?;
        }
        Ok(None) => to_init.send(&ToInit::CacheDir { path: None })?,
        Err(refused) => to_init.send(&ToInit::CacheDirRefused { reason: refused.0 })?,
    }
    Ok(())
}

/// In a stage: asks the caller for the executor's cache directory and waits
/// for it (the executor's [`crate::executor::CacheDir`]).
pub(crate) fn ask_for_cache_dir(
    to_parent: &Sender<FromInit>,
    from_parent: &Receiver<ToInit>,
) -> Result<Option<HostDir>, String> {
    to_parent.send(&FromInit::NeedCacheDir).map_err(|e| format!("ask the runtime for the cache directory: {e}"))?;
    match from_parent.recv_with_fds() {
        Ok((ToInit::CacheDir { path: Some(path) }, mut fds)) if fds.len() == 1 => {
            Ok(fds.pop().map(|fd| HostDir { fd, path }))
        }
        Ok((ToInit::CacheDir { path: None }, _)) => Ok(None),
        Ok((ToInit::CacheDirRefused { reason }, _)) => Err(reason),
        Ok((other, _)) => Err(format!("unexpected answer {other:?} to a request for the cache directory")),
        Err(e) => Err(format!("wait for the cache directory: {e}")),
    }
}

/// Clones a stage (see [`clone_fork_into`]) born in the container's cgroup2
/// directory. Where `clone3` is refused (a kernel before 5.7, or the seccomp
/// profile of an outer container that hides it, as Docker's does), a plain
/// clone, and the caller writes the child's pid into that directory, the slow
/// way. The child waits for `Go` before it does anything, so it is placed in
/// time either way.
pub(crate) fn clone_stage(
    flags: libc::c_int,
    cgroup: &Option<crate::cgroups::SelfPlacement>,
    step: &str,
) -> Result<Forked, SpawnError> {
    let refused =
        |e: &io::Error| matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM | libc::EINVAL | libc::E2BIG));
    match clone_fork_into(flags, unified(cgroup)) {
        Err(e) if unified(cgroup).is_some() && refused(&e) => {
            tracing::debug!(error = %e, "clone3 into the cgroup refused: clone, then place the child");
            let forked = clone_fork(flags).map_err(|source| sys(step, source))?;
            if let (Forked::Parent(pid), Some(placement)) = (forked, cgroup)
                && let Err(e) = placement.place_in_unified(pid)
            {
                kill_and_reap(pid);
                return Err(SpawnError::Caller(e.to_string()));
            }
            Ok(forked)
        }
        other => other.map_err(|source| sys(step, source)),
    }
}

/// The cgroup2 directory a stage is cloned into, if any.
pub(crate) fn unified(cgroup: &Option<crate::cgroups::SelfPlacement>) -> Option<std::os::fd::BorrowedFd<'_>> {
    use std::os::fd::AsFd;
    cgroup.as_ref().and_then(|c| c.unified.as_ref()).map(|fd| fd.as_fd())
}

/// What a freshly cloned stage does first: names itself, forgets the caller's
/// command line and environment ([`crate::sys::cmdline`]), closes what the
/// caller holds that it must not (the state lock), and joins the v1 hierarchies
/// of the container's cgroup when it is the first stage. It takes the
/// placement, so a stage it clones later inherits the cgroup instead.
pub(crate) fn enter_stage(
    name: &std::ffi::CStr,
    close_in_child: &[RawFd],
    cgroup: &mut Option<crate::cgroups::SelfPlacement>,
    stage: Stage,
) -> Result<(), StageFailure> {
    let _ = nix::sys::prctl::set_name(name);
    // The caller's argv and environment (host paths, secrets) must not live
    // on in a process that ends up in the container.
    crate::sys::cmdline::forget_caller(name.to_bytes()).map_err(|e| {
        StageFailure::new(
            stage,
            "forget the caller",
            e.raw_os_error(),
            format!("clear the command line and environment: {e}"),
        )
    })?;
    for fd in close_in_child {
        let _ = nix::unistd::close(*fd);
    }
    match cgroup.take() {
        Some(placement) => placement
            .join_v1()
            .map_err(|e| StageFailure::new(stage, "cgroup", None, format!("join the container's cgroup: {e}"))),
        None => Ok(()),
    }
}

/// Writes `/proc/<pid>/uid_map` and `gid_map`. A caller privileged in the
/// parent user namespace leaves `setgroups` allowed; an unprivileged one (a
/// rootless container: it maps only its own ids) must deny it before the kernel
/// takes its `gid_map`.
fn write_id_maps(pid: Pid, uid_map: Option<&str>, gid_map: Option<&str>) -> Result<(), SpawnError> {
    let privileged = caps::has_cap(None, caps::CapSet::Effective, caps::Capability::CAP_SETGID).unwrap_or(false);
    let setgroups = (!privileged && gid_map.is_some()).then_some("deny");
    for (file, text) in [("uid_map", uid_map), ("setgroups", setgroups), ("gid_map", gid_map)] {
        let Some(text) = text else { continue };
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, text).map_err(|source| sys(format!("write {path}"), source))?;
    }
    Ok(())
}

fn sys(step: impl Into<String>, source: io::Error) -> SpawnError {
    SpawnError::Sys { step: step.into(), source }
}

/// Kills and reaps a child unless disarmed.
pub(crate) struct KillOnDrop(pub(crate) Option<Pid>);

impl KillOnDrop {
    /// Waits for a child that exits by itself (the intermediate), then disarms.
    pub(crate) fn reap(mut self) {
        if let Some(pid) = self.0.take() {
            reap(pid);
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            kill_and_reap(pid);
        }
    }
}

fn kill_and_reap(pid: Pid) {
    let _ = kill(pid, Signal::SIGKILL);
    reap(pid);
}

/// Reaps a child, describing how it ended.
pub(crate) fn reap(pid: Pid) -> String {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return format!("exit status {code}"),
            Ok(WaitStatus::Signaled(_, signal, _)) => return format!("killed by {signal}"),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return format!("wait: {e}"),
        }
    }
}
