//! Wasm workloads through the `amphi` binary: selection, isolation, the WASI
//! mapping, exit statuses, signals, limits, the compile cache, cross exec,
//! components and sockets. amphi-only: runc has no wasm executor (each test
//! returns at once under `AMPHI_E2E_RUNTIME`).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{self, Case, describe, probe_report};

/// A case for a wasm test, or None (no root, or a runtime without wasm).
fn case(name: &str) -> Option<Case> {
    let case = support::case(name)?;
    support::runtime().is_amphi.then_some(case)
}

/// A wasm-bundle variant for `id` running `args`, with `annotations`.
fn bundle(case: &Case, id: &str, args: &[&str], annotations: &[(&str, &str)]) -> amphi_test_bundles::Bundle {
    case.bundle(&support::bundles().wasm, id, |config| {
        config["process"]["args"] = json!(args);
        if !annotations.is_empty() {
            let map: serde_json::Map<String, Value> =
                annotations.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect();
            config["annotations"] = Value::Object(map);
        }
    })
}

/// `amphi run` with a private wasm cache in the case's work dir.
fn run(case: &Case, bundle: &amphi_test_bundles::Bundle, id: &str) -> std::process::Output {
    run_with_cache(case, bundle, id, &case.work.path().join("cache"))
}

fn run_with_cache(
    case: &Case,
    bundle: &amphi_test_bundles::Bundle,
    id: &str,
    cache: &std::path::Path,
) -> std::process::Output {
    case.cmd(&["--wasm-cache", cache.to_str().unwrap(), "run", "--bundle", bundle.dir().to_str().unwrap(), id])
        .output()
        .expect("run amphi")
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A one-line `amphi: ...` error that contains every word of `words`.
fn assert_one_line_error(out: &std::process::Output, words: &[&str]) {
    assert!(!out.status.success(), "expected a failure: {}", describe(out));
    let text = stderr(out);
    assert_eq!(text.trim_end().lines().count(), 1, "one line: {text:?}");
    assert!(text.starts_with("amphi: "), "{text:?}");
    for word in words {
        assert!(text.contains(word), "{word:?} missing from {text:?}");
    }
}

// --- selection --------------------------------------------------------------

#[test]
fn content_selects_wasm_without_an_annotation() {
    let Some(case) = case("wasm_by_content") else { return };
    for (n, module) in
        ["/wasm/hello.wasm", "/wasm/hello-c.wasm", "/wasm/hello.wat", "/wasm/hello-noexec.wasm"].iter().enumerate()
    {
        let id = case.id(&format!("m{n}"));
        let out = run(&case, &bundle(&case, &id, &[module], &[]), &id);
        assert!(out.status.success(), "{module}: {}", describe(&out));
        assert_eq!(stdout(&out).trim(), "hello from wasm", "{module}");
    }
    case.assert_all_gone();
}

#[test]
fn content_selects_native_for_an_elf_or_a_script() {
    let Some(case) = case("native_by_content") else { return };
    let id = case.id("elf");
    let out = run(&case, &bundle(&case, &id, &["/bin/echo", "native"], &[]), &id);
    assert_eq!(stdout(&out).trim(), "native", "{}", describe(&out));
    let id = case.id("sh");
    let out = run(&case, &bundle(&case, &id, &["/bin/sh", "-c", "echo script"], &[]), &id);
    assert_eq!(stdout(&out).trim(), "script", "{}", describe(&out));
    case.assert_all_gone();
}

#[test]
fn wasm_annotations_select_wasm() {
    let Some(case) = case("wasm_annotations") else { return };
    for (n, (key, value)) in [("run.oci.handler", "wasm"), ("module.wasm.image/variant", "compat")].iter().enumerate() {
        let id = case.id(&format!("a{n}"));
        let out = run(&case, &bundle(&case, &id, &["/wasm/hello.wasm"], &[(key, value)]), &id);
        assert_eq!(stdout(&out).trim(), "hello from wasm", "{key}={value}: {}", describe(&out));
    }
    case.assert_all_gone();
}

#[test]
fn an_explicit_wasm_annotation_on_an_elf_fails_create() {
    let Some(case) = case("wasm_annotation_elf") else { return };
    let id = case.id("c");
    let bundle = bundle(&case, &id, &["/bin/true"], &[("run.oci.handler", "wasm")]);
    let out = case.create(&bundle, &id, &[]);
    assert_one_line_error(&out, &["/bin/true", "run.oci.handler=wasm", "ELF"]);
    case.assert_all_gone();
}

#[test]
fn smart_annotations_follow_the_content() {
    let Some(case) = case("wasm_smart") else { return };
    for (key, value) in [("run.oci.handler", "wasm-smart"), ("module.wasm.image/variant", "compat-smart")] {
        let id = case.id(&format!("w{}", value.len()));
        let out = run(&case, &bundle(&case, &id, &["/wasm/hello.wasm"], &[(key, value)]), &id);
        assert_eq!(stdout(&out).trim(), "hello from wasm", "{key}: {}", describe(&out));
        let id = case.id(&format!("n{}", value.len()));
        let out = run(&case, &bundle(&case, &id, &["/bin/echo", "native"], &[(key, value)]), &id);
        assert_eq!(stdout(&out).trim(), "native", "{key}: {}", describe(&out));
    }
    case.assert_all_gone();
}

#[test]
fn the_sandbox_container_stays_native() {
    let Some(case) = case("wasm_sandbox") else { return };
    let sandbox = [("io.kubernetes.cri.container-type", "sandbox"), ("run.oci.handler", "wasm")];
    let id = case.id("bin");
    let out = run(&case, &bundle(&case, &id, &["/bin/echo", "pause"], &sandbox), &id);
    assert_eq!(stdout(&out).trim(), "pause", "{}", describe(&out));
    // A wasm file as a sandbox's entrypoint is handed to execve, which refuses it.
    let id = case.id("wasm");
    let out = run(&case, &bundle(&case, &id, &["/wasm/hello.wasm"], &sandbox), &id);
    assert!(!stdout(&out).contains("hello from wasm"), "{}", describe(&out));
    assert!(!out.status.success());
    case.assert_all_gone();
}

// --- isolation and the WASI mapping ------------------------------------------

#[test]
fn a_wasm_container_is_isolated_like_a_native_one() {
    let Some(case) = case("wasm_isolation") else { return };
    let id = case.id("c");
    let bundle = bundle(&case, &id, &["/wasm/probe.wasm"], &[]);
    let pid_file = case.work.path().join("pid");
    let out = case
        .cmd(&[
            "--wasm-cache",
            case.work.path().join("cache").to_str().unwrap(),
            "create",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--bundle",
            bundle.dir().to_str().unwrap(),
            &id,
        ])
        .stdout(std::fs::File::create(case.stdout_path(&id)).unwrap())
        .stderr(std::fs::File::create(case.stderr_path(&id)).unwrap())
        .status()
        .unwrap();
    assert!(out.success(), "{}", std::fs::read_to_string(case.stderr_path(&id)).unwrap_or_default());
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    // From outside: the wasm init has the container's namespaces and identity.
    for ns in ["pid", "net", "ipc", "uts", "mnt", "cgroup"] {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_ne!(theirs, ours, "{ns} namespace is the host's");
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let cap_eff = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    assert!(cap_eff.ends_with("0000000020000420"), "the spec's three capabilities: {cap_eff}");
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cgroup.contains(&Case::cgroup_path(&id)), "{cgroup}");
    case.ok(&["start", &id]);
    case.wait_status(&id, "stopped");
    // From inside: the guest's view has no procfs at all, so none of the
    // init's own entries (the guest runs in the init) is reachable.
    let report = probe_report(&case.container_stdout(&id));
    for key in ["proc_self_status", "proc_self_cgroup", "hostname"] {
        assert_eq!(report[key], Value::Null, "{key}: {report}");
    }
    case.ok(&["delete", &id]);
    case.assert_all_gone();
}

#[test]
fn args_env_and_cwd_come_from_the_spec_only() {
    let Some(case) = case("wasm_wasi_mapping") else { return };
    let id = case.id("c");
    let bundle = case.bundle(&support::bundles().wasm, &id, |config| {
        config["process"]["args"] = json!(["probe-argv0", "one", "two words"]);
        config["process"]["env"] = json!(["GREETING=hi", "PATH=/wasm"]);
        config["process"]["cwd"] = json!("/tmp");
    });
    // args[0] is found through the spec's PATH, and stays as given.
    std::fs::create_dir_all(case.work.path()).unwrap();
    let out = case
        .cmd(&[
            "--wasm-cache",
            case.work.path().join("cache").to_str().unwrap(),
            "run",
            "--bundle",
            bundle.dir().to_str().unwrap(),
            &id,
        ])
        .env("AMPHI_LEAK_MARKER", "leaked")
        .output()
        .unwrap();
    // probe-argv0 is not in /wasm: the lookup fails and names it.
    assert!(!out.status.success());
    assert!(stderr(&out).contains("probe-argv0"), "{}", describe(&out));

    let id = case.id("d");
    let bundle = case.bundle(&support::bundles().wasm, &id, |config| {
        config["process"]["args"] = json!(["probe.wasm", "one", "two words"]);
        config["process"]["env"] = json!(["GREETING=hi", "PATH=/wasm"]);
        config["process"]["cwd"] = json!("/tmp");
    });
    let out = case
        .cmd(&[
            "--wasm-cache",
            case.work.path().join("cache").to_str().unwrap(),
            "run",
            "--bundle",
            bundle.dir().to_str().unwrap(),
            &id,
        ])
        .env("AMPHI_LEAK_MARKER", "leaked")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let report = probe_report(&stdout(&out));
    assert_eq!(report["args"], json!(["probe.wasm", "one", "two words"]), "argv[0] as given");
    // The spec's env, and HOME (the spec gives none) from the container's
    // /etc/passwd for uid 0, as every workload gets it.
    assert_eq!(report["env"], json!(["GREETING=hi", "PATH=/wasm", "HOME=/root"]), "only the spec's env: {report}");
    assert!(!stdout(&out).contains("AMPHI_LEAK_MARKER"));
    let preopens: Vec<&str> =
        report["preopens"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(preopens.contains(&"/") && preopens.contains(&"."), "{preopens:?}");
    case.assert_all_gone();
}

#[test]
fn stdio_is_the_containers() {
    let Some(case) = case("wasm_stdio") else { return };
    let id = case.id("c");
    let bundle = bundle(&case, &id, &["/wasm/cat.wasm"], &[]);
    let mut child = case
        .cmd(&[
            "--wasm-cache",
            case.work.path().join("cache").to_str().unwrap(),
            "run",
            "--bundle",
            bundle.dir().to_str().unwrap(),
            &id,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"through the guest\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "through the guest\n");
    case.assert_all_gone();
}

#[test]
fn files_written_in_the_guest_land_in_the_container() {
    let Some(case) = case("wasm_files") else { return };
    let id = case.id("c");
    let bundle = case.bundle(&support::bundles().wasm, &id, |config| {
        config["process"]["args"] = json!(["/wasm/files.wasm", "/tmp/note", "written by wasm"]);
        config["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
        // The root is read-only (and so is the "/" preopen): the annotation adds
        // a writable preopen for the tmpfs.
        config["annotations"] = json!({"org.amphi.wasm.preopens": "+/tmp:/tmp:rw"});
    });
    let out = run(&case, &bundle, &id);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(stdout(&out).contains("read back: written by wasm"), "{}", describe(&out));
    case.assert_all_gone();
}

// --- exit statuses ----------------------------------------------------------

#[test]
fn exit_statuses_pass_through() {
    let Some(case) = case("wasm_exit") else { return };
    for (module, args, code) in [
        ("/wasm/hello.wasm", vec![], 0),
        ("/wasm/proc-exit.wasm", vec![], 42),
        ("/wasm/exit-code.wasm", vec!["3"], 3),
        ("/wasm/exit-code.wasm", vec!["200"], 200),
        ("/wasm/exit-with-code-component.wasm", vec![], 7),
    ] {
        let id = case.id(&format!("x{code}"));
        let mut argv = vec![module];
        argv.extend(args);
        let out = run(&case, &bundle(&case, &id, &argv, &[]), &id);
        assert_eq!(out.status.code(), Some(code), "{module}: {}", describe(&out));
    }
    case.assert_all_gone();
}

#[test]
fn a_trap_prints_a_backtrace_and_exits_134() {
    let Some(case) = case("wasm_trap") else { return };
    for module in ["/wasm/trap.wasm", "/wasm/out-of-bounds.wasm"] {
        let id = case.id(&format!("t{}", module.len()));
        let out = run(&case, &bundle(&case, &id, &[module], &[]), &id);
        assert_eq!(out.status.code(), Some(134), "{module}: {}", describe(&out));
        let err = stderr(&out);
        assert!(err.contains("wasm backtrace") || err.contains("backtrace"), "{module}: {err}");
    }
    let id = case.id("named");
    let out = run(&case, &bundle(&case, &id, &["/wasm/trap.wasm"], &[]), &id);
    assert!(stderr(&out).contains("crash_here"), "the backtrace names the function: {}", describe(&out));
    case.assert_all_gone();
}

// --- signals ----------------------------------------------------------------

#[test]
fn sigterm_ends_a_looping_guest() {
    let Some(case) = case("wasm_sigterm") else { return };
    for (signal, code) in [("TERM", 143), ("INT", 130), ("HUP", 129)] {
        let id = case.id(signal);
        let bundle = bundle(&case, &id, &["/wasm/loop-forever.wasm"], &[]);
        let child = case
            .cmd(&[
                "--wasm-cache",
                case.work.path().join("cache").to_str().unwrap(),
                "run",
                "--bundle",
                bundle.dir().to_str().unwrap(),
                &id,
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        case.wait_status(&id, "running");
        let mut reader = BufReader::new(
            child.stdout.as_ref().map(|s| s.as_fd().try_clone_to_owned().unwrap()).map(std::fs::File::from).unwrap(),
        );
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "looping");
        let sent = Instant::now();
        case.ok(&["kill", &id, signal]);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{signal}: {}", describe(&out));
        assert!(sent.elapsed() < Duration::from_secs(5), "{signal} took {:?}", sent.elapsed());
    }
    case.assert_all_gone();
}

#[test]
fn delete_force_ends_a_looping_guest() {
    let Some(case) = case("wasm_delete_force") else { return };
    let id = case.id("c");
    let bundle = bundle(&case, &id, &["/wasm/loop-forever.wasm"], &[]);
    let out = case
        .cmd(&[
            "--wasm-cache",
            case.work.path().join("cache").to_str().unwrap(),
            "create",
            "--bundle",
            bundle.dir().to_str().unwrap(),
            &id,
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(out.success());
    case.ok(&["start", &id]);
    case.ok(&["delete", "--force", &id]);
    case.assert_all_gone();
}

// --- limits -----------------------------------------------------------------

#[test]
fn the_memory_limit_is_the_guests_ceiling() {
    let Some(case) = case("wasm_memory") else { return };
    let limit: u64 = 96 << 20;
    let id = case.id("c");
    let bundle = case.bundle(&support::bundles().wasm, &id, |config| {
        config["process"]["args"] = json!(["/wasm/memory-grow.wasm"]);
        config["linux"]["resources"]["memory"] = json!({"limit": limit});
    });
    let out = run(&case, &bundle, &id);
    // The guest saw memory.grow fail and reported it: the cgroup did not kill it.
    assert!(out.status.success(), "{}", describe(&out));
    let report = probe_report(&stdout(&out));
    let reached = report["final_bytes"].as_u64().unwrap();
    assert!(reached < limit, "the guest grew to {reached} bytes, past the {limit}-byte limit");
    assert!(reached > limit / 4, "the ceiling is far below the limit: {reached}");

    // Without a limit the same guest grows much further.
    let id = case.id("free");
    let bundle = self::bundle(&case, &id, &["/wasm/memory-grow.wasm"], &[]);
    let out = run(&case, &bundle, &id);
    let free = probe_report(&stdout(&out))["final_bytes"].as_u64().unwrap();
    assert!(free > 2 * limit, "without a limit the guest reached only {free}");
    case.assert_all_gone();
}

// --- the compile cache --------------------------------------------------------

#[test]
fn the_second_create_hits_the_cache_and_a_corrupt_entry_is_recompiled() {
    let Some(case) = case("wasm_cache") else { return };
    // A small module compiles in the init; the component (65 KiB) on every core
    // in a child of the init, which stores it for the init to load.
    for (program, compiled_by) in [
        ("/wasm/hello.wasm", "wasm module compiled"),
        ("/wasm/hello-component.wasm", "wasm module compiled on every core by a child process"),
    ] {
        let cache = case.work.path().join(format!("cache{}", program.len()));
        let log = case.work.path().join("amphi.log");
        let run_logged = |id: &str| {
            let bundle = bundle(&case, id, &[program], &[]);
            let out = case
                .cmd(&[
                    "--debug",
                    "--log",
                    log.to_str().unwrap(),
                    "--log-format",
                    "json",
                    "--wasm-cache",
                    cache.to_str().unwrap(),
                    "run",
                    "--bundle",
                    bundle.dir().to_str().unwrap(),
                    id,
                ])
                .output()
                .unwrap();
            assert_eq!(stdout(&out).trim(), "hello from wasm", "{}", describe(&out));
            let text = std::fs::read_to_string(&log).unwrap();
            std::fs::remove_file(&log).unwrap();
            let lines: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
            lines
                .iter()
                .find_map(|l| Some((l["cache"].as_str()?.to_owned(), l["msg"].as_str()?.to_owned())))
                .unwrap_or_else(|| panic!("no cache line in {text}"))
        };
        assert_eq!(run_logged(&case.id("first")), ("miss".to_owned(), compiled_by.to_owned()), "{program}");
        assert_eq!(run_logged(&case.id("second")).0, "hit", "{program}");
        let listing = case.ok(&["--wasm-cache", cache.to_str().unwrap(), "wasm-cache", "list"]);
        assert_eq!(listing.lines().count(), 2, "a header and one entry: {listing}");
        // Corrupt the entry: the next create recompiles instead of loading it.
        let entry = std::fs::read_dir(&cache)
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(".cwasm"))
            .unwrap();
        let mut bytes = std::fs::read(entry.path()).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(entry.path(), &bytes).unwrap();
        assert_eq!(run_logged(&case.id("third")).0, "miss", "{program}");
        assert_eq!(run_logged(&case.id("fourth")).0, "hit", "{program}");
        let pruned = case.ok(&["--wasm-cache", cache.to_str().unwrap(), "wasm-cache", "prune"]);
        assert!(pruned.contains("removed 1"), "{pruned}");
    }
    case.assert_all_gone();
}

#[test]
fn a_foreign_or_writable_cache_dir_is_refused() {
    let Some(case) = case("wasm_cache_refused") else { return };
    use std::os::unix::fs::PermissionsExt;
    let writable = case.work.path().join("writable");
    std::fs::create_dir(&writable).unwrap();
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o777)).unwrap();
    let foreign = case.work.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
    for dir in [&writable, &foreign] {
        let id = case.id(&format!("c{}", dir.to_string_lossy().len()));
        let out = run_with_cache(&case, &bundle(&case, &id, &["/wasm/hello.wasm"], &[]), &id, dir);
        assert_one_line_error(&out, &[dir.to_str().unwrap()]);
        case.assert_gone(&id);
    }
}

// --- cross exec ---------------------------------------------------------------

#[test]
fn exec_crosses_between_wasm_and_native() {
    let Some(case) = case("wasm_cross_exec") else { return };
    let cache = case.work.path().join("cache");
    let cache = cache.to_str().unwrap();
    // A native container, and a wasm tool exec'd into it.
    let native = case.id("native");
    let bundle_native = bundle(&case, &native, &["/bin/sleep", "1000"], &[]);
    assert!(case.create(&bundle_native, &native, &[]).status.success());
    case.ok(&["start", &native]);
    let out = case.run(&["--wasm-cache", cache, "exec", &native, "/wasm/hello.wasm"]);
    assert_eq!(stdout(&out).trim(), "hello from wasm", "{}", describe(&out));
    let out = case.run(&["--wasm-cache", cache, "exec", &native, "/wasm/exit-code.wasm", "9"]);
    assert_eq!(out.status.code(), Some(9), "{}", describe(&out));
    // A wasm container, and a native tool exec'd into it: it sees the wasm init.
    let wasm = case.id("wasm");
    // With an explicit wasm annotation, as podman and the CRI copy into
    // config.json: it names the container's workload, not every exec'd tool.
    let bundle_wasm = bundle(&case, &wasm, &["/wasm/loop-forever.wasm"], &[("run.oci.handler", "wasm")]);
    assert!(case.create(&bundle_wasm, &wasm, &[]).status.success());
    case.ok(&["start", &wasm]);
    let out = case.run(&["exec", &wasm, "/bin/cat", "/proc/1/status"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(stdout(&out).contains("amphi:init"), "pid 1 is the wasm init: {}", describe(&out));
    let out = case.run(&["exec", &wasm, "/bin/cat", "/proc/self/cgroup"]);
    assert!(stdout(&out).lines().all(|l| l.ends_with(":/")), "in the container's cgroup namespace: {}", describe(&out));
    for id in [&native, &wasm] {
        case.ok(&["delete", "--force", id]);
    }
    case.assert_all_gone();
}

#[test]
fn a_wasm_init_keeps_amphis_binary_and_descriptors_from_the_container() {
    // The init of a wasm container is amphi for its whole life: a process in the
    // container that opened /proc/1/exe could overwrite the host's binary
    // (CVE-2019-5736), and /proc/1/fd holds host descriptors.
    let Some(case) = case("wasm_exe_guard") else { return };
    let id = case.id("c");
    let bundle = bundle(&case, &id, &["/wasm/loop-forever.wasm"], &[]);
    let cache = case.work.path().join("cache");
    let created = case.create_in(bundle.dir(), &id, &[], &[("AMPHI_WASM_CACHE", cache.to_str().unwrap())]);
    assert!(created.status.success(), "{}", describe(&created));
    assert!(cache.is_dir(), "the cache was used");
    case.ok(&["start", &id]);
    for path in ["/proc/1/exe", "/proc/1/mem", "/proc/1/environ", "/proc/1/fd/0"] {
        let out = case.run(&["exec", &id, "/bin/cat", path]);
        assert!(!out.status.success(), "{path} opened: {} bytes read", out.stdout.len());
        assert!(stderr(&out).contains("Permission denied"), "{path}: {}", describe(&out));
    }
    let out = case.run(&["exec", &id, "/bin/ls", "/proc/1/root/"]);
    assert!(!out.status.success() && stderr(&out).contains("Permission denied"), "{}", describe(&out));
    // The wasm cache directory the caller opened on the host is closed once
    // the module is loaded: no host descriptor lives on in the container.
    let pid = case.state(&id)["pid"].as_i64().unwrap();
    let cache = std::fs::canonicalize(&cache).unwrap();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let target = std::fs::read_link(fd.unwrap().path()).unwrap_or_default();
        assert!(!target.starts_with(&cache), "the init holds {}", target.display());
    }
    // A native workload is dumpable again after execve, as any program is.
    let out = case.run(&["exec", &id, "/bin/sh", "-c", "cat /proc/self/environ >/dev/null && echo readable"]);
    assert_eq!(stdout(&out).trim(), "readable", "{}", describe(&out));
    // From the host, root still sees everything (state, ps, exec rely on it).
    assert!(std::fs::read_link(format!("/proc/{pid}/exe")).is_ok());
    case.ok(&["delete", "--force", &id]);
    case.assert_all_gone();
}

// --- components -------------------------------------------------------------

#[test]
fn a_component_runs() {
    let Some(case) = case("wasm_component") else { return };
    let id = case.id("c");
    let out = run(&case, &bundle(&case, &id, &["/wasm/hello-component.wasm"], &[]), &id);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out).trim(), "hello from wasm");
    case.assert_all_gone();
}

#[test]
fn a_component_serves_tcp_in_the_containers_network_namespace() {
    let Some(case) = case("wasm_tcp") else { return };
    let id = case.id("c");
    let bundle = bundle(&case, &id, &["/wasm/tcp-server-component.wasm", "8080"], &[]);
    let child = case
        .cmd(&[
            "--wasm-cache",
            case.work.path().join("cache").to_str().unwrap(),
            "run",
            "--bundle",
            bundle.dir().to_str().unwrap(),
            &id,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader =
        BufReader::new(std::fs::File::from(child.stdout.as_ref().unwrap().as_fd().try_clone_to_owned().unwrap()));
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "listening on 8080");
    let pid = case.state(&id)["pid"].as_i64().unwrap();
    // A new network namespace starts with its loopback down; bring it up as a
    // network manager (containerd's CNI, podman) would.
    let up = std::process::Command::new("nsenter")
        .args([format!("--net=/proc/{pid}/ns/net"), "ip".into(), "link".into(), "set".into(), "lo".into(), "up".into()])
        .status()
        .unwrap();
    assert!(up.success());
    // The host side enters the container's network namespace (one thread may)
    // and connects to the guest's port there: it is not on the host's loopback.
    let netns = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
    assert!(
        std::net::TcpStream::connect_timeout(&"127.0.0.1:8080".parse().unwrap(), Duration::from_millis(200)).is_err()
    );
    let answer = std::thread::spawn(move || {
        nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("enter the netns");
        let mut stream = std::net::TcpStream::connect("127.0.0.1:8080").expect("connect to the guest");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        answer
    })
    .join()
    .unwrap();
    assert!(!answer.is_empty(), "the guest answered nothing");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    case.assert_all_gone();
}

// --- bad input --------------------------------------------------------------

type Annotations<'a> = Vec<(&'a str, &'a str)>;

#[test]
fn bad_modules_fail_create_with_one_line_naming_the_file() {
    let Some(case) = case("wasm_bad_modules") else { return };
    // A text file under a wasm annotation, a truncated module, imports that
    // cannot be satisfied, no _start, an unsupported component world, a missing
    // module, and symlinks that lead out of the rootfs (to a real module).
    let truncated = case.work.path().join("truncated.wasm");
    let hello = std::fs::read(amphi_wasm_fixtures::path("hello.wasm")).unwrap();
    std::fs::write(&truncated, &hello[..hello.len() / 2]).unwrap();
    let cases: Vec<(&str, Annotations<'_>, Vec<&str>)> = vec![
        ("/etc/passwd", vec![("run.oci.handler", "wasm")], vec!["/etc/passwd"]),
        ("/wasm/missing-import.wasm", vec![], vec!["/wasm/missing-import.wasm"]),
        ("/wasm/no-start.wasm", vec![], vec!["/wasm/no-start.wasm"]),
        ("/wasm/unsupported-world.wasm", vec![], vec!["/wasm/unsupported-world.wasm"]),
        ("/wasm/nope.wasm", vec![("run.oci.handler", "wasm")], vec!["/wasm/nope.wasm"]),
        ("/wasm/escape-absolute.wasm", vec![("run.oci.handler", "wasm")], vec!["/wasm/escape-absolute.wasm"]),
        ("/wasm/escape-relative.wasm", vec![("run.oci.handler", "wasm")], vec!["/wasm/escape-relative.wasm"]),
        ("/mnt/truncated.wasm", vec![], vec!["/mnt/truncated.wasm"]),
    ];
    for (n, (module, annotations, words)) in cases.into_iter().enumerate() {
        let id = case.id(&format!("b{n}"));
        let bundle = case.bundle(&support::bundles().wasm, &id, |config| {
            config["process"]["args"] = json!([module]);
            let map: serde_json::Map<String, Value> =
                annotations.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect();
            config["annotations"] = Value::Object(map);
            config["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/mnt/truncated.wasm", "type": "bind", "source": truncated.to_str().unwrap(), "options": ["bind", "ro"]
            }));
        });
        let out = case
            .cmd(&[
                "--wasm-cache",
                case.work.path().join("cache").to_str().unwrap(),
                "create",
                "--bundle",
                bundle.dir().to_str().unwrap(),
                &id,
            ])
            .output()
            .unwrap();
        assert_one_line_error(&out, &words);
        assert!(!stderr(&out).contains("panicked"), "{}", describe(&out));
        case.assert_gone(&id);
    }
}
