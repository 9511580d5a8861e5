//! `HOME`: a process whose `process.env` has none gets the home of its uid from
//! the container's `/etc/passwd` (read inside the rootfs, never through a
//! symlink out of it), or `/`; a `HOME` the spec gives is kept. The same for a
//! process exec'd into the container. runc does all of this the same way.

use std::fs;
use std::path::Path;

use serde_json::{Value, json};

use crate::support::{self, Case, describe, probe_report};

/// Report, then sleep until killed.
const STAY: &[&str] = &["--sleep", "0"];

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nprobe:x:1000:1000:The Probe:/home/probe:/bin/sh\n";

/// The `HOME=` entries of a probe report's environment.
fn homes(report: &Value) -> Vec<String> {
    report["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(Value::as_str)
        .filter(|e| e.starts_with("HOME="))
        .map(str::to_owned)
        .collect()
}

/// A private-rootfs probe bundle for `id` running as `uid` with `env`, whose
/// rootfs `prepare` may fill first.
fn bundle(case: &Case, id: &str, uid: u32, env: &[&str], prepare: impl FnOnce(&Path)) -> amphi_test_bundles::Bundle {
    let rootfs = case.private_rootfs(id);
    prepare(&rootfs);
    case.probe_bundle(id, STAY, |config| {
        config["root"]["path"] = json!(rootfs);
        config["process"]["user"] = json!({"uid": uid, "gid": uid});
        config["process"]["env"] = json!(env);
    })
}

fn write_passwd(rootfs: &Path, text: &str) {
    fs::create_dir_all(rootfs.join("etc")).expect("mkdir etc");
    fs::write(rootfs.join("etc/passwd"), text).expect("write passwd");
}

/// The probe exec'd into `id` with `extra` exec flags: its report.
fn exec_probe(case: &Case, id: &str, extra: &[&str]) -> Value {
    let mut args = vec!["exec"];
    args.extend_from_slice(extra);
    args.extend([id, amphi_test_bundles::PROBE_IN_ROOTFS]);
    let out = case.run(&args);
    assert!(out.status.success(), "exec {args:?}: {}", describe(&out));
    probe_report(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn home_comes_from_the_containers_passwd_for_the_uid() {
    let Some(case) = support::case("home_passwd") else { return };
    let id = case.id("c");
    let bundle = bundle(&case, &id, 1000, &["PATH=/bin"], |rootfs| write_passwd(rootfs, PASSWD));
    let c = case.start(&bundle, &id);
    assert_eq!(c.report["uid"], 1000);
    assert_eq!(homes(&c.report), ["HOME=/home/probe"]);
    // exec: the exec'd process's own uid decides, and an env HOME is kept.
    assert_eq!(homes(&exec_probe(&case, &id, &[])), ["HOME=/home/probe"]);
    assert_eq!(homes(&exec_probe(&case, &id, &["--user", "0:0"])), ["HOME=/root"]);
    assert_eq!(homes(&exec_probe(&case, &id, &["--user", "4242:4242"])), ["HOME=/"], "no entry for the uid");
    assert_eq!(homes(&exec_probe(&case, &id, &["--env", "HOME=/chosen"])), ["HOME=/chosen"]);
    case.delete_force(&id);
    case.assert_all_gone();
}

#[test]
fn home_is_slash_without_a_passwd_and_a_given_home_is_kept() {
    let Some(case) = support::case("home_fallback") else { return };
    let id = case.id("none");
    let c = case.start(&bundle(&case, &id, 1000, &["PATH=/bin"], |_| {}), &id);
    assert_eq!(homes(&c.report), ["HOME=/"]);
    assert_eq!(homes(&exec_probe(&case, &id, &[])), ["HOME=/"]);
    case.delete_force(&id);

    let id = case.id("given");
    let env = ["PATH=/bin", "HOME=/from/the/spec"];
    let c = case.start(&bundle(&case, &id, 1000, &env, |rootfs| write_passwd(rootfs, PASSWD)), &id);
    assert_eq!(homes(&c.report), ["HOME=/from/the/spec"]);
    assert_eq!(homes(&exec_probe(&case, &id, &[])), ["HOME=/from/the/spec"]);
    case.delete_force(&id);
    case.assert_all_gone();
}

#[test]
fn a_passwd_symlinked_to_a_host_file_is_read_inside_the_rootfs() {
    // /etc/passwd is an absolute symlink to a host file that gives uid 1000 a
    // home of its own: the link is read against the rootfs, where that path
    // does not exist (HOME=/), until the container has a file there itself.
    let Some(case) = support::case("home_symlink") else { return };
    let id = case.id("c");
    let host_passwd = case.work.path().join("host-passwd");
    fs::write(&host_passwd, "probe:x:1000:1000::/home/on-the-host:/bin/sh\n").expect("write host passwd");
    let mut inside = None;
    let bundle = bundle(&case, &id, 1000, &["PATH=/bin"], |rootfs| {
        fs::create_dir_all(rootfs.join("etc")).expect("mkdir etc");
        std::os::unix::fs::symlink(&host_passwd, rootfs.join("etc/passwd")).expect("symlink");
        inside = Some(rootfs.join(host_passwd.strip_prefix("/").expect("absolute")));
    });
    let c = case.start(&bundle, &id);
    assert_eq!(homes(&c.report), ["HOME=/"], "the host's file was read");
    let inside = inside.expect("rootfs prepared");
    fs::create_dir_all(inside.parent().expect("parent")).expect("mkdir");
    fs::write(&inside, "probe:x:1000:1000::/home/inside:/bin/sh\n").expect("write the container's file");
    assert_eq!(homes(&exec_probe(&case, &id, &[])), ["HOME=/home/inside"]);
    case.delete_force(&id);
    case.assert_all_gone();
}
