//! # OCI hooks
//!
//! A hook is a program the runtime runs at one moment of a container's life, with
//! the container's state (runtime-spec `state`) as JSON on its stdin. This module
//! runs one list of hooks ([`run`]); the callers decide when and where:
//!
//! | kind | who runs it | when | namespaces | `status` on stdin |
//! |---|---|---|---|---|
//! | `prestart` (deprecated), `createRuntime` | `create`, in [`crate::process::spawn`] | the init has mounted the rootfs and waits before `pivot_root` | the runtime's | `creating` |
//! | `createContainer` | the init | right after them, still before `pivot_root` (the path resolves in the runtime's view, as runc does) | the container's | `creating` |
//! | `startContainer` | the init | after the start barrier, before the executor (as the container's user, after `pivot_root`) | the container's | `created` |
//! | `poststart` | `start` | after the workload was executed: a native one's `execve` succeeded, a wasm guest was entered (instantiated, its entry point about to be called); never when the init ended before that | the runtime's | `running` |
//! | `poststop` | `delete` | after the processes are gone, before the state directory goes | the runtime's | `stopped` |
//!
//! The statuses are the runtime-spec's for those points of the lifecycle: the
//! container is `creating` until `create` has finished, `created` until the
//! user's program was executed (the startContainer hooks run just before it),
//! `running` once it was, `stopped` once its process has exited. The state
//! ([`OciState::to_json`]) carries the init's `pid` as the runtime sees it,
//! except when `stopped`.
//!
//! `prestart` runs before `createRuntime` at the same moment, as runc does. A failing
//! `prestart`, `createRuntime` or `createContainer` hook fails `create`, which
//! unwinds everything it made, and the hooks after it do not run ([`run`]); a
//! failing `startContainer` hook ends the init before the workload runs (`start`
//! succeeds as with runc, without running poststart: the one line naming the hook
//! goes to the container's stderr and the container stops). A failing
//! `poststart` or `poststop` hook is logged as a warning, the remaining hooks of
//! its kind still run, and `start` or `delete` succeeds ([`run_logged`]).
//!
//! How `start` knows that the workload was executed is the start barrier's
//! business ([`crate::process::barrier`]).
//!
//! ## Running one hook
//!
//! The hook gets exactly its own `env` (nothing is inherited), `args[0]` as its
//! `argv[0]` (the path when `args` is empty), its own process group, and the state
//! on stdin: a pipe filled and closed before the hook starts, so a hook that never
//! reads cannot block the runtime and no `SIGPIPE` can reach it. Its stdout and
//! stderr share one pipe whose tail is kept for the error message. The runtime
//! waits in `poll(2)` on the hook's pidfd and that pipe, with the hook's `timeout`
//! as the poll's timeout: no timer, no sleep, no thread. A hook that outlives its
//! timeout is killed with its whole process group.
//!
//! ## What this module must never do
//!
//! Start a thread (the init runs hooks too), or pass the runtime's environment or
//! descriptors to a hook: every descriptor amphi opens is close-on-exec, and the
//! environment is cleared.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::{Hook, Hooks, Spec};

use crate::state::{OciState, Status};
use crate::sys::pidfd::PidFd;

/// How much of a failing hook's output its error quotes.
const EXCERPT_CHARS: usize = 200;
/// How much of a hook's output is kept while it runs (the tail).
const KEPT_OUTPUT: usize = 4096;
/// The largest state a hook can be given (a pipe can be grown to 1 MiB by
/// default; a state is a few hundred bytes plus the annotations).
const MAX_STATE: usize = 1 << 20;

/// The six kinds of hook, named as in `config.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl HookKind {
    pub const ALL: [HookKind; 6] = [
        HookKind::Prestart,
        HookKind::CreateRuntime,
        HookKind::CreateContainer,
        HookKind::StartContainer,
        HookKind::Poststart,
        HookKind::Poststop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::Prestart => "prestart",
            HookKind::CreateRuntime => "createRuntime",
            HookKind::CreateContainer => "createContainer",
            HookKind::StartContainer => "startContainer",
            HookKind::Poststart => "poststart",
            HookKind::Poststop => "poststop",
        }
    }

    /// The status a hook of this kind reads in its state: the runtime-spec's
    /// for the moment it runs (see the table above).
    pub fn status(self) -> Status {
        match self {
            HookKind::Prestart | HookKind::CreateRuntime | HookKind::CreateContainer => Status::Creating,
            HookKind::StartContainer => Status::Created,
            HookKind::Poststart => Status::Running,
            HookKind::Poststop => Status::Stopped,
        }
    }

    /// This kind's list in `hooks` (empty when absent).
    pub fn list(self, hooks: &Hooks) -> &[Hook] {
        let list = match self {
            HookKind::Prestart => hooks.prestart(),
            HookKind::CreateRuntime => hooks.create_runtime(),
            HookKind::CreateContainer => hooks.create_container(),
            HookKind::StartContainer => hooks.start_container(),
            HookKind::Poststart => hooks.poststart(),
            HookKind::Poststop => hooks.poststop(),
        };
        list.as_deref().unwrap_or_default()
    }

    /// This kind's list in `spec` (empty when the spec has no hooks).
    pub fn of(self, spec: &Spec) -> &[Hook] {
        spec.hooks().as_ref().map_or(&[], |hooks| self.list(hooks))
    }
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A hook that failed, named by kind, index and path.
#[derive(Debug, thiserror::Error)]
#[error("{kind} hook {index} ({}): {failure}", path.display())]
pub struct HookError {
    pub kind: HookKind,
    pub index: usize,
    pub path: PathBuf,
    pub failure: HookFailure,
}

/// How a hook failed. The output excerpt is the tail of what the hook wrote to
/// stdout and stderr, on one line.
#[derive(Debug, thiserror::Error)]
pub enum HookFailure {
    #[error("cannot run it: {0}")]
    Spawn(io::Error),
    #[error("exited with status {code}{}", with_output(.output))]
    Exited { code: i32, output: String },
    #[error("killed by {signal}{}", with_output(.output))]
    Signaled { signal: String, output: String },
    #[error("still running after its timeout of {seconds}s: killed{}", with_output(.output))]
    TimedOut { seconds: i64, output: String },
    #[error("the state JSON is {len} bytes, more than a hook's stdin can hold")]
    StateTooLarge { len: usize },
    #[error("{what}: {source}")]
    Io { what: &'static str, source: io::Error },
}

fn with_output(output: &str) -> String {
    if output.is_empty() { String::new() } else { format!(": {output}") }
}

/// Runs `hooks` (of kind `kind`) one after the other with `state` on stdin,
/// stopping at the first that fails (the hooks whose failure fails the
/// operation).
pub fn run(kind: HookKind, hooks: &[Hook], state: &str) -> Result<(), HookError> {
    for (index, hook) in hooks.iter().enumerate() {
        run_indexed(kind, index, hook, state)?;
    }
    Ok(())
}

/// Runs every one of `hooks` and logs each failure as a warning instead of
/// returning it (poststart, poststop: a failure changes nothing, and the
/// remaining hooks of the kind still run). Returns the failures, in order.
pub fn run_logged(kind: HookKind, hooks: &[Hook], state: &str) -> Vec<HookError> {
    let failures: Vec<HookError> =
        hooks.iter().enumerate().filter_map(|(index, hook)| run_indexed(kind, index, hook, state).err()).collect();
    for failure in &failures {
        tracing::warn!("{failure}");
    }
    failures
}

fn run_indexed(kind: HookKind, index: usize, hook: &Hook, state: &str) -> Result<(), HookError> {
    let _span = tracing::debug_span!("hook", kind = kind.as_str(), index).entered();
    run_one(hook, state.as_bytes()).map_err(|failure| HookError { kind, index, path: hook.path().clone(), failure })
}

/// The hooks `create` runs in the runtime while the init waits before
/// `pivot_root` (`prestart`, then `createRuntime`), with the state they get.
#[derive(Debug, Clone)]
pub struct RuntimeHooks {
    pub prestart: Vec<Hook>,
    pub create_runtime: Vec<Hook>,
    /// The state, whose pid is filled in once the init exists.
    pub state: OciState,
}

impl RuntimeHooks {
    /// The runtime's hooks of `spec`, or None when the init need not stop before
    /// `pivot_root` (no prestart, createRuntime or createContainer hook).
    pub fn from_spec(spec: &Spec, state: OciState) -> Option<Self> {
        pauses_before_pivot(spec).then(|| Self {
            prestart: HookKind::Prestart.of(spec).to_vec(),
            create_runtime: HookKind::CreateRuntime.of(spec).to_vec(),
            state,
        })
    }

    /// Runs prestart then createRuntime for the init `pid`. Returns the state
    /// JSON they got, which the init hands to the createContainer hooks.
    pub fn run(&self, pid: Pid) -> Result<String, HookError> {
        // One state for the three kinds of the create phase: the same status.
        let status = HookKind::CreateRuntime.status();
        let state = OciState { pid: Some(pid.as_raw()), status, ..self.state.clone() };
        let json = state.to_json();
        run(HookKind::Prestart, &self.prestart, &json)?;
        run(HookKind::CreateRuntime, &self.create_runtime, &json)?;
        Ok(json)
    }
}

/// Whether the init must stop before `pivot_root` for hooks: the spec has a
/// prestart, createRuntime or createContainer hook. Without one there is no extra
/// round trip between the init and the runtime.
pub fn pauses_before_pivot(spec: &Spec) -> bool {
    [HookKind::Prestart, HookKind::CreateRuntime, HookKind::CreateContainer]
        .iter()
        .any(|kind| !kind.of(spec).is_empty())
}

/// The command for `hook`: its path, `args[0]` as `argv[0]`, exactly its env.
fn command(hook: &Hook) -> Command {
    let mut cmd = Command::new(hook.path());
    let args = hook.args().as_deref().unwrap_or_default();
    if let Some((first, rest)) = args.split_first() {
        cmd.arg0(first).args(rest);
    }
    cmd.env_clear();
    for (key, value) in env_pairs(hook.env().as_deref().unwrap_or_default()) {
        cmd.env(key, value);
    }
    cmd
}

/// `KEY=VALUE` entries as pairs; the bundle check refuses an entry without `=`,
/// which would be an empty variable here.
fn env_pairs(env: &[String]) -> impl Iterator<Item = (&str, &str)> {
    env.iter().map(|entry| entry.split_once('=').unwrap_or((entry.as_str(), "")))
}

fn io_failure(what: &'static str) -> impl FnOnce(io::Error) -> HookFailure {
    move |source| HookFailure::Io { what, source }
}

fn run_one(hook: &Hook, state: &[u8]) -> Result<(), HookFailure> {
    run_one_waiting(hook, state, true)
}

/// Runs one hook. The end of the hook is seen on its pidfd, or without one
/// (`use_pidfd` false, or `pidfd_open` refused) as the end of its output.
fn run_one_waiting(hook: &Hook, state: &[u8], use_pidfd: bool) -> Result<(), HookFailure> {
    let stdin = filled_pipe(state)?;
    let (out_read, out_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| io_failure("pipe")(e.into()))?;
    let err_write = out_write.try_clone().map_err(io_failure("dup"))?;
    fcntl(out_read.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(|e| io_failure("fcntl")(e.into()))?;

    let mut cmd = command(hook);
    cmd.stdin(Stdio::from(stdin)).stdout(Stdio::from(out_write)).stderr(Stdio::from(err_write)).process_group(0);
    let mut child = cmd.spawn().map_err(HookFailure::Spawn)?;
    // The child's ends went with the Command: drop it so only the hook holds them.
    drop(cmd);
    let pid = Pid::from_raw(child.id() as i32);
    // Our own child, not yet reaped: the pid cannot be reused under us. Where
    // a seccomp profile refuses pidfd_open (the startContainer hooks run under
    // the container's), the end of the hook's output stands in for its exit.
    let pidfd = if use_pidfd { PidFd::open(pid).ok() } else { None };

    let timeout = hook.timeout().filter(|t| *t > 0);
    let deadline = timeout.map(|t| Instant::now() + Duration::from_secs(t.unsigned_abs()));
    let mut output = Tail::default();
    let mut out = Some(std::fs::File::from(out_read));
    let exited = loop {
        let left = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) => PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX),
                None => break false,
            },
            None => PollTimeout::NONE,
        };
        if pidfd.is_none() && out.is_none() {
            // No pidfd, and the output has ended: the hook is done (or about to be).
            break true;
        }
        let mut fds = Vec::with_capacity(2);
        if let Some(pidfd) = &pidfd {
            fds.push(PollFd::new(pidfd.as_fd(), PollFlags::POLLIN));
        }
        if let Some(file) = &out {
            fds.push(PollFd::new(file.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, left) {
            Ok(0) => break false,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                kill_group(pid, &mut child);
                return Err(io_failure("poll")(e.into()));
            }
        }
        let ready = |fd: Option<&PollFd<'_>>| fd.is_some_and(|fd| fd.any().unwrap_or(false));
        let (hook_done, out_ready) = match &pidfd {
            Some(_) => (ready(fds.first()), ready(fds.get(1))),
            None => (false, ready(fds.first())),
        };
        if out_ready
            && let Some(file) = &mut out
            && output.drain(file)
        {
            out = None;
        }
        if hook_done {
            // What it wrote before it exited is in the pipe; what a child it
            // left behind writes later is not waited for.
            if let Some(file) = &mut out {
                output.drain(file);
            }
            break true;
        }
    };
    if !exited {
        kill_group(pid, &mut child);
        if let Some(file) = &mut out {
            output.drain(file);
        }
        return Err(HookFailure::TimedOut { seconds: timeout.unwrap_or_default(), output: output.excerpt() });
    }
    let status = child.wait().map_err(io_failure("wait"))?;
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => Err(HookFailure::Exited { code, output: output.excerpt() }),
        (None, Some(signal)) => Err(HookFailure::Signaled {
            signal: Signal::try_from(signal).map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_owned()),
            output: output.excerpt(),
        }),
        (None, None) => Err(HookFailure::Exited { code: -1, output: output.excerpt() }),
    }
}

/// A pipe whose write end was filled with `data` and closed: the read end, for
/// the hook's stdin. The pipe is grown first when `data` does not fit.
fn filled_pipe(data: &[u8]) -> Result<OwnedFd, HookFailure> {
    if data.len() > MAX_STATE {
        return Err(HookFailure::StateTooLarge { len: data.len() });
    }
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| io_failure("pipe")(e.into()))?;
    let capacity = fcntl(write.as_raw_fd(), FcntlArg::F_GETPIPE_SZ).map_err(|e| io_failure("fcntl")(e.into()))?;
    if usize::try_from(capacity).unwrap_or(0) < data.len() {
        let want = i32::try_from(data.len()).unwrap_or(i32::MAX);
        fcntl(write.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(want))
            .map_err(|_| HookFailure::StateTooLarge { len: data.len() })?;
    }
    let mut file = std::fs::File::from(write);
    file.write_all(data).map_err(io_failure("write the state to the hook's stdin"))?;
    Ok(read)
}

/// Kills the hook and every process of its group, and reaps the hook.
fn kill_group(pid: Pid, child: &mut std::process::Child) {
    let _ = nix::sys::signal::killpg(pid, Signal::SIGKILL);
    // Unreaped, the child's pid still names it.
    let _ = child.kill();
    let _ = child.wait();
}

/// The last [`KEPT_OUTPUT`] bytes a hook wrote.
#[derive(Debug, Default)]
struct Tail(Vec<u8>);

impl Tail {
    /// Reads what is available without blocking. Returns true at end of file.
    fn drain(&mut self, file: &mut std::fs::File) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match file.read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => {
                    self.0.extend_from_slice(&buf[..n]);
                    if self.0.len() > KEPT_OUTPUT {
                        let cut = self.0.len() - KEPT_OUTPUT;
                        self.0.drain(..cut);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
    }

    fn excerpt(&self) -> String {
        excerpt(&String::from_utf8_lossy(&self.0))
    }
}

/// A hook's output on one line: its non-empty lines joined with `; `, the last
/// [`EXCERPT_CHARS`] characters of it (a `…` marks a cut).
fn excerpt(text: &str) -> String {
    let joined = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
    let count = joined.chars().count();
    if count <= EXCERPT_CHARS {
        return joined;
    }
    let tail: String = joined.chars().skip(count - EXCERPT_CHARS).collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: serde_json::Value) -> Hook {
        serde_json::from_value(json).unwrap()
    }

    fn sh(script: &str) -> Hook {
        hook(serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", script]}))
    }

    fn state() -> OciState {
        OciState::sample()
    }

    #[test]
    fn each_kind_reads_the_status_of_its_moment() {
        let statuses: Vec<(&str, Status)> = HookKind::ALL.iter().map(|k| (k.as_str(), k.status())).collect();
        assert_eq!(
            statuses,
            [
                ("prestart", Status::Creating),
                ("createRuntime", Status::Creating),
                ("createContainer", Status::Creating),
                ("startContainer", Status::Created),
                ("poststart", Status::Running),
                ("poststop", Status::Stopped),
            ]
        );
        // The create phase's hooks share one state.
        assert_eq!(HookKind::Prestart.status(), HookKind::CreateContainer.status());
    }

    #[test]
    fn args_zero_is_argv_zero_and_env_is_exactly_the_hooks() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        // argv as the kernel holds it, then what `sh -c` makes of the rest.
        let script = format!(
            "tr '\\0' ' ' < /proc/$$/cmdline > {0}; echo >> {0}; echo \"$0\" >> {0}; env | sort >> {0}",
            out.display()
        );
        let h = hook(serde_json::json!({"path": "/bin/sh", "args": ["my-name", "-c", script, "first"],
                                        "env": ["A=1", "B=x=y"]}));
        run(HookKind::Poststart, &[h], "{}").unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        let mut lines = text.lines();
        let argv = lines.next().unwrap();
        assert!(argv.starts_with("my-name -c ") && argv.ends_with(" first "), "{argv:?}");
        assert_eq!(lines.next(), Some("first"));
        // Nothing of the test's own environment (HOME, PATH, CARGO_*) leaks in;
        // the shell adds only PWD (and SHLVL) of its own.
        let vars: Vec<&str> = lines.filter(|l| !l.starts_with("PWD=") && !l.starts_with("SHLVL=")).collect();
        assert_eq!(vars, ["A=1", "B=x=y"]);
    }

    #[test]
    fn without_args_the_path_is_argv_zero() {
        let cmd = command(&hook(serde_json::json!({"path": "/bin/true"})));
        assert_eq!(cmd.get_program(), "/bin/true");
        assert_eq!(cmd.get_args().count(), 0);
        assert_eq!(cmd.get_envs().count(), 0);
    }

    #[test]
    fn env_entries_split_at_the_first_equals() {
        let env = ["A=1".to_owned(), "B=x=y".to_owned(), "C=".to_owned()];
        assert_eq!(env_pairs(&env).collect::<Vec<_>>(), [("A", "1"), ("B", "x=y"), ("C", "")]);
    }

    #[test]
    fn the_state_arrives_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("stdin");
        run(HookKind::CreateRuntime, &[sh(&format!("cat > {}", out.display()))], &state().to_json()).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), state().to_json());
    }

    #[test]
    fn a_hook_that_never_reads_a_large_state_still_runs() {
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(200_000));
        run(HookKind::Poststart, &[sh("exit 0")], &big).unwrap();
    }

    #[test]
    fn failures_name_kind_index_path_status_and_output() {
        let hooks = [sh("true"), sh("echo first line; echo boom >&2; exit 3")];
        let err = run(HookKind::CreateContainer, &hooks, "{}").unwrap_err();
        assert_eq!(err.index, 1);
        let msg = err.to_string();
        assert_eq!(msg, "createContainer hook 1 (/bin/sh): exited with status 3: first line; boom");
    }

    #[test]
    fn the_first_failure_stops_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let hooks = [sh("exit 1"), sh(&format!("touch {}", marker.display()))];
        assert!(run(HookKind::Prestart, &hooks, "{}").is_err());
        assert!(!marker.exists());
    }

    #[test]
    fn a_failing_poststart_or_poststop_hook_leaves_the_rest_running() {
        for kind in [HookKind::Poststart, HookKind::Poststop] {
            let dir = tempfile::tempdir().unwrap();
            let marker = dir.path().join("ran");
            let hooks = [sh("exit 1"), sh("exit 2"), sh(&format!("touch {}", marker.display()))];
            let failures = run_logged(kind, &hooks, "{}");
            let indexes: Vec<usize> = failures.iter().map(|f| f.index).collect();
            assert_eq!(indexes, [0, 1], "{kind}");
            assert!(marker.exists(), "{kind}: the hook after the failures did not run");
        }
    }

    #[test]
    fn a_missing_program_is_named() {
        let err = run(HookKind::Poststop, &[hook(serde_json::json!({"path": "/nonexistent/hook"}))], "{}")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("poststop hook 0 (/nonexistent/hook): cannot run it: "), "{err}");
    }

    #[test]
    fn a_signal_is_named() {
        let err = run(HookKind::Poststart, &[sh("kill -TERM $$")], "{}").unwrap_err().to_string();
        assert!(err.ends_with("killed by SIGTERM"), "{err}");
    }

    #[test]
    fn a_hook_past_its_timeout_is_killed_with_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("bg");
        // A background child in the hook's group that would outlive the hook.
        let script = format!("sleep 30 & echo $! > {}; echo started; wait", pid_file.display());
        let mut h = sh(&script);
        h.set_timeout(Some(1));
        let start = Instant::now();
        let err = run(HookKind::CreateRuntime, &[h], "{}").unwrap_err().to_string();
        assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
        assert_eq!(err, "createRuntime hook 0 (/bin/sh): still running after its timeout of 1s: killed: started");
        let bg: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        // Killed (a zombie until init reaps it): SIGKILL is delivered at once,
        // the exit follows as soon as the child is scheduled.
        let alive = || crate::sys::proc::ProcStat::read(Pid::from_raw(bg)).is_ok_and(|s| !s.is_exited());
        let deadline = Instant::now() + Duration::from_secs(2);
        while alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!alive(), "the hook's background child {bg} survived");
    }

    #[test]
    fn a_hook_that_leaves_a_child_holding_its_output_does_not_hang() {
        let mut h = sh("sleep 5 & echo done");
        h.set_timeout(Some(3));
        let start = Instant::now();
        run(HookKind::Poststart, &[h], "{}").unwrap();
        assert!(start.elapsed() < Duration::from_secs(2), "waited for the child: {:?}", start.elapsed());
    }

    #[test]
    fn without_a_pidfd_the_end_of_the_output_ends_the_wait() {
        assert!(run_one_waiting(&sh("echo hi"), b"{}", false).is_ok());
        let err = run_one_waiting(&sh("echo oops >&2; exit 2"), b"{}", false).unwrap_err();
        assert_eq!(err.to_string(), "exited with status 2: oops");
        let mut slow = sh("sleep 30");
        slow.set_timeout(Some(1));
        let start = Instant::now();
        let err = run_one_waiting(&slow, b"{}", false).unwrap_err();
        assert!(matches!(err, HookFailure::TimedOut { seconds: 1, .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn excerpts_are_one_line_and_keep_the_tail() {
        assert_eq!(excerpt("  a\n\n b \n"), "a; b");
        let long = "x".repeat(150) + "\n" + &"y".repeat(150);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), EXCERPT_CHARS + 1);
        assert!(cut.starts_with('…') && cut.ends_with('y'));
        assert!(!cut.contains('\n'));
    }

    #[test]
    fn only_create_time_hooks_make_the_init_stop() {
        let spec = |hooks: serde_json::Value| -> Spec {
            let mut spec = Spec::default();
            spec.set_hooks(Some(serde_json::from_value(hooks).unwrap()));
            spec
        };
        assert!(!pauses_before_pivot(&Spec::default()));
        assert!(!pauses_before_pivot(&spec(serde_json::json!({"poststart": [{"path": "/x"}],
                                                                "startContainer": [{"path": "/x"}]}))));
        assert!(!pauses_before_pivot(&spec(serde_json::json!({"createRuntime": []}))));
        for kind in ["prestart", "createRuntime", "createContainer"] {
            assert!(pauses_before_pivot(&spec(serde_json::json!({kind: [{"path": "/x"}]}))), "{kind}");
        }
        let runtime = RuntimeHooks::from_spec(
            &spec(serde_json::json!({"createContainer": [{"path": "/x"}], "prestart": [{"path": "/p"}]})),
            state(),
        )
        .unwrap();
        assert_eq!(runtime.prestart.len(), 1);
        assert!(runtime.create_runtime.is_empty());
    }
}
