//! Isolation, as the spec's `linux` and `process` sections ask for it: each test
//! looks from inside (the probe's report) and from outside (`/proc/<pid>/ns`,
//! `status`, `mountinfo`, `root/…`, the cgroup files), and ends by checking that
//! its containers left nothing behind.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{
    self, Case, MountLine, bundles, cap_names, check, describe, has_mount, holds, mount_at, mount_points, mountinfo,
    ns_link, proc_file, proc_status, runtime,
};

/// Report, then sleep until killed, so that the container can be seen from outside.
const STAY: &[&str] = &["--sleep", "0"];

/// The namespaces every bundle asks for: (spec type, `/proc/<pid>/ns` name).
const NAMESPACES: [(&str, &str); 6] =
    [("pid", "pid"), ("network", "net"), ("ipc", "ipc"), ("uts", "uts"), ("mount", "mnt"), ("cgroup", "cgroup")];

fn namespaces_mut(config: &mut Value) -> &mut Vec<Value> {
    config["linux"]["namespaces"].as_array_mut().expect("linux.namespaces")
}

fn mounts_mut(config: &mut Value) -> &mut Vec<Value> {
    config["mounts"].as_array_mut().expect("mounts")
}

fn host_ns(name: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{name}")).expect("readlink host namespace").to_string_lossy().into_owned()
}

/// `args` with `--check PATH` for each of `paths` added.
fn with_checks<'a>(args: &[&'a str], paths: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    for path in paths {
        all.extend(["--check", path]);
    }
    all
}

/// The mount seen from outside at `point` (the topmost).
fn outside_mount<'a>(mounts: &'a [MountLine], point: &str) -> &'a MountLine {
    mounts.iter().rev().find(|m| m.mount_point == point).unwrap_or_else(|| panic!("no mount at {point} outside"))
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

#[test]
fn mounts_in_order_with_their_options() {
    let Some(case) = support::case("mounts") else { return };
    let id = case.id("c");
    let work = case.work.path();
    let dir_src = work.join("bind-dir");
    let file_src = work.join("bind-file");
    let ro_src = work.join("ro-dir");
    let shared_src = work.join("shared-dir");
    for dir in [&dir_src, &ro_src, &shared_src] {
        fs::create_dir(dir).expect("mkdir");
    }
    fs::write(dir_src.join("hello"), "from the host").expect("write");
    fs::write(&file_src, "a bound file").expect("write");
    let rootfs = case.private_rootfs(&id);
    // The slave's source is the shared mount, reached through the rootfs as it is
    // before pivot_root. It must exist before the container does too, as a bind
    // source is checked before anything is mounted.
    fs::create_dir_all(rootfs.join("mnt/shared")).expect("mkdir");
    let tmpfs = |dest: &str, options: &[&str]| json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": options});
    let bind = |dest: &str, src: &Path, options: &[&str]| json!({"destination": dest, "type": "bind", "source": src, "options": options});
    let ours = vec![
        // (tmpfs shows no mode of 1777: that is its default.)
        tmpfs("/mnt", &["nosuid", "nodev", "noexec", "mode=1755", "size=64k"]),
        bind("/mnt/dir", &dir_src, &["bind"]),
        bind("/mnt/file", &file_src, &["bind", "ro"]),
        bind("/mnt/ro", &ro_src, &["bind", "ro"]),
        bind("/mnt/rbind", Path::new("/sys/fs/cgroup"), &["rbind", "ro"]),
        bind("/mnt/norec", Path::new("/sys/fs/cgroup"), &["bind", "ro"]),
        tmpfs("/mnt/strict", &["strictatime"]),
        tmpfs("/mnt/relatime", &["relatime"]),
        tmpfs("/mnt/noatime", &["noatime"]),
        bind("/mnt/shared", &shared_src, &["rbind", "rshared"]),
        // A bind of the shared mount: a slave of its peer group.
        bind("/mnt/slave", &rootfs.join("mnt/shared"), &["rbind", "rslave"]),
        tmpfs("/mnt/twice", &["size=32k"]),
        tmpfs("/mnt/twice", &["size=48k"]),
    ];
    let destinations: Vec<String> =
        ours.iter().map(|m| m["destination"].as_str().expect("destination").to_owned()).collect();
    let mut args = with_checks(STAY, &["/mnt/dir/hello", "/mnt/file"]);
    args.extend(["--write", "/mnt/dir/written:from inside", "--write", "/mnt/ro/denied:no"]);
    let bundle = case.probe_bundle(&id, &args, |config| {
        config["root"]["path"] = json!(rootfs);
        mounts_mut(config).extend(ours);
    });
    let c = case.start(&bundle, &id);
    let r = &c.report;
    let all = mount_points(r);

    // In order: each mount lands on the one before it, the later of two at one
    // place on top.
    let points: Vec<&str> =
        r["mounts"].as_array().expect("mounts").iter().filter_map(|m| m["mount_point"].as_str()).collect();
    let first_index = |p: &str| points.iter().position(|q| *q == p).unwrap_or_else(|| panic!("no {p} in {all}"));
    let order: Vec<usize> = destinations.iter().map(|d| first_index(d)).collect();
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "mounts out of the spec's order: {all}");
    let mnt = mount_at(r, "/mnt");
    for dest in ["/mnt/dir", "/mnt/file", "/mnt/ro", "/mnt/strict", "/mnt/shared"] {
        assert_eq!(mount_at(r, dest)["parent_id"], mnt["mount_id"], "{dest} is not on the /mnt tmpfs");
    }
    let twice: Vec<&Value> =
        r["mounts"].as_array().expect("mounts").iter().filter(|m| m["mount_point"] == "/mnt/twice").collect();
    assert_eq!(twice.len(), 2, "{all}");
    assert!(holds(&twice[1]["super_options"], "size=48k"), "the later mount is on top: {twice:?}");

    // tmpfs with flags and data.
    assert_eq!(mnt["fs_type"], "tmpfs");
    for flag in ["nosuid", "nodev", "noexec"] {
        assert!(holds(&mnt["mount_options"], flag), "/mnt lacks {flag}: {mnt}");
    }
    for data in ["mode=1755", "size=64k"] {
        assert!(holds(&mnt["super_options"], data), "/mnt lacks {data}: {mnt}");
    }

    // bind of a directory, read and written through.
    assert!(mount_at(r, "/mnt/dir")["root"].as_str().is_some_and(|root| root.ends_with("/bind-dir")));
    assert_eq!(check(r, "/mnt/dir/hello")["content"], "from the host");
    assert_eq!(fs::read_to_string(dir_src.join("written")).expect("the write went through"), "from inside");
    // bind of a file, read-only.
    let file = check(r, "/mnt/file");
    assert_eq!(
        (&file["type"], &file["content"], &file["writable"]),
        (&json!("file"), &json!("a bound file"), &json!(false))
    );
    assert!(holds(&mount_at(r, "/mnt/file")["mount_options"], "ro"));
    // read-only bind: the write fails with EROFS and leaves nothing.
    let writes = r["writes"].as_array().expect("writes");
    let denied = writes.iter().find(|w| w["path"] == "/mnt/ro/denied").expect("the write to /mnt/ro");
    assert_eq!(denied["ok"], false, "{denied}");
    assert!(denied["error"].as_str().is_some_and(|e| e.contains("Read-only file system")), "{denied}");
    assert!(!ro_src.join("denied").exists());
    assert!(holds(&mount_at(r, "/mnt/ro")["mount_options"], "ro"));

    // rbind takes the mounts below the source, bind does not.
    assert!(has_mount(r, "/mnt/rbind/memory") || has_mount(r, "/mnt/rbind/unified"), "rbind lost the submounts: {all}");
    assert!(!all.split(' ').any(|p| p.starts_with("/mnt/norec/")), "bind took submounts: {all}");

    // atime flags.
    let strict = &mount_at(r, "/mnt/strict")["mount_options"];
    assert!(!holds(strict, "relatime") && !holds(strict, "noatime"), "strictatime: {strict}");
    assert!(holds(&mount_at(r, "/mnt/relatime")["mount_options"], "relatime"));
    assert!(holds(&mount_at(r, "/mnt/noatime")["mount_options"], "noatime"));

    // Propagation: a shared peer group and a slave of it.
    let optional = |m: &Value| -> Vec<String> {
        m["optional"].as_array().expect("optional").iter().map(|o| o.as_str().expect("field").to_owned()).collect()
    };
    let shared = optional(mount_at(r, "/mnt/shared"));
    let group =
        shared.iter().find_map(|o| o.strip_prefix("shared:")).unwrap_or_else(|| panic!("/mnt/shared: {shared:?}"));
    let slave = optional(mount_at(r, "/mnt/slave"));
    assert!(slave.contains(&format!("master:{group}")), "/mnt/slave is no slave of shared:{group}: {slave:?}");
    assert!(!slave.iter().any(|o| o.starts_with("shared:")), "/mnt/slave: {slave:?}");

    // The same from outside.
    let outside = mountinfo(c.pid);
    for dest in &destinations {
        assert!(outside.iter().any(|m| &m.mount_point == dest), "{dest} is not in /proc/{}/mountinfo", c.pid);
    }
    assert!(outside_mount(&outside, "/mnt/shared").optional.contains(&format!("shared:{group}")));
    assert!(outside_mount(&outside, "/mnt/slave").optional.contains(&format!("master:{group}")));
    let outside_mnt = outside_mount(&outside, "/mnt");
    assert_eq!(outside_mnt.fs_type, "tmpfs");
    assert!(outside_mnt.super_options.contains(&"mode=1755".to_owned()));
    assert_eq!(outside_mount(&outside, "/mnt/dir").parent_id, outside_mnt.mount_id, "/mnt/dir outside");
    assert_eq!(
        fs::read_to_string(format!("/proc/{}/root/mnt/dir/hello", c.pid)).expect("read through /proc/<pid>/root"),
        "from the host"
    );
    case.delete_force(&id);
    case.assert_all_gone();
}

#[test]
fn filesystem_data_options_are_passed_on_and_ignored_by_binds() {
    // An option amphi does not know is the filesystem's: tmpfs takes nr_inodes
    // and huge; a bind makes no filesystem and ignores it (as runc does), while
    // its flags still count.
    let Some(case) = support::case("mount_data_options") else { return };
    let id = case.id("c");
    let src = case.work.path().join("bind-src");
    fs::create_dir(&src).expect("mkdir");
    let bundle = case.private_probe_bundle(&id, STAY, |config| {
        mounts_mut(config).extend([
            json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
                   "options": ["nosuid", "nr_inodes=1k", "huge=never", "mode=750", "size=64k"]}),
            json!({"destination": "/mnt/bound", "type": "bind", "source": src,
                   "options": ["rbind", "ro", "nr_inodes=1k", "noswap"]}),
        ]);
    });
    let c = case.start(&bundle, &id);
    let mnt = mount_at(&c.report, "/mnt");
    assert_eq!(mnt["fs_type"], "tmpfs");
    assert!(holds(&mnt["mount_options"], "nosuid"), "{mnt}");
    for data in ["nr_inodes=1024", "mode=750", "size=64k"] {
        assert!(holds(&mnt["super_options"], data), "/mnt lacks {data}: {mnt}");
    }
    let bound = mount_at(&c.report, "/mnt/bound");
    assert!(holds(&bound["mount_options"], "ro"), "{bound}");
    assert!(!holds(&bound["super_options"], "nr_inodes=1024"), "a bind changed its source's filesystem: {bound}");
    let outside = mountinfo(c.pid);
    let outside = &outside_mount(&outside, "/mnt").super_options;
    assert!(outside.contains(&"nr_inodes=1024".to_owned()), "outside: {outside:?}");
    case.delete_force(&id);
    case.assert_all_gone();
}

#[test]
fn rootfs_propagation_shared_and_private() {
    let Some(case) = support::case("rootfs_propagation") else { return };
    for propagation in ["shared", "private"] {
        // Exception: runc 1.1 applies rootfsPropagation to the mount namespace
        // before it binds the rootfs under a parent it makes private, so its "/"
        // ends up private whatever the spec says; the spec says the value is the
        // rootfs's propagation, and amphi makes it so.
        if propagation == "shared" && !runtime().is_amphi {
            continue;
        }
        let id = case.id(propagation);
        let bundle = case.probe_bundle(&id, STAY, |config| config["linux"]["rootfsPropagation"] = json!(propagation));
        let c = case.start(&bundle, &id);
        let optional = &mount_at(&c.report, "/")["optional"];
        let shared =
            optional.as_array().expect("optional").iter().any(|o| o.as_str().is_some_and(|o| o.starts_with("shared:")));
        assert_eq!(shared, propagation == "shared", "rootfsPropagation {propagation}: / has {optional}");
        let outside = outside_mount(&mountinfo(c.pid), "/").optional.iter().any(|o| o.starts_with("shared:"));
        assert_eq!(outside, propagation == "shared", "rootfsPropagation {propagation} outside");
        case.delete_force(&id);
    }
    case.assert_all_gone();
}

#[test]
fn default_mounts_proc_sysfs_devpts_mqueue_and_cgroup() {
    let Some(case) = support::case("default_mounts") else { return };
    let id = case.id("c");
    let c = case.start(&case.probe_bundle(&id, STAY, |_| {}), &id);
    let r = &c.report;
    let all = mount_points(r);
    for (point, fs_type) in [
        ("/proc", "proc"),
        ("/sys", "sysfs"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
    ] {
        assert_eq!(mount_at(r, point)["fs_type"], fs_type, "{point}: {all}");
    }
    assert!(holds(&mount_at(r, "/sys")["mount_options"], "ro"), "sysfs is mounted ro in the spec");
    let devpts = mount_at(r, "/dev/pts");
    for data in ["mode=620", "ptmxmode=666", "gid=5"] {
        assert!(holds(&devpts["super_options"], data), "devpts lacks {data}: {devpts}");
    }
    assert!(holds(&devpts["mount_options"], "noexec"));
    let dev = mount_at(r, "/dev");
    assert!(holds(&dev["super_options"], "mode=755") && holds(&dev["super_options"], "size=65536k"), "{dev}");

    // The cgroup mount mirrors the host's layout: on a cgroup v1 or hybrid host a
    // tmpfs with a mount per hierarchy, on a v2 host one cgroup2.
    let hierarchies = support::cgroup_hierarchies();
    if hierarchies == [PathBuf::from("/sys/fs/cgroup")] {
        assert_eq!(mount_at(r, "/sys/fs/cgroup")["fs_type"], "cgroup2");
    } else {
        assert_eq!(mount_at(r, "/sys/fs/cgroup")["fs_type"], "tmpfs", "{all}");
        for hierarchy in hierarchies {
            let point = hierarchy.to_string_lossy().into_owned();
            // Exception: runc 1.1 mounts only the v1 hierarchies of a hybrid
            // host, not its cgroup2 one; the spec leaves the layout to the
            // runtime, and amphi mirrors the host's whole.
            if !runtime().is_amphi && !hierarchy.join("tasks").exists() {
                continue;
            }
            let m = mount_at(r, &point);
            let fs_type = m["fs_type"].as_str().expect("type");
            assert!(fs_type == "cgroup" || fs_type == "cgroup2", "{point}: {m}");
            assert!(holds(&m["mount_options"], "ro"), "{point} is mounted ro in the spec: {m}");
        }
    }
    let outside: Vec<String> = mountinfo(c.pid).into_iter().map(|m| m.mount_point).collect();
    for point in ["/proc", "/sys", "/dev/pts", "/dev/mqueue", "/sys/fs/cgroup"] {
        assert!(outside.iter().any(|p| p == point), "{point} is not in /proc/{}/mountinfo", c.pid);
    }
    case.delete_force(&id);
    case.assert_all_gone();
}

#[test]
fn a_rootfs_symlink_cannot_lead_a_mount_out() {
    let Some(case) = support::case("symlink_out") else { return };
    let id = case.id("c");
    let absolute = format!("/tmp/{id}-outside");
    let relative = format!("/tmp/{id}-outside-rel");
    for path in [&absolute, &relative] {
        assert!(!Path::new(path).exists(), "{path} exists before the test");
    }
    let rootfs = case.private_rootfs(&id);
    std::os::unix::fs::symlink(&absolute, rootfs.join("evil")).expect("symlink");
    std::os::unix::fs::symlink(format!("../../../../../../../../../..{relative}"), rootfs.join("evil2"))
        .expect("symlink");
    let src = case.work.path().join("src");
    fs::create_dir(&src).expect("mkdir");
    let bundle = case.probe_bundle(&id, STAY, |config| {
        config["root"]["path"] = json!(rootfs);
        mounts_mut(config).push(json!({"destination": "/evil/sub", "type": "tmpfs", "source": "tmpfs"}));
        mounts_mut(config)
            .push(json!({"destination": "/evil2/sub", "type": "bind", "source": src, "options": ["bind"]}));
    });
    let c = case.start(&bundle, &id);
    for path in [&absolute, &relative] {
        assert!(!Path::new(path).exists(), "the runtime followed a rootfs symlink out to {path}");
        // The symlink was resolved inside the rootfs and the mount landed there.
        let inside = format!("{path}/sub");
        assert!(has_mount(&c.report, &inside), "no mount at {inside}: {}", mount_points(&c.report));
        assert!(rootfs.join(&inside[1..]).is_dir(), "{inside} was not made in the rootfs");
    }
    assert_eq!(mount_at(&c.report, &format!("{absolute}/sub"))["fs_type"], "tmpfs");
    assert!(mount_at(&c.report, &format!("{relative}/sub"))["root"].as_str().is_some_and(|r| r.ends_with("/src")));
    case.delete_force(&id);
    for path in [&absolute, &relative] {
        assert!(!Path::new(path).exists(), "{path} appeared outside the rootfs");
    }
    case.assert_all_gone();
}

#[test]
fn default_devices_and_linux_devices() {
    let Some(case) = support::case("devices") else { return };
    let id = case.id("c");
    let chars = [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];
    let links = [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ];
    let paths: Vec<String> = chars
        .iter()
        .map(|c| c.0)
        .chain(links.iter().map(|l| l.0))
        .chain(["ptmx", "mydev"])
        .map(|name| format!("/dev/{name}"))
        .collect();
    let args = with_checks(STAY, &paths.iter().map(String::as_str).collect::<Vec<_>>());
    let bundle = case.probe_bundle(&id, &args, |config| {
        config["linux"]["devices"] = json!([{
            "path": "/dev/mydev", "type": "c", "major": 1, "minor": 7, "fileMode": 0o600, "uid": 1234, "gid": 5678
        }]);
    });
    let c = case.start(&bundle, &id);
    let r = &c.report;
    let dev = |name: &str| PathBuf::from(format!("/proc/{}/root/dev/{name}", c.pid));
    for (name, major, minor) in chars {
        let inside = check(r, &format!("/dev/{name}"));
        assert_eq!(
            (&inside["type"], &inside["rdev"]),
            (&json!("char"), &json!([major, minor])),
            "/dev/{name}: {inside}"
        );
        assert_eq!(inside["mode"], 0o666, "/dev/{name}: {inside}");
        let meta = fs::symlink_metadata(dev(name)).unwrap_or_else(|e| panic!("stat /dev/{name} from outside: {e}"));
        assert!(meta.file_type().is_char_device(), "/dev/{name} outside: {meta:?}");
        let rdev = meta.rdev();
        assert_eq!((nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev)), (major, minor), "/dev/{name} outside");
    }
    for (name, target) in links {
        assert_eq!(check(r, &format!("/dev/{name}"))["link_target"], target, "/dev/{name}");
        assert_eq!(fs::read_link(dev(name)).expect("readlink from outside"), Path::new(target), "/dev/{name} outside");
    }
    // /dev/ptmx: the devpts instance's multiplexer, by a symlink or a device.
    let ptmx = check(r, "/dev/ptmx");
    assert_eq!((&ptmx["type"], &ptmx["rdev"]), (&json!("char"), &json!([5, 2])), "{ptmx}");
    if let Some(target) = ptmx["link_target"].as_str() {
        assert_eq!(target, "pts/ptmx");
    }
    let mydev = check(r, "/dev/mydev");
    assert_eq!(
        (&mydev["type"], &mydev["rdev"], &mydev["mode"], &mydev["uid"], &mydev["gid"]),
        (&json!("char"), &json!([1, 7]), &json!(0o600), &json!(1234), &json!(5678)),
        "{mydev}"
    );
    let meta = fs::symlink_metadata(dev("mydev")).expect("stat /dev/mydev from outside");
    assert!(meta.file_type().is_char_device());
    assert_eq!((meta.mode() & 0o7777, meta.uid(), meta.gid()), (0o600, 1234, 5678));
    assert_eq!((nix::sys::stat::major(meta.rdev()), nix::sys::stat::minor(meta.rdev())), (1, 7));
    case.delete_force(&id);
    case.assert_all_gone();
}

/// Where `path` is within its filesystem, as mountinfo's `root` field shows it:
/// the host's mount that holds it, and the rest of the path below that mount.
fn root_field_of(path: &Path) -> String {
    let host = mountinfo(i64::from(std::process::id() as i32));
    let text = path.to_string_lossy();
    let holder = host
        .iter()
        .filter(|m| text == m.mount_point || text.starts_with(&format!("{}/", m.mount_point.trim_end_matches('/'))))
        .max_by_key(|m| m.mount_point.len())
        .expect("a mount holds the rootfs");
    let rest = &text[holder.mount_point.trim_end_matches('/').len()..];
    format!("{}{rest}", holder.root.trim_end_matches('/'))
}

#[test]
fn pivot_root_makes_the_rootfs_slash() {
    let Some(case) = support::case("pivot_root") else { return };
    let id = case.id("c");
    let c = case.start(&case.probe_bundle(&id, STAY, |_| {}), &id);
    let root = mount_at(&c.report, "/");
    assert_eq!(root["root"], root_field_of(bundles().probe.rootfs()), "{root}");
    // Nothing of the host's tree is left in the container's.
    let outside = mountinfo(c.pid);
    assert_eq!(outside[0].mount_point, "/", "{outside:?}");
    assert!(outside.iter().all(|m| !m.mount_point.starts_with("/work")), "{outside:?}");
    assert_eq!(fs::read_link(format!("/proc/{}/root", c.pid)).expect("readlink root"), Path::new("/"));
    case.delete_force(&id);
    case.assert_all_gone();
}

#[test]
fn no_pivot_chroots_into_the_rootfs() {
    let Some(case) = support::case("no_pivot") else { return };
    let id = case.id("c");
    let bundle = case.probe_bundle(&id, &with_checks(STAY, &["/bin"]), |_| {});
    let c = case.start_with(&bundle, &id, &["--no-pivot"], &[]);
    assert_eq!(c.report["pid"], 1);
    assert_eq!(c.report["cwd"], "/");
    assert_eq!(mount_at(&c.report, "/")["root"], root_field_of(bundles().probe.rootfs()));
    assert_eq!(check(&c.report, "/bin")["entries"], json!([amphi_test_bundles::PROBE_NAME]));
    assert!(has_mount(&c.report, "/proc"), "{}", mount_points(&c.report));
    // From outside the process's root is the rootfs directory.
    let root = fs::metadata(format!("/proc/{}/root/bin/{}", c.pid, amphi_test_bundles::PROBE_NAME)).expect("stat");
    let probe = fs::metadata(bundles().probe.rootfs().join("bin").join(amphi_test_bundles::PROBE_NAME)).expect("stat");
    assert_eq!((root.dev(), root.ino()), (probe.dev(), probe.ino()));
    case.delete_force(&id);
    case.assert_all_gone();
}

/// A masked file reads as nothing: an empty file, or `/dev/null` bound over it.
fn assert_reads_empty(seen: &Value) {
    assert_eq!(seen["readable"], true, "{seen}");
    let dev_null = seen["type"] == "char" && seen["rdev"] == json!([1, 3]);
    assert!(dev_null || seen["content"] == "", "{} is not masked: {seen}", seen["path"]);
}

#[test]
fn masked_and_read_only_paths() {
    let Some(case) = support::case("masked_readonly") else { return };
    let id = case.id("c");
    let masked = ["/proc/keys", "/proc/timer_list"];
    let args = with_checks(
        STAY,
        &[
            "/proc/keys",
            "/proc/timer_list",
            "/sys/firmware",
            "/proc/sys/kernel/hostname",
            "/proc/irq/default_smp_affinity",
            "/",
        ],
    );
    let c = case.start(&case.probe_bundle(&id, &args, |_| {}), &id);
    let r = &c.report;
    assert!(
        !fs::read_to_string("/proc/timer_list").expect("host timer_list").is_empty(),
        "the test needs a non-empty one"
    );
    for path in masked {
        assert_reads_empty(check(r, path));
        assert_eq!(fs::read_to_string(format!("/proc/{}/root{path}", c.pid)).expect("read from outside"), "");
    }
    let firmware = check(r, "/sys/firmware");
    assert_eq!(firmware["entries"], json!([]), "{firmware}");
    assert!(
        fs::read_dir("/sys/firmware").expect("host /sys/firmware").next().is_some(),
        "the test needs a non-empty one"
    );
    assert_eq!(fs::read_dir(format!("/proc/{}/root/sys/firmware", c.pid)).expect("read_dir from outside").count(), 0);

    // (Files of /proc/sys and /proc/irq, which are read-only paths of the
    // probe bundle; this kernel has no /proc/sysrq-trigger.)
    for path in ["/proc/sys/kernel/hostname", "/proc/irq/default_smp_affinity"] {
        let seen = check(r, path);
        assert_eq!(seen["writable"], false, "{path}: {seen}");
        assert!(seen["write_error"].as_str().is_some_and(|e| e.contains("Read-only file system")), "{path}: {seen}");
    }
    assert!(holds(&mount_at(r, "/proc/sys")["mount_options"], "ro"));
    // root.readonly: true in the probe bundle.
    let slash = check(r, "/");
    assert_eq!(slash["writable"], false, "{slash}");
    assert!(holds(&mount_at(r, "/")["mount_options"], "ro"));

    let outside = mountinfo(c.pid);
    for path in masked.iter().chain(&["/sys/firmware"]) {
        assert!(outside.iter().any(|m| m.mount_point == *path), "{path} has no mount over it outside");
    }
    assert!(outside_mount(&outside, "/proc/sys").options.contains(&"ro".to_owned()));
    assert!(outside_mount(&outside, "/").options.contains(&"ro".to_owned()));
    case.delete_force(&id);
    case.assert_all_gone();
}

#[test]
fn root_readonly_false_leaves_it_writable() {
    let Some(case) = support::case("root_writable") else { return };
    let id = case.id("c");
    let args = with_checks(STAY, &["/"]);
    let bundle = case.private_probe_bundle(&id, &args, |config| config["root"]["readonly"] = json!(false));
    let c = case.start(&bundle, &id);
    assert_eq!(check(&c.report, "/")["writable"], true, "{}", check(&c.report, "/"));
    assert!(holds(&mount_at(&c.report, "/")["mount_options"], "rw"));
    assert!(outside_mount(&mountinfo(c.pid), "/").options.contains(&"rw".to_owned()));
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

/// A cgroup file of container `id` in hierarchy `controller`.
fn cgroup_file(controller: &str, id: &str, file: &str) -> String {
    let path = format!("/sys/fs/cgroup/{controller}{}/{file}", Case::cgroup_path(id));
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}")).trim().to_owned()
}

#[test]
fn cgroups_path_and_resources() {
    let Some(case) = support::case("cgroups") else { return };
    if support::cgroup_hierarchies() == [PathBuf::from("/sys/fs/cgroup")] {
        // The file names below are cgroup v1's; this host layout is the VM's.
        panic!("this test reads cgroup v1 files; the host is cgroup v2 only");
    }
    let id = case.id("c");
    let args = with_checks(
        STAY,
        &[
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/pids/pids.max",
            "/sys/fs/cgroup/cpu/cpu.shares",
        ],
    );
    let bundle = case.probe_bundle(&id, &args, |config| {
        config["linux"]["resources"]["memory"] = json!({"limit": 67108864});
        config["linux"]["resources"]["cpu"] = json!({"shares": 512, "quota": 50000, "period": 100000});
        config["linux"]["resources"]["pids"] = json!({"limit": 64});
    });
    let c = case.start(&bundle, &id);
    let path = Case::cgroup_path(&id);

    // Outside: the init is in the cgroup path in every hierarchy.
    let lines = proc_file(c.pid, "cgroup");
    for line in lines.lines() {
        let cgroup = line.splitn(3, ':').nth(2).expect("cgroup line");
        assert_eq!(cgroup, path, "{line} in {lines}");
    }
    for hierarchy in support::cgroup_hierarchies() {
        let dir = hierarchy.join(path.trim_start_matches('/'));
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        assert!(procs.lines().any(|p| p == c.pid.to_string()), "{} does not hold {}", dir.display(), c.pid);
    }
    assert_eq!(cgroup_file("memory", &id, "memory.limit_in_bytes"), "67108864");
    assert_eq!(cgroup_file("cpu", &id, "cpu.shares"), "512");
    assert_eq!(cgroup_file("cpu", &id, "cpu.cfs_quota_us"), "50000");
    assert_eq!(cgroup_file("cpu", &id, "cpu.cfs_period_us"), "100000");
    assert_eq!(cgroup_file("pids", &id, "pids.max"), "64");

    // Inside: the cgroup namespace's root is the container's cgroup, and its
    // files there are the limited ones.
    for line in c.report["cgroup"].as_array().expect("cgroup") {
        assert!(line.as_str().is_some_and(|l| l.ends_with(":/")), "{line} inside");
    }
    assert_eq!(check(&c.report, "/sys/fs/cgroup/memory/memory.limit_in_bytes")["content"], "67108864\n");
    assert_eq!(check(&c.report, "/sys/fs/cgroup/pids/pids.max")["content"], "64\n");
    assert_eq!(check(&c.report, "/sys/fs/cgroup/cpu/cpu.shares")["content"], "512\n");
    case.delete_force(&id);
    // assert_all_gone checks every hierarchy for the cgroup directory.
    case.assert_all_gone();
}

#[test]
fn blkio_throttle_and_weight() {
    let Some(case) = support::case("blkio") else { return };
    let id = case.id("c");
    // A throttle on the disk that holds the test's files, and a weight where
    // the host's I/O scheduler has one (CFQ or BFQ: this VM's has neither, and
    // then the weight is left out).
    let disk = fs::metadata(case.work.path()).expect("stat the work dir").dev();
    let (major, minor) = (nix::sys::stat::major(disk), nix::sys::stat::minor(disk));
    let blkio = Path::new("/sys/fs/cgroup/blkio");
    let weight_file = ["blkio.bfq.weight", "blkio.weight"].into_iter().find(|f| blkio.join(f).exists());
    let bundle = case.probe_bundle(&id, STAY, |config| {
        let block_io = &mut config["linux"]["resources"]["blockIO"];
        *block_io = json!({"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}]});
        if weight_file.is_some() {
            block_io["weight"] = json!(300);
        }
    });
    let _c = case.start(&bundle, &id);
    assert_eq!(cgroup_file("blkio", &id, "blkio.throttle.read_bps_device"), format!("{major}:{minor} 1048576"));
    if let Some(file) = weight_file {
        let weight = cgroup_file("blkio", &id, file);
        assert!(weight == "300" || weight.starts_with("default 300"), "{file}: {weight}");
    }
    case.delete_force(&id);
    case.assert_all_gone();
}

#[test]
fn run_the_probe_bundle_shows_what_the_spec_asks() {
    // The done-when check of the foundation issue: `run --bundle <probe> c1`.
    let Some(case) = support::case("done_when") else { return };
    let id = case.id("c1");
    let args = ["--check", "/proc/keys", "--check", "/proc/sys/kernel/hostname", "--exit", "7"];
    let bundle = case.probe_bundle(&id, &args, |_| {});
    let spec = bundle.config().expect("config");
    let out = case.run(&["run", "--bundle", bundle.dir().to_str().expect("utf-8"), &id]);
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
    let r = support::probe_report(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(r["pid"], 1);
    assert_eq!(r["hostname"], spec["hostname"]);
    assert_eq!(r["uid"], spec["process"]["user"]["uid"]);
    let spec_caps = &spec["process"]["capabilities"];
    for set in ["bounding", "effective", "permitted"] {
        let mut wanted: Vec<String> =
            spec_caps[set].as_array().expect("set").iter().map(|c| c.as_str().expect("name").to_owned()).collect();
        wanted.sort();
        assert_eq!(cap_names(&r, set), wanted, "{set}");
    }
    // An ambient capability needs to be inheritable too; the default spec has no
    // inheritable set, so the ambient one stays empty.
    assert_eq!(cap_names(&r, "ambient"), Vec::<String>::new());
    assert_reads_empty(check(&r, "/proc/keys"));
    assert_eq!(check(&r, "/proc/sys/kernel/hostname")["writable"], false, "read-only");
    for limit in spec["process"]["rlimits"].as_array().expect("rlimits") {
        let name = limit["type"].as_str().expect("type");
        assert_eq!(r["rlimits"][name], json!({"soft": limit["soft"], "hard": limit["hard"]}), "{name}");
    }
    let cgroup = r["cgroup"].as_array().expect("cgroup");
    assert!(!cgroup.is_empty() && cgroup.iter().all(|l| l.as_str().is_some_and(|l| l.ends_with(":/"))), "{cgroup:?}");
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
