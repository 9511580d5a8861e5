//! The lifecycle through runc's command line: create, start, state, kill, delete,
//! run, list, as containerd and a terminal user drive them.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{self, Case, describe, probe_report};

const SLEEP: &[&str] = &["--no-report", "--sleep", "0"];

#[test]
fn status_at_each_step() {
    let Some(case) = support::case("status_at_each_step") else { return };
    let id = case.id("c");
    let bundle = case.probe_bundle(&id, SLEEP, |_| {});
    let pid_file = case.work.path().join("pid");
    let out = case.create(&bundle, &id, &["--pid-file", pid_file.to_str().unwrap()]);
    assert!(out.status.success(), "create: {}", describe(&out));

    let state = case.state(&id);
    assert_eq!(state["status"], "created");
    assert_eq!(state["id"], id.as_str());
    assert_eq!(state["bundle"], bundle.dir().to_str().unwrap());
    assert!(state["ociVersion"].as_str().is_some_and(|v| v.starts_with("1.")));
    let pid = state["pid"].as_i64().expect("pid");
    assert!(pid > 0);
    // The pid file exists when create returns: digits only, the host pid.
    let pid_text = std::fs::read_to_string(&pid_file).expect("pid file");
    assert_eq!(pid_text, pid.to_string(), "pid file holds only the digits");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());

    case.ok(&["start", &id]);
    assert_eq!(case.status(&id), "running");
    assert_eq!(case.state(&id)["pid"].as_i64(), Some(pid));

    case.ok(&["kill", &id, "KILL"]);
    case.wait_status(&id, "stopped");
    case.ok(&["delete", &id]);
    case.assert_all_gone();
}

#[test]
fn kill_in_created_state() {
    let Some(case) = support::case("kill_in_created_state") else { return };
    let id = case.id("c");
    let bundle = case.probe_bundle(&id, SLEEP, |_| {});
    let out = case.create(&bundle, &id, &[]);
    assert!(out.status.success(), "create: {}", describe(&out));
    assert_eq!(case.status(&id), "created");
    // The default signal, TERM, ends a container that was never started.
    case.ok(&["kill", &id]);
    case.wait_status(&id, "stopped");
    // A stopped container cannot be signalled or started.
    assert!(!case.run(&["kill", &id, "TERM"]).status.success());
    assert!(!case.run(&["start", &id]).status.success());
    case.ok(&["delete", &id]);
    case.assert_all_gone();
}

#[test]
fn kill_accepts_runc_signal_spellings() {
    let Some(case) = support::case("kill_spellings") else { return };
    for (n, signal) in ["SIGTERM", "15", "TERM"].iter().enumerate() {
        let id = case.id(&format!("s{n}"));
        let bundle = case.probe_bundle(&id, &["--no-report", "--wait-signal"], |_| {});
        assert!(case.create(&bundle, &id, &[]).status.success());
        case.ok(&["start", &id]);
        support::wait_in_sigwait(case.state(&id)["pid"].as_i64().unwrap());
        case.ok(&["kill", &id, signal]);
        case.wait_status(&id, "stopped");
        let said = support::wait_for_file(&case.stdout_path(&id));
        assert!(said.contains("SIGTERM"), "{signal}: the probe saw {said:?}");
        case.ok(&["delete", &id]);
    }
    case.assert_all_gone();
}

#[test]
fn delete_force_of_a_running_container() {
    let Some(case) = support::case("delete_force_running") else { return };
    let id = case.id("c");
    let bundle = case.probe_bundle(&id, SLEEP, |_| {});
    assert!(case.create(&bundle, &id, &[]).status.success());
    case.ok(&["start", &id]);
    let pid = case.state(&id)["pid"].as_i64().unwrap();
    // Without --force a running container is refused, and left running.
    let out = case.run(&["delete", &id]);
    assert!(!out.status.success(), "delete of a running container succeeded");
    assert_eq!(case.status(&id), "running");
    case.ok(&["delete", "--force", &id]);
    assert!(
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z ")),
        "init {pid} still runs after delete --force"
    );
    case.assert_all_gone();
}

#[test]
fn delete_of_a_created_container() {
    let Some(case) = support::case("delete_created") else { return };
    let id = case.id("c");
    let bundle = case.probe_bundle(&id, SLEEP, |_| {});
    assert!(case.create(&bundle, &id, &[]).status.success());
    case.ok(&["delete", &id]);
    case.assert_all_gone();
}

#[test]
fn run_exits_with_the_container_status() {
    let Some(case) = support::case("run_exit_status") else { return };
    for code in [0, 3, 77] {
        let id = case.id(&format!("x{code}"));
        let bundle = case.probe_bundle(&id, &["--no-report", "--exit", &code.to_string()], |_| {});
        let out = case.run(&["run", "--bundle", bundle.dir().to_str().unwrap(), &id]);
        assert_eq!(out.status.code(), Some(code), "{}", describe(&out));
        case.assert_gone(&id);
    }
}

#[test]
fn run_shows_the_container_output() {
    let Some(case) = support::case("run_output") else { return };
    let id = case.id("c");
    let bundle = case.probe_bundle(&id, &["--no-report", "--stdout", "to stdout", "--stderr", "to stderr"], |_| {});
    let out = case.run(&["run", "--bundle", bundle.dir().to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "to stdout");
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "to stderr");
    case.assert_all_gone();
}

#[test]
fn run_killed_by_a_signal_exits_128_plus_n() {
    let Some(case) = support::case("run_signalled") else { return };
    let id = case.id("c");
    let bundle = case.probe_bundle(&id, SLEEP, |_| {});
    let mut child = case
        .cmd(&["run", "--bundle", bundle.dir().to_str().unwrap(), &id])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn run");
    case.wait_status(&id, "running");
    case.ok(&["kill", &id, "KILL"]);
    let status = child.wait().expect("wait run");
    assert_eq!(status.code(), Some(128 + 9));
    case.assert_all_gone();
}

#[test]
fn run_forwards_signals_to_the_container() {
    let Some(case) = support::case("run_forwards") else { return };
    let id = case.id("c");
    let bundle = case.probe_bundle(&id, &["--no-report", "--wait-signal"], |_| {});
    let child = case
        .cmd(&["run", "--bundle", bundle.dir().to_str().unwrap(), &id])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn run");
    case.wait_status(&id, "running");
    support::wait_in_sigwait(case.state(&id)["pid"].as_i64().unwrap());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGUSR1)
        .expect("signal run");
    let out = child.wait_with_output().expect("wait run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("SIGUSR1"), "{}", describe(&out));
    assert_eq!(out.status.code(), Some(128 + 10));
    case.assert_all_gone();
}

#[test]
fn run_detach_leaves_the_container_running() {
    let Some(case) = support::case("run_detach") else { return };
    let id = case.id("c");
    let bundle = case.probe_bundle(&id, SLEEP, |_| {});
    let pid_file = case.work.path().join("pid");
    let out = case
        .cmd(&[
            "run",
            "--detach",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--bundle",
            bundle.dir().to_str().unwrap(),
            &id,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run --detach");
    assert!(out.success());
    assert_eq!(case.status(&id), "running");
    let pid: i64 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert_eq!(case.state(&id)["pid"].as_i64(), Some(pid));
    case.ok(&["delete", "--force", &id]);
    case.assert_all_gone();
}

#[test]
fn two_containers_at_once() {
    let Some(case) = support::case("two_at_once") else { return };
    let a = case.id("a");
    let b = case.id("b");
    for id in [&a, &b] {
        let bundle = case.probe_bundle(id, SLEEP, |_| {});
        assert!(case.create(&bundle, id, &[]).status.success());
        case.ok(&["start", id]);
    }
    let pid_a = case.state(&a)["pid"].as_i64().unwrap();
    let pid_b = case.state(&b)["pid"].as_i64().unwrap();
    assert_ne!(pid_a, pid_b);
    let ns = |pid: i64| std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    assert_ne!(ns(pid_a), ns(pid_b), "each container has its own pid namespace");
    case.ok(&["delete", "--force", &a]);
    case.assert_gone(&a);
    assert_eq!(case.status(&b), "running", "deleting one container disturbed the other");
    case.ok(&["delete", "--force", &b]);
    case.assert_all_gone();
}

#[test]
fn list_shows_every_container() {
    let Some(case) = support::case("list") else { return };
    let a = case.id("a");
    let b = case.id("b");
    for id in [&a, &b] {
        let bundle = case.probe_bundle(id, SLEEP, |_| {});
        assert!(case.create(&bundle, id, &[]).status.success());
    }
    case.ok(&["start", &b]);
    let table = case.ok(&["list"]);
    let header = table.lines().next().unwrap();
    for column in ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"] {
        assert!(header.contains(column), "{header}");
    }
    assert!(table.lines().any(|l| l.starts_with(&a) && l.contains("created")), "{table}");
    assert!(table.lines().any(|l| l.starts_with(&b) && l.contains("running")), "{table}");
    let json: serde_json::Value = serde_json::from_str(&case.ok(&["list", "--format", "json"])).unwrap();
    let ids: Vec<&str> = json.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&a.as_str()) && ids.contains(&b.as_str()), "{json}");
    for id in [&a, &b] {
        case.ok(&["delete", "--force", id]);
    }
    case.assert_all_gone();
}

#[test]
fn starts_of_one_container_serialize() {
    let Some(case) = support::case("starts_serialize") else { return };
    if !support::runtime().is_amphi {
        // Documented exception: runc's losing `start` calls block forever on
        // the exec fifo the winner already consumed.
        return;
    }
    let id = case.id("c");
    let bundle = case.probe_bundle(&id, SLEEP, |_| {});
    assert!(case.create(&bundle, &id, &[]).status.success());
    // Eight concurrent starts: exactly one lifts the barrier, the others see a
    // running container and fail.
    let children: Vec<_> = (0..8)
        .map(|_| case.cmd(&["start", &id]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap())
        .collect();
    let succeeded = children.into_iter().map(|mut c| c.wait().unwrap()).filter(|s| s.success()).count();
    assert_eq!(succeeded, 1);
    assert_eq!(case.status(&id), "running");
    case.ok(&["delete", "--force", &id]);
    case.assert_all_gone();
}

#[test]
fn the_probe_reports_from_inside() {
    let Some(case) = support::case("probe_reports") else { return };
    let id = case.id("c");
    let bundle = case.probe_bundle(&id, &[], |_| {});
    let out = case.run(&["run", "--bundle", bundle.dir().to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", describe(&out));
    let report = probe_report(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(report["pid"], 1, "{report}");
    case.assert_all_gone();
}

#[test]
fn delete_waits_for_the_init_to_die() {
    let Some(case) = support::case("delete_waits") else { return };
    let id = case.id("c");
    let bundle = case.probe_bundle(&id, SLEEP, |_| {});
    assert!(case.create(&bundle, &id, &[]).status.success());
    case.ok(&["start", &id]);
    let started = Instant::now();
    case.ok(&["delete", "--force", &id]);
    assert!(started.elapsed() < Duration::from_secs(5));
    case.assert_all_gone();
}

#[test]
fn spec_writes_a_config_that_runs() {
    let Some(case) = support::case("spec_runs") else { return };
    let dir = case.work.path().join("spec");
    std::fs::create_dir_all(&dir).unwrap();
    case.ok(&["spec", "--bundle", dir.to_str().unwrap()]);
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["root"]["path"], "rootfs");
    assert!(config["ociVersion"].as_str().is_some_and(|v| v.starts_with("1.")));
    // A second spec does not overwrite the first.
    let again = case.run(&["spec", "--bundle", dir.to_str().unwrap()]);
    assert!(!again.status.success(), "{}", describe(&again));
    // The written config runs a container (with the busybox rootfs and no tty).
    let id = case.id("c");
    let bundle = support::bundles().busybox.variant(&case.work.path().join("from-spec"), |c| {
        let mut spec = config.clone();
        spec["root"] = c["root"].clone();
        spec["process"]["terminal"] = serde_json::json!(false);
        spec["process"]["args"] = serde_json::json!(["/bin/echo", "from spec"]);
        spec["linux"]["cgroupsPath"] = serde_json::Value::String(Case::cgroup_path(&id));
        *c = spec;
    });
    let out = case.run(&["run", "--bundle", bundle.unwrap().dir().to_str().unwrap(), &id]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "from spec", "{}", describe(&out));
    case.assert_all_gone();
}

#[test]
fn version_names_the_runtime_and_the_spec() {
    let Some(case) = support::case("version") else { return };
    let out = case.ok(&["--version"]);
    let first = out.lines().next().unwrap_or_default();
    assert!(first.contains("version"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("spec: 1.")), "{out}");
}
