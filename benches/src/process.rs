//! Running one command and timing it; waiting for a container's init (the
//! harness is the subreaper, so a container whose runtime has exited is its
//! child); the peak-RSS helper.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::errno::Errno;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// The hidden first argument that turns this binary into the peak-RSS helper.
pub const RUSAGE_HELPER: &str = "__rusage";

/// Where a command's stderr goes: one file, emptied before each command, read
/// when the command fails. A pipe would be held open by a created container (it
/// inherits the runtime's stdio) and make the harness wait for it to exit.
#[derive(Debug)]
pub struct ErrLog {
    file: File,
    path: PathBuf,
}

impl ErrLog {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file = File::options()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .with_context(|| format!("create {}", path.display()))?;
        Ok(Self { file, path: path.to_owned() })
    }

    /// An emptied handle for the next command.
    pub fn stdio(&self) -> anyhow::Result<Stdio> {
        self.file.set_len(0).with_context(|| format!("truncate {}", self.path.display()))?;
        Ok(Stdio::from(self.file.try_clone().with_context(|| format!("dup {}", self.path.display()))?))
    }

    /// The last command's stderr: its last non-empty line, which is where
    /// runtimes put the reason.
    pub fn last_words(&self) -> String {
        let mut text = String::new();
        let mut file = &self.file;
        let _ = file.rewind();
        let _ = file.read_to_string(&mut text);
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        match lines.as_slice() {
            [] => "(nothing on stderr)".to_owned(),
            [.., last] => last.chars().take(300).collect(),
        }
    }
}

/// Runs `cmd` to completion (stdin null; stdout as the caller set it, else null;
/// stderr to `err`) and returns how long it took; a non-zero exit is an error
/// naming the command and quoting its stderr.
pub fn timed(cmd: &mut Command, err: &ErrLog) -> anyhow::Result<Duration> {
    cmd.stdin(Stdio::null()).stderr(err.stdio()?);
    let started = Instant::now();
    let child = cmd.spawn().with_context(|| format!("run {}", describe(cmd)))?;
    let status = wait_or_kill(child, COMMAND_TIMEOUT).with_context(|| describe(cmd))?;
    let took = started.elapsed();
    check_status(cmd, status, err)?;
    Ok(took)
}

/// How long one runtime command may take before the harness kills it (a peer
/// that hangs must not hang the whole run).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits for `child` (blocking, so the timing stays exact) and kills it if it
/// outlives `timeout`; a killed child is an error. No thread: the harness
/// enters other mount namespaces with `setns`, which needs a single-threaded
/// caller, and a joined thread may still be leaving the kernel for a moment.
pub fn wait_or_kill(mut child: std::process::Child, timeout: Duration) -> anyhow::Result<ExitStatus> {
    let pid = Pid::from_raw(child.id() as i32);
    // The child is not reaped yet, so the pid is still its own.
    let pidfd = amphi_runtime::PidFd::open(pid).context("pidfd_open")?;
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match pidfd.wait_exit(Some(left)) {
            Ok(true) => return child.wait().context("wait"),
            Ok(false) if left.is_zero() => {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                bail!("hung: killed after {} s", timeout.as_secs());
            }
            Ok(false) => continue,
            Err(e) => return Err(e).context("poll the pidfd"),
        }
    }
}

pub fn check_status(cmd: &Command, status: ExitStatus, err: &ErrLog) -> anyhow::Result<()> {
    if !status.success() {
        bail!("{} failed ({status}): {}", describe(cmd), err.last_words());
    }
    Ok(())
}

/// The command as a shell line, for messages.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Waits for the container init `pid` to exit and returns its exit code (128+N
/// for a signal). The init is the harness's child once its runtime has exited
/// (the harness is a subreaper); when it is not (a runtime that keeps a process
/// of its own as the parent), its exit is polled in /proc instead, and the code
/// is unknown (`None`).
pub fn wait_init(pid: i32) -> anyhow::Result<Option<i32>> {
    match waitpid(Pid::from_raw(pid), None) {
        Ok(WaitStatus::Exited(_, code)) => Ok(Some(code)),
        Ok(WaitStatus::Signaled(_, signal, _)) => Ok(Some(128 + signal as i32)),
        Ok(other) => bail!("container init {pid}: unexpected wait status {other:?}"),
        Err(Errno::ECHILD) => {
            let deadline = Instant::now() + Duration::from_secs(30);
            while is_alive(pid) {
                if Instant::now() > deadline {
                    bail!("container init {pid} did not exit within 30 s");
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            Ok(None)
        }
        Err(e) => bail!("wait for container init {pid}: {e}"),
    }
}

/// Whether `pid` exists and is not a zombie.
pub fn is_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// Reaps every exited child that nobody waits for (orphans of the runtimes
/// reparented to the harness). Call only when no `std::process::Child` is
/// outstanding, or it would steal that child's status. Returns how many.
pub fn reap_orphans() -> usize {
    let mut reaped = 0;
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return reaped,
            Ok(_) => reaped += 1,
        }
    }
}

/// The pid a runtime wrote to `--pid-file`.
pub fn read_pid_file(path: &Path) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read pid file {}", path.display()))?;
    text.trim().parse().with_context(|| format!("pid file {}: {:?} is not a pid", path.display(), text.trim()))
}

/// What the peak-RSS helper reports about the command it ran.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// The largest resident set of the command or any descendant it waited for
    /// (`ru_maxrss` of `RUSAGE_CHILDREN` in a process whose only child it was),
    /// in bytes.
    pub max_rss: u64,
}

/// Runs `cmd` through the helper (this binary, re-executed) and returns its peak
/// RSS. The helper has no other child, so its `RUSAGE_CHILDREN` is exactly what
/// `wait4` would report for the command.
pub fn with_rusage(cmd: &Command, out: &Path, err: &ErrLog) -> anyhow::Result<Usage> {
    let exe = std::env::current_exe().context("find this binary")?;
    let mut helper = Command::new(exe);
    helper.arg(RUSAGE_HELPER).arg(out).arg("--").arg(cmd.get_program()).args(cmd.get_args());
    helper.stdin(Stdio::null()).stdout(Stdio::null()).stderr(err.stdio()?);
    let status = helper.status().with_context(|| format!("run {}", describe(&helper)))?;
    if !status.success() {
        bail!("the rusage helper failed ({status}): {}", err.last_words());
    }
    let text = std::fs::read_to_string(out).with_context(|| format!("read {}", out.display()))?;
    let mut fields = text.split_whitespace().map(str::parse::<i64>);
    let (Some(Ok(status)), Some(Ok(max_rss_kib))) = (fields.next(), fields.next()) else {
        bail!("{}: unexpected helper output {text:?}", out.display());
    };
    if status != 0 {
        bail!("{} failed (exit {status}): {}", describe(cmd), err.last_words());
    }
    Ok(Usage { max_rss: max_rss_kib as u64 * 1024 })
}

/// `amphi-bench __rusage OUT -- PROGRAM ARGS…`: runs the program with the
/// helper's stdio, waits, and writes `STATUS MAXRSS_KIB` to OUT.
pub fn rusage_main(args: &[OsString]) -> ExitCode {
    let result = (|| -> anyhow::Result<()> {
        let [out, dashes, program, rest @ ..] = args else { bail!("usage: {RUSAGE_HELPER} OUT -- PROGRAM ARGS…") };
        if dashes != "--" {
            bail!("usage: {RUSAGE_HELPER} OUT -- PROGRAM ARGS…");
        }
        let child = Command::new(program).args(rest).spawn().with_context(|| format!("run {}", program.display()))?;
        let status = wait_or_kill(child, COMMAND_TIMEOUT).with_context(|| program.display().to_string())?;
        let code =
            status.code().unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0));
        let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
            .context("getrusage(RUSAGE_CHILDREN)")?;
        let mut file = File::create(out).with_context(|| format!("create {}", Path::new(out).display()))?;
        writeln!(file, "{code} {}", usage.max_rss()).with_context(|| format!("write {}", Path::new(out).display()))?;
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "amphi-bench {RUSAGE_HELPER}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timed_reports_the_failure_with_the_last_stderr_line() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let err = ErrLog::create(&tmp.path().join("err")).expect("errlog");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo first >&2; echo 'the reason' >&2; exit 3"]).stdout(Stdio::null());
        let error = timed(&mut cmd, &err).expect_err("exit 3").to_string();
        assert!(error.contains("exit status: 3"), "{error}");
        assert!(error.ends_with("the reason"), "{error}");
        // The log is emptied before the next command.
        let mut ok = Command::new("true");
        timed(&mut ok, &err).expect("true");
        assert_eq!(err.last_words(), "(nothing on stderr)");
    }

    #[test]
    fn stat_of_a_zombie_is_not_alive() {
        let child = Command::new("true").spawn().expect("spawn");
        let pid = child.id() as i32;
        // Let it exit without reaping it: a zombie.
        let deadline = Instant::now() + Duration::from_secs(5);
        while is_alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!is_alive(pid), "an exited, unreaped child is a zombie");
        assert!(std::fs::metadata(format!("/proc/{pid}")).is_ok(), "the zombie is still in /proc");
        let mut child = child;
        child.wait().expect("reap");
        assert!(!is_alive(pid));
    }
}
