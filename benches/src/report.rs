//! The results: kept as series of raw values, written as CSV, summarised as a
//! table (stdout) and as Markdown with the machine, the versions, the command,
//! the verdict on each of issue 4's targets (and issue 14's, on amphi's
//! containerd shim) and the leak check.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;

use crate::cli::Plan;
use crate::host::Machine;
use crate::leaks::LeakReport;
use crate::runtime::Bench;
use crate::stats::{paired_ratio, summarize};
use crate::workload::{Idle, Workload};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Ms,
    MiB,
    PerSec,
    /// HTTP requests per second (the http section).
    ReqPerSec,
    Count,
}

impl Unit {
    pub fn name(self) -> &'static str {
        match self {
            Unit::Ms => "ms",
            Unit::MiB => "MiB",
            Unit::PerSec => "containers/s",
            Unit::ReqPerSec => "requests/s",
            Unit::Count => "count",
        }
    }
}

/// The raw values of one measurement, in run order (run i of every runtime was
/// made in the same round).
#[derive(Debug, Clone)]
pub struct Series {
    pub section: String,
    pub workload: String,
    pub measure: String,
    pub runtime: String,
    pub unit: Unit,
    pub values: Vec<f64>,
}

#[derive(Debug, Default)]
pub struct Results {
    pub series: Vec<Series>,
    pub leaks: Vec<LeakReport>,
    /// Workloads amphi should run and could not.
    pub amphi_failures: Vec<String>,
    /// Measurements of a peer that failed or hung (the sample is left out).
    pub peer_failures: Vec<String>,
}

impl Results {
    pub fn push(&mut self, section: &str, workload: &str, measure: &str, runtime: &str, unit: Unit, value: f64) {
        match self
            .series
            .iter_mut()
            .find(|s| s.section == section && s.workload == workload && s.measure == measure && s.runtime == runtime)
        {
            Some(series) => series.values.push(value),
            None => self.series.push(Series {
                section: section.to_owned(),
                workload: workload.to_owned(),
                measure: measure.to_owned(),
                runtime: runtime.to_owned(),
                unit,
                values: vec![value],
            }),
        }
    }

    pub fn get(&self, section: &str, workload: &str, measure: &str, runtime: &str) -> Option<&Series> {
        self.series
            .iter()
            .find(|s| s.section == section && s.workload == workload && s.measure == measure && s.runtime == runtime)
    }

    pub fn median(&self, section: &str, workload: &str, measure: &str, runtime: &str) -> Option<f64> {
        summarize(&self.get(section, workload, measure, runtime)?.values).map(|s| s.median)
    }

    /// The outcome of one measurement of `runtime`: a peer's failure is noted
    /// (the sample is left out, and the summary says so); amphi's is an error.
    pub fn keep<T>(
        &mut self,
        runtime: &str,
        workload: &str,
        what: &str,
        outcome: anyhow::Result<T>,
    ) -> anyhow::Result<Option<T>> {
        match outcome {
            Ok(value) => Ok(Some(value)),
            Err(e) if runtime != "amphi" => {
                self.peer_failures.push(format!("{runtime}, {workload}, {what}: {e:#}"));
                Ok(None)
            }
            Err(e) => Err(e.context(format!("amphi, {workload}, {what}"))),
        }
    }

    pub fn amphi_failed(&self) -> bool {
        !self.amphi_failures.is_empty()
    }

    /// The series `s` is compared with: the baseline's same measurement, or,
    /// for a workload the baseline cannot run, its native `/bin/true` (marked).
    fn baseline_of(&self, s: &Series, baseline: &str) -> Option<(&Series, bool)> {
        if let Some(b) = self.get(&s.section, &s.workload, &s.measure, baseline) {
            return Some((b, false));
        }
        let native = match s.section.as_str() {
            "lifecycle" | "runtime-rss" | "throughput" => Workload::True.name(),
            "containerd" if s.workload == crate::containerd::IDLE_WASM => crate::containerd::IDLE_NATIVE,
            "containerd" => crate::containerd::NATIVE,
            "container-memory" | "density" => Idle::Native.name(),
            _ => return None,
        };
        self.get(&s.section, native, &s.measure, baseline).map(|b| (b, true))
    }
}

/// The runtime ratios are taken against.
pub fn baseline_name(plan: &Plan, bench: &Bench) -> String {
    if let Some(name) = &plan.baseline {
        return name.clone();
    }
    ["crun", "runc", "amphi"].into_iter().find(|n| bench.get(n).is_some()).unwrap_or("amphi").to_owned()
}

const SECTIONS: [(&str, &str); 7] = [
    ("lifecycle", "Lifecycle (ms): `run`, and create / start / wait / delete as separate commands"),
    ("commands", "Commands that run no workload, and `exec` of /bin/true into a running container (ms)"),
    ("runtime-rss", "Peak RSS of the runtime's command (MiB; wait4 rusage, covering the processes it waited for)"),
    ("container-memory", "Memory of one running idle container (MiB; its processes' VmRSS, VmHWM, Pss)"),
    ("density", "Density: N idle containers (per container, MiB; create+start in ms per container)"),
    ("throughput", "Throughput (containers per second; `run` of the workload)"),
    (
        "containerd",
        "Through containerd (`ctr run --rm`, ms; tasks per second; N idle containers, MiB): the runtime under \
         containerd's runc shim, or amphi-shim (amphi's own shim)",
    ),
];

/// One row of a table.
struct Row {
    workload: String,
    measure: String,
    runtime: String,
    n: usize,
    median: f64,
    p95: f64,
    min: f64,
    max: f64,
    ratio: String,
    floor: String,
}

fn rows(results: &Results, section: &str, baseline: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for s in results.series.iter().filter(|s| s.section == section) {
        let Some(summary) = summarize(&s.values) else { continue };
        let ratio = match results.baseline_of(s, baseline) {
            Some((b, fallback)) => paired_ratio(&s.values, &b.values)
                .map(|r| format!("{r:.2}{}", if fallback { "*" } else { "" }))
                .unwrap_or_default(),
            None => String::new(),
        };
        let floor = if section == "lifecycle" && (s.measure == "run" || s.measure == "split-total") {
            let workload = if s.workload == "echo" { "echo" } else { "true" };
            results
                .get("lifecycle", workload, "run", "floor")
                .and_then(|f| paired_ratio(&s.values, &f.values))
                .map(|r| format!("{r:.2}"))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let label = Workload::ALL
            .iter()
            .find(|w| w.name() == s.workload)
            .map(|w| w.label().to_owned())
            .or_else(|| Idle::ALL.iter().find(|i| i.name() == s.workload).map(|i| i.label().to_owned()))
            .unwrap_or_else(|| s.workload.clone());
        rows.push(Row {
            workload: label,
            measure: s.measure.clone(),
            runtime: s.runtime.clone(),
            n: summary.n,
            median: summary.median,
            p95: summary.p95,
            min: summary.min,
            max: summary.max,
            ratio,
            floor,
        });
    }
    // Group by workload and measure, keeping the order of first appearance.
    let mut order: Vec<(String, String)> = Vec::new();
    for r in &rows {
        if !order.contains(&(r.workload.clone(), r.measure.clone())) {
            order.push((r.workload.clone(), r.measure.clone()));
        }
    }
    rows.sort_by_key(|r| order.iter().position(|k| k.0 == r.workload && k.1 == r.measure));
    rows
}

/// A figure with the digits that matter: 1234, 12.3, 1.23.
pub(crate) fn number(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// The table printed on stdout.
pub fn stdout_table(plan: &Plan, bench: &Bench, results: &Results) -> String {
    let baseline = baseline_name(plan, bench);
    let mut out = String::new();
    for (section, title) in SECTIONS.iter().filter(|(s, _)| !s.is_empty()) {
        let rows = rows(results, section, &baseline);
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n== {title}");
        let _ = writeln!(
            out,
            "{:<34} {:<12} {:<9} {:>4} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}",
            "workload",
            "measure",
            "runtime",
            "n",
            "median",
            "p95",
            "min",
            "max",
            format!("x{baseline}"),
            "xfloor"
        );
        for r in rows {
            let _ = writeln!(
                out,
                "{:<34} {:<12} {:<9} {:>4} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}",
                r.workload,
                r.measure,
                r.runtime,
                r.n,
                number(r.median),
                number(r.p95),
                number(r.min),
                number(r.max),
                r.ratio,
                r.floor
            );
        }
    }
    let containerd = crate::containerd::markdown(results);
    if !containerd.is_empty() {
        let _ = write!(out, "\n{containerd}");
    }
    let http = crate::http::markdown(results, plan.http_requests);
    if !http.is_empty() {
        let _ = write!(out, "\n{http}");
    }
    let _ = writeln!(out, "\n== Targets (issues 4 and 14)");
    for t in targets(results, bench) {
        let _ = writeln!(out, "{:<8} {}: {}", t.verdict(), t.what, t.measured);
    }
    if !results.peer_failures.is_empty() {
        let _ = writeln!(out, "\n== Peer runs that failed (samples left out)");
        for failure in &results.peer_failures {
            let _ = writeln!(out, "{failure}");
        }
    }
    let _ = writeln!(out, "\n== Leak check");
    for leak in &results.leaks {
        let _ = writeln!(out, "{}", leak.describe());
    }
    out
}

/// One of issue 4's (or issue 14's) targets, judged on this run.
#[derive(Debug)]
pub struct Target {
    pub what: String,
    pub measured: String,
    /// `None`: not measured in this run.
    pub holds: Option<bool>,
}

impl Target {
    pub fn verdict(&self) -> &'static str {
        match self.holds {
            Some(true) => "holds",
            Some(false) => "MISSED",
            None => "n/a",
        }
    }
}

/// Judges the targets: ratios are paired (run i against run i of the same
/// round); the cold-cache target compares medians.
pub fn targets(results: &Results, bench: &Bench) -> Vec<Target> {
    let mut targets = Vec::new();
    let paired = |section: &str, w: &str, m: &str, rt: &str, bw: &str, bm: &str, brt: &str| -> Option<f64> {
        paired_ratio(&results.get(section, w, m, rt)?.values, &results.get(section, bw, bm, brt)?.values)
    };
    let ratio_target = |targets: &mut Vec<Target>, what: String, ratio: Option<f64>, limit: f64| {
        targets.push(match ratio {
            Some(r) => Target { what, measured: format!("ratio {r:.2} (limit {limit:.2})"), holds: Some(r <= limit) },
            None => Target { what, measured: "not measured in this run".into(), holds: None },
        });
    };
    for (measure, how) in [("run", "`run`"), ("split-total", "create+start+wait+delete")] {
        ratio_target(
            &mut targets,
            format!("amphi native /bin/true {how} <= crun's"),
            paired("lifecycle", "true", measure, "amphi", "true", measure, "crun"),
            1.0,
        );
        ratio_target(
            &mut targets,
            format!("amphi native /bin/true {how} <= half of runc's"),
            paired("lifecycle", "true", measure, "amphi", "true", measure, "runc"),
            0.5,
        );
    }
    for (w, label) in [("wasm-module-warm", "module"), ("wasm-component-warm", "component")] {
        ratio_target(
            &mut targets,
            format!("amphi wasm hello {label}, warm cache, `run` <= crun's native /bin/true `run`"),
            paired("lifecycle", w, "run", "amphi", "true", "run", "crun"),
            1.0,
        );
        ratio_target(
            &mut targets,
            format!("amphi wasm hello {label}, warm cache, `run` <= 1.1x amphi's native /bin/true `run`"),
            paired("lifecycle", w, "run", "amphi", "true", "run", "amphi"),
            1.1,
        );
    }
    ratio_target(
        &mut targets,
        "amphi `start` of a created wasm module container <= `start` of a native one (issue 3)".into(),
        paired("lifecycle", "wasm-module-warm", "start", "amphi", "true", "start", "amphi"),
        1.0,
    );
    for (cold, warm, label) in [
        ("wasm-module-cold", "wasm-module-warm", "module"),
        ("wasm-component-cold", "wasm-component-warm", "component"),
    ] {
        let what = format!(
            "amphi wasm hello {label}, cold cache, `run` <= amphi native `run` + what `wasmtime run` needs to compile (its cache=n time - its precompiled time)"
        );
        let medians = (
            results.median("lifecycle", cold, "run", "amphi"),
            results.median("lifecycle", "true", "run", "amphi"),
            results.median("lifecycle", cold, "run", "wasmtime"),
            results.median("lifecycle", warm, "run", "wasmtime"),
        );
        targets.push(match medians {
            (Some(amphi_cold), Some(native), Some(wt_cold), Some(wt_warm)) => {
                let limit = native + (wt_cold - wt_warm).max(0.0);
                Target {
                    what,
                    measured: format!(
                        "{amphi_cold:.2} ms (limit {native:.2} + {:.2} = {limit:.2} ms)",
                        (wt_cold - wt_warm).max(0.0)
                    ),
                    holds: Some(amphi_cold <= limit),
                }
            }
            _ => Target { what, measured: "not measured (needs amphi and a wasmtime CLI)".into(), holds: None },
        });
    }
    for command in ["--version", "state", "list", "kill"] {
        ratio_target(
            &mut targets,
            format!("amphi `{command}` <= 1.2x crun's"),
            paired("commands", "none", command, "amphi", "none", command, "crun"),
            1.2,
        );
    }
    for measure in ["run", "create"] {
        ratio_target(
            &mut targets,
            format!("peak RSS of amphi's `{measure}` (native /bin/true) <= runc's"),
            paired("runtime-rss", "true", measure, "amphi", "true", measure, "runc"),
            1.0,
        );
    }
    if bench.get("crun").is_none() || bench.get("runc").is_none() {
        for t in targets.iter_mut().filter(|t| t.holds.is_none()) {
            t.measured.push_str(" (a peer is not installed or was skipped)");
        }
    }
    targets.extend(crate::containerd::targets(results));
    targets
}

/// Writes `results.csv`, `summary.md` and `lifecycle.svg`; returns the directory.
pub fn write_all(plan: &Plan, bench: &Bench, machine: &Machine, results: &Results) -> anyhow::Result<PathBuf> {
    let dir = plan.out.clone().unwrap_or_else(|| std::env::temp_dir().join("amphi-bench-smoke"));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let mut csv = String::from("section,workload,measure,runtime,run,value,unit\n");
    for s in &results.series {
        for (i, v) in s.values.iter().enumerate() {
            let _ =
                writeln!(csv, "{},{},{},{},{i},{v:.4},{}", s.section, s.workload, s.measure, s.runtime, s.unit.name());
        }
    }
    let csv_path = dir.join("results.csv");
    std::fs::write(&csv_path, csv).with_context(|| format!("write {}", csv_path.display()))?;
    let md_path = dir.join("summary.md");
    std::fs::write(&md_path, markdown(plan, bench, machine, results))
        .with_context(|| format!("write {}", md_path.display()))?;
    let svg_path = dir.join("lifecycle.svg");
    std::fs::write(&svg_path, crate::chart::lifecycle_svg(results, bench))
        .with_context(|| format!("write {}", svg_path.display()))?;
    Ok(dir)
}

fn markdown(plan: &Plan, bench: &Bench, machine: &Machine, results: &Results) -> String {
    let baseline = baseline_name(plan, bench);
    let mut md = String::new();
    let _ = writeln!(md, "# amphi start-up benchmark: {} on {}\n", machine.date, machine.host);
    let _ = writeln!(md, "## Machine\n");
    let _ = writeln!(md, "- CPU: {} ({} cores available)", machine.cpu, machine.cores);
    let _ = writeln!(md, "- memory: {:.1} GiB", machine.memory_gib);
    let _ = writeln!(md, "- kernel: {}; OS: {}", machine.kernel, machine.os);
    let _ = writeln!(md, "- cgroups: {}", machine.cgroups);
    let _ = writeln!(md, "\n## Runtimes\n");
    let _ = writeln!(md, "| name | version | binary | how it ran |");
    let _ = writeln!(md, "|---|---|---|---|");
    for r in &bench.runtimes {
        let how = match (&r.skipped, &r.view) {
            (Some(reason), _) => format!("**skipped**: {}", reason.replace('|', "/")),
            (None, Some(_)) => "in a private mount namespace: a view of the cgroups it accepts (see notes)".to_owned(),
            (None, None) => match r.kind {
                crate::runtime::Kind::Oci => "as is".to_owned(),
                crate::runtime::Kind::Floor => "`unshare -fmnuip --root=ROOTFS PROGRAM`: no runtime".to_owned(),
                crate::runtime::Kind::Wasmtime => "`wasmtime run` on the host: no container".to_owned(),
            },
        };
        let _ = writeln!(md, "| {} | {} | `{}` | {how} |", r.name, r.version, r.path.display());
    }
    let _ = writeln!(md, "\n## Command\n\n```\n{}\n```\n", plan.command_line);
    if plan.smoke {
        let _ = writeln!(md, "A smoke pass: it proves the harness works; its numbers mean little.\n");
    }
    let _ = writeln!(
        md,
        "{} warm-up runs, then {} measured runs per runtime and workload, interleaved across runtimes, \
         the order rotated each round (A B C, B C A, C A B, …) so that no runtime always follows the same one. Page cache dropped before each run: {}. Ratios (`x{baseline}`) are the median of \
         the pairwise ratios run i / run i of {baseline} (same round); `*` marks a comparison with {baseline}'s \
         native `/bin/true` where {baseline} cannot run the workload. `xfloor` compares with the floor's `run` \
         of the same native program. Peak RSS: {} runs. Density: {} idle containers per runtime and kind. \
         Throughput: {} containers, sequential and {} at once.\n",
        plan.warmup,
        plan.iterations,
        if plan.drop_caches { "yes" } else { "no" },
        plan.rss_iterations,
        plan.density,
        plan.throughput,
        plan.parallel
    );
    let _ = writeln!(md, "## Targets (issues 4 and 14)\n");
    let _ = writeln!(md, "| verdict | target | measured |");
    let _ = writeln!(md, "|---|---|---|");
    for t in targets(results, bench) {
        let _ = writeln!(md, "| {} | {} | {} |", t.verdict(), t.what, t.measured);
    }
    let _ = writeln!(md, "\n![lifecycle medians](lifecycle.svg)\n");
    for (section, title) in SECTIONS.iter().filter(|(s, _)| !s.is_empty()) {
        let rows = rows(results, section, &baseline);
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(md, "## {title}\n");
        let _ = writeln!(md, "| workload | measure | runtime | n | median | p95 | min | max | x{baseline} | xfloor |");
        let _ = writeln!(md, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in rows {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.workload,
                r.measure,
                r.runtime,
                r.n,
                number(r.median),
                number(r.p95),
                number(r.min),
                number(r.max),
                r.ratio,
                r.floor
            );
        }
        let _ = writeln!(md);
    }
    md.push_str(&crate::containerd::markdown(results));
    md.push_str(&crate::http::markdown(results, plan.http_requests));
    let _ = writeln!(md, "\n## Leak check\n");
    for leak in &results.leaks {
        let _ = writeln!(md, "- {}", leak.describe());
    }
    let _ = writeln!(md, "\n## Notes\n");
    for note in &bench.notes {
        let _ = writeln!(md, "- {note}");
    }
    for r in &bench.runtimes {
        if let Some((_, note)) = &r.view {
            let _ = writeln!(md, "- {note}");
        }
    }
    for failure in &results.amphi_failures {
        let _ = writeln!(md, "- **amphi failed** {failure}");
    }
    for failure in &results.peer_failures {
        let _ = writeln!(md, "- a peer's run failed (sample left out): {}", failure.replace('|', "/"));
    }
    md
}

/// Records why a runtime could not run a workload, for the notes.
pub fn unsupported_notes(bench: &mut Bench, unsupported: &std::collections::BTreeMap<(String, String), String>) {
    for ((runtime, workload), reason) in unsupported {
        bench.notes.push(format!("{runtime} cannot run {workload}: {}", reason.replace('|', "/")));
    }
}
