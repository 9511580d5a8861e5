//! The server: accepting connections, HTTP/1.1 on each, and the shutdown.
//!
//! ## Threads
//!
//! The server runs on a multi-threaded tokio runtime with a worker per core
//! the process may use (`available_parallelism`: the affinity mask and a
//! cgroup v2 CPU quota), so requests run concurrently on every core. The
//! runtime is built here, in `exec`, after the start barrier: every isolation
//! step (namespaces, identity, capabilities, seccomp, the guest's mount view)
//! was applied to the init's only thread before, so the workers inherit all of
//! it. Nothing before `exec` starts a thread.
//!
//! ## Signals
//!
//! The first SIGTERM or SIGINT stops accepting (the listening socket is
//! closed), tells every connection to finish the request it is on and close,
//! and waits up to `AMPHI_HTTP_GRACE` for them; the process then exits 0. A
//! second SIGTERM or SIGINT during that wait ends the process at once with
//! 143 or 130 (the runtime's async-signal-safe exit handler replaces the
//! server's), and SIGHUP always does (129), as for a command. SIGKILL ends it as
//! any process.

use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::time::Duration;

use amphi_runtime::executor::Handover;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use nix::sys::signal::Signal;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;
use wasmtime::Engine;
use wasmtime_wasi_http::io::TokioIo;

use super::handler::{EPOCH_TICK, Handler};
use crate::wasm::WasmError;

/// Serves on `listener` until the shutdown (module docs); returns the exit
/// status. `entered` is told once the server is ready to take requests.
pub fn serve(
    handler: Handler,
    engine: Engine,
    listener: StdListener,
    grace: Duration,
    handover: &Handover,
    entered: impl FnOnce(),
) -> Result<i32, WasmError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers())
        .thread_name("amphi-http")
        .enable_io()
        .enable_time()
        .build()
        .map_err(|source| WasmError::AsyncRuntime { source })?;
    let status = runtime.block_on(run(Arc::new(handler), engine, listener, grace, handover, entered));
    // Idle keep-alive connections and instances past the grace period are not
    // waited for: the process is ending.
    runtime.shutdown_background();
    status
}

fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

async fn run(
    handler: Arc<Handler>,
    engine: Engine,
    listener: StdListener,
    grace: Duration,
    handover: &Handover,
    entered: impl FnOnce(),
) -> Result<i32, WasmError> {
    let io = |source: std::io::Error| WasmError::Serve { reason: source.to_string() };
    listener.set_nonblocking(true).map_err(io)?;
    let listener = TcpListener::from_std(listener).map_err(io)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(io)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(io)?;
    let ticker = tokio::spawn(async move {
        let mut tick = tokio::time::interval(EPOCH_TICK);
        loop {
            tick.tick().await;
            engine.increment_epoch();
        }
    });
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    entered();
    let signal = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, handler.clone(), stopping.clone()));
                }
                // Out of descriptors or memory, or a connection reset before it
                // was taken: the server goes on, after a breath.
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = terminate.recv() => break Signal::SIGTERM,
            _ = interrupt.recv() => break Signal::SIGINT,
        }
    };
    // From now on a second SIGTERM or SIGINT ends the process at once: set
    // before the listener closes, so a client that sees the refusal and
    // signals again finds it in place.
    if let Err(error) = handover.exit_on(&[Signal::SIGTERM, Signal::SIGINT]) {
        tracing::warn!(%error, "cannot make a second signal end the service at once");
    }
    drop(listener);
    tracing::debug!(?signal, in_flight = connections.len(), "service stopping");
    let _ = stop.send(true);
    if tokio::time::timeout(grace, drain(&mut connections)).await.is_err() {
        tracing::warn!(?grace, connections = connections.len(), "the grace period ended with requests in flight");
    }
    ticker.abort();
    Ok(0)
}

async fn drain(connections: &mut JoinSet<()>) {
    while connections.join_next().await.is_some() {}
}

/// One connection, keep-alive, until the client closes it or the shutdown
/// lets its current request finish.
async fn connection(stream: TcpStream, handler: Arc<Handler>, mut stopping: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| handler.clone().handle(request));
    let mut builder = http1::Builder::new();
    builder.keep_alive(true);
    let served = builder.serve_connection(TokioIo::new(stream), service);
    let mut served = std::pin::pin!(served);
    tokio::select! {
        result = served.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
            return;
        }
        _ = stopping.wait_for(|&stop| stop) => served.as_mut().graceful_shutdown(),
    }
    if let Err(error) = served.await {
        tracing::debug!(%error, "connection ended with an error");
    }
}
