//! Wasm services: a component that exports `wasi:http/incoming-handler`
//! (0.2.x) and not `wasi:cli/run` is served over HTTP/1.1, a fresh instance per
//! request, as `wasmtime serve` and runwasi's wasmtime shim serve the
//! `wasi:http/proxy` world. A component that exports both runs as a command.
//!
//! ## The life of a service
//!
//! 1. **`prepare`** (during `create`): the component is compiled with epoch
//!    interruption (the request timeout needs it; commands are compiled
//!    without), linked against WASI 0.2 and `wasi:http`, and checked to be a
//!    proxy (`ProxyPre`); the service's variables are read out of
//!    `process.env` ([`config`]). A bad component or value fails `create`.
//! 2. **`arm`** (during `create`, after every isolation step): the listening
//!    socket is bound in the container's network namespace ([`listen`]), so
//!    the service accepts connections before `start` returns; an address in
//!    use or a port the container may not bind fails `create`.
//! 3. **`exec`** (after `start`): the server runs ([`serve`]) until SIGTERM or
//!    SIGINT, and each request is handled as [`handler`] says. Connections
//!    that arrived between `arm` and `start` wait in the backlog.
//!
//! ## Per request
//!
//! Each request gets a new `Store` and a new instance from the pre-linked
//! component: no guest state outlives its request. The guest has `process.args`,
//! `process.env` less the consumed variables, stdout and stderr (the
//! container's), the clocks, random, sockets and outgoing HTTP
//! (`wasi:http/outgoing-handler`, HTTP and HTTPS) in the container's network
//! namespace; no stdin and no preopened directory (the proxy world has no
//! filesystem). Memory: see [`super::limits`].

pub mod config;
pub mod handler;
pub mod listen;
pub mod serve;

use std::net::TcpListener;

use amphi_runtime::executor::Handover;
use oci_spec::runtime::Process;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use super::WasmError;
use super::run::ComponentState;
use config::ServiceConfig;
use handler::Handler;

/// The export that makes a component a service.
pub const HANDLER_EXPORT: &str = "wasi:http/incoming-handler@0.2";
/// The export that makes a component a command.
pub const RUN_EXPORT: &str = "wasi:cli/run@0.2";

/// Whether a component with these top-level export names is a service.
pub fn is_service<S: AsRef<str>>(exports: &[S]) -> bool {
    let has = |prefix: &str| exports.iter().any(|name| name.as_ref().starts_with(prefix));
    has(HANDLER_EXPORT) && !has(RUN_EXPORT)
}

/// A linked service, its settings, and once armed its listening socket.
pub struct Service {
    pre: ProxyPre<ComponentState>,
    config: ServiceConfig,
    args: Vec<String>,
    env: Vec<(String, String)>,
    ceiling: Option<u64>,
    listener: Option<TcpListener>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("config", &self.config)
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// The service `pre` for `process`, with `config` read out of
    /// `process.env` and `env` what is left of it, the guest's.
    pub fn new(
        pre: ProxyPre<ComponentState>,
        process: &Process,
        env: Vec<(String, String)>,
        config: ServiceConfig,
        ceiling: Option<u64>,
    ) -> Self {
        let args = process.args().clone().unwrap_or_default();
        Self { pre, config, args, env, ceiling, listener: None }
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// Binds and listens (module docs, step 2).
    pub fn arm(&mut self) -> Result<(), WasmError> {
        if self.listener.is_none() {
            self.listener = Some(listen::bind_listener(self.config.addr, self.config.backlog)?);
        }
        Ok(())
    }

    /// Serves until the shutdown; the process's exit status.
    pub fn run(mut self, handover: &Handover, entered: impl FnOnce()) -> Result<i32, WasmError> {
        self.arm()?;
        let listener = self.listener.take().expect("armed above");
        let engine = self.pre.engine().clone();
        let grace = self.config.grace;
        let handler = Handler::new(self.pre, self.args, self.env, self.ceiling, &self.config);
        serve::serve(handler, engine, listener, grace, handover, entered)
    }
}
