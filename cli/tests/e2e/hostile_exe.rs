//! The runtime's binary against `/proc/<pid>/exe` (CVE-2019-5736): a script
//! that starts with `#!/proc/self/exe` makes the kernel run the runtime's own
//! executable as a process of the container, and another process of the
//! container (or of its pod) keeps that executable open and, once the runtime
//! has exited, reopens it for writing. The attacker is the probe's
//! `--seize-exe` mode; it reports what the kernel answered.
//!
//! A failure must never damage the binary the other tests run: each test copies
//! the runtime into its work directory, drives that copy, and compares the
//! copy's sha256 before and after.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use amphi_test_bundles::Bundle;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{self, Case, describe, wait_for_file};

/// How many times a test gives the attacker a runtime process to catch.
const ATTEMPTS: usize = 30;
/// Where the attacker reports, inside its container.
const SEIZED: &str = "/tmp/seized.json";

/// A copy of the runtime under test, in the case's work directory.
struct RuntimeCopy {
    bin: PathBuf,
    sha256: String,
}

impl RuntimeCopy {
    fn new(case: &Case) -> Self {
        let bin = case.work.path().join("runtime-copy");
        fs::copy(&support::runtime().bin, &bin).expect("copy the runtime");
        let sha256 = sha256(&bin);
        Self { bin, sha256 }
    }

    /// A command of the copy with the case's `--root`.
    fn cmd(&self, case: &Case, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root").arg(case.root.path()).args(args).stdin(Stdio::null());
        cmd
    }

    /// Runs the copy to completion. A test thread that forked while the copy
    /// was still open for writing holds it until its own exec: `ETXTBSY` for a
    /// moment, so that one error is retried.
    fn run(&self, case: &Case, args: &[&str]) -> Output {
        let mut busy = 0;
        loop {
            match self.cmd(case, args).output() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && busy < 100 => {
                    busy += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                other => return other.expect("run the runtime copy"),
            }
        }
    }

    fn ok(&self, case: &Case, args: &[&str]) {
        let out = self.run(case, args);
        assert!(out.status.success(), "{args:?}: {}", describe(&out));
    }

    /// `create` with the container's stdio in files (a pipe would stay open).
    fn create(&self, case: &Case, bundle: &Bundle, id: &str) {
        let stdout = fs::File::create(case.stdout_path(id)).expect("stdout file");
        let stderr = fs::File::create(case.stderr_path(id)).expect("stderr file");
        let bundle = bundle.dir().to_str().expect("utf-8 path");
        let status =
            self.cmd(case, &["create", "--bundle", bundle, id]).stdout(stdout).stderr(stderr).status().expect("create");
        let said = fs::read_to_string(case.stderr_path(id)).unwrap_or_default();
        assert!(status.success(), "create {id}: {status} {said}");
    }

    /// The copy's hash is what it was: the attack did not write it.
    fn assert_intact(&self) {
        assert_eq!(sha256(&self.bin), self.sha256, "the runtime's binary was overwritten from a container");
    }
}

fn sha256(path: &Path) -> String {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A probe bundle for `id` on a private, writable rootfs holding `/evil.sh`, a
/// script whose interpreter is `/proc/self/exe`; returns the bundle and the
/// rootfs.
fn hostile_bundle(case: &Case, id: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> (Bundle, PathBuf) {
    let bundle = case.private_probe_bundle(id, args, |config| {
        config["root"]["readonly"] = json!(false);
        edit(config);
    });
    let rootfs = case.work.path().join(format!("rootfs-{id}"));
    let script = rootfs.join("evil.sh");
    fs::write(&script, "#!/proc/self/exe\n").expect("write evil.sh");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod evil.sh");
    (bundle, rootfs)
}

/// The attacker's arguments: seize, report, then stay.
const ATTACKER: &[&str] = &["--no-report", "--seize-exe", SEIZED, "--sleep", "0"];

/// The attacker's report in its rootfs.
fn report_path(rootfs: &Path) -> PathBuf {
    rootfs.join(SEIZED.trim_start_matches('/'))
}

/// Whether the attacker holds the executable of a process it caught.
fn caught(rootfs: &Path) -> bool {
    report_path(rootfs).with_extension("caught").exists()
}

/// Asserts the attacker could not write the runtime's binary. amphi must have
/// let itself be caught (the attack ran); a peer may instead never run itself
/// in the container at all (runc 1.1 makes `#!/proc/self/exe` fail with
/// `ENOENT`), which defends as well.
fn assert_defended(case: &Case, attacker: &str, rootfs: &Path, runtime: &RuntimeCopy) {
    if !caught(rootfs) {
        assert!(
            !support::runtime().is_amphi,
            "the attacker caught no process of the runtime in {ATTEMPTS} attempts; its stderr: {:?}",
            fs::read_to_string(case.stderr_path(attacker)).unwrap_or_default()
        );
        runtime.assert_intact();
        return;
    }
    // It reports once every process of the copy is gone (no more ETXTBSY).
    let text = wait_for_file(&report_path(rootfs));
    let report: Value = serde_json::from_str(&text).expect("the attacker's report is JSON");
    assert_eq!(report["written"], false, "the attacker wrote the runtime's binary: {report}");
    assert_ne!(report["reopen"], "ok", "the attacker opened the runtime's binary for writing: {report}");
    assert_ne!(report["reopen"], "ETXTBSY", "the runtime never let go of its binary: {report}");
    if support::runtime().is_amphi {
        // amphi runs from a read-only mount of its binary.
        assert_eq!(report["reopen"], "EROFS", "{report}");
    }
    runtime.assert_intact();
}

#[test]
fn exec_of_a_proc_self_exe_script_cannot_overwrite_the_runtime() {
    let Some(case) = support::case("hostile_exe_exec") else { return };
    let runtime = RuntimeCopy::new(&case);
    let id = case.id("c");
    let (bundle, rootfs) = hostile_bundle(&case, &id, ATTACKER, |_| {});
    runtime.create(&case, &bundle, &id);
    runtime.ok(&case, &["start", &id]);
    // Each exec runs the runtime in the container for a moment (it refuses
    // `/evil.sh` as a command line); the attacker may miss one.
    for _ in 0..ATTEMPTS {
        if caught(&rootfs) {
            break;
        }
        let _ = runtime.run(&case, &["exec", &id, "/evil.sh"]);
    }
    assert_defended(&case, &id, &rootfs, &runtime);
    runtime.ok(&case, &["delete", "--force", &id]);
    case.assert_all_gone();
}

#[test]
fn a_proc_self_exe_entrypoint_in_a_shared_pid_namespace_cannot_overwrite_the_runtime() {
    // A pod: the attacker's container owns the pid namespace (as a pod's
    // pause container would) and the victim's joins it, so the attacker sees
    // the victim's init turn into the runtime without any exec.
    let Some(case) = support::case("hostile_exe_pod") else { return };
    let runtime = RuntimeCopy::new(&case);
    let attacker = case.id("attacker");
    let (bundle, rootfs) = hostile_bundle(&case, &attacker, ATTACKER, |_| {});
    runtime.create(&case, &bundle, &attacker);
    runtime.ok(&case, &["start", &attacker]);
    let pid = case.state(&attacker)["pid"].as_i64().expect("the attacker's pid");
    for attempt in 0..ATTEMPTS {
        if caught(&rootfs) {
            break;
        }
        let victim = case.id(&format!("victim{attempt}"));
        let (bundle, _) = hostile_bundle(&case, &victim, &[], |config| {
            config["process"]["args"] = json!(["/evil.sh"]);
            for ns in config["linux"]["namespaces"].as_array_mut().expect("namespaces") {
                if ns["type"] == "pid" {
                    ns["path"] = json!(format!("/proc/{pid}/ns/pid"));
                }
            }
        });
        runtime.create(&case, &bundle, &victim);
        runtime.ok(&case, &["start", &victim]);
        case.wait_status(&victim, "stopped");
        runtime.ok(&case, &["delete", &victim]);
    }
    assert_defended(&case, &attacker, &rootfs, &runtime);
    runtime.ok(&case, &["delete", "--force", &attacker]);
    case.assert_all_gone();
}
