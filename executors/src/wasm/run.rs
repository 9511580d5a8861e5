//! Linking (at `prepare`) and running (at `exec`) a compiled program, and the
//! exit status it leaves.
//!
//! | the guest | exit status |
//! |---|---|
//! | returns from `_start` / `wasi:cli/run` returns `ok` | 0 |
//! | `wasi:cli/run` returns `err` | 1 |
//! | `proc_exit(n)`, `wasi:cli/exit` (`exit-with-code(n)`, or `exit(err)` → 1) | n, any value (the kernel keeps the low 8 bits, as for `exit(3)`); wasmtime-wasi alone would turn 126 and above into a trap |
//! | a preview-1 program componentized with wasmtime's adapter calls `proc_exit(n)`, n ≠ 0 | 1: the adapter maps every failure to `exit(err)` |
//! | traps (`unreachable`, out-of-bounds access, stack overflow, …) | [`TRAP_STATUS`] (134), the trap and its wasm backtrace on stderr |
//! | SIGTERM / SIGINT / SIGHUP | 128 + signal (see `signals`) |

use std::io::Write;

use wasmtime::component::ResourceTable;
use wasmtime::{InstancePre, Store, Trap, TypedFunc, WasmBacktrace};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::{Command, CommandPre};
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::WasmError;
use super::engine::Compiled;
use super::limits::InstanceLimits;
use super::service;

/// The status of a process whose guest trapped: 128 + SIGABRT, what a native
/// program that aborts leaves (and what `wasmtime run` reports), and outside the
/// range programs use for their own codes.
pub const TRAP_STATUS: i32 = 134;

/// The store data of a core module: the preview-1 context.
pub struct ModuleState {
    wasi: WasiP1Ctx,
    limits: InstanceLimits,
}

/// The store data of a component, command or service (one per request): the
/// WASI 0.2 and `wasi:http` contexts and their resources.
pub struct ComponentState {
    ctx: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    limits: InstanceLimits,
}

impl std::fmt::Debug for ModuleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleState").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ComponentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentState").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl ComponentState {
    /// A store of `engine` for a component with WASI context `ctx`, held to
    /// `limits`.
    pub fn store(engine: &wasmtime::Engine, ctx: WasiCtx, limits: InstanceLimits) -> Store<Self> {
        let state = Self { ctx, http: WasiHttpCtx::new(), table: ResourceTable::new(), limits };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limits);
        store
    }
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.ctx, table: &mut self.table }
    }
}

impl WasiHttpView for ComponentState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: Default::default() }
    }
}

/// A program linked against WASI, every import resolved: what `exec` instantiates.
pub enum Linked {
    Module(InstancePre<ModuleState>),
    Component(CommandPre<ComponentState>),
    /// A `wasi:http/incoming-handler` component ([`super::service`]).
    Service(ProxyPre<ComponentState>),
}

impl std::fmt::Debug for Linked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Module(_) => "Linked::Module",
            Self::Component(_) => "Linked::Component",
            Self::Service(_) => "Linked::Service",
        })
    }
}

/// Links `compiled` against WASI: a module must import only WASI preview 1 and
/// export `_start: () -> ()`; a component may import any WASI 0.2 interface amphi
/// provides (WASI 0.2 and `wasi:http`) and must export `wasi:cli/run`, or
/// `wasi:http/incoming-handler` without `wasi:cli/run` for a service. The error
/// says what is missing.
pub fn link(compiled: &Compiled) -> Result<Linked, String> {
    let reason = |e: wasmtime::Error| format!("{e:#}");
    match compiled {
        Compiled::Module(module) => {
            match module.get_export("_start") {
                Some(wasmtime::ExternType::Func(ty)) if ty.params().len() == 0 && ty.results().len() == 0 => {}
                Some(_) => {
                    return Err("its `_start` export is not a function of no arguments and no results".to_owned());
                }
                None => return Err("it exports no `_start` function (not a WASI command)".to_owned()),
            }
            let mut linker = wasmtime::Linker::new(module.engine());
            wasmtime_wasi::p1::add_to_linker_async(&mut linker, |state: &mut ModuleState| &mut state.wasi)
                .map_err(reason)?;
            // wasmtime-wasi refuses statuses of 126 and above (a trap); a native
            // `exit(255)` leaves 255, and so does amphi's guest.
            linker.allow_shadowing(true);
            linker
                .func_wrap("wasi_snapshot_preview1", "proc_exit", |status: i32| -> wasmtime::Result<()> {
                    Err(I32Exit(status).into())
                })
                .map_err(reason)?;
            linker.instantiate_pre(module).map(Linked::Module).map_err(reason)
        }
        Compiled::Component(component) => {
            let engine = component.engine();
            let ty = component.component_type();
            let exports = ty.exports(engine).map(|(name, _)| name).collect::<Vec<_>>();
            let mut linker = wasmtime::component::Linker::new(engine);
            wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(reason)?;
            wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(reason)?;
            let pre = linker.instantiate_pre(component).map_err(reason)?;
            if service::is_service(&exports) {
                return ProxyPre::new(pre)
                    .map(Linked::Service)
                    .map_err(|e| format!("not a wasi:http/incoming-handler service: {e:#}"));
            }
            CommandPre::new(pre)
                .map(Linked::Component)
                .map_err(|e| format!("neither a wasi:cli/run command nor a wasi:http/incoming-handler service: {e:#}"))
        }
    }
}

/// A program instantiated and ready to run: made before the start barrier, so
/// that `start` costs only the call into the guest.
pub struct Armed {
    /// A current-thread runtime: wasmtime-wasi's I/O (sockets, timers) is driven
    /// by this thread's `block_on`, and no worker thread is started.
    runtime: tokio::runtime::Runtime,
    guest: Guest,
}

enum Guest {
    Module {
        store: Store<ModuleState>,
        start: TypedFunc<(), ()>,
    },
    Component {
        store: Store<ComponentState>,
        command: Command,
    },
    /// Instantiation already ended the guest (a trap in a start function): its
    /// exit status.
    Ended(i32),
}

impl std::fmt::Debug for Armed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.guest {
            Guest::Module { .. } => "Armed::Module",
            Guest::Component { .. } => "Armed::Component",
            Guest::Ended(_) => "Armed::Ended",
        })
    }
}

/// Instantiates `linked` with `wasi` on this thread; only a failure to
/// instantiate for a reason other than a trap is an error.
pub fn arm(linked: &Linked, wasi: WasiCtxBuilder, ceiling: Option<u64>, path: &str) -> Result<Armed, WasmError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|source| WasmError::AsyncRuntime { source })?;
    let guest = runtime.block_on(async {
        match linked {
            Linked::Module(pre) => instantiate_module(pre, wasi, ceiling, path).await,
            Linked::Component(pre) => instantiate_component(pre, wasi, ceiling, path).await,
            Linked::Service(_) => Err(WasmError::Instantiate {
                path: path.to_owned(),
                reason: "a service is served, not run as a command".to_owned(),
            }),
        }
    })?;
    Ok(Armed { runtime, guest })
}

impl Armed {
    /// Runs the guest to its end on this thread and returns the exit status.
    /// `entered` is called right before the guest's entry point (`_start`,
    /// `wasi:cli/run`), after everything else: the runtime-spec's "the user's
    /// program was executed" ([`amphi_runtime::executor::WorkloadEntry`]). A
    /// guest whose instantiation already ended it (a trap in its start
    /// function) ran its own code at `arm`: it counts as entered too.
    pub fn run(self, entered: impl FnOnce()) -> i32 {
        let Armed { runtime, guest } = self;
        runtime.block_on(async {
            match guest {
                Guest::Module { mut store, start } => {
                    entered();
                    exit_status(start.call_async(&mut store, ()).await)
                }
                Guest::Component { mut store, command } => {
                    entered();
                    match command.wasi_cli_run().call_run(&mut store).await {
                        Ok(Ok(())) => 0,
                        Ok(Err(())) => 1,
                        Err(e) => exit_status(Err(e)),
                    }
                }
                Guest::Ended(code) => {
                    entered();
                    code
                }
            }
        })
    }
}

/// Instantiates and runs `linked` with `wasi` on this thread and returns the exit
/// status; only a failure to instantiate for a reason other than a trap is an
/// error. `entered` as for [`Armed::run`].
pub fn run(
    linked: &Linked,
    wasi: WasiCtxBuilder,
    ceiling: Option<u64>,
    path: &str,
    entered: impl FnOnce(),
) -> Result<i32, WasmError> {
    Ok(arm(linked, wasi, ceiling, path)?.run(entered))
}

async fn instantiate_module(
    pre: &InstancePre<ModuleState>,
    mut wasi: WasiCtxBuilder,
    ceiling: Option<u64>,
    path: &str,
) -> Result<Guest, WasmError> {
    let state = ModuleState { wasi: wasi.build_p1(), limits: InstanceLimits::alone(ceiling) };
    let mut store = Store::new(pre.module().engine(), state);
    store.limiter(|state| &mut state.limits);
    let instance = match pre.instantiate_async(&mut store).await {
        Ok(instance) => instance,
        Err(e) => return instantiate_failure(e, path).map(Guest::Ended),
    };
    let start = instance
        .get_typed_func::<(), ()>(&mut store, "_start")
        .map_err(|e| WasmError::Instantiate { path: path.to_owned(), reason: format!("{e:#}") })?;
    Ok(Guest::Module { store, start })
}

async fn instantiate_component(
    pre: &CommandPre<ComponentState>,
    mut wasi: WasiCtxBuilder,
    ceiling: Option<u64>,
    path: &str,
) -> Result<Guest, WasmError> {
    let mut store = ComponentState::store(pre.engine(), wasi.build(), InstanceLimits::alone(ceiling));
    match pre.instantiate_async(&mut store).await {
        Ok(command) => Ok(Guest::Component { store, command }),
        Err(e) => instantiate_failure(e, path).map(Guest::Ended),
    }
}

/// A trap while instantiating (a start function, an out-of-bounds data segment)
/// is the guest's failure; anything else (a limit, the address space) is ours.
fn instantiate_failure(e: wasmtime::Error, path: &str) -> Result<i32, WasmError> {
    if e.downcast_ref::<Trap>().is_some() || e.downcast_ref::<I32Exit>().is_some() {
        return Ok(exit_status(Err(e)));
    }
    Err(WasmError::Instantiate { path: path.to_owned(), reason: format!("{e:#}") })
}

/// The process exit status for the end of a guest call.
pub fn exit_status(result: wasmtime::Result<()>) -> i32 {
    let Err(error) = result else { return 0 };
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return exit.0;
    }
    report_trap(&error);
    TRAP_STATUS
}

/// Writes the trap and its wasm backtrace to the process's stderr (fd 2), as the
/// guest's own last words: this is the workload's output, not a runtime log.
pub(crate) fn report_trap(error: &wasmtime::Error) {
    let mut text = String::new();
    match error.downcast_ref::<Trap>() {
        // wasmtime words it "wasm trap: …" itself.
        Some(trap) => text.push_str(&format!("{trap}\n")),
        // A host function failed: its own message (the backtrace context that
        // wraps it is printed below).
        None => text.push_str(&format!("wasm guest failed: {}\n", error.root_cause())),
    }
    if let Some(backtrace) = error.downcast_ref::<WasmBacktrace>() {
        // "error while executing at wasm backtrace:" and the frames.
        text.push_str(&backtrace.to_string());
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    // Nowhere else to report a failing stderr: the status still says "trap".
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}
