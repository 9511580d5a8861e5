//! Memory: the peak RSS of a runtime's command (what a node pays per
//! lifecycle), the memory of a running container (wasm against native), and the
//! density of N idle containers.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cli::Plan;
use crate::lifecycle::{force_delete, ms};
use crate::process::{ErrLog, read_pid_file, reap_orphans, timed, wait_init, with_rusage};
use crate::report::{Results, Unit};
use crate::runtime::{Bench, Runtime};
use crate::workload::{CacheChoice, Idle, Invocation, Workload, Workloads};

pub const RSS_SECTION: &str = "runtime-rss";
pub const CONTAINER_SECTION: &str = "container-memory";
pub const DENSITY_SECTION: &str = "density";

const MIB: f64 = 1024.0 * 1024.0;

/// A started, idle container.
#[derive(Debug)]
pub struct IdleContainer {
    pub id: String,
    pub pid: i32,
}

/// Creates and starts an idle container (stdout to `out`) and waits until it is
/// up: for a workload that says when it is (`sleeping`), until it did.
#[expect(clippy::too_many_arguments, reason = "one call site per section; a struct would only rename them")]
pub fn start_idle(
    runtime: &Runtime,
    bundle: &Path,
    cache: &CacheChoice,
    id: &str,
    err: &ErrLog,
    out: &Path,
    work: &Path,
    idle: Idle,
) -> anyhow::Result<IdleContainer> {
    let globals = cache.globals(id);
    let (_, pid) = create_for_pid(runtime, &globals, bundle, id, out, work, err)?;
    let container = IdleContainer { id: id.to_owned(), pid };
    let started = timed(&mut runtime.oci(&globals, ["start", id]), err).and_then(|_| match idle.ready_line() {
        Some(line) => wait_for_line(out, line, container.pid),
        None => Ok(()),
    });
    if let Err(e) = started {
        stop_idle(runtime, &container, err)?;
        return Err(e);
    }
    Ok(container)
}

/// `create` of `id` from `bundle`, the container's stdout to `out`: how long
/// it took and the init's pid (through a pid file in `work`). A failed create
/// is force-deleted.
pub fn create_for_pid(
    runtime: &Runtime,
    globals: &[OsString],
    bundle: &Path,
    id: &str,
    out: &Path,
    work: &Path,
    err: &ErrLog,
) -> anyhow::Result<(Duration, i32)> {
    let pid_file = work.join(format!("{id}.pid"));
    let stdout = std::fs::File::create(out).with_context(|| format!("create {}", out.display()))?;
    let mut create = runtime.oci(
        globals,
        [
            OsStr::new("create"),
            OsStr::new("--bundle"),
            bundle.as_os_str(),
            OsStr::new("--pid-file"),
            pid_file.as_os_str(),
            OsStr::new(id),
        ],
    );
    create.stdout(stdout);
    let created = timed(&mut create, err).and_then(|took| Ok((took, read_pid_file(&pid_file)?)));
    let _ = std::fs::remove_file(&pid_file);
    if created.is_err() {
        force_delete(runtime, id);
    }
    created
}

/// Waits until `path` holds `line` (the workload is up), or fails when `pid`
/// exits or 20 s pass.
fn wait_for_line(path: &Path, line: &str, pid: i32) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if std::fs::read_to_string(path).is_ok_and(|text| text.lines().any(|l| l == line)) {
            return Ok(());
        }
        if !crate::process::is_alive(pid) {
            bail!("the container exited before printing {line:?}");
        }
        if Instant::now() > deadline {
            bail!("the container did not print {line:?} within 20 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Kills the container's init, waits for it and deletes the container.
pub fn stop_idle(runtime: &Runtime, container: &IdleContainer, err: &ErrLog) -> anyhow::Result<()> {
    let _ = kill(Pid::from_raw(container.pid), Signal::SIGKILL);
    wait_init(container.pid)?;
    if let Err(e) = timed(&mut runtime.oci(&[], ["delete", container.id.as_str()]), err) {
        force_delete(runtime, &container.id);
        return Err(e);
    }
    Ok(())
}

/// `pid` and all its descendants.
pub fn process_tree(pid: i32) -> Vec<i32> {
    let mut all = vec![pid];
    let mut next = 0;
    while next < all.len() {
        let parent = all[next];
        next += 1;
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{parent}/task")) else { continue };
        for task in tasks.flatten() {
            let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            all.extend(children.split_whitespace().filter_map(|c| c.parse::<i32>().ok()));
        }
    }
    all
}

/// The memory of a set of processes, in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Footprint {
    pub rss: u64,
    pub hwm: u64,
    pub pss: u64,
}

impl std::ops::AddAssign for Footprint {
    fn add_assign(&mut self, other: Self) {
        self.rss += other.rss;
        self.hwm += other.hwm;
        self.pss += other.pss;
    }
}

/// The summed VmRSS, VmHWM (/proc/PID/status) and Pss (/proc/PID/smaps_rollup)
/// of `pids`.
pub fn footprint(pids: &[i32]) -> Footprint {
    let field = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    let mut sum = Footprint::default();
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        sum += Footprint { rss: field(&status, "VmRSS:"), hwm: field(&status, "VmHWM:"), pss: field(&rollup, "Pss:") };
    }
    sum
}

/// `MemAvailable` from /proc/meminfo, in bytes.
fn mem_available() -> anyhow::Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").context("read /proc/meminfo")?;
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .context("/proc/meminfo has no MemAvailable")
}

pub fn measure(plan: &Plan, bench: &mut Bench, workloads: &Workloads, results: &mut Results) -> anyhow::Result<()> {
    runtime_rss(plan, bench, workloads, results)?;
    container_memory(plan, bench, workloads, results)?;
    density(plan, bench, workloads, results)
}

/// The peak RSS of `run`, and of `create`, per runtime and workload.
fn runtime_rss(plan: &Plan, bench: &mut Bench, workloads: &Workloads, results: &mut Results) -> anyhow::Result<()> {
    let usage_file = bench.work.join("rusage.out");
    let pid_file = bench.work.join("rss.pid");
    for round in 0..plan.rss_iterations {
        for workload in [Workload::True, Workload::ModuleWarm, Workload::ComponentWarm] {
            for index in crate::lifecycle::rotated(bench.runtimes.len(), round) {
                let runtime = &bench.runtimes[index];
                if !runtime.active() {
                    continue;
                }
                let Some(invocation) = workloads.invocation(runtime, workload) else { continue };
                let name = runtime.name.clone();
                let (id, id2) = (bench.new_id(&name), bench.new_id(&name));
                let bench = &*bench;
                let measured = bench.in_view(index, |runtime| -> anyhow::Result<(u64, Option<u64>)> {
                    match &invocation {
                        Invocation::Direct { argv } => {
                            let mut cmd = Command::new(&argv[0]);
                            cmd.args(&argv[1..]);
                            Ok((with_rusage(&cmd, &usage_file, &bench.err)?.max_rss, None))
                        }
                        Invocation::Oci { bundle, cache } => {
                            let cmd = runtime.oci(
                                &cache.globals(&id),
                                [OsStr::new("run"), OsStr::new("--bundle"), bundle.as_os_str(), OsStr::new(&id)],
                            );
                            let run = with_rusage(&cmd, &usage_file, &bench.err);
                            if run.is_err() {
                                force_delete(runtime, &id);
                            }
                            let run = run?.max_rss;
                            let cmd = runtime.oci(
                                &cache.globals(&id2),
                                [
                                    OsStr::new("create"),
                                    OsStr::new("--bundle"),
                                    bundle.as_os_str(),
                                    OsStr::new("--pid-file"),
                                    pid_file.as_os_str(),
                                    OsStr::new(&id2),
                                ],
                            );
                            let create = with_rusage(&cmd, &usage_file, &bench.err);
                            if create.is_err() {
                                force_delete(runtime, &id2);
                            }
                            let create = create?.max_rss;
                            let container = IdleContainer { id: id2.clone(), pid: read_pid_file(&pid_file)? };
                            stop_idle(runtime, &container, &bench.err)?;
                            Ok((run, Some(create)))
                        }
                    }
                })?;
                let Some((run, create)) = results.keep(&name, workload.name(), "peak RSS", measured)? else { continue };
                results.push(RSS_SECTION, workload.name(), "run", &name, Unit::MiB, run as f64 / MIB);
                if let Some(create) = create {
                    results.push(RSS_SECTION, workload.name(), "create", &name, Unit::MiB, create as f64 / MIB);
                }
            }
            reap_orphans();
        }
    }
    Ok(())
}

/// RSS, peak RSS and PSS of a running idle container's processes, per runtime
/// and kind; and of the host's `wasmtime run` of the same sleeping module.
fn container_memory(
    plan: &Plan,
    bench: &mut Bench,
    workloads: &Workloads,
    results: &mut Results,
) -> anyhow::Result<()> {
    for round in 0..plan.rss_iterations {
        for idle in Idle::ALL {
            for index in crate::lifecycle::rotated(bench.runtimes.len(), round) {
                let runtime = &bench.runtimes[index];
                if !runtime.active() {
                    continue;
                }
                let Some((bundle, cache)) = workloads.idle_bundle(runtime, idle) else { continue };
                let name = runtime.name.clone();
                let id = bench.new_id(&name);
                let out = bench.work.join(format!("{id}.out"));
                let bench = &*bench;
                let footprint = bench.in_view(index, |runtime| -> anyhow::Result<Footprint> {
                    let container = start_idle(runtime, &bundle, &cache, &id, &bench.err, &out, &bench.work, idle)?;
                    std::thread::sleep(Duration::from_millis(100));
                    let footprint = footprint(&process_tree(container.pid));
                    stop_idle(runtime, &container, &bench.err)?;
                    Ok(footprint)
                })?;
                let Some(footprint) = results.keep(&name, idle.name(), "container memory", footprint)? else {
                    continue;
                };
                let _ = std::fs::remove_file(&out);
                record_footprint(results, CONTAINER_SECTION, idle.name(), &name, footprint, 1);
            }
            if idle == Idle::Wasm
                && let Some(argv) = workloads.host_sleep_argv(bench)
            {
                let out = bench.work.join("wasmtime-sleep.out");
                let stdout = std::fs::File::create(&out).with_context(|| format!("create {}", out.display()))?;
                let mut child = Command::new(&argv[0])
                    .args(&argv[1..])
                    .stdin(Stdio::null())
                    .stdout(stdout)
                    .stderr(Stdio::null())
                    .spawn()
                    .with_context(|| format!("run {}", argv[0].display()))?;
                let pid = child.id() as i32;
                let ready = wait_for_line(&out, "sleeping", pid);
                std::thread::sleep(Duration::from_millis(100));
                let measured = footprint(&process_tree(pid));
                let _ = child.kill();
                let _ = child.wait();
                ready?;
                record_footprint(results, CONTAINER_SECTION, idle.name(), "wasmtime", measured, 1);
            }
            reap_orphans();
        }
    }
    Ok(())
}

fn record_footprint(results: &mut Results, section: &str, workload: &str, runtime: &str, f: Footprint, n: usize) {
    let n = n as f64;
    results.push(section, workload, "rss", runtime, Unit::MiB, f.rss as f64 / MIB / n);
    results.push(section, workload, "peak-rss", runtime, Unit::MiB, f.hwm as f64 / MIB / n);
    results.push(section, workload, "pss", runtime, Unit::MiB, f.pss as f64 / MIB / n);
}

/// N idle containers of each kind per runtime: their summed memory per
/// container, the drop of MemAvailable per container, and how long starting
/// them took.
fn density(plan: &Plan, bench: &mut Bench, workloads: &Workloads, results: &mut Results) -> anyhow::Result<()> {
    for idle in [Idle::Native, Idle::Wasm] {
        for index in 0..bench.runtimes.len() {
            let runtime = &bench.runtimes[index];
            if !runtime.active() {
                continue;
            }
            let Some((bundle, cache)) = workloads.idle_bundle(runtime, idle) else { continue };
            let name = runtime.name.clone();
            let ids: Vec<String> = (0..plan.density).map(|_| bench.new_id(&name)).collect();
            let bench = &*bench;
            let measured = bench.in_view(index, |runtime| -> anyhow::Result<(Footprint, f64, Duration)> {
                reap_orphans();
                std::thread::sleep(Duration::from_millis(300));
                let before = mem_available()?;
                let started = Instant::now();
                let mut containers: Vec<IdleContainer> = Vec::new();
                let mut result = Ok(());
                for id in &ids {
                    let out = bench.work.join(format!("{id}.out"));
                    match start_idle(runtime, &bundle, &cache, id, &bench.err, &out, &bench.work, idle) {
                        Ok(container) => containers.push(container),
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                }
                let took = started.elapsed();
                std::thread::sleep(Duration::from_millis(500));
                let after = mem_available();
                let mut sum = Footprint::default();
                for container in &containers {
                    sum += footprint(&process_tree(container.pid));
                }
                for container in &containers {
                    stop_idle(runtime, container, &bench.err)?;
                    let _ = std::fs::remove_file(bench.work.join(format!("{}.out", container.id)));
                }
                result?;
                let dropped = before.saturating_sub(after?) as f64;
                Ok((sum, dropped, took))
            })?;
            let Some((sum, dropped, took)) = results.keep(&name, idle.name(), "density", measured)? else { continue };
            record_footprint(results, DENSITY_SECTION, idle.name(), &name, sum, plan.density);
            let n = plan.density as f64;
            results.push(DENSITY_SECTION, idle.name(), "memavailable-drop", &name, Unit::MiB, dropped / MIB / n);
            results.push(DENSITY_SECTION, idle.name(), "create+start", &name, Unit::Ms, ms(took) / n);
        }
    }
    Ok(())
}
