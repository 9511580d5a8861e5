//! containerd, through `ctr`, with amphi as the runc binary of its runc shim
//! (`io.containerd.runc.v2`, `ctr run --runc-binary`) and through amphi's own
//! shim (`ctr run --runtime io.containerd.amphi.v1`): native, wasm and
//! component images, exit codes, kill, exec in every direction, ps,
//! pause/resume, metrics, a terminal, annotations, amphi's errors as
//! containerd shows them, and a wasm service in a network namespace. Each
//! scenario is a function of the way in, run as two tests:
//! `ctr::runc_shim::NAME` and `ctr::amphi_shim::NAME`.

use std::io::Read;
use std::os::fd::AsFd;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::containerd::{Containerd, Via, through_both_shims};
use crate::http;
use crate::support::{self, can_run, describe, images, probe_report, runs_wasm, stderr, stdout};

const NATIVE: &str = "amphi.test/native:latest";
const WASM_COMPAT: &str = "amphi.test/wasm-compat:latest";
const WASM_PLAIN: &str = "amphi.test/wasm-plain:latest";
const COMPONENT: &str = "amphi.test/component:latest";
const SERVICE: &str = "amphi.test/wasm-service:latest";

fn containerd(name: &str, via: Via) -> Option<Containerd> {
    (can_run("containerd") && via.applies()).then(|| Containerd::start_via(name, via))
}

fn native_image_runs_with_its_stdout_captured(via: Via) {
    let Some(ctrd) = containerd("native_run", via) else { return };
    ctrd.import(&[&images().native]);
    let id = ctrd.id("probe");
    let out = ctrd.run(&["--rm"], NATIVE, &id, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    let seen = probe_report(&stdout(&out));
    assert_eq!(seen["args"], serde_json::json!(["/bin/amphi-probe"]), "the image's cmd is the process");
    assert_eq!(seen["pid"], 1, "the probe is its pid namespace's init: {seen}");

    let id = ctrd.id("echo");
    let out = ctrd.run(&["--rm"], NATIVE, &id, &["/bin/echo", "hello", "from", "busybox"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "hello from busybox\n");
    ctrd.finish();
}

fn exit_codes_reach_ctr(via: Via) {
    let Some(ctrd) = containerd("exit_codes", via) else { return };
    ctrd.import(&[&images().native, &images().wasm_plain]);
    let id = ctrd.id("native42");
    let out = ctrd.run(&["--rm"], NATIVE, &id, &["/bin/sh", "-c", "echo bye; exit 42"]);
    assert_eq!(out.status.code(), Some(42), "{}", describe(&out));
    assert_eq!(stdout(&out), "bye\n");
    if runs_wasm() {
        let id = ctrd.id("wasm7");
        let out = ctrd.run(&["--rm"], WASM_PLAIN, &id, &["/exit-code.wasm", "7"]);
        assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
        let id = ctrd.id("procexit");
        let out = ctrd.run(&["--rm"], WASM_PLAIN, &id, &["/proc-exit.wasm"]);
        assert_eq!(out.status.code(), Some(42), "{}", describe(&out));
    }
    ctrd.finish();
}

fn wasm_compat_image_runs(via: Via) {
    if !runs_wasm() {
        return;
    }
    let Some(ctrd) = containerd("wasm_compat", via) else { return };
    ctrd.import(&[&images().wasm_compat]);
    let id = ctrd.id("compat");
    let out = ctrd.run(&["--rm"], WASM_COMPAT, &id, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "hello from wasm\n");
    ctrd.finish();
}

fn wasm_image_without_annotation_is_chosen_by_content(via: Via) {
    if !runs_wasm() {
        return;
    }
    let Some(ctrd) = containerd("wasm_plain", via) else { return };
    ctrd.import(&[&images().wasm_plain]);
    // ctr 1.6 copies no image label or annotation into config.json: the
    // runtime sees a plain process whose entrypoint is a wasm file.
    let id = ctrd.id("plain");
    ctrd.run_detached(WASM_PLAIN, &id, &["/loop-forever.wasm"]);
    let config = ctrd.bundle_config(&id);
    let annotations = config["annotations"].as_object().cloned().unwrap_or_default();
    assert!(
        !annotations.keys().any(|k| k == "module.wasm.image/variant" || k == "run.oci.handler"),
        "ctr passed a wasm annotation: {annotations:?}"
    );
    ctrd.ctr_ok(&["task", "kill", "--signal", "SIGKILL", &id]);
    ctrd.wait_task(&id, "STOPPED");
    ctrd.delete(&id);

    let id = ctrd.id("hello");
    let out = ctrd.run(&["--rm"], WASM_PLAIN, &id, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "hello from wasm\n");
    ctrd.finish();
}

fn component_image_runs(via: Via) {
    if !runs_wasm() {
        return;
    }
    let Some(ctrd) = containerd("component", via) else { return };
    ctrd.import(&[&images().component]);
    let id = ctrd.id("hello");
    let out = ctrd.run(&["--rm"], COMPONENT, &id, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "hello from wasm\n");
    let id = ctrd.id("exit7");
    let out = ctrd.run(&["--rm"], COMPONENT, &id, &["/exit-with-code-component.wasm"]);
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
    ctrd.finish();
}

/// `ctr task kill` (SIGTERM) of a task, then `ctr task delete`: ctr reports
/// the exit status 143.
fn kill_then_delete(ctrd: &Containerd, id: &str) {
    ctrd.ctr_ok(&["task", "kill", id]);
    ctrd.wait_task(id, "STOPPED");
    let out = ctrd.delete(id);
    assert!(stderr(&out).contains("exit code 143"), "ctr task delete: {}", describe(&out));
}

fn kill_of_a_long_running_native_task_then_delete(via: Via) {
    let Some(ctrd) = containerd("kill_native", via) else { return };
    ctrd.import(&[&images().native]);
    let id = ctrd.id("waiter");
    let pid = ctrd.run_detached(NATIVE, &id, &["/bin/amphi-probe", "--no-report", "--wait-signal"]);
    support::wait_in_sigwait(pid);
    kill_then_delete(&ctrd, &id);
    ctrd.finish();
}

fn kill_of_a_looping_wasm_task_then_delete(via: Via) {
    if !runs_wasm() {
        return;
    }
    let Some(ctrd) = containerd("kill_wasm", via) else { return };
    ctrd.import(&[&images().wasm_plain]);
    let id = ctrd.id("looper");
    let pid = ctrd.run_detached(WASM_PLAIN, &id, &["/loop-forever.wasm"]);
    // The guest spins: it is on a CPU, not in a syscall, once it has printed.
    support::wait_until("the guest spins", || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('R'))
    });
    kill_then_delete(&ctrd, &id);
    ctrd.finish();
}

fn exec_native_into_native(via: Via) {
    let Some(ctrd) = containerd("exec_native", via) else { return };
    ctrd.import(&[&images().native]);
    let id = ctrd.id("host");
    let pid = ctrd.run_detached(NATIVE, &id, &["/bin/amphi-probe", "--no-report", "--wait-signal"]);
    let out = ctrd.exec(&id, "e1", &["/bin/amphi-probe"]);
    assert!(out.status.success(), "{}", describe(&out));
    let seen = probe_report(&stdout(&out));
    let host_pidns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).expect("ns");
    assert_eq!(seen["namespaces"]["pid"], host_pidns.to_string_lossy().as_ref(), "exec joins the pid namespace");
    let out = ctrd.exec(&id, "e2", &["/bin/sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "an exec's status reaches ctr: {}", describe(&out));
    support::wait_in_sigwait(pid);
    kill_then_delete(&ctrd, &id);
    ctrd.finish();
}

fn exec_wasm_tool_into_native(via: Via) {
    if !runs_wasm() {
        return;
    }
    let Some(ctrd) = containerd("exec_wasm_native", via) else { return };
    ctrd.import(&[&images().native]);
    let id = ctrd.id("host");
    ctrd.run_detached(NATIVE, &id, &["/bin/sleep", "1000"]);
    let out = ctrd.exec(&id, "w1", &["/wasm/hello.wasm"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "hello from wasm\n");
    let out = ctrd.exec(&id, "w2", &["/wasm/exit-code.wasm", "5"]);
    assert_eq!(out.status.code(), Some(5), "{}", describe(&out));
    ctrd.ctr_ok(&["task", "kill", "--signal", "SIGKILL", &id]);
    ctrd.wait_task(&id, "STOPPED");
    ctrd.delete(&id);
    ctrd.finish();
}

fn exec_native_into_wasm(via: Via) {
    if !runs_wasm() {
        return;
    }
    let Some(ctrd) = containerd("exec_native_wasm", via) else { return };
    ctrd.import(&[&images().wasm_compat]);
    let id = ctrd.id("looper");
    ctrd.run_detached(WASM_COMPAT, &id, &["/loop-forever.wasm"]);
    let out = ctrd.exec(&id, "n1", &["/bin/echo", "native", "beside", "wasm"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "native beside wasm\n");
    // A wasm tool exec'd into the wasm container too.
    let out = ctrd.exec(&id, "w1", &["/hello.wasm"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "hello from wasm\n");
    kill_then_delete(&ctrd, &id);
    ctrd.finish();
}

fn ctr_task_ps_lists_the_task_processes(via: Via) {
    let Some(ctrd) = containerd("task_ps", via) else { return };
    ctrd.import(&[&images().native]);
    let id = ctrd.id("ps");
    let pid = ctrd.run_detached(NATIVE, &id, &["/bin/sh", "-c", "sleep 1000 & wait"]);
    // The shell and its sleep.
    support::wait_until("the shell forked its sleep", || {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).is_ok_and(|c| !c.trim().is_empty())
    });
    let out = ctrd.ctr(&["task", "ps", &id]);
    assert!(out.status.success(), "ctr task ps (amphi ps --format json): {}", describe(&out));
    let pids: Vec<i64> =
        stdout(&out).lines().skip(1).filter_map(|l| l.split_whitespace().next()?.parse().ok()).collect();
    assert_eq!(pids.len(), 2, "{}", stdout(&out));
    assert!(pids.contains(&pid), "{pids:?} lacks the init {pid}");
    ctrd.ctr_ok(&["task", "kill", "--signal", "SIGKILL", &id]);
    ctrd.wait_task(&id, "STOPPED");
    ctrd.delete(&id);
    ctrd.finish();
}

/// The freezer state of the container `id`'s cgroup (v1 or v2).
fn frozen(ctrd: &Containerd, id: &str) -> bool {
    let rel = format!("{}/{id}", ctrd.namespace);
    let v1 = std::path::Path::new("/sys/fs/cgroup/freezer").join(&rel).join("freezer.state");
    if let Ok(state) = std::fs::read_to_string(&v1) {
        return state.trim() == "FROZEN";
    }
    let v2 = std::path::Path::new("/sys/fs/cgroup/unified").join(&rel).join("cgroup.freeze");
    std::fs::read_to_string(&v2).is_ok_and(|s| s.trim() == "1")
}

fn ctr_task_pause_and_resume(via: Via) {
    let Some(ctrd) = containerd("pause", via) else { return };
    ctrd.import(&[&images().native]);
    let id = ctrd.id("paused");
    let pid = ctrd.run_detached(NATIVE, &id, &["/bin/sleep", "1000"]);
    let out = ctrd.ctr(&["task", "pause", &id]);
    assert!(out.status.success(), "ctr task pause (amphi pause): {}", describe(&out));
    ctrd.wait_task(&id, "PAUSED");
    assert!(frozen(&ctrd, &id), "the cgroup is not frozen");
    let state = support::proc_state(pid);
    assert!(state == 'D' || state == 'S', "a frozen process sleeps, {pid} is {state}");
    let out = ctrd.ctr(&["task", "resume", &id]);
    assert!(out.status.success(), "ctr task resume (amphi resume): {}", describe(&out));
    ctrd.wait_task(&id, "RUNNING");
    assert!(!frozen(&ctrd, &id), "the cgroup is still frozen");
    ctrd.ctr_ok(&["task", "kill", "--signal", "SIGKILL", &id]);
    ctrd.wait_task(&id, "STOPPED");
    ctrd.delete(&id);
    ctrd.finish();
}

fn ctr_task_metrics_reports_the_cgroup(via: Via) {
    let Some(ctrd) = containerd("metrics", via) else { return };
    ctrd.import(&[&images().native]);
    let id = ctrd.id("measured");
    ctrd.run_detached(NATIVE, &id, &["/bin/sleep", "1000"]);
    let metrics = || ctrd.ctr_ok(&["task", "metrics", &id]);
    let value = |out: &str, name: &str| -> Option<u64> {
        out.lines().find_map(|l| {
            let mut fields = l.split_whitespace();
            (fields.next() == Some(name)).then(|| fields.next()?.parse().ok()).flatten()
        })
    };
    // The runtime's own processes may still be leaving the cgroup just after
    // the start.
    support::wait_until("the cgroup counts the one process", || value(&metrics(), "pids.current") == Some(1));
    let out = metrics();
    assert!(value(&out, "memory.usage_in_bytes").is_some_and(|v| v > 0), "{out}");
    ctrd.ctr_ok(&["task", "kill", "--signal", "SIGKILL", &id]);
    ctrd.wait_task(&id, "STOPPED");
    ctrd.delete(&id);
    ctrd.finish();
}

fn ctr_run_with_a_terminal(via: Via) {
    let Some(ctrd) = containerd("terminal", via) else { return };
    ctrd.import(&[&images().native]);
    let id = ctrd.id("tty");
    // ctr needs a terminal of its own for -t: it gets a pty's slave.
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave = || Stdio::from(pty.slave.as_fd().try_clone_to_owned().expect("dup"));
    let mut child = ctrd
        .run_command(&["--rm", "-t"], NATIVE, &id, &["/bin/sh", "-c", "tty; stty size; exit 4"])
        .stdin(slave())
        .stdout(slave())
        .stderr(slave())
        .spawn()
        .expect("spawn ctr");
    drop(pty.slave);
    let mut master = std::fs::File::from(pty.master);
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let mut buf = [0u8; 4096];
        // EIO once every slave is closed: ctr and the container are gone.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            text.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&text).into_owned()
    });
    let status = support::wait_or_kill(&mut child, Duration::from_secs(20)).expect("ctr run -t did not finish");
    let text = reader.join().expect("reader");
    assert_eq!(status.code(), Some(4), "ctr run -t: {status}, terminal: {text:?}");
    assert!(text.contains("/dev/pts/"), "the process's stdin is not a pty: {text:?}");
    ctrd.finish();
}

fn handler_annotation_selects_wasm(via: Via) {
    if !runs_wasm() {
        return;
    }
    let Some(ctrd) = containerd("annotation", via) else { return };
    ctrd.import(&[&images().native, &images().wasm_plain]);
    // The annotation reaches config.json...
    let id = ctrd.id("annotated");
    ctrd.run_detached_with(&["--annotation", "run.oci.handler=wasm"], WASM_PLAIN, &id, &["/loop-forever.wasm"]);
    assert_eq!(ctrd.bundle_config(&id)["annotations"]["run.oci.handler"], "wasm");
    kill_then_delete(&ctrd, &id);
    // ...runs WebAssembly text, which nothing but the annotation marks as wasm...
    let id = ctrd.id("wat");
    let out = ctrd.run(&["--rm", "--annotation", "run.oci.handler=wasm"], WASM_PLAIN, &id, &["/hello.wat"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "hello from wasm\n");
    // ...and makes amphi refuse a native program as a wasm workload.
    let id = ctrd.id("elf");
    let out = ctrd.run(&["--rm", "--annotation", "run.oci.handler=wasm"], NATIVE, &id, &["/bin/busybox", "true"]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        stderr(&out).contains("run.oci.handler=wasm asks for a wasm workload, but the file is a native (ELF) program"),
        "{}",
        describe(&out)
    );
    ctrd.ctr(&["containers", "rm", &id]);
    ctrd.finish();
}

/// containerd's error for a failed `create`: the runc shim reads the
/// runtime's `--log-format json` log and shows its last error line; amphi's
/// shim answers with the runtime's error itself.
fn create_error(ctrd: &Containerd, image: &str, id: &str, args: &[&str]) -> String {
    let out = ctrd.run(&["--rm"], image, id, args);
    assert!(!out.status.success(), "{}", describe(&out));
    // A failed `ctr run --rm` leaves the container record (its snapshot too).
    ctrd.ctr(&["containers", "rm", id]);
    stderr(&out)
}

fn amphi_errors_reach_the_user_through_containerd(via: Via) {
    let Some(ctrd) = containerd("errors", via) else { return };
    ctrd.import(&[&images().native, &images().wasm_plain]);
    let id = ctrd.id("missing");
    let message = create_error(&ctrd, NATIVE, &id, &["/nonexistent"]);
    if via == Via::RuncShim {
        assert!(message.contains("OCI runtime create failed: "), "{message}");
    }
    if support::runtime().is_amphi {
        assert!(message.contains(r#"exec: "/nonexistent": No such file or directory"#), "{message}");
        assert_eq!(message.trim_end().lines().count(), 1, "one line: {message}");
        let id = ctrd.id("nostart");
        let message = create_error(&ctrd, WASM_PLAIN, &id, &["/no-start.wasm"]);
        assert!(
            message.contains("/no-start.wasm: cannot be instantiated: it exports no `_start` function"),
            "{message}"
        );
        let id = ctrd.id("import");
        let message = create_error(&ctrd, WASM_PLAIN, &id, &["/missing-import.wasm"]);
        assert!(message.contains("/missing-import.wasm"), "{message}");
        assert_eq!(message.trim_end().lines().count(), 1, "one line: {message}");
    }
    ctrd.finish();
}

/// A network namespace the test makes (`ip netns add`), its loopback up;
/// deleted when dropped.
struct NetNs {
    name: String,
}

impl NetNs {
    fn new(name: &str) -> NetNs {
        let netns = NetNs { name: format!("amphi-{name}-{}", std::process::id()) };
        for args in [&["netns", "add", &netns.name][..], &["-n", &netns.name, "link", "set", "lo", "up"]] {
            let out = std::process::Command::new("ip").args(args).output().expect("run ip");
            assert!(out.status.success(), "ip {args:?}: {}", describe(&out));
        }
        netns
    }

    fn path(&self) -> std::path::PathBuf {
        std::path::Path::new("/var/run/netns").join(&self.name)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["netns", "delete", &self.name]).output();
    }
}

/// `ctr run` of the service image in a network namespace the test made: it is
/// listening as soon as the task runs, answers a client in that namespace, and
/// `ctr task kill` (SIGTERM) ends it with status 0.
fn service_image_serves_in_a_network_namespace_and_stops_on_sigterm(via: Via) {
    if !runs_wasm() {
        return;
    }
    let Some(ctrd) = containerd("service", via) else { return };
    ctrd.import(&[&images().service]);
    let netns = NetNs::new(if via == Via::RuncShim { "svc" } else { "svcs" });
    let id = ctrd.id("web");
    let with_ns = format!("network:{}", netns.path().display());
    // In the foreground, so that ctr's status is the task's.
    let mut ctr_run = ctrd
        .run_command(&["--rm", "--with-ns", &with_ns], SERVICE, &id, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ctr run");
    support::wait_until("the service's task runs", || {
        if let Some(status) = ctr_run.try_wait().expect("wait for ctr run") {
            let mut error = String::new();
            let _ = ctr_run.stderr.take().map(|mut e| e.read_to_string(&mut error));
            panic!("ctr run ended ({status}) before its task ran: {error}");
        }
        ctrd.task(&id).is_some_and(|(_, s)| s == "RUNNING")
    });
    let addr = "127.0.0.1:8080".parse().expect("address");
    let response = http::get_ok(Some(&netns.path()), addr, "/", &[("x-echo", "through containerd")]);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.body, "hello from a wasm service\n");
    assert_eq!(response.header("x-echo"), Some("through containerd"), "{response:?}");

    ctrd.ctr_ok(&["task", "kill", &id]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while ctr_run.try_wait().expect("wait for ctr run").is_none() {
        if Instant::now() > deadline {
            let _ = ctr_run.kill();
            let _ = ctr_run.wait();
            panic!("the service did not end on SIGTERM: its task is {:?}", ctrd.task(&id));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = ctr_run.wait_with_output().expect("wait for ctr run");
    assert_eq!(out.status.code(), Some(0), "SIGTERM ends a service with 0: {}", describe(&out));
    let path = netns.path();
    drop(netns);
    assert!(!path.exists(), "network namespace {} left behind", path.display());
    ctrd.finish();
}

through_both_shims!(
    native_image_runs_with_its_stdout_captured,
    exit_codes_reach_ctr,
    wasm_compat_image_runs,
    wasm_image_without_annotation_is_chosen_by_content,
    component_image_runs,
    kill_of_a_long_running_native_task_then_delete,
    kill_of_a_looping_wasm_task_then_delete,
    exec_native_into_native,
    exec_wasm_tool_into_native,
    exec_native_into_wasm,
    ctr_task_ps_lists_the_task_processes,
    ctr_task_pause_and_resume,
    ctr_task_metrics_reports_the_cgroup,
    ctr_run_with_a_terminal,
    handler_annotation_selects_wasm,
    amphi_errors_reach_the_user_through_containerd,
    service_image_serves_in_a_network_namespace_and_stops_on_sigterm,
);
