//! Start-up through containerd: `ctr run --rm` of the native and wasm test
//! images with each OCI runtime as the runc binary of containerd's runc shim
//! (`--runc-binary`), as containerd users meet it; and tasks per second for N
//! tasks, K at once. containerd, ctr, the shim and the snapshotter are the same
//! for every runtime, so the differences are the runtimes'.
//!
//! The harness starts a containerd of its own (config, root, state and socket
//! under the work directory, the CRI plugin off), imports the images
//! `amphi-images` writes, and stops it at the end, after checking that no task
//! or container is left. It needs Debian's `containerd` (with `ctr`); without
//! it the section is skipped, and the summary says so.
//!
//! A peer that runs in a private view of the cgroups (crun on a hybrid host)
//! cannot have that view under the shim, which containerd spawns: it is left
//! out here, with the reason. Only amphi runs the wasm image (by content: the
//! image has no annotation ctr would copy); its ratio is taken against the
//! peers' native `/bin/true`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cli::Plan;
use crate::process::{ErrLog, reap_orphans, timed};
use crate::report::{Results, Unit};
use crate::runtime::{Bench, Kind};
use crate::stats::{paired_ratio, summarize};

pub const SECTION: &str = "containerd";
/// The workload names in the results.
pub const NATIVE: &str = "ctr-native-true";
pub const WASM: &str = "ctr-wasm-hello";
const NAMESPACE: &str = "amphi-bench";

/// A private containerd, stopped (by its pid) on drop.
struct Daemon {
    dir: PathBuf,
    child: Child,
}

impl Daemon {
    fn start(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let d = dir.display();
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\n\
             [grpc]\n  address = \"{d}/c.sock\"\n\n[ttrpc]\n  address = \"{d}/c.sock.ttrpc\"\n\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n"
        );
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, config).with_context(|| format!("write {}", config_path.display()))?;
        let log = std::fs::File::create(dir.join("containerd.log")).context("containerd log")?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start containerd")?;
        let daemon = Daemon { dir: dir.to_owned(), child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(dir.join("c.sock").exists() && daemon.ctr(&["version"]).output().is_ok_and(|o| o.status.success())) {
            if Instant::now() > deadline {
                bail!("containerd never answered; its log: {}", dir.join("containerd.log").display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(daemon)
    }

    fn ctr(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address").arg(self.dir.join("c.sock")).args(["--namespace", NAMESPACE]).args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    fn ctr_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.ctr(args).output().with_context(|| format!("ctr {args:?}"))?;
        if !out.status.success() {
            bail!("ctr {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The rows of a `ctr … ls` listing, without its header.
    fn listing(&self, args: &[&str]) -> anyhow::Result<Vec<String>> {
        Ok(self.ctr_ok(args)?.lines().skip(1).filter(|l| !l.trim().is_empty()).map(str::to_owned).collect())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::SIGTERM);
        let _ = self.child.wait();
    }
}

/// One candidate: a runtime, a workload, its image and arguments.
struct Case {
    name: String,
    binary: PathBuf,
    workload: &'static str,
    image: &'static str,
    args: &'static [&'static str],
}

pub fn measure(plan: &Plan, bench: &mut Bench, results: &mut Results) -> anyhow::Result<()> {
    if which("containerd").is_none() || which("ctr").is_none() {
        bench.notes.push("containerd: skipped, no `containerd` and `ctr` on PATH (apt-get install containerd)".into());
        return Ok(());
    }
    let images_dir = bench.work.join("images");
    let sources = amphi_test_bundles::ImageSources::with_probe(amphi_test_bundles::probe_path_next_to(&plan.amphi));
    let images = amphi_test_bundles::build_images(&images_dir, &sources).context("build the test images")?;
    let daemon = Daemon::start(&bench.work.join("ctrd"))?;
    for archive in [&images.native, &images.wasm_plain] {
        daemon.ctr_ok(&["images", "import", &archive.path.to_string_lossy()])?;
    }

    let mut cases = Vec::new();
    let mut left_out = Vec::new();
    for runtime in &bench.runtimes {
        if runtime.kind != Kind::Oci || !runtime.active() {
            continue;
        }
        if let Some((_, why)) = &runtime.view {
            left_out.push(format!(
                "containerd: {} left out: the shim cannot give it its cgroup view ({why})",
                runtime.name
            ));
            continue;
        }
        let case = |workload, image, args| Case {
            name: runtime.name.clone(),
            binary: runtime.path.clone(),
            workload,
            image,
            args,
        };
        cases.push(case(NATIVE, "amphi.test/native:latest", &["/bin/true"]));
        if runtime.is_amphi() {
            cases.push(case(WASM, "amphi.test/wasm-plain:latest", &["/hello.wasm"]));
        }
    }
    bench.notes.extend(left_out);

    let err = ErrLog::create(&bench.work.join("containerd.err"))?;
    let mut n = 0usize;
    let mut next_id = |bench: &Bench| {
        n += 1;
        format!("{}ctr{n}", bench.id_prefix)
    };
    // Warm-up (fills amphi's compile cache for the wasm image); a peer that
    // cannot run under the shim is left out, with its words.
    let mut kept = Vec::new();
    for case in cases.drain(..) {
        let mut outcome = Ok(Duration::ZERO);
        for _ in 0..plan.warmup.max(1) {
            outcome = run_once(&daemon, &case, &next_id(bench), &err);
            if outcome.is_err() {
                break;
            }
        }
        if results.keep(&case.name, case.workload, "ctr run --rm (warm-up)", outcome)?.is_some() {
            kept.push(case);
        }
    }
    // Measured runs, interleaved, the order rotated each round.
    for round in 0..plan.iterations {
        for k in 0..kept.len() {
            let case = &kept[(round + k) % kept.len()];
            let took = run_once(&daemon, case, &next_id(bench), &err);
            let value = match results.keep(&case.name, case.workload, "ctr run --rm", took)? {
                Some(took) => took.as_secs_f64() * 1000.0,
                None => f64::NAN,
            };
            results.push(SECTION, case.workload, "ctr-run", &case.name, Unit::Ms, value);
        }
        reap_orphans();
    }
    // Throughput: N tasks, one after the other and K at once.
    for case in &kept {
        let ids: Vec<String> = (0..plan.throughput * 2).map(|_| next_id(bench)).collect();
        let (sequential_ids, parallel_ids) = ids.split_at(plan.throughput);
        let started = Instant::now();
        for id in sequential_ids {
            run_once(&daemon, case, id, &err)?;
        }
        let sequential = plan.throughput as f64 / started.elapsed().as_secs_f64();
        let logs: Vec<ErrLog> = (0..plan.parallel)
            .map(|k| ErrLog::create(&bench.work.join(format!("containerd-{k}.err"))))
            .collect::<anyhow::Result<_>>()?;
        let started = Instant::now();
        let outcome =
            crate::throughput::at_once(parallel_ids, &logs, |id, log| run_once(&daemon, case, id, log).map(drop));
        let parallel = plan.throughput as f64 / started.elapsed().as_secs_f64();
        if results.keep(&case.name, case.workload, "ctr throughput", outcome)?.is_none() {
            continue;
        }
        reap_orphans();
        results.push(SECTION, case.workload, "tasks/s sequential", &case.name, Unit::PerSec, sequential);
        results.push(
            SECTION,
            case.workload,
            &format!("tasks/s {} at once", plan.parallel),
            &case.name,
            Unit::PerSec,
            parallel,
        );
    }

    // Nothing may be left: every `ctr run --rm` removed its task and container.
    let tasks = daemon.listing(&["task", "ls"])?;
    let containers = daemon.listing(&["containers", "ls"])?;
    let state = Path::new("/run/containerd/runc").join(NAMESPACE);
    let state_left: Vec<String> = std::fs::read_dir(&state)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    drop(daemon);
    reap_orphans();
    let _ = std::fs::remove_dir(&state);
    if tasks.is_empty() && containers.is_empty() && state_left.is_empty() {
        bench.notes.push("containerd: no task, container or runtime state left after the section".into());
    } else {
        let what = format!("tasks {tasks:?}, containers {containers:?}, state in {}: {state_left:?}", state.display());
        results.amphi_failures.push(format!("containerd section left {what}"));
    }
    ratio_notes(bench, results);
    Ok(())
}

/// `ctr run --rm --null-io --runc-binary BIN IMAGE ID ARGS…`: the wall time.
fn run_once(daemon: &Daemon, case: &Case, id: &str, err: &ErrLog) -> anyhow::Result<Duration> {
    let binary = case.binary.to_string_lossy();
    let mut args = vec!["run", "--rm", "--null-io", "--runc-binary", &binary, case.image, id];
    args.extend_from_slice(case.args);
    let mut cmd = daemon.ctr(&args);
    cmd.stdout(Stdio::null());
    let took = timed(&mut cmd, err);
    if took.is_err() {
        // A failed run leaves its container record.
        let _ = daemon.ctr(&["containers", "rm", id]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
    took
}

/// The medians against runc's (and each other's), for the summary's notes.
fn ratio_notes(bench: &mut Bench, results: &Results) {
    let median = |workload: &str, runtime: &str| -> Option<crate::stats::Summary> {
        results.get(SECTION, workload, "ctr-run", runtime).and_then(|s| summarize(&s.values))
    };
    let Some(amphi) = median(NATIVE, "amphi") else { return };
    for peer in bench.runtimes.iter().filter(|r| r.kind == Kind::Oci && !r.is_amphi()).map(|r| r.name.clone()) {
        let (Some(theirs), Some(a), Some(p)) = (
            median(NATIVE, &peer),
            results.get(SECTION, NATIVE, "ctr-run", "amphi"),
            results.get(SECTION, NATIVE, "ctr-run", &peer),
        ) else {
            continue;
        };
        let ratio = paired_ratio(&a.values, &p.values).unwrap_or(f64::NAN);
        let mut note = format!(
            "containerd: `ctr run --rm` of native /bin/true, median amphi {:.1} ms vs {peer} {:.1} ms (paired ratio {ratio:.2})",
            amphi.median, theirs.median
        );
        if let (Some(w), Some(ws)) = (median(WASM, "amphi"), results.get(SECTION, WASM, "ctr-run", "amphi")) {
            let wasm_ratio = paired_ratio(&ws.values, &p.values).unwrap_or(f64::NAN);
            note.push_str(&format!("; amphi wasm hello {:.1} ms (ratio to {peer}'s native {wasm_ratio:.2})", w.median));
        }
        bench.notes.push(note);
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(program)).find(|p| p.is_file())
}
