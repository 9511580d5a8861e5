//! The lifecycle measurements: `RUNTIME run` of a workload, and the same as
//! containerd drives it, one command at a time: create, start, wait (the
//! harness waits for the init, as containerd's shim does), delete.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::cli::Plan;
use crate::process::{ErrLog, read_pid_file, reap_orphans, timed, wait_init};
use crate::report::{Results, Unit};
use crate::runtime::{Bench, Runtime};
use crate::workload::{Invocation, Workload, Workloads};

pub const SECTION: &str = "lifecycle";

/// How long each command of a create/start/wait/delete lifecycle took.
#[derive(Debug, Clone, Copy)]
pub struct Phases {
    pub create: Duration,
    pub start: Duration,
    pub wait: Duration,
    pub delete: Duration,
}

impl Phases {
    pub fn total(&self) -> Duration {
        self.create + self.start + self.wait + self.delete
    }
}

/// One `run` (or the baseline's whole command) of `invocation`, with the
/// container's stdout going to `stdout`; the time of the whole command.
pub fn run_once(
    runtime: &Runtime,
    invocation: &Invocation,
    id: &str,
    err: &ErrLog,
    stdout: Stdio,
) -> anyhow::Result<Duration> {
    match invocation {
        Invocation::Oci { bundle, cache } => {
            let mut cmd = runtime.oci(
                &cache.globals(id),
                [OsStr::new("run"), OsStr::new("--bundle"), bundle.as_os_str(), OsStr::new(id)],
            );
            cmd.stdout(stdout);
            let took = timed(&mut cmd, err);
            cache.done(id);
            if took.is_err() {
                force_delete(runtime, id);
            }
            took
        }
        Invocation::Direct { argv } => {
            let mut cmd = Command::new(&argv[0]);
            cmd.args(&argv[1..]).stdout(stdout);
            timed(&mut cmd, err)
        }
    }
}

/// One create/start/wait/delete lifecycle of an OCI invocation.
pub fn split_once(
    runtime: &Runtime,
    invocation: &Invocation,
    id: &str,
    err: &ErrLog,
    pid_file: &Path,
) -> anyhow::Result<Phases> {
    let Invocation::Oci { bundle, cache } = invocation else {
        bail!("{}: no create/start/delete for a baseline", runtime.name);
    };
    let _ = std::fs::remove_file(pid_file);
    let globals = cache.globals(id);
    let mut pid = None;
    let result = (|| {
        let create = timed(
            &mut runtime.oci(
                &globals,
                [
                    OsStr::new("create"),
                    OsStr::new("--bundle"),
                    bundle.as_os_str(),
                    OsStr::new("--pid-file"),
                    pid_file.as_os_str(),
                    OsStr::new(id),
                ],
            ),
            err,
        )?;
        pid = Some(read_pid_file(pid_file)?);
        let start = timed(&mut runtime.oci(&globals, ["start", id]), err)?;
        let waited = Instant::now();
        let code = wait_init(pid.unwrap_or_default())?;
        let wait = waited.elapsed();
        pid = None;
        if let Some(code) = code
            && code != 0
        {
            bail!("{} container {id} exited {code}", runtime.name);
        }
        let delete = timed(&mut runtime.oci(&globals, ["delete", id]), err)?;
        Ok(Phases { create, start, wait, delete })
    })();
    cache.done(id);
    if result.is_err() {
        if let Some(pid) = pid {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            let _ = wait_init(pid);
        }
        force_delete(runtime, id);
    }
    result
}

/// `delete --force`, quietly: the cleanup after a failure.
pub fn force_delete(runtime: &Runtime, id: &str) {
    if runtime.is_oci() {
        let _ = runtime
            .oci(&[], ["delete", "--force", id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The mode of one lifecycle measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Run,
    Split,
}

/// Warm-up, then `plan.iterations` rounds; in each round every workload, in
/// each mode, runs once on every runtime, one runtime after the other.
pub fn measure(plan: &Plan, bench: &mut Bench, workloads: &Workloads, results: &mut Results) -> anyhow::Result<()> {
    let pid_file = bench.work.join("lifecycle.pid");
    for round in 0..plan.warmup + plan.iterations {
        let warming = round < plan.warmup;
        for workload in Workload::ALL {
            for mode in [Mode::Run, Mode::Split] {
                for index in rotated(bench.runtimes.len(), round) {
                    let runtime = &bench.runtimes[index];
                    if !runtime.active() || (mode == Mode::Split && !runtime.is_oci()) {
                        continue;
                    }
                    let Some(invocation) = workloads.invocation(runtime, workload) else { continue };
                    let name = runtime.name.clone();
                    let id = bench.new_id(&name);
                    if plan.drop_caches && !warming {
                        crate::host::drop_caches()?;
                    }
                    let bench = &*bench;
                    match mode {
                        Mode::Run => {
                            let took = bench.in_view(index, |runtime| {
                                run_once(runtime, &invocation, &id, &bench.err, Stdio::null())
                            })?;
                            let Some(took) = results.keep(&name, workload.name(), "run", took)? else {
                                // Keep run i in round i: a failed run is a gap (NaN).
                                if !warming {
                                    results.push(SECTION, workload.name(), "run", &name, Unit::Ms, f64::NAN);
                                }
                                continue;
                            };
                            if !warming {
                                results.push(SECTION, workload.name(), "run", &name, Unit::Ms, ms(took));
                            }
                        }
                        Mode::Split => {
                            let phases = bench.in_view(index, |runtime| {
                                split_once(runtime, &invocation, &id, &bench.err, &pid_file)
                            })?;
                            let phases = results.keep(&name, workload.name(), "create/start/wait/delete", phases)?;
                            if !warming {
                                // A failed lifecycle is a gap (NaN), so that run i stays in round i.
                                let value = |f: fn(&Phases) -> Duration| phases.as_ref().map_or(f64::NAN, |p| ms(f(p)));
                                for (measure, took) in [
                                    ("create", value(|p| p.create)),
                                    ("start", value(|p| p.start)),
                                    ("wait", value(|p| p.wait)),
                                    ("delete", value(|p| p.delete)),
                                    ("split-total", value(Phases::total)),
                                ] {
                                    results.push(SECTION, workload.name(), measure, &name, Unit::Ms, took);
                                }
                            }
                        }
                    }
                }
                reap_orphans();
            }
        }
    }
    Ok(())
}

/// The runtimes' indices in round `round`: `0..n` rotated by `round`, so that
/// each runtime follows each other one equally often. (A runtime that leaves
/// asynchronous kernel work behind — a network namespace's cleanup, a cgroup's
/// release — would otherwise always slow down the same next runtime.)
pub fn rotated(n: usize, round: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |i| (i + round) % n.max(1))
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
