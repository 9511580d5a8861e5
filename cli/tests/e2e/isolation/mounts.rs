//! Mounts: the spec's mounts in order with their options and data,
//! `rootfsPropagation`, the default filesystems and devices, a rootfs symlink
//! that tries to lead a mount out, `pivot_root` or chroot, masked and
//! read-only paths, `root.readonly`.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{STAY, assert_reads_empty, with_checks};
use crate::support::{self, MountLine, bundles, check, has_mount, holds, mount_at, mount_points, mountinfo, runtime};

fn mounts_mut(config: &mut Value) -> &mut Vec<Value> {
    config["mounts"].as_array_mut().expect("mounts")
}

/// The mount seen from outside at `point` (the topmost).
fn outside_mount<'a>(mounts: &'a [MountLine], point: &str) -> &'a MountLine {
    mounts.iter().rev().find(|m| m.mount_point == point).unwrap_or_else(|| panic!("no mount at {point} outside"))
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
