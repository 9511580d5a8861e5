//! `linux.seccomp` through real containers: a chosen errno, a kill, and
//! containerd's default profile running ordinary programs.

use serde_json::{Value, json};

use crate::support::{self, describe, probe_report};

fn containerd_profile() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../runtime/src/seccomp/testdata/containerd-1.6.20-default.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("read containerd's profile")).expect("profile JSON")
}

#[test]
fn a_profile_makes_a_chosen_syscall_fail_with_a_chosen_errno() {
    let Some(case) = support::case("seccomp_errno") else { return };
    let id = case.id("c");
    let bundle = case.busybox_bundle(&id, &["/bin/sh", "-c", "mkdir /dev/shm/x; echo rc=$?"], |config| {
        config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}]
        });
    });
    let out = case.run(&["run", "--bundle", bundle.dir().to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", describe(&out));
    // errno 42 is ENOMSG: busybox names it in its error.
    assert!(String::from_utf8_lossy(&out.stderr).contains("No message of desired type"), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("rc=1"), "{}", describe(&out));
    case.assert_all_gone();
}

#[test]
fn a_kill_action_ends_the_container_with_sigsys() {
    let Some(case) = support::case("seccomp_kill") else { return };
    let id = case.id("c");
    let bundle = case.busybox_bundle(&id, &["/bin/mkdir", "/dev/shm/x"], |config| {
        config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]
        });
    });
    let out = case.run(&["run", "--bundle", bundle.dir().to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(128 + libc::SIGSYS), "{}", describe(&out));
    case.assert_all_gone();
}

#[test]
fn containerds_default_profile_runs_the_probe() {
    let Some(case) = support::case("seccomp_default") else { return };
    let id = case.id("c");
    let profile = containerd_profile();
    let bundle = case.probe_bundle(&id, &[], |config| config["linux"]["seccomp"] = profile);
    let out = case.run(&["run", "--bundle", bundle.dir().to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", describe(&out));
    let report = probe_report(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(report["seccomp"], 2, "the probe runs in filter mode: {report}");
    case.assert_all_gone();
}

#[test]
fn containerds_default_profile_lets_a_shell_work() {
    let Some(case) = support::case("seccomp_default_shell") else { return };
    let id = case.id("c");
    let profile = containerd_profile();
    let bundle = case.busybox_bundle(
        &id,
        &["/bin/sh", "-c", "ls / >/dev/null && echo ok; unshare -U true || echo denied"],
        |config| {
            config["linux"]["seccomp"] = profile;
        },
    );
    let out = case.run(&["run", "--bundle", bundle.dir().to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ok"), "{}", describe(&out));
    case.assert_all_gone();
}

#[test]
fn an_unknown_syscall_name_fails_create_and_names_it() {
    let Some(case) = support::case("seccomp_unknown") else { return };
    let id = case.id("c");
    let bundle = case.probe_bundle(&id, &[], |config| {
        config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["no_such_syscall"], "action": "SCMP_ACT_ERRNO"}]
        });
    });
    let out = case.create(&bundle, &id, &[]);
    if !support::runtime().is_amphi {
        // Documented exception: runc logs and ignores a syscall name it does not
        // know; amphi refuses a name that no architecture has.
        if out.status.success() {
            case.ok(&["delete", "--force", &id]);
        }
        case.assert_all_gone();
        return;
    }
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("linux.seccomp.syscalls[0].names[0]") && stderr.contains("no_such_syscall"), "{stderr}");
    case.assert_all_gone();
}
