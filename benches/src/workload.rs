//! The workloads, their bundles, and how each runtime runs each of them.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use amphi_test_bundles::bench::{FilesBundle, WASM_VARIANT_ANNOTATION, build_files};
use amphi_test_bundles::{Bundle, HOST_BUSYBOX, build_busybox};
use anyhow::{Context, bail};
use serde_json::json;

use crate::cli::Plan;
use crate::lifecycle;
use crate::report::Results;
use crate::runtime::{Bench, Kind, Runtime, View};

/// A workload of the lifecycle measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Workload {
    /// busybox `/bin/true`.
    True,
    /// busybox `echo hello from echo`.
    Echo,
    /// The hello module (`hello.wasm`, WASI preview 1), compile cache warm.
    ModuleWarm,
    /// The hello module with an empty compile cache: compiled on each run.
    ModuleCold,
    /// The hello component (`hello-component.wasm`, wasi:cli/run), cache warm.
    ComponentWarm,
    ComponentCold,
    /// wasmtime's CLI inside a native container running the hello module
    /// precompiled (`wasmtime run --allow-precompiled hello.cwasm`): what a user
    /// without a wasm-aware runtime does.
    CliWarm,
    /// The same, compiling each time (`wasmtime run -C cache=n hello.wasm`).
    CliCold,
}

impl Workload {
    pub const ALL: [Workload; 8] = [
        Workload::True,
        Workload::Echo,
        Workload::ModuleWarm,
        Workload::ModuleCold,
        Workload::ComponentWarm,
        Workload::ComponentCold,
        Workload::CliWarm,
        Workload::CliCold,
    ];

    /// The name in the CSV.
    pub fn name(self) -> &'static str {
        match self {
            Workload::True => "true",
            Workload::Echo => "echo",
            Workload::ModuleWarm => "wasm-module-warm",
            Workload::ModuleCold => "wasm-module-cold",
            Workload::ComponentWarm => "wasm-component-warm",
            Workload::ComponentCold => "wasm-component-cold",
            Workload::CliWarm => "wasmtime-cli-warm",
            Workload::CliCold => "wasmtime-cli-cold",
        }
    }

    /// The name in tables.
    pub fn label(self) -> &'static str {
        match self {
            Workload::True => "native /bin/true",
            Workload::Echo => "native echo",
            Workload::ModuleWarm => "wasm hello module, warm",
            Workload::ModuleCold => "wasm hello module, cold",
            Workload::ComponentWarm => "wasm hello component, warm",
            Workload::ComponentCold => "wasm hello component, cold",
            Workload::CliWarm => "wasmtime CLI in container, warm",
            Workload::CliCold => "wasmtime CLI in container, cold",
        }
    }

    pub fn is_wasm(self) -> bool {
        matches!(self, Workload::ModuleWarm | Workload::ModuleCold | Workload::ComponentWarm | Workload::ComponentCold)
    }

    pub fn is_cold(self) -> bool {
        matches!(self, Workload::ModuleCold | Workload::ComponentCold | Workload::CliCold)
    }

    /// What the workload prints on stdout.
    pub fn expected_output(self) -> &'static str {
        match self {
            Workload::True => "",
            Workload::Echo => "hello from echo\n",
            _ => "hello from wasm\n",
        }
    }
}

/// A long-running, idle workload of the memory measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Idle {
    /// busybox `sleep 3600`.
    Native,
    /// `sleep.wasm`: prints `sleeping`, then waits in `poll_oneoff`.
    Wasm,
    /// wasmtime's CLI in a native container running `sleep.cwasm`.
    Cli,
}

impl Idle {
    pub const ALL: [Idle; 3] = [Idle::Native, Idle::Wasm, Idle::Cli];

    pub fn name(self) -> &'static str {
        match self {
            Idle::Native => "idle-native",
            Idle::Wasm => "idle-wasm",
            Idle::Cli => "idle-wasmtime-cli",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Idle::Native => "native sleep",
            Idle::Wasm => "wasm sleep (module)",
            Idle::Cli => "wasmtime CLI in container, sleep",
        }
    }

    /// A line the workload prints once it is up (and idle), if any.
    pub fn ready_line(self) -> Option<&'static str> {
        match self {
            Idle::Native => None,
            Idle::Wasm | Idle::Cli => Some("sleeping"),
        }
    }
}

/// How one runtime runs one workload.
#[derive(Debug, Clone)]
pub enum Invocation {
    /// An OCI bundle, with amphi's `--wasm-cache` choice.
    Oci { bundle: PathBuf, cache: CacheChoice },
    /// A whole command line (the floor, wasmtime).
    Direct { argv: Vec<OsString> },
}

/// Which compile cache an amphi wasm run gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheChoice {
    /// Not amphi, or not wasm: no flag.
    None,
    /// The shared cache, filled by the check run before measuring.
    Warm(PathBuf),
    /// A new empty directory for every run, removed afterwards.
    Cold(PathBuf),
}

impl CacheChoice {
    /// The global flags for container `id`.
    pub fn globals(&self, id: &str) -> Vec<OsString> {
        match self {
            CacheChoice::None => Vec::new(),
            CacheChoice::Warm(dir) => vec!["--wasm-cache".into(), dir.into()],
            CacheChoice::Cold(base) => vec!["--wasm-cache".into(), base.join(id).into()],
        }
    }

    /// Removes the cold cache of `id` (after its run, outside the timing).
    pub fn done(&self, id: &str) {
        if let CacheChoice::Cold(base) = self {
            let _ = std::fs::remove_dir_all(base.join(id));
        }
    }
}

/// Every bundle and host file the measurements use.
#[derive(Debug)]
pub struct Workloads {
    busybox: Bundle,
    echo: Bundle,
    sleep: Bundle,
    module: Bundle,
    component: Bundle,
    wasm_sleep: Bundle,
    cli: Option<CliBundles>,
    host_wasm: HostWasm,
    warm_cache: PathBuf,
    cold_caches: PathBuf,
    /// `(runtime, workload or idle name)` → why that runtime cannot run it.
    pub unsupported: BTreeMap<(String, String), String>,
}

#[derive(Debug)]
struct CliBundles {
    warm: Bundle,
    cold: Bundle,
    sleep: Bundle,
}

/// The wasm files on the host, for `wasmtime run`.
#[derive(Debug)]
struct HostWasm {
    module: PathBuf,
    component: PathBuf,
    module_cwasm: Option<PathBuf>,
    component_cwasm: Option<PathBuf>,
    sleep_cwasm: Option<PathBuf>,
}

impl Workloads {
    /// Builds the bundles under `<work>/bundles`, and precompiles the wasm files
    /// with wasmtime if it is there.
    pub fn build(plan: &Plan, bench: &Bench) -> anyhow::Result<Self> {
        let dir = plan.work.join("bundles");
        let busybox = build_busybox(&dir.join("busybox"), Path::new(HOST_BUSYBOX))?;
        let echo =
            busybox.variant(&dir.join("echo"), |c| c["process"]["args"] = json!(["/bin/echo", "hello from echo"]))?;
        let sleep = busybox.variant(&dir.join("sleep"), |c| c["process"]["args"] = json!(["/bin/sleep", "3600"]))?;
        let fixture = amphi_wasm_fixtures::path;
        let wasm_bundle = |name: &str, file: &Path, inside: &str| {
            build_files(
                &dir.join(name),
                &FilesBundle {
                    files: &[(file, inside)],
                    args: &[inside],
                    annotations: &[WASM_VARIANT_ANNOTATION],
                    host_usr: false,
                    hostname: "bench",
                },
            )
        };
        let module = wasm_bundle("wasm-module", &fixture("hello.wasm"), "/hello.wasm")?;
        let component = wasm_bundle("wasm-component", &fixture("hello-component.wasm"), "/hello-component.wasm")?;
        let wasm_sleep = wasm_bundle("wasm-sleep", &fixture("sleep.wasm"), "/sleep.wasm")?;

        let wasmtime = bench.get("wasmtime").map(|r| r.path.clone());
        let mut host_wasm = HostWasm {
            module: fixture("hello.wasm"),
            component: fixture("hello-component.wasm"),
            module_cwasm: None,
            component_cwasm: None,
            sleep_cwasm: None,
        };
        let mut cli = None;
        let mut unsupported = BTreeMap::new();
        // A wasmtime built without its `compile` command (`cargo install
        // wasmtime-cli --no-default-features --features run,serve`) still runs
        // the cold rows and `serve`; the precompiled rows are left out, noted.
        let precompiled = match &wasmtime {
            Some(wasmtime) => match precompile(wasmtime, &plan.work.join("cwasm")) {
                Ok(files) => Some((wasmtime, files)),
                Err(e) => {
                    unsupported.insert(
                        ("wasmtime".to_owned(), "precompiled workloads".to_owned()),
                        format!(
                            "{e:#}: the warm-cache rows, the wasmtime CLI in a container and its memory rows are \
                             left out (a wasmtime built without `compile`?)"
                        ),
                    );
                    None
                }
            },
            None => None,
        };
        if let Some((wasmtime, (module_cwasm, component_cwasm, sleep_cwasm))) = precompiled {
            let hello = fixture("hello.wasm");
            let warm = build_files(
                &dir.join("wasmtime-cli"),
                &FilesBundle {
                    files: &[
                        (wasmtime, "/bin/wasmtime"),
                        (&hello, "/hello.wasm"),
                        (&module_cwasm, "/hello.cwasm"),
                        (&sleep_cwasm, "/sleep.cwasm"),
                    ],
                    args: &["/bin/wasmtime", "run", "-C", "cache=n", "--allow-precompiled", "/hello.cwasm"],
                    annotations: &[],
                    host_usr: true,
                    hostname: "bench",
                },
            )?;
            let cold = warm.variant(&dir.join("wasmtime-cli-cold"), |c| {
                c["process"]["args"] = json!(["/bin/wasmtime", "run", "-C", "cache=n", "/hello.wasm"])
            })?;
            let sleep = warm.variant(&dir.join("wasmtime-cli-sleep"), |c| {
                c["process"]["args"] =
                    json!(["/bin/wasmtime", "run", "-C", "cache=n", "--allow-precompiled", "/sleep.cwasm"])
            })?;
            cli = Some(CliBundles { warm, cold, sleep });
            host_wasm.module_cwasm = Some(module_cwasm);
            host_wasm.component_cwasm = Some(component_cwasm);
            host_wasm.sleep_cwasm = Some(sleep_cwasm);
        }
        Ok(Self {
            busybox,
            echo,
            sleep,
            module,
            component,
            wasm_sleep,
            cli,
            host_wasm,
            warm_cache: plan.work.join("wasm-cache-warm"),
            cold_caches: plan.work.join("wasm-cache-cold"),
            unsupported,
        })
    }

    /// How `runtime` runs `workload`, or `None` if it has no way to (the floor
    /// runs no wasm; wasmtime runs no container; a check that failed).
    pub fn invocation(&self, runtime: &Runtime, workload: Workload) -> Option<Invocation> {
        if self.unsupported.contains_key(&(runtime.name.clone(), workload.name().to_owned())) {
            return None;
        }
        self.invocation_unchecked(runtime, workload)
    }

    fn invocation_unchecked(&self, runtime: &Runtime, workload: Workload) -> Option<Invocation> {
        let wasmtime = |args: &[&str], file: &Path| {
            let mut argv: Vec<OsString> = vec![runtime.path.clone().into()];
            argv.extend(args.iter().map(OsString::from));
            argv.push(file.into());
            Invocation::Direct { argv }
        };
        match runtime.kind {
            Kind::Oci => {
                let bundle = match workload {
                    Workload::True => &self.busybox,
                    Workload::Echo => &self.echo,
                    Workload::ModuleWarm | Workload::ModuleCold => &self.module,
                    Workload::ComponentWarm | Workload::ComponentCold => &self.component,
                    Workload::CliWarm => &self.cli.as_ref()?.warm,
                    Workload::CliCold => &self.cli.as_ref()?.cold,
                };
                let cache = match (runtime.is_amphi_build() && workload.is_wasm(), workload.is_cold()) {
                    (false, _) => CacheChoice::None,
                    (true, false) => CacheChoice::Warm(self.warm_cache.clone()),
                    (true, true) => CacheChoice::Cold(self.cold_caches.clone()),
                };
                Some(Invocation::Oci { bundle: bundle.dir().to_owned(), cache })
            }
            Kind::Floor => {
                let args: &[&str] = match workload {
                    Workload::True => &["/bin/true"],
                    Workload::Echo => &["/bin/echo", "hello from echo"],
                    _ => return None,
                };
                let mut argv: Vec<OsString> = vec![runtime.path.clone().into(), "-fmnuip".into()];
                argv.push(format!("--root={}", self.busybox.rootfs().display()).into());
                argv.extend(args.iter().map(OsString::from));
                Some(Invocation::Direct { argv })
            }
            Kind::Wasmtime => match workload {
                Workload::ModuleCold => Some(wasmtime(&["run", "-C", "cache=n"], &self.host_wasm.module)),
                Workload::ComponentCold => Some(wasmtime(&["run", "-C", "cache=n"], &self.host_wasm.component)),
                Workload::ModuleWarm => {
                    Some(wasmtime(&["run", "--allow-precompiled"], self.host_wasm.module_cwasm.as_deref()?))
                }
                Workload::ComponentWarm => {
                    Some(wasmtime(&["run", "--allow-precompiled"], self.host_wasm.component_cwasm.as_deref()?))
                }
                _ => None,
            },
        }
    }

    /// The bundle of an idle workload for an OCI runtime (`None`: no such
    /// bundle, or the runtime failed its check).
    pub fn idle_bundle(&self, runtime: &Runtime, idle: Idle) -> Option<(PathBuf, CacheChoice)> {
        if !runtime.is_oci() || self.unsupported.contains_key(&(runtime.name.clone(), idle.name().to_owned())) {
            return None;
        }
        let bundle = match idle {
            Idle::Native => &self.sleep,
            Idle::Wasm => &self.wasm_sleep,
            Idle::Cli => &self.cli.as_ref()?.sleep,
        };
        let cache = if runtime.is_amphi_build() && idle == Idle::Wasm {
            CacheChoice::Warm(self.warm_cache.clone())
        } else {
            CacheChoice::None
        };
        Some((bundle.dir().to_owned(), cache))
    }

    /// The host's wasmtime running `sleep.cwasm`, for the container-RSS
    /// comparison.
    pub fn host_sleep_argv(&self, bench: &Bench) -> Option<Vec<OsString>> {
        let wasmtime = bench.get("wasmtime")?;
        let cwasm = self.host_wasm.sleep_cwasm.as_ref()?;
        Some(vec![wasmtime.path.clone().into(), "run".into(), "--allow-precompiled".into(), cwasm.into()])
    }
}

/// `wasmtime compile` of the hello module, component and sleep module into
/// `dir`: their `.cwasm` paths.
fn precompile(wasmtime: &Path, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let compile = |name: &str| -> anyhow::Result<PathBuf> {
        let out = dir.join(name.replace(".wasm", ".cwasm"));
        let status = Command::new(wasmtime)
            .arg("compile")
            .arg(amphi_wasm_fixtures::path(name))
            .arg("-o")
            .arg(&out)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .with_context(|| format!("run {} compile", wasmtime.display()))?;
        if !status.success() {
            bail!("{} compile {name} failed ({status})", wasmtime.display());
        }
        Ok(out)
    };
    Ok((compile("hello.wasm")?, compile("hello-component.wasm")?, compile("sleep.wasm")?))
}

/// Runs every `(runtime, workload)` once, `run` and create/start/wait/delete,
/// checking the exit status and the output; gives a peer that refuses the host's
/// cgroup layout a view it can use; records what cannot run, with the reason. A
/// failure of amphi itself is an error.
pub fn check_all(bench: &mut Bench, workloads: &mut Workloads, results: &mut Results) -> anyhow::Result<()> {
    for index in 0..bench.runtimes.len() {
        // The native lifecycle first: a runtime that cannot run it is skipped.
        if let Err(error) = check_one(bench, workloads, index, Workload::True) {
            let reason = format!("{error:#}");
            let is_layout = reason.contains("hybrid") || reason.contains("cgroup");
            if bench.runtimes[index].is_oci() && !bench.runtimes[index].is_amphi() && is_layout {
                let mut failures = Vec::new();
                for view in [View::HideCgroup2, View::Cgroup2Only] {
                    bench.give_view(index, view, &reason)?;
                    match check_one(bench, workloads, index, Workload::True) {
                        Ok(()) => break,
                        Err(again) => {
                            failures.push(format!("{view:?}: {again:#}"));
                            bench.drop_view(index);
                        }
                    }
                }
                if bench.runtimes[index].view.is_none() {
                    bench.runtimes[index].skipped =
                        Some(format!("{reason}; in a view of the cgroups: {}", failures.join("; ")));
                }
            } else if bench.runtimes[index].is_amphi() {
                bail!("amphi cannot run /bin/true: {reason}");
            } else if bench.runtimes[index].kind != Kind::Wasmtime {
                bench.runtimes[index].skipped = Some(reason);
            }
        }
        if !bench.runtimes[index].active() {
            continue;
        }
        for workload in Workload::ALL.into_iter().skip(1) {
            let runtime = &bench.runtimes[index];
            if workloads.invocation_unchecked(runtime, workload).is_none() {
                continue;
            }
            if let Err(error) = check_one(bench, workloads, index, workload) {
                let name = bench.runtimes[index].name.clone();
                if name == "amphi" && workload != Workload::CliWarm && workload != Workload::CliCold {
                    results.amphi_failures.push(format!("{}: {error:#}", workload.label()));
                }
                workloads.unsupported.insert((name, workload.name().to_owned()), format!("{error:#}"));
            }
        }
        for idle in Idle::ALL {
            if bench.runtimes[index].is_oci()
                && let Err(error) = check_idle(bench, workloads, index, idle)
            {
                let name = bench.runtimes[index].name.clone();
                if name == "amphi" && idle != Idle::Cli {
                    results.amphi_failures.push(format!("{}: {error:#}", idle.label()));
                }
                workloads.unsupported.insert((name, idle.name().to_owned()), format!("{error:#}"));
            }
        }
    }
    crate::process::reap_orphans();
    Ok(())
}

fn check_one(bench: &mut Bench, workloads: &Workloads, index: usize, workload: Workload) -> anyhow::Result<()> {
    let Some(invocation) = workloads.invocation_unchecked(&bench.runtimes[index], workload) else {
        return Ok(());
    };
    let out = bench.work.join("check.out");
    let id = bench.new_id(&bench.runtimes[index].name.clone());
    let file = std::fs::File::create(&out).with_context(|| format!("create {}", out.display()))?;
    bench.in_view(index, |runtime| lifecycle::run_once(runtime, &invocation, &id, &bench.err, Stdio::from(file)))??;
    let printed = std::fs::read_to_string(&out).with_context(|| format!("read {}", out.display()))?;
    let expected = workload.expected_output();
    if !printed.ends_with(expected) || (expected.is_empty() && !printed.is_empty()) {
        bail!("printed {printed:?}, expected {expected:?}");
    }
    if bench.runtimes[index].is_oci() {
        let id = bench.new_id(&bench.runtimes[index].name.clone());
        let pid_file = bench.work.join("check.pid");
        bench.in_view(index, |runtime| lifecycle::split_once(runtime, &invocation, &id, &bench.err, &pid_file))??;
    }
    Ok(())
}

fn check_idle(bench: &mut Bench, workloads: &Workloads, index: usize, idle: Idle) -> anyhow::Result<()> {
    let Some((bundle, cache)) = workloads.idle_bundle(&bench.runtimes[index], idle) else { return Ok(()) };
    let id = bench.new_id(&bench.runtimes[index].name.clone());
    let out = bench.work.join(format!("{id}.out"));
    let container = bench.in_view(index, |runtime| {
        crate::memory::start_idle(runtime, &bundle, &cache, &id, &bench.err, &out, &bench.work, idle)
    })??;
    bench.in_view(index, |runtime| crate::memory::stop_idle(runtime, &container, &bench.err))??;
    Ok(())
}
