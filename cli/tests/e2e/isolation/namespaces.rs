//! Namespaces: new ones differ from the host's, joined ones are the ones
//! named (a `/proc` link or a bind-mounted file), the user namespace maps ids,
//! and what lives in a namespace is the container's own (hostname,
//! domainname, sysctls).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{STAY, with_checks};
use crate::support::{self, Case, check, describe, ns_link, proc_file, proc_status, runtime};

/// The namespaces every bundle asks for: (spec type, `/proc/<pid>/ns` name).
const NAMESPACES: [(&str, &str); 6] =
    [("pid", "pid"), ("network", "net"), ("ipc", "ipc"), ("uts", "uts"), ("mount", "mnt"), ("cgroup", "cgroup")];

fn namespaces_mut(config: &mut Value) -> &mut Vec<Value> {
    config["linux"]["namespaces"].as_array_mut().expect("linux.namespaces")
}

fn host_ns(name: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{name}")).expect("readlink host namespace").to_string_lossy().into_owned()
}

#[test]
fn namespaces_are_new_and_differ_from_the_hosts() {
    let Some(case) = support::case("namespaces_new") else { return };
    let id = case.id("c");
    let c = case.start(&case.probe_bundle(&id, STAY, |_| {}), &id);
    for (kind, name) in NAMESPACES {
        let outside = ns_link(c.pid, name);
        assert_eq!(c.report["namespaces"][name], outside.as_str(), "{kind}: inside and outside disagree");
        assert_ne!(outside, host_ns(name), "{kind}: the container is in the host's namespace");
    }
    assert_eq!(c.report["namespaces"]["pid_for_children"], c.report["namespaces"]["pid"]);
    assert_eq!(c.report["pid"], 1, "the probe is the pid namespace's init");
    // No user namespace was asked for: the host's.
    assert_eq!(ns_link(c.pid, "user"), host_ns("user"));
    case.delete_force(&id);
    case.assert_all_gone();
}

#[test]
fn pid_namespace_shows_only_the_containers_processes() {
    let Some(case) = support::case("pid_namespace") else { return };
    let id = case.id("c");
    // ps once the background sleep has become sleep (rather than a forked sh).
    let script = "sleep 1000 & until ps -o comm | grep -qx sleep; do :; done; ps -o pid,comm; echo listed; wait";
    let bundle = case.busybox_bundle(&id, &["sh", "-c", script], |_| {});
    assert!(case.create(&bundle, &id, &[]).status.success());
    case.ok(&["start", &id]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !case.container_stdout(&id).contains("listed") {
        assert!(Instant::now() < deadline, "no ps output: {:?}", case.container_stdout(&id));
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = case.container_stdout(&id);
    let seen: Vec<(String, String)> = output
        .lines()
        .filter_map(|l| {
            let (pid, comm) = l.trim().split_once(' ')?;
            pid.parse::<u32>().ok()?;
            Some((comm.trim().to_owned(), pid.to_owned()))
        })
        .collect();
    let mut comms: Vec<&str> = seen.iter().map(|(comm, _)| comm.as_str()).collect();
    comms.sort_unstable();
    assert_eq!(comms, ["ps", "sh", "sleep"], "only the container's processes: {output}");
    let pid_of = |name: &str| seen.iter().find(|(comm, _)| comm == name).map(|(_, pid)| pid.clone()).expect("listed");
    assert_eq!(pid_of("sh"), "1", "{output}");

    // Outside: the same processes under their host pids, each with its pid in the
    // container's namespace last in NSpid.
    let init = case.state(&id)["pid"].as_i64().expect("pid");
    let mut inner: Vec<(String, String)> = support::processes_in_cgroup(&Case::cgroup_path(&id))
        .into_iter()
        .map(|pid| {
            let nspid = proc_status(pid, "NSpid");
            (proc_status(pid, "Name"), nspid.split_whitespace().last().expect("NSpid").to_owned())
        })
        .collect();
    inner.sort();
    assert_eq!(inner, [("sh".to_owned(), "1".to_owned()), ("sleep".to_owned(), pid_of("sleep"))]);
    assert_eq!(proc_status(init, "NSpid").split_whitespace().collect::<Vec<_>>(), [init.to_string().as_str(), "1"]);
    case.delete_force(&id);
    case.assert_all_gone();
}

#[test]
#[expect(clippy::print_stderr, reason = "a skipped test says why")]
fn time_namespace_is_new() {
    let Some(case) = support::case("time_namespace") else { return };
    if !Path::new("/proc/self/ns/time").exists() {
        eprintln!("skipping: this kernel has no time namespaces");
        return;
    }
    // Exception: runc 1.1 predates the time namespace of runtime-spec 1.2 and
    // refuses the type; amphi implements it.
    if !runtime().is_amphi {
        eprintln!("skipping: {} does not know the time namespace", runtime().bin.display());
        return;
    }
    let id = case.id("c");
    let bundle = case.probe_bundle(&id, STAY, |config| namespaces_mut(config).push(json!({"type": "time"})));
    let c = case.start(&bundle, &id);
    for name in ["time", "time_for_children"] {
        let outside = ns_link(c.pid, name);
        assert_eq!(c.report["namespaces"][name], outside.as_str(), "{name}: inside and outside disagree");
        assert_ne!(outside, host_ns(name), "{name}: the container is in the host's time namespace");
    }
    case.delete_force(&id);
    case.assert_all_gone();
}

#[test]
fn joining_namespaces_by_path() {
    let Some(case) = support::case("joining_namespaces") else { return };
    let a = case.id("a");
    let b = case.id("b");
    let first = case.start(&case.probe_bundle(&a, STAY, |_| {}), &a);
    let joined = ["net", "ipc", "uts"];
    let bundle = case.probe_bundle(&b, STAY, |config| {
        for ns in namespaces_mut(config) {
            let name = match ns["type"].as_str() {
                Some("network") => "net",
                Some("ipc") => "ipc",
                Some("uts") => "uts",
                _ => continue,
            };
            ns["path"] = json!(format!("/proc/{}/ns/{name}", first.pid));
        }
        // The UTS namespace is the first container's, and so is its hostname.
        config.as_object_mut().expect("config").remove("hostname");
    });
    let second = case.start(&bundle, &b);
    for name in joined {
        let inode = ns_link(first.pid, name);
        assert_eq!(second.report["namespaces"][name], inode.as_str(), "{name}: not joined (inside)");
        assert_eq!(ns_link(second.pid, name), inode, "{name}: not joined (outside)");
    }
    for name in ["pid", "mnt", "cgroup"] {
        assert_ne!(ns_link(second.pid, name), ns_link(first.pid, name), "{name}: the second container should own one");
        assert_ne!(ns_link(second.pid, name), host_ns(name), "{name}: the host's");
    }
    assert_eq!(second.report["hostname"], amphi_test_bundles::PROBE_HOSTNAME, "the joined UTS namespace's hostname");
    case.delete_force(&b);
    case.assert_gone(&b);
    assert_eq!(case.status(&a), "running", "deleting the joiner disturbed the first container");
    case.delete_force(&a);
    case.assert_all_gone();
}

#[test]
fn user_namespace_maps_ids() {
    let Some(case) = support::case("user_namespace") else { return };
    let id = case.id("c");
    let args = with_checks(STAY, &[amphi_test_bundles::PROBE_IN_ROOTFS, "/proc/self/uid_map"]);
    let bundle = case.probe_bundle(&id, &args, |config| {
        namespaces_mut(config).push(json!({"type": "user"}));
        let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        config["linux"]["uidMappings"] = map.clone();
        config["linux"]["gidMappings"] = map;
    });
    let c = case.start(&bundle, &id);
    let r = &c.report;
    for key in ["uid", "euid", "suid", "gid", "egid", "sgid"] {
        assert_eq!(r[key], 0, "{key} inside");
    }
    // The rootfs belongs to the host's root, whom the namespace does not map.
    let probe = check(r, amphi_test_bundles::PROBE_IN_ROOTFS);
    assert_eq!((probe["uid"].as_u64(), probe["gid"].as_u64()), (Some(65534), Some(65534)), "{probe}");
    let inside_map: Vec<String> = check(r, "/proc/self/uid_map")["content"]
        .as_str()
        .expect("uid_map content")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(inside_map, ["0", "100000", "65536"]);

    assert_eq!(proc_status(c.pid, "Uid").split_whitespace().collect::<Vec<_>>(), ["100000"; 4]);
    assert_eq!(proc_status(c.pid, "Gid").split_whitespace().collect::<Vec<_>>(), ["100000"; 4]);
    for map in ["uid_map", "gid_map"] {
        let text = proc_file(c.pid, map);
        assert_eq!(text.split_whitespace().collect::<Vec<_>>(), ["0", "100000", "65536"], "{map}: {text:?}");
    }
    let user = ns_link(c.pid, "user");
    assert_eq!(r["namespaces"]["user"], user.as_str());
    assert_ne!(user, host_ns("user"));
    case.delete_force(&id);
    case.assert_all_gone();
}

/// `cat FILE` in some of `pid`'s namespaces (`nsenter` flags such as `-n`).
fn cat_in_namespaces(pid: i64, flags: &[&str], file: &str) -> String {
    let out = Command::new("nsenter")
        .arg("-t")
        .arg(pid.to_string())
        .args(flags)
        .args(["cat", file])
        .output()
        .expect("run nsenter");
    assert!(out.status.success(), "nsenter {flags:?} cat {file}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn hostname_domainname_and_sysctl() {
    let Some(case) = support::case("uts_sysctl") else { return };
    let id = case.id("c");
    let host_before = (
        fs::read_to_string("/proc/sys/kernel/hostname").expect("host hostname"),
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("host ip_forward"),
        fs::read_to_string("/proc/sys/kernel/shmmax").expect("host shmmax"),
    );
    let args = with_checks(STAY, &["/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/shmmax"]);
    let forward = if host_before.1.trim() == "1" { "0" } else { "1" };
    let bundle = case.probe_bundle(&id, &args, |config| {
        config["hostname"] = json!("iso-host");
        config["domainname"] = json!("iso.example");
        config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": forward, "kernel.shmmax": "123456789"});
    });
    let c = case.start(&bundle, &id);
    let r = &c.report;
    assert_eq!(r["hostname"], "iso-host");
    // Exception: runc 1.1 predates `domainname` (runtime-spec 1.1) and leaves it unset.
    let domainname = runtime().is_amphi;
    if domainname {
        assert_eq!(r["domainname"], "iso.example");
    }
    assert_eq!(check(r, "/proc/sys/net/ipv4/ip_forward")["content"], format!("{forward}\n"));
    assert_eq!(check(r, "/proc/sys/kernel/shmmax")["content"], "123456789\n");

    assert_eq!(cat_in_namespaces(c.pid, &["-u"], "/proc/sys/kernel/hostname"), "iso-host\n");
    if domainname {
        assert_eq!(cat_in_namespaces(c.pid, &["-u"], "/proc/sys/kernel/domainname"), "iso.example\n");
    }
    assert_eq!(cat_in_namespaces(c.pid, &["-n"], "/proc/sys/net/ipv4/ip_forward"), format!("{forward}\n"));
    assert_eq!(cat_in_namespaces(c.pid, &["-i"], "/proc/sys/kernel/shmmax"), "123456789\n");
    let host_after = (
        fs::read_to_string("/proc/sys/kernel/hostname").expect("host hostname"),
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("host ip_forward"),
        fs::read_to_string("/proc/sys/kernel/shmmax").expect("host shmmax"),
    );
    assert_eq!(host_before, host_after, "the container changed the host's settings");
    case.delete_force(&id);
    case.assert_all_gone();
}

#[test]
fn a_bind_mounted_namespace_file_can_be_joined() {
    // What CNI and Kubernetes hand a runtime: a network namespace kept alive by
    // a bind mount under /var/run/netns, not a /proc/<pid>/ns link.
    let Some(case) = support::case("netns_file") else { return };
    let name = format!("amphi-e2e-{}", std::process::id());
    let added = std::process::Command::new("ip").args(["netns", "add", &name]).status().expect("ip netns add");
    assert!(added.success());
    let path = format!("/var/run/netns/{name}");
    let inode = fs::metadata(&path).expect("the netns file").ino();
    let id = case.id("c");
    let bundle = case.probe_bundle(&id, &[], |config| {
        for ns in config["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = serde_json::Value::String(path.clone());
            }
        }
    });
    let out = case.run(&["run", "--bundle", bundle.dir().to_str().unwrap(), &id]);
    let _ = std::process::Command::new("ip").args(["netns", "delete", &name]).status();
    assert!(out.status.success(), "{}", describe(&out));
    let report = support::probe_report(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(report["namespaces"]["net"], format!("net:[{inode}]"), "{report}");
    case.assert_all_gone();
}
