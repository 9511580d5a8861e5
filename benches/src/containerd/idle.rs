//! The memory of N idle containers under containerd, per configuration: N
//! `ctr run -d` of a sleeping container (native: busybox `sleep`; wasm:
//! `sleep.wasm`, which prints `sleeping` and waits in `poll_oneoff`), then the
//! summed RSS and PSS (`/proc/PID/status`, `/proc/PID/smaps_rollup`) of every
//! shim process serving the run's namespace (amphi's shim with the helper it
//! forks), everything below them, every task's process tree (by the pid
//! containerd reports) and every process in the containers' cgroups, in case
//! one is not below its shim. Reported per container (the sum over N) and in
//! total, with the number of processes. One container of the kind is started
//! and removed first (a warm-up: amphi's compile cache, the page cache).
//!
//! A wasm container's stdout goes to a `file://` log, the same under both
//! shims, so that the harness can wait for `sleeping`; a native one has
//! `--null-io`.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::daemon::Daemon;
use super::interrupt::Interrupt;
use super::teardown::{cgroup_procs, container_cgroups, shims};
use super::{Config, SECTION};
use crate::memory::{Footprint, footprint, process_tree};
use crate::process::{ErrLog, reap_orphans, timed};
use crate::report::{Results, Unit};

const MIB: f64 = 1024.0 * 1024.0;

/// One kind of idle container.
#[derive(Debug, Clone, Copy)]
pub struct IdleKind {
    /// The workload name in the results.
    pub workload: &'static str,
    pub image: &'static str,
    pub args: &'static [&'static str],
    /// The line its stdout shows once it is up (then it goes to a log file).
    pub ready_line: Option<&'static str>,
}

/// What N idle containers of one configuration cost.
#[derive(Debug, Clone, Copy)]
pub struct IdleMemory {
    pub sum: Footprint,
    /// The shim processes' own part of `sum`.
    pub shims: Footprint,
    pub processes: usize,
    pub shim_processes: usize,
}

/// Starts `ids.len()` idle containers of `kind` under `config`, measures them and
/// removes them again (also when starting or measuring failed).
pub fn measure(
    daemon: &Daemon,
    config: &Config,
    kind: IdleKind,
    ids: &[String],
    logs_dir: &Path,
    interrupt: &Interrupt,
) -> anyhow::Result<IdleMemory> {
    reap_orphans();
    std::thread::sleep(Duration::from_millis(300));
    let mut started = Vec::new();
    let measured = start_and_measure(daemon, config, kind, ids, logs_dir, interrupt, &mut started);
    let removed = remove_all(daemon, &started);
    for id in ids {
        let _ = std::fs::remove_file(logs_dir.join(format!("{id}.log")));
    }
    reap_orphans();
    let measured = measured?;
    removed?;
    Ok(measured)
}

fn start_and_measure(
    daemon: &Daemon,
    config: &Config,
    kind: IdleKind,
    ids: &[String],
    logs_dir: &Path,
    interrupt: &Interrupt,
    started: &mut Vec<String>,
) -> anyhow::Result<IdleMemory> {
    let err = ErrLog::create(&logs_dir.join("idle.err"))?;
    for id in ids {
        interrupt.check()?;
        let log = logs_dir.join(format!("{id}.log"));
        let mut args: Vec<String> = vec!["run".into(), "-d".into()];
        match kind.ready_line {
            Some(_) => args.push(format!("--log-uri=file://{}", log.display())),
            None => args.push("--null-io".into()),
        }
        args.extend(config.runtime_args());
        args.extend([kind.image.to_owned(), id.clone()]);
        args.extend(kind.args.iter().map(|a| (*a).to_owned()));
        let mut cmd = daemon.ctr(&args);
        cmd.stdout(Stdio::null());
        let ran = timed(&mut cmd, &err);
        // A failed `ctr run -d` may still have made the container.
        started.push(id.clone());
        ran?;
        if let Some(line) = kind.ready_line {
            wait_for_line(&log, line, interrupt).with_context(|| format!("container {id}"))?;
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let tasks = daemon.tasks()?;
    for id in ids {
        match tasks.iter().find(|(task, _, _)| task == id) {
            Some((_, _, status)) if status == "RUNNING" => {}
            Some((_, pid, status)) => bail!("task {id} ({pid}) is {status}, not running"),
            None => bail!("task {id} is gone"),
        }
    }
    let shim_processes = shims(&daemon.namespace);
    if shim_processes.is_empty() {
        bail!(
            "no shim process serves namespace {} (looked for {:?})",
            daemon.namespace,
            super::teardown::SHIM_BINARIES
        );
    }
    let mut pids: Vec<i32> = shim_processes.iter().flat_map(|s| process_tree(s.pid)).collect();
    pids.extend(tasks.iter().flat_map(|(_, pid, _)| process_tree(*pid)));
    pids.extend(container_cgroups(&daemon.namespace).iter().flat_map(|c| cgroup_procs(c)));
    pids.sort_unstable();
    pids.dedup();
    let shim_pids: Vec<i32> = shim_processes.iter().map(|s| s.pid).collect();
    Ok(IdleMemory {
        sum: footprint(&pids),
        shims: footprint(&shim_pids),
        processes: pids.len(),
        shim_processes: shim_processes.len(),
    })
}

/// Waits until the log at `path` holds `line`, for 20 s at most.
fn wait_for_line(path: &Path, line: &str, interrupt: &Interrupt) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if std::fs::read_to_string(path).is_ok_and(|text| text.lines().any(|l| l.trim_end() == line)) {
            return Ok(());
        }
        interrupt.check()?;
        if Instant::now() > deadline {
            bail!("{} did not show {line:?} within 20 s", path.display());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Removes every task and container in `ids`, four at a time; every one is
/// tried, the first failure is returned.
fn remove_all(daemon: &Daemon, ids: &[String]) -> anyhow::Result<()> {
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for first in 0..4 {
            let failures = &failures;
            scope.spawn(move || {
                for id in ids.iter().skip(first).step_by(4) {
                    if let Err(e) = daemon.remove(id) {
                        failures.lock().unwrap_or_else(|p| p.into_inner()).push(e);
                    }
                }
            });
        }
    });
    match failures.into_inner().unwrap_or_else(|p| p.into_inner()).into_iter().next() {
        Some(e) => Err(e.context("remove the idle containers")),
        None => Ok(()),
    }
}

/// Records one measurement: per container and in total.
pub fn record(results: &mut Results, workload: &str, runtime: &str, memory: IdleMemory, n: usize) {
    let (rss, pss) = (memory.sum.rss as f64 / MIB, memory.sum.pss as f64 / MIB);
    let per = n.max(1) as f64;
    results.push(SECTION, workload, "rss/container", runtime, Unit::MiB, rss / per);
    results.push(SECTION, workload, "pss/container", runtime, Unit::MiB, pss / per);
    results.push(SECTION, workload, "shims' pss/container", runtime, Unit::MiB, memory.shims.pss as f64 / MIB / per);
    results.push(SECTION, workload, "rss total", runtime, Unit::MiB, rss);
    results.push(SECTION, workload, "pss total", runtime, Unit::MiB, pss);
    results.push(SECTION, workload, "processes", runtime, Unit::Count, memory.processes as f64);
    results.push(SECTION, workload, "shim processes", runtime, Unit::Count, memory.shim_processes as f64);
}
