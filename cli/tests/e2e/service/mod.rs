//! Wasm services through the `amphi` binary: a component exporting
//! `wasi:http/incoming-handler` is served over HTTP/1.1 in the container's
//! network namespace, listening from `create` on. The tests talk to it from a
//! host thread that entered that namespace ([`client`]), and look from outside
//! too (the state, the cgroup, the container's stderr, what is left after
//! `delete`). amphi-only: runc has no wasm executor (each test returns at once
//! under `AMPHI_E2E_RUNTIME`).
//!
//! [`limits`]: the request timeout, body, concurrency and memory limits;
//! [`shutdown`]: SIGTERM and SIGINT; [`bad_input`]: what fails `create`.

mod bad_input;
mod client;
mod limits;
mod shutdown;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Stdio};

use amphi_test_bundles::Bundle;
use serde_json::{Value, json};

use crate::support::{self, Case, describe};
use client::{PORT, connect, request};

/// A case for a service test, or None (no root, or a runtime without wasm).
fn case(name: &str) -> Option<Case> {
    let case = support::case(name)?;
    support::runtime().is_amphi.then_some(case)
}

/// The wasm compile cache the service tests share: each component is compiled
/// once for all of them.
fn cache() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("service-wasm-cache");
    std::fs::create_dir_all(&dir).expect("the shared wasm cache");
    dir
}

/// A wasm-bundle variant for `id` serving `/wasm/<fixture>`, with `env` added
/// to `process.env`, then `edit`.
fn service_bundle(case: &Case, id: &str, fixture: &str, env: &[&str], edit: impl FnOnce(&mut Value)) -> Bundle {
    case.bundle(&support::bundles().wasm, id, |config| {
        config["process"]["args"] = json!([format!("/wasm/{fixture}")]);
        let vars = config["process"]["env"].as_array_mut().expect("process.env");
        vars.extend(env.iter().map(|v| Value::from(*v)));
        edit(config);
    })
}

/// `create` of `bundle` as `id` with the shared cache; stdio to the case's files.
fn create(case: &Case, bundle: &Bundle, id: &str) -> std::process::Output {
    case.create_in(bundle.dir(), id, &[], &[("AMPHI_WASM_CACHE", cache().to_str().expect("utf-8"))])
}

/// Creates `bundle` as `id` (which must succeed), brings the loopback of its
/// network namespace up and returns the init's pid.
fn create_service(case: &Case, bundle: &Bundle, id: &str) -> i64 {
    let out = create(case, bundle, id);
    assert!(out.status.success(), "create {id}: {}", describe(&out));
    let pid = case.state(id)["pid"].as_i64().expect("state has a pid");
    client::loopback_up(pid);
    pid
}

/// [`create_service`], then `start`: the service is serving.
fn serve(case: &Case, bundle: &Bundle, id: &str) -> i64 {
    let pid = create_service(case, bundle, id);
    case.ok(&["start", id]);
    assert_eq!(case.status(id), "running");
    pid
}

/// SIGTERM (the service stops gracefully), `stopped`, `delete`.
fn stop(case: &Case, id: &str) {
    case.ok(&["kill", id, "TERM"]);
    case.wait_status(id, "stopped");
    case.ok(&["delete", id]);
}

/// `amphi run` of `bundle` as `id` in the background, its stdio to the case's
/// files; returns once the service runs, with the child and the init's pid.
fn run_in_background(case: &Case, bundle: &Bundle, id: &str) -> (Child, i64) {
    let cache = cache();
    let child = case
        .cmd(&["--wasm-cache", cache.to_str().unwrap(), "run", "--bundle", bundle.dir().to_str().unwrap(), id])
        .stdout(std::fs::File::create(case.stdout_path(id)).expect("stdout file"))
        .stderr(std::fs::File::create(case.stderr_path(id)).expect("stderr file"))
        .spawn()
        .expect("spawn amphi run");
    case.wait_status(id, "running");
    let pid = case.state(id)["pid"].as_i64().expect("state has a pid");
    client::loopback_up(pid);
    (child, pid)
}

// --- serving ------------------------------------------------------------------

#[test]
fn a_service_answers_as_soon_as_start_returns() {
    let Some(case) = case("svc_early") else { return };
    let id = case.id("c");
    let bundle = service_bundle(&case, &id, "hello-service.wasm", &[], |_| {});
    let pid = create_service(&case, &bundle, &id);
    assert_eq!(case.status(&id), "created");
    // The socket listens from `create`: the kernel completes the handshake
    // from the backlog, and the request waits there until `start`.
    let mut early = connect(pid, PORT).expect("connect before start");
    early.send(&request("GET", &[("x-echo", "early bird")], b"")).unwrap();
    assert!(!early.answers_within(std::time::Duration::from_millis(300)), "a created service answered");
    case.ok(&["start", &id]);
    let response = early.response().expect("the early request's response");
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.text(), "hello from a wasm service\n");
    assert_eq!(response.header("x-echo"), Some("early bird"));
    assert_eq!(response.header("content-type"), Some("text/plain"));
    // Keep-alive: more requests on the same connection.
    for n in 0..3 {
        let echo = format!("request {n}");
        let response = early.get(&[("x-echo", &echo)]);
        assert_eq!((response.status, response.header("x-echo")), (200, Some(echo.as_str())), "{response:?}");
        assert_eq!(response.text(), "hello from a wasm service\n");
    }
    assert_eq!(case.status(&id), "running");
    stop(&case, &id);
    case.assert_all_gone();
}

#[test]
fn each_request_gets_a_fresh_instance() {
    let Some(case) = case("svc_fresh") else { return };
    let id = case.id("c");
    let pid = serve(&case, &service_bundle(&case, &id, "counter-service.wasm", &[], |_| {}), &id);
    // One after the other on one connection…
    let mut conn = connect(pid, PORT).expect("connect");
    for _ in 0..10 {
        let response = conn.get(&[]);
        assert_eq!((response.status, response.text().as_str()), (200, "count=0\n"), "{response:?}");
    }
    // …and at once on many.
    let threads: Vec<_> = (0..10)
        .map(|_| {
            std::thread::spawn(move || {
                let mut conn = connect(pid, PORT).expect("connect");
                let response = conn.get(&[]);
                (response.status, response.text())
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap(), (200, "count=0\n".to_owned()));
    }
    stop(&case, &id);
    case.assert_all_gone();
}

#[test]
fn the_echo_service_streams_a_large_body_back() {
    let Some(case) = case("svc_echo") else { return };
    let id = case.id("c");
    let pid = serve(&case, &service_bundle(&case, &id, "echo-service.wasm", &[], |_| {}), &id);
    let body: Vec<u8> = (0..1 << 20).map(|n: u32| (n % 251) as u8).collect();
    let mut conn = connect(pid, PORT).expect("connect");
    // The body comes back while it is still being sent: write from a thread.
    let mut writer = conn.stream().try_clone().unwrap();
    let sent = body.clone();
    let writing = std::thread::spawn(move || writer.write_all(&request("POST", &[], &sent)));
    let response = conn.response().expect("the echo");
    writing.join().unwrap().expect("send the body");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-method"), Some("POST"));
    assert_eq!(response.body.len(), body.len());
    assert!(response.body == body, "the echoed body differs");
    // A chunked body of no declared length is echoed too.
    conn.send(b"PUT / HTTP/1.1\r\nhost: s\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n chunk\r\n0\r\n\r\n")
        .unwrap();
    let response = conn.response().expect("the chunked echo");
    assert_eq!((response.status, response.text().as_str()), (200, "hello chunk"));
    assert_eq!(response.header("x-method"), Some("PUT"));
    stop(&case, &id);
    case.assert_all_gone();
}

#[test]
fn a_trap_is_a_500_and_the_server_goes_on() {
    let Some(case) = case("svc_trap") else { return };
    let id = case.id("c");
    let pid = serve(&case, &service_bundle(&case, &id, "trap-service.wasm", &[], |_| {}), &id);
    for _ in 0..2 {
        let response = connect(pid, PORT).expect("connect").get(&[]);
        assert_eq!(response.status, 500, "{response:?}");
    }
    assert_eq!(case.status(&id), "running");
    let stderr = std::fs::read_to_string(case.stderr_path(&id)).unwrap();
    assert_eq!(stderr.matches("trap-service: about to trap").count(), 2, "{stderr}");
    // Each trap is reported, with its backtrace.
    assert_eq!(stderr.lines().filter(|l| l.starts_with("wasm trap")).count(), 2, "{stderr}");
    assert!(stderr.contains("incoming_handler_handle"), "{stderr}");
    stop(&case, &id);
    case.assert_all_gone();
}

#[test]
fn malformed_http_is_a_400_and_the_server_goes_on() {
    let Some(case) = case("svc_malformed") else { return };
    let id = case.id("c");
    let pid = serve(&case, &service_bundle(&case, &id, "hello-service.wasm", &[], |_| {}), &id);
    let mut garbage = connect(pid, PORT).expect("connect");
    let response = garbage.call(b"BLAH\r\n\r\n");
    assert_eq!(response.status, 400, "{response:?}");
    let response = connect(pid, PORT).expect("connect").get(&[]);
    assert_eq!((response.status, response.text().as_str()), (200, "hello from a wasm service\n"));
    stop(&case, &id);
    case.assert_all_gone();
}

#[test]
fn outgoing_http_works_from_the_containers_netns() {
    let Some(case) = case("svc_outgoing") else { return };
    let id = case.id("c");
    let pid = serve(&case, &service_bundle(&case, &id, "outgoing-service.wasm", &[], |_| {}), &id);
    // The upstream listens in the container's namespace: the guest's outgoing
    // request is made there.
    let upstream = client::listen(pid);
    let port = upstream.local_addr().unwrap().port();
    let serving = std::thread::spawn(move || {
        let (stream, _) = upstream.accept().expect("accept the guest's request");
        let mut reader = std::io::BufReader::new(stream);
        let mut request_line = String::new();
        std::io::BufRead::read_line(&mut reader, &mut request_line).unwrap();
        loop {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
        }
        reader
            .get_mut()
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nupstream")
            .unwrap();
        request_line
    });
    let target = format!("http://127.0.0.1:{port}/x");
    let response = connect(pid, PORT).expect("connect").get(&[("x-target", &target)]);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.text(), "upstream status 200: upstream");
    assert_eq!(serving.join().unwrap().trim(), "GET /x HTTP/1.1");
    stop(&case, &id);
    case.assert_all_gone();
}

#[test]
fn exec_ps_pause_and_events_work_on_a_service() {
    let Some(case) = case("svc_tools") else { return };
    let id = case.id("c");
    let pid = serve(&case, &service_bundle(&case, &id, "hello-service.wasm", &[], |_| {}), &id);
    let cache = cache();
    let cache = cache.to_str().unwrap();
    // A native tool and a wasm command exec'd into the serving container.
    let out = case.run(&["exec", &id, "/bin/cat", "/proc/1/status"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("amphi:init"), "{}", describe(&out));
    let out = case.run(&["--wasm-cache", cache, "exec", &id, "/wasm/hello.wasm"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello from wasm", "{}", describe(&out));
    let ps: Value = serde_json::from_str(&case.ok(&["ps", "--format", "json", &id])).expect("ps json");
    assert_eq!(ps, json!([pid]), "the init alone serves");
    // Paused, a request waits; resumed, it is answered.
    case.ok(&["pause", &id]);
    assert_eq!(case.status(&id), "paused");
    let mut conn = connect(pid, PORT).expect("connect to a paused service");
    conn.send(&request("GET", &[("x-echo", "paused")], b"")).unwrap();
    assert!(!conn.answers_within(std::time::Duration::from_millis(300)), "a paused service answered");
    case.ok(&["resume", &id]);
    let response = conn.response().expect("the response after resume");
    assert_eq!((response.status, response.header("x-echo")), (200, Some("paused")), "{response:?}");
    let out = case.ok(&["events", "--stats", &id]);
    let event: Value = serde_json::from_str(&out).expect("one JSON event");
    assert_eq!((event["type"].as_str(), event["id"].as_str()), (Some("stats"), Some(id.as_str())), "{out}");
    assert!(event["data"]["pids"]["current"].as_u64().is_some_and(|n| n >= 1), "{out}");
    stop(&case, &id);
    case.assert_all_gone();
}

#[test]
fn a_hybrid_component_runs_as_a_command() {
    let Some(case) = case("svc_hybrid") else { return };
    let id = case.id("c");
    let bundle = service_bundle(&case, &id, "hybrid-service.wasm", &[], |_| {});
    let cache = cache();
    let out = case
        .cmd(&["--wasm-cache", cache.to_str().unwrap(), "run", "--bundle", bundle.dir().to_str().unwrap(), &id])
        .stdout(Stdio::piped())
        .output()
        .expect("run amphi");
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hybrid ran as a command");
    case.assert_all_gone();
}
