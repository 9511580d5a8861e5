//! Hostile images: the container's files decide where its paths lead, never
//! what the runtime mounts, opens or runs. Each test builds the image an
//! attacker would, attempts the attack through the real runtime and checks the
//! host afterwards (a host-wide value untouched, nothing mounted or left
//! behind, no command hanging).
//!
//! Exceptions against runc: the console attack is CVE-2025-52565, which the
//! runc of this project's machines (1.1.5) does not defend; a fifo entrypoint
//! is refused by amphi at `create`, while runc leaves it to `start`. Both
//! return early for a runtime that is not amphi.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{self, Case, check, describe, probe_report, runtime};
use crate::terminal::{ConsoleSocket, read_to_end};

/// A host-wide sysctl (no namespace has its own) that is harmless to change
/// and that the container must not be able to write: `/proc/sys` is one of its
/// read-only paths.
const HOST_SYSCTL: &str = "/proc/sys/fs/lease-break-time";

/// The pts major number.
const PTS_MAJOR: u64 = 136;

/// How long a runtime command may take before it counts as hung. Not a timed
/// assertion: a command that works returns at once; this only turns a hang
/// into a failure.
const HANG: Duration = Duration::from_secs(20);

/// A case for a test of amphi's own behaviour, or None.
fn amphi_case(name: &str) -> Option<Case> {
    let case = support::case(name)?;
    runtime().is_amphi.then_some(case)
}

/// Spawns `cmd` with its output in files of the case's work dir named after
/// `label`, waits for it, and kills it (and fails the test) if it hangs.
fn bounded(case: &Case, mut cmd: std::process::Command, label: &str) -> Output {
    let out_path = case.work.path().join(format!("{label}.out"));
    let err_path = case.work.path().join(format!("{label}.err"));
    let out = fs::File::create(&out_path).expect("stdout file");
    let err = fs::File::create(&err_path).expect("stderr file");
    let mut child: Child = cmd.stdout(out).stderr(err).spawn().expect("spawn the runtime");
    let deadline = Instant::now() + HANG;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{label}: still running after {HANG:?}, killed: {:?}", fs::read_to_string(&err_path));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output { status, stdout: fs::read(&out_path).unwrap_or_default(), stderr: fs::read(&err_path).unwrap_or_default() }
}

/// Asserts `out` is a failure with one line, `amphi: …`, holding every word.
fn one_line_failure(out: &Output, words: &[&str]) {
    assert!(!out.status.success(), "succeeded: {}", describe(out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "not one line: {stderr:?}");
    assert!(stderr.starts_with("amphi: "), "{stderr:?}");
    for word in words {
        assert!(stderr.contains(word), "{stderr:?} does not name {word:?}");
    }
}

// --- the console -------------------------------------------------------------

/// The image of CVE-2025-52565: no `/dev` tmpfs, the container's devpts at
/// `/devpts`, and `/dev/pts` a symlink to a directory of the image where
/// `ptmx` leads to the real multiplexer and every pty number to `target`. A
/// runtime that binds `/dev/pts/<n>` by path onto `/dev/console` binds
/// `target` there instead, writable whatever the read-only paths say.
fn console_trap(rootfs: &Path, target: &str) {
    let trap = rootfs.join("trap");
    fs::create_dir_all(&trap).expect("trap dir");
    fs::create_dir_all(rootfs.join("devpts")).expect("devpts dir");
    symlink("/devpts/ptmx", trap.join("ptmx")).expect("ptmx link");
    for n in 0..64 {
        symlink(target, trap.join(n.to_string())).expect("pty number link");
    }
    symlink("/trap", rootfs.join("dev/pts")).expect("/dev/pts link");
}

/// The mounts of `config` without the `/dev` tmpfs: the image's `/dev` is
/// the container's.
fn without_dev_tmpfs(config: &mut Value) {
    config["mounts"].as_array_mut().expect("mounts").retain(|m| m["destination"] != "/dev");
}

/// [`without_dev_tmpfs`], and devpts at `/devpts`.
fn devpts_elsewhere(config: &mut Value) {
    without_dev_tmpfs(config);
    for m in config["mounts"].as_array_mut().expect("mounts").iter_mut().filter(|m| m["destination"] == "/dev/pts") {
        m["destination"] = json!("/devpts");
    }
}

#[test]
fn the_console_is_never_a_file_the_image_points_at() {
    let Some(case) = amphi_case("console_symlink_trap") else { return };
    let id = case.id("c");
    let rootfs = case.private_rootfs(&id);
    console_trap(&rootfs, HOST_SYSCTL);
    let before = fs::read_to_string(HOST_SYSCTL).expect("read the host's sysctl");
    let planted = (before.trim().parse::<u64>().expect("a number") + 1).to_string();
    let write = format!("/dev/console:{planted}\n");
    let bundle = case.probe_bundle(&id, &["--write", &write, "--check", "/dev/console"], |config| {
        config["root"]["path"] = json!(rootfs);
        config["process"]["terminal"] = json!(true);
        devpts_elsewhere(config);
    });

    let socket = ConsoleSocket::new();
    let mut create =
        case.cmd(&["create", "--bundle", bundle.dir().to_str().unwrap(), "--console-socket", socket.arg()]);
    create.arg(&id);
    let out = bounded(&case, create, "create");
    let mut report = None;
    if out.status.success() {
        let (_, master) = socket.receive();
        case.ok(&["start", &id]);
        report = Some(probe_report(&read_to_end(&master)));
        case.wait_status(&id, "stopped");
        case.ok(&["delete", &id]);
    }

    let after = fs::read_to_string(HOST_SYSCTL).expect("read the host's sysctl");
    if after != before {
        // Put the host back before failing.
        fs::write(HOST_SYSCTL, &before).expect("restore the host's sysctl");
    }
    assert_eq!(after, before, "the container wrote the host's {HOST_SYSCTL} through /dev/console");
    match report {
        // The console is the pty's slave, whatever /dev/pts leads to.
        Some(report) => {
            let console = check(&report, "/dev/console");
            assert_eq!(console["type"], "char", "/dev/console: {console}");
            assert_eq!(console["rdev"][0], PTS_MAJOR, "/dev/console: {console}");
        }
        None => one_line_failure(&out, &["/dev/console"]),
    }
    case.assert_all_gone();
}

#[test]
fn a_console_path_that_is_a_symlink_is_refused() {
    let Some(case) = amphi_case("console_is_a_symlink") else { return };
    let id = case.id("c");
    let rootfs = case.private_rootfs(&id);
    // An image whose /dev/console leads to a sysctl: binding the pty there
    // would follow the link and cover the file the link names.
    symlink(HOST_SYSCTL, rootfs.join("dev/console")).expect("/dev/console link");
    let before = fs::read_to_string(HOST_SYSCTL).expect("read the host's sysctl");
    let bundle = case.probe_bundle(&id, &[], |config| {
        config["root"]["path"] = json!(rootfs);
        config["process"]["terminal"] = json!(true);
        without_dev_tmpfs(config);
    });
    let socket = ConsoleSocket::new();
    let mut create =
        case.cmd(&["create", "--bundle", bundle.dir().to_str().unwrap(), "--console-socket", socket.arg()]);
    create.arg(&id);
    let out = bounded(&case, create, "create");
    one_line_failure(&out, &["/dev/console", "symlink"]);
    assert_eq!(fs::read_to_string(HOST_SYSCTL).expect("read the host's sysctl"), before);
    case.assert_all_gone();
}

// --- fifo entrypoints ----------------------------------------------------------

/// A private rootfs for `id` with a fifo at `/fifo` (mode 0755: it looks
/// executable).
fn rootfs_with_fifo(case: &Case, id: &str) -> PathBuf {
    let rootfs = case.private_rootfs(id);
    nix::unistd::mkfifo(&rootfs.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o755)).expect("mkfifo");
    rootfs
}

/// `create` of `bundle` as `id`, bounded: it must fail at once, naming the
/// fifo, and leave nothing behind.
fn create_is_refused(case: &Case, bundle: &amphi_test_bundles::Bundle, id: &str) {
    let create = case.cmd(&["create", "--bundle", bundle.dir().to_str().unwrap(), id]);
    let out = bounded(case, create, &format!("create-{id}"));
    one_line_failure(&out, &["/fifo", "fifo", "not a regular file"]);
    case.assert_gone(id);
}

#[test]
fn a_fifo_entrypoint_fails_create_at_once() {
    let Some(case) = amphi_case("fifo_entrypoint_native") else { return };
    let id = case.id("c");
    let rootfs = rootfs_with_fifo(&case, &id);
    let bundle = case.probe_bundle(&id, &[], |config| {
        config["root"]["path"] = json!(rootfs);
        config["process"]["args"] = json!(["/fifo"]);
    });
    create_is_refused(&case, &bundle, &id);
    case.assert_all_gone();
}

#[test]
fn a_fifo_wasm_entrypoint_fails_create_at_once() {
    let Some(case) = amphi_case("fifo_entrypoint_wasm") else { return };
    let id = case.id("c");
    let rootfs = rootfs_with_fifo(&case, &id);
    let bundle = case.probe_bundle(&id, &[], |config| {
        config["root"]["path"] = json!(rootfs);
        config["process"]["args"] = json!(["/fifo"]);
        config["annotations"] = json!({"run.oci.handler": "wasm"});
    });
    create_is_refused(&case, &bundle, &id);
    case.assert_all_gone();
}

#[test]
fn exec_of_a_fifo_fails_at_once() {
    let Some(case) = amphi_case("fifo_entrypoint_exec") else { return };
    let id = case.id("c");
    let rootfs = rootfs_with_fifo(&case, &id);
    let bundle = case.probe_bundle(&id, &["--sleep", "0"], |config| {
        config["root"]["path"] = json!(rootfs);
    });
    let running = case.start(&bundle, &id);
    for (n, args) in [&["/fifo"][..], &["fifo"]].iter().enumerate() {
        // By path, and as a bare name found in PATH.
        let mut exec = case.cmd(&["exec", "--env", "PATH=/", &id]);
        exec.args(*args);
        let out = bounded(&case, exec, &format!("exec-{n}"));
        one_line_failure(&out, &["/fifo", "fifo", "not a regular file"]);
    }
    let state = case.state(&id);
    assert_eq!(state["status"], "running", "the container was disturbed: {state}");
    assert_eq!(state["pid"].as_i64(), Some(running.pid));
    let left: Vec<i32> = support::processes_in_cgroup(&Case::cgroup_path(&id))
        .into_iter()
        .filter(|pid| i64::from(*pid) != running.pid)
        .collect();
    assert!(left.is_empty(), "exec left processes in the container: {left:?}");
    case.delete_force(&id);
    case.assert_all_gone();
}
