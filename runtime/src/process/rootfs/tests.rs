//! Real tests of [`prepare`](super::prepare) and [`enter`](super::enter).
//!
//! They mount, so each runs far from the host: the test re-executes its own test
//! binary filtered to itself (a fresh process whose only other thread is the
//! idle harness), which forks a single-threaded child; that child unshares a
//! mount namespace, makes `/` rprivate, builds a rootfs in a temporary
//! directory, prepares and enters it, and checks what it sees from inside. The
//! outer test then checks the host side (nothing created outside the rootfs) and
//! removes the directory. Without root they are skipped, unless `CI=true`.

use std::ffi::OsStr;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::statvfs::FsFlags;
use nix::sys::wait::{WaitStatus, waitpid};
use oci_spec::runtime::Spec;

use super::{enter, prepare};
use crate::plan::{MountContext, RootfsPlan};
use crate::sys::clone::{Forked, clone_fork, exit_now};

const ROLE: &str = "AMPHI_ROOTFS_TEST_ROLE";
const DIR: &str = "AMPHI_ROOTFS_TEST_DIR";

/// Runs `scenario(dir)` as described in the module docs. Returns the test
/// directory to the outer test for its host-side checks, or `None` in the child
/// role and when skipped.
fn run(test: &str, scenario: fn(&Path)) -> Option<tempfile::TempDir> {
    run_then(test, scenario, |_| {})
}

/// [`run`], with `cleanup(dir)` run by the outer test once the child is gone,
/// whether it passed or not (for what the scenario left on the host).
fn run_then(test: &str, scenario: fn(&Path), cleanup: fn(&Path)) -> Option<tempfile::TempDir> {
    if let Some(role) = std::env::var_os(ROLE) {
        if role == OsStr::new(test) {
            let dir = PathBuf::from(std::env::var_os(DIR).expect("test dir in the environment"));
            let status = crate::sys::clone::fork_test_child(|| {
                nix::sched::unshare(CloneFlags::CLONE_NEWNS).expect("unshare a mount namespace");
                nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
                    .expect("make / rprivate");
                scenario(&dir);
            });
            assert_eq!(status, 0, "the scenario failed (see its panic above)");
        }
        return None;
    }
    if !nix::unistd::geteuid().is_root() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{test} needs root and CI=true");
        #[expect(clippy::print_stderr, reason = "a skipped test says why")]
        {
            eprintln!("skipped {test}: needs root");
        }
        return None;
    }
    let dir = tempfile::Builder::new().prefix("amphi-rootfs-").tempdir().unwrap();
    let name = format!("{}::{test}", module_path!().split_once("::").unwrap().1);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, test)
        .env(DIR, dir.path())
        .output()
        .unwrap();
    cleanup(dir.path());
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("1 passed"), "child test {name} failed:\n{text}");
    Some(dir)
}

fn wait_code(child: nix::unistd::Pid) -> i32 {
    match waitpid(child, None).expect("waitpid") {
        WaitStatus::Exited(_, code) => code,
        other => panic!("child ended with {other:?}"),
    }
}

/// A spec with new mount (and pid) namespaces, `mounts` and `linux` extras.
fn spec(mounts: &str, linux_extra: &str, root_readonly: bool) -> Spec {
    let json = format!(
        r#"{{"ociVersion":"1.2.0","root":{{"path":"rootfs","readonly":{root_readonly}}},"mounts":[{mounts}],
        "linux":{{"namespaces":[{{"type":"mount"}}]{linux_extra}}}}}"#
    );
    serde_json::from_str(&json).unwrap()
}

fn plan(dir: &Path, spec: &Spec, user_ns: bool, cgroup_ns: bool, no_pivot: bool) -> RootfsPlan {
    let ctx = MountContext {
        bundle: dir.to_path_buf(),
        new_user_ns: user_ns,
        new_cgroup_ns: cgroup_ns,
        cgroup_path: PathBuf::from("/"),
        no_pivot,
    };
    RootfsPlan::new(spec, dir.join("rootfs"), &ctx).unwrap()
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug)]
struct Mount {
    root: String,
    point: String,
    options: String,
    optional: String,
    fstype: String,
    super_options: String,
}

fn mounts() -> Vec<Mount> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(|line| {
            let (left, right) = line.split_once(" - ").unwrap();
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            Mount {
                root: l[3].into(),
                point: l[4].into(),
                options: l[5].into(),
                optional: l[6..].join(" "),
                fstype: r[0].into(),
                super_options: r[2].into(),
            }
        })
        .collect()
}

/// The top mount at `point`.
fn mount_at(point: &str) -> Mount {
    mounts().into_iter().rev().find(|m| m.point == point).unwrap_or_else(|| panic!("nothing mounted at {point}"))
}

fn flags(path: &str) -> FsFlags {
    nix::sys::statvfs::statvfs(path).unwrap_or_else(|e| panic!("statvfs {path}: {e}")).flags()
}

fn assert_char_device(path: &str, major: u64, minor: u64) {
    let meta = fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(meta.file_type().is_char_device(), "{path} is not a char device");
    let rdev = meta.rdev();
    assert_eq!((nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev)), (major, minor), "{path}");
}

fn write_fails_with(path: &str, errno: i32) {
    let err = fs::write(path, "x").expect_err(path);
    assert_eq!(err.raw_os_error(), Some(errno), "{path}: {err}");
}

const DEFAULT_MOUNTS: &str = r#"
    {"destination":"/proc","type":"proc","source":"proc"},
    {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]},
    {"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620"]},
    {"destination":"/dev/shm","type":"tmpfs","source":"shm","options":["nosuid","noexec","nodev","mode=1777","size=65536k"]},
    {"destination":"/dev/mqueue","type":"mqueue","source":"mqueue","options":["nosuid","noexec","nodev"]},
    {"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]},
    {"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["nosuid","noexec","nodev","relatime","ro"]}"#;

const PROTECTED: &str = r#","maskedPaths":["/proc/kcore","/proc/timer_list","/proc/keys","/proc/acpi","/sys/firmware","/proc/no-such-thing"],
    "readonlyPaths":["/proc/sys","/proc/sysrq-trigger","/proc/no-such-dir"]"#;

#[test]
fn default_spec_builds_and_enters() {
    run("default_spec_builds_and_enters", |dir| {
        fs::create_dir_all(dir.join("rootfs/etc")).unwrap();
        fs::write(dir.join("rootfs/etc/marker"), "inside").unwrap();
        fs::create_dir_all(dir.join("data")).unwrap();
        fs::write(dir.join("data/file"), "data").unwrap();
        fs::write(dir.join("hosts"), "127.0.0.1 localhost").unwrap();
        let own_cgroup = fs::read_to_string("/proc/self/cgroup").unwrap();
        let host_mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mounts_json = format!(
            r#"{DEFAULT_MOUNTS},
            {{"destination":"/data","source":"data","options":["rbind","ro","nosuid","nodev"]}},
            {{"destination":"/etc/hosts","type":"bind","source":"hosts","options":["bind","ro"]}}"#
        );
        let p = plan(dir, &spec(&mounts_json, PROTECTED, true), false, false, false);
        let root = prepare(&p).unwrap();
        // Before the pivot the executor finds its files through the descriptor.
        let marker = crate::sys::inroot::open_in_root(
            std::os::fd::AsFd::as_fd(&root),
            Path::new("/etc/marker"),
            nix::fcntl::OFlag::O_RDONLY,
        )
        .unwrap();
        drop((marker, root));
        enter(&p).unwrap();

        assert_eq!(std::env::current_dir().unwrap(), Path::new("/"));
        assert_eq!(fs::read_to_string("/etc/marker").unwrap(), "inside");
        let all = mounts();
        assert!(all.iter().all(|m| !m.point.starts_with("/tmp") && !m.point.starts_with("/mnt")), "{all:#?}");
        assert_eq!(all[0].point, "/", "the old root is gone: {all:#?}");

        // root.readonly: / read-only, the mounts on it are not.
        assert!(flags("/").contains(FsFlags::ST_RDONLY));
        write_fails_with("/newfile", libc::EROFS);
        fs::write("/dev/shm/ok", "x").unwrap();

        // tmpfs data reached the filesystem.
        let dev = mount_at("/dev");
        assert_eq!(dev.fstype, "tmpfs");
        assert!(dev.super_options.contains("size=65536k") && dev.super_options.contains("mode=755"), "{dev:?}");
        assert!(dev.options.contains("nosuid") && !dev.options.contains("relatime"), "{dev:?}");
        assert_eq!(fs::metadata("/dev").unwrap().permissions().mode() & 0o7777, 0o755);
        let shm = mount_at("/dev/shm");
        assert!(shm.super_options.contains("size=65536k"), "{shm:?}");
        // 1777 is tmpfs's default mode, which mountinfo leaves out.
        assert_eq!(fs::metadata("/dev/shm").unwrap().permissions().mode() & 0o7777, 0o1777);
        assert_eq!(mount_at("/dev/pts").fstype, "devpts");
        assert_eq!(mount_at("/dev/mqueue").fstype, "mqueue");
        assert_eq!(mount_at("/proc").fstype, "proc");
        let sys = mount_at("/sys");
        assert_eq!(sys.fstype, "sysfs");
        assert!(flags("/sys").contains(FsFlags::ST_RDONLY | FsFlags::ST_NOSUID | FsFlags::ST_NOEXEC));

        // Devices, made with mknod here (no user namespace), and the symlinks.
        for (path, major, minor) in [
            ("/dev/null", 1, 3),
            ("/dev/zero", 1, 5),
            ("/dev/full", 1, 7),
            ("/dev/random", 1, 8),
            ("/dev/urandom", 1, 9),
            ("/dev/tty", 5, 0),
        ] {
            assert_char_device(path, major, minor);
            assert_eq!(fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o666, "{path}");
            assert!(!all.iter().any(|m| m.point == path), "{path} should be a node, not a mount");
        }
        let mut zeros = [1u8; 4];
        std::io::Read::read_exact(&mut fs::File::open("/dev/zero").unwrap(), &mut zeros).unwrap();
        assert_eq!(zeros, [0; 4]);
        assert_eq!(fs::read_link("/dev/ptmx").unwrap(), Path::new("pts/ptmx"));
        assert_eq!(fs::read_link("/dev/fd").unwrap(), Path::new("/proc/self/fd"));
        assert_eq!(fs::read_link("/dev/stderr").unwrap(), Path::new("/proc/self/fd/2"));
        assert!(fs::metadata("/dev/stdin").is_ok(), "/dev/stdin resolves through /proc");

        // The ro bind is read-only and keeps the options it was given.
        assert_eq!(fs::read_to_string("/data/file").unwrap(), "data");
        assert!(flags("/data").contains(FsFlags::ST_RDONLY | FsFlags::ST_NOSUID | FsFlags::ST_NODEV));
        assert!(!flags("/data").contains(FsFlags::ST_NOEXEC));
        write_fails_with("/data/file", libc::EROFS);
        assert_eq!(fs::read_to_string("/etc/hosts").unwrap(), "127.0.0.1 localhost");
        assert!(fs::metadata("/etc/hosts").unwrap().is_file());
        assert!(flags("/etc/hosts").contains(FsFlags::ST_RDONLY));

        // Masked: files are /dev/null, directories an empty read-only tmpfs.
        assert_char_device("/proc/timer_list", 1, 3);
        assert_eq!(fs::read("/proc/keys").unwrap().len(), 0);
        assert_eq!(mount_at("/proc/acpi").fstype, "tmpfs");
        assert_eq!(fs::read_dir("/proc/acpi").unwrap().count(), 0);
        if Path::new("/sys/firmware").exists() {
            assert_eq!(mount_at("/sys/firmware").fstype, "tmpfs");
            assert_eq!(fs::read_dir("/sys/firmware").unwrap().count(), 0);
            assert!(flags("/sys/firmware").contains(FsFlags::ST_RDONLY));
        }
        assert!(!Path::new("/proc/no-such-thing").exists());

        // Read-only paths.
        assert!(flags("/proc/sys").contains(FsFlags::ST_RDONLY));
        write_fails_with("/proc/sys/kernel/hostname", libc::EROFS);
        assert!(!flags("/proc").contains(FsFlags::ST_RDONLY), "only /proc/sys is read-only");

        // cgroup on this v1/hybrid host: a read-only tmpfs of the container's own
        // cgroup directories, one bind per hierarchy.
        let cg = mount_at("/sys/fs/cgroup");
        assert_eq!(cg.fstype, "tmpfs");
        assert!(flags("/sys/fs/cgroup").contains(FsFlags::ST_RDONLY));
        let host = super::cgroup::hierarchies(&host_mountinfo, Some(&own_cgroup)).unwrap();
        assert!(!host.is_empty());
        for h in &host {
            let point = format!("/sys/fs/cgroup/{}", h.name);
            let m = mount_at(&point);
            assert_eq!(m.fstype, h.fstype, "{point}");
            assert!(m.options.starts_with("ro"), "{point}: {m:?}");
            let own = super::cgroup::own_cgroup(
                &own_cgroup,
                &h.options.split(',').filter(|s| !s.is_empty()).collect::<Vec<_>>(),
            )
            .unwrap();
            assert_eq!(m.root, own, "{point} shows the container's own cgroup");
        }
        assert!(Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists());
        assert!(Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists());
    });
}

#[test]
fn symlinks_never_lead_out_of_the_rootfs() {
    let Some(dir) = run("symlinks_never_lead_out_of_the_rootfs", |dir| {
        let outside = outside(dir);
        let rootfs = dir.join("rootfs");
        fs::create_dir_all(&rootfs).unwrap();
        fs::create_dir_all(dir.join("data")).unwrap();
        // Absolute, relative-upward and /dev-replacing symlinks, all pointing at
        // host paths that do not exist.
        std::os::unix::fs::symlink(format!("{outside}-abs"), rootfs.join("abs")).unwrap();
        std::os::unix::fs::symlink(format!("../../../../../../..{outside}-rel"), rootfs.join("rel")).unwrap();
        std::os::unix::fs::symlink(format!("{outside}-dev"), rootfs.join("dev")).unwrap();
        let mounts_json = r#"
            {"destination":"/proc","type":"proc"},
            {"destination":"/abs/sub","type":"tmpfs","options":["size=1m"]},
            {"destination":"/rel/data","source":"data","options":["rbind"]},
            {"destination":"/dev","type":"tmpfs","options":["mode=755"]}"#;
        let devices = r#","devices":[{"path":"/abs/node","type":"c","major":1,"minor":3}],"maskedPaths":["/abs/sub"]"#;
        let p = plan(dir, &spec(mounts_json, devices, false), false, false, false);
        prepare(&p).unwrap();
        // From the host's side of this namespace: everything landed in the rootfs.
        let made = rootfs.join(outside.trim_start_matches('/'));
        assert!(Path::new(&format!("{}-abs/sub", made.display())).is_dir());
        assert!(Path::new(&format!("{}-rel/data", made.display())).is_dir());
        assert_char_device(&format!("{}-dev/null", made.display()), 1, 3);
        assert_char_device(&format!("{}-abs/node", made.display()), 1, 3);
        enter(&p).unwrap();
        // From inside: the symlinks resolve to the mounts.
        assert_eq!(mount_at(&format!("{outside}-abs/sub")).fstype, "tmpfs");
        assert!(fs::metadata("/abs/sub").unwrap().is_dir());
        assert_char_device("/dev/null", 1, 3);
        assert_char_device("/abs/node", 1, 3);
        // The masked directory, reached through the symlink, is covered read-only.
        assert!(flags("/abs/sub").contains(FsFlags::ST_RDONLY));
    }) else {
        return;
    };
    let outside = outside(dir.path());
    for suffix in ["abs", "rel", "dev"] {
        let host = format!("{outside}-{suffix}");
        assert!(!Path::new(&host).exists(), "{host} was created on the host");
    }
}

/// A host path, unique to this test directory, that must never come to exist.
fn outside(dir: &Path) -> String {
    format!("/tmp/{}-outside", dir.file_name().unwrap().to_str().unwrap())
}

#[test]
fn no_pivot_chroots_into_the_rootfs() {
    run("no_pivot_chroots_into_the_rootfs", |dir| {
        fs::create_dir_all(dir.join("rootfs")).unwrap();
        fs::write(dir.join("rootfs/marker"), "chroot").unwrap();
        let p = plan(dir, &spec(r#"{"destination":"/proc","type":"proc"}"#, "", false), false, false, true);
        prepare(&p).unwrap();
        enter(&p).unwrap();
        assert_eq!(fs::read_to_string("/marker").unwrap(), "chroot");
        assert_eq!(mount_at("/").point, "/");
        assert!(!Path::new(&dir.join("rootfs")).exists(), "the host's paths are out of reach");
    });
}

#[test]
fn shared_rootfs_propagation_still_pivots() {
    run("shared_rootfs_propagation_still_pivots", |dir| {
        fs::create_dir_all(dir.join("rootfs")).unwrap();
        let p = plan(
            dir,
            &spec(r#"{"destination":"/proc","type":"proc"}"#, r#","rootfsPropagation":"rshared""#, false),
            false,
            false,
            false,
        );
        prepare(&p).unwrap();
        enter(&p).unwrap();
        let root = mount_at("/");
        assert!(root.optional.contains("shared:"), "/ is shared as asked: {root:?}");
    });
}

#[test]
fn unbindable_rootfs_propagation_applies_after_the_pivot() {
    run("unbindable_rootfs_propagation_applies_after_the_pivot", |dir| {
        fs::create_dir_all(dir.join("rootfs")).unwrap();
        let p = plan(
            dir,
            &spec(r#"{"destination":"/proc","type":"proc"}"#, r#","rootfsPropagation":"runbindable""#, false),
            false,
            false,
            false,
        );
        prepare(&p).unwrap();
        enter(&p).unwrap();
        for point in ["/", "/proc"] {
            let m = mount_at(point);
            assert!(m.optional.contains("unbindable"), "{point} is unbindable: {m:?}");
        }
    });
}

#[test]
fn cgroup_namespace_shows_own_cgroup_as_root() {
    run("cgroup_namespace_shows_own_cgroup_as_root", |dir| {
        fs::create_dir_all(dir.join("rootfs")).unwrap();
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).unwrap();
        let cg = r#"{"destination":"/proc","type":"proc"},
            {"destination":"/sys/fs/cgroup","type":"cgroup","options":["nosuid","noexec","nodev","ro"]}"#;
        let p = plan(dir, &spec(cg, "", false), false, true, false);
        prepare(&p).unwrap();
        enter(&p).unwrap();
        let cgroups: Vec<Mount> =
            mounts().into_iter().filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2").collect();
        assert!(cgroups.len() >= 2, "{cgroups:#?}");
        for m in &cgroups {
            assert_eq!(m.root, "/", "a fresh cgroup mount in the namespace: {m:?}");
            assert!(m.options.starts_with("ro"), "{m:?}");
        }
        assert!(cgroups.iter().any(|m| m.point == "/sys/fs/cgroup/memory"));
        assert!(cgroups.iter().any(|m| m.point == "/sys/fs/cgroup/unified" && m.fstype == "cgroup2"));
        assert!(Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists());
    });
}

/// Pretends to be a cgroup v2 host: the unified hierarchy mounted at
/// /sys/fs/cgroup (in this test's mount namespace only).
fn v2_host(dir: &Path, cgroup_ns: bool) {
    nix::mount::mount(Some("cgroup2"), "/sys/fs/cgroup", Some("cgroup2"), MsFlags::empty(), None::<&str>)
        .expect("mount cgroup2 over /sys/fs/cgroup");
    fs::create_dir_all(dir.join("rootfs")).unwrap();
    // Into a cgroup of our own (removed by the outer test), so that the
    // container's view differs from the hierarchy's root.
    let own = format!("/{}", test_cgroup(dir));
    fs::create_dir(format!("/sys/fs/cgroup{own}")).unwrap();
    fs::write(format!("/sys/fs/cgroup{own}/cgroup.procs"), "0").unwrap();
    if cgroup_ns {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).unwrap();
    }
    let cg = r#"{"destination":"/proc","type":"proc"},
        {"destination":"/sys/fs/cgroup","type":"cgroup","options":["nosuid","noexec","nodev","ro"]}"#;
    let p = plan(dir, &spec(cg, "", false), false, cgroup_ns, false);
    prepare(&p).unwrap();
    enter(&p).unwrap();
    let m = mount_at("/sys/fs/cgroup");
    assert_eq!(m.fstype, "cgroup2");
    assert_eq!(m.root, if cgroup_ns { "/" } else { own.as_str() }, "{m:?}");
    assert!(flags("/sys/fs/cgroup").contains(FsFlags::ST_RDONLY | FsFlags::ST_NOSUID | FsFlags::ST_NOEXEC));
    assert!(Path::new("/sys/fs/cgroup/cgroup.procs").exists());
}

fn test_cgroup(dir: &Path) -> String {
    format!("{}-cgroup", dir.file_name().unwrap().to_str().unwrap())
}

/// Removes the cgroup `v2_host` made in the host's unified hierarchy, once its
/// last process is gone.
fn remove_test_cgroup(dir: &Path) {
    let path = Path::new("/sys/fs/cgroup/unified").join(test_cgroup(dir));
    for _ in 0..100 {
        match fs::remove_dir(&path) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => std::thread::sleep(std::time::Duration::from_millis(10)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            other => return other.expect("remove the test cgroup"),
        }
    }
    panic!("{} stayed busy", path.display());
}

#[test]
fn v2_host_binds_own_cgroup() {
    run_then("v2_host_binds_own_cgroup", |dir| v2_host(dir, false), remove_test_cgroup);
}

#[test]
fn v2_host_mounts_cgroup2_in_a_cgroup_namespace() {
    run_then("v2_host_mounts_cgroup2_in_a_cgroup_namespace", |dir| v2_host(dir, true), remove_test_cgroup);
}

#[test]
fn vanished_bind_source_is_named() {
    run("vanished_bind_source_is_named", |dir| {
        fs::create_dir_all(dir.join("rootfs")).unwrap();
        fs::create_dir_all(dir.join("src")).unwrap();
        let p = plan(
            dir,
            &spec(r#"{"destination":"/data","source":"src","options":["rbind"]}"#, "", false),
            false,
            false,
            false,
        );
        fs::remove_dir(dir.join("src")).unwrap();
        let err = prepare(&p).unwrap_err();
        assert_eq!(err.to_string(), format!("mount /data: source {}/src does not exist", dir.display()));
        assert_eq!(err.errno(), Some(libc::ENOENT));
    });
}

#[test]
fn user_namespace_binds_devices_and_keeps_locked_flags() {
    run("user_namespace_binds_devices_and_keeps_locked_flags", |dir| {
        fs::create_dir_all(dir.join("rootfs")).unwrap();
        // A source whose nosuid/nodev/noexec the new user namespace will lock.
        let locked = dir.join("locked");
        fs::create_dir_all(&locked).unwrap();
        let f = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        nix::mount::mount(Some("tmpfs"), &locked, Some("tmpfs"), f, Some("size=1m")).unwrap();
        fs::write(locked.join("file"), "locked").unwrap();

        let (ready_r, ready_w) = nix::unistd::pipe().unwrap();
        let flags = libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID;
        match clone_fork(flags).unwrap() {
            Forked::Child => {
                drop(ready_w);
                let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    wait_for(&ready_r);
                    in_user_namespace(dir)
                }))
                .is_ok();
                exit_now(if ok { 0 } else { 1 })
            }
            Forked::Parent(pid) => {
                drop(ready_r);
                fs::write(format!("/proc/{pid}/uid_map"), "0 0 4294967295\n").unwrap();
                fs::write(format!("/proc/{pid}/gid_map"), "0 0 4294967295\n").unwrap();
                nix::unistd::write(&ready_w, b"1").unwrap();
                assert_eq!(wait_code(pid), 0, "the user-namespace scenario failed");
            }
        }
    });
}

fn wait_for(fd: &OwnedFd) {
    let mut byte = [0u8; 1];
    assert_eq!(nix::unistd::read(fd.as_raw_fd(), &mut byte).unwrap(), 1);
}

fn in_user_namespace(dir: &Path) {
    // mknod is refused in a user namespace: the plan knows, and binds instead.
    let mounts_json = r#"
        {"destination":"/proc","type":"proc"},
        {"destination":"/dev","type":"tmpfs","options":["nosuid","mode=755"]},
        {"destination":"/sys","type":"sysfs","options":["nosuid","noexec","nodev","ro"]},
        {"destination":"/locked","source":"locked","options":["rbind","ro"]}"#;
    let extra = r#","devices":[{"path":"/dev/kmsg","type":"c","major":1,"minor":11}],"maskedPaths":["/proc/timer_list"],"readonlyPaths":["/proc/sys"]"#;
    let p = plan(dir, &spec(mounts_json, extra, true), true, false, false);
    assert!(p.user_ns);
    let probe = dir.join("rootfs/probe-node");
    let mknod = nix::sys::stat::mknod(
        &probe,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    );
    assert_eq!(mknod, Err(nix::errno::Errno::EPERM), "mknod must be refused here for this test to mean anything");
    prepare(&p).unwrap();
    enter(&p).unwrap();
    let all = mounts();
    for path in ["/dev/null", "/dev/zero", "/dev/tty"] {
        assert!(all.iter().any(|m| m.point == path), "{path} is bound from the host: {all:#?}");
    }
    assert_char_device("/dev/null", 1, 3);
    assert_char_device("/dev/tty", 5, 0);
    // A spec device is bound from the host's node of the same path.
    assert_char_device("/dev/kmsg", 1, 11);
    assert!(all.iter().any(|m| m.point == "/dev/kmsg"));
    // sysfs could not be mounted without a network namespace: /sys is the host's, bound.
    assert_eq!(mount_at("/sys").fstype, "sysfs");
    assert!(flags("/sys").contains(FsFlags::ST_RDONLY));
    // The ro bind kept what the kernel locked.
    let locked = flags("/locked");
    assert!(
        locked.contains(FsFlags::ST_RDONLY | FsFlags::ST_NOSUID | FsFlags::ST_NODEV | FsFlags::ST_NOEXEC),
        "{locked:?}"
    );
    assert_eq!(fs::read_to_string("/locked/file").unwrap(), "locked");
    assert!(flags("/").contains(FsFlags::ST_RDONLY));
    assert_char_device("/proc/timer_list", 1, 3);
    assert!(flags("/proc/sys").contains(FsFlags::ST_RDONLY));
}
