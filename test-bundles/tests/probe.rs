//! The built `amphi-probe`, run as a test would run it: as a plain child, as pid 1
//! of a new pid namespace, and alone in a chroot of the probe bundle.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

const PROBE: &str = env!("CARGO_BIN_EXE_amphi-probe");

/// Whether a test that needs root may run. Without root it fails under `CI=true`
/// and is skipped (saying so) otherwise.
#[expect(clippy::print_stderr, reason = "a skipped test says why")]
fn have_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "{test} needs root");
    eprintln!("skipped {test}: needs root");
    false
}

fn run(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|e| panic!("run {command:?}: {e}"))
}

/// The report: the first line of stdout.
fn report(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().next().unwrap_or_else(|| panic!("no report; stderr: {}", stderr(output)));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("report is not JSON ({e}): {line}"))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn own_status_field(key: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").expect("read own status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in status"))
        .trim()
        .to_owned()
}

#[test]
fn report_describes_the_process_that_printed_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let child = Command::new(PROBE)
        .args(["--check", "/"])
        .env_clear()
        .env("AMPHI_TEST", "a b")
        .current_dir(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn probe");
    let pid = child.id();
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success(), "{}", stderr(&output));
    let report = report(&output);

    assert_eq!(report["pid"], pid);
    assert_eq!(report["ppid"], std::process::id());
    assert_eq!(report["args"], json!([PROBE, "--check", "/"]));
    assert_eq!(report["env"], json!(["AMPHI_TEST=a b"]));
    assert_eq!(report["cwd"], json!(tmp.path().canonicalize().expect("canonical tmp")));
    let euid = nix::unistd::geteuid().as_raw();
    assert_eq!((&report["uid"], &report["euid"], &report["suid"]), (&json!(euid), &json!(euid), &json!(euid)));
    assert_eq!(report["egid"], nix::unistd::getegid().as_raw());
    assert_eq!(report["hostname"], json!(nix::unistd::gethostname().expect("hostname").to_string_lossy()));

    // Inherited from this test process, so they must match what it sees itself.
    assert_eq!(report["capabilities"]["effective"]["hex"], own_status_field("CapEff"));
    assert_eq!(report["capabilities"]["bounding"]["hex"], own_status_field("CapBnd"));
    assert_eq!(report["umask"], u32::from_str_radix(&own_status_field("Umask"), 8).expect("octal"));
    assert_eq!(report["seccomp"], own_status_field("Seccomp").parse::<u64>().expect("number"));
    let (soft, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).expect("rlimit");
    assert_eq!(report["rlimits"]["RLIMIT_NOFILE"], json!({"soft": soft, "hard": hard}));
    assert_eq!(report["rlimits"].as_object().expect("rlimits").len(), 16);
    for (name, target) in [("pid", "pid"), ("mnt", "mnt"), ("net", "net"), ("user", "user")] {
        let own = std::fs::read_link(format!("/proc/self/ns/{target}")).expect("own namespace");
        assert_eq!(report["namespaces"][name], json!(own), "{name}");
    }
    assert_eq!(
        report["cgroup"],
        json!(std::fs::read_to_string("/proc/self/cgroup").expect("own cgroup").lines().collect::<Vec<_>>())
    );
    let mounts = report["mounts"].as_array().expect("mounts");
    assert!(mounts.iter().any(|m| m["mount_point"] == "/proc" && m["fs_type"] == "proc"), "{mounts:?}");
    assert!(mounts.iter().all(|m| m.get("error").is_none()), "{mounts:?}");
    assert_eq!(report["tty"], json!({"stdin": false, "stdout": false, "stderr": false}));
    assert_eq!(report["checks"][0]["path"], "/");
    assert_eq!(report["checks"][0]["is_dir"], true);
    assert!(report.get("writes").is_none());
}

#[test]
fn output_flags_act_in_order_and_set_the_exit_status() {
    let output = run(Command::new(PROBE).args([
        "--no-report",
        "--stdout",
        "one",
        "--stdout=two",
        "--stderr",
        "err",
        "--exit",
        "7",
    ]));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "one\ntwo\n");
    assert_eq!(stderr(&output), "err\n");
    assert_eq!(output.status.code(), Some(7));

    let output = run(Command::new(PROBE).args(["--stdout", "after"]));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with('{') && lines[1] == "after", "{stdout}");
}

#[test]
fn write_creates_the_file_and_a_failed_write_fails_the_probe() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let good = tmp.path().join("good");
    let bad = tmp.path().join("missing/bad");
    let output = run(Command::new(PROBE)
        .arg("--write")
        .arg(format!("{}:hello: world", good.display()))
        .arg("--check")
        .arg(&good));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(&good).expect("written"), "hello: world");
    let report = report(&output);
    assert_eq!(report["writes"], json!([{"path": good, "ok": true}]));
    assert_eq!(report["checks"][0]["content"], "hello: world", "writes happen before the report");

    let output = run(Command::new(PROBE).arg("--no-report").arg("--write").arg(format!("{}:x", bad.display())));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).starts_with(&format!("amphi-probe: write {}: ", bad.display())), "{}", stderr(&output));
}

#[test]
fn bad_flag_exits_2_with_usage() {
    let output = run(Command::new(PROBE).arg("--frobnicate"));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).starts_with("amphi-probe: unknown flag --frobnicate\nusage: amphi-probe"));
    assert!(output.stdout.is_empty());
}

#[test]
fn sleep_waits_before_exiting() {
    let start = Instant::now();
    let output = run(Command::new(PROBE).args(["--no-report", "--sleep", "0.3"]));
    assert!(output.status.success());
    assert!(start.elapsed() >= Duration::from_millis(300), "{:?}", start.elapsed());
}

#[test]
fn sleep_zero_lasts_until_killed() {
    let mut child = Command::new(PROBE)
        .args(["--no-report", "--stdout", "ready", "--sleep", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
    assert_eq!(line, "ready\n");
    std::thread::sleep(Duration::from_millis(200));
    assert!(child.try_wait().expect("try_wait").is_none(), "exited while asked to sleep forever");
    child.kill().expect("kill");
    assert_eq!(child.wait().expect("wait").signal(), Some(Signal::SIGKILL as i32));
}

/// Starts `command` (which runs the probe with `--stdout ready --wait-signal`),
/// waits for `ready`, sends `signal` to the process `target` returns, and checks
/// the probe's answer and its exit status `128 + signal`.
fn expect_signal_reported(mut command: Command, signal: Signal, target: impl FnOnce(u32) -> Pid) {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read");
    assert_eq!(line, "ready\n");
    kill(target(child.id()), signal).expect("send signal");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().expect("kill");
            child.wait().expect("wait");
            panic!("the probe ignored {signal}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("read answer");
    assert_eq!(rest, format!("{{\"number\":{},\"signal\":\"{}\"}}\n", signal as i32, signal.as_str()));
    assert_eq!(status.code(), Some(128 + signal as i32));
}

#[test]
fn wait_signal_reports_the_signal_and_exits_128_plus_n() {
    for signal in [Signal::SIGUSR1, Signal::SIGTERM, Signal::SIGHUP] {
        let mut command = Command::new(PROBE);
        command.args(["--no-report", "--stdout", "ready", "--wait-signal"]);
        expect_signal_reported(command, signal, |pid| Pid::from_raw(pid as i32));
    }
}

/// The children of `pid` as `/proc` lists them.
fn children(pid: u32) -> Vec<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).expect("read children");
    text.split_whitespace().map(|p| p.parse().expect("pid")).collect()
}

#[test]
fn wait_signal_works_as_pid_1_of_a_pid_namespace() {
    if !have_root("wait_signal_works_as_pid_1_of_a_pid_namespace") {
        return;
    }
    // As pid 1 the probe sees itself so...
    let output = run(Command::new("unshare").args(["--pid", "--fork", PROBE]));
    assert!(output.status.success(), "{}", stderr(&output));
    let report = report(&output);
    assert_eq!((&report["pid"], &report["ppid"]), (&json!(1), &json!(0)));

    // ...and a SIGTERM from outside, which the kernel drops for a pid-namespace
    // init with the default action, still reaches `--wait-signal`.
    let mut command = Command::new("unshare");
    command.args(["--pid", "--fork", "--kill-child", PROBE, "--no-report", "--stdout", "ready", "--wait-signal"]);
    expect_signal_reported(command, Signal::SIGTERM, |unshare| {
        let kids = children(unshare);
        assert_eq!(kids.len(), 1, "unshare's children: {kids:?}");
        Pid::from_raw(kids[0] as i32)
    });
}

#[test]
fn probe_runs_alone_in_the_probe_bundle_rootfs() {
    if !have_root("probe_runs_alone_in_the_probe_bundle_rootfs") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let bundle = amphi_test_bundles::build_probe(&tmp.path().join("probe"), Path::new(PROBE)).expect("build");
    let output = run(Command::new("chroot").arg(bundle.rootfs()).args([
        "/bin/amphi-probe",
        "--check",
        "/bin/amphi-probe",
        "--check",
        "/tmp",
    ]));
    assert!(output.status.success(), "the probe does not run alone (is it static?): {}", stderr(&output));
    let report = report(&output);
    assert_eq!(report["args"][0], "/bin/amphi-probe");
    assert_eq!(report["cwd"], "/");
    assert_eq!(report["checks"][0]["type"], "file");
    assert_eq!(report["checks"][1]["mode"], 0o1777);
    // No /proc in the chroot: those items say why, and the report goes on.
    let error = report["mounts"]["error"].as_str().expect("mounts error");
    assert!(error.starts_with("read /proc/self/mountinfo: "), "{error}");
    assert!(report["capabilities"]["error"].is_string());
    assert!(report["hostname"].is_string(), "the hostname does not need /proc");
}
