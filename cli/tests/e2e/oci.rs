//! The rest of the OCI runtime: hooks, ps, pause/resume, update, events,
//! features, and the descriptors passed to a container (`--preserve-fds`,
//! socket activation).
//!
//! Hooks are one busybox shell script in the test's work dir that appends
//! `KIND <state JSON>` to a log; the work dir is bind-mounted at the container's
//! `/tmp`, so the startContainer hook (whose path resolves inside the container)
//! is the same script at `/tmp/hook` and writes to the same log.
//!
//! Where runc differs and amphi follows the runtime-spec or the issue, the test
//! says so and checks runc for what it does:
//! - the `pid` of the hooks that run in the container (createContainer,
//!   startContainer): runc gives the init's pid in its own namespace (1), amphi
//!   the pid as the runtime sees it, as for every hook.
//! - a hook that outlives its timeout: runc kills the hook alone, amphi its
//!   whole process group.
//! - `pause` of a created container: runc freezes it, amphi refuses (only a
//!   running container can be paused).
//! - `events` without `--stats`: runc 1.1 keeps printing after the container
//!   stopped, amphi's stream ends with the container.
//! - poststart hooks: runc 1.1 runs them at `create` (fixed in runc 1.2), and a
//!   failing one fails `create`; the runtime-spec (and amphi) runs them once
//!   the workload was executed, and only logs their failure (`hook_order`).
//! - a hook that leaves a child holding its output: runc waits for that child
//!   even past the hook's timeout.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{self, Case, describe, proc_status, processes_in_cgroup, runtime};

/// The hook script: logs its kind and the state it got, says `$SAY` on stderr,
/// sleeps `$SLEEP` seconds in a background child when asked (recording the
/// child's pid), and exits with `$CODE`.
const HOOK_SCRIPT: &str = r#"#!/bin/busybox sh
printf '%s %s\n' "$KIND" "$(cat)" >> "$LOG"
[ -n "$SAY" ] && echo "$SAY" >&2
if [ -n "$SLEEP" ]; then
    sleep "$SLEEP" &
    echo $! > "$LOG.sleeper"
    wait
fi
exit "${CODE:-0}"
"#;

/// The container's view of the work dir.
const IN_CONTAINER: &str = "/tmp";

fn write_hook_script(case: &Case) -> PathBuf {
    let path = case.work.path().join("hook");
    fs::write(&path, HOOK_SCRIPT).expect("write the hook script");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod the hook script");
    path
}

/// One hook of `kind` running the script, with `env` added. The startContainer
/// hook runs inside the container, where the script and log are under `/tmp`.
fn hook(case: &Case, kind: &str, env: &[&str]) -> Value {
    let script = write_hook_script(case);
    let inside = kind == "startContainer";
    let (path, log) = if inside {
        (format!("{IN_CONTAINER}/hook"), format!("{IN_CONTAINER}/hooks.log"))
    } else {
        (script.to_string_lossy().into_owned(), log_path(case).to_string_lossy().into_owned())
    };
    let mut vars = vec![format!("KIND={kind}"), format!("LOG={log}"), "PATH=/bin:/usr/bin".to_owned()];
    vars.extend(env.iter().map(|e| (*e).to_owned()));
    json!({"path": path, "args": ["hook", kind], "env": vars})
}

fn log_path(case: &Case) -> PathBuf {
    case.work.path().join("hooks.log")
}

/// The log: each hook's kind and the state it read.
fn hook_log(case: &Case) -> Vec<(String, Value)> {
    fs::read_to_string(log_path(case))
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let (kind, state) = line.split_once(' ').unwrap_or((line, ""));
            let state = serde_json::from_str(state).unwrap_or_else(|e| panic!("{kind}: state {state:?}: {e}"));
            (kind.to_owned(), state)
        })
        .collect()
}

fn kinds(log: &[(String, Value)]) -> Vec<&str> {
    log.iter().map(|(k, _)| k.as_str()).collect()
}

/// Waits until the log holds `n` entries.
fn wait_for_log(case: &Case, n: usize) -> Vec<(String, Value)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = hook_log(case);
        if log.len() >= n {
            return log;
        }
        assert!(Instant::now() < deadline, "the hook log stayed at {:?}", kinds(&log));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A busybox bundle for `id` running `args`, the work dir at `/tmp`, with
/// `hooks` (a `hooks` object).
fn hooked_bundle(case: &Case, id: &str, args: &[&str], hooks: Value) -> amphi_test_bundles::Bundle {
    let work = case.work.path().to_string_lossy().into_owned();
    case.busybox_bundle(id, args, |config| {
        work_dir_at_tmp(config, &work);
        config["hooks"] = hooks;
    })
}

fn work_dir_at_tmp(config: &mut Value, work: &str) {
    config["mounts"].as_array_mut().expect("mounts").push(json!({
        "destination": IN_CONTAINER, "type": "bind", "source": work, "options": ["rbind", "rw"]
    }));
}

/// Asserts a one-line `amphi: …` error holding every one of `words` (for amphi;
/// runc words its errors its own way).
fn assert_one_line(stderr: &[u8], words: &[&str]) {
    let text = String::from_utf8_lossy(stderr);
    if !runtime().is_amphi {
        return;
    }
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1, "not one line: {text:?}");
    assert!(lines[0].starts_with("amphi: "), "{text:?}");
    for word in words {
        assert!(lines[0].contains(word), "{text:?} does not name {word:?}");
    }
}

const SLEEP: &[&str] = &["/bin/sleep", "1000"];

#[test]
fn hooks_run_in_order_with_the_state() {
    let Some(case) = support::case("hooks_order") else { return };
    let id = case.id("c");
    let hooks = json!({
        "prestart": [hook(&case, "prestart", &[])],
        "createRuntime": [hook(&case, "createRuntime", &[])],
        "createContainer": [hook(&case, "createContainer", &[])],
        "startContainer": [hook(&case, "startContainer", &[])],
        "poststart": [hook(&case, "poststart", &[])],
        "poststop": [hook(&case, "poststop", &[])],
    });
    let bundle = hooked_bundle(&case, &id, SLEEP, hooks);
    let out = case.create(&bundle, &id, &[]);
    assert!(out.status.success(), "create: {}", describe(&out));
    let pid = case.state(&id)["pid"].as_i64().expect("pid");

    // During create: prestart first (as runc), then createRuntime, then
    // createContainer; all see the container being created, with its id,
    // bundle and init.
    let log = hook_log(&case);
    let create_phase: &[&str] = if runtime().is_amphi {
        &["prestart", "createRuntime", "createContainer"]
    } else {
        // runc 1.1 runs poststart at create.
        &["prestart", "createRuntime", "createContainer", "poststart"]
    };
    assert_eq!(kinds(&log), create_phase);
    for (kind, state) in &log[..3] {
        assert_eq!(state["status"], "creating", "{kind}: {state}");
        assert_eq!(state["id"], id.as_str(), "{kind}: {state}");
        assert_eq!(state["bundle"], bundle.dir().to_str().unwrap(), "{kind}: {state}");
        assert!(state["ociVersion"].is_string(), "{kind}: {state}");
        if kind == "createContainer" && !runtime().is_amphi {
            // runc: the pid in the container's own namespace.
            assert_eq!(state["pid"], 1, "{state}");
        } else {
            assert_eq!(state["pid"].as_i64(), Some(pid), "{kind}: {state}");
        }
    }

    case.ok(&["start", &id]);
    let log = wait_for_log(&case, 5);
    let after_start: Vec<&str> = kinds(&log[3..]);
    // amphi runs poststart once the workload was executed, so after the init's
    // startContainer hook; runc runs both once the init was told to go, in
    // either order.
    if runtime().is_amphi {
        assert_eq!(after_start, ["startContainer", "poststart"]);
    }
    assert!(after_start.contains(&"startContainer") && after_start.contains(&"poststart"), "{:?}", kinds(&log));
    for (kind, state) in &log[3..] {
        assert_eq!(state["id"], id.as_str(), "{kind}: {state}");
        let expected = if kind == "startContainer" && !runtime().is_amphi { 1 } else { pid };
        assert_eq!(state["pid"].as_i64(), Some(expected), "{kind}: {state}");
    }
    let start_container = &log.iter().find(|(k, _)| k == "startContainer").expect("startContainer").1;
    assert_eq!(start_container["status"], "created", "{start_container}");
    let poststart = &log.iter().find(|(k, _)| k == "poststart").expect("poststart").1;
    if runtime().is_amphi {
        assert_eq!(poststart["status"], "running");
    }

    case.ok(&["kill", &id, "KILL"]);
    case.wait_status(&id, "stopped");
    case.ok(&["delete", &id]);
    let log = hook_log(&case);
    assert_eq!(kinds(&log).last(), Some(&"poststop"), "{:?}", kinds(&log));
    assert_eq!(log.len(), 6, "{:?}", kinds(&log));
    assert_eq!(log[5].1["status"], "stopped");
    assert_eq!(log[5].1["id"], id.as_str());
    case.assert_all_gone();
}

#[test]
fn a_failing_create_hook_fails_create_and_unwinds() {
    let Some(case) = support::case("hook_fails_create") else { return };
    for kind in ["prestart", "createRuntime", "createContainer"] {
        let id = case.id(kind);
        let hooks = json!({ kind: [hook(&case, kind, &["CODE=3", "SAY=no-way"])] });
        let bundle = hooked_bundle(&case, &id, SLEEP, hooks);
        let out = case.create(&bundle, &id, &[]);
        assert!(!out.status.success(), "{kind}: create succeeded: {}", describe(&out));
        assert_one_line(&out.stderr, &[&format!("{kind} hook 0"), "status 3", "no-way"]);
        case.assert_gone(&id);
        assert!(processes_in_cgroup(&Case::cgroup_path(&id)).is_empty());
    }
    // Each hook ran once, and nothing after it.
    assert_eq!(kinds(&hook_log(&case)), ["prestart", "createRuntime", "createContainer"]);
}

#[test]
fn a_hook_past_its_timeout_is_killed_and_create_unwinds() {
    let Some(case) = support::case("hook_timeout") else { return };
    let id = case.id("c");
    let mut slow = hook(&case, "createRuntime", &["SLEEP=5"]);
    slow["timeout"] = json!(1);
    let bundle = hooked_bundle(&case, &id, SLEEP, json!({"createRuntime": [slow]}));
    let started = Instant::now();
    let out = case.create(&bundle, &id, &[]);
    let took = started.elapsed();
    assert!(!out.status.success(), "create succeeded: {}", describe(&out));
    if runtime().is_amphi {
        // Killed at its timeout, not when its child ended (runc waits for it).
        assert!(took < Duration::from_secs(4), "create took {took:?}");
    }
    assert_one_line(&out.stderr, &["createRuntime hook 0", "timeout of 1s"]);
    case.assert_gone(&id);
    let sleeper = support::wait_for_file(&log_path(&case).with_extension("log.sleeper"));
    let sleeper: i32 = sleeper.trim().parse().expect("sleeper pid");
    let alive = || {
        fs::read_to_string(format!("/proc/{sleeper}/stat")).is_ok_and(|s| !s.contains(") Z ") && s.contains("sleep"))
    };
    if runtime().is_amphi {
        // The hook's whole process group went with it.
        let deadline = Instant::now() + Duration::from_secs(2);
        while alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(), "the hook's child {sleeper} outlived the timeout");
    } else if alive() {
        // runc kills the hook alone.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(sleeper), nix::sys::signal::Signal::SIGKILL);
    }
}

#[test]
fn a_failing_start_container_hook_stops_the_start() {
    let Some(case) = support::case("hook_fails_start") else { return };
    let id = case.id("c");
    let hooks = json!({"startContainer": [hook(&case, "startContainer", &["CODE=4", "SAY=not-today"])]});
    let bundle = hooked_bundle(&case, &id, &["/bin/sh", "-c", "touch /tmp/ran; exec sleep 1000"], hooks);
    let out = case.create(&bundle, &id, &[]);
    assert!(out.status.success(), "create: {}", describe(&out));
    // `start` has lifted the barrier before the hook runs: it succeeds, and the
    // container stops before its workload ran.
    case.ok(&["start", &id]);
    case.wait_status(&id, "stopped");
    assert!(!case.work.path().join("ran").exists(), "the workload ran after a failing startContainer hook");
    assert_eq!(kinds(&hook_log(&case)), ["startContainer"]);
    if runtime().is_amphi {
        let stderr = fs::read_to_string(case.stderr_path(&id)).unwrap_or_default();
        assert!(stderr.contains("startContainer hook 0") && stderr.contains("not-today"), "{stderr:?}");
    }
    case.ok(&["delete", &id]);
    case.assert_all_gone();
}

#[test]
fn failing_poststart_and_poststop_hooks_are_only_logged() {
    let Some(case) = support::case("hook_fails_after") else { return };
    let id = case.id("c");
    // runc 1.1 runs poststart at create and fails it: only poststop is tried there.
    let mut hooks = json!({"poststop": [hook(&case, "poststop", &["CODE=6"])]});
    if runtime().is_amphi {
        hooks["poststart"] = json!([hook(&case, "poststart", &["CODE=5", "SAY=meh"])]);
    }
    let bundle = hooked_bundle(&case, &id, SLEEP, hooks);
    let out = case.create(&bundle, &id, &[]);
    assert!(out.status.success(), "create: {}", describe(&out));
    let out = case.run(&["start", &id]);
    assert!(out.status.success(), "start: {}", describe(&out));
    if runtime().is_amphi {
        // Logged as a warning that names the hook.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("poststart hook 0") && stderr.contains("meh"), "{stderr:?}");
    }
    assert_eq!(case.status(&id), "running");
    let out = case.run(&["delete", "--force", &id]);
    assert!(out.status.success(), "delete: {}", describe(&out));
    let expected: &[&str] = if runtime().is_amphi { &["poststart", "poststop"] } else { &["poststop"] };
    assert_eq!(kinds(&hook_log(&case)), expected);
    case.assert_all_gone();
}

#[test]
fn ps_lists_the_containers_processes() {
    let Some(case) = support::case("ps") else { return };
    let id = case.id("c");
    let bundle = case.busybox_bundle(&id, &["/bin/sh", "-c", "sleep 1000 & exec sleep 1001"], |_| {});
    assert!(case.create(&bundle, &id, &[]).status.success());
    case.ok(&["start", &id]);
    let cgroup = Case::cgroup_path(&id);
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_in_cgroup(&cgroup).len() < 2 {
        assert!(Instant::now() < deadline, "the container's second process never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut expected = processes_in_cgroup(&cgroup);
    expected.sort_unstable();

    let json: Value = serde_json::from_str(&case.ok(&["ps", "--format", "json", &id])).expect("ps json");
    let mut pids: Vec<i32> =
        json.as_array().expect("an array").iter().map(|p| p.as_i64().expect("a pid") as i32).collect();
    pids.sort_unstable();
    assert_eq!(pids, expected);

    let table = case.ok(&["ps", &id]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].split_whitespace().any(|f| f == "PID"), "{table}");
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[1..].iter().all(|l| l.contains("sleep 100")), "{table}");

    let table = case.ok(&["ps", &id, "-o", "pid,comm"]);
    let rows: Vec<i32> = table.lines().skip(1).map(|l| l.split_whitespace().next().unwrap().parse().unwrap()).collect();
    let mut rows = rows;
    rows.sort_unstable();
    assert_eq!(rows, expected, "{table}");

    case.delete_force(&id);
    case.assert_all_gone();
}

/// The container's freezer state: v1 `freezer.state`, or `frozen 0|1` on v2.
fn freezer_state(id: &str) -> String {
    let rel = Case::cgroup_path(id);
    let v1 = Path::new("/sys/fs/cgroup/freezer").join(rel.trim_start_matches('/')).join("freezer.state");
    if v1.exists() {
        return fs::read_to_string(v1).expect("freezer.state").trim().to_owned();
    }
    let events = Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/')).join("cgroup.events");
    let text = fs::read_to_string(events).expect("cgroup.events");
    if text.lines().any(|l| l == "frozen 1") { "FROZEN".into() } else { "THAWED".into() }
}

/// A container counting in `/tmp/tick` (the work dir) every 20 ms.
fn ticking(case: &Case, id: &str) -> (i64, PathBuf) {
    let work = case.work.path().to_string_lossy().into_owned();
    let script =
        "i=0; while true; do i=$((i+1)); echo $i > /tmp/tick.new; mv /tmp/tick.new /tmp/tick; sleep 0.02; done";
    let bundle = case.busybox_bundle(id, &["/bin/sh", "-c", script], |config| work_dir_at_tmp(config, &work));
    assert!(case.create(&bundle, id, &[]).status.success());
    case.ok(&["start", id]);
    let tick = case.work.path().join("tick");
    support::wait_for_file(&tick);
    (case.state(id)["pid"].as_i64().expect("pid"), tick)
}

fn read_tick(tick: &Path) -> u64 {
    fs::read_to_string(tick).unwrap_or_default().trim().parse().unwrap_or(0)
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let Some(case) = support::case("pause_resume") else { return };
    let id = case.id("c");
    let (pid, tick) = ticking(&case, &id);
    assert_eq!(freezer_state(&id), "THAWED");

    case.ok(&["pause", &id]);
    assert_eq!(case.status(&id), "paused");
    assert_eq!(freezer_state(&id), "FROZEN");
    // A task in the v1 freezer shows as in uninterruptible sleep (the v2
    // freezer's, on kernels before 6.1, as sleeping): never as running.
    let state = proc_status(pid, "State");
    let v1 = Path::new("/sys/fs/cgroup/freezer").exists();
    assert!(if v1 { state.starts_with('D') } else { !state.starts_with('R') }, "init {pid}: {state}");
    let frozen_at = read_tick(&tick);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(read_tick(&tick), frozen_at, "the container kept counting while paused");

    case.ok(&["resume", &id]);
    assert_eq!(case.status(&id), "running");
    assert_eq!(freezer_state(&id), "THAWED");
    let deadline = Instant::now() + Duration::from_secs(5);
    while read_tick(&tick) == frozen_at {
        assert!(Instant::now() < deadline, "the container did not count again after resume");
        std::thread::sleep(Duration::from_millis(20));
    }
    case.delete_force(&id);
    case.assert_all_gone();
}

#[test]
fn kill_and_delete_force_reach_a_paused_container() {
    let Some(case) = support::case("paused_kill") else { return };
    let killed = case.id("k");
    ticking(&case, &killed);
    case.ok(&["pause", &killed]);
    case.ok(&["kill", &killed, "KILL"]);
    case.wait_status(&killed, "stopped");
    case.ok(&["delete", &killed]);

    let deleted = case.id("d");
    let (pid, _) = ticking(&case, &deleted);
    case.ok(&["pause", &deleted]);
    let started = Instant::now();
    case.ok(&["delete", "--force", &deleted]);
    assert!(started.elapsed() < Duration::from_secs(5), "delete --force took {:?}", started.elapsed());
    assert!(
        fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z ")),
        "init {pid} still runs after delete --force"
    );
    case.assert_all_gone();
}

fn cgroup_v1_file(controller: &str, id: &str, file: &str) -> Option<String> {
    let path =
        Path::new("/sys/fs/cgroup").join(controller).join(Case::cgroup_path(id).trim_start_matches('/')).join(file);
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// A cgroup value of the container, v1 or v2 (`v1` as controller and file).
fn cgroup_value(id: &str, v1: (&str, &str), v2: &str) -> String {
    if let Some(value) = cgroup_v1_file(v1.0, id, v1.1) {
        return value;
    }
    let path = Path::new("/sys/fs/cgroup").join(Case::cgroup_path(id).trim_start_matches('/')).join(v2);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())).trim().to_owned()
}

#[test]
fn update_changes_the_cgroup_files() {
    let Some(case) = support::case("update") else { return };
    let id = case.id("c");
    let bundle = case.busybox_bundle(&id, SLEEP, |_| {});
    assert!(case.create(&bundle, &id, &[]).status.success());
    case.ok(&["start", &id]);

    case.ok(&[
        "update",
        "--memory",
        "64m",
        "--cpu-quota",
        "50000",
        "--cpu-period",
        "100000",
        "--cpu-share",
        "512",
        "--pids-limit",
        "77",
        &id,
    ]);
    let v2 = !Path::new("/sys/fs/cgroup/memory").exists();
    assert_eq!(cgroup_value(&id, ("memory", "memory.limit_in_bytes"), "memory.max"), (64 << 20).to_string());
    assert_eq!(cgroup_value(&id, ("pids", "pids.max"), "pids.max"), "77");
    if v2 {
        assert_eq!(cgroup_value(&id, ("cpu", ""), "cpu.max"), "50000 100000");
    } else {
        assert_eq!(cgroup_value(&id, ("cpu", "cpu.cfs_quota_us"), ""), "50000");
        assert_eq!(cgroup_value(&id, ("cpu", "cpu.cfs_period_us"), ""), "100000");
        assert_eq!(cgroup_value(&id, ("cpu", "cpu.shares"), ""), "512");
    }

    // A LinuxResources file, and the same from stdin; what it leaves out stays.
    let file = case.work.path().join("resources.json");
    fs::write(&file, r#"{"memory": {"limit": 33554432}}"#).expect("write resources");
    case.ok(&["update", "--resources", file.to_str().unwrap(), &id]);
    assert_eq!(cgroup_value(&id, ("memory", "memory.limit_in_bytes"), "memory.max"), (32 << 20).to_string());
    assert_eq!(cgroup_value(&id, ("pids", "pids.max"), "pids.max"), "77");
    let mut child = case.cmd(&["update", "-r", "-", &id]).stdin(Stdio::piped()).spawn().expect("spawn update");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), br#"{"pids": {"limit": 55}}"#)
        .expect("write stdin");
    assert!(child.wait().expect("wait update").success());
    assert_eq!(cgroup_value(&id, ("pids", "pids.max"), "pids.max"), "55");

    assert_eq!(case.status(&id), "running");
    case.delete_force(&id);
    case.assert_all_gone();
}

#[test]
fn events_stats_report_real_numbers() {
    let Some(case) = support::case("events_stats") else { return };
    let id = case.id("c");
    let bundle = case.busybox_bundle(&id, &["/bin/sh", "-c", "sleep 1000 & exec sleep 1001"], |_| {});
    assert!(case.create(&bundle, &id, &[]).status.success());
    case.ok(&["start", &id]);
    let cgroup = Case::cgroup_path(&id);
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_in_cgroup(&cgroup).len() < 2 {
        assert!(Instant::now() < deadline, "the container's second process never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = case.ok(&["events", "--stats", &id]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let event: Value = serde_json::from_str(&out).expect("one JSON event");
    assert_eq!(event["type"], "stats");
    assert_eq!(event["id"], id.as_str());
    let data = &event["data"];
    assert!(data["memory"]["usage"]["usage"].as_u64().is_some_and(|u| u > 0), "{data}");
    assert!(data["memory"]["usage"]["limit"].as_u64().is_some_and(|l| l > 0), "{data}");
    assert_eq!(data["pids"]["current"].as_u64(), Some(2), "{data}");
    assert!(data["cpu"]["usage"]["total"].as_u64().is_some_and(|t| t > 0), "{data}");
    assert!(data["blkio"].is_object(), "{data}");
    case.delete_force(&id);
    case.assert_all_gone();
}

#[test]
fn events_stream_stats_and_oom() {
    let Some(case) = support::case("events_oom") else { return };
    let id = case.id("c");
    let bundle = case.busybox_bundle(&id, SLEEP, |config| {
        config["linux"]["resources"]["memory"] = json!({"limit": 16 << 20, "swap": 16 << 20});
    });
    assert!(case.create(&bundle, &id, &[]).status.success());
    case.ok(&["start", &id]);

    let mut events = case
        .cmd(&["events", "--interval", "200ms", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn events");
    let (tx, rx) = mpsc::channel();
    let stdout = events.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let next = |what: &str| -> Value {
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|e| panic!("no {what} event: {e}"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{what}: {line:?}: {e}"))
    };
    let first = next("stats");
    assert_eq!(first["type"], "stats", "{first}");
    assert!(first["data"]["memory"]["usage"]["usage"].as_u64().is_some_and(|u| u > 0), "{first}");
    assert_eq!(first["data"]["memory"]["usage"]["limit"].as_u64(), Some(16 << 20), "{first}");

    // A process that eats memory until the kernel kills it.
    let out = case.run(&["exec", &id, "tail", "/dev/zero"]);
    assert!(!out.status.success(), "tail /dev/zero ended well: {}", describe(&out));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let event = next("oom");
        if event["type"] == "oom" {
            assert_eq!(event["id"], id.as_str());
            assert!(event.get("data").is_none(), "{event}");
            break;
        }
        assert_eq!(event["type"], "stats", "{event}");
        assert!(Instant::now() < deadline, "no oom event");
    }

    case.ok(&["kill", &id, "KILL"]);
    case.wait_status(&id, "stopped");
    if runtime().is_amphi {
        // The stream ends with the container.
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(status) = events.try_wait().expect("wait events") {
                break status;
            }
            assert!(Instant::now() < deadline, "events kept running after the container stopped");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "events: {status}");
    } else {
        let _ = events.kill();
        let _ = events.wait();
    }
    case.ok(&["delete", &id]);
    case.assert_all_gone();
}

/// The enumerations of the runtime-spec schema (`schema/defs-linux.json`) that
/// `features-linux.json` refers to.
const NAMESPACE_TYPES: &[&str] = &["mount", "pid", "network", "uts", "ipc", "user", "cgroup", "time"];
const SECCOMP_ACTIONS: &[&str] = &[
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
];
const SECCOMP_OPERATORS: &[&str] =
    &["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"];
const SECCOMP_ARCHS: &[&str] = &[
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
];
const SECCOMP_FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

/// Checks `doc` against the runtime-spec's `features-schema.json` and
/// `features-linux.json`, by hand: every constraint those schemas state
/// (required fields, types, enumerations, the capability pattern).
fn check_features_schema(doc: &Value) -> Result<(), String> {
    let obj = doc.as_object().ok_or("the document is not an object")?;
    for key in ["ociVersionMin", "ociVersionMax"] {
        obj.get(key).and_then(Value::as_str).ok_or(format!("{key}: a string is required"))?;
    }
    let strings = |key: &str, v: &Value| -> Result<Vec<String>, String> {
        v.as_array()
            .ok_or(format!("{key}: not an array"))?
            .iter()
            .map(|s| s.as_str().map(str::to_owned).ok_or(format!("{key}: {s} is not a string")))
            .collect()
    };
    let in_enum = |key: &str, v: &Value, allowed: &[&str]| -> Result<(), String> {
        for s in strings(key, v)? {
            if !allowed.contains(&s.as_str()) {
                return Err(format!("{key}: {s:?} is not one of the schema's values"));
            }
        }
        Ok(())
    };
    let boolean = |key: &str, v: &Value, field: &str| -> Result<(), String> {
        match v.get(field) {
            None | Some(Value::Bool(_)) => Ok(()),
            Some(other) => Err(format!("{key}.{field}: {other} is not a boolean")),
        }
    };
    for key in ["hooks", "mountOptions", "potentiallyUnsafeConfigAnnotations"] {
        if let Some(v) = obj.get(key) {
            strings(key, v)?;
        }
    }
    match obj.get("annotations") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                if k.is_empty() || !v.is_string() {
                    return Err(format!("annotations: {k:?}: {v} is not a string"));
                }
            }
        }
        Some(other) => return Err(format!("annotations: {other} is not an object")),
    }
    let Some(linux) = obj.get("linux") else { return Ok(()) };
    let linux = linux.as_object().ok_or("linux: not an object")?;
    if let Some(v) = linux.get("namespaces") {
        in_enum("linux.namespaces", v, NAMESPACE_TYPES)?;
    }
    if let Some(v) = linux.get("capabilities") {
        for cap in strings("linux.capabilities", v)? {
            let ok = cap
                .strip_prefix("CAP_")
                .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_uppercase() || c == '_'));
            if !ok {
                return Err(format!("linux.capabilities: {cap:?} does not match ^CAP_[A-Z_]+$"));
            }
        }
    }
    if let Some(cgroup) = linux.get("cgroup") {
        for field in ["v1", "v2", "systemd", "systemdUser", "rdma"] {
            boolean("linux.cgroup", cgroup, field)?;
        }
    }
    if let Some(seccomp) = linux.get("seccomp") {
        boolean("linux.seccomp", seccomp, "enabled")?;
        for (field, allowed) in [
            ("actions", SECCOMP_ACTIONS),
            ("operators", SECCOMP_OPERATORS),
            ("archs", SECCOMP_ARCHS),
            ("knownFlags", SECCOMP_FLAGS),
            ("supportedFlags", SECCOMP_FLAGS),
        ] {
            if let Some(v) = seccomp.get(field) {
                in_enum(&format!("linux.seccomp.{field}"), v, allowed)?;
            }
        }
    }
    for key in ["apparmor", "selinux", "intelRdt"] {
        if let Some(v) = linux.get(key) {
            v.as_object().ok_or(format!("linux.{key}: not an object"))?;
            boolean(&format!("linux.{key}"), v, "enabled")?;
        }
    }
    if let Some(idmap) = linux.get("mountExtensions").and_then(|m| m.get("idmap")) {
        boolean("linux.mountExtensions.idmap", idmap, "enabled")?;
    }
    Ok(())
}

#[test]
fn features_document_is_valid() {
    let Some(case) = support::case("features") else { return };
    let doc: Value = serde_json::from_str(&case.ok(&["features"])).expect("features is JSON");
    check_features_schema(&doc).unwrap_or_else(|e| panic!("not a valid features document: {e}\n{doc:#}"));
    // The checker refuses what the schema refuses.
    for (bad, why) in [
        (json!({"ociVersionMax": "1.0.0"}), "ociVersionMin"),
        (json!({"ociVersionMin": "1", "ociVersionMax": "1", "linux": {"namespaces": ["nope"]}}), "namespaces"),
        (json!({"ociVersionMin": "1", "ociVersionMax": "1", "linux": {"capabilities": ["cap_x"]}}), "capabilities"),
        (json!({"ociVersionMin": "1", "ociVersionMax": "1", "linux": {"seccomp": {"enabled": null}}}), "enabled"),
    ] {
        let err = check_features_schema(&bad).expect_err(why);
        assert!(err.contains(why), "{err}");
    }
    let hooks = doc["hooks"].as_array().expect("hooks");
    for kind in ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"] {
        assert!(hooks.contains(&json!(kind)), "hooks lack {kind}: {doc}");
    }
    let linux = &doc["linux"];
    assert!(linux["namespaces"].as_array().is_some_and(|n| n.contains(&json!("user"))), "{doc}");
    assert!(linux["seccomp"]["enabled"] == true, "{doc}");
    if runtime().is_amphi {
        assert_eq!(doc["ociVersionMax"], "1.2.1");
        let unsafe_keys = &doc["potentiallyUnsafeConfigAnnotations"];
        let read = [
            "io.kubernetes.cri.container-type",
            "run.oci.handler",
            "module.wasm.image/variant",
            "org.amphi.wasm.preopens",
        ];
        for key in read {
            assert!(unsafe_keys.as_array().is_some_and(|k| k.contains(&json!(key))), "{doc}");
        }
        assert_eq!(linux["mountExtensions"]["idmap"]["enabled"], false);
        assert_eq!(
            linux["cgroup"],
            json!({"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false})
        );
        // Every capability this kernel knows.
        let last_cap: usize =
            fs::read_to_string("/proc/sys/kernel/cap_last_cap").expect("cap_last_cap").trim().parse().unwrap();
        assert_eq!(linux["capabilities"].as_array().map(Vec::len), Some(last_cap + 1), "{doc}");
        let mount_options = doc["mountOptions"].as_array().expect("mountOptions");
        for option in ["rbind", "rro", "nosymfollow", "rprivate"] {
            assert!(mount_options.contains(&json!(option)), "{option}: {doc}");
        }
    }
}

/// Runs `create` for `bundle` through `/bin/sh -c SCRIPT` so that the shell
/// opens descriptors (and sets variables) for it: `$0 "$@"` is the runtime
/// command line. The container's stdout and stderr go to the case's files.
fn create_through_shell(case: &Case, bundle: &amphi_test_bundles::Bundle, id: &str, extra: &[&str], script: &str) {
    let mut args: Vec<String> = vec!["--root".into(), case.root.path().to_string_lossy().into_owned()];
    args.extend(["create".into(), "--bundle".into(), bundle.dir().to_string_lossy().into_owned()]);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.push(id.to_owned());
    let stdout = fs::File::create(case.stdout_path(id)).expect("stdout file");
    let stderr = fs::File::create(case.stderr_path(id)).expect("stderr file");
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .arg(&runtime().bin)
        .args(&args)
        .env("A", case.work.path().join("a"))
        .env("B", case.work.path().join("b"))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .status()
        .expect("run create");
    let err = fs::read_to_string(case.stderr_path(id)).unwrap_or_default();
    assert!(status.success(), "create {id}: {status} {err:?}");
}

/// The lines the container wrote once it has exited.
fn output_when_stopped(case: &Case, id: &str) -> Vec<String> {
    case.ok(&["start", id]);
    case.wait_status(id, "stopped");
    case.container_stdout(id).lines().map(str::to_owned).collect()
}

/// Prints `$LISTEN_FDS $LISTEN_PID` and what fds 3 and 4 hold.
const SHOW_FDS: &str = "echo \"env:$LISTEN_FDS:$LISTEN_PID\"; cat <&3; cat <&4; echo end";

#[test]
fn preserve_fds_and_socket_activation_reach_the_process() {
    let Some(case) = support::case("preserve_fds") else { return };
    fs::write(case.work.path().join("a"), "from-fd-a\n").expect("write a");
    fs::write(case.work.path().join("b"), "from-fd-b\n").expect("write b");

    // --preserve-fds 2: fds 3 and 4, no activation variables.
    let id = case.id("p");
    let bundle = case.busybox_bundle(&id, &["/bin/sh", "-c", SHOW_FDS], |_| {});
    create_through_shell(&case, &bundle, &id, &["--preserve-fds", "2"], r#"exec "$0" "$@" 3<"$A" 4<"$B""#);
    let lines = output_when_stopped(&case, &id);
    assert_eq!(lines, ["env::", "from-fd-a", "from-fd-b", "end"]);
    case.ok(&["delete", &id]);

    // LISTEN_FDS=1 for this very process: fd 3 is passed with the variables,
    // and --preserve-fds 1 adds fd 4 after it.
    let id = case.id("l");
    let bundle = case.busybox_bundle(&id, &["/bin/sh", "-c", SHOW_FDS], |_| {});
    let script = r#"LISTEN_FDS=1 LISTEN_PID=$$ exec "$0" "$@" 3<"$A" 4<"$B""#;
    create_through_shell(&case, &bundle, &id, &["--preserve-fds", "1"], script);
    let lines = output_when_stopped(&case, &id);
    assert_eq!(lines, ["env:1:1", "from-fd-a", "from-fd-b", "end"]);
    case.ok(&["delete", &id]);

    // Variables meant for another process (LISTEN_PID is not the runtime's)
    // pass nothing on.
    let id = case.id("n");
    let bundle = case.busybox_bundle(&id, &["/bin/sh", "-c", SHOW_FDS], |_| {});
    create_through_shell(&case, &bundle, &id, &[], r#"LISTEN_FDS=1 LISTEN_PID=1 exec "$0" "$@" 3<"$A""#);
    let lines = output_when_stopped(&case, &id);
    assert_eq!(lines, ["env::", "end"]);
    case.ok(&["delete", &id]);
    case.assert_all_gone();
}

/// A bad command on a container: non-zero, one line naming `words`, and the
/// container as it was.
fn refused(case: &Case, args: &[&str], words: &[&str]) {
    let out = case.run(args);
    assert!(!out.status.success(), "{args:?} succeeded: {}", describe(&out));
    assert_one_line(&out.stderr, words);
}

#[test]
fn bad_input_for_update_pause_resume_ps_events() {
    let Some(case) = support::case("oci_bad_input") else { return };
    let running = case.id("r");
    let bundle = case.busybox_bundle(&running, SLEEP, |config| {
        config["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
    });
    assert!(case.create(&bundle, &running, &[]).status.success());
    case.ok(&["start", &running]);
    let pid = case.state(&running)["pid"].as_i64().expect("pid");
    let limit = || cgroup_value(&running, ("memory", "memory.limit_in_bytes"), "memory.max");
    let limit_before = limit();

    let bad_json = case.work.path().join("bad.json");
    fs::write(&bad_json, br#"{"memory": {"limit": "lots"}}"#).expect("write bad json");
    refused(&case, &["update", "--resources", bad_json.to_str().unwrap(), &running], &["bad.json", "memory.limit"]);
    fs::write(&bad_json, b"{not json").expect("write bad json");
    refused(&case, &["update", "-r", bad_json.to_str().unwrap(), &running], &["bad.json", "LinuxResources"]);
    refused(&case, &["update", "--memory", "lots", &running], &["--memory", "lots"]);
    assert_eq!(limit(), limit_before, "a refused update changed the cgroup");

    refused(&case, &["resume", &running], &[&running, "running", "resume"]);
    assert_eq!(case.status(&running), "running");

    let created = case.id("c");
    let bundle = case.busybox_bundle(&created, SLEEP, |_| {});
    assert!(case.create(&bundle, &created, &[]).status.success());
    if runtime().is_amphi {
        refused(&case, &["pause", &created], &[&created, "created", "pause"]);
        assert_eq!(case.status(&created), "created");
        assert_eq!(freezer_state(&created), "THAWED");
    }

    let missing = format!("missing-{}", std::process::id());
    for verb in
        [&["ps"][..], &["pause"], &["resume"], &["events", "--stats"], &["events"], &["update", "--pids-limit", "5"]]
    {
        let mut args: Vec<&str> = verb.to_vec();
        args.push(&missing);
        refused(&case, &args, &[&missing, "does not exist"]);
    }

    // Everything refused left both containers as they were.
    let state = case.state(&running);
    assert_eq!((state["status"].as_str(), state["pid"].as_i64()), (Some("running"), Some(pid)));
    assert_eq!(case.status(&created), "created");
    case.delete_force(&running);
    case.delete_force(&created);
    case.assert_all_gone();
}

#[test]
fn a_fresh_session_keyring_unless_no_new_keyring() {
    let Some(case) = support::case("keyring") else { return };
    let unmask_keys = |config: &mut Value| {
        let masked = config["linux"]["maskedPaths"].as_array_mut().expect("maskedPaths");
        masked.retain(|p| p != "/proc/keys");
    };
    for (suffix, extra) in [("new", &[][..]), ("old", &["--no-new-keyring"][..])] {
        let id = case.id(suffix);
        let bundle = case.busybox_bundle(&id, &["/bin/cat", "/proc/keys"], unmask_keys);
        let out = case.create(&bundle, &id, extra);
        assert!(out.status.success(), "create: {}", describe(&out));
        let keys = output_when_stopped(&case, &id).join("\n");
        // The keys the container sees: its own session keyring, named after it,
        // unless it kept the caller's.
        let own = format!("keyring   _ses.{id}:");
        assert_eq!(keys.contains(&own), extra.is_empty(), "{suffix}: {keys}");
        case.ok(&["delete", &id]);
    }
    case.assert_all_gone();
}
