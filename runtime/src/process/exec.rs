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

use std::borrow::Cow;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::sched::CloneFlags;
use nix::unistd::Pid;
use oci_spec::runtime::{Process, Spec};

use super::channel::{ChannelError, Receiver, Sender, channel};
use super::spawn::{KillOnDrop, SpawnError, Spawned, finish, reap};
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
    let ExecRequest { process, plan, spec, mut executor, preserve_fds, console_socket, may_show_exe, root, .. } =
        request;
    let io = Io { console_socket, root };
    let (notify, process) = match build(process, plan, spec, executor.as_mut(), io, may_show_exe, &ends) {
        Ok(built) => built,
        Err(failure) => {
            let _ = ends.to_parent.send(&FromInit::Failed(failure));
            exit_now(1);
        }
    };
    let fds: Vec<i32> = notify.iter().map(|fd| fd.as_raw_fd()).collect();
    let ready = FromInit::Ready { executor: executor.name().to_owned(), container_view_fd: None };
    if ends.to_parent.send_with_fds(&ready, &fds).is_err() {
        exit_now(1);
    }
    drop(notify);
    if !matches!(ends.from_parent.recv(), Ok(ToInit::Commit)) {
        exit_now(1);
    }
    drop(ends);
    workload::run(executor, &process, spec, preserve_fds, None)
}

/// The descriptors [`build`] consumes.
struct Io {
    console_socket: Option<std::os::fd::OwnedFd>,
    /// The init's root, when the container is a chroot in the runtime's mount
    /// namespace ([`open_init_root`]).
    root: Option<std::os::fd::OwnedFd>,
}

/// Everything between Go and Ready: returns the seccomp notify descriptor when
/// the profile has one, and the process to run (`HOME` added, [`home`]).
fn build<'p>(
    process: &'p Process,
    plan: &ProcessPlan,
    spec: &Spec,
    executor: &mut dyn Executor,
    io: Io,
    may_show_exe: bool,
    ends: &ChildEnds,
) -> Result<(Option<std::os::fd::OwnedFd>, Cow<'p, Process>), StageFailure> {
    let fail = |step: &str, errno, msg: String| StageFailure::new(Stage::Init, step, errno, msg);
    let chroot = io.root.is_some();
    let root = match io.root {
        // A chroot: the root is still the caller's. Work from the init's root
        // (the cwd follows it into a guest's view), enter it below.
        Some(root) => {
            nix::unistd::fchdir(root.as_raw_fd())
                .map_err(|e| fail("rootfs", Some(e as i32), format!("enter the container's root: {}", e.desc())))?;
            root
        }
        // setns into the mount namespace made its root ours: "/" is the container's.
        None => std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
            .open("/")
            .map(std::os::fd::OwnedFd::from)
            .map_err(|e| fail("rootfs", e.raw_os_error(), format!("open the container's root: {e}")))?,
    };
    // Still root, in the container's mount namespace (or at its root): its passwd.
    let process = home::with_home(process, root.as_fd(), plan.identity.uid);
    let ask = || super::spawn::ask_for_cache_dir(&ends.to_parent, &ends.from_parent);
    let ctx = PrepareContext {
        rootfs: Path::new("/"),
        rootfs_fd: root.as_fd(),
        process: &process,
        spec,
        cache_dir: CacheDir::new(&ask),
    };
    executor.prepare(&ctx).map_err(|e| fail("prepare", None, workload::error_chain(e.as_ref())))?;
    drop(root);
    workload::apply_lsm_labels(plan, Stage::Init)?;
    let setgroups_allowed = workload::setgroups_allowed();
    let in_process = executor.runs_in_process();
    if chroot {
        // The guest's view is made from the namespace's root, as the init makes
        // it (`/` of a chroot is no mount point to make a slave of).
        if in_process {
            super::guest_view::enter(Stage::Init)?;
        }
        nix::unistd::chroot(".")
            .map_err(|e| fail("rootfs", Some(e as i32), format!("chroot into the container's root: {}", e.desc())))?;
    }
    if let Some(socket) = io.console_socket {
        terminal::attach(socket, plan, false, Stage::Init)?;
    }
    if in_process && !chroot {
        super::guest_view::enter(Stage::Init)?;
    }
    let notify = workload::become_process(plan, Stage::Init, setgroups_allowed)?;
    workload::arm(executor, &process, spec, Stage::Init)?;
    exe_guard::show_if_harmless(may_show_exe, Stage::Init)?;
    Ok((notify, process))
}
