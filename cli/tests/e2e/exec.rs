//! `exec`: a new process joins every namespace and the cgroup of a running
//! container, as the container's process or as `--process` describes it.

use std::process::Stdio;

use serde_json::json;

use crate::support::{self, Case, describe, probe_report};

/// A running busybox container whose init sleeps, with a non-root user and a
/// user namespace when `userns` is set.
fn running(case: &Case, suffix: &str, userns: bool) -> (String, i64) {
    let id = case.id(suffix);
    let bundle = case.bundle(&support::bundles().wasm, &id, |config| {
        config["process"]["args"] = json!(["/bin/sleep", "1000"]);
        config["process"]["env"] = json!(["PATH=/bin", "FROM_SPEC=1"]);
        if userns {
            config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
            config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        }
    });
    let out = case.create(&bundle, &id, &[]);
    assert!(out.status.success(), "create: {}", describe(&out));
    case.ok(&["start", &id]);
    let pid = case.state(&id)["pid"].as_i64().unwrap();
    (id, pid)
}

#[test]
fn exec_joins_every_namespace_and_the_cgroup() {
    let Some(case) = support::case("exec_namespaces") else { return };
    for userns in [false, true] {
        let (id, init) = running(&case, if userns { "u" } else { "n" }, userns);
        let pid_file = case.work.path().join(format!("exec-{userns}.pid"));
        let out = case
            .cmd(&["exec", "--detach", "--pid-file", pid_file.to_str().unwrap(), &id, "/bin/sleep", "1000"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        // (A detached process keeps the stdio it was given: no pipes here.)
        assert!(out.success());
        let pid: i64 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
        for ns in ["user", "mnt", "pid", "net", "ipc", "uts", "cgroup"] {
            let theirs = std::fs::read_link(format!("/proc/{init}/ns/{ns}")).unwrap();
            let exec = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
            assert_eq!(theirs, exec, "exec'd process is not in the container's {ns} namespace");
        }
        // Every hierarchy, v1 and cgroup2 alike: the init and the exec'd
        // process each joined all of them by themselves.
        for member in [init, pid] {
            let cgroup = std::fs::read_to_string(format!("/proc/{member}/cgroup")).unwrap();
            assert!(cgroup.lines().all(|l| l.ends_with(&Case::cgroup_path(&id))), "{member}: {cgroup}");
        }
        // Its root is the container's: same file as the init sees.
        let root = std::fs::read_link(format!("/proc/{pid}/root")).unwrap();
        assert_eq!(root, std::fs::read_link(format!("/proc/{init}/root")).unwrap());
        if userns {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
            assert!(status.lines().any(|l| l.starts_with("Uid:") && l.contains("100000")), "{status}");
        }
        case.ok(&["delete", "--force", &id]);
        // The exec'd process dies with the container's pid namespace.
        assert!(
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z ")),
            "exec'd process {pid} outlived its container"
        );
    }
    case.assert_all_gone();
}

#[test]
fn exec_exit_status_is_the_processes() {
    let Some(case) = support::case("exec_status") else { return };
    let (id, _) = running(&case, "c", false);
    for code in [0, 5, 130] {
        let out = case.run(&["exec", &id, "/bin/sh", "-c", &format!("exit {code}")]);
        assert_eq!(out.status.code(), Some(code), "{}", describe(&out));
    }
    let out = case.run(&["exec", &id, "/bin/sh", "-c", "echo out; echo err >&2"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    case.ok(&["delete", "--force", &id]);
    case.assert_all_gone();
}

#[test]
fn exec_flags_shape_the_process() {
    let Some(case) = support::case("exec_flags") else { return };
    let (id, _) = running(&case, "c", false);
    let out = case.run(&[
        "exec",
        "--env",
        "EXTRA=2",
        "--cwd",
        "/tmp",
        "--user",
        "1000:1000",
        "--additional-gids",
        "7",
        "--no-new-privs",
        &id,
        "/bin/amphi-probe",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let report = probe_report(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(report["uid"], 1000);
    assert_eq!(report["gid"], 1000);
    assert_eq!(report["groups"], json!([7]));
    assert_eq!(report["cwd"], "/tmp");
    assert_eq!(report["no_new_privs"], true);
    let env: Vec<&str> = report["env"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert!(env.contains(&"FROM_SPEC=1") && env.contains(&"EXTRA=2"), "the container's env plus --env: {env:?}");
    // --cap adds to every set.
    let out = case.run(&["exec", "--cap", "CAP_NET_ADMIN", &id, "/bin/amphi-probe"]);
    let report = probe_report(&String::from_utf8_lossy(&out.stdout));
    for set in ["bounding", "effective", "permitted"] {
        let names = report["capabilities"][set]["names"].to_string();
        assert!(names.contains("CAP_NET_ADMIN"), "{set}: {names}");
    }
    case.ok(&["delete", "--force", &id]);
    case.assert_all_gone();
}

#[test]
fn exec_process_file_as_containerd_passes_it() {
    let Some(case) = support::case("exec_process_file") else { return };
    let (id, _) = running(&case, "c", false);
    let process = case.work.path().join("process.json");
    std::fs::write(
        &process,
        json!({
            "terminal": false, "user": {"uid": 0, "gid": 0}, "cwd": "/",
            "args": ["/bin/sh", "-c", "echo $ONLY; exit 3"], "env": ["ONLY=from-process-file"],
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
            "noNewPrivileges": true
        })
        .to_string(),
    )
    .unwrap();
    let out = case.run(&["exec", "--process", process.to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "from-process-file");
    case.ok(&["delete", "--force", &id]);
    case.assert_all_gone();
}

/// `exec --process` puts its process through the rules `create` applies: a
/// process `create` refuses is refused by `exec` too, in the same words, naming
/// the `--process` file.
#[test]
fn exec_process_file_that_create_would_refuse() {
    let Some(case) = support::case("exec_process_refused") else { return };
    let (id, _) = running(&case, "c", false);
    // Runs as it is, but for an env entry that is not KEY=VALUE.
    let process = json!({
        "terminal": false, "user": {"uid": 0, "gid": 0}, "cwd": "/",
        "args": ["/bin/true"], "env": ["PATH=/bin", "NOEQUALS"]
    });
    let file = case.work.path().join("process.json");
    std::fs::write(&file, process.to_string()).unwrap();
    let exec = case.run(&["exec", "--process", file.to_str().unwrap(), &id]);
    assert!(!exec.status.success(), "exec of a process create refuses succeeded: {}", describe(&exec));
    let bad = case.id("bad");
    let bundle = case.bundle(&support::bundles().wasm, &bad, |config| config["process"] = process);
    let create = case.create(&bundle, &bad, &[]);
    assert!(!create.status.success(), "create: {}", describe(&create));
    case.assert_gone(&bad);
    if support::runtime().is_amphi {
        let (exec_err, create_err) = (String::from_utf8_lossy(&exec.stderr), String::from_utf8_lossy(&create.stderr));
        assert_eq!(exec_err.lines().count(), 1, "{exec_err}");
        // The same rule in the same words, each naming its own file.
        let exec_rule = exec_err.trim().strip_prefix(&format!("amphi: --process {}: ", file.display()));
        let create_rule = create_err.trim().strip_prefix("amphi: config.json: ");
        assert!(
            exec_rule.is_some_and(|r| r.starts_with(r#"process.env[1]: "NOEQUALS" is not KEY=VALUE"#)),
            "{exec_err}"
        );
        assert_eq!(exec_rule, create_rule, "exec and create word the same rule differently: {exec_err} / {create_err}");
    }
    assert_eq!(case.status(&id), "running", "the container was disturbed");
    case.ok(&["delete", "--force", &id]);
    case.assert_all_gone();
}

#[test]
fn exec_into_a_missing_or_stopped_container_fails() {
    let Some(case) = support::case("exec_bad") else { return };
    let missing = case.id("missing");
    let out = case.run(&["exec", &missing, "/bin/true"]);
    assert!(!out.status.success());
    let (id, _) = running(&case, "c", false);
    // A --process file that is not a Process.
    let bad = case.work.path().join("bad.json");
    std::fs::write(&bad, b"{\"args\": 7}").unwrap();
    let out = case.run(&["exec", "--process", bad.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    if support::runtime().is_amphi {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("--process") && err.contains("bad.json"), "{err}");
    }
    // A missing binary is named.
    let out = case.run(&["exec", &id, "/bin/nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/bin/nope"), "{}", describe(&out));
    // The container is untouched by all of it.
    assert_eq!(case.status(&id), "running");
    case.ok(&["kill", &id, "KILL"]);
    case.wait_status(&id, "stopped");
    let out = case.run(&["exec", &id, "/bin/true"]);
    assert!(!out.status.success(), "exec into a stopped container: {}", describe(&out));
    case.ok(&["delete", &id]);
    case.assert_all_gone();
}

/// A seccomp profile that answers `clone3` with ENOSYS, as Docker's default
/// profile does for the containers amphi may itself run in, loaded into the
/// command's process right before it runs amphi.
fn without_clone3(cmd: &mut std::process::Command) {
    let profile: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS}]
    }))
    .expect("the profile parses");
    let plan = amphi_runtime::SeccompPlan::new(&profile).expect("the profile compiles");
    amphi_runtime::load_before_exec(&plan, cmd);
}

#[test]
fn without_clone3_the_container_and_exec_still_join_every_cgroup() {
    // amphi clones its stages into the container's cgroup2 directory with
    // clone3; where clone3 is refused it clones the old way and places them.
    let Some(case) = support::case("exec_no_clone3") else { return };
    for userns in [false, true] {
        let id = case.id(if userns { "u" } else { "n" });
        let bundle = case.bundle(&support::bundles().wasm, &id, |config| {
            config["process"]["args"] = json!(["/bin/sleep", "1000"]);
            if userns {
                config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
                config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
                config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            }
        });
        let err = std::fs::File::create(case.work.path().join(format!("{id}.err"))).unwrap();
        let mut create = case.cmd(&["create", "--bundle", bundle.dir().to_str().unwrap(), &id]);
        create.stdin(Stdio::null()).stdout(Stdio::null()).stderr(err);
        without_clone3(&mut create);
        assert!(create.status().unwrap().success(), "create without clone3");
        case.ok(&["start", &id]);
        let pid_file = case.work.path().join(format!("{id}.pid"));
        let mut exec =
            case.cmd(&["exec", "--detach", "--pid-file", pid_file.to_str().unwrap(), &id, "/bin/sleep", "1000"]);
        exec.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        without_clone3(&mut exec);
        assert!(exec.status().unwrap().success(), "exec without clone3");
        let init = case.state(&id)["pid"].as_i64().unwrap();
        let exec_pid: i64 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
        for member in [init, exec_pid] {
            let cgroup = std::fs::read_to_string(format!("/proc/{member}/cgroup")).unwrap();
            assert!(cgroup.lines().all(|l| l.ends_with(&Case::cgroup_path(&id))), "{member}: {cgroup}");
        }
        case.ok(&["delete", "--force", &id]);
    }
    case.assert_all_gone();
}
