//! The wasm executor in-process, each case in a child copy of this test binary.
//!
//! `exec` installs signal handlers and its status ends the process, so a case
//! cannot run inside the test harness. Each test re-executes this binary with
//! `--exact child_entry --ignored` and the case as JSON in `AMPHI_WASM_CASE`; the
//! child plays the container's init: it redirects its stdio to files, calls
//! `prepare` on a temporary rootfs holding the fixture, writes a report, chroots
//! into the rootfs (standing in for pivot_root), calls `exec` and exits with the
//! status it returns. The parent checks the status, the guest's output and the
//! report. The children need root (chroot); without it the tests skip with a
//! message, except under `CI=true`, where they fail.

#[path = "wasm_executor/harness.rs"]
mod harness;

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use amphi_executors::cache::Cache;
use harness::{CASE_VAR, Case, PREPARE_FAILED, Report, Sandbox, play_init, sandbox, threads, wait_for, wait_timeout};

/// The child's side: play the container's init for one case, never return.
#[test]
#[ignore = "runs only as a child of the other tests"]
fn child_entry() {
    let Ok(json) = std::env::var(CASE_VAR) else { return };
    let case: Case = serde_json::from_str(&json).expect("case json");
    let status = play_init(&case);
    std::process::exit(status);
}

#[test]
fn hello_module_prints_and_exits_zero() {
    let Some(sandbox) = sandbox("hello.wasm") else { return };
    let out = sandbox.run();
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "hello from wasm\n");
    assert_eq!(out.report.threads_before, out.report.threads_after, "prepare (a compilation) started a thread");
}

#[test]
fn wat_text_is_compiled_from_source() {
    let Some(sandbox) = sandbox("hello.wat") else { return };
    let out = sandbox.run();
    assert_eq!(out.code(), Some(0), "stderr: {} {:?}", out.stderr, out.report.prepare_error);
    assert_eq!(out.stdout, "hello from wasm\n");
}

#[test]
fn stdin_and_stdout_are_the_process_fds() {
    let Some(mut sandbox) = sandbox("cat.wasm") else { return };
    let input = sandbox.temp.path().join("input");
    let text: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    fs::write(&input, &text).expect("write input");
    sandbox.case.stdin = Some(input);
    let out = sandbox.run();
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, text);
}

#[test]
fn exit_codes_pass_through() {
    for (code, expected) in [("0", 0), ("3", 3), ("125", 125), ("126", 126), ("255", 255)] {
        let Some(mut sandbox) = sandbox("exit-code.wasm") else { return };
        sandbox.case.args = vec![code.to_owned()];
        let out = sandbox.run();
        assert_eq!(out.code(), Some(expected), "exit {code}; stderr: {}", out.stderr);
        assert_eq!(out.stdout, format!("exiting with {code}\n"));
    }
}

#[test]
fn proc_exit_without_libc() {
    let Some(sandbox) = sandbox("proc-exit.wasm") else { return };
    assert_eq!(sandbox.run().code(), Some(42));
}

#[test]
fn trap_reports_message_and_backtrace_with_134() {
    let Some(sandbox) = sandbox("trap.wasm") else { return };
    let out = sandbox.run();
    assert_eq!(out.code(), Some(amphi_executors::wasm::TRAP_STATUS));
    assert_eq!(out.stdout, "about to trap\n");
    assert!(out.stderr.contains("wasm trap: wasm `unreachable` instruction executed"), "{}", out.stderr);
    assert!(out.stderr.contains("wasm backtrace:"), "{}", out.stderr);
    assert!(out.stderr.contains("crash_here") && out.stderr.contains("call_crash"), "{}", out.stderr);
}

/// The error `prepare` gives for `fixture`; `None` when the tests cannot run here.
#[test]
fn out_of_bounds_access_traps_after_the_barrier_handlers() {
    let Some(mut sandbox) = sandbox("out-of-bounds.wasm") else { return };
    sandbox.case.barrier_handlers = true;
    let out = sandbox.run();
    assert_eq!(out.code(), Some(amphi_executors::wasm::TRAP_STATUS), "{}: {}", out.status, out.stderr);
    assert!(out.stderr.contains("out of bounds memory access"), "{}", out.stderr);
    assert!(out.stderr.contains("read_far"), "{}", out.stderr);
}

fn prepare_error(fixture: &str) -> Option<String> {
    let sandbox = sandbox(fixture)?;
    let out = sandbox.run();
    assert_eq!(out.code(), Some(PREPARE_FAILED), "{fixture} must fail at prepare; stderr: {}", out.stderr);
    assert_eq!(out.stdout, "", "nothing runs when prepare fails");
    Some(out.report.prepare_error.expect("prepare error"))
}

#[test]
fn missing_import_fails_at_prepare() {
    let Some(err) = prepare_error("missing-import.wasm") else { return };
    assert!(err.starts_with("/app.wasm: cannot be instantiated:"), "{err}");
    assert!(err.contains("no_such_function"), "{err}");
}

#[test]
fn module_without_start_fails_at_prepare() {
    let Some(err) = prepare_error("no-start.wasm") else { return };
    assert!(err.contains("_start"), "{err}");
}

#[test]
fn component_of_unsupported_world_fails_at_prepare() {
    let Some(err) = prepare_error("unsupported-world.wasm") else { return };
    assert!(err.contains("/app.wasm: cannot be instantiated"), "{err}");
    assert!(err.contains("amphi:nope/thing"), "{err}");
}

#[test]
fn not_wasm_and_truncated_files_fail_at_prepare() {
    let Some(mut sandbox) = sandbox("hello.wasm") else { return };
    let app = sandbox.case.rootfs.join("app.wasm");
    fs::write(&app, b"\x7fELF\x02\x01\x01\0 not really").expect("write elf");
    let out = sandbox.run();
    assert_eq!(out.code(), Some(PREPARE_FAILED));
    assert_eq!(
        out.report.prepare_error.as_deref(),
        Some("/app.wasm: not a wasm module, component or text (.wat) file")
    );

    let hello = amphi_wasm_fixtures::bytes("hello.wasm");
    fs::write(&app, &hello[..hello.len() - 7]).expect("write truncated");
    let out = sandbox.run();
    assert_eq!(out.code(), Some(PREPARE_FAILED));
    let err = out.report.prepare_error.expect("error");
    assert!(err.starts_with("/app.wasm: invalid wasm:"), "{err}");

    sandbox.case.entrypoint = "/missing.wasm".to_owned();
    let out = sandbox.run();
    assert_eq!(out.code(), Some(PREPARE_FAILED));
    let err = out.report.prepare_error.expect("error");
    assert!(err.starts_with("wasm entrypoint /missing.wasm: No such file"), "{err}");
}

#[test]
fn entrypoint_symlink_out_of_the_rootfs_stays_inside() {
    let Some(mut sandbox) = sandbox("hello.wasm") else { return };
    // A module outside the rootfs, and an absolute symlink to its host path: the
    // link is read inside the rootfs, where that path does not exist.
    let outside = sandbox.temp.path().join("outside.wasm");
    fs::copy(amphi_wasm_fixtures::path("hello.wasm"), &outside).expect("copy");
    std::os::unix::fs::symlink(&outside, sandbox.case.rootfs.join("link.wasm")).expect("symlink");
    sandbox.case.entrypoint = "/link.wasm".to_owned();
    let out = sandbox.run();
    assert_eq!(out.code(), Some(PREPARE_FAILED), "a symlink out of the rootfs must not be followed");
    assert!(out.report.prepare_error.expect("error").contains("/link.wasm"));
}

#[test]
fn memory_limit_is_the_guest_ceiling() {
    let Some(mut sandbox) = sandbox("memory-grow.wasm") else { return };
    sandbox.case.memory_limit = Some(96 << 20);
    let out = sandbox.run();
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    let grown: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("memory-grow json");
    let final_bytes = grown["final_bytes"].as_u64().expect("final_bytes");
    let ceiling = (96u64 << 20) - amphi_executors::wasm::engine::HOST_RESERVE;
    assert!(final_bytes <= ceiling, "grew to {final_bytes}, past the ceiling {ceiling}");
    assert!(final_bytes > ceiling - (2 << 20), "stopped at {final_bytes}, well below the ceiling {ceiling}");
}

#[test]
fn without_a_memory_limit_the_guest_grows_to_4_gib() {
    let Some(sandbox) = sandbox("memory-grow.wasm") else { return };
    let out = sandbox.run();
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    let grown: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("memory-grow json");
    // 1 MiB steps from the initial size: the last step that fits ends within
    // 16 pages of the 4 GiB (65536-page) maximum.
    let final_pages = grown["final_pages"].as_u64().expect("final_pages");
    assert!(final_pages > 65536 - 16 && final_pages <= 65536, "grew to {final_pages} pages");
}

#[test]
fn rlimit_as_in_the_spec_still_runs_modules() {
    let limit: u64 = 2 << 30;
    let Some(mut sandbox) = sandbox("memory-grow.wasm") else { return };
    sandbox.case.apply_rlimit_as = Some(limit);
    sandbox.case.spec_rlimit_as = Some(limit);
    let out = sandbox.run();
    assert_eq!(out.code(), Some(0), "stderr: {} report: {:?}", out.stderr, out.report.prepare_error);
    let grown: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("memory-grow json");
    let final_bytes = grown["final_bytes"].as_u64().expect("final_bytes");
    assert!(final_bytes <= limit / 4 && final_bytes > limit / 4 - (2 << 20), "grew to {final_bytes}");

    // The control: the same address-space limit applied but not declared in the
    // spec leaves the engine's default 4 GiB reservations, which do not fit.
    sandbox.case.spec_rlimit_as = None;
    let out = sandbox.run();
    assert_ne!(out.code(), Some(0), "the default engine must not fit in a {limit}-byte address space");
}

#[test]
fn sigterm_ends_a_looping_guest_with_143() {
    for (signal, expected) in [(nix::sys::signal::Signal::SIGTERM, 143), (nix::sys::signal::Signal::SIGHUP, 129)] {
        let Some(sandbox) = sandbox("loop-forever.wasm") else { return };
        let mut child = sandbox.spawn();
        wait_for(&sandbox.case.stdout, "looping", &mut child);
        std::thread::sleep(Duration::from_millis(50));
        let sent = Instant::now();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).expect("kill");
        let status = wait_timeout(&mut child, Duration::from_secs(5));
        assert!(sent.elapsed() < Duration::from_secs(1), "{signal} took {:?}", sent.elapsed());
        assert_eq!(status.code(), Some(expected), "{signal}: {status}");
    }
}

fn probe(sandbox: &Sandbox) -> serde_json::Value {
    let out = sandbox.run();
    assert_eq!(out.code(), Some(0), "stderr: {} report: {:?}", out.stderr, out.report.prepare_error);
    serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("probe json ({e}): {}", out.stdout))
}

#[test]
fn guest_sees_the_spec_args_and_env_only() {
    let Some(mut sandbox) = sandbox("probe.wasm") else { return };
    sandbox.case.args = vec!["one".to_owned(), "two words".to_owned()];
    sandbox.case.env = vec!["FOO=bar".to_owned(), "PATH=/bin".to_owned()];
    let seen = probe(&sandbox);
    assert_eq!(seen["args"], serde_json::json!(["/app.wasm", "one", "two words"]));
    assert_eq!(seen["env"], serde_json::json!(["FOO=bar", "PATH=/bin"]));
    assert!(!seen.to_string().contains("AMPHI_TEST_SECRET"), "the runtime's environment leaked: {seen}");
}

#[test]
fn default_preopens_are_cwd_and_root() {
    let Some(mut sandbox) = sandbox("probe.wasm") else { return };
    fs::create_dir_all(sandbox.case.rootfs.join("work/sub")).expect("mkdir work");
    fs::write(sandbox.case.rootfs.join("work/note"), b"x").expect("write note");
    sandbox.case.cwd = "/work".to_owned();
    let seen = probe(&sandbox);
    let preopens = seen["preopens"].as_array().expect("preopens");
    let names: Vec<&str> = preopens.iter().map(|p| p["name"].as_str().expect("name")).collect();
    assert_eq!(names, [".", "/"]);
    assert_eq!(preopens[0]["entries"], serde_json::json!(["note", "sub"]), "`.` is the cwd");
    assert_eq!(preopens[1]["entries"], serde_json::json!(["app.wasm", "work"]), "`/` is the root");
    // wasi-libc resolves paths to the last preopen of the longest prefix; `.`
    // and `/` are both the empty prefix, and `/` comes last: paths reach the root.
    assert_eq!(seen["cwd_entries"], serde_json::json!(["app.wasm", "work"]));
}

#[test]
fn preopens_annotation_narrows_and_sets_modes() {
    let Some(mut sandbox) = sandbox("files.wasm") else { return };
    fs::create_dir_all(sandbox.case.rootfs.join("data")).expect("mkdir data");
    fs::create_dir_all(sandbox.case.rootfs.join("ro")).expect("mkdir ro");
    sandbox
        .case
        .annotations
        .insert(amphi_executors::wasm::PREOPENS_ANNOTATION.to_owned(), "/data:/data:rw,/ro:/ro:ro".to_owned());
    sandbox.case.args = vec!["/data/out.txt".to_owned(), "written by wasm".to_owned()];
    let out = sandbox.run();
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "read back: written by wasm\n");
    assert_eq!(fs::read_to_string(sandbox.case.rootfs.join("data/out.txt")).expect("out.txt"), "written by wasm");

    sandbox.case.args = vec!["/ro/out.txt".to_owned(), "nope".to_owned()];
    let out = sandbox.run();
    assert_eq!(out.code(), Some(1), "a read-only preopen must refuse the write");
    assert!(out.stderr.contains("open /ro/out.txt for writing"), "{}", out.stderr);
    assert!(!sandbox.case.rootfs.join("ro/out.txt").exists());

    // The root is not preopened any more: nothing outside /data and /ro.
    sandbox.case.args = vec!["/out.txt".to_owned(), "nope".to_owned()];
    let out = sandbox.run();
    assert_eq!(out.code(), Some(1));
    assert!(!sandbox.case.rootfs.join("out.txt").exists());
}

#[test]
fn readonly_root_preopens_refuse_writes() {
    let Some(mut sandbox) = sandbox("files.wasm") else { return };
    sandbox.case.readonly_root = true;
    sandbox.case.args = vec!["/out.txt".to_owned(), "nope".to_owned()];
    let out = sandbox.run();
    assert_eq!(out.code(), Some(1), "stderr: {}", out.stderr);
    assert!(!sandbox.case.rootfs.join("out.txt").exists());
}

#[test]
fn preopen_that_does_not_exist_fails_at_prepare() {
    let Some(mut sandbox) = sandbox("hello.wasm") else { return };
    sandbox.case.annotations.insert(amphi_executors::wasm::PREOPENS_ANNOTATION.to_owned(), "/nope:/data".to_owned());
    let out = sandbox.run();
    assert_eq!(out.code(), Some(PREPARE_FAILED));
    let err = out.report.prepare_error.expect("error");
    assert!(err.contains("org.amphi.wasm.preopens") && err.contains("/nope"), "{err}");
}

#[test]
fn second_prepare_hits_the_cache() {
    let Some(mut sandbox) = sandbox("hello-c.wasm") else { return };
    sandbox.case.cache = Some(sandbox.cache_dir());
    let first = sandbox.run();
    assert_eq!(first.code(), Some(0), "stderr: {}", first.stderr);
    assert_eq!(first.report.cache.as_deref(), Some("Miss"));
    assert!(first.report.log.contains("cache=\"miss\""), "{}", first.report.log);
    let second = sandbox.run();
    assert_eq!(second.code(), Some(0));
    assert_eq!(second.stdout, "hello from wasm\n");
    assert_eq!(second.report.cache.as_deref(), Some("Hit"));
    assert!(second.report.log.contains("cache=\"hit\""), "{}", second.report.log);

    let entries = Cache::open(&sandbox.cache_dir()).expect("cache").list().expect("list");
    assert_eq!(entries.len(), 1);
    assert!(entries[0].intact);
    let mode = fs::metadata(sandbox.cache_dir()).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn corrupt_cache_entry_is_recompiled() {
    let Some(mut sandbox) = sandbox("hello.wasm") else { return };
    sandbox.case.cache = Some(sandbox.cache_dir());
    assert_eq!(sandbox.run().report.cache.as_deref(), Some("Miss"));
    let cache = Cache::open(&sandbox.cache_dir()).expect("cache");
    let entry = cache.list().expect("list").remove(0);
    let len = fs::metadata(&entry.path).expect("stat").len();
    fs::File::options().write(true).open(&entry.path).expect("open").set_len(len / 2).expect("truncate");

    let out = sandbox.run();
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "hello from wasm\n");
    assert_eq!(out.report.cache.as_deref(), Some("Miss"), "a truncated entry is recompiled");
    assert!(out.report.log.contains("discarded"), "{}", out.report.log);
    let entries = cache.list().expect("list");
    assert_eq!(entries.len(), 1);
    assert!(entries[0].intact, "the recompiled entry replaces the corrupt one");
    assert_eq!(sandbox.run().report.cache.as_deref(), Some("Hit"));

    // A flipped byte in the code (same length) is caught by the checksum.
    let mut bytes = fs::read(&entry.path).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    fs::write(&entry.path, &bytes).expect("write");
    let out = sandbox.run();
    assert_eq!(out.code(), Some(0));
    assert_eq!(out.report.cache.as_deref(), Some("Miss"));
}

#[test]
fn writable_cache_dir_is_refused() {
    let Some(mut sandbox) = sandbox("hello.wasm") else { return };
    let dir = sandbox.cache_dir();
    fs::create_dir(&dir).expect("mkdir");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
    sandbox.case.cache = Some(dir.clone());
    let out = sandbox.run();
    assert_eq!(out.code(), Some(PREPARE_FAILED));
    let err = out.report.prepare_error.expect("error");
    assert!(err.contains(&dir.display().to_string()) && err.contains("0777"), "{err}");
}

#[test]
fn component_runs() {
    let Some(sandbox) = sandbox("hello-component.wasm") else { return };
    let out = sandbox.run();
    assert_eq!(out.code(), Some(0), "stderr: {} {:?}", out.stderr, out.report.prepare_error);
    assert_eq!(out.stdout, "hello from wasm\n");
}

#[test]
fn component_exit_with_code_passes_through() {
    let Some(sandbox) = sandbox("exit-with-code-component.wasm") else { return };
    let out = sandbox.run();
    assert_eq!(out.code(), Some(7), "stderr: {} {:?}", out.stderr, out.report.prepare_error);
}

#[test]
fn componentized_exit_status_is_what_the_adapter_reports() {
    // The preview-1 adapter turns `proc_exit(n)` into `wasi:cli/exit.exit(err)`
    // for every n != 0, so the host sees 1: a limit of componentized preview-1
    // programs, not of amphi (a component calling `exit-with-code` keeps its n).
    for (code, expected) in [("0", 0), ("3", 1), ("200", 1)] {
        let Some(mut sandbox) = sandbox("exit-code-component.wasm") else { return };
        sandbox.case.args = vec![code.to_owned()];
        let out = sandbox.run();
        assert_eq!(out.code(), Some(expected), "exit {code}; stderr: {}", out.stderr);
        assert_eq!(out.stdout, format!("exiting with {code}\n"));
    }
}

#[test]
fn component_probe_sees_args_env_and_preopens() {
    let Some(mut sandbox) = sandbox("probe-component.wasm") else { return };
    sandbox.case.args = vec!["x".to_owned()];
    sandbox.case.env = vec!["ONLY=this".to_owned()];
    let seen = probe(&sandbox);
    assert_eq!(seen["args"], serde_json::json!(["/app.wasm", "x"]));
    assert_eq!(seen["env"], serde_json::json!(["ONLY=this"]));
    let names: Vec<&str> =
        seen["preopens"].as_array().expect("preopens").iter().map(|p| p["name"].as_str().expect("name")).collect();
    assert_eq!(names, [".", "/"]);
}

#[test]
fn tcp_component_serves_a_request() {
    let Some(mut sandbox) = sandbox("tcp-server-component.wasm") else { return };
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind probe");
        probe.local_addr().expect("addr").port()
    };
    sandbox.case.args = vec![port.to_string(), "127.0.0.1".to_owned()];
    let mut child = sandbox.spawn();
    wait_for(&sandbox.case.stdout, "listening on", &mut child);
    // The guest now waits in accept, inside exec: the WASI host (tokio, sockets)
    // must not have started a thread.
    let report: Report = serde_json::from_slice(&fs::read(&sandbox.case.report).expect("report")).expect("json");
    assert_eq!(threads(&child.id().to_string()), report.threads_after, "exec started a thread");
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut line = String::new();
    stream.read_to_string(&mut line).expect("read");
    assert_eq!(line, "hello from wasm over tcp\n");
    let status = wait_timeout(&mut child, Duration::from_secs(10));
    let out = sandbox.outcome(status);
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, format!("listening on {port}\nserved one connection\n"));
}

/// Timings for the report: `cargo test -p amphi-executors --test wasm_executor
/// measure -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
#[expect(clippy::print_stderr, reason = "the measurement is the output")]
fn measure_prepare_and_run() {
    let Some(mut sandbox) = sandbox("hello.wasm") else { return };
    sandbox.case.cache = Some(sandbox.cache_dir());
    for fixture in ["hello.wasm", "hello-component.wasm"] {
        fs::copy(amphi_wasm_fixtures::path(fixture), sandbox.case.rootfs.join("app.wasm")).expect("copy");
        let _ = Cache::open(&sandbox.cache_dir()).expect("cache").prune(None);
        let cold = sandbox.run();
        let mut warm_prepare = Vec::new();
        let mut warm_total = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let out = sandbox.run();
            warm_total.push(started.elapsed().as_micros() as u64);
            assert_eq!(out.report.cache.as_deref(), Some("Hit"));
            warm_prepare.push(out.report.prepare_us);
        }
        sandbox.case.prepare_only = true;
        let mut prepare_only = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            sandbox.run();
            prepare_only.push(started.elapsed().as_micros() as u64);
        }
        sandbox.case.prepare_only = false;
        warm_prepare.sort_unstable();
        warm_total.sort_unstable();
        prepare_only.sort_unstable();
        let run_us = warm_total[2].saturating_sub(prepare_only[2]);
        eprintln!(
            "{fixture}: cold prepare (compile) {} us; cache-hit prepare {} us (median of 5); \
             child with exec {} us vs prepare-only {} us => instantiate+run ~{run_us} us",
            cold.report.prepare_us, warm_prepare[2], warm_total[2], prepare_only[2]
        );
    }
}

#[test]
fn a_fifo_entrypoint_fails_prepare_unopened() {
    let Some(mut sandbox) = sandbox("hello.wasm") else { return };
    // Opened for reading, a fifo would block prepare until a writer came.
    let fifo = sandbox.case.rootfs.join("fifo.wasm");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
    sandbox.case.entrypoint = "/fifo.wasm".to_owned();
    let mut child = sandbox.spawn();
    let out = sandbox.outcome(wait_timeout(&mut child, Duration::from_secs(20)));
    assert_eq!(out.code(), Some(PREPARE_FAILED));
    let err = out.report.prepare_error.expect("error");
    assert_eq!(err, "exec: \"/fifo.wasm\": not a regular file (a fifo)");
}
