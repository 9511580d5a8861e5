//! What the end-to-end and the manager tests share (each test binary includes
//! this module with `#[path]`): the runtime under test, the description of a
//! command's output, the probe's report, and the host-side look-ups of the
//! leak checks (cgroups, their processes, mounts) with the clean-up after a
//! runtime that failed to clean up.
//!
//! Every item here is used by both binaries: what only one needs stays in its
//! own `support` module.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Which runtime the tests drive: the built `amphi`, or the binary that
/// `AMPHI_E2E_RUNTIME` names (`runc`, a path), to check a test against runc.
pub struct Runtime {
    pub bin: PathBuf,
    /// True for amphi itself; false for a peer such as runc.
    pub is_amphi: bool,
}

pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| match std::env::var("AMPHI_E2E_RUNTIME") {
        Ok(name) if !name.is_empty() && name != "amphi" => {
            let bin = which(&name).unwrap_or_else(|| panic!("AMPHI_E2E_RUNTIME={name}: not found"));
            Runtime { bin, is_amphi: false }
        }
        _ => Runtime { bin: PathBuf::from(env!("CARGO_BIN_EXE_amphi")), is_amphi: true },
    })
}

/// `name` if it is a path, else the first file of that name on `$PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

/// An output's status and both streams, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "{} stdout={:?} stderr={:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The last JSON object printed on `text` (the probe's report).
pub fn probe_report(text: &str) -> Value {
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l.trim()).ok().filter(Value::is_object))
        .unwrap_or_else(|| panic!("no probe report in {text:?}"))
}

/// Every mounted cgroup hierarchy (v1 controllers, the unified one).
pub fn cgroup_hierarchies() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.procs").exists() {
        return vec![base.to_owned()];
    }
    fs::read_dir(base)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("cgroup.procs").exists())
        .collect()
}

/// The pids whose `/proc/<pid>/cgroup` names `rel` (or a cgroup below it).
pub fn processes_in_cgroup(rel: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(text) = fs::read_to_string(entry.path().join("cgroup")) else { continue };
        if text.lines().any(|l| l.split(':').nth(2).is_some_and(|p| p == rel || p.starts_with(&format!("{rel}/")))) {
            pids.push(pid);
        }
    }
    pids
}

/// Kills the processes left in the cgroup `rel` and removes it from every
/// hierarchy: the clean-up after a runtime (or a test) that failed to.
pub fn reap_cgroup(rel: &str) {
    let dirs: Vec<PathBuf> =
        cgroup_hierarchies().iter().map(|h| h.join(rel.trim_start_matches('/'))).filter(|d| d.exists()).collect();
    if dirs.is_empty() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        for pid in processes_in_cgroup(rel) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        // A cgroup directory goes once its last process has exited.
        if dirs.iter().all(|d| !d.exists() || fs::remove_dir(d).is_ok()) || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lines of this process's mountinfo that mention `dir` (mounts a test
/// left under its own directory).
pub fn mounts_mentioning(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(dir.as_ref()))
        .map(str::to_owned)
        .collect()
}

/// Waits (up to 10 s) until process `pid` sits in `sigwait`: the probe's
/// `--wait-signal` blocks its signals and waits for them, and a signal sent to a
/// pid-1 process before it blocked them would be dropped by the kernel. (While a
/// thread waits, the kernel shows its waited signals as unblocked, so the
/// syscall it sleeps in is what tells.)
pub fn wait_in_sigwait(pid: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let syscall = fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
        if syscall.split_whitespace().next() == Some(&libc::SYS_rt_sigtimedwait.to_string()) {
            return;
        }
        assert!(Instant::now() < deadline, "process {pid} never waited for a signal");
        std::thread::sleep(Duration::from_millis(10));
    }
}
