//! What the manager tests share: the runtime under test, the images, root and
//! the installed managers, and the leak checks' helpers.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use amphi_test_bundles::{ImageSources, TestImages};

/// The runtime the managers call: the built `amphi`, or the binary that
/// `AMPHI_E2E_RUNTIME` names (`runc`, a path), to check a test against runc.
pub struct Runtime {
    pub bin: PathBuf,
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

pub fn which(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

/// A directory for the tests' temporary files with a short path: containerd's
/// sockets must fit in a `sockaddr_un`, and podman refuses a runroot longer
/// than 50 characters.
pub fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join("amphi-mgr");
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Whether this test may run: root and the manager `program` installed. Under
/// `CI=true` a missing one is a failure, never a skip.
#[expect(clippy::print_stderr, reason = "a skipped test says why")]
pub fn can_run(program: &str) -> bool {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let missing = if !nix::unistd::geteuid().is_root() {
        Some("the manager tests need root".to_owned())
    } else if which(program).is_none() {
        Some(format!("{program} is not installed (.ci/setup installs it)"))
    } else {
        None
    };
    match missing {
        None => true,
        Some(reason) if ci => panic!("{reason} (CI=true)"),
        Some(reason) => {
            eprintln!("skipping: {reason}");
            false
        }
    }
}

/// Whether a wasm scenario applies: only amphi runs wasm. Against a peer
/// runtime the test says so and passes.
#[expect(clippy::print_stderr, reason = "a skipped test says why")]
pub fn runs_wasm() -> bool {
    if !runtime().is_amphi {
        eprintln!("skipping: a wasm scenario, and {} is not amphi", runtime().bin.display());
    }
    runtime().is_amphi
}

/// The test images, written once per test binary.
pub fn images() -> &'static TestImages {
    static IMAGES: OnceLock<TestImages> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let amphi = Path::new(env!("CARGO_BIN_EXE_amphi"));
        let probe = amphi_test_bundles::probe_path_next_to(amphi);
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("manager-images");
        amphi_test_bundles::build_images(&out, &ImageSources::with_probe(probe)).unwrap_or_else(|e| {
            panic!("building the test images: {e} (build the probe first: cargo build -p amphi-test-bundles --bins)")
        })
    })
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

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
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
/// hierarchy: the clean-up after a failed test.
pub fn reap_cgroup(rel: &str) {
    let dirs: Vec<PathBuf> =
        cgroup_hierarchies().iter().map(|h| h.join(rel.trim_start_matches('/'))).filter(|d| d.exists()).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !dirs.is_empty() {
        for pid in processes_in_cgroup(rel) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        if dirs.iter().all(|d| !d.exists() || fs::remove_dir(d).is_ok()) || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (up to 10 s) until process `pid` sits in `sigwait` (a pid-1 process
/// drops a signal that arrives before it blocked it).
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

/// Waits (up to 10 s) until `check` holds.
pub fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The state letter of process `pid` (`R`, `S`, `D`, …).
pub fn proc_state(pid: i64) -> char {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(')').next().and_then(|rest| rest.trim_start().chars().next()).unwrap_or('?')
}
