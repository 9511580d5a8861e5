//! What a containerd run can leave behind, how to find it and how to force it
//! away: tasks and containers (asked of containerd), shim processes (by
//! `/proc/PID/exe` or `argv[0]`, `containerd-shim-runc-v2` or
//! `containerd-shim-amphi-v1`, serving the run's namespace: its name is among
//! their arguments), the
//! containers' cgroups (`<hierarchy>/<namespace>/<id>`: ctr's default cgroups
//! path), the shims' state (`/run/containerd/runc/<namespace>/<id>` of the runc
//! shim, `/run/containerd/amphi/<namespace>/<id>` of amphi's) and mounts under
//! the daemon's directory (a task's rootfs).
//!
//! The namespace is the run's own, so whatever carries its name is the run's.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::daemon::Daemon;
use crate::memory::process_tree;
use crate::process::{is_alive, reap_orphans};

/// The executables of the shims the section runs.
pub const SHIM_BINARIES: [&str; 2] = ["containerd-shim-runc-v2", "containerd-shim-amphi-v1"];
/// The state roots of the runc shim and of amphi's shim; each adds `/<namespace>`.
const STATE_ROOTS: [&str; 2] = ["/run/containerd/runc", "/run/containerd/amphi"];
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Whose leftovers: the run's namespace and the daemon's directory.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub namespace: &'a str,
    pub dir: &'a Path,
}

/// What was found.
#[derive(Debug, Default)]
pub struct Leftovers {
    pub tasks: Vec<String>,
    pub containers: Vec<String>,
    pub shims: Vec<String>,
    pub cgroups: Vec<PathBuf>,
    pub state: Vec<PathBuf>,
    pub mounts: Vec<PathBuf>,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
            && self.containers.is_empty()
            && self.shims.is_empty()
            && self.cgroups.is_empty()
            && self.state.is_empty()
            && self.mounts.is_empty()
    }

    /// One line: what kinds of thing, and which.
    pub fn describe(&self) -> String {
        let paths = |v: &[PathBuf]| v.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        let mut parts = Vec::new();
        for (what, list) in [("tasks", self.tasks.join(", ")), ("containers", self.containers.join(", "))] {
            if !list.is_empty() {
                parts.push(format!("{what} {list}"));
            }
        }
        if !self.shims.is_empty() {
            parts.push(format!("shim processes {}", self.shims.join(", ")));
        }
        for (what, list) in [("cgroups", &self.cgroups), ("state", &self.state), ("mounts", &self.mounts)] {
            if !list.is_empty() {
                parts.push(format!("{what} {}", paths(list)));
            }
        }
        parts.join("; ")
    }
}

/// A running shim process (a shim, or the helper amphi's shim forks).
#[derive(Debug, Clone)]
pub struct ShimProcess {
    pub pid: i32,
    pub binary: &'static str,
}

/// The shim processes serving `namespace`: by the name of `/proc/PID/exe`,
/// or of `argv[0]` for amphi's shim, which runs from a sealed image (its
/// `exe` is a detached mount of itself, named `/`).
pub fn shims(namespace: &str) -> Vec<ShimProcess> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return found };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let base = |path: &Path| path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let exe = std::fs::read_link(entry.path().join("exe")).map(|p| base(&p)).unwrap_or_default();
        let argv0 = base(Path::new(&*String::from_utf8_lossy(cmdline.split(|b| *b == 0).next().unwrap_or_default())));
        let Some(binary) = SHIM_BINARIES.into_iter().find(|b| *b == exe.trim_end_matches(" (deleted)") || *b == argv0)
        else {
            continue;
        };
        if cmdline.split(|b| *b == 0).any(|arg| arg == namespace.as_bytes()) && is_alive(pid) {
            found.push(ShimProcess { pid, binary });
        }
    }
    found
}

fn describe_shim(shim: &ShimProcess) -> String {
    format!("{} ({})", shim.pid, shim.binary)
}

/// Everything that is left now. With a daemon, its tasks and containers too;
/// when it has no task left, shims get 3 s to exit (a shim leaves a moment
/// after its last task is deleted).
pub fn survey(scope: &Scope<'_>, daemon: Option<&Daemon>) -> Leftovers {
    let mut left = Leftovers::default();
    if let Some(daemon) = daemon {
        match daemon.tasks() {
            Ok(tasks) => {
                left.tasks = tasks.into_iter().map(|(id, pid, status)| format!("{id} ({pid} {status})")).collect()
            }
            Err(e) => left.tasks.push(format!("(ctr task ls failed: {e:#})")),
        }
        match daemon.listing(&["containers", "ls"]) {
            Ok(rows) => {
                left.containers = rows.iter().filter_map(|r| r.split_whitespace().next()).map(str::to_owned).collect()
            }
            Err(e) => left.containers.push(format!("(ctr containers ls failed: {e:#})")),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut running = shims(scope.namespace);
    while !running.is_empty() && left.tasks.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        reap_orphans();
        running = shims(scope.namespace);
    }
    left.shims = running.iter().map(describe_shim).collect();
    left.cgroups = container_cgroups(scope.namespace);
    left.state = state_entries(scope.namespace);
    left.mounts = mounts_under(scope.dir);
    left
}

/// Forces away what containerd did not: shims and their process trees
/// (SIGKILL), the processes left in the containers' cgroups, the cgroups (and
/// the namespace's own, when empty), the mounts, the state.
pub fn force(scope: &Scope<'_>) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !shims(scope.namespace).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        reap_orphans();
    }
    for shim in shims(scope.namespace) {
        for pid in process_tree(shim.pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    let cgroups = container_cgroups(scope.namespace);
    for cgroup in &cgroups {
        for pid in cgroup_procs(cgroup) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        reap_orphans();
        let procs_left = cgroups.iter().any(|c| !cgroup_procs(c).is_empty());
        if (shims(scope.namespace).is_empty() && !procs_left) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Deepest first; then the namespace's directory in each hierarchy.
    for cgroup in cgroups.iter().chain(&namespace_cgroups(scope.namespace)) {
        let _ = std::fs::remove_dir(cgroup);
    }
    for mount in mounts_under(scope.dir) {
        let _ = nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH);
    }
    for entry in state_entries(scope.namespace) {
        let _ = std::fs::remove_dir_all(&entry);
    }
    for root in STATE_ROOTS {
        let _ = std::fs::remove_dir(Path::new(root).join(scope.namespace));
    }
}

/// `<hierarchy>/<namespace>` in every cgroup hierarchy (cgroup v1
/// controllers, the hybrid `unified`, or a cgroup2 root itself).
fn namespace_cgroups(namespace: &str) -> Vec<PathBuf> {
    let root = Path::new(CGROUP_ROOT);
    let mut found = vec![root.join(namespace)];
    if let Ok(entries) = std::fs::read_dir(root) {
        found.extend(entries.flatten().map(|e| e.path().join(namespace)));
    }
    let mut seen = Vec::new();
    found.retain(|p| match std::fs::canonicalize(p) {
        Ok(real) if real.is_dir() && !seen.contains(&real) => {
            seen.push(real);
            true
        }
        _ => false,
    });
    found
}

/// Every cgroup below the namespace's, deepest first.
pub fn container_cgroups(namespace: &str) -> Vec<PathBuf> {
    fn below(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                below(&entry.path(), out);
                out.push(entry.path());
            }
        }
    }
    let mut found = Vec::new();
    for dir in namespace_cgroups(namespace) {
        below(&dir, &mut found);
    }
    found
}

/// The processes in `cgroup`.
pub fn cgroup_procs(cgroup: &Path) -> Vec<i32> {
    std::fs::read_to_string(cgroup.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The per-container entries of both shims' state roots.
fn state_entries(namespace: &str) -> Vec<PathBuf> {
    STATE_ROOTS
        .iter()
        .flat_map(|root| std::fs::read_dir(Path::new(root).join(namespace)).into_iter().flatten().flatten())
        .map(|e| e.path())
        .collect()
}

/// Mount points at or below `dir` in the harness's mount namespace (the one
/// containerd and its shims run in), deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> =
        amphi_runtime::mountinfo::parse(&text).map(|m| m.mount_point).filter(|point| point.starts_with(dir)).collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_left_describes_as_empty() {
        let left = Leftovers::default();
        assert!(left.is_empty());
        let left = Leftovers { tasks: vec!["a (12 RUNNING)".into()], cgroups: vec!["/sys/fs/cgroup/x".into()], ..left };
        assert!(!left.is_empty());
        assert_eq!(left.describe(), "tasks a (12 RUNNING); cgroups /sys/fs/cgroup/x");
    }
}
