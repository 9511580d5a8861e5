//! `create`: bundle → a container whose init waits at the start barrier.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use oci_spec::runtime::{Hooks, Process, Spec};

use super::Error;
use crate::bundle::Bundle;
use crate::cgroups::Cgroup;
use crate::console;
use crate::executor::Executor;
use crate::hooks::{HookKind, RuntimeHooks};
use crate::id::ContainerId;
use crate::plan::ContainerPlan;
use crate::process::barrier;
use crate::process::spawn::{InitRequest, Spawned, spawn};
use crate::state::atomic::{self, Tmp};
use crate::state::{ContainerState, Locked, OciState, Record, Status, Store};
use crate::sys::proc::ProcStat;

/// The flags of `create` (and the create half of `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// `--pid-file`: where the init's pid is written, once created.
    pub pid_file: Option<PathBuf>,
    /// `--console-socket`: where the pty master goes when `process.terminal` is set.
    pub console_socket: Option<PathBuf>,
    /// `--no-pivot`: move the rootfs to `/` instead of `pivot_root`.
    pub no_pivot: bool,
    /// `--no-new-keyring`: keep the caller's session keyring.
    pub no_new_keyring: bool,
    /// `--preserve-fds N`: fds 3..3+N of the caller go to the container.
    pub preserve_fds: u32,
    /// `--systemd-cgroup`: `linux.cgroupsPath` is `slice:prefix:name`.
    pub systemd_cgroup: bool,
    /// Socket activation (`LISTEN_FDS=N` in the caller's environment): fds
    /// 3..3+N go to the container before the `--preserve-fds` ones, and the
    /// process gets `LISTEN_FDS=N` and `LISTEN_PID=1`, as runc does.
    pub listen_fds: u32,
    /// `--rootless`: a cgroup is used only where the caller may write one (a
    /// delegated cgroup v2); otherwise the container stays in the caller's.
    pub rootless: bool,
    /// Where the executor's cache directory comes from, if it asks.
    pub cache_dir: crate::executor::CacheDirSource,
}

/// A created container.
#[derive(Debug)]
pub struct Created {
    /// The init's pid.
    pub pid: Pid,
}

/// Creates container `id` from `bundle`: everything is checked before the first
/// side effect, and a failure after it removes what was made (processes, cgroup,
/// state directory) before the error returns.
pub fn create(
    store: &Store,
    id: &ContainerId,
    bundle: &Bundle,
    executor: Box<dyn Executor>,
    options: &CreateOptions,
) -> Result<Created, Error> {
    create_with_console(store, id, bundle, executor, options, Console::Socket)
}

/// Where the pty master of a terminal process goes.
pub(super) enum Console {
    /// To `--console-socket` (if the process has a terminal): `create` and
    /// `run --detach`.
    Socket,
    /// To the caller, over this end of a socket pair: a foreground `run`.
    Relay(OwnedFd),
}

/// [`create`], with the master of a terminal going where `console` says.
pub(super) fn create_with_console(
    store: &Store,
    id: &ContainerId,
    bundle: &Bundle,
    executor: Box<dyn Executor>,
    options: &CreateOptions,
    console: Console,
) -> Result<Created, Error> {
    let span = tracing::debug_span!("create", id = %id);
    let _enter = span.enter();
    let activated;
    let spec = if options.listen_fds > 0 {
        let mut copy = bundle.spec.clone();
        if let Some(process) = copy.process_mut() {
            add_listen_fds_env(process, options.listen_fds);
        }
        activated = copy;
        &activated
    } else {
        &bundle.spec
    };
    let linux = spec.linux().as_ref();
    let cgroup_path =
        Cgroup::resolve_path(linux.and_then(|l| l.cgroups_path().as_deref()), id.as_str(), options.systemd_cgroup)?;
    let mut plan =
        ContainerPlan::new(spec, bundle.dir.clone(), bundle.rootfs.clone(), cgroup_path.clone(), options.no_pivot)?;
    if !options.no_new_keyring {
        // A session keyring of its own, named as runc names it.
        plan.session_keyring = Some(format!("_ses.{id}"));
    }
    super::rootless::check_privileges(spec, &plan)?;
    let console_socket = match console {
        Console::Relay(fd) => Some(fd),
        Console::Socket => {
            console::check_modes(plan.process.terminal, true, options.console_socket.is_some())?;
            options.console_socket.as_deref().map(console::connect).transpose()?
        }
    };

    let locked = store.reserve(id)?;
    let mut made = Made { locked: Some(locked), cgroup: None, spawned: None };
    match build(&mut made, id, bundle, spec, &plan, executor, &cgroup_path, options, console_socket) {
        Ok(created) => {
            made.disarm();
            Ok(created)
        }
        Err(error) => Err(made.unwind(error)),
    }
}

#[expect(clippy::too_many_arguments, reason = "create's own steps, called once; a struct would only rename them")]
fn build(
    made: &mut Made,
    id: &ContainerId,
    bundle: &Bundle,
    spec: &Spec,
    plan: &ContainerPlan,
    executor: Box<dyn Executor>,
    cgroup_path: &Path,
    options: &CreateOptions,
    console_socket: Option<OwnedFd>,
) -> Result<Created, Error> {
    let locked = made.locked.as_ref().expect("held until disarmed");
    let resources = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    let config_copy = locked.dir().config();
    std::fs::copy(bundle.dir.join("config.json"), &config_copy).map_err(|source| Error::Io {
        id: id.clone(),
        what: format!("copy config.json to {}", config_copy.display()),
        source,
    })?;
    let owner = locked.dir().mark();
    made.cgroup = super::rootless::cgroup(cgroup_path, resources, options.rootless, &owner)?;
    let cgroup = made.cgroup.as_ref();
    let barrier = barrier::create(&locked.dir().barrier()).map_err(|source| Error::Io {
        id: id.clone(),
        what: "make start barrier".into(),
        source,
    })?;

    let hook_state = OciState {
        oci_version: spec.version().clone(),
        id: id.to_string(),
        status: Status::Creating,
        pid: None,
        bundle: bundle.dir.clone(),
        annotations: spec.annotations().clone().unwrap_or_default(),
    };
    let request = InitRequest {
        plan,
        spec,
        executor,
        barrier,
        close_in_child: vec![locked.raw_fd()],
        preserve_fds: options.listen_fds + options.preserve_fds,
        runtime_hooks: RuntimeHooks::from_spec(spec, hook_state),
        console_socket,
        may_show_exe: crate::process::exe_guard::may_show(),
        // The init (or intermediate) joins the cgroup by itself: nothing to place.
        cgroup: cgroup.map(crate::cgroups::Cgroup::self_placement).transpose()?,
        cache_dir: options.cache_dir.cache_dir(),
    };
    let spawned = spawn(request)?;
    let pid = spawned.pid;
    let executor_name = spawned.executor.clone();
    let container_view_fd = spawned.container_view_fd;
    made.spawned = Some(spawned);

    let start_time = ProcStat::read(pid)
        .map_err(|source| Error::Io { id: id.clone(), what: format!("read /proc/{pid}/stat"), source })?
        .start_time;
    let record = Record {
        oci_version: spec.version().clone(),
        id: id.to_string(),
        pid: pid.as_raw(),
        start_time,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        created: crate::timestamp::now(),
        cgroup_path: cgroup_path.to_owned(),
        cgroup_created: cgroup.map(|c| c.created().to_vec()).unwrap_or_default(),
        own_pid_namespace: plan.namespaces.new.contains(&crate::plan::namespaces::Kind::Pid),
        executor: executor_name.clone(),
        owner: nix::unistd::geteuid().as_raw(),
        paused: false,
        hooks: later_hooks(spec),
        cgroup_skipped: cgroup.is_none(),
        container_view_fd,
    };
    locked.write(&record)?;
    if let Some(fd) = made.spawned.as_mut().and_then(|s| s.seccomp_notify.take()) {
        hand_to_seccomp_listener(plan, record.clone(), fd)?;
    }
    if let Some(path) = &options.pid_file {
        write_pid_file(path, pid)?;
    }
    let spawned = made.spawned.take().expect("set above");
    if HookKind::StartContainer.of(spec).is_empty() {
        spawned.commit()?;
    } else {
        spawned.commit_with_state(OciState::of(&record, HookKind::StartContainer.status()).to_json())?;
    }
    tracing::debug!(pid = pid.as_raw(), executor = %executor_name, "created");
    Ok(Created { pid })
}

/// Hands the seccomp notify descriptor to the profile's listener, with the
/// container's state (runtime-spec "container process state").
fn hand_to_seccomp_listener(plan: &ContainerPlan, record: Record, fd: std::os::fd::OwnedFd) -> Result<(), Error> {
    use std::os::fd::AsFd;
    let Some(listener) = plan.process.seccomp.as_ref().and_then(|s| s.listener()) else { return Ok(()) };
    let pid = record.pid;
    let state = ContainerState::of(&record, Status::Created);
    let state = serde_json::to_value(&state).unwrap_or_default();
    crate::seccomp::send_to_listener(&listener.path, &listener.metadata, &state, pid, fd.as_fd())?;
    Ok(())
}

/// The hooks that run after `create` (poststart in `start`, poststop in
/// `delete`), kept in the record; None when the spec has neither.
fn later_hooks(spec: &Spec) -> Option<Hooks> {
    let poststart = HookKind::Poststart.of(spec);
    let poststop = HookKind::Poststop.of(spec);
    if poststart.is_empty() && poststop.is_empty() {
        return None;
    }
    let mut hooks = Hooks::default();
    hooks.set_poststart(Some(poststart.to_vec()).filter(|l| !l.is_empty()));
    hooks.set_poststop(Some(poststop.to_vec()).filter(|l| !l.is_empty()));
    Some(hooks)
}

/// Socket activation: `LISTEN_FDS=n` and `LISTEN_PID=1` (the process is pid 1
/// of its namespace, or at least the one the fds are for), replacing any the
/// spec had.
pub(crate) fn add_listen_fds_env(process: &mut Process, n: u32) {
    let mut env: Vec<String> = process
        .env()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| !e.starts_with("LISTEN_FDS=") && !e.starts_with("LISTEN_PID="))
        .collect();
    env.push(format!("LISTEN_FDS={n}"));
    env.push("LISTEN_PID=1".to_owned());
    process.set_env(Some(env));
}

/// What `create` has made so far, removed again unless the create succeeds.
struct Made {
    locked: Option<Locked>,
    cgroup: Option<Cgroup>,
    spawned: Option<Spawned>,
}

impl Made {
    fn disarm(&mut self) {
        self.locked = None;
        self.cgroup = None;
        self.spawned = None;
    }

    /// Removes everything and reports any cleanup failure together with the
    /// error that caused the unwind.
    fn unwind(&mut self, error: Error) -> Error {
        let cleanup = self.cleanup();
        if cleanup.is_empty() {
            error
        } else {
            Error::WithCleanup { error: Box::new(error), cleanup: cleanup.join("; ") }
        }
    }

    /// Removes everything made so far, in reverse order.
    fn cleanup(&mut self) -> Vec<String> {
        let mut cleanup = Vec::new();
        if let Some(spawned) = self.spawned.take() {
            spawned.abort();
        }
        if let Some(cgroup) = self.cgroup.take()
            && let Err(e) = cgroup.remove()
        {
            cleanup.push(e.to_string());
        }
        if let Some(locked) = self.locked.take()
            && let Err(e) = locked.remove()
        {
            cleanup.push(e.to_string());
        }
        cleanup
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        // A panic between reserve and disarm must not leave a container behind.
        let _ = self.cleanup();
    }
}

/// Writes the init's pid (digits only, no newline) atomically
/// ([`atomic::replace`]), under a temporary name unique to this process in the
/// pid file's directory, so a reader never sees a partial file.
pub(crate) fn write_pid_file(path: &Path, pid: Pid) -> Result<(), Error> {
    let err = |source| Error::PidFile { path: path.to_owned(), source };
    let path = std::path::absolute(path).map_err(err)?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    atomic::replace(&path, &tmp, Tmp::Fresh, 0o644, pid.to_string().as_bytes()).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_activation_sets_listen_fds_and_pid_once() {
        let mut process: Process =
            serde_json::from_value(serde_json::json!({"cwd": "/", "args": ["x"], "user": {"uid": 0, "gid": 0},
                "env": ["PATH=/bin", "LISTEN_FDS=9", "LISTEN_PID=77"]}))
            .unwrap();
        add_listen_fds_env(&mut process, 2);
        assert_eq!(process.env().as_deref().unwrap(), ["PATH=/bin", "LISTEN_FDS=2", "LISTEN_PID=1"]);
    }

    #[test]
    fn only_poststart_and_poststop_are_kept_for_later() {
        let spec: Spec = serde_json::from_value(serde_json::json!({"ociVersion": "1.2.1", "hooks": {
            "createRuntime": [{"path": "/a"}], "poststop": [{"path": "/b"}]}}))
        .unwrap();
        let hooks = later_hooks(&spec).unwrap();
        assert_eq!(HookKind::Poststop.list(&hooks).len(), 1);
        assert!(HookKind::CreateRuntime.list(&hooks).is_empty());
        assert!(hooks.poststart().is_none());
        assert!(later_hooks(&Spec::default()).is_none());
    }
}
