//! What the manager tests share: the images, root and the installed managers,
//! and waits; the runtime under test and the leak checks' helpers come from
//! `common`, shared with the end-to-end tests (re-exported here).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use amphi_test_bundles::{ImageSources, TestImages};

pub use crate::common::{
    cgroup_hierarchies, describe, mounts_mentioning, probe_report, processes_in_cgroup, reap_cgroup, runtime,
    wait_in_sigwait, which,
};

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

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Waits (up to 10 s) until `check` holds.
pub fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits up to `limit` for `child` to exit; kills it and answers `None` if
/// it has not.
pub fn wait_or_kill(child: &mut std::process::Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The state letter of process `pid` (`R`, `S`, `D`, …).
pub fn proc_state(pid: i64) -> char {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(')').next().and_then(|rest| rest.trim_start().chars().next()).unwrap_or('?')
}
