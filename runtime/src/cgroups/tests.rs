//! Tests on the host's real cgroups. They need root; without it they fail when
//! `CI=true` and are skipped (with the reason printed) otherwise.
//!
//! Each test works under its own top-level directory (`/amphi-test-<pid>-<name>`),
//! so tests running in parallel never share a parent, and each ends by checking
//! that no directory of its cgroup is left in any hierarchy. The cgroup v2 test
//! runs this test binary again in a private mount namespace where
//! `/sys/fs/cgroup` is the hybrid host's cgroup2 tree.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder,
    LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};

use super::*;
use crate::sys::proc::ProcStat;

#[expect(clippy::print_stderr, reason = "a skipped test says why")]
pub(crate) fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{test}: needs root, and CI=true");
    eprintln!("{test}: skipped, needs root");
    false
}

/// The container the test cgroups belong to (a state directory, as for amphi).
pub(crate) const OWNER: &str = "/run/amphi-test/owner";

/// A cgroup path of this test's own: `/amphi-test-<pid>-<name>/c`.
pub(crate) fn test_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/amphi-test-{}-{name}/c", std::process::id()))
}

/// The directory of `path` (and its test parent) in every hierarchy.
fn all_dirs(cgroup: &Cgroup) -> Vec<PathBuf> {
    cgroup.dirs().collect()
}

/// Removes the test's parent directories and checks that the cgroup's own
/// directories are gone everywhere.
fn assert_gone(cgroup: &Cgroup) {
    for dir in all_dirs(cgroup) {
        assert!(!dir.exists(), "{} is left behind", dir.display());
        let parent = dir.parent().unwrap();
        let _ = std::fs::remove_dir(parent);
        assert!(!parent.exists(), "{} is left behind", parent.display());
    }
}

/// A cgroup removed (with the test's parent directories) however the test ends,
/// so that a failing test leaves nothing behind either.
pub(crate) struct Removed(Cgroup);

impl std::ops::Deref for Removed {
    type Target = Cgroup;
    fn deref(&self) -> &Cgroup {
        &self.0
    }
}

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = self.0.remove();
        for dir in self.0.dirs() {
            let _ = std::fs::remove_dir(dir.parent().unwrap());
        }
    }
}

pub(crate) fn create(path: &Path, resources: Option<&LinuxResources>) -> Removed {
    Removed(Cgroup::create(path, resources, OWNER).unwrap())
}

/// A child process that is killed and reaped however the test ends.
pub(crate) struct Sleeper(Child);

impl Sleeper {
    pub(crate) fn spawn() -> Self {
        Self(Command::new("/bin/sleep").arg("60").spawn().expect("spawn /bin/sleep"))
    }

    pub(crate) fn pid(&self) -> Pid {
        Pid::from_raw(self.0.id() as i32)
    }

    /// Waits for the child to end, at most 5 s, and returns the signal that ended it.
    pub(crate) fn wait_signal(&mut self) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status.signal();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("child {} did not end", self.0.id());
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())).trim().to_owned()
}

fn v1_file(cgroup: &Cgroup, subsystem: &str, file: &str) -> PathBuf {
    let h = cgroup.hierarchies.v1_with(subsystem).unwrap_or_else(|| panic!("no {subsystem} hierarchy"));
    h.mount.join(cgroup.relative()).join(file)
}

/// The host is v1 or hybrid; the v2 test covers the rest.
fn host_has_v1() -> bool {
    layout().unwrap() != Layout::V2
}

fn limits() -> LinuxResources {
    LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(64 * 1024 * 1024).build().unwrap())
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(50_000i64)
                .period(100_000u64)
                .cpus("0")
                .mems("0")
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(42).build().unwrap())
        .block_io(LinuxBlockIoBuilder::default().weight(300u16).build().unwrap())
        .devices(vec![
            LinuxDeviceCgroupBuilder::default().allow(false).access("rwm").build().unwrap(),
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::C)
                .major(4)
                .minor(64)
                .access("rw")
                .build()
                .unwrap(),
        ])
        .build()
        .unwrap()
}

#[test]
fn create_writes_the_limits_into_the_v1_files() {
    if !root_or_skip("create_writes_the_limits_into_the_v1_files") || !host_has_v1() {
        return;
    }
    let cgroup = create(&test_path("limits"), Some(&limits()));
    for dir in all_dirs(&cgroup) {
        assert!(dir.is_dir(), "{} was not made", dir.display());
    }
    assert_eq!(read(&v1_file(&cgroup, "memory", "memory.limit_in_bytes")), "67108864");
    assert_eq!(read(&v1_file(&cgroup, "cpu", "cpu.shares")), "512");
    assert_eq!(read(&v1_file(&cgroup, "cpu", "cpu.cfs_quota_us")), "50000");
    assert_eq!(read(&v1_file(&cgroup, "cpu", "cpu.cfs_period_us")), "100000");
    assert_eq!(read(&v1_file(&cgroup, "cpuset", "cpuset.cpus")), "0");
    assert_eq!(read(&v1_file(&cgroup, "cpuset", "cpuset.mems")), "0");
    assert_eq!(read(&v1_file(&cgroup, "pids", "pids.max")), "42");
    let weight = v1_file(&cgroup, "blkio", "blkio.weight");
    let weight = if weight.exists() { weight } else { v1_file(&cgroup, "blkio", "blkio.bfq.weight") };
    assert_eq!(read(&weight), "300");
    let devices = read(&v1_file(&cgroup, "devices", "devices.list"));
    assert!(devices.lines().any(|l| l == "c 4:64 rw"), "devices.list:\n{devices}");
    assert!(devices.lines().any(|l| l == "c 1:3 rwm"), "the default /dev/null rule:\n{devices}");
    assert!(!devices.contains("a *:* rwm"), "the deny-all rule was not applied:\n{devices}");
    cgroup.remove().unwrap();
    assert_gone(&cgroup);
}

#[test]
fn device_rules_alone_give_the_same_v1_list_as_with_other_limits() {
    // Device rules alone are written by amphi itself; with other limits they go
    // through libcgroups' v1 manager. The kernel's resulting lists must agree.
    if !root_or_skip("device_rules_alone_give_the_same_v1_list_as_with_other_limits") || !host_has_v1() {
        return;
    }
    let devices = limits().devices().clone().unwrap();
    let alone = LinuxResourcesBuilder::default().devices(devices).build().unwrap();
    let own = create(&test_path("devices-alone"), Some(&alone));
    let through_libcgroups = create(&test_path("devices-with-limits"), Some(&limits()));
    let own_list = read(&v1_file(&own, "devices", "devices.list"));
    assert!(own_list.lines().any(|l| l == "c 4:64 rw"), "devices.list:\n{own_list}");
    assert!(!own_list.contains("a *:* rwm"), "the deny-all rule was not applied:\n{own_list}");
    assert_eq!(own_list, read(&v1_file(&through_libcgroups, "devices", "devices.list")));
    for cgroup in [own, through_libcgroups] {
        cgroup.remove().unwrap();
        assert_gone(&cgroup);
    }
}

#[test]
fn update_changes_the_limits() {
    if !root_or_skip("update_changes_the_limits") || !host_has_v1() {
        return;
    }
    let cgroup = create(&test_path("update"), Some(&limits()));
    let more = LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(128 * 1024 * 1024).build().unwrap())
        .pids(LinuxPidsBuilder::default().limit(7).build().unwrap())
        .build()
        .unwrap();
    cgroup.update(&more).unwrap();
    assert_eq!(read(&v1_file(&cgroup, "memory", "memory.limit_in_bytes")), "134217728");
    assert_eq!(read(&v1_file(&cgroup, "pids", "pids.max")), "7");
    cgroup.remove().unwrap();
    assert_gone(&cgroup);
}

#[test]
fn process_is_placed_listed_frozen_thawed_and_signalled() {
    if !root_or_skip("process_is_placed_listed_frozen_thawed_and_signalled") || !host_has_v1() {
        return;
    }
    let cgroup = create(&test_path("process"), None);
    let mut child = Sleeper::spawn();
    cgroup.add_process(child.pid()).unwrap();
    assert_eq!(cgroup.pids().unwrap(), vec![child.pid()]);

    // Every hierarchy, the cgroup2 `0::` line included, names the cgroup.
    let lines = read(Path::new(&format!("/proc/{}/cgroup", child.pid())));
    let path = cgroup.path().to_str().unwrap();
    let hierarchies = cgroup.hierarchies.v1.len() + usize::from(cgroup.hierarchies.unified.is_some());
    assert_eq!(lines.lines().count(), hierarchies, "{lines}");
    for line in lines.lines() {
        assert!(line.ends_with(&format!(":{path}")), "{line} does not name {path}");
    }
    if cgroup.layout() == Layout::Hybrid {
        assert!(lines.lines().any(|l| l == format!("0::{path}")), "{lines}");
    }

    assert!(!cgroup.is_frozen().unwrap());
    cgroup.freeze().unwrap();
    assert!(cgroup.is_frozen().unwrap());
    assert_eq!(read(&v1_file(&cgroup, "freezer", "freezer.state")), "FROZEN");
    // A task in the v1 refrigerator shows as an uninterruptible sleep.
    assert_eq!(ProcStat::read(child.pid()).unwrap().state, 'D');
    cgroup.thaw().unwrap();
    assert!(!cgroup.is_frozen().unwrap());
    assert_eq!(read(&v1_file(&cgroup, "freezer", "freezer.state")), "THAWED");

    cgroup.signal_all(Signal::SIGTERM).unwrap();
    assert_eq!(child.wait_signal(), Some(libc::SIGTERM));
    assert_eq!(cgroup.pids().unwrap(), vec![]);

    cgroup.remove().unwrap();
    assert_gone(&cgroup);
}

#[test]
fn sigkill_reaches_a_frozen_cgroup() {
    if !root_or_skip("sigkill_reaches_a_frozen_cgroup") {
        return;
    }
    let cgroup = create(&test_path("killfrozen"), None);
    let mut children = [Sleeper::spawn(), Sleeper::spawn()];
    for child in &children {
        cgroup.add_process(child.pid()).unwrap();
    }
    cgroup.freeze().unwrap();
    cgroup.signal_all(Signal::SIGKILL).unwrap();
    for child in &mut children {
        assert_eq!(child.wait_signal(), Some(libc::SIGKILL));
    }
    cgroup.remove().unwrap();
    assert_gone(&cgroup);
}

#[test]
fn remove_kills_what_is_left_and_is_idempotent() {
    if !root_or_skip("remove_kills_what_is_left_and_is_idempotent") {
        return;
    }
    let cgroup = create(&test_path("remove"), None);
    let mut child = Sleeper::spawn();
    cgroup.add_process(child.pid()).unwrap();
    // A cgroup the container made inside its own, with a process in it.
    let mut nested = Sleeper::spawn();
    let v1 = cgroup.hierarchies.v1.iter().map(|h| (&h.mount, h.has("cpuset")));
    for (mount, cpuset) in v1.chain(cgroup.hierarchies.unified.iter().map(|m| (m, false))) {
        let inner = mount.join(cgroup.relative()).join("inner");
        std::fs::create_dir(&inner).unwrap();
        if cpuset {
            resources::inherit_cpuset(&inner).unwrap();
        }
        write_file(&inner.join("cgroup.procs"), &nested.pid().to_string()).unwrap();
    }
    let mut want = vec![child.pid(), nested.pid()];
    want.sort_unstable_by_key(|p| p.as_raw());
    assert_eq!(cgroup.pids().unwrap(), want);

    cgroup.remove().unwrap();
    assert_eq!(child.wait_signal(), Some(libc::SIGKILL));
    assert_eq!(nested.wait_signal(), Some(libc::SIGKILL));
    assert_gone(&cgroup);
    // Again, and through a fresh handle, with nothing there.
    cgroup.remove().unwrap();
    Cgroup::open(cgroup.path()).unwrap().remove().unwrap();
}

#[test]
fn invalid_cpuset_names_the_file_and_leaves_nothing() {
    if !root_or_skip("invalid_cpuset_names_the_file_and_leaves_nothing") || !host_has_v1() {
        return;
    }
    let path = test_path("badcpuset");
    let resources =
        LinuxResourcesBuilder::default().cpu(LinuxCpuBuilder::default().cpus("999").build().unwrap()).build().unwrap();
    let err = Cgroup::create(&path, Some(&resources), OWNER).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("cpuset.cpus"), "{text}");
    assert!(text.contains(path.to_str().unwrap()), "{text}");
    assert!(!text.contains('\n'), "{text}");
    let cgroup = Cgroup::open(&path).unwrap();
    for dir in all_dirs(&cgroup) {
        assert!(!dir.exists(), "{} is left behind", dir.display());
        assert!(!dir.parent().unwrap().exists(), "{} is left behind", dir.parent().unwrap().display());
    }
}

#[test]
fn unified_resources_need_cgroup_v2() {
    if !root_or_skip("unified_resources_need_cgroup_v2") || !host_has_v1() {
        return;
    }
    let path = test_path("unified");
    let resources = LinuxResourcesBuilder::default()
        .unified(
            [("memory.high".to_owned(), "1000000".to_owned())].into_iter().collect::<std::collections::HashMap<_, _>>(),
        )
        .build()
        .unwrap();
    let err = Cgroup::create(&path, Some(&resources), OWNER).unwrap_err();
    assert!(err.to_string().contains("linux.resources.unified needs cgroup v2"), "{err}");
    let cgroup = Cgroup::open(&path).unwrap();
    assert_gone(&cgroup);
}

#[test]
fn a_cgroup_with_processes_is_not_taken_over() {
    if !root_or_skip("a_cgroup_with_processes_is_not_taken_over") {
        return;
    }
    let path = test_path("taken");
    let first = create(&path, None);
    let child = Sleeper::spawn();
    first.add_process(child.pid()).unwrap();
    let err = Cgroup::create(&path, None, OWNER).unwrap_err();
    assert!(matches!(err, CgroupError::NotEmpty { .. }), "{err}");
    // The failed create removed nothing of the first one.
    for dir in all_dirs(&first) {
        assert!(dir.is_dir(), "{} was removed", dir.display());
    }
    first.remove().unwrap();
    assert_gone(&first);
}

#[test]
fn stats_count_the_processes() {
    if !root_or_skip("stats_count_the_processes") || !host_has_v1() {
        return;
    }
    let cgroup = create(&test_path("stats"), Some(&limits()));
    let child = Sleeper::spawn();
    cgroup.add_process(child.pid()).unwrap();
    let stats = cgroup.stats().unwrap();
    assert_eq!(stats.pids.current, 1);
    assert_eq!(stats.pids.limit, 42);
    assert_eq!(stats.memory.memory.limit, 64 * 1024 * 1024);
    cgroup.remove().unwrap();
    drop(child);
    assert_gone(&cgroup);
}

#[test]
fn open_refuses_the_root_cgroup() {
    for path in ["/", "/a/..", ""] {
        let err = Cgroup::open(Path::new(path)).unwrap_err();
        assert!(err.to_string().contains("root cgroup"), "{path}: {err}");
    }
}

/// What `create` + `add_process` + `remove` cost, printed (not asserted).
#[test]
#[expect(clippy::print_stderr, reason = "the timing is the point of this test")]
fn lifecycle_timing() {
    if !root_or_skip("lifecycle_timing") {
        return;
    }
    let resources = limits();
    for round in 0..3 {
        let path = test_path(&format!("timing{round}"));
        let mut child = Sleeper::spawn();
        let start = Instant::now();
        let cgroup = create(&path, Some(&resources));
        let created = start.elapsed();
        cgroup.add_process(child.pid()).unwrap();
        let added = start.elapsed();
        cgroup.remove().unwrap();
        let removed = start.elapsed();
        assert_eq!(child.wait_signal(), Some(libc::SIGKILL));
        eprintln!(
            "cgroup lifecycle round {round} ({}): create {:?}, add_process {:?}, remove {:?}, total {:?}",
            cgroup.layout(),
            created,
            added - created,
            removed - added,
            removed
        );
        assert_gone(&cgroup);
    }
}

const V2_INNER: &str = "AMPHI_CGROUP_V2_INNER";

/// Runs [`v2_in_private_mount_namespace`] in a new mount namespace where
/// `/sys/fs/cgroup` is the hybrid host's cgroup2 tree.
#[test]
fn cgroup_v2_through_the_unified_hierarchy() {
    if !root_or_skip("cgroup_v2_through_the_unified_hierarchy") || layout().unwrap() != Layout::Hybrid {
        return;
    }
    let path = test_path("v2");
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "cgroups::tests::v2_in_private_mount_namespace", "--ignored", "--nocapture"])
        .env(V2_INNER, &path)
        .output()
        .expect("run unshare");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "inner test failed:\n{text}");
    assert!(text.contains("1 passed"), "inner test did not run:\n{text}");
    let dir = Path::new("/sys/fs/cgroup/unified").join(path.strip_prefix("/").unwrap());
    assert!(!dir.exists(), "{} is left behind", dir.display());
    assert!(!dir.parent().unwrap().exists(), "{} is left behind", dir.parent().unwrap().display());
}

/// The cgroup v2 half of the tests; run only by the test above.
#[test]
#[ignore = "run by cgroup_v2_through_the_unified_hierarchy in its own mount namespace"]
fn v2_in_private_mount_namespace() {
    let Ok(path) = std::env::var(V2_INNER) else { panic!("run this through cgroup_v2_through_the_unified_hierarchy") };
    let own_ns = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    // `unshare` execs this binary, so the parent is the outer test.
    let parent_ns = std::fs::read_link(format!("/proc/{}/ns/mnt", nix::unistd::getppid())).unwrap();
    assert_ne!(own_ns, parent_ns, "not in a private mount namespace");
    nix::mount::mount(
        Some("/sys/fs/cgroup/unified"),
        "/sys/fs/cgroup",
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    assert_eq!(layout().unwrap(), Layout::V2);

    let _restore = RootControls::remember();
    let deny_all = LinuxDeviceCgroupBuilder::default().allow(false).access("rwm").build().unwrap();
    let only_defaults = LinuxResourcesBuilder::default().devices(vec![deny_all.clone()]).build().unwrap();
    let cgroup = create(Path::new(&path), Some(&only_defaults));
    let dir = Path::new("/sys/fs/cgroup").join(cgroup.relative());
    assert!(dir.is_dir());

    // A shell placed in the cgroup opens a device: /dev/kmsg (c 1:11) is not among
    // the defaults, /dev/null is.
    let opens = |device: &str, mode: &str| {
        let mut child = Command::new("/bin/sh")
            .args(["-c", &format!("read go; exec 3{mode}{device}")])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        cgroup.add_process(Pid::from_raw(child.id() as i32)).unwrap();
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        child.wait().unwrap().success()
    };
    assert!(!opens("/dev/kmsg", "<"), "/dev/kmsg was opened despite the device filter");
    assert!(opens("/dev/null", "<>"), "/dev/null was refused");

    // update replaces the program: now /dev/kmsg may be read, not written.
    let kmsg_read = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(LinuxDeviceType::C)
        .major(1)
        .minor(11)
        .access("r")
        .build()
        .unwrap();
    cgroup.update(&LinuxResourcesBuilder::default().devices(vec![deny_all, kmsg_read]).build().unwrap()).unwrap();
    assert!(opens("/dev/kmsg", "<"), "/dev/kmsg read was refused after update");
    assert!(!opens("/dev/kmsg", ">"), "/dev/kmsg write was allowed");
    let cgroup_fd = std::fs::File::open(&dir).unwrap();
    let attached = crate::sys::bpf::query_cgroup_device_progs(std::os::fd::AsFd::as_fd(&cgroup_fd)).unwrap();
    assert_eq!(attached.len(), 1, "the old program was not detached");

    let mut child = Sleeper::spawn();
    cgroup.add_process(child.pid()).unwrap();
    assert_eq!(cgroup.pids().unwrap(), vec![child.pid()]);
    let lines = read(Path::new(&format!("/proc/{}/cgroup", child.pid())));
    assert!(lines.lines().any(|l| l == format!("0::{path}")), "{lines}");

    cgroup.freeze().unwrap();
    assert!(cgroup.is_frozen().unwrap());
    assert!(read(&dir.join("cgroup.events")).lines().any(|l| l == "frozen 1"));
    cgroup.thaw().unwrap();
    assert!(!cgroup.is_frozen().unwrap());

    cgroup.freeze().unwrap();
    cgroup.signal_all(Signal::SIGKILL).unwrap();
    assert_eq!(child.wait_signal(), Some(libc::SIGKILL));

    cgroup.remove().unwrap();
    assert!(!dir.exists());
}

/// The controllers enabled in the cgroup2 root before the test: `create` enables
/// the available ones (here `hugetlb`) as on a real v2 host; this puts the hybrid
/// host's root back as it was, however the test ends.
struct RootControls(String);

const ROOT_CONTROLS: &str = "/sys/fs/cgroup/cgroup.subtree_control";

impl RootControls {
    fn remember() -> Self {
        Self(read(Path::new(ROOT_CONTROLS)))
    }
}

impl Drop for RootControls {
    fn drop(&mut self) {
        let now = std::fs::read_to_string(ROOT_CONTROLS).unwrap_or_default();
        for controller in now.split_whitespace().filter(|c| !self.0.split_whitespace().any(|r| r == *c)) {
            let _ = write_file(Path::new(ROOT_CONTROLS), &format!("-{controller}"));
        }
    }
}
