//! Throughput: containers per second, one `run` after the other, and with K
//! `run`s at once (K threads, each running its share one after the other).

use std::process::Stdio;
use std::time::Instant;

use anyhow::Context;

use crate::cli::Plan;
use crate::lifecycle::run_once;
use crate::process::{ErrLog, reap_orphans};
use crate::report::{Results, Unit};
use crate::runtime::Bench;
use crate::workload::{Workload, Workloads};

pub const SECTION: &str = "throughput";

pub fn measure(plan: &Plan, bench: &mut Bench, workloads: &Workloads, results: &mut Results) -> anyhow::Result<()> {
    for workload in [Workload::True, Workload::ModuleWarm] {
        for index in 0..bench.runtimes.len() {
            let runtime = &bench.runtimes[index];
            if !runtime.active() {
                continue;
            }
            let Some(invocation) = workloads.invocation(runtime, workload) else { continue };
            let name = runtime.name.clone();
            let ids: Vec<String> = (0..plan.throughput * 2).map(|_| bench.new_id(&name)).collect();
            let (sequential_ids, parallel_ids) = ids.split_at(plan.throughput);
            let logs: Vec<ErrLog> = (0..plan.parallel)
                .map(|k| ErrLog::create(&bench.work.join(format!("throughput-{k}.err"))))
                .collect::<anyhow::Result<_>>()?;
            let bench = &*bench;
            let measured = bench.in_view(index, |runtime| -> anyhow::Result<(f64, f64)> {
                let started = Instant::now();
                for id in sequential_ids {
                    run_once(runtime, &invocation, id, &bench.err, Stdio::null())?;
                }
                let sequential = plan.throughput as f64 / started.elapsed().as_secs_f64();
                let started = Instant::now();
                let outcome = at_once(parallel_ids, &logs, |id, log| {
                    run_once(runtime, &invocation, id, log, Stdio::null()).map(drop)
                });
                let parallel = plan.throughput as f64 / started.elapsed().as_secs_f64();
                outcome.context("parallel runs")?;
                Ok((sequential, parallel))
            })?;
            let Some((sequential, parallel)) = results.keep(&name, workload.name(), "throughput", measured)? else {
                continue;
            };
            reap_orphans();
            results.push(SECTION, workload.name(), "sequential", &name, Unit::PerSec, sequential);
            results.push(
                SECTION,
                workload.name(),
                &format!("parallel-{}", plan.parallel),
                &name,
                Unit::PerSec,
                parallel,
            );
        }
    }
    Ok(())
}

/// Runs `run` for every id, `logs.len()` threads at once (thread k takes ids
/// k, k+K, k+2K…, one after the other, with log k); the first failure.
pub fn at_once(
    ids: &[String],
    logs: &[ErrLog],
    run: impl Fn(&str, &ErrLog) -> anyhow::Result<()> + Sync,
) -> anyhow::Result<()> {
    let k = logs.len().max(1);
    let run = &run;
    std::thread::scope(|scope| {
        let handles: Vec<_> = logs
            .iter()
            .enumerate()
            .map(|(first, log)| {
                scope.spawn(move || -> anyhow::Result<()> {
                    ids.iter().skip(first).step_by(k).try_for_each(|id| run(id, log))
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a thread panicked"))))
    })
}
