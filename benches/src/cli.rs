//! The command line, and the plan it resolves to.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Parser;

/// Start-up benchmarks of amphi against runc, crun, youki, the floor and wasmtime.
#[derive(Debug, Parser)]
#[command(name = "amphi-bench")]
pub struct Options {
    /// The amphi binary (default: the `amphi` next to this binary, i.e. the same
    /// cargo profile).
    #[arg(long, value_name = "PATH")]
    pub amphi: Option<PathBuf>,
    /// A peer runtime with runc's command line, as NAME=PATH (repeatable). runc,
    /// crun and youki are also looked up on PATH and in ~/.cargo/bin. A name
    /// that starts with `amphi-` is another build of amphi (an A/B run): it gets
    /// amphi's wasm-cache flags.
    #[arg(long = "runtime", value_name = "NAME=PATH")]
    pub runtimes: Vec<String>,
    /// Do not look for peers on PATH: only amphi and the --runtime ones.
    #[arg(long)]
    pub no_auto_peers: bool,
    /// The wasmtime CLI for the wasm baselines (default: `wasmtime` on PATH or in
    /// ~/.cargo/bin; without one those rows are skipped).
    #[arg(long, value_name = "PATH")]
    pub wasmtime: Option<PathBuf>,
    /// The runtime the ratios are computed against (default: crun, else runc).
    #[arg(long, value_name = "NAME")]
    pub baseline: Option<String>,
    /// Measured runs per runtime and workload.
    #[arg(long, short = 'n', default_value_t = 30)]
    pub iterations: usize,
    /// Warm-up runs before the measured ones.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Drop the page cache (sync; echo 3 > /proc/sys/vm/drop_caches) before each
    /// measured run: a cold start.
    #[arg(long)]
    pub drop_caches: bool,
    /// Idle containers per runtime and kind in the density measurement.
    #[arg(long, default_value_t = 50)]
    pub density: usize,
    /// Containers per throughput measurement.
    #[arg(long, default_value_t = 60)]
    pub throughput: usize,
    /// Containers started at once in the parallel throughput measurement.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Runs of the peak-RSS and container-RSS measurements.
    #[arg(long, default_value_t = 5)]
    pub rss_iterations: usize,
    /// Seconds of load per server and connection count in the http section.
    #[arg(long, default_value_t = 10)]
    pub http_seconds: u64,
    /// Rounds of the http section's load measurement (each round drives every
    /// server at 1, 16 and 64 connections).
    #[arg(long, default_value_t = 3)]
    pub http_rounds: usize,
    /// Requests sent to a service before its memory is read the second time
    /// (the first time is after 1,000).
    #[arg(long, default_value_t = 100_000)]
    pub http_requests: usize,
    /// Only these sections (repeatable): lifecycle, commands, memory, throughput,
    /// containerd, http.
    #[arg(long = "only", value_name = "SECTION")]
    pub only: Vec<String>,
    /// One quick pass (1 warm-up, 2 runs, small density and throughput) that
    /// proves the harness works; the results go to the work directory unless
    /// --out is given. What CI runs.
    #[arg(long)]
    pub smoke: bool,
    /// Where the results go (default: benches/runs/<date>-<host>/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Keep the runtimes' state roots on the work directory's filesystem
    /// instead of a tmpfs (by default the harness mounts one, in a mount
    /// namespace of its own, as /run is a tmpfs on most hosts).
    #[arg(long)]
    pub state_on_disk: bool,
    /// Where bundles, state and caches go (default: a new directory under /tmp,
    /// removed at the end).
    #[arg(long, value_name = "DIR")]
    pub work: Option<PathBuf>,
}

/// Which sections run.
#[derive(Debug, Clone, Copy)]
pub struct Sections {
    pub lifecycle: bool,
    pub commands: bool,
    pub memory: bool,
    pub throughput: bool,
    pub containerd: bool,
    pub http: bool,
}

/// The options, checked and with their defaults filled in. Paths are absolute:
/// the harness changes mount namespace, which resets its working directory.
#[derive(Debug)]
pub struct Plan {
    pub amphi: PathBuf,
    pub peers: Vec<(String, PathBuf)>,
    pub auto_peers: bool,
    pub wasmtime: Option<PathBuf>,
    pub baseline: Option<String>,
    pub iterations: usize,
    pub warmup: usize,
    pub drop_caches: bool,
    pub density: usize,
    pub throughput: usize,
    pub parallel: usize,
    pub rss_iterations: usize,
    pub http_seconds: u64,
    pub http_rounds: usize,
    pub http_requests: usize,
    pub sections: Sections,
    pub smoke: bool,
    /// `None`: results go to the work directory (smoke without --out).
    pub out: Option<PathBuf>,
    pub work: PathBuf,
    pub keep_work: bool,
    pub state_on_tmpfs: bool,
    /// The command line, as typed, for the summary.
    pub command_line: String,
}

impl Plan {
    pub fn resolve(options: Options) -> anyhow::Result<Self> {
        let absolute = |p: &Path| std::path::absolute(p).with_context(|| format!("resolve {}", p.display()));
        let amphi = match options.amphi {
            Some(path) => absolute(&path)?,
            None => std::env::current_exe().context("find this binary")?.with_file_name("amphi"),
        };
        if !amphi.is_file() {
            bail!(
                "amphi {} does not exist; build it with `cargo build --release -p amphi` (or give --amphi)",
                amphi.display()
            );
        }
        let mut peers = Vec::new();
        for spec in &options.runtimes {
            let Some((name, path)) = spec.split_once('=') else {
                bail!("--runtime {spec:?}: expected NAME=PATH");
            };
            if name.is_empty() || name == "amphi" || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                bail!("--runtime {spec:?}: the name must be letters, digits or '-' and not amphi");
            }
            let path = absolute(Path::new(path))?;
            if !path.is_file() {
                bail!("--runtime {name}: {} does not exist", path.display());
            }
            peers.push((name.to_owned(), path));
        }
        let wasmtime = match options.wasmtime {
            Some(path) if !path.is_file() => bail!("--wasmtime {} does not exist", path.display()),
            Some(path) => Some(absolute(&path)?),
            None => find_program("wasmtime"),
        };
        let mut sections =
            Sections { lifecycle: true, commands: true, memory: true, throughput: true, containerd: true, http: true };
        if !options.only.is_empty() {
            sections = Sections {
                lifecycle: false,
                commands: false,
                memory: false,
                throughput: false,
                containerd: false,
                http: false,
            };
            for name in &options.only {
                match name.as_str() {
                    "lifecycle" => sections.lifecycle = true,
                    "commands" => sections.commands = true,
                    "memory" => sections.memory = true,
                    "throughput" => sections.throughput = true,
                    "containerd" => sections.containerd = true,
                    "http" => sections.http = true,
                    _ => bail!("--only {name:?}: expected lifecycle, commands, memory, throughput, containerd or http"),
                }
            }
        }
        let (mut iterations, mut warmup, mut density, mut throughput, mut parallel, mut rss_iterations) = (
            options.iterations,
            options.warmup,
            options.density,
            options.throughput,
            options.parallel,
            options.rss_iterations,
        );
        let (mut http_seconds, mut http_rounds, mut http_requests) =
            (options.http_seconds, options.http_rounds, options.http_requests);
        if options.smoke {
            (iterations, warmup, density, throughput, parallel, rss_iterations) = (2, 1, 3, 4, 2, 1);
            (http_seconds, http_rounds, http_requests) = (1, 1, 2000);
        }
        if http_seconds == 0 || http_rounds == 0 {
            bail!("--http-seconds and --http-rounds must be at least 1");
        }
        if iterations == 0 || parallel == 0 || throughput < parallel || rss_iterations == 0 {
            bail!("--iterations, --parallel and --rss-iterations must be at least 1, --throughput at least --parallel");
        }
        let keep_work = options.work.is_some();
        let work = match options.work {
            Some(dir) => absolute(&dir)?,
            None => std::env::temp_dir().join(format!("amphi-bench-{}", std::process::id())),
        };
        let out = match (options.out, options.smoke) {
            (Some(dir), _) => Some(absolute(&dir)?),
            (None, true) => None,
            (None, false) => Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("runs").join(format!(
                "{}-{}",
                crate::host::today(),
                crate::host::hostname()
            ))),
        };
        Ok(Self {
            amphi,
            peers,
            auto_peers: !options.no_auto_peers,
            wasmtime,
            baseline: options.baseline,
            iterations,
            warmup,
            drop_caches: options.drop_caches,
            density,
            throughput,
            parallel,
            rss_iterations,
            http_seconds,
            http_rounds,
            http_requests,
            sections,
            smoke: options.smoke,
            out,
            work,
            keep_work,
            state_on_tmpfs: !options.state_on_disk,
            command_line: std::env::args().map(|a| shell_quote(&a)).collect::<Vec<_>>().join(" "),
        })
    }
}

/// `name` on PATH, else in ~/.cargo/bin (where `cargo install` puts youki and
/// wasmtime).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let cargo_bin = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo/bin"));
    std::env::split_paths(&path).chain(cargo_bin).map(|dir| dir.join(name)).find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn shell_quote(arg: &str) -> String {
    if !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@".contains(c)) {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("--runtime=crun=/usr/bin/crun"), "--runtime=crun=/usr/bin/crun");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn smoke_shrinks_every_count() {
        let exe = std::env::current_exe().expect("exe");
        let options = Options::parse_from([
            "amphi-bench".as_ref(),
            "--smoke".as_ref(),
            "--amphi".as_ref(),
            exe.as_os_str(),
            "--no-auto-peers".as_ref(),
        ]);
        let plan = Plan::resolve(options).expect("plan");
        assert_eq!((plan.iterations, plan.warmup, plan.density, plan.parallel), (2, 1, 3, 2));
        assert_eq!((plan.http_seconds, plan.http_rounds, plan.http_requests), (1, 1, 2000));
        assert!(plan.sections.http, "the smoke pass runs the http section too");
        assert!(plan.out.is_none(), "a smoke pass writes into its work directory");
        assert!(plan.peers.is_empty());
    }

    #[test]
    fn a_runtime_flag_needs_a_name_and_an_existing_path() {
        let exe = std::env::current_exe().expect("exe");
        let exe = exe.to_str().expect("utf-8 path");
        for (flag, expected) in [
            ("crun", "expected NAME=PATH"),
            ("amphi=/bin/true", "not amphi"),
            ("crun=/nonexistent/crun", "/nonexistent/crun does not exist"),
        ] {
            let options = Options::parse_from(["amphi-bench", "--amphi", exe, "--runtime", flag]);
            let error = Plan::resolve(options).expect_err(flag).to_string();
            assert!(error.contains(expected), "{flag}: {error}");
        }
    }

    #[test]
    fn unknown_sections_are_refused() {
        let exe = std::env::current_exe().expect("exe");
        let exe = exe.to_str().expect("utf-8 path");
        let options = Options::parse_from(["amphi-bench", "--amphi", exe, "--only", "speed"]);
        let error = Plan::resolve(options).expect_err("bad section").to_string();
        assert!(error.contains("--only \"speed\""), "{error}");
    }
}
