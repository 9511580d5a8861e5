//! Namespaces the spec leaves to the runtime: a type missing from
//! `linux.namespaces` is the runtime's own (the mount namespace included: then
//! the rootfs is a chroot and nothing is mounted on the host), and an entry with
//! a `path` is joined (the mount namespace included). `exec` works in both.
//!
//! runc 1.1 is skipped where it has no mount namespace of the container's own:
//! it then makes the host's `/` a recursive slave, binds the rootfs onto itself
//! in the host's mount table and leaves that mount behind (and fails without a
//! `/proc`), so running those tests against it would change the host.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{self, Case, check, describe, ns_link, probe_report, runtime, wait_for_file};

/// Report, then sleep until killed.
const STAY: &[&str] = &["--sleep", "0"];

/// Every namespace type, by its `/proc/<pid>/ns` name.
const ALL: [&str; 8] = ["user", "mnt", "pid", "net", "ipc", "uts", "cgroup", "time"];

fn host_ns(name: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{name}")).expect("readlink host namespace").to_string_lossy().into_owned()
}

/// Whether this kernel has namespaces of type `name`.
fn kernel_has(name: &str) -> bool {
    Path::new(&format!("/proc/self/ns/{name}")).exists()
}

/// Takes out of `config` everything that only a mount namespace of the
/// container's own can carry out (mounts, masked and read-only paths, a
/// read-only root) and the mount namespace itself.
fn without_mount_namespace(config: &mut Value) {
    config["linux"]["namespaces"].as_array_mut().expect("namespaces").retain(|ns| ns["type"] != "mount");
    config["mounts"] = json!([]);
    config["root"]["readonly"] = json!(false);
    let linux = config["linux"].as_object_mut().expect("linux");
    linux.remove("maskedPaths");
    linux.remove("readonlyPaths");
}

/// The mounts of this process's namespace, one line each, keyed by mount id.
fn host_mounts() -> Vec<(String, String)> {
    fs::read_to_string("/proc/self/mountinfo")
        .expect("read mountinfo")
        .lines()
        .map(|l| (l.split(' ').next().unwrap_or_default().to_owned(), l.to_owned()))
        .collect()
}

/// Asserts that the host's mount table has nothing new under `dir` and that
/// no mount it had before changed (options, propagation). Other tests may
/// mount elsewhere meanwhile, so only lines of both tables are compared.
fn assert_host_mounts_unchanged(before: &[(String, String)], dir: &Path) {
    let after = host_mounts();
    let dir = dir.to_string_lossy();
    let new: Vec<&String> = after.iter().filter(|(_, l)| l.contains(dir.as_ref())).map(|(_, l)| l).collect();
    assert!(new.is_empty(), "mounts left on the host under {dir}: {new:?}");
    for (id, line) in before {
        if let Some((_, now)) = after.iter().find(|(other, _)| other == id) {
            assert_eq!(now, line, "a mount of the host changed");
        }
    }
}

/// A rootfs of the case's own with a marker file only the container sees at `/`.
fn rootfs_with_marker(case: &Case, id: &str) -> (std::path::PathBuf, String) {
    let rootfs = case.private_rootfs(id);
    let text = format!("rootfs of {id}");
    fs::write(rootfs.join("marker"), &text).expect("write the marker");
    (rootfs, text)
}

#[test]
#[expect(clippy::print_stderr, reason = "a skipped test says why")]
fn without_a_mount_namespace_the_rootfs_is_a_chroot_and_exec_enters_it() {
    let Some(case) = support::case("chroot_rootfs") else { return };
    if !runtime().is_amphi {
        eprintln!("skipping: {} mounts in the host's namespace without a mount namespace", runtime().bin.display());
        return;
    }
    let id = case.id("c");
    let (rootfs, marker) = rootfs_with_marker(&case, &id);
    let host_only = case.work.path().to_string_lossy().into_owned();
    let args = [STAY, &["--check", "/marker", "--check", &host_only]].concat();
    let bundle = case.probe_bundle(&id, &args, |config| {
        without_mount_namespace(config);
        config["root"]["path"] = json!(rootfs);
    });
    let before = host_mounts();
    let c = case.start(&bundle, &id);
    // Inside: the rootfs is `/`, the host's files are out of reach.
    assert_eq!(check(&c.report, "/marker")["content"], marker.as_str(), "{}", c.report);
    assert_eq!(check(&c.report, &host_only)["exists"], false, "the host's {host_only} is visible");
    assert_eq!(c.report["cwd"], "/");
    // Outside: the host's mount namespace, a root that is the rootfs.
    assert_eq!(ns_link(c.pid, "mnt"), host_ns("mnt"), "not the runtime's mount namespace");
    assert_eq!(fs::read_link(format!("/proc/{}/root", c.pid)).expect("readlink root"), rootfs);
    assert_host_mounts_unchanged(&before, case.work.path());

    // exec: in the foreground, the probe's report; detached, seen from outside.
    let out =
        case.run(&["exec", &id, amphi_test_bundles::PROBE_IN_ROOTFS, "--check", "/marker", "--check", &host_only]);
    assert!(out.status.success(), "exec: {}", describe(&out));
    let report = probe_report(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(check(&report, "/marker")["content"], marker.as_str(), "exec'd process: {report}");
    assert_eq!(check(&report, &host_only)["exists"], false, "exec'd process sees the host's {host_only}");
    assert_eq!(report["cwd"], "/");
    let pid_file = case.work.path().join("exec.pid");
    let status = case
        .cmd(&[
            "exec",
            "--detach",
            "--pid-file",
            pid_file.to_str().expect("utf-8"),
            &id,
            "/bin/amphi-probe",
            "--sleep",
            "0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run exec");
    assert!(status.success(), "exec --detach: {status}");
    let exec_pid: i64 = wait_for_file(&pid_file).trim().parse().expect("pid");
    assert_eq!(fs::read_link(format!("/proc/{exec_pid}/root")).expect("readlink root"), rootfs);
    assert_eq!(ns_link(exec_pid, "mnt"), host_ns("mnt"));
    for name in ["pid", "net"] {
        assert_eq!(ns_link(exec_pid, name), ns_link(c.pid, name), "exec'd process: {name}");
    }

    case.delete_force(&id);
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(exec_pid as i32), nix::sys::signal::Signal::SIGKILL);
    case.assert_all_gone();
    assert_host_mounts_unchanged(&before, case.work.path());
}

#[test]
#[expect(clippy::print_stderr, reason = "a skipped test says why")]
fn a_spec_without_namespaces_shares_every_one_of_the_runtimes() {
    let Some(case) = support::case("no_namespaces") else { return };
    if !runtime().is_amphi {
        eprintln!("skipping: {} mounts in the host's namespace without a mount namespace", runtime().bin.display());
        return;
    }
    let id = case.id("c");
    let bundle = case.probe_bundle(&id, STAY, |config| {
        without_mount_namespace(config);
        config["linux"]["namespaces"] = json!([]);
        // A hostname needs a UTS namespace of the container's own.
        config.as_object_mut().expect("config").remove("hostname");
    });
    let before = host_mounts();
    let c = case.start(&bundle, &id);
    for name in ALL.into_iter().filter(|n| kernel_has(n)) {
        assert_eq!(ns_link(c.pid, name), host_ns(name), "{name}: not the runtime's namespace");
    }
    case.delete_force(&id);
    case.assert_all_gone();
    assert_host_mounts_unchanged(&before, case.work.path());
}

#[test]
#[expect(clippy::print_stderr, reason = "a skipped test says why")]
fn masked_paths_without_a_mount_namespace_are_refused() {
    let Some(case) = support::case("chroot_masked") else { return };
    // runc 1.1 refuses too, naming no field; the same bundle without masked
    // paths would then mount in the host's namespace (see the module docs).
    if !runtime().is_amphi {
        eprintln!("skipping: {} mounts in the host's namespace without a mount namespace", runtime().bin.display());
        return;
    }
    let id = case.id("c");
    let masked = case.probe_bundle(&id, STAY, |config| {
        without_mount_namespace(config);
        config["linux"]["maskedPaths"] = json!(["/proc/kcore"]);
    });
    let before = host_mounts();
    let out = case.create(&masked, &id, &[]);
    assert!(!out.status.success(), "create with masked paths and no mount namespace succeeded");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    assert!(err.contains("linux.maskedPaths"), "the field is not named: {err:?}");
    case.assert_gone(&id);
    assert_host_mounts_unchanged(&before, case.work.path());

    // It was the masked paths that were refused, not the missing namespace.
    let id = case.id("ok");
    let plain = case.probe_bundle(&id, STAY, without_mount_namespace);
    let c = case.start(&plain, &id);
    assert_eq!(ns_link(c.pid, "mnt"), host_ns("mnt"));
    case.delete_force(&id);
    case.assert_all_gone();
    assert_host_mounts_unchanged(&before, case.work.path());
}

/// A process that holds a private mount namespace of its own until dropped.
struct MountNamespaceHolder(Child);

impl MountNamespaceHolder {
    fn start() -> Self {
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sleep", "1000"])
            .stdin(Stdio::null())
            .spawn()
            .expect("run unshare");
        let holder = Self(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while fs::read_link(format!("/proc/{}/ns/mnt", holder.pid()))
            .is_ok_and(|l| l.to_string_lossy() == host_ns("mnt"))
            || holder.comm() != "sleep"
        {
            assert!(Instant::now() < deadline, "unshare never made its mount namespace");
            std::thread::sleep(Duration::from_millis(10));
        }
        holder
    }

    fn pid(&self) -> i64 {
        i64::from(self.0.id())
    }

    fn comm(&self) -> String {
        fs::read_to_string(format!("/proc/{}/comm", self.pid())).unwrap_or_default().trim().to_owned()
    }
}

impl Drop for MountNamespaceHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn joining_a_mount_namespace_by_path() {
    let Some(case) = support::case("join_mount_ns") else { return };
    let holder = MountNamespaceHolder::start();
    let theirs = ns_link(holder.pid(), "mnt");
    let id = case.id("c");
    let bundle = case.probe_bundle(&id, STAY, |config| {
        for ns in config["linux"]["namespaces"].as_array_mut().expect("namespaces") {
            if ns["type"] == "mount" {
                ns["path"] = json!(format!("/proc/{}/ns/mnt", holder.pid()));
            }
        }
    });
    let before = host_mounts();
    let c = case.start(&bundle, &id);
    assert_eq!(ns_link(c.pid, "mnt"), theirs, "not the joined mount namespace (outside)");
    assert_eq!(c.report["namespaces"]["mnt"], theirs.as_str(), "not the joined mount namespace (inside)");
    // The rootfs was built in that namespace: its /proc is the container's.
    assert_eq!(c.report["pid"], 1);

    let out = case.run(&["exec", &id, amphi_test_bundles::PROBE_IN_ROOTFS]);
    assert!(out.status.success(), "exec: {}", describe(&out));
    let report = probe_report(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(report["namespaces"]["mnt"], theirs.as_str(), "exec'd process: {report}");
    assert_eq!(report["namespaces"]["pid"], c.report["namespaces"]["pid"], "exec'd process: {report}");

    case.delete_force(&id);
    case.assert_all_gone();
    // Nothing reached the host's own mount namespace.
    assert_host_mounts_unchanged(&before, case.work.path());
    drop(holder);
}
