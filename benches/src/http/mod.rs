//! The http section: wasm *services* (issue 13). The hello service under
//! amphi against `wasmtime serve` of the same component and a native static
//! server (busybox httpd) in a native container under runc ([`targets`]),
//! driven by `wrk` ([`wrk`]) on the same machine in the same run:
//!
//! 1. **First 200**: per round, each target is started fresh and timed to its
//!    first 200 (for amphi from `start` returning, on a connection made after
//!    `create`, as the socket listens from `create` on; for `wasmtime serve`,
//!    which has no create/start split, from its spawn: another column).
//! 2. **Load**: the three servers run side by side, idle but for the one being
//!    driven; per round, at 1, 16 and 64 connections, each is driven for the
//!    same time, the order rotated each round. Requests/s, p50 and p99
//!    latency, responses of 400 or more and socket errors; ratios against
//!    `wasmtime serve` are paired by round.
//! 3. **Memory**: each target started fresh, sent 1,000 requests, left idle a
//!    moment and measured (VmRSS of its processes; its cgroup's memory), then
//!    sent the rest of `--http-requests` (100,000) and measured again.
//!
//! Without `wrk` the section is skipped with a note; without `wasmtime` or
//! `runc` that target is left out with a note, and so are its ratios.

pub mod client;
mod table;
pub mod targets;
pub mod wrk;

use std::time::Duration;

use crate::cli::Plan;
use crate::lifecycle::{ms, rotated};
use crate::process::reap_orphans;
use crate::report::{Results, Unit};
use crate::runtime::Bench;
pub use table::markdown;
use targets::{Target, Targets};
use wrk::Wrk;

pub const SECTION: &str = "http";
/// The connection counts of the load measurement.
pub const CONNECTIONS: [usize; 3] = [1, 16, 64];
/// Requests before the first memory measurement.
pub const FIRST_REQUESTS: usize = 1000;
/// Connections the memory measurement's client uses.
const MEMORY_CONNECTIONS: usize = 4;
/// How long an idle server is left before its memory is read.
const SETTLE: Duration = Duration::from_millis(500);

pub fn measure(plan: &Plan, bench: &mut Bench, results: &mut Results) -> anyhow::Result<()> {
    let Some(wrk) = Wrk::find(&bench.work)? else {
        bench.notes.push("http: skipped, no `wrk` on PATH or in ~/.cargo/bin (apt-get install wrk)".into());
        return Ok(());
    };
    let targets = Targets::build(bench)?;
    if targets.wasmtime.is_none() {
        bench.notes.push("http: no wasmtime CLI, `wasmtime serve` left out, and the ratios with it".into());
    }
    if targets.runc.is_none() {
        bench.notes.push("http: no runc, the native reference (busybox httpd under runc) left out".into());
    }
    bench.notes.push(format!(
        "http: load from {} (threads: 1 at 1 connection, 2 from 16 on, on the same 2 cores as the servers), \
         {} s per point, {} rounds; servers on 127.0.0.1, containers without a network namespace of their own",
        wrk.version, plan.http_seconds, plan.http_rounds
    ));
    let available = targets.available();
    first_responses(plan, bench, results, &targets, &available)?;
    load(plan, bench, results, &targets, &available, &wrk)?;
    memory(plan, bench, results, &targets, &available)?;
    reap_orphans();
    Ok(())
}

/// Per round, each target started fresh and timed to its first 200.
fn first_responses(
    plan: &Plan,
    bench: &mut Bench,
    results: &mut Results,
    targets: &Targets,
    available: &[Target],
) -> anyhow::Result<()> {
    for round in 0..plan.warmup + plan.iterations {
        for k in rotated(available.len(), round) {
            let target = available[k];
            let launched = targets.launch_timed(bench, target).and_then(|(server, first)| {
                targets.stop(bench, server)?;
                Ok(first)
            });
            let first = results.keep(target.runtime(), target.workload(), "first 200", launched)?;
            if round < plan.warmup {
                continue;
            }
            let push = |results: &mut Results, measure: &str, value: Option<Duration>| {
                let value = value.map_or(f64::NAN, ms);
                results.push(SECTION, target.workload(), measure, target.runtime(), Unit::Ms, value);
            };
            match first {
                Some(first) => {
                    push(results, "create", first.create);
                    push(results, "start", first.start);
                    let to_200 = if target == Target::WasmtimeServe { "spawn-to-200" } else { "start-to-200" };
                    push(results, to_200, Some(first.to_200));
                    if let (Some(create), Some(start)) = (first.create, first.start) {
                        push(results, "create-to-200", Some(create + start + first.to_200));
                    }
                }
                None => push(results, "start-to-200", None),
            }
        }
        reap_orphans();
    }
    Ok(())
}

/// The servers side by side; per round and connection count, each driven in
/// turn.
fn load(
    plan: &Plan,
    bench: &mut Bench,
    results: &mut Results,
    targets: &Targets,
    available: &[Target],
    wrk: &Wrk,
) -> anyhow::Result<()> {
    let mut servers = Vec::new();
    for &target in available {
        let launched = targets.launch(bench, target).and_then(|server| {
            // Warm-up: the page cache, the allocator's pools, wrk itself.
            match wrk.run(server.addr, 16, 1, &bench.err) {
                Ok(_) => Ok(server),
                Err(e) => {
                    targets.stop(bench, server)?;
                    Err(e)
                }
            }
        });
        if let Some(server) = results.keep(target.runtime(), target.workload(), "http load warm-up", launched)? {
            servers.push(server);
        }
    }
    let outcome = (|| -> anyhow::Result<()> {
        for round in 0..plan.http_rounds {
            for (c, &connections) in CONNECTIONS.iter().enumerate() {
                for k in rotated(servers.len(), round * CONNECTIONS.len() + c) {
                    let server = &servers[k];
                    let (runtime, workload) = (server.target.runtime(), server.target.workload());
                    let measured = wrk.run(server.addr, connections, plan.http_seconds, &bench.err);
                    let Some(load) =
                        results.keep(runtime, workload, &format!("wrk, {connections} connections"), measured)?
                    else {
                        results.push(SECTION, workload, &at("req/s", connections), runtime, Unit::ReqPerSec, f64::NAN);
                        continue;
                    };
                    if runtime == "amphi" && load.bad_status + load.socket_errors > 0 {
                        results.amphi_failures.push(format!(
                            "http, {connections} connections, round {round}: {} responses of 400 or more, {} socket errors \
                             out of {} requests",
                            load.bad_status, load.socket_errors, load.requests
                        ));
                    }
                    let mut push = |name: &str, unit: Unit, value: f64| {
                        results.push(SECTION, workload, &at(name, connections), runtime, unit, value);
                    };
                    push("req/s", Unit::ReqPerSec, load.per_second());
                    push("p50", Unit::Ms, load.p50_ms);
                    push("p99", Unit::Ms, load.p99_ms);
                    push("status>=400", Unit::Count, load.bad_status as f64);
                    push("socket-errors", Unit::Count, load.socket_errors as f64);
                }
            }
        }
        Ok(())
    })();
    for server in servers {
        let runtime = server.target.runtime();
        let stopped = targets.stop(bench, server);
        results.keep(runtime, "http", "stop", stopped)?;
    }
    outcome
}

/// The name of a load measure at a connection count: `req/s c=16`.
pub fn at(name: &str, connections: usize) -> String {
    format!("{name} c={connections}")
}

/// Memory after 1k requests and after `--http-requests`.
fn memory(
    plan: &Plan,
    bench: &mut Bench,
    results: &mut Results,
    targets: &Targets,
    available: &[Target],
) -> anyhow::Result<()> {
    let total = plan.http_requests.max(FIRST_REQUESTS);
    for &target in available {
        let measured = (|| -> anyhow::Result<[targets::Memory; 2]> {
            let server = targets.launch(bench, target)?;
            let driven = (|| {
                client::drive(server.addr, FIRST_REQUESTS, MEMORY_CONNECTIONS)?;
                std::thread::sleep(SETTLE);
                let first = targets::memory(&server);
                client::drive(server.addr, total - FIRST_REQUESTS, MEMORY_CONNECTIONS)?;
                std::thread::sleep(SETTLE);
                Ok([first, targets::memory(&server)])
            })();
            targets.stop(bench, server)?;
            driven
        })();
        let Some([first, last]) =
            results.keep(target.runtime(), target.workload(), "memory under requests", measured)?
        else {
            continue;
        };
        const MIB: f64 = 1024.0 * 1024.0;
        let (runtime, workload) = (target.runtime(), target.workload());
        results.push(SECTION, workload, "rss after 1k", runtime, Unit::MiB, first.rss as f64 / MIB);
        results.push(SECTION, workload, "rss after all", runtime, Unit::MiB, last.rss as f64 / MIB);
        if let (Some(a), Some(b)) = (first.cgroup, last.cgroup) {
            results.push(SECTION, workload, "cgroup after 1k", runtime, Unit::MiB, a as f64 / MIB);
            results.push(SECTION, workload, "cgroup after all", runtime, Unit::MiB, b as f64 / MIB);
        }
    }
    Ok(())
}
