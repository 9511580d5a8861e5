//! # amphi-bench: how fast a container starts, how many fit, how fast it serves
//!
//! The harness drives the built runtimes as a user (or containerd) would: whole
//! processes, `RUNTIME --root DIR create|start|delete|run …`, never library
//! calls, so amphi and its peers (runc, crun, youki: any binary with runc's
//! command line) are measured the same way. Two baselines run beside them: the
//! *floor* (util-linux `unshare` forking into new namespaces, chrooting into the
//! same rootfs and exec'ing the same binary, with no runtime) and, when a
//! `wasmtime` binary is found, `wasmtime run` of the same wasm program.
//!
//! ## The life of a run
//! 1. [`runtime`]: find the runtimes and their versions; probe each with a
//!    `/bin/true` lifecycle. A peer that refuses the host's cgroup layout (crun
//!    1.8 on a hybrid v1/v2 host) is given a private mount namespace where
//!    `/sys/fs/cgroup` is the cgroup2 mount, entered with `setns` by the harness
//!    before it spawns that peer's commands (no extra process per command).
//! 2. [`workload`]: build the bundles (busybox `true`, `echo`, `sleep`; the wasm
//!    hello module and component; wasmtime's CLI in a native container) and
//!    check each `(runtime, workload)` once, with its output; what fails is
//!    reported as skipped, with the runtime's own words.
//! 3. The sections, each with warm-up runs first and the N measured runs
//!    interleaved across runtimes (A B C, then B C A, C A B …), so that drift,
//!    and the asynchronous kernel work a runtime leaves behind, hit all alike:
//!    [`lifecycle`] (`run`, and create/start/wait/delete as separate commands),
//!    [`commands`] (`--version`, `state`, `list`, `kill`), [`memory`] (peak RSS of
//!    the runtime's processes, RSS of a running container, density of N idle
//!    containers), [`throughput`] (containers per second, alone and K at once)
//!    [`containerd`] (`ctr run --rm`, tasks per second and the memory of N
//!    idle containers, with each runtime as the runc shim's runc binary and
//!    with amphi's own shim, against a containerd the harness starts, which it
//!    tears down even when the section fails or is interrupted) and [`http`] (wasm
//!    services: amphi serving a `wasi:http` component against `wasmtime
//!    serve` and a native server under runc, driven by `wrk`).
//! 4. [`leaks`]: every container the harness made must be gone: state dirs,
//!    cgroups, processes, mounts. The report says so either way.
//! 5. [`report`]: a table on stdout; `results.csv`, `summary.md` and
//!    `lifecycle.svg` ([`chart`]) under `benches/runs/<date>-<host>/`.
//!
//! ## What it must never do
//! - Touch a container it did not make: ids carry a per-run prefix, state lives
//!   under the harness's own `--root` directories.
//! - Make the numbers kinder: a failed run is an error, not a skipped sample.

mod chart;
mod cli;
mod commands;
mod containerd;
mod host;
mod http;
mod leaks;
mod lifecycle;
mod memory;
mod process;
mod report;
mod runtime;
mod stats;
mod throughput;
mod workload;

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The helper that measures one command's peak RSS: see `process::rusage_main`.
    if args.get(1).is_some_and(|a| a == process::RUSAGE_HELPER) {
        return process::rusage_main(&args[2..]);
    }
    let options = cli::Options::parse();
    match run(options) {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "amphi-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: cli::Options) -> anyhow::Result<ExitCode> {
    let plan = cli::Plan::resolve(options)?;
    nix::sys::prctl::set_child_subreaper(true).context("become the subreaper of the containers")?;
    let mut bench = runtime::Bench::prepare(&plan)?;
    let mut results = report::Results::default();
    let mut workloads = workload::Workloads::build(&plan, &bench)?;
    workload::check_all(&mut bench, &mut workloads, &mut results)?;
    report::unsupported_notes(&mut bench, &workloads.unsupported);

    if plan.sections.lifecycle {
        lifecycle::measure(&plan, &mut bench, &workloads, &mut results)?;
    }
    if plan.sections.commands {
        commands::measure(&plan, &mut bench, &workloads, &mut results)?;
    }
    if plan.sections.memory {
        memory::measure(&plan, &mut bench, &workloads, &mut results)?;
    }
    if plan.sections.throughput {
        throughput::measure(&plan, &mut bench, &workloads, &mut results)?;
    }
    if plan.sections.containerd
        && let Err(e) = containerd::measure(&plan, &mut bench, &mut results)
    {
        // The section has torn its containerd down; the work directory goes too.
        bench.cleanup();
        return Err(e);
    }
    if plan.sections.http {
        http::measure(&plan, &mut bench, &mut results)?;
    }
    results.leaks = leaks::check(&bench)?;
    let machine = host::Machine::describe(&bench);
    let written = report::write_all(&plan, &bench, &machine, &results)?;
    let mut out = std::io::stdout().lock();
    out.write_all(report::stdout_table(&plan, &bench, &results).as_bytes())?;
    writeln!(out, "\nwritten: {}", written.display())?;
    bench.cleanup();
    // A peer's failures and leftovers are reported, not fatal: CI judges amphi.
    let failed = results.leaks.iter().any(|l| l.runtime == "amphi" && !l.clean()) || results.amphi_failed();
    for failure in &results.amphi_failures {
        writeln!(out, "amphi failed: {failure}")?;
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
