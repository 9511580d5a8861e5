//! `exec`: runs a new process inside a running container (in a container
//! without a mount namespace of its own, inside its init's root: see
//! [`crate::process::exec`]).

use std::os::fd::AsFd;
use std::path::PathBuf;

use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use oci_spec::runtime::{Capability, Process, Spec};

use super::Error;
use super::create::write_pid_file;
use super::identity::Init;
use crate::cgroups::Cgroup;
use crate::console::{self, HostConsole};
use crate::executor::Executor;
use crate::id::ContainerId;
use crate::plan::namespaces::Kind;
use crate::plan::{NamespacePlan, ProcessPlan};
use crate::process::exec::{ExecRequest, namespaces_to_join, open_init_root, spawn_exec};
use crate::state::{ContainerState, Record, Status, Store, Verb};

/// The flags of `exec`. Without `process`, the new process is the container's
/// own `process` with `args` and the overrides applied (as runc builds it).
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// A whole Process (`--process FILE`).
    pub process: Option<Process>,
    /// The command and its arguments, when there is no `--process`.
    pub args: Vec<String>,
    /// `KEY=VALUE` entries added to (or replacing) the container's env.
    pub env: Vec<String>,
    /// `--cwd`: the working directory in the container.
    pub cwd: Option<PathBuf>,
    /// `--user UID[:GID]`.
    pub user: Option<(u32, Option<u32>)>,
    /// `--additional-gids`.
    pub additional_gids: Vec<u32>,
    /// Capabilities added to every set (`CAP_NET_ADMIN` or `NET_ADMIN`).
    pub caps: Vec<String>,
    /// `--no-new-privs`.
    pub no_new_privs: bool,
    /// `--tty`: the process gets a pty.
    pub tty: bool,
    /// `--detach`: return once the process runs instead of waiting for it.
    pub detach: bool,
    /// `--pid-file`: where the process's pid is written.
    pub pid_file: Option<PathBuf>,
    /// `--console-socket`: where the pty master goes with `--tty`.
    pub console_socket: Option<PathBuf>,
    /// `--preserve-fds N`: fds 3..3+N of the caller go to the process.
    pub preserve_fds: u32,
    /// Where the executor's cache directory comes from, if it asks.
    pub cache_dir: crate::executor::CacheDirSource,
}

/// The container's mount namespace, when its init lives in a wasm guest's view
/// ([`Record::container_view_fd`]): a copy of the init's descriptor, checked to
/// be a mount namespace.
fn container_view(init: &crate::sys::pidfd::PidFd, record: &Record) -> std::io::Result<Option<std::os::fd::OwnedFd>> {
    let Some(fd) = record.container_view_fd else { return Ok(None) };
    let view = init.get_fd(fd)?;
    if crate::sys::ns::namespace_type(view.as_fd())? != libc::CLONE_NEWNS {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("descriptor {fd} is not a mount namespace"),
        ));
    }
    Ok(Some(view))
}

/// Chooses the executor for the exec'd process (decided again for every
/// process: a native tool may be exec'd into a wasm container and back).
pub type ChooseExecutor<'a> = &'a dyn Fn(&Spec, &Process) -> Box<dyn Executor>;

/// Runs a process in container `id`. Returns its exit status (128+N when a
/// signal N ended it), or 0 with `detach` once it runs.
pub fn exec(store: &Store, id: &ContainerId, options: &ExecOptions, choose: ChooseExecutor<'_>) -> Result<i32, Error> {
    let span = tracing::debug_span!("exec", id = %id);
    let _enter = span.enter();
    let opened = store.open(id, Verb::Exec)?;
    let config_path = opened.dir().config();
    let spec = Spec::load(&config_path).map_err(|e| Error::Io {
        id: id.clone(),
        what: format!("read {}", config_path.display()),
        source: std::io::Error::other(e.to_string()),
    })?;
    let mut process = match &options.process {
        Some(process) => process.clone(),
        None => {
            let base = spec.process().clone().unwrap_or_default();
            exec_process(&base, options)?
        }
    };
    if options.tty {
        process.set_terminal(Some(true));
    }
    // The process rules `create` applies, whether `--process` or flags made it.
    crate::plan::process::check(&process)?;
    let plan = ProcessPlan::new(&process, spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()))?;
    let cgroup = opened.own_cgroup(Verb::Exec)?;
    let super::open::Opened { locked, record, init, status } = opened;
    let Init::Alive(init) = init else {
        return Err(Error::bad_status(id.clone(), Status::Stopped, Verb::Exec));
    };
    let io = |what: &str| {
        let what = what.to_owned();
        let id = id.clone();
        move |source| Error::Io { id, what, source }
    };
    // The terminal: runc's rules, then where the master goes — the console
    // socket, or (in the foreground) this process, which relays it.
    console::check_modes(plan.terminal, options.detach, options.console_socket.is_some())?;
    let mut host = (plan.terminal && !options.detach).then(HostConsole::find).transpose()?;
    let (relay_end, console_socket) = match (&options.console_socket, plan.terminal) {
        (Some(path), true) => (None, Some(console::connect(path)?)),
        (None, true) => {
            let (ours, theirs) = console::pair()?;
            (Some(ours), Some(theirs))
        }
        (_, false) => (None, None),
    };
    let join = namespaces_to_join(init.pid).map_err(io("read the init's namespaces"))?;
    // A container in the runtime's mount namespace is a chroot: the process
    // enters the init's root (the module docs of `process::exec`).
    let (container_view, root) = if NamespacePlan::new(&spec)?.has(Kind::Mount) {
        let view =
            container_view(&init.pidfd, &record).map_err(io("take the container's mount namespace from its init"))?;
        (view, None)
    } else {
        (None, Some(open_init_root(&init.pidfd, init.pid).map_err(io("open the root of the container's init"))?))
    };
    let executor = choose(&spec, &process);

    // As for `run`: no signal may be lost between the clone and the wait.
    let mut old = SigSet::empty();
    if !options.detach {
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&SigSet::all()), Some(&mut old))
            .map_err(|e| io("block signals")(e.into()))?;
    }
    let result = (|| {
        let request = ExecRequest {
            init: &init.pidfd,
            join,
            process: &process,
            plan: &plan,
            spec: &spec,
            executor,
            close_in_child: vec![locked.raw_fd()],
            preserve_fds: options.preserve_fds,
            console_socket,
            may_show_exe: crate::process::exe_guard::may_show(),
            // The exec'd process's intermediate joins the cgroup by itself.
            cgroup: cgroup.as_ref().map(Cgroup::self_placement).transpose()?,
            cache_dir: options.cache_dir.cache_dir(),
            container_view,
            root,
        };
        let mut spawned = spawn_exec(request)?;
        let pid = spawned.pid;
        let master = match relay_end.as_ref().map(|end| console::receive_master(end.as_fd())).transpose() {
            Ok(master) => master,
            Err(e) => {
                spawned.abort();
                return Err(e.into());
            }
        };
        // The host terminal's size, before the process runs and asks for it.
        if let (Some(master), Some(host)) = (&master, &host) {
            let _ = host.resize(master.as_fd());
        }
        if let Some(fd) = spawned.seccomp_notify.take()
            && let Some(listener) = plan.seccomp.as_ref().and_then(|s| s.listener())
        {
            let state = ContainerState::of(&record, status);
            let state = serde_json::to_value(&state).unwrap_or_default();
            if let Err(e) =
                crate::seccomp::send_to_listener(&listener.path, &listener.metadata, &state, pid.as_raw(), fd.as_fd())
            {
                spawned.abort();
                return Err(e.into());
            }
        }
        if let Some(path) = &options.pid_file
            && let Err(e) = write_pid_file(path, pid)
        {
            spawned.abort();
            return Err(e);
        }
        spawned.commit()?;
        // The lock guards the container's state, not the process's life: a
        // `kill` or `delete` must not wait for an exec to end.
        drop(locked);
        if options.detach {
            return Ok(0);
        }
        if let (Some(master), Some(host)) = (master, host.as_mut()) {
            return super::run::relay_until_exit(master, host, pid);
        }
        super::run::wait_forwarding(pid).map_err(|e| io("wait for the process")(e.into()))
    })();
    if !options.detach {
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
    result
}

/// The container's process changed as runc's `exec` flags change it.
pub(crate) fn exec_process(base: &Process, options: &ExecOptions) -> Result<Process, Error> {
    let mut process = base.clone();
    process.set_args(Some(options.args.clone()));
    process.set_terminal(Some(options.tty));
    let mut env = base.env().clone().unwrap_or_default();
    for entry in &options.env {
        let Some((key, _)) = entry.split_once('=') else {
            return Err(Error::Exec(format!("--env {entry:?}: not KEY=VALUE")));
        };
        env.retain(|e| e.split_once('=').map(|(k, _)| k) != Some(key));
        env.push(entry.clone());
    }
    process.set_env(Some(env));
    if let Some(cwd) = &options.cwd {
        process.set_cwd(cwd.clone());
    }
    let mut user = process.user().clone();
    if let Some((uid, gid)) = options.user {
        user.set_uid(uid);
        user.set_gid(gid.unwrap_or(0));
    }
    if !options.additional_gids.is_empty() {
        user.set_additional_gids(Some(options.additional_gids.clone()));
    }
    process.set_user(user);
    if options.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    if !options.caps.is_empty() {
        let mut caps = process.capabilities().clone().unwrap_or_default();
        for name in &options.caps {
            let cap: Capability = serde_json::from_value(serde_json::Value::String(name.clone()))
                .map_err(|_| Error::Exec(format!("--cap {name:?}: unknown capability")))?;
            let add = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut set = set.clone().unwrap_or_default();
                set.insert(cap);
                Some(set)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
            caps.set_inheritable(add(caps.inheritable()));
            caps.set_ambient(add(caps.ambient()));
        }
        process.set_capabilities(Some(caps));
    }
    Ok(process)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Process {
        serde_json::from_str(
            r#"{"cwd":"/srv","user":{"uid":5,"gid":6},"args":["/init"],"env":["PATH=/bin","A=1"],
            "capabilities":{"bounding":["CAP_KILL"],"effective":["CAP_KILL"],"permitted":["CAP_KILL"]}}"#,
        )
        .unwrap()
    }

    #[test]
    fn flags_override_the_container_process() {
        let options = ExecOptions {
            args: vec!["/bin/sh".into(), "-c".into(), "id".into()],
            env: vec!["A=2".into(), "B=3".into()],
            cwd: Some("/tmp".into()),
            user: Some((1000, Some(100))),
            additional_gids: vec![7],
            caps: vec!["NET_ADMIN".into()],
            no_new_privs: true,
            tty: true,
            ..Default::default()
        };
        let p = exec_process(&base(), &options).unwrap();
        assert_eq!(p.args().as_deref().unwrap(), ["/bin/sh", "-c", "id"]);
        assert_eq!(p.env().as_deref().unwrap(), ["PATH=/bin", "A=2", "B=3"]);
        assert_eq!(p.cwd(), std::path::Path::new("/tmp"));
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 100));
        assert_eq!(p.user().additional_gids().as_deref(), Some(&[7][..]));
        assert_eq!(p.no_new_privileges(), Some(true));
        assert_eq!(p.terminal(), Some(true));
        let caps = p.capabilities().as_ref().unwrap();
        for set in [caps.bounding(), caps.effective(), caps.permitted(), caps.inheritable(), caps.ambient()] {
            assert!(set.as_ref().unwrap().contains(&Capability::NetAdmin));
        }
        assert!(caps.bounding().as_ref().unwrap().contains(&Capability::Kill));
    }

    #[test]
    fn without_flags_the_container_process_is_kept() {
        let options = ExecOptions { args: vec!["/bin/true".into()], ..Default::default() };
        let p = exec_process(&base(), &options).unwrap();
        assert_eq!(p.cwd(), std::path::Path::new("/srv"));
        assert_eq!(p.user().uid(), 5);
        assert_eq!(p.env().as_deref().unwrap(), ["PATH=/bin", "A=1"]);
    }

    #[test]
    fn bad_flags_are_named() {
        let bad_env = ExecOptions { args: vec!["x".into()], env: vec!["NOEQUALS".into()], ..Default::default() };
        assert!(exec_process(&base(), &bad_env).unwrap_err().to_string().contains("--env"));
        let bad_cap = ExecOptions { args: vec!["x".into()], caps: vec!["CAP_NOPE".into()], ..Default::default() };
        assert!(exec_process(&base(), &bad_cap).unwrap_err().to_string().contains("--cap \"CAP_NOPE\""));
    }
}
