//! Stopping a service: the first SIGTERM or SIGINT closes the listening
//! socket and lets the requests in flight finish (up to `AMPHI_HTTP_GRACE`),
//! then the service exits 0; a second one ends it at once with 143 or 130.
//! Each container runs under `amphi run`, whose exit status is the
//! container's.

use std::process::Child;
use std::time::{Duration, Instant};

use super::client::{self, Conn, PORT, connect, request};
use super::{case, run_in_background, service_bundle};
use crate::support::describe;

/// A slow request sent and read by the server: it is in flight.
fn in_flight(pid: i64, sleep_ms: &str) -> Conn {
    let mut conn = connect(pid, PORT).expect("connect");
    conn.send(&request("GET", &[("x-sleep-ms", sleep_ms)], b"")).unwrap();
    conn.wait_until_read(pid);
    conn
}

/// Waits (up to 10 s) until nothing listens in the container any more: the
/// server has taken the first signal.
fn wait_refused(pid: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client::refused(pid, PORT) {
        assert!(Instant::now() < deadline, "the service still accepts connections");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for `amphi run` to end and returns its exit status.
fn exit_status(child: Child, bound: Duration) -> i32 {
    let mut child = child;
    let deadline = Instant::now() + bound;
    loop {
        if let Some(status) = child.try_wait().expect("wait for amphi run") {
            return status.code().expect("an exit status");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("reap amphi run");
            panic!("amphi run still running after {bound:?}: {}", describe(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits_0() {
    let Some(case) = case("svc_sigterm") else { return };
    for signal in ["TERM", "INT"] {
        let id = case.id(signal);
        let bundle = service_bundle(&case, &id, "slow-service.wasm", &[], |_| {});
        let (child, pid) = run_in_background(&case, &bundle, &id);
        let mut slow = in_flight(pid, "1500");
        case.ok(&["kill", &id, signal]);
        wait_refused(pid);
        let response = slow.response().expect("the request in flight is answered");
        assert_eq!((response.status, response.text().as_str()), (200, "slept 1500 ms\n"), "{signal}");
        assert_eq!(exit_status(child, Duration::from_secs(20)), 0, "{signal}");
    }
    case.assert_all_gone();
}

#[test]
fn the_grace_period_bounds_the_wait_for_requests_in_flight() {
    let Some(case) = case("svc_grace") else { return };
    let id = case.id("c");
    let bundle = service_bundle(&case, &id, "slow-service.wasm", &["AMPHI_HTTP_GRACE=300ms"], |_| {});
    let (child, pid) = run_in_background(&case, &bundle, &id);
    let mut slow = in_flight(pid, "3000");
    case.ok(&["kill", &id, "TERM"]);
    assert_eq!(exit_status(child, Duration::from_secs(20)), 0);
    // The service ended before the request did: its connection was cut
    // without an answer.
    assert!(slow.response().is_err(), "the 3 s request was answered: the grace period was not kept");
    case.assert_all_gone();
}

#[test]
fn a_second_sigterm_exits_at_once_with_143() {
    let Some(case) = case("svc_second_signal") else { return };
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let id = case.id(signal);
        let bundle = service_bundle(&case, &id, "slow-service.wasm", &[], |_| {});
        let (child, pid) = run_in_background(&case, &bundle, &id);
        let mut slow = in_flight(pid, "5000");
        case.ok(&["kill", &id, signal]);
        wait_refused(pid);
        case.ok(&["kill", &id, signal]);
        // A bound on the wait, shorter than the request in flight: the
        // service must not have waited for it.
        assert_eq!(exit_status(child, Duration::from_secs(4)), code, "{signal}");
        assert!(slow.response().is_err(), "{signal}: the request in flight was answered");
    }
    case.assert_all_gone();
}
