//! What fails a service's `create`: a malformed service variable, an address
//! that cannot be bound (in use, or a port below 1024 without
//! CAP_NET_BIND_SERVICE), a component that is neither a command nor a
//! service. Each is one line naming the variable or file, a non-zero exit,
//! and nothing left behind.

use serde_json::Value;

use super::{case, create, service_bundle};
use crate::support::describe;

/// A one-line `amphi: ...` error that contains every word of `words`.
fn assert_one_line_error(out: &std::process::Output, words: &[&str]) {
    assert!(!out.status.success(), "expected a failure: {}", describe(out));
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(text.trim_end().lines().count(), 1, "one line: {text:?}");
    assert!(text.starts_with("amphi: "), "{text:?}");
    for word in words {
        assert!(text.contains(word), "{word:?} missing from {text:?}");
    }
    assert!(!text.contains("panicked"), "{text:?}");
}

#[test]
fn malformed_service_variables_fail_create_naming_the_variable() {
    let Some(case) = case("svc_bad_vars") else { return };
    for (n, (var, words)) in [
        ("WASMTIME_HTTP_PROXY_SOCKET_ADDR=8080", ["WASMTIME_HTTP_PROXY_SOCKET_ADDR", "8080"]),
        ("AMPHI_HTTP_TIMEOUT=soon", ["AMPHI_HTTP_TIMEOUT", "soon"]),
        ("WASMTIME_HTTP_BACKLOG=0", ["WASMTIME_HTTP_BACKLOG", "positive"]),
        ("AMPHI_HTTP_MAX_BODY=10x", ["AMPHI_HTTP_MAX_BODY", "10x"]),
    ]
    .into_iter()
    .enumerate()
    {
        let id = case.id(&format!("v{n}"));
        let bundle = service_bundle(&case, &id, "hello-service.wasm", &[var], |_| {});
        assert_one_line_error(&create(&case, &bundle, &id), &words);
        case.assert_gone(&id);
    }
}

#[test]
fn an_address_in_use_fails_create() {
    let Some(case) = case("svc_addr_in_use") else { return };
    // Without a network namespace of its own the container binds in the
    // host's, where this test holds the port.
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let addr = held.local_addr().unwrap().to_string();
    let id = case.id("c");
    let var = format!("WASMTIME_HTTP_PROXY_SOCKET_ADDR={addr}");
    let bundle = service_bundle(&case, &id, "hello-service.wasm", &[&var], |config| {
        let namespaces = config["linux"]["namespaces"].as_array_mut().expect("linux.namespaces");
        namespaces.retain(|ns| ns["type"] != "network");
    });
    let out = create(&case, &bundle, &id);
    assert_one_line_error(&out, &["WASMTIME_HTTP_PROXY_SOCKET_ADDR", &addr, "address already in use"]);
    case.assert_gone(&id);
}

#[test]
fn a_low_port_without_cap_net_bind_service_fails_create() {
    let Some(case) = case("svc_low_port") else { return };
    let id = case.id("c");
    let bundle =
        service_bundle(&case, &id, "hello-service.wasm", &["WASMTIME_HTTP_PROXY_SOCKET_ADDR=0.0.0.0:80"], |config| {
            let caps = config["process"]["capabilities"].as_object_mut().expect("process.capabilities");
            for set in caps.values_mut() {
                set.as_array_mut().expect("a capability set").retain(|cap| cap != "CAP_NET_BIND_SERVICE");
            }
        });
    let out = create(&case, &bundle, &id);
    assert_one_line_error(&out, &["WASMTIME_HTTP_PROXY_SOCKET_ADDR", "0.0.0.0:80", "CAP_NET_BIND_SERVICE"]);
    case.assert_gone(&id);
    // With the capability (the bundle's default) the same port binds.
    let id = case.id("ok");
    let bundle =
        service_bundle(&case, &id, "hello-service.wasm", &["WASMTIME_HTTP_PROXY_SOCKET_ADDR=0.0.0.0:80"], |_| {});
    let out = create(&case, &bundle, &id);
    assert!(out.status.success(), "{}", describe(&out));
    case.ok(&["delete", "--force", &id]);
    case.assert_all_gone();
}

/// A component that imports what amphi does not provide (and exports neither
/// `wasi:cli/run` nor the handler).
#[test]
fn a_component_of_another_world_fails_create() {
    let Some(case) = case("svc_other_world") else { return };
    let id = case.id("c");
    let bundle = case.bundle(&crate::support::bundles().wasm, &id, |config| {
        config["process"]["args"] = Value::from(vec!["/wasm/unsupported-world.wasm"]);
    });
    let out = create(&case, &bundle, &id);
    // Its import cannot be satisfied: the linker names it.
    assert_one_line_error(&out, &["/wasm/unsupported-world.wasm", "amphi:nope/thing"]);
    case.assert_gone(&id);
}
