//! The containerd table (containerd's runc shim with each runtime against
//! amphi's shim, one row per workload and configuration) and issue 14's
//! targets, judged on ratios within one run against "runc shim + amphi".

use std::fmt::Write as _;

use super::{AMPHI_SHIM, IDLE_NATIVE, IDLE_WASM, NATIVE, SECTION, WASM};
use crate::report::{Results, Target, number};
use crate::stats::{paired_ratio, summarize};

/// The configuration a results "runtime" stands for.
pub fn label(runtime: &str) -> String {
    if runtime == AMPHI_SHIM { "amphi's shim".to_owned() } else { format!("runc shim + {runtime}") }
}

/// The measure name of the "K at once" throughput, whatever K was.
fn at_once_measure(results: &Results, workload: &str) -> Option<String> {
    results
        .series
        .iter()
        .find(|s| s.section == SECTION && s.workload == workload && s.measure.ends_with(" at once"))
        .map(|s| s.measure.clone())
}

fn median(results: &Results, workload: &str, measure: &str, runtime: &str) -> Option<f64> {
    results.median(SECTION, workload, measure, runtime)
}

/// The Markdown table (also printed on stdout); empty when the section did not run.
pub fn markdown(results: &Results) -> String {
    let mut md = String::new();
    let runtimes = |workload: &str| -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for s in results.series.iter().filter(|s| s.section == SECTION && s.workload == workload) {
            if !names.contains(&s.runtime) {
                names.push(s.runtime.clone());
            }
        }
        names
    };
    let rows: Vec<(&str, &str, &str, String)> =
        [(NATIVE, IDLE_NATIVE, "native /bin/true"), (WASM, IDLE_WASM, "wasm hello")]
            .into_iter()
            .flat_map(|(workload, idle, what)| {
                let mut names = runtimes(workload);
                for name in runtimes(idle) {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
                // runc shim + runc, runc shim + amphi, amphi's shim, then the other peers.
                names.sort_by_key(|name| ["runc", "amphi", AMPHI_SHIM].iter().position(|n| n == name).unwrap_or(3));
                names.into_iter().map(move |name| (workload, idle, what, name))
            })
            .collect();
    if rows.is_empty() {
        return md;
    }
    let at_once = at_once_measure(results, NATIVE).or_else(|| at_once_measure(results, WASM));
    let _ = writeln!(md, "## containerd: the runc shim against amphi's shim\n");
    let _ = writeln!(
        md,
        "`ctr run --rm` one after the other (median, p90, ms); tasks per second one after the other and {}; \
         the memory of N idle containers (native: busybox `sleep`; wasm: `sleep.wasm`), summed over the \
         shim processes and the containers' processes, per container (with the shims' own part) and in \
         total (MiB).\n",
        at_once.as_deref().map_or("K at once".to_owned(), |m| m.trim_start_matches("tasks/s ").to_owned())
    );
    let _ = writeln!(
        md,
        "| workload | configuration | run median | run p90 | tasks/s seq | tasks/s at once | RSS/container | \
         PSS/container | of which shims | RSS total | PSS total | shim processes |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let cell = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), number);
    for (workload, idle, what, name) in rows {
        let run = results.get(SECTION, workload, "ctr-run", &name).and_then(|s| summarize(&s.values));
        let at_once = at_once.as_deref().and_then(|m| median(results, workload, m, &name));
        let _ = writeln!(
            md,
            "| {what} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            label(&name),
            cell(run.map(|s| s.median)),
            cell(run.map(|s| s.p90)),
            cell(median(results, workload, "tasks/s sequential", &name)),
            cell(at_once),
            cell(median(results, idle, "rss/container", &name)),
            cell(median(results, idle, "pss/container", &name)),
            cell(median(results, idle, "shims' pss/container", &name)),
            cell(median(results, idle, "rss total", &name)),
            cell(median(results, idle, "pss total", &name)),
            median(results, idle, "shim processes", &name).map_or_else(|| "–".to_owned(), |v| format!("{v:.0}")),
        );
    }
    md.push('\n');
    md
}

/// Issue 14's targets: amphi's shim against the runc shim running amphi.
pub fn targets(results: &Results) -> Vec<Target> {
    let mut targets = Vec::new();
    let base = "amphi";
    for (workload, what) in [(NATIVE, "native /bin/true"), (WASM, "wasm hello")] {
        let run = (median(results, workload, "ctr-run", AMPHI_SHIM), median(results, workload, "ctr-run", base));
        let paired = results
            .get(SECTION, workload, "ctr-run", AMPHI_SHIM)
            .zip(results.get(SECTION, workload, "ctr-run", base))
            .and_then(|(s, b)| paired_ratio(&s.values, &b.values));
        targets.push(judge(
            format!("amphi's shim, {what}: `ctr run --rm` median <= 0.8x runc shim + amphi's (issue 14)"),
            run,
            Limit::AtMost(0.8),
            " ms",
            paired.map(|p| format!(", paired {p:.2}")).unwrap_or_default(),
        ));
        let at_once = at_once_measure(results, workload);
        let rate = at_once
            .as_deref()
            .map_or((None, None), |m| (median(results, workload, m, AMPHI_SHIM), median(results, workload, m, base)));
        targets.push(judge(
            format!(
                "amphi's shim, {what}: {} >= 1.5x runc shim + amphi's (issue 14)",
                at_once.as_deref().unwrap_or("tasks/s K at once")
            ),
            rate,
            Limit::AtLeast(1.5),
            "/s",
            String::new(),
        ));
    }
    targets.push(judge(
        "amphi's shim: PSS of an idle wasm container with its shim <= 0.25x under runc shim + amphi (issue 14)".into(),
        (median(results, IDLE_WASM, "pss/container", AMPHI_SHIM), median(results, IDLE_WASM, "pss/container", base)),
        Limit::AtMost(0.25),
        " MiB",
        String::new(),
    ));
    targets
}

#[derive(Debug, Clone, Copy)]
enum Limit {
    AtMost(f64),
    AtLeast(f64),
}

/// The target `what` on `(amphi's shim, runc shim + amphi)`.
fn judge(what: String, values: (Option<f64>, Option<f64>), limit: Limit, unit: &str, extra: String) -> Target {
    let (Some(ours), Some(theirs)) = values else {
        return Target { what, measured: "not measured in this run".into(), holds: None };
    };
    let ratio = ours / theirs;
    let (holds, bound) = match limit {
        Limit::AtMost(l) => (ratio <= l, format!("limit {l:.2}")),
        Limit::AtLeast(l) => (ratio >= l, format!("at least {l:.2}")),
    };
    Target {
        what,
        measured: format!("{} vs {}{unit}: ratio {ratio:.2} ({bound}){extra}", number(ours), number(theirs)),
        holds: Some(holds && ratio.is_finite()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Unit;

    fn results() -> Results {
        let mut r = Results::default();
        for (runtime, ms, rate, pss) in [("amphi", [100.0, 110.0], 10.0, 8.0), (AMPHI_SHIM, [70.0, 90.0], 16.0, 1.0)] {
            for v in ms {
                r.push(SECTION, NATIVE, "ctr-run", runtime, Unit::Ms, v);
            }
            r.push(SECTION, NATIVE, "tasks/s 4 at once", runtime, Unit::PerSec, rate);
            r.push(SECTION, IDLE_WASM, "pss/container", runtime, Unit::MiB, pss);
        }
        r
    }

    #[test]
    fn targets_are_judged_on_ratios_against_runc_shim_with_amphi() {
        let targets = targets(&results());
        let verdicts: Vec<(&str, Option<bool>)> = targets.iter().map(|t| (t.what.as_str(), t.holds)).collect();
        // Native: median 80 / 105 = 0.76 <= 0.8; 16 / 10 = 1.6 >= 1.5. Wasm: not measured. PSS 1/8 <= 0.25.
        assert_eq!(verdicts.iter().map(|v| v.1).collect::<Vec<_>>(), [Some(true), Some(true), None, None, Some(true)]);
        assert!(targets[1].what.contains("tasks/s 4 at once"), "{}", targets[1].what);
        assert!(targets[0].measured.contains("ratio 0.76"), "{}", targets[0].measured);
    }

    #[test]
    fn a_missed_target_says_so() {
        let mut r = results();
        r.push(SECTION, IDLE_WASM, "pss/container", AMPHI_SHIM, Unit::MiB, 7.0);
        let pss = targets(&r).pop().expect("pss target");
        // Median of [1, 7] is 4: 4 / 8 = 0.5 > 0.25.
        assert_eq!(pss.holds, Some(false));
        assert_eq!(pss.verdict(), "MISSED");
    }

    #[test]
    fn the_table_has_a_row_per_configuration() {
        let md = markdown(&results());
        assert!(md.contains("| native /bin/true | runc shim + amphi | 105 |"), "{md}");
        assert!(md.contains("| native /bin/true | amphi's shim | 80.0 |"), "{md}");
        assert!(md.contains("| wasm hello | amphi's shim |"), "{md}");
        assert!(markdown(&Results::default()).is_empty());
    }
}
