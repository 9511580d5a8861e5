//! The wasm executor: the container's process runs a WebAssembly module or
//! component in-process with wasmtime, after the same isolation as a native one.
//!
//! ## The life of a wasm workload
//!
//! 1. **`prepare`** (during `create`, before the start barrier, still privileged,
//!    the container's mounts in place): the entrypoint is opened inside the
//!    rootfs (no symlink leads out of it) and read; the engine is configured from
//!    the spec ([`engine::EngineSettings`]: memory ceiling, `RLIMIT_AS`); the
//!    program is loaded from the compile [cache](crate::cache) or compiled
//!    (single-threaded) and stored there; it is linked against WASI
//!    (`InstancePre`), so a missing import, a module without `_start` or a
//!    component that is neither a `wasi:cli/run` command nor a
//!    `wasi:http/incoming-handler` service ([`service`]) fails `create`; the preopens
//!    ([`wasi`]) are parsed and checked to exist. A `tracing` debug event with
//!    `cache = "hit"` or `cache = "miss"` tells which way it went.
//! 2. **`arm`** (still during `create`, in the container process after
//!    pivot_root, identity, capabilities and seccomp, before the start
//!    barrier): the WASI context is built from the spec ([`wasi`]), its preopens
//!    opened in the container's own root, and the program is instantiated
//!    ([`run::arm`]). A failure here still fails `create`.
//! 3. **`exec`** (after `start` lifted the barrier): from the signal state the
//!    runtime hands over (`ExecContext::handover`), the handlers for SIGTERM,
//!    SIGINT and SIGHUP are installed ([`signals`]); wasmtime's trap handlers,
//!    installed in `prepare`, were never replaced. The instantiated program is
//!    called on this thread; its exit status becomes the process's ([`run`]).
//!    `start` costs only that call: never a compilation, never an
//!    instantiation.
//!    Right before the guest's entry point is called the executor tells the
//!    runtime that the workload was entered (`ExecContext::entry`), which lets
//!    `start` run the poststart hooks. A wasm process of `exec` goes through
//!    the same three steps, with no barrier between `arm` and `exec`.
//!
//! ## What it accepts
//!
//! Core modules with WASI preview 1 (`wasi_snapshot_preview1`, entry `_start`),
//! components exporting `wasi:cli/run` (WASI 0.2, `wasi:http` imports allowed),
//! and either as WebAssembly text (a file whose first token is `(`): commands,
//! run to an exit status. Components exporting `wasi:http/incoming-handler` and
//! not `wasi:cli/run` are services, served per request: [`service`] says how
//! their life differs from the steps above.
//!
//! ## Threads
//!
//! None are started by compilation (`parallel_compilation(false)`) or by the
//! WASI host: it runs on a current-thread tokio runtime and performs file
//! operations on the calling thread. Name lookup (`wasi:sockets/ip-name-lookup`)
//! is the exception: wasmtime-wasi resolves names on a tokio blocking thread,
//! started on first use, after every isolation step, so it inherits the seccomp
//! filter, the capabilities and the namespaces of the init.
//!
//! ## Limits
//!
//! `linux.resources.memory.limit` becomes a ceiling on the guest's linear
//! memories together (less [`engine::HOST_RESERVE`] for the engine itself):
//! `memory.grow` past it returns -1 in the guest instead of the cgroup killing
//! the container. Under an `RLIMIT_AS` in `process.rlimits`, memories are
//! allocated to size instead of reserving 4 GiB of address space each, and the
//! ceiling is at most a quarter of the address space. Tables,
//! memories and instances per store have fixed caps ([`engine`]).

pub mod engine;
pub mod limits;
pub mod run;
pub mod service;
pub mod signals;
pub mod wasi;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use amphi_runtime::executor::{
    ArmContext, ExecContext, Executor, ExecutorError, Handover, PrepareContext, WorkloadEntry,
};
use amphi_runtime::inroot::open_in_root;
use nix::fcntl::OFlag;
use oci_spec::runtime::Process;

use crate::cache::{Cache, CacheError};
use engine::{CacheOutcome, EngineSettings};
use run::Linked;
use service::Service;
use service::config::ServiceConfig;
use wasi::Preopen;

pub use run::TRAP_STATUS;
pub use wasi::PREOPENS_ANNOTATION;

/// A failure of the wasm executor; the message names the file, field or entry.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    #[error("config.json: process.args is empty: no wasm entrypoint")]
    NoEntrypoint,
    #[error("wasm entrypoint {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Entrypoint(#[from] crate::entrypoint::EntrypointError),
    #[error("{path}: not a wasm module, component or text (.wat) file")]
    NotWasm { path: String },
    #[error("{path}: invalid wasm: {reason}")]
    Invalid { path: String, reason: String },
    #[error("{path}: cannot be instantiated: {reason}")]
    Link { path: String, reason: String },
    #[error("{path}: instantiate: {reason}")]
    Instantiate { path: String, reason: String },
    #[error("wasm engine: {reason}")]
    Engine { reason: String },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("{reason}")]
    CacheDir { reason: String },
    #[error("annotation {}: entry {entry:?}: {reason}", wasi::PREOPENS_ANNOTATION)]
    Preopen { entry: String, reason: String },
    #[error("wasm preopen {}: {reason}", path.display())]
    OpenPreopen { path: PathBuf, reason: String },
    #[error("wasm: start the async runtime: {source}")]
    AsyncRuntime { source: io::Error },
    #[error("wasm: install the signal handlers: {source}")]
    Signals { source: nix::Error },
    #[error("wasm executor: exec called before a successful prepare")]
    NotPrepared,
    #[error(transparent)]
    ServiceConfig(#[from] service::config::ConfigError),
    #[error(transparent)]
    Listen(#[from] service::listen::ListenError),
    #[error("wasm service: {reason}")]
    Serve { reason: String },
}

/// The in-process wasm executor.
#[derive(Debug, Default)]
pub struct WasmExecutor {
    prepared: Option<Prepared>,
}

/// What `prepare` leaves for `exec`.
#[derive(Debug)]
struct Prepared {
    program: Program,
    path: String,
    cache: CacheOutcome,
}

/// A command or a service, linked.
#[derive(Debug)]
enum Program {
    Command {
        linked: Linked,
        preopens: Vec<Preopen>,
        ceiling: Option<u64>,
        /// Instantiated before the start barrier ([`WasmExecutor::arm`]).
        armed: Option<run::Armed>,
    },
    Service(Service),
}

impl WasmExecutor {
    pub fn new() -> Self {
        Self { prepared: None }
    }

    /// Whether the last `prepare` loaded the program from the cache (`None` before
    /// a successful `prepare`).
    pub fn cache_outcome(&self) -> Option<CacheOutcome> {
        self.prepared.as_ref().map(|prepared| prepared.cache)
    }

    /// `prepare` for an entrypoint already resolved and opened inside the rootfs:
    /// `container_path` names it in messages.
    pub fn prepare_from_file(
        &mut self,
        mut file: File,
        container_path: &Path,
        ctx: &PrepareContext<'_>,
    ) -> Result<(), WasmError> {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|source| WasmError::Open { path: container_path.to_owned(), source })?;
        self.prepare_from_bytes(&bytes, container_path, ctx)
    }

    /// `prepare` for the program's bytes (binary or text).
    pub fn prepare_from_bytes(
        &mut self,
        bytes: &[u8],
        container_path: &Path,
        ctx: &PrepareContext<'_>,
    ) -> Result<(), WasmError> {
        let started = Instant::now();
        let path = container_path.display().to_string();
        let mut settings = EngineSettings::from_spec(ctx.spec, ctx.process);
        // A service's variables are read (and a bad one refused) before
        // anything is compiled; its engine is sized from them.
        let mut guest_env = wasi::env_pairs(ctx.process);
        let service_config =
            if engine::serves_http(bytes) { Some(ServiceConfig::take_from(&mut guest_env)?) } else { None };
        settings.serve_concurrency = service_config.as_ref().map(|config| config.max_concurrency);
        let engine = settings.engine()?;
        // The cache directory is asked for only now that the program is known
        // to be wasm, and closed before any other container path is touched.
        let cache = open_cache(ctx)?;
        let (compiled, outcome) = engine::load(&engine, Some(&settings), cache.as_ref(), &path, bytes)?;
        drop(cache);
        let linked = run::link(&compiled).map_err(|reason| WasmError::Link { path: path.clone(), reason })?;
        let ceiling = settings.memory_ceiling;
        let program = match linked {
            Linked::Service(pre) => {
                let config = match service_config {
                    Some(config) => config,
                    None => ServiceConfig::take_from(&mut guest_env)?,
                };
                Program::Service(Service::new(pre, ctx.process, guest_env, config, ceiling))
            }
            linked => {
                let preopens = wasi::preopens(ctx.spec, ctx.process)?;
                check_preopens(&preopens, ctx)?;
                Program::Command { linked, preopens, ceiling, armed: None }
            }
        };
        wasi::seed_random();
        tracing::debug!(path, cache = ?outcome, elapsed_us = started.elapsed().as_micros() as u64, "wasm workload prepared");
        self.prepared = Some(Prepared { program, path, cache: outcome });
        Ok(())
    }

    /// Whether the prepared program is a service ([`service`]).
    pub fn is_service(&self) -> bool {
        matches!(self.prepared, Some(Prepared { program: Program::Service(_), .. }))
    }

    /// For a command, builds the WASI context for `process` and instantiates
    /// the program, ready for [`WasmExecutor::run`] to call it; for a service,
    /// binds its listening socket. Runs in the container process after every
    /// isolation step and before the start barrier: the preopens are opened
    /// and the socket bound in the container's own root and network namespace,
    /// under its identity and limits.
    pub fn arm(&mut self, process: &Process) -> Result<(), WasmError> {
        let prepared = self.prepared.as_mut().ok_or(WasmError::NotPrepared)?;
        match &mut prepared.program {
            Program::Command { linked, preopens, ceiling, armed } => {
                let wasi = wasi::context(process, preopens)?;
                *armed = Some(run::arm(linked, wasi, *ceiling, &prepared.path)?);
            }
            Program::Service(service) => service.arm()?,
        }
        Ok(())
    }

    /// `exec` without the ending-signal handlers: runs a command (instantiating
    /// it first unless [`WasmExecutor::arm`] did) and returns its exit status.
    /// `entry` is told right before the guest's entry point is called.
    /// A service is served until its shutdown ([`service`]); `handover` is
    /// the signal state it takes over.
    pub fn run(self, process: &Process, entry: &WorkloadEntry, handover: &Handover) -> Result<i32, WasmError> {
        let prepared = self.prepared.ok_or(WasmError::NotPrepared)?;
        let entered = || entry.entered();
        match prepared.program {
            Program::Command { armed: Some(armed), .. } => Ok(armed.run(entered)),
            Program::Command { linked, preopens, ceiling, armed: None } => {
                let wasi = wasi::context(process, &preopens)?;
                run::run(&linked, wasi, ceiling, &prepared.path, entered)
            }
            Program::Service(service) => service.run(handover, entered),
        }
    }
}

/// The compile cache the caller hands over, if any. The caller checked the
/// directory on the host; a container process whose credentials cannot use it
/// (a user namespace maps root away) compiles without it rather than failing.
fn open_cache(ctx: &PrepareContext<'_>) -> Result<Option<Cache>, WasmError> {
    let dir = ctx.cache_dir.ask().map_err(|e| WasmError::CacheDir { reason: e.0 })?;
    let Some(dir) = dir else { return Ok(None) };
    match Cache::from_dir(dir.fd, dir.path) {
        Ok(cache) => Ok(Some(cache)),
        Err(error) => {
            tracing::debug!(%error, "wasm cache unusable from the container process: compiling");
            Ok(None)
        }
    }
}

/// Every preopen named by the annotation must be a directory in the container.
/// The cwd is exempt: the runtime creates it, as runc does.
fn check_preopens(preopens: &[Preopen], ctx: &PrepareContext<'_>) -> Result<(), WasmError> {
    for preopen in preopens.iter().filter(|p| p.path != *ctx.process.cwd()) {
        if let Err(e) = open_in_root(ctx.rootfs_fd, &preopen.path, OFlag::O_PATH | OFlag::O_DIRECTORY) {
            return Err(WasmError::Preopen {
                entry: preopen.path.display().to_string(),
                reason: format!("not a directory in the container: {e}"),
            });
        }
    }
    Ok(())
}

/// The entrypoint `process.args[0]`, as a path in the container: absolute, or
/// relative to `process.cwd`.
pub fn entrypoint_path(process: &Process) -> Result<PathBuf, WasmError> {
    let arg0 = process.args().as_ref().and_then(|args| args.first()).ok_or(WasmError::NoEntrypoint)?;
    let arg0 = Path::new(arg0);
    Ok(if arg0.is_absolute() { arg0.to_owned() } else { process.cwd().join(arg0) })
}

impl Executor for WasmExecutor {
    fn name(&self) -> &'static str {
        "wasm"
    }

    fn runs_in_process(&self) -> bool {
        true
    }

    fn prepare(&mut self, ctx: &PrepareContext<'_>) -> Result<(), ExecutorError> {
        let path = entrypoint_path(ctx.process)?;
        // Only a regular file is opened for reading: a fifo would hang `create`.
        let (file, _) = crate::entrypoint::open_regular(ctx, &path).map_err(|e| match e {
            crate::entrypoint::EntrypointError::Open { path, source } => WasmError::Open { path, source },
            other => WasmError::from(other),
        })?;
        Ok(self.prepare_from_file(File::from(file), &path, ctx)?)
    }

    fn arm(&mut self, ctx: &ArmContext<'_>) -> Result<(), ExecutorError> {
        Ok(WasmExecutor::arm(self, ctx.process)?)
    }

    fn exec(self: Box<Self>, ctx: &ExecContext<'_>) -> Result<i32, ExecutorError> {
        let ending =
            if self.is_service() { &signals::SERVICE_ENDING_SIGNALS[..] } else { &signals::ENDING_SIGNALS[..] };
        signals::take_over(&ctx.handover, ending).map_err(|source| WasmError::Signals { source })?;
        Ok(self.run(ctx.process, &ctx.entry, &ctx.handover)?)
    }
}
