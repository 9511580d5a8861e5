//! The http section's tables (Markdown, also printed on stdout) and its
//! verdicts on issue 13's targets.

use std::fmt::Write as _;

use super::targets::Target;
use super::{CONNECTIONS, SECTION, at};
use crate::report::{Results, number};
use crate::stats::{paired_ratio, summarize};

const TARGETS: [Target; 3] = [Target::Amphi, Target::WasmtimeServe, Target::RuncHttpd];

/// The tables, or an empty string when the section did not run.
pub fn markdown(results: &Results, requests: usize) -> String {
    if !results.series.iter().any(|s| s.section == SECTION) {
        return String::new();
    }
    let mut md = String::new();
    let median = |measure: &str, t: Target| -> Option<f64> {
        summarize(&results.get(SECTION, t.workload(), measure, t.runtime())?.values).map(|s| s.median)
    };
    let cell = |value: Option<f64>| value.map(number).unwrap_or_default();
    let ratio = |name: &str, connections: usize, t: Target| -> Option<f64> {
        let m = at(name, connections);
        let ours = results.get(SECTION, t.workload(), &m, t.runtime())?;
        let theirs = results.get(SECTION, Target::WasmtimeServe.workload(), &m, Target::WasmtimeServe.runtime())?;
        paired_ratio(&ours.values, &theirs.values)
    };
    let ratio_cell = |value: Option<f64>| value.map(|r| format!("{r:.2}")).unwrap_or_default();

    let _ = writeln!(md, "## HTTP services (issue 13): load, medians over the rounds\n");
    let _ = writeln!(
        md,
        "| connections | server | req/s | p50 ms | p99 ms | status >= 400 | socket errors | req/s x wasmtime | p99 x wasmtime |"
    );
    let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for connections in CONNECTIONS {
        for t in TARGETS {
            let Some(rps) = median(&at("req/s", connections), t) else { continue };
            let total = |name: &str| -> String {
                results
                    .get(SECTION, t.workload(), &at(name, connections), t.runtime())
                    .map(|s| format!("{:.0}", s.values.iter().filter(|v| v.is_finite()).sum::<f64>()))
                    .unwrap_or_default()
            };
            let _ = writeln!(
                md,
                "| {connections} | {} | {} | {} | {} | {} | {} | {} | {} |",
                t.label(),
                number(rps),
                cell(median(&at("p50", connections), t)),
                cell(median(&at("p99", connections), t)),
                total("status>=400"),
                total("socket-errors"),
                ratio_cell(ratio("req/s", connections, t)),
                ratio_cell(ratio("p99", connections, t)),
            );
        }
    }
    let _ = writeln!(
        md,
        "\nRatios are paired by round (run i / wasmtime's run i). Status and socket-error columns are totals over \
         the rounds.\n"
    );

    let _ = writeln!(md, "## HTTP services: time to the first 200 (median ms)\n");
    let _ = writeln!(md, "| server | n | create | start | start returned -> 200 | create -> 200 | spawn -> 200 |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
    for t in TARGETS {
        let to_200 = if t == Target::WasmtimeServe { "spawn-to-200" } else { "start-to-200" };
        let Some(series) = results.get(SECTION, t.workload(), to_200, t.runtime()) else { continue };
        let n = summarize(&series.values).map_or(0, |s| s.n);
        let (start_col, spawn_col) = match t {
            Target::WasmtimeServe => (None, median(to_200, t)),
            _ => (median(to_200, t), None),
        };
        let _ = writeln!(
            md,
            "| {} | {n} | {} | {} | {} | {} | {} |",
            t.label(),
            cell(median("create", t)),
            cell(median("start", t)),
            cell(start_col),
            cell(median("create-to-200", t)),
            cell(spawn_col),
        );
    }
    let _ = writeln!(
        md,
        "\namphi: the request is sent on a connection made right after `create` (the socket listens from `create` \
         on) and the time runs from `start` returning to the whole response read, no polling. runc's busybox httpd \
         binds only once started: its connection is retried every 0.1 ms after `start`. `wasmtime serve` has no \
         create/start split: from its spawn, the connection retried every 0.1 ms, its compile cache warm.\n"
    );

    let _ = writeln!(md, "## HTTP services: memory of an idle server (MiB)\n");
    let _ = writeln!(
        md,
        "| server | VmRSS after 1k requests | VmRSS after {requests} | growth | cgroup after 1k | cgroup after {requests} |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
    for t in TARGETS {
        let (Some(first), Some(last)) = (median("rss after 1k", t), median("rss after all", t)) else { continue };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:+.1} % | {} | {} |",
            t.label(),
            number(first),
            number(last),
            (last / first - 1.0) * 100.0,
            cell(median("cgroup after 1k", t)),
            cell(median("cgroup after all", t)),
        );
    }
    let _ = writeln!(
        md,
        "\nVmRSS of the server's processes (the container's init, or the wasmtime process) after the requests and \
         {} ms idle; cgroup: the container's `memory.usage_in_bytes` (v1) or `memory.current` (v2), page cache \
         included.\n",
        super::SETTLE.as_millis()
    );

    let _ = writeln!(md, "## Targets (issue 13)\n");
    let _ = writeln!(md, "| verdict | target | measured |");
    let _ = writeln!(md, "|---|---|---|");
    let mut verdict = |what: String, measured: Option<(f64, bool)>, unit: &str| {
        let (verdict, text) = match measured {
            Some((value, holds)) => (if holds { "holds" } else { "MISSED" }, format!("{value:.2}{unit}")),
            None => ("n/a", "not measured in this run".to_owned()),
        };
        let _ = writeln!(md, "| {verdict} | {what} | {text} |");
    };
    for connections in [16, 64] {
        let r = ratio("req/s", connections, Target::Amphi);
        verdict(
            format!("amphi req/s >= 1.0x wasmtime serve's at {connections} connections"),
            r.map(|r| (r, r >= 1.0)),
            "x",
        );
        let r = ratio("p99", connections, Target::Amphi);
        verdict(
            format!("amphi p99 <= 1.2x wasmtime serve's at {connections} connections"),
            r.map(|r| (r, r <= 1.2)),
            "x",
        );
    }
    let first = median("start-to-200", Target::Amphi);
    verdict("amphi first 200 after `start` returns <= 5 ms (median)".into(), first.map(|v| (v, v <= 5.0)), " ms");
    let growth = match (median("rss after 1k", Target::Amphi), median("rss after all", Target::Amphi)) {
        (Some(a), Some(b)) => Some(((b / a - 1.0) * 100.0, b <= a * 1.1)),
        _ => None,
    };
    verdict(format!("amphi VmRSS after {requests} requests within 10 % of after 1k"), growth, " %");
    md
}
