//! The spec's `process` section: args, env and cwd, user, groups and umask,
//! rlimits and `oomScoreAdj`, `noNewPrivileges`, capability sets.

use std::fs;
use std::os::unix::fs::MetadataExt;

use serde_json::{Value, json};

use super::STAY;
use crate::support::{self, cap_names, proc_file, proc_status};

#[test]
fn process_args_env_and_cwd() {
    let Some(case) = support::case("args_env_cwd") else { return };
    let id = case.id("c");
    let env = ["PATH=/bin", "HOME=/home/nobody", "ONE=1", "SPACED=two words", "EMPTY="];
    let bundle = case.private_probe_bundle(&id, &["--stdout", "two words", "--sleep", "0"], |config| {
        config["process"]["env"] = json!(env);
        config["process"]["cwd"] = json!("/work/made/here");
    });
    let marker = "AMPHI_E2E_MARKER";
    let c = case.start_with(&bundle, &id, &[], &[(marker, "must-not-leak")]);
    let r = &c.report;
    let args = json!([amphi_test_bundles::PROBE_IN_ROOTFS, "--stdout", "two words", "--sleep", "0"]);
    assert_eq!(r["args"], args);
    let mut seen: Vec<String> =
        r["env"].as_array().expect("env").iter().map(|e| e.as_str().expect("text").to_owned()).collect();
    seen.sort();
    let mut wanted: Vec<String> = env.iter().map(|e| (*e).to_owned()).collect();
    wanted.sort();
    assert_eq!(seen, wanted, "the environment is the spec's, nothing more");
    assert!(!seen.iter().any(|e| e.starts_with(marker)));
    assert_eq!(r["cwd"], "/work/made/here");

    let split =
        |text: String| -> Vec<String> { text.split('\0').filter(|s| !s.is_empty()).map(str::to_owned).collect() };
    let mut environ = split(proc_file(c.pid, "environ"));
    environ.sort();
    assert_eq!(environ, wanted, "/proc/<pid>/environ");
    assert_eq!(json!(split(proc_file(c.pid, "cmdline"))), args, "/proc/<pid>/cmdline");
    let cwd = fs::metadata(format!("/proc/{}/cwd", c.pid)).expect("stat cwd");
    let made = fs::metadata(bundle.rootfs().join("work/made/here")).expect("the cwd was made in the rootfs");
    assert_eq!((cwd.dev(), cwd.ino()), (made.dev(), made.ino()));
    case.delete_force(&id);
    case.assert_all_gone();
}

#[test]
fn process_user_groups_and_umask() {
    let Some(case) = support::case("user_umask") else { return };
    let id = case.id("c");
    let bundle = case.probe_bundle(&id, STAY, |config| {
        config["process"]["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [1002, 1003], "umask": 0o027});
    });
    let c = case.start(&bundle, &id);
    let r = &c.report;
    for key in ["uid", "euid", "suid"] {
        assert_eq!(r[key], 1000, "{key}");
    }
    for key in ["gid", "egid", "sgid"] {
        assert_eq!(r[key], 1001, "{key}");
    }
    let mut groups: Vec<u64> =
        r["groups"].as_array().expect("groups").iter().map(|g| g.as_u64().expect("gid")).collect();
    groups.sort_unstable();
    assert_eq!(groups, [1002, 1003]);
    assert_eq!(r["umask"], 0o027);

    assert_eq!(proc_status(c.pid, "Uid").split_whitespace().collect::<Vec<_>>(), ["1000"; 4]);
    assert_eq!(proc_status(c.pid, "Gid").split_whitespace().collect::<Vec<_>>(), ["1001"; 4]);
    let mut outside: Vec<String> = proc_status(c.pid, "Groups").split_whitespace().map(str::to_owned).collect();
    outside.sort();
    assert_eq!(outside, ["1002", "1003"]);
    assert_eq!(proc_status(c.pid, "Umask"), "0027");
    case.delete_force(&id);
    case.assert_all_gone();
}

/// A line of `/proc/<pid>/limits` as (soft, hard).
fn limits_line(pid: i64, label: &str) -> (String, String) {
    let text = proc_file(pid, "limits");
    let line = text.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no {label} in {text}"));
    let words: Vec<&str> = line[label.len()..].split_whitespace().collect();
    (words[0].to_owned(), words[1].to_owned())
}

#[test]
fn rlimits_and_oom_score_adj() {
    let Some(case) = support::case("rlimits_oom") else { return };
    let id = case.id("c");
    let bundle = case.probe_bundle(&id, STAY, |config| {
        config["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 1000, "hard": 2000},
            {"type": "RLIMIT_CORE", "soft": 4096, "hard": 8192},
        ]);
        config["process"]["oomScoreAdj"] = json!(500);
    });
    let c = case.start(&bundle, &id);
    let r = &c.report;
    assert_eq!(r["rlimits"]["RLIMIT_NOFILE"], json!({"soft": 1000, "hard": 2000}));
    assert_eq!(r["rlimits"]["RLIMIT_CORE"], json!({"soft": 4096, "hard": 8192}));
    assert_eq!(r["oom_score_adj"], 500);
    assert_eq!(limits_line(c.pid, "Max open files"), ("1000".into(), "2000".into()));
    assert_eq!(limits_line(c.pid, "Max core file size"), ("4096".into(), "8192".into()));
    assert_eq!(proc_file(c.pid, "oom_score_adj").trim(), "500");
    case.delete_force(&id);
    case.assert_all_gone();
}

#[test]
fn no_new_privileges_true_and_false() {
    let Some(case) = support::case("no_new_privs") else { return };
    for value in [true, false] {
        let id = case.id(&format!("nnp{value}"));
        let bundle = case.probe_bundle(&id, STAY, |config| config["process"]["noNewPrivileges"] = json!(value));
        let c = case.start(&bundle, &id);
        assert_eq!(c.report["no_new_privs"], value);
        assert_eq!(proc_status(c.pid, "NoNewPrivs"), if value { "1" } else { "0" });
        case.delete_force(&id);
    }
    case.assert_all_gone();
}

fn caps(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    names.sort();
    names
}

/// Each capability set the probe reports matches `/proc/<pid>/status`.
fn assert_sets_match_outside(pid: i64, report: &Value) {
    for (field, set) in [
        ("CapInh", "inheritable"),
        ("CapPrm", "permitted"),
        ("CapEff", "effective"),
        ("CapBnd", "bounding"),
        ("CapAmb", "ambient"),
    ] {
        assert_eq!(report["capabilities"][set]["hex"], proc_status(pid, field).as_str(), "{set}");
    }
}

#[test]
fn capability_sets_of_root() {
    let Some(case) = support::case("caps_root") else { return };
    let id = case.id("c");
    let all = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETUID"];
    let inheritable = ["CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let ambient = ["CAP_NET_BIND_SERVICE"];
    let bundle = case.probe_bundle(&id, STAY, |config| {
        config["process"]["capabilities"] = json!({
            "bounding": all, "effective": all, "permitted": all, "inheritable": inheritable, "ambient": ambient,
        });
    });
    let c = case.start(&bundle, &id);
    let r = &c.report;
    for set in ["bounding", "effective", "permitted"] {
        assert_eq!(cap_names(r, set), caps(&all), "{set}");
    }
    assert_eq!(cap_names(r, "inheritable"), caps(&inheritable));
    assert_eq!(cap_names(r, "ambient"), caps(&ambient));
    assert_sets_match_outside(c.pid, r);
    case.delete_force(&id);
    case.assert_all_gone();
}

#[test]
fn capability_sets_of_a_user_keep_the_ambient_ones() {
    let Some(case) = support::case("caps_user") else { return };
    let id = case.id("c");
    let bounding = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"];
    let permitted = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let inheritable = ["CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let ambient = ["CAP_NET_BIND_SERVICE"];
    let bundle = case.probe_bundle(&id, STAY, |config| {
        config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        config["process"]["capabilities"] = json!({
            "bounding": bounding, "effective": permitted, "permitted": permitted,
            "inheritable": inheritable, "ambient": ambient,
        });
    });
    let c = case.start(&bundle, &id);
    let r = &c.report;
    assert_eq!(r["uid"], 1000);
    assert_eq!(cap_names(r, "bounding"), caps(&bounding));
    assert_eq!(cap_names(r, "inheritable"), caps(&inheritable));
    // A process that is not root executes a file without capabilities: what it
    // keeps is its ambient set, in permitted and effective alike.
    for set in ["ambient", "permitted", "effective"] {
        assert_eq!(cap_names(r, set), caps(&ambient), "{set}");
    }
    assert_sets_match_outside(c.pid, r);
    case.delete_force(&id);
    case.assert_all_gone();
}
