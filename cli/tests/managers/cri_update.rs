//! A running container's resources updated through the CRI
//! (`UpdateContainerResources`, what the kubelet sends for an in-place
//! resize; ctr 1.6 has no `task update`), either way in: containerd turns it
//! into the task's Update, and the container's cgroup files show the new
//! limits. An update the kernel refuses (a cpuset of a CPU the host lacks)
//! fails (containerd's log shows amphi's error when amphi's shim ran it; the
//! runc shim passes on only the exit status), and the container runs on with
//! its limits unchanged.

use std::path::{Path, PathBuf};

use crate::containerd::Via;
use crate::cri::Pb;
use crate::kubernetes::{
    CRI_LOCK, K8S_NAMESPACE, PidMode, PodRun, container_config, container_state, run_pod, start_container, wait_state,
};
use crate::support::{self, can_run, images};

/// The file `file` of the container `id`'s cgroup in `controller`'s
/// hierarchy (cgroup v1), or in the unified one.
fn cgroup_file(id: &str, controller: &str, file: &str) -> PathBuf {
    let rel = Path::new(K8S_NAMESPACE).join(id).join(file);
    let v1 = Path::new("/sys/fs/cgroup").join(controller).join(&rel);
    if v1.exists() { v1 } else { Path::new("/sys/fs/cgroup").join(rel) }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())).trim().to_owned()
}

/// LinuxContainerResources: the CFS period and quota, the memory limit, the
/// cpuset (empty: left out).
fn resources(period: u64, quota: u64, memory: u64, cpus: &str) -> Pb {
    let linux = Pb::new().int(1, period).int(2, quota).int(4, memory);
    if cpus.is_empty() { linux } else { linux.str(6, cpus) }
}

fn a_running_container_takes_new_resources(via: Via) {
    if !can_run("containerd") || !via.applies() {
        return;
    }
    let _one_at_a_time = CRI_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let PodRun { ctrd, cri, logs, pod, sandbox } =
        run_pod(via, PidMode::Container, &[&images().pause, &images().native]);
    let config = container_config("app", "amphi.test/native:latest", &["/bin/sleep", "1000"], PidMode::Container);
    let app = start_container(&cri, &ctrd, &sandbox, &pod, config);
    wait_state(&cri, &ctrd, &app, 1, &logs.join("app.log"));

    let memory = 48u64 << 20;
    let update = Pb::new().str(1, &app).msg(2, resources(100_000, 50_000, memory, ""));
    cri.call("UpdateContainerResources", &update).unwrap_or_else(|e| panic!("{e}; containerd:\n{}", ctrd.log()));
    let limit = cgroup_file(&app, "memory", "memory.limit_in_bytes");
    let quota = cgroup_file(&app, "cpu", "cpu.cfs_quota_us");
    if limit.exists() {
        assert_eq!(read(&limit), memory.to_string(), "{}", limit.display());
        assert_eq!(read(&quota), "50000", "{}", quota.display());
    } else {
        assert_eq!(read(&cgroup_file(&app, "", "memory.max")), memory.to_string());
        assert_eq!(read(&cgroup_file(&app, "", "cpu.max")), "50000 100000");
    }

    // A CPU the host lacks: the kernel refuses the cpuset.
    let update = Pb::new().str(1, &app).msg(2, resources(100_000, 50_000, memory, "1000000"));
    assert!(cri.call("UpdateContainerResources", &update).is_err(), "an update with a cpuset of cpu 1000000");
    let failed = format!(r#"UpdateContainerResources for \"{app}\" failed"#);
    support::wait_until("containerd logs the failed update", || ctrd.log().contains(&failed));
    if via == Via::AmphiShim {
        // containerd's runc shim passes on only the runtime's exit status
        // ("did not terminate successfully: exit status 1: : unknown").
        let log = ctrd.log();
        let line = log.lines().find(|l| l.contains(&failed)).unwrap_or_default();
        assert!(line.contains("cpuset"), "the runtime's error names the cpuset: {line}");
    }
    assert_eq!(container_state(&cri, &app).0, 1, "the container runs on");
    if limit.exists() {
        assert_eq!(read(&limit), memory.to_string(), "{}", limit.display());
    }

    cri.ok("StopContainer", &Pb::new().str(1, &app).int(2, 0));
    cri.ok("StopPodSandbox", &Pb::new().str(1, &sandbox));
    cri.ok("RemovePodSandbox", &Pb::new().str(1, &sandbox));
    ctrd.finish();
}

#[test]
fn a_running_container_takes_new_resources_through_the_runc_shim() {
    a_running_container_takes_new_resources(Via::RuncShim);
}

#[test]
fn a_running_container_takes_new_resources_through_amphi_shim() {
    a_running_container_takes_new_resources(Via::AmphiShim);
}
