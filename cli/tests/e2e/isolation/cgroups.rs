//! Cgroups: `linux.cgroupsPath` and the resources written to the
//! container's cgroup files (memory, cpu, pids, blkio).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::{STAY, with_checks};
use crate::support::{self, Case, check, proc_file};

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
