//! Building a process inside a running container (`exec`).
//!
//! ```text
//! caller (amphi exec)           intermediate                   exec'd process
//! fork ───────────────────────▶ waits for Go
//! cgroup add, Go ─────────────▶ setns(pidfd of the init, every
//!                               namespace that differs), clone
//!                               with CLONE_PARENT ────────────▶ waits for Go
//! ◀── pid ──────────────────── exits
//! Go ─────────────────────────────────────────────────────────▶ prepare, pty, identity, seccomp ─▶ Ready
//! pid file, Commit ───────────────────────────────────────────▶ Executor::exec
//! ```
//! One `setns` on the init's pidfd joins all of its namespaces at once, and no
//! path under `/proc` is walked after the first one is joined. Joining a pid
//! namespace only affects children, hence the intermediate; `CLONE_PARENT` keeps
//! the exec'd process a child of the caller, so that `exec` without `--detach`
//! can wait for it and, with `--detach`, the subreaper above the caller
//! (containerd's shim) inherits and reaps it as it does the init.
//!
//! A container without a mount namespace of its own shares the runtime's and
//! lives in a `chroot`: joining its namespaces does not change the root, so the
//! caller opens the init's root ([`open_init_root`]: `/proc/<pid>/root` of the
//! host's procfs, through the pid's directory checked to be the init's while
//! the pidfd still names it) and the process enters it as the init did:
//! `fchdir` to it, the executor's `prepare` against it, a wasm guest's view
//! made from the namespace's root, then `chroot(".")`.
//!
//! The exec'd process's order is [`super::steps::exec`], unit-tested against a
//! recording fake; [`LinuxExec`] holds its real steps.

use std::borrow::Cow;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::sched::CloneFlags;
use nix::unistd::Pid;
use oci_spec::runtime::{Process, Spec};

use super::channel::{ChannelError, Receiver, Sender, channel};
use super::spawn::{KillOnDrop, SpawnError, Spawned, finish, reap};
use super::steps::{ExecSteps, ProcessSteps, Shape};
use super::workload::Becoming;
use super::{
    FromInit, FromIntermediate, Stage, StageFailure, ToInit, ToIntermediate, exe_guard, home, terminal, workload,
};
use crate::executor::{CacheDir, Executor, PrepareContext};
use crate::plan::ProcessPlan;
use crate::plan::namespaces::Kind;
use crate::sys::clone::{Forked, clone_fork, exit_now};
use crate::sys::pidfd::PidFd;

/// What the exec'd process needs, moved into it by the clones.
#[derive(Debug)]
pub struct ExecRequest<'a> {
    /// The container's init, whose namespaces the process joins.
    pub init: &'a PidFd,
    /// The namespaces to join (those that differ from the caller's).
    pub join: CloneFlags,
    pub process: &'a Process,
    pub plan: &'a ProcessPlan,
    pub spec: &'a Spec,
    pub executor: Box<dyn Executor>,
    /// Descriptors the children must close at once (the state lock).
    pub close_in_child: Vec<RawFd>,
    pub preserve_fds: u32,
    /// With `process.terminal`: the connected socket the process sends its pty
    /// master over ([`crate::console`]).
    pub console_socket: Option<std::os::fd::OwnedFd>,
    /// [`super::exe_guard::may_show`], decided by the caller.
    pub may_show_exe: bool,
    /// The container's cgroup, which the intermediate joins by itself.
    pub cgroup: Option<crate::cgroups::SelfPlacement>,
    /// Opens the executor's cache directory when the process asks for it.
    /// Stays with the caller.
    pub cache_dir: CacheDir<'a>,
    /// The container's mount namespace when the init lives elsewhere (a wasm
    /// guest's view): joined instead of the init's.
    pub container_view: Option<std::os::fd::OwnedFd>,
    /// The init's root, for a container in the runtime's mount namespace
    /// ([`open_init_root`]): entered with `chroot` after the namespaces.
    pub root: Option<std::os::fd::OwnedFd>,
}

/// The root directory of the container's init (`/proc/<pid>/root`), opened
/// `O_PATH` from the host's procfs: the pid's directory is opened first and the
/// pidfd asked afterwards whether the init still lives, so the directory is the
/// init's and not a later process's that reused the pid; the link is then
/// followed from that directory, which fails once that process is gone.
pub fn open_init_root(init: &PidFd, pid: Pid) -> std::io::Result<std::os::fd::OwnedFd> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(format!("/proc/{pid}"))?;
    if !crate::sys::procfs::is_procfs(&dir)? {
        return Err(std::io::Error::from_raw_os_error(libc::EXDEV));
    }
    if !init.is_alive()? {
        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
    }
    // A magic link of the host's procfs, followed on purpose: it is the init's root.
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
    crate::sys::inroot::openat2(dir.as_fd(), Path::new("root"), flags, Mode::empty(), 0)
}

/// The namespaces of `init_pid` that differ from the caller's: what an exec'd
/// process must join. A namespace the kernel lacks is skipped.
pub fn namespaces_to_join(init_pid: Pid) -> std::io::Result<CloneFlags> {
    use std::os::unix::fs::MetadataExt;
    let mut flags = CloneFlags::empty();
    for kind in [Kind::User, Kind::Mount, Kind::Pid, Kind::Network, Kind::Ipc, Kind::Uts, Kind::Cgroup, Kind::Time] {
        let theirs = match std::fs::metadata(format!("/proc/{init_pid}/ns/{}", kind.proc_name())) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && kind == Kind::Time => continue,
            Err(e) => return Err(e),
        };
        let ours = std::fs::metadata(format!("/proc/self/ns/{}", kind.proc_name()))?;
        if (theirs.dev(), theirs.ino()) != (ours.dev(), ours.ino()) {
            flags |= CloneFlags::from_bits_retain(kind.flag());
        }
    }
    Ok(flags)
}

/// Builds the exec'd process; returns once it is ready (the caller then writes
/// the pid file and calls [`Spawned::commit`]). On failure everything cloned is
/// killed and reaped.
pub fn spawn_exec(mut request: ExecRequest<'_>) -> Result<Spawned, SpawnError> {
    let cache_dir = std::mem::replace(&mut request.cache_dir, CacheDir::none());
    let (to_child, child_from_parent) = channel::<ToInit>()?;
    let (child_to_parent, from_child) = channel::<FromInit>()?;
    let (to_mid, mid_from_parent) = channel::<ToIntermediate>()?;
    let (mid_to_parent, from_mid) = channel::<FromIntermediate>()?;

    let mid = match super::spawn::clone_stage(0, &request.cgroup, "clone")? {
        Forked::Child => {
            drop((to_child, from_child, to_mid, from_mid));
            let ends = ChildEnds { to_parent: child_to_parent, from_parent: child_from_parent };
            exit_now(intermediate(request, mid_to_parent, mid_from_parent, ends))
        }
        Forked::Parent(pid) => pid,
    };
    drop((mid_to_parent, mid_from_parent, child_to_parent, child_from_parent));
    let mid_guard = KillOnDrop(Some(mid));
    to_mid.send(&ToIntermediate::Go)?;
    let pid = match from_mid.recv() {
        Ok(FromIntermediate::InitPid(pid)) => Pid::from_raw(pid),
        Ok(FromIntermediate::Failed(failure)) => return Err(failure.into()),
        Ok(FromIntermediate::NeedMaps) => {
            return Err(SpawnError::Caller("exec: unexpected request for id maps".into()));
        }
        Err(ChannelError::Closed) => {
            let mut guard = mid_guard;
            let status = guard.0.take().map(reap).unwrap_or_default();
            return Err(SpawnError::Died { stage: Stage::Intermediate, status });
        }
        Err(e) => return Err(e.into()),
    };
    let guard = KillOnDrop(Some(pid));
    mid_guard.reap();
    finish(guard, to_child, from_child, None, cache_dir)
}

struct ChildEnds {
    to_parent: Sender<FromInit>,
    from_parent: Receiver<ToInit>,
}

/// The intermediate: joins the container's namespaces and clones the process.
fn intermediate(
    mut request: ExecRequest<'_>,
    to_parent: Sender<FromIntermediate>,
    from_parent: Receiver<ToIntermediate>,
    ends: ChildEnds,
) -> i32 {
    let entered =
        super::spawn::enter_stage(c"amphi:exec-mid", &request.close_in_child, &mut request.cgroup, Stage::Intermediate);
    if let Err(failure) = entered {
        let _ = to_parent.send(&FromIntermediate::Failed(failure));
        return 1;
    }
    if !matches!(from_parent.recv(), Ok(ToIntermediate::Go)) {
        return 1;
    }
    // Before joining: the process it clones is in the container from birth.
    if let Err(failure) = exe_guard::hide(Stage::Intermediate) {
        let _ = to_parent.send(&FromIntermediate::Failed(failure));
        return 1;
    }
    let joined = match &request.container_view {
        Some(view) => nix::sched::setns(request.init.as_fd(), request.join - CloneFlags::CLONE_NEWNS)
            .and_then(|()| nix::sched::setns(view.as_fd(), CloneFlags::CLONE_NEWNS)),
        None => nix::sched::setns(request.init.as_fd(), request.join),
    };
    request.container_view = None;
    if let Err(e) = joined {
        let failure = StageFailure::new(
            Stage::Intermediate,
            "join namespaces",
            Some(e as i32),
            format!("join the container's namespaces: {e}"),
        );
        let _ = to_parent.send(&FromIntermediate::Failed(failure));
        return 1;
    }
    match clone_fork(libc::CLONE_PARENT) {
        Ok(Forked::Child) => {
            drop((to_parent, from_parent));
            child(request, ends)
        }
        Ok(Forked::Parent(pid)) => i32::from(to_parent.send(&FromIntermediate::InitPid(pid.as_raw())).is_err()),
        Err(e) => {
            let failure = StageFailure::new(Stage::Intermediate, "clone", e.raw_os_error(), format!("clone: {e}"));
            let _ = to_parent.send(&FromIntermediate::Failed(failure));
            1
        }
    }
}

/// The exec'd process, inside every namespace of the container.
fn child(request: ExecRequest<'_>, ends: ChildEnds) -> ! {
    let _ = nix::sys::prctl::set_name(c"amphi:exec");
    if !matches!(ends.from_parent.recv(), Ok(ToInit::Go)) {
        exit_now(1);
    }
    let ExecRequest { process, plan, spec, executor, preserve_fds, console_socket, may_show_exe, root, .. } = request;
    let shape = Shape { no_new_privileges: plan.identity.no_new_privileges, chroot: root.is_some() };
    let mut exec = LinuxExec {
        process: Cow::Borrowed(process),
        plan,
        spec,
        executor,
        ends: Some(ends),
        console_socket,
        root,
        may_show_exe,
        becoming: Becoming::new(plan, Stage::Init),
    };
    if let Err(failure) = super::steps::exec(&mut exec, shape) {
        if let Some(ends) = &exec.ends {
            let _ = ends.to_parent.send(&FromInit::Failed(failure));
        }
        exit_now(1);
    }
    let LinuxExec { executor, process, .. } = exec;
    workload::run(executor, &process, spec, preserve_fds, None, None)
}

/// The exec'd process's real steps, in the order [`super::steps::exec`] runs
/// them, and what they leave for each other.
struct LinuxExec<'p> {
    /// The process to run (`HOME` added from the container's passwd, [`home`]).
    process: Cow<'p, Process>,
    plan: &'p ProcessPlan,
    spec: &'p Spec,
    executor: Box<dyn Executor>,
    /// The channel to the caller, until the commit.
    ends: Option<ChildEnds>,
    /// With `process.terminal`: the socket the pty master goes over.
    console_socket: Option<std::os::fd::OwnedFd>,
    /// The init's root, when the container is a chroot in the runtime's mount
    /// namespace ([`open_init_root`]); then the container's root, from
    /// [`ExecSteps::enter_root`] to the executor's `prepare`.
    root: Option<std::os::fd::OwnedFd>,
    may_show_exe: bool,
    becoming: Becoming<'p>,
}

impl LinuxExec<'_> {
    fn fail(step: &str, errno: Option<i32>, msg: String) -> StageFailure {
        StageFailure::new(Stage::Init, step, errno, msg)
    }
}

impl<'p> ProcessSteps for LinuxExec<'p> {
    type Identity = Becoming<'p>;
    fn identity(&mut self) -> &mut Self::Identity {
        &mut self.becoming
    }

    fn prepare_executor(&mut self) -> Result<bool, StageFailure> {
        let ends = self.ends.as_ref().expect("the channel is open until the commit");
        let root = self.root.take().expect("set by enter_root");
        let ask = || super::spawn::ask_for_cache_dir(&ends.to_parent, &ends.from_parent);
        let ctx = PrepareContext {
            rootfs: Path::new("/"),
            rootfs_fd: root.as_fd(),
            process: &self.process,
            spec: self.spec,
            cache_dir: CacheDir::new(&ask),
        };
        self.executor.prepare(&ctx).map_err(|e| Self::fail("prepare", None, workload::error_chain(e.as_ref())))?;
        drop(root);
        Ok(self.executor.runs_in_process())
    }

    fn lsm_labels(&mut self) -> Result<(), StageFailure> {
        workload::apply_lsm_labels(self.plan, Stage::Init)
    }

    fn attach_terminal(&mut self) -> Result<(), StageFailure> {
        match self.console_socket.take() {
            Some(socket) => terminal::attach(socket, self.plan, false, Stage::Init),
            None => Ok(()),
        }
    }

    fn enter_guest_view(&mut self) -> Result<(), StageFailure> {
        super::guest_view::enter(Stage::Init)
    }

    fn arm_executor(&mut self) -> Result<(), StageFailure> {
        workload::arm(self.executor.as_mut(), &self.process, self.spec, Stage::Init)
    }

    fn show_exe(&mut self) -> Result<(), StageFailure> {
        exe_guard::show_if_harmless(self.may_show_exe, Stage::Init)
    }

    /// From Ready on nothing is reported to the caller: a failure ends the
    /// process here.
    fn report_ready(&mut self) -> Result<(), StageFailure> {
        let ends = self.ends.take().expect("the channel is open until the commit");
        let notify = self.becoming.notify.take();
        let fds: Vec<i32> = notify.iter().map(|fd| fd.as_raw_fd()).collect();
        let ready = FromInit::Ready { executor: self.executor.name().to_owned(), container_view_fd: None };
        if ends.to_parent.send_with_fds(&ready, &fds).is_err() {
            exit_now(1);
        }
        drop(notify);
        if !matches!(ends.from_parent.recv(), Ok(ToInit::Commit)) {
            exit_now(1);
        }
        Ok(())
    }
}

impl ExecSteps for LinuxExec<'_> {
    fn enter_root(&mut self) -> Result<(), StageFailure> {
        let root = match self.root.take() {
            // A chroot: the root is still the caller's. Work from the init's root
            // (the cwd follows it into a guest's view), enter it below.
            Some(root) => {
                nix::unistd::fchdir(root.as_raw_fd()).map_err(|e| {
                    Self::fail("rootfs", Some(e as i32), format!("enter the container's root: {}", e.desc()))
                })?;
                root
            }
            // setns into the mount namespace made its root ours: "/" is the container's.
            None => std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
                .open("/")
                .map(std::os::fd::OwnedFd::from)
                .map_err(|e| Self::fail("rootfs", e.raw_os_error(), format!("open the container's root: {e}")))?,
        };
        // Still root, in the container's mount namespace (or at its root): its passwd.
        if let Cow::Borrowed(process) = self.process {
            self.process = home::with_home(process, root.as_fd(), self.plan.identity.uid);
        }
        self.root = Some(root);
        Ok(())
    }

    /// The guest's view was made from the namespace's root, as the init makes
    /// it (`/` of a chroot is no mount point to make a slave of); now the root.
    fn chroot(&mut self) -> Result<(), StageFailure> {
        nix::unistd::chroot(".").map_err(|e| {
            Self::fail("rootfs", Some(e as i32), format!("chroot into the container's root: {}", e.desc()))
        })
    }
}
