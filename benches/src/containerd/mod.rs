//! Through containerd: `ctr run --rm` of the native and wasm test images, as
//! containerd users meet it, in these configurations:
//!
//! - **containerd's runc shim** with each OCI runtime as its runc binary
//!   (`--runc-binary`): runc, amphi and the other peers. containerd, ctr, the
//!   shim and the snapshotter are the same for every runtime, so the
//!   differences are the runtimes'. Results under the runtime's name.
//! - **amphi's own shim**, `containerd-shim-amphi-v1` (`--runtime
//!   io.containerd.amphi.v1`), built next to the `amphi` under test and found
//!   by containerd on its PATH, where the harness puts that directory first.
//!   Results under `amphi-shim`. Without the binary it is left out, with a note.
//!
//! Measured for native `/bin/true` (every configuration) and the wasm hello
//! (amphi's two): the latency of `ctr run --rm` one after the other (warm-up
//! runs first, then the configurations interleaved, the order rotated each
//! round), and tasks per second one after the other and K at once. Then
//! [`idle`]: the memory of N idle containers (shims plus containers, RSS and
//! PSS) for runc shim + runc, runc shim + amphi and amphi's shim. [`compare`]
//! writes the table of the three and judges issue 14's targets against runc
//! shim + amphi in the same run.
//!
//! The harness starts a containerd of its own ([`daemon`]): config, root,
//! state and socket under the work directory, the CRI plugin off, a namespace
//! per run (`amphi-bench-<pid>`), so that whatever carries the namespace's
//! name is the run's. It imports the images `amphi-images` writes (and a
//! `sleep.wasm` image of its own), and at the end checks that no task,
//! container, shim, cgroup, state or mount was left, then tears down
//! ([`teardown`]) whatever was, also when the section fails or is interrupted
//! (Ctrl-C, SIGTERM: [`interrupt`]). It needs Debian's `containerd` (with
//! `ctr`); without it the section is skipped, and the summary says so.
//!
//! A peer that runs in a private view of the cgroups (crun on a hybrid host)
//! cannot have that view under the shim, which containerd spawns: it is left
//! out here, with the reason. Only amphi runs the wasm image (by content: the
//! image has no annotation ctr would copy); its ratio is taken against the
//! peers' native `/bin/true`.

mod compare;
mod daemon;
mod idle;
mod interrupt;
mod teardown;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;

pub use compare::{markdown, targets};
use daemon::Daemon;
use idle::IdleKind;
use interrupt::Interrupt;

use crate::cli::Plan;
use crate::process::{ErrLog, reap_orphans, timed};
use crate::report::{Results, Unit};
use crate::runtime::{Bench, Kind};
use crate::stats::{paired_ratio, summarize};

pub const SECTION: &str = "containerd";
/// The workload names in the results.
pub const NATIVE: &str = "ctr-native-true";
pub const WASM: &str = "ctr-wasm-hello";
pub const IDLE_NATIVE: &str = "ctr-idle-native";
pub const IDLE_WASM: &str = "ctr-idle-wasm";
/// amphi's shim, as a "runtime" in the results.
pub const AMPHI_SHIM: &str = "amphi-shim";
/// The shim's binary, next to `amphi`.
const AMPHI_SHIM_BINARY: &str = "containerd-shim-amphi-v1";
/// Its runtime type, for `ctr run --runtime`.
const AMPHI_RUNTIME_TYPE: &str = "io.containerd.amphi.v1";

const NATIVE_IMAGE: &str = "amphi.test/native:latest";
const WASM_IMAGE: &str = "amphi.test/wasm-plain:latest";
const WASM_SLEEP_IMAGE: &str = "amphi.test/wasm-sleep:latest";

/// How containerd runs a task.
#[derive(Debug, Clone)]
enum Shim {
    /// containerd's runc shim with this runtime as its runc binary.
    Runc { binary: PathBuf },
    /// amphi's shim.
    Amphi,
}

/// One configuration: a shim, and the runtime under it.
#[derive(Debug, Clone)]
pub struct Config {
    /// The name in the results: the runtime's, or `amphi-shim`.
    name: String,
    shim: Shim,
    /// amphi either way: it runs the wasm images, and its failure fails the run.
    amphi: bool,
}

impl Config {
    /// The `ctr run` flags that choose this configuration.
    fn runtime_args(&self) -> Vec<String> {
        match &self.shim {
            Shim::Runc { binary } => vec!["--runc-binary".into(), binary.to_string_lossy().into_owned()],
            Shim::Amphi => vec!["--runtime".into(), AMPHI_RUNTIME_TYPE.into()],
        }
    }

    /// Whether its idle containers are measured: runc shim + runc, runc shim +
    /// amphi, amphi's shim.
    fn in_memory_part(&self) -> bool {
        self.amphi || self.name == "runc"
    }

    /// The outcome of one measurement: amphi's failure (under either shim) is
    /// an error; a peer's is noted and its sample left out.
    fn keep<T>(
        &self,
        results: &mut Results,
        workload: &str,
        what: &str,
        outcome: anyhow::Result<T>,
    ) -> anyhow::Result<Option<T>> {
        if self.amphi {
            return outcome.map(Some).with_context(|| format!("{}, {workload}, {what}", self.name));
        }
        results.keep(&self.name, workload, what, outcome)
    }
}

/// One `ctr run --rm` candidate: a configuration, a workload, its image and
/// arguments.
#[derive(Debug)]
struct Case {
    config: Config,
    workload: &'static str,
    image: &'static str,
    args: &'static [&'static str],
}

pub fn measure(plan: &Plan, bench: &mut Bench, results: &mut Results) -> anyhow::Result<()> {
    if which("containerd").is_none() || which("ctr").is_none() {
        bench.notes.push("containerd: skipped, no `containerd` and `ctr` on PATH (apt-get install containerd)".into());
        return Ok(());
    }
    let interrupt = Interrupt::catch()?;
    let namespace = format!("amphi-bench-{}", std::process::id());
    let shim_dir = plan.amphi.parent().context("the amphi binary's directory")?.to_owned();
    let mut daemon = Daemon::start(&bench.work.join("ctrd"), &namespace, &shim_dir)?;
    let measured = measure_with(plan, bench, results, &daemon, &interrupt);
    // Nothing may be left: every `ctr run --rm` removed its task and container,
    // every idle container was removed, every shim exited. Whatever was left
    // is then forced away (also after a failure or an interruption).
    let (before, after) = daemon.shutdown();
    drop(daemon);
    reap_orphans();
    measured?;
    interrupt.check()?;
    if before.is_empty() {
        bench.notes.push(
            "containerd: no task, container, shim process, cgroup, runtime state or mount left after the section"
                .into(),
        );
    } else {
        results.amphi_failures.push(format!("containerd section left {}", before.describe()));
    }
    if !after.is_empty() {
        results.amphi_failures.push(format!("containerd section could not remove {}", after.describe()));
    }
    ratio_notes(bench, results);
    Ok(())
}

fn measure_with(
    plan: &Plan,
    bench: &mut Bench,
    results: &mut Results,
    daemon: &Daemon,
    interrupt: &Interrupt,
) -> anyhow::Result<()> {
    let images_dir = bench.work.join("images");
    let sources = amphi_test_bundles::ImageSources::with_probe(amphi_test_bundles::probe_path_next_to(&plan.amphi));
    let images = amphi_test_bundles::build_images(&images_dir, &sources).context("build the test images")?;
    let sleep = amphi_test_bundles::images::Image {
        name: WASM_SLEEP_IMAGE.into(),
        layers: vec![amphi_test_bundles::images::Layer::new().copy(
            "sleep.wasm",
            0o644,
            &sources.wasm.join("sleep.wasm"),
        )?],
        entrypoint: vec!["/sleep.wasm".into()],
        ..Default::default()
    }
    .write_archive(&images_dir.join("wasm-sleep.tar"))
    .context("build the wasm sleep image")?;
    for archive in [&images.native.path, &images.wasm_plain.path, &sleep.path] {
        daemon.ctr_ok(&["images", "import", &archive.to_string_lossy()])?;
    }

    let configs = configurations(plan, bench);
    let mut cases = Vec::new();
    for config in &configs {
        let case = |workload, image, args| Case { config: config.clone(), workload, image, args };
        cases.push(case(NATIVE, NATIVE_IMAGE, &["/bin/true"]));
        if config.amphi {
            cases.push(case(WASM, WASM_IMAGE, &["/hello.wasm"]));
        }
    }

    let err = ErrLog::create(&bench.work.join("containerd.err"))?;
    let mut n = 0usize;
    let mut next_id = |bench: &Bench| {
        n += 1;
        format!("{}ctr{n}", bench.id_prefix)
    };
    // Warm-up (fills amphi's compile caches for the wasm image); a peer that
    // cannot run under the shim is left out, with its words.
    let mut kept = Vec::new();
    for case in cases.drain(..) {
        let mut outcome = Ok(Duration::ZERO);
        for _ in 0..plan.warmup.max(1) {
            outcome = run_once(daemon, &case, &next_id(bench), &err, interrupt);
            if outcome.is_err() {
                break;
            }
        }
        if case.config.keep(results, case.workload, "ctr run --rm (warm-up)", outcome)?.is_some() {
            kept.push(case);
        }
    }
    // Measured runs, interleaved, the order rotated each round.
    for round in 0..plan.iterations {
        for k in 0..kept.len() {
            let case = &kept[(round + k) % kept.len()];
            let took = run_once(daemon, case, &next_id(bench), &err, interrupt);
            let value = match case.config.keep(results, case.workload, "ctr run --rm", took)? {
                Some(took) => took.as_secs_f64() * 1000.0,
                None => f64::NAN,
            };
            results.push(SECTION, case.workload, "ctr-run", &case.config.name, Unit::Ms, value);
        }
        reap_orphans();
    }
    // Throughput: N tasks, one after the other and K at once.
    for case in &kept {
        let ids: Vec<String> = (0..plan.throughput * 2).map(|_| next_id(bench)).collect();
        let (sequential_ids, parallel_ids) = ids.split_at(plan.throughput);
        let logs: Vec<ErrLog> = (0..plan.parallel)
            .map(|k| ErrLog::create(&bench.work.join(format!("containerd-{k}.err"))))
            .collect::<anyhow::Result<_>>()?;
        let measured = (|| -> anyhow::Result<(f64, f64)> {
            let started = Instant::now();
            for id in sequential_ids {
                run_once(daemon, case, id, &err, interrupt)?;
            }
            let sequential = plan.throughput as f64 / started.elapsed().as_secs_f64();
            let started = Instant::now();
            crate::throughput::at_once(parallel_ids, &logs, |id, log| {
                run_once(daemon, case, id, log, interrupt).map(drop)
            })?;
            Ok((sequential, plan.throughput as f64 / started.elapsed().as_secs_f64()))
        })();
        reap_orphans();
        let Some((sequential, parallel)) = case.config.keep(results, case.workload, "ctr throughput", measured)? else {
            continue;
        };
        let name = &case.config.name;
        results.push(SECTION, case.workload, "tasks/s sequential", name, Unit::PerSec, sequential);
        let at_once = format!("tasks/s {} at once", plan.parallel);
        results.push(SECTION, case.workload, &at_once, name, Unit::PerSec, parallel);
    }
    idle_memory(plan, bench, results, daemon, &configs, interrupt, &mut next_id)
}

/// Every OCI runtime under the runc shim (but a peer that needs a cgroup
/// view), then amphi's shim when it was built.
fn configurations(plan: &Plan, bench: &mut Bench) -> Vec<Config> {
    let mut configs = Vec::new();
    let mut notes = Vec::new();
    for runtime in &bench.runtimes {
        if runtime.kind != Kind::Oci || !runtime.active() {
            continue;
        }
        if let Some((_, why)) = &runtime.view {
            notes.push(format!(
                "containerd: {} left out: the shim cannot give it its cgroup view ({why})",
                runtime.name
            ));
            continue;
        }
        configs.push(Config {
            name: runtime.name.clone(),
            shim: Shim::Runc { binary: runtime.path.clone() },
            amphi: runtime.is_amphi(),
        });
    }
    let shim = plan.amphi.with_file_name(AMPHI_SHIM_BINARY);
    if shim.is_file() {
        configs.push(Config { name: AMPHI_SHIM.into(), shim: Shim::Amphi, amphi: true });
        notes.push(format!(
            "containerd: amphi's shim {} (`ctr run --runtime {AMPHI_RUNTIME_TYPE}`), found by containerd on its PATH",
            shim.display()
        ));
    } else {
        notes.push(format!(
            "containerd: amphi's shim left out: no {} (build it with `cargo build --workspace --bins`)",
            shim.display()
        ));
    }
    bench.notes.extend(notes);
    configs
}

/// N idle containers per configuration (of the memory part) and kind.
fn idle_memory(
    plan: &Plan,
    bench: &mut Bench,
    results: &mut Results,
    daemon: &Daemon,
    configs: &[Config],
    interrupt: &Interrupt,
    next_id: &mut impl FnMut(&Bench) -> String,
) -> anyhow::Result<()> {
    let kinds = [
        IdleKind { workload: IDLE_NATIVE, image: NATIVE_IMAGE, args: &["/bin/sleep", "3600"], ready_line: None },
        IdleKind { workload: IDLE_WASM, image: WASM_SLEEP_IMAGE, args: &[], ready_line: Some("sleeping") },
    ];
    let logs_dir = bench.work.join("ctr-idle");
    std::fs::create_dir_all(&logs_dir).with_context(|| format!("create {}", logs_dir.display()))?;
    for kind in kinds {
        for config in configs.iter().filter(|c| c.in_memory_part() && (c.amphi || kind.workload == IDLE_NATIVE)) {
            let warm_up = [next_id(bench)];
            let ids: Vec<String> = (0..plan.density).map(|_| next_id(bench)).collect();
            let measured = idle::measure(daemon, config, kind, &warm_up, &logs_dir, interrupt)
                .context("warm-up")
                .and_then(|_| idle::measure(daemon, config, kind, &ids, &logs_dir, interrupt));
            if let Some(memory) = config.keep(results, kind.workload, "idle containers", measured)? {
                idle::record(results, kind.workload, &config.name, memory, plan.density);
            }
        }
    }
    Ok(())
}

/// `ctr run --rm --null-io RUNTIME-FLAGS IMAGE ID ARGS…`: the wall time.
fn run_once(daemon: &Daemon, case: &Case, id: &str, err: &ErrLog, interrupt: &Interrupt) -> anyhow::Result<Duration> {
    interrupt.check()?;
    let mut args: Vec<String> = vec!["run".into(), "--rm".into(), "--null-io".into()];
    args.extend(case.config.runtime_args());
    args.extend([case.image.to_owned(), id.to_owned()]);
    args.extend(case.args.iter().map(|a| (*a).to_owned()));
    let mut cmd = daemon.ctr(&args);
    cmd.stdout(Stdio::null());
    let took = timed(&mut cmd, err);
    if took.is_err() {
        // A failed run leaves its task or container record.
        let _ = daemon.remove(id);
    }
    took
}

/// The medians against runc's (and each other's), for the summary's notes.
fn ratio_notes(bench: &mut Bench, results: &Results) {
    let median = |workload: &str, runtime: &str| -> Option<crate::stats::Summary> {
        results.get(SECTION, workload, "ctr-run", runtime).and_then(|s| summarize(&s.values))
    };
    let series = |workload: &str, runtime: &str| results.get(SECTION, workload, "ctr-run", runtime);
    let Some(amphi) = median(NATIVE, "amphi") else { return };
    for peer in bench.runtimes.iter().filter(|r| r.kind == Kind::Oci && !r.is_amphi()).map(|r| r.name.clone()) {
        let (Some(theirs), Some(a), Some(p)) = (median(NATIVE, &peer), series(NATIVE, "amphi"), series(NATIVE, &peer))
        else {
            continue;
        };
        let ratio = paired_ratio(&a.values, &p.values).unwrap_or(f64::NAN);
        let mut note = format!(
            "containerd: `ctr run --rm` of native /bin/true, median amphi {:.1} ms vs {peer} {:.1} ms (paired ratio {ratio:.2})",
            amphi.median, theirs.median
        );
        if let (Some(w), Some(ws)) = (median(WASM, "amphi"), series(WASM, "amphi")) {
            let wasm_ratio = paired_ratio(&ws.values, &p.values).unwrap_or(f64::NAN);
            note.push_str(&format!("; amphi wasm hello {:.1} ms (ratio to {peer}'s native {wasm_ratio:.2})", w.median));
        }
        bench.notes.push(note);
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(program)).find(|p| p.is_file())
}
