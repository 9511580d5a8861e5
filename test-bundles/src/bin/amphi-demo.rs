//! `amphi-demo --amphi PATH --out DIR`: the demo that `.ci/demo` runs. It builds
//! the bundles and drives `amphi` as a user (or containerd) would, printing each
//! command and what it showed: a native container reporting what it sees from
//! inside, the create/start/kill/delete lifecycle, and wasm containers.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use amphi_test_bundles::{Bundles, build_all};
use serde_json::{Value, json};

struct Demo {
    amphi: PathBuf,
    root: PathBuf,
    out: PathBuf,
}

impl Demo {
    /// Prints `$ amphi ARGS`, runs it with stdout captured, prints its output.
    /// `create` hands its stdio to the container, which outlives the command: its
    /// output goes to a file instead of a pipe nobody would close.
    fn amphi(&self, args: &[&str]) -> Result<(String, i32), String> {
        say(&format!("\n\x1b[1m$ amphi {}\x1b[0m", args.join(" ")));
        let started = Instant::now();
        let mut cmd = Command::new(&self.amphi);
        cmd.arg("--root").arg(&self.root).args(args).stdin(Stdio::null());
        if args.iter().any(|a| *a == "create" || *a == "--detach") {
            let log = std::fs::File::create(self.out.join("container.out")).map_err(|e| e.to_string())?;
            let err = log.try_clone().map_err(|e| e.to_string())?;
            cmd.stdout(log).stderr(err);
        }
        let out = cmd.output().map_err(|e| format!("run {}: {e}", self.amphi.display()))?;
        let took = started.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let code = out.status.code().unwrap_or(-1);
        std::io::stderr().write_all(&out.stderr).ok();
        say(&format!("  (exit {code}, {:.1} ms)", took.as_secs_f64() * 1e3));
        Ok((stdout, code))
    }

    fn variant(&self, bundles: &Bundles, name: &str, edit: impl FnOnce(&mut Value)) -> Result<String, String> {
        let bundle = bundles.busybox.variant(&self.out.join(name), edit).map_err(|e| e.to_string())?;
        Ok(bundle.dir().to_string_lossy().into_owned())
    }

    fn wasm_variant(&self, bundles: &Bundles, name: &str, edit: impl FnOnce(&mut Value)) -> Result<String, String> {
        let bundle = bundles.wasm.variant(&self.out.join(name), edit).map_err(|e| e.to_string())?;
        Ok(bundle.dir().to_string_lossy().into_owned())
    }
}

fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

/// The interesting lines of the probe's report.
fn summarize(report: &Value) {
    let caps = |set: &str| {
        report["capabilities"][set]["names"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
            .unwrap_or_default()
    };
    let mounts: Vec<String> = report["mounts"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["mount_point"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    say(&format!("  pid {} (ppid {}), uid {} gid {}", report["pid"], report["ppid"], report["uid"], report["gid"]));
    say(&format!("  hostname {}, no_new_privs {}", report["hostname"], report["no_new_privs"]));
    say(&format!("  effective capabilities: {}", caps("effective")));
    say(&format!("  bounding capabilities: {}", caps("bounding")));
    say(&format!("  cgroup (in its own cgroup namespace): {}", report["cgroup"]));
    say(&format!("  RLIMIT_NOFILE {}", report["rlimits"]["RLIMIT_NOFILE"]));
    say(&format!("  {} mounts: {}", mounts.len(), mounts.join(" ")));
}

fn run(demo: &Demo, bundles: &Bundles) -> Result<(), String> {
    let (version, _) = demo.amphi(&["--version"])?;
    say(version.trim_end());

    // A native container: the probe reports what it sees from inside.
    let probe = bundles.probe.dir().to_string_lossy().into_owned();
    let (stdout, _) = demo.amphi(&["run", "--bundle", &probe, "demo-probe"])?;
    let report: Value = serde_json::from_str(stdout.trim()).map_err(|e| format!("probe report: {e}"))?;
    summarize(&report);

    // The lifecycle as containerd drives it, one command at a time.
    let sleeper = demo.variant(bundles, "sleeper", |c| c["process"]["args"] = json!(["/bin/sleep", "60"]))?;
    let pid_file = demo.out.join("sleeper.pid");
    demo.amphi(&["create", "--bundle", &sleeper, "--pid-file", &pid_file.to_string_lossy(), "demo-sleeper"])?;
    say(&demo.amphi(&["list"])?.0);
    demo.amphi(&["start", "demo-sleeper"])?;
    say(&demo.amphi(&["state", "demo-sleeper"])?.0);
    demo.amphi(&["kill", "demo-sleeper", "KILL"])?;
    std::thread::sleep(std::time::Duration::from_millis(50));
    demo.amphi(&["delete", "demo-sleeper"])?;
    say(&demo.amphi(&["list"])?.0);

    // A shell in a container; its exit status is the command's.
    let shell = demo.variant(bundles, "shell", |c| {
        c["process"]["args"] = json!(["/bin/sh", "-c", "echo hello from $(hostname); id; exit 3"])
    })?;
    let (stdout, code) = demo.amphi(&["run", "--bundle", &shell, "demo-shell"])?;
    say(stdout.trim_end());
    if code != 3 {
        return Err(format!("the shell container exited {code}, not 3"));
    }

    // Wasm: the same isolation, then wasmtime in-process instead of execve. The
    // first run compiles the module (at create) and caches it; the second loads
    // it from the cache.
    let cache = demo.out.join("wasm-cache");
    let _ = std::fs::remove_dir_all(&cache);
    let cache = cache.to_string_lossy().into_owned();
    let wasm = bundles.wasm.dir().to_string_lossy().into_owned();
    for (id, what) in [("demo-wasm-cold", "cold cache"), ("demo-wasm-warm", "warm cache")] {
        say(&format!("\n# a wasm module, {what}"));
        let (stdout, _) = demo.amphi(&["--wasm-cache", &cache, "run", "--bundle", &wasm, id])?;
        say(stdout.trim_end());
    }
    let component =
        demo.wasm_variant(bundles, "component", |c| c["process"]["args"] = json!(["/wasm/hello-component.wasm"]))?;
    say("\n# a wasm component (WASI 0.2)");
    let (stdout, _) = demo.amphi(&["--wasm-cache", &cache, "run", "--bundle", &component, "demo-component"])?;
    say(stdout.trim_end());
    let exit = demo.wasm_variant(bundles, "exit", |c| c["process"]["args"] = json!(["/wasm/exit-code.wasm", "42"]))?;
    say("\n# a wasm exit status is the container's");
    let (stdout, code) = demo.amphi(&["--wasm-cache", &cache, "run", "--bundle", &exit, "demo-exit"])?;
    say(stdout.trim_end());
    if code != 42 {
        return Err(format!("the wasm container exited {code}, not 42"));
    }

    // Mixed: a native tool exec'd into a running wasm container.
    let looping =
        demo.wasm_variant(bundles, "looping", |c| c["process"]["args"] = json!(["/wasm/loop-forever.wasm"]))?;
    say("\n# a native tool exec'd into a running wasm container");
    demo.amphi(&["--wasm-cache", &cache, "run", "--detach", "--bundle", &looping, "demo-loop"])?;
    let (stdout, _) = demo.amphi(&["exec", "demo-loop", "/bin/ps"])?;
    say(stdout.trim_end());
    demo.amphi(&["kill", "demo-loop", "TERM"])?;
    std::thread::sleep(std::time::Duration::from_millis(50));
    demo.amphi(&["delete", "demo-loop"])?;
    service(demo, bundles, &cache)?;
    say(&demo.amphi(&["--wasm-cache", &cache, "wasm-cache", "list"])?.0);
    Ok(())
}

/// A wasm service: listening from `create`, a fresh instance per request,
/// reached inside the container's network namespace, stopped by SIGTERM.
fn service(demo: &Demo, bundles: &Bundles, cache: &str) -> Result<(), String> {
    let service =
        demo.wasm_variant(bundles, "service", |c| c["process"]["args"] = json!(["/wasm/hello-service.wasm"]))?;
    say("\n# a wasm service (wasi:http/proxy), listening on 0.0.0.0:8080 in its network namespace");
    demo.amphi(&["--wasm-cache", cache, "run", "--detach", "--bundle", &service, "demo-service"])?;
    let (state, _) = demo.amphi(&["state", "demo-service"])?;
    let state: Value = serde_json::from_str(&state).map_err(|e| format!("amphi state: {e}"))?;
    let netns = format!("--net=/proc/{}/ns/net", state["pid"]);
    let shell = |args: &[&str]| -> Result<String, String> {
        say(&format!("\n\x1b[1m$ nsenter {netns} {}\x1b[0m", args.join(" ")));
        let out = Command::new("nsenter").arg(&netns).args(args).output().map_err(|e| format!("run nsenter: {e}"))?;
        if !out.status.success() {
            return Err(format!("{} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    shell(&["ip", "link", "set", "lo", "up"])?;
    let answer = shell(&["curl", "-s", "-i", "-H", "x-echo: from the demo", "http://127.0.0.1:8080/"])?;
    say(answer.trim_end());
    if !answer.contains("hello from a wasm service") {
        return Err("the wasm service did not answer".to_owned());
    }
    demo.amphi(&["kill", "demo-service", "TERM"])?;
    // In-flight requests finish, then the init exits 0: wait for that quietly.
    for _ in 0..100 {
        let state = Command::new(&demo.amphi).arg("--root").arg(&demo.root).args(["state", "demo-service"]).output();
        if state.is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("\"stopped\"")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    demo.amphi(&["delete", "demo-service"])?;
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (mut amphi, mut out) = (None, None);
    while let Some(flag) = args.next() {
        let value = args.next().map(PathBuf::from);
        match flag.to_str() {
            Some("--amphi") => amphi = value,
            Some("--out") => out = value,
            _ => {
                say("usage: amphi-demo --amphi PATH --out DIR");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(amphi), Some(out)) = (amphi, out) else {
        say("usage: amphi-demo --amphi PATH --out DIR");
        return ExitCode::from(2);
    };
    let probe = amphi_test_bundles::probe_path_next_to(&amphi);
    let bundles = match build_all(&out.join("bundles"), &probe) {
        Ok(bundles) => bundles,
        Err(e) => {
            say(&format!("amphi-demo: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let demo = Demo { amphi, root: out.join("state"), out: out.clone() };
    let result = run(&demo, &bundles);
    // Whatever happened, leave no demo container behind.
    for id in [
        "demo-probe",
        "demo-sleeper",
        "demo-shell",
        "demo-wasm-cold",
        "demo-wasm-warm",
        "demo-component",
        "demo-exit",
        "demo-loop",
        "demo-service",
    ] {
        let _ = Command::new(&demo.amphi)
            .arg("--root")
            .arg(&demo.root)
            .args(["delete", "--force", id])
            .stderr(Stdio::null())
            .status();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("amphi-demo: {e}"));
            ExitCode::FAILURE
        }
    }
}
