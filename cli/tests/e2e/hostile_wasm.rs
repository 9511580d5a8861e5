//! A hostile wasm image against the init it runs in, and a hostile cache:
//! the guest must never reach the init's own `/proc` entries (`mem` would run
//! native code in the init, `environ` and `cmdline` hold the host's), the
//! init must not carry the caller's environment or command line, and a
//! swapped compile-cache entry must never run another module's code.
//! amphi-only: runc has no wasm executor.

use std::fs;

use serde_json::{Value, json};

use crate::support::{self, Case, describe, probe_report};

fn case(name: &str) -> Option<Case> {
    let case = support::case(name)?;
    support::runtime().is_amphi.then_some(case)
}

fn wasm_bundle(case: &Case, id: &str, args: &[&str]) -> amphi_test_bundles::Bundle {
    case.bundle(&support::bundles().wasm, id, |config| config["process"]["args"] = json!(args))
}

const SECRET: &str = "AMPHI_E2E_HOST_SECRET=s3cr3t-of-the-host";

#[test]
fn a_wasm_guest_never_reaches_its_own_proc_entries() {
    let Some(case) = case("hostile_wasm_proc") else { return };
    let cache = case.work.path().join("cache");
    let (key, value) = SECRET.split_once('=').unwrap();

    // From inside: every way to the process's own entries is closed.
    let id = case.id("probe");
    let bundle = wasm_bundle(&case, &id, &["/wasm/probe.wasm"]);
    let out = case
        .cmd(&["--wasm-cache", cache.to_str().unwrap(), "run", "--bundle", bundle.dir().to_str().unwrap(), &id])
        .env(key, value)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", describe(&out));
    let report = probe_report(&String::from_utf8_lossy(&out.stdout));
    let own = report["own_entries"].as_object().expect("the probe tried its own entries");
    assert_eq!(own.len(), 6, "{report}");
    for (path, outcome) in own {
        assert_ne!(outcome, &Value::from("opened"), "the guest opened {path}: {report}");
    }
    assert!(!String::from_utf8_lossy(&out.stdout).contains(value), "the guest saw the host's environment");

    // From outside and from an exec'd process: the init forgot the caller's
    // environment and command line.
    let id = case.id("init");
    let bundle = wasm_bundle(&case, &id, &["/wasm/loop-forever.wasm"]);
    let created = case.create_in(bundle.dir(), &id, &[], &[(key, value)]);
    assert!(created.status.success(), "{}", describe(&created));
    let pid = case.state(&id)["pid"].as_i64().expect("pid");
    let environ = fs::read(format!("/proc/{pid}/environ")).expect("environ from the host");
    assert!(!String::from_utf8_lossy(&environ).contains(value), "the init carries the host's environment");
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline from the host");
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(!cmdline.contains(bundle.dir().to_str().unwrap()), "the init shows the host's command line: {cmdline}");
    assert!(cmdline.starts_with("amphi:init"), "{cmdline:?}");
    case.ok(&["start", &id]);
    // A native tool exec'd into the container sees the container's /proc.
    let out = case.run(&["exec", &id, "/bin/cat", "/proc/1/cmdline"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("amphi:init"), "{}", describe(&out));
    let out = case.run(&["exec", &id, "/bin/sh", "-c", "cat /proc/self/status | grep -c ^Pid"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1", "{}", describe(&out));
    case.ok(&["delete", "--force", &id]);
    case.assert_all_gone();
}

#[test]
fn a_swapped_cache_entry_never_runs_another_modules_code() {
    let Some(case) = case("hostile_wasm_cache") else { return };
    let cache = case.work.path().join("cache");
    let run = |id: &str, program: &str| {
        let bundle = wasm_bundle(&case, id, &[program]);
        case.cmd(&["--wasm-cache", cache.to_str().unwrap(), "run", "--bundle", bundle.dir().to_str().unwrap(), id])
            .output()
            .expect("run")
    };
    let entries = || -> Vec<std::path::PathBuf> {
        let mut list: Vec<_> = fs::read_dir(&cache).expect("cache").map(|e| e.expect("entry").path()).collect();
        list.sort();
        list
    };
    let out = run(&case.id("hello1"), "/wasm/hello.wasm");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello from wasm", "{}", describe(&out));
    let hello_entry = entries().pop().expect("hello's entry");
    let out = run(&case.id("exit1"), "/wasm/proc-exit.wasm");
    assert_eq!(out.status.code(), Some(42), "{}", describe(&out));
    let exit_entry = entries().into_iter().find(|e| *e != hello_entry).expect("proc-exit's entry");
    // Whoever can write the cache files proc-exit's code under hello's key.
    fs::rename(&exit_entry, &hello_entry).expect("swap the entries");
    let out = run(&case.id("hello2"), "/wasm/hello.wasm");
    assert!(out.status.success(), "hello ran another module's code: {}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello from wasm", "{}", describe(&out));
    // The bad entry was replaced by hello's own: the next run hits it.
    let out = run(&case.id("hello3"), "/wasm/hello.wasm");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello from wasm", "{}", describe(&out));
    case.assert_all_gone();
}
