//! When the poststart and poststop hooks run, as runtime-spec 1.2 words it:
//! poststart only after the user's program was executed (a native workload's
//! `execve` succeeded, a wasm guest was entered), never when the container's
//! process ended before that; a failing poststart or poststop hook is a warning
//! and the remaining hooks of its kind still run.
//!
//! Each hook is a busybox shell line. The host's hooks write marker files in the
//! test's work dir; that dir is bind-mounted at the container's `/tmp`, where
//! the startContainer hooks (which run in the container) write theirs. A
//! startContainer hook that sleeps widens the window in which a poststart hook
//! run too early would be seen.
//!
//! amphi only: runc 1.1 runs poststart hooks at `create`, and runc 1.2 runs them
//! once its init has been told to go, before the init's `execve` (see each test).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{self, Case, describe, runtime};

/// The container's view of the work dir.
const IN_CONTAINER: &str = "/tmp";

/// How long the startContainer hooks sleep: long enough that a poststart hook
/// run when the barrier is lifted would always run before they end.
const START_CONTAINER_SLEEP: &str = "2";

/// A case, or None (no root, or runc: see the module doc).
fn case(name: &str) -> Option<Case> {
    let case = support::case(name)?;
    runtime().is_amphi.then_some(case)
}

/// A hook running the busybox shell line `script`. The hook's state is on its
/// stdin; `$WORK` is the work dir as the hook sees it.
fn sh_hook(script: &str, work: &str) -> Value {
    json!({
        "path": "/bin/busybox",
        "args": ["sh", "-c", script],
        "env": ["PATH=/bin:/usr/bin", format!("WORK={work}")],
    })
}

/// A hook on the host.
fn host_hook(case: &Case, script: &str) -> Value {
    sh_hook(script, &case.work.path().to_string_lossy())
}

/// A startContainer hook (it runs in the container, where the work dir is `/tmp`).
fn container_hook(script: &str) -> Value {
    sh_hook(script, IN_CONTAINER)
}

/// The startContainer hook that sleeps, then leaves `start-container-done`.
fn slow_start_container_hook() -> Value {
    container_hook(&format!("sleep {START_CONTAINER_SLEEP}; touch \"$WORK/start-container-done\""))
}

/// A poststart hook that writes to `poststart` what it saw: the link of the
/// state's pid's `/proc/<pid>/exe`, whether the startContainer hook had ended,
/// and the state itself (last line).
fn recording_poststart_hook(case: &Case) -> Value {
    host_hook(
        case,
        r#"state=$(cat)
pid=$(echo "$state" | sed -n 's/.*"pid":\([0-9]*\).*/\1/p')
{
  echo "exe=$(readlink /proc/$pid/exe)"
  if [ -e "$WORK/start-container-done" ]; then echo "start-container=done"; else echo "start-container=running"; fi
  echo "$state"
} > "$WORK/poststart.tmp"
mv "$WORK/poststart.tmp" "$WORK/poststart""#,
    )
}

/// What the recording poststart hook saw: `key=value` lines, and the state.
fn poststart_record(case: &Case) -> (Vec<String>, Value) {
    let text = support::wait_for_file(&case.work.path().join("poststart"));
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let state = lines.pop().unwrap_or_default();
    let state = serde_json::from_str(&state).unwrap_or_else(|e| panic!("poststart state {state:?}: {e}"));
    (lines, state)
}

/// Adds the work dir at `/tmp` and `hooks` to a config.
fn with_hooks(case: &Case, config: &mut Value, hooks: Value) {
    let work = case.work.path().to_string_lossy().into_owned();
    config["mounts"].as_array_mut().expect("mounts").push(json!({
        "destination": IN_CONTAINER, "type": "bind", "source": work, "options": ["rbind", "rw"]
    }));
    config["hooks"] = hooks;
}

fn marker(case: &Case, name: &str) -> bool {
    case.work.path().join(name).exists()
}

#[test]
fn poststart_runs_after_the_workload_was_executed() {
    let Some(case) = case("poststart_after_execve") else { return };
    let id = case.id("c");
    let hooks = json!({
        "startContainer": [slow_start_container_hook()],
        "poststart": [recording_poststart_hook(&case)],
    });
    let bundle = case.busybox_bundle(&id, &["/bin/sleep", "1000"], |config| with_hooks(&case, config, hooks));
    let out = case.create(&bundle, &id, &[]);
    assert!(out.status.success(), "create: {}", describe(&out));
    let out = case.run(&["start", &id]);
    assert!(out.status.success(), "start: {}", describe(&out));
    // `start` returned after its poststart hook: the record is there.
    assert!(marker(&case, "poststart"), "start returned before its poststart hook ran");
    let (seen, state) = poststart_record(&case);
    // The state's pid was the workload already (busybox), not the runtime's init.
    let exe = seen.iter().find_map(|l| l.strip_prefix("exe=")).unwrap_or_default();
    assert!(exe.ends_with("/bin/busybox"), "poststart ran before the workload's execve: /proc/<pid>/exe was {exe:?}");
    assert!(seen.contains(&"start-container=done".to_owned()), "poststart ran during startContainer: {seen:?}");
    assert_eq!(state["status"], "running", "{state}");
    assert_eq!(state["id"], id.as_str(), "{state}");
    case.ok(&["delete", "--force", &id]);
    case.assert_all_gone();
}

#[test]
fn poststart_runs_after_the_wasm_guest_was_entered() {
    let Some(case) = case("poststart_after_guest_entry") else { return };
    let id = case.id("c");
    let hooks = json!({
        "startContainer": [slow_start_container_hook()],
        "poststart": [recording_poststart_hook(&case)],
    });
    let bundle = case.bundle(&support::bundles().wasm, &id, |config| {
        config["process"]["args"] = json!(["/wasm/sleep.wasm"]);
        with_hooks(&case, config, hooks);
    });
    let out = case.create(&bundle, &id, &[]);
    assert!(out.status.success(), "create: {}", describe(&out));
    let out = case.run(&["start", &id]);
    assert!(out.status.success(), "start: {}", describe(&out));
    assert!(marker(&case, "poststart"), "start returned before its poststart hook ran");
    let (seen, state) = poststart_record(&case);
    // The guest is entered after the startContainer hooks and the last steps of
    // the init; nothing outside the process sees the call into it, so the
    // startContainer hook's end is what the hook can check.
    assert!(seen.contains(&"start-container=done".to_owned()), "poststart ran before the guest was entered: {seen:?}");
    assert_eq!(state["status"], "running", "{state}");
    // And the guest did run.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !case.container_stdout(&id).contains("sleeping") {
        assert!(Instant::now() < deadline, "the guest never printed: {:?}", case.container_stdout(&id));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(case.status(&id), "running");
    case.ok(&["delete", "--force", &id]);
    case.assert_all_gone();
}

#[test]
fn failing_poststart_and_poststop_hooks_let_the_rest_run() {
    let Some(case) = case("post_hooks_go_on") else { return };
    let id = case.id("c");
    let hooks = json!({
        "poststart": [
            host_hook(&case, "echo first-poststart-fails >&2; exit 5"),
            host_hook(&case, "touch \"$WORK/poststart-1\""),
        ],
        "poststop": [
            host_hook(&case, "echo first-poststop-fails >&2; exit 6"),
            host_hook(&case, "touch \"$WORK/poststop-1\""),
        ],
    });
    let bundle = case.busybox_bundle(&id, &["/bin/sleep", "1000"], |config| with_hooks(&case, config, hooks));
    let out = case.create(&bundle, &id, &[]);
    assert!(out.status.success(), "create: {}", describe(&out));
    let out = case.run(&["start", &id]);
    assert!(out.status.success(), "start: {}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("poststart hook 0") && stderr.contains("first-poststart-fails"), "{stderr:?}");
    assert!(marker(&case, "poststart-1"), "the poststart hook after a failing one did not run");
    assert_eq!(case.status(&id), "running");
    let out = case.run(&["delete", "--force", &id]);
    assert!(out.status.success(), "delete: {}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("poststop hook 0") && stderr.contains("first-poststop-fails"), "{stderr:?}");
    assert!(marker(&case, "poststop-1"), "the poststop hook after a failing one did not run");
    case.assert_all_gone();
}

/// `start` of a container whose startContainer hook `start_container` (a
/// shell line) ends the init: succeeds, runs no poststart hook and says so.
fn assert_no_poststart(case: &Case, id: &str, args: &[&str], start_container: Value, before_start: impl FnOnce()) {
    let hooks = json!({
        "startContainer": [start_container],
        "poststart": [host_hook(case, "touch \"$WORK/poststart\"")],
    });
    let bundle = case.busybox_bundle(id, args, |config| with_hooks(case, config, hooks));
    let out = case.create(&bundle, id, &[]);
    assert!(out.status.success(), "create: {}", describe(&out));
    before_start();
    // As `runc start`: the barrier was lifted, so `start` succeeds.
    let out = case.run(&["start", id]);
    assert!(out.status.success(), "start: {}", describe(&out));
    assert!(!marker(case, "poststart"), "a poststart hook ran though the workload never started");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("poststart hooks not run"), "{stderr:?}");
    case.wait_status(id, "stopped");
    case.ok(&["delete", id]);
    case.assert_all_gone();
}

#[test]
fn no_poststart_when_a_start_container_hook_fails() {
    let Some(case) = case("no_poststart_hook_failed") else { return };
    let id = case.id("c");
    let failing = container_hook(&format!("sleep {START_CONTAINER_SLEEP}; exit 4"));
    assert_no_poststart(&case, &id, &["/bin/sleep", "1000"], failing, || {});
    let stderr = fs::read_to_string(case.stderr_path(&id)).unwrap_or_default();
    assert!(stderr.contains("startContainer hook 0"), "{stderr:?}");
}

#[test]
fn no_poststart_when_the_workload_cannot_be_executed() {
    let Some(case) = case("no_poststart_exec_failed") else { return };
    let id = case.id("c");
    // A script is executed by path: gone by `start`, its execve fails (ENOENT).
    let script = case.work.path().join("workload");
    fs::write(&script, "#!/bin/sh\nexec sleep 1000\n").expect("write the workload");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod the workload");
    let args = [&format!("{IN_CONTAINER}/workload")[..]];
    let quick = container_hook("true");
    assert_no_poststart(&case, &id, &args, quick, || fs::remove_file(&script).expect("remove the workload"));
    let stderr = fs::read_to_string(case.stderr_path(&id)).unwrap_or_default();
    assert!(stderr.contains("/tmp/workload"), "{stderr:?}");
}

#[test]
fn no_poststart_when_the_init_is_killed_before_its_workload() {
    let Some(case) = case("no_poststart_killed") else { return };
    let id = case.id("c");
    let hooks = json!({
        "startContainer": [container_hook("touch \"$WORK/start-container-began\"; exec sleep 1000")],
        "poststart": [host_hook(&case, "touch \"$WORK/poststart\"")],
    });
    let bundle = case.busybox_bundle(&id, &["/bin/sleep", "1000"], |config| with_hooks(&case, config, hooks));
    let out = case.create(&bundle, &id, &[]);
    assert!(out.status.success(), "create: {}", describe(&out));
    // `start` waits for the workload; the init dies in its startContainer hook.
    let start = case.cmd(&["start", &id]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start");
    wait_for(&case.work.path().join("start-container-began"));
    case.ok(&["kill", &id, "KILL"]);
    // The wait ends with the init, without a timer.
    let out = start.wait_with_output().expect("wait for start");
    assert!(out.status.success(), "start: {}", describe(&out));
    assert!(!marker(&case, "poststart"), "a poststart hook ran though the init was killed before its workload");
    assert!(String::from_utf8_lossy(&out.stderr).contains("poststart hooks not run"), "{}", describe(&out));
    case.wait_status(&id, "stopped");
    case.ok(&["delete", &id]);
    case.assert_all_gone();
}

/// Waits until `path` exists (up to 10 s).
fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}
