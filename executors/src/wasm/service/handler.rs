//! One request: a fresh instance from the pre-linked component, its handler
//! called with the request, its answer (or the runtime's, when it has none)
//! sent back.
//!
//! | what happens | the client gets |
//! |---|---|
//! | the handler sets a response | that response, its body streamed as the guest writes it |
//! | the handler traps (or a host call it made fails) | 500; the trap and its wasm backtrace on the container's stderr |
//! | the handler returns without setting a response, or sets an error | 500 |
//! | the instance cannot be made (the memory budget is spent) | 503 |
//! | the request passes `AMPHI_HTTP_TIMEOUT` before a response is set | 504; the instance is dropped at once |
//! | … after the response began | the connection is cut (the status is gone); the instance is dropped |
//! | the body is larger than `AMPHI_HTTP_MAX_BODY` | 413, before any instance is made |
//! | `AMPHI_HTTP_MAX_CONCURRENCY` requests are already in flight | 503 with `retry-after: 1`, at once |
//! | the request is not HTTP/1.1 a server can read | 400 (from the HTTP layer), and the connection closed |

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use tokio::sync::{Semaphore, oneshot};
use tokio::time::Instant;
use wasmtime::Store;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::config::ServiceConfig;
use crate::wasm::limits::{Budget, InstanceLimits};
use crate::wasm::run::ComponentState;

/// The epoch tick: a guest that computes without calling the host yields to
/// the scheduler this often, so that its deadline can end it.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// What every request is served with.
pub struct Handler {
    pre: ProxyPre<ComponentState>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    budget: Option<Arc<Budget>>,
    timeout: Duration,
    max_body: Option<u64>,
    in_flight: Arc<Semaphore>,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler").field("budget", &self.budget).field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

/// How a request's instance ended without a response.
enum Failure {
    Instantiate(wasmtime::Error),
    Guest(wasmtime::Error),
    Timeout,
}

impl Handler {
    pub fn new(
        pre: ProxyPre<ComponentState>,
        args: Vec<String>,
        env: Vec<(String, String)>,
        ceiling: Option<u64>,
        config: &ServiceConfig,
    ) -> Self {
        Self {
            pre,
            args,
            env,
            budget: ceiling.map(Budget::new),
            timeout: config.timeout,
            max_body: config.max_body,
            in_flight: Arc::new(Semaphore::new(config.max_concurrency)),
        }
    }

    /// Serves one request (module docs); never fails, every outcome is a response.
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<HyperOutgoingBody>, Infallible> {
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            let mut busy = answer(StatusCode::SERVICE_UNAVAILABLE, "too many requests in flight\n");
            busy.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
            return Ok(busy);
        };
        let deadline = Instant::now() + self.timeout;
        let request = match self.bounded_body(request).await {
            Ok(request) => request,
            Err(refusal) => return Ok(refusal),
        };
        let mut store = self.store();
        let (sender, receiver) = oneshot::channel();
        let incoming = match store.data_mut().http().new_incoming_request(Scheme::Http, request) {
            Ok(incoming) => incoming,
            Err(e) => return Ok(answer(StatusCode::BAD_REQUEST, &format!("bad request: {e}\n"))),
        };
        let outparam = match store.data_mut().http().new_response_outparam(sender) {
            Ok(outparam) => outparam,
            Err(e) => return Ok(answer(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n"))),
        };
        let pre = self.pre.clone();
        // The guest runs in its own task, which may go on writing the body after
        // the response's head was sent; the permit is held until it ends.
        let task = tokio::spawn(async move {
            let _permit = permit;
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await.map_err(Failure::Instantiate)?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, incoming, outparam)
                    .await
                    .map_err(Failure::Guest)
            };
            tokio::time::timeout_at(deadline, run).await.map_err(|_| Failure::Timeout)?
        });
        let response = match tokio::time::timeout_at(deadline, receiver).await {
            Ok(Ok(Ok(response))) => response,
            Ok(Ok(Err(code))) => answer(StatusCode::INTERNAL_SERVER_ERROR, &format!("the service failed: {code:?}\n")),
            // The guest's task ended without setting a response.
            Ok(Err(_)) => match task.await {
                Ok(Ok(())) => answer(StatusCode::INTERNAL_SERVER_ERROR, "the service set no response\n"),
                Ok(Err(Failure::Guest(error))) => {
                    crate::wasm::run::report_trap(&error);
                    answer(StatusCode::INTERNAL_SERVER_ERROR, "the service trapped\n")
                }
                Ok(Err(Failure::Instantiate(error))) => {
                    tracing::warn!(error = %format!("{error:#}"), "a request's instance could not be made");
                    answer(StatusCode::SERVICE_UNAVAILABLE, "the service cannot take this request now\n")
                }
                Ok(Err(Failure::Timeout)) => timed_out(self.timeout),
                Err(join) => answer(StatusCode::INTERNAL_SERVER_ERROR, &format!("the service failed: {join}\n")),
            },
            Err(_) => {
                task.abort();
                timed_out(self.timeout)
            }
        };
        Ok(response)
    }

    /// A fresh store: its own WASI context, HTTP context, resource table and
    /// share of the memory budget.
    fn store(&self) -> Store<ComponentState> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.args(&self.args).envs(&self.env).inherit_stdout().inherit_stderr();
        wasi.inherit_network().allow_tcp(true).allow_udp(true).allow_ip_name_lookup(true);
        let limits = InstanceLimits::new(self.budget.clone());
        let mut store = ComponentState::store(self.pre.engine(), wasi.build(), limits);
        store.epoch_deadline_async_yield_and_update(1);
        store
    }

    /// The request with its body bounded by `AMPHI_HTTP_MAX_BODY`, or the 413
    /// that refuses it. A declared length is checked at once and the body
    /// streamed to the guest (the HTTP layer holds it to that length); a body of
    /// no declared length is read up to the limit before the guest is called.
    async fn bounded_body(
        &self,
        request: Request<Incoming>,
    ) -> Result<Request<GuestBody>, Response<HyperOutgoingBody>> {
        let too_large = || answer(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        let (parts, body) = request.into_parts();
        match (self.max_body, declared) {
            (Some(max), Some(length)) if length > max => Err(too_large()),
            (Some(max), None) if !body.is_end_stream() => {
                let limit = usize::try_from(max).unwrap_or(usize::MAX);
                match Limited::new(body, limit).collect().await {
                    Ok(collected) => {
                        let body = Full::new(collected.to_bytes()).map_err(|never: Infallible| match never {});
                        Ok(Request::from_parts(parts, body.boxed_unsync()))
                    }
                    Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(too_large()),
                    Err(error) => Err(answer(StatusCode::BAD_REQUEST, &format!("reading the request body: {error}\n"))),
                }
            }
            _ => Ok(Request::from_parts(parts, body.map_err(wasmtime_wasi_http::Error::from).boxed_unsync())),
        }
    }
}

/// A request body as the guest reads it.
type GuestBody = UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;

fn timed_out(timeout: Duration) -> Response<HyperOutgoingBody> {
    answer(StatusCode::GATEWAY_TIMEOUT, &format!("the service took longer than {timeout:?}\n"))
}

/// A plain-text answer of the runtime's own.
fn answer(status: StatusCode, text: &str) -> Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from(text.to_owned())).map_err(|never: Infallible| match never {}).boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
