//! Startup through containerd, measured (not asserted): `ctr run --rm` of the
//! native and wasm test images with amphi, runc and crun as the runc binary,
//! and tasks per second for N tasks with K running at once.
//!
//! Run it on purpose:
//! `cargo test -p amphi --test managers containerd_startup -- --ignored --nocapture`
//! (`AMPHI_STARTUP_RUNS`, `AMPHI_STARTUP_TASKS`, `AMPHI_STARTUP_PARALLEL` change
//! the counts). It prints one line per measurement. Everything outside the
//! runtime (ctr, containerd, the shim, the snapshot) is the same for each
//! runtime, so the differences are the runtimes'.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::containerd::Containerd;
use crate::support::{self, can_run, describe, images};

/// One runtime to measure: a name and its binary.
struct Candidate {
    name: &'static str,
    bin: String,
}

fn candidates() -> Vec<Candidate> {
    let mut found = vec![Candidate { name: "amphi", bin: env!("CARGO_BIN_EXE_amphi").to_owned() }];
    for (name, bin) in [("runc", "/usr/sbin/runc"), ("crun", "/usr/bin/crun")] {
        if Path::new(bin).is_file() {
            found.push(Candidate { name, bin: bin.to_owned() });
        }
    }
    found
}

fn count(var: &str, default: usize) -> usize {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One `ctr run --rm` with `bin` as the runc binary; its wall time, or None
/// when the runtime cannot run this workload.
fn run_once(ctrd: &Containerd, bin: &str, image: &str, id: &str, args: &[&str]) -> Option<Duration> {
    let mut all = vec!["run", "--rm", "--null-io", "--runc-binary", bin, image, id];
    all.extend_from_slice(args);
    let started = Instant::now();
    let out = ctrd.ctr(&all);
    let took = started.elapsed();
    if out.status.success() {
        Some(took)
    } else {
        // A failed run leaves its container record.
        let _ = ctrd.ctr(&["containers", "rm", id]);
        support::note(&format!("{bin} {image}: {}", describe(&out)));
        None
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The median of `runs` runs after one warm-up (which fills amphi's compile
/// cache for a wasm image).
fn startup(ctrd: &Containerd, candidate: &Candidate, image: &str, args: &[&str], runs: usize) -> Option<Duration> {
    run_once(ctrd, &candidate.bin, image, &format!("warm-{}", candidate.name), args)?;
    let mut times = Vec::with_capacity(runs);
    for n in 0..runs {
        times.push(run_once(ctrd, &candidate.bin, image, &format!("s-{}-{n}", candidate.name), args)?);
    }
    Some(median(times))
}

/// `tasks` runs of `ctr run --rm`, `parallel` at a time: tasks per second.
fn throughput(
    ctrd: &Containerd,
    candidate: &Candidate,
    image: &str,
    args: &[&str],
    tasks: usize,
    parallel: usize,
) -> f64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for worker in 0..parallel {
            scope.spawn(move || {
                for n in (worker..tasks).step_by(parallel) {
                    let id = format!("t-{}-{n}", candidate.name);
                    assert!(run_once(ctrd, &candidate.bin, image, &id, args).is_some(), "task {id} failed");
                }
            });
        }
    });
    tasks as f64 / started.elapsed().as_secs_f64()
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn containerd_startup_timings() {
    if !can_run("containerd") {
        return;
    }
    let ctrd = Containerd::start("startup");
    ctrd.import(&[&images().native, &images().wasm_plain]);
    let runs = count("AMPHI_STARTUP_RUNS", 10);
    let tasks = count("AMPHI_STARTUP_TASKS", 40);
    let parallel = count("AMPHI_STARTUP_PARALLEL", 4);
    let workloads: [(&str, &str, &[&str]); 2] = [
        ("native /bin/true", "amphi.test/native:latest", &["/bin/true"]),
        ("wasm hello.wasm", "amphi.test/wasm-plain:latest", &["/hello.wasm"]),
    ];
    for candidate in candidates() {
        for (label, image, args) in workloads {
            match startup(&ctrd, &candidate, image, args, runs) {
                Some(median) => {
                    let rate = throughput(&ctrd, &candidate, image, args, tasks, parallel);
                    support::note(&format!(
                        "ctr run --rm, {label}, {}: median {:.1} ms of {runs}; {tasks} tasks {parallel} at a time: {rate:.1} tasks/s",
                        candidate.name,
                        median.as_secs_f64() * 1000.0
                    ));
                }
                None => support::note(&format!("ctr run --rm, {label}, {}: does not run", candidate.name)),
            }
        }
    }
    ctrd.finish();
}
