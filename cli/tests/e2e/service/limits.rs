//! A service's limits, seen by a client: the request timeout (504, also for a
//! guest that spins), the body limit (413), the concurrency limit (503 with
//! `retry-after`) and the memory budget its instances share (a failed
//! allocation, never an OOM kill).

use std::time::{Duration, Instant};

use serde_json::json;

use super::client::{PORT, connect, request};
use super::{case, serve, service_bundle, stop};
use crate::support::{Case, cgroup_hierarchies};

#[test]
fn a_slow_request_times_out_with_504() {
    let Some(case) = case("svc_timeout") else { return };
    let id = case.id("c");
    let bundle = service_bundle(&case, &id, "slow-service.wasm", &["AMPHI_HTTP_TIMEOUT=500ms"], |_| {});
    let pid = serve(&case, &bundle, &id);
    let mut conn = connect(pid, PORT).expect("connect");
    // A guest that waits on the host, and one that computes forever (ended by
    // epoch interruption).
    for headers in [[("x-sleep-ms", "5000")], [("x-spin", "1")]] {
        let response = conn.get(&headers);
        assert_eq!(response.status, 504, "{headers:?}: {response:?}");
    }
    let response = connect(pid, PORT).expect("connect").get(&[("x-sleep-ms", "1")]);
    assert_eq!((response.status, response.text().as_str()), (200, "slept 1 ms\n"), "{response:?}");
    assert_eq!(case.status(&id), "running");
    stop(&case, &id);
    case.assert_all_gone();
}

#[test]
fn a_body_over_the_limit_is_413() {
    let Some(case) = case("svc_max_body") else { return };
    let id = case.id("c");
    let bundle = service_bundle(&case, &id, "echo-service.wasm", &["AMPHI_HTTP_MAX_BODY=1k"], |_| {});
    let pid = serve(&case, &bundle, &id);
    let response = connect(pid, PORT).expect("connect").call(&request("POST", &[], &[b'x'; 2048]));
    assert_eq!(response.status, 413, "a declared length over the limit: {response:?}");
    // A chunked body of no declared length, larger than the limit in total.
    let mut chunked = b"POST / HTTP/1.1\r\nhost: s\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        chunked.extend_from_slice(b"200\r\n");
        chunked.extend_from_slice(&[b'y'; 0x200]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let response = connect(pid, PORT).expect("connect").call(&chunked);
    assert_eq!(response.status, 413, "a chunked body over the limit: {response:?}");
    let body = [b'z'; 512];
    let response = connect(pid, PORT).expect("connect").call(&request("POST", &[], &body));
    assert_eq!(response.status, 200, "{response:?}");
    assert!(response.body == body, "the body under the limit is echoed");
    stop(&case, &id);
    case.assert_all_gone();
}

#[test]
fn requests_over_the_concurrency_limit_get_503() {
    let Some(case) = case("svc_concurrency") else { return };
    let id = case.id("c");
    let bundle = service_bundle(&case, &id, "slow-service.wasm", &["AMPHI_HTTP_MAX_CONCURRENCY=1"], |_| {});
    let pid = serve(&case, &bundle, &id);
    let mut slow = connect(pid, PORT).expect("connect");
    slow.send(&request("GET", &[("x-sleep-ms", "2000")], b"")).unwrap();
    slow.wait_until_read(pid);
    // The slow request holds the only slot: a second is refused at once.
    let busy = connect(pid, PORT).expect("connect").get(&[("x-sleep-ms", "1")]);
    assert_eq!(busy.status, 503, "{busy:?}");
    assert_eq!(busy.header("retry-after"), Some("1"));
    let response = slow.response().expect("the slow response");
    assert_eq!((response.status, response.text().as_str()), (200, "slept 2000 ms\n"));
    // The slot is given back when the slow request's instance ends (after its
    // response): wait for it rather than assume it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = connect(pid, PORT).expect("connect").get(&[("x-sleep-ms", "1")]);
        if response.status == 200 {
            break;
        }
        assert_eq!(response.status, 503, "{response:?}");
        assert!(Instant::now() < deadline, "the slot was never given back");
        std::thread::sleep(Duration::from_millis(20));
    }
    stop(&case, &id);
    case.assert_all_gone();
}

#[test]
fn the_memory_limit_is_shared_and_never_oom_kills() {
    let Some(case) = case("svc_memory") else { return };
    let id = case.id("c");
    let bundle = service_bundle(&case, &id, "memory-service.wasm", &[], |config| {
        config["linux"]["resources"]["memory"] = json!({"limit": 96u64 << 20});
    });
    let pid = serve(&case, &bundle, &id);
    let response = connect(pid, PORT).expect("connect").get(&[("x-alloc-mib", "200")]);
    assert!(matches!(response.status, 500 | 503), "200 MiB under a 96 MiB limit: {response:?}");
    // Several at once, each within the limit alone, not together.
    let threads: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || connect(pid, PORT).expect("connect").get(&[("x-alloc-mib", "40")]).status))
        .collect();
    for thread in threads {
        let status = thread.join().unwrap();
        assert!(matches!(status, 200 | 500 | 503), "{status}");
    }
    let response = connect(pid, PORT).expect("connect").get(&[("x-alloc-mib", "1")]);
    assert_eq!((response.status, response.text().as_str()), (200, "allocated 1 MiB\n"), "{response:?}");
    assert_eq!(case.status(&id), "running");
    assert_eq!(oom_kills(&id), Some(0), "the cgroup counts no OOM kill");
    stop(&case, &id);
    case.assert_all_gone();
}

/// `oom_kill` in the container's cgroup: v2's `memory.events`, or v1's
/// `memory.oom_control`.
fn oom_kills(id: &str) -> Option<u64> {
    let rel = Case::cgroup_path(id);
    cgroup_hierarchies().into_iter().find_map(|hierarchy| {
        let dir = hierarchy.join(rel.trim_start_matches('/'));
        ["memory.events", "memory.oom_control"].into_iter().find_map(|file| {
            let text = std::fs::read_to_string(dir.join(file)).ok()?;
            text.lines().find_map(|line| line.strip_prefix("oom_kill ")?.trim().parse().ok())
        })
    })
}
