//! receiver: OTLP over HTTP/1.1 and HTTP/2 on hyper: OTLP/HTTP (`POST /v1/traces` and `/v1/logs`, protobuf or
//! JSON) and OTLP/gRPC (`TraceService/Export` and `LogsService/Export`, see [`grpc`]) on every listener, told apart
//! by `application/grpc`. A signal the collector does not take (`--signals`) is answered 404 / UNIMPLEMENTED.
//!
//! Limits are checked before work: the declared and the actual (decompressed) body size against
//! `max_request_bytes` (413 / RESOURCE_EXHAUSTED), then admission into the pipeline (503 + Retry-After /
//! UNAVAILABLE + RetryInfo when full). The answer waits for the request's commit (see [`crate::pipeline`]).
//! With `--auth-token-file`, an export must carry a bearer token first (see [`auth`]): 401 / UNAUTHENTICATED.
//! `GET /` and `GET /health` answer 200 once serving. CORS preflights are answered for configured origins.
//! With `--tls-cert` and `--tls-key`, every listener speaks TLS (mTLS with `--tls-client-ca`; see [`tls`]).

mod auth;
mod body;
mod grpc;
mod response;
mod tls;

pub use body::{decompress, BodyError, Encoding};

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ORIGIN, VARY,
};
use http::{HeaderValue, Method, Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::ack::{Accepted, ExportError, Failure, Permit, Stopped};
use crate::decode::{Format, Signal};
use crate::pipeline::Submitter;
use crate::self_metrics::{SelfMetrics, Transport};
use crate::settings::{parse_duration, parse_size, InvalidSetting, Listen};
use response::{Body, ReceiveError, RequestId, GRPC, JSON, PROTOBUF, REQUEST_ID};

/// The OTLP/HTTP traces path.
pub(crate) const TRACES_PATH: &str = "/v1/traces";
/// The OTLP/HTTP logs path.
pub(crate) const LOGS_PATH: &str = "/v1/logs";

/// The signal whose OTLP/HTTP export path `path` is.
fn signal_of_path(path: &str) -> Option<Signal> {
    match path {
        TRACES_PATH => Some(Signal::Traces),
        LOGS_PATH => Some(Signal::Logs),
        _ => None,
    }
}

/// Largest accepted `--max-request-size`: one request's strings must fit Arrow's 2 GiB array offsets even
/// after JSON escaping of nested values (up to 6x).
const MAX_REQUEST_LIMIT: u64 = 256 * 1024 * 1024;

/// After the drain timeout, how long the 503 answers get to reach their clients.
const GIVE_UP_GRACE: Duration = Duration::from_secs(2);

/// How long an HTTP/2 peer may take to answer a keep-alive ping before its connection is closed.
const HTTP2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Flags of the OTLP listeners.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Receiver")]
pub(crate) struct ReceiverArgs {
    /// Address of the OTLP/HTTP listener.
    #[arg(long, env = "OTEL_DELTA_HTTP_ADDR", default_value = "127.0.0.1:4318")]
    http_addr: SocketAddr,
    /// Port of the OTLP/HTTP listener, replacing the port of --http-addr (for platforms that hand out a port, like
    /// Databricks Apps' $DATABRICKS_APP_PORT).
    #[arg(long, env = "OTEL_DELTA_HTTP_PORT")]
    http_port: Option<u16>,
    /// Address of the OTLP/gRPC listener (OTLP/HTTP is served there too); `off` to disable.
    #[arg(long, env = "OTEL_DELTA_GRPC_ADDR", default_value = "127.0.0.1:4317")]
    grpc_addr: Listen,
    /// Origins browsers may send spans from (CORS), comma-separated; `*` for any.
    #[arg(long, env = "OTEL_DELTA_CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    cors_allowed_origins: Vec<String>,
    /// Largest request body, after decompression; larger ones get 413.
    #[arg(long, env = "OTEL_DELTA_MAX_REQUEST_SIZE", default_value = "64MiB", value_parser = parse_size)]
    max_request_size: u64,
    /// Longest a client may take to send a request's headers (HTTP/1.1); also how long a keep-alive connection
    /// may stay idle waiting for its next request. Then the connection is closed.
    #[arg(long, env = "OTEL_DELTA_HEADER_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    header_timeout: Duration,
    /// Longest a client may take to send a request's body once its headers arrived; then 408 (gRPC
    /// DEADLINE_EXCEEDED) and, on HTTP/1.1, the connection is closed.
    #[arg(long, env = "OTEL_DELTA_BODY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    body_timeout: Duration,
    /// Longest a request waits for its answer, its commit included; then 503 (its rows may still be committed
    /// later: a retry can duplicate them, never lose them).
    #[arg(long, env = "OTEL_DELTA_REQUEST_TIMEOUT", default_value = "120s", value_parser = parse_duration)]
    request_timeout: Duration,
    /// HTTP/2 (gRPC) keep-alive ping interval; a peer that does not answer a ping within 20 s is disconnected.
    #[arg(long, env = "OTEL_DELTA_HTTP2_KEEPALIVE", default_value = "60s", value_parser = parse_duration)]
    http2_keepalive: Duration,
    /// Concurrent HTTP/2 streams (gRPC calls) per connection.
    #[arg(long, env = "OTEL_DELTA_HTTP2_MAX_STREAMS", default_value = "256")]
    http2_max_streams: u32,
    /// Open connections, all listeners together; a connection beyond it is closed as soon as it is accepted.
    #[arg(long, env = "OTEL_DELTA_MAX_CONNECTIONS", default_value = "4096")]
    max_connections: usize,
    /// Let an export in only with `Authorization: Bearer <token>` (gRPC: that metadata) naming a token of this
    /// file: one a line (`#` comments), read again within a second of a change. Unset: no authentication.
    #[arg(long, env = "OTEL_DELTA_AUTH_TOKEN_FILE")]
    auth_token_file: Option<std::path::PathBuf>,
    /// Serve TLS on the OTLP listeners (not on --metrics-addr) with this certificate chain (PEM, leaf first); needs
    /// --tls-key. Read again within a second of a change: new connections get the new certificate.
    #[arg(long, env = "OTEL_DELTA_TLS_CERT")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "OTEL_DELTA_TLS_KEY")]
    tls_key: Option<std::path::PathBuf>,
    /// Require clients to present a certificate signed by one of these CA certificates (PEM bundle): mTLS. Needs
    /// --tls-cert.
    #[arg(long, env = "OTEL_DELTA_TLS_CLIENT_CA")]
    tls_client_ca: Option<std::path::PathBuf>,
}

/// The listeners' resolved settings.
#[derive(Debug, Clone)]
pub(crate) struct ReceiverConfig {
    pub(crate) http_addr: SocketAddr,
    pub(crate) grpc_addr: Option<SocketAddr>,
    pub(crate) http: HttpConfig,
}

impl ReceiverArgs {
    /// Check the values; `retry_after` is what clients are told to wait after a 503, `drain_timeout` how long
    /// requests may still be answered after shutdown begins.
    pub(crate) fn resolve(
        &self,
        retry_after: Duration,
        drain_timeout: Duration,
    ) -> Result<ReceiverConfig, InvalidSetting> {
        if self.max_request_size == 0 || self.max_request_size > MAX_REQUEST_LIMIT {
            let reason = format!("must be between 1 byte and {MAX_REQUEST_LIMIT} bytes");
            return Err(InvalidSetting::new("--max-request-size", reason));
        }
        for (flag, value) in [
            ("--header-timeout", self.header_timeout),
            ("--body-timeout", self.body_timeout),
            ("--request-timeout", self.request_timeout),
            ("--http2-keepalive", self.http2_keepalive),
        ] {
            if value.is_zero() {
                return Err(InvalidSetting::new(flag, "must be above zero"));
            }
        }
        if self.http2_max_streams == 0 || self.max_connections == 0 {
            return Err(InvalidSetting::new("--http2-max-streams and --max-connections", "must be above zero"));
        }
        let auth = match &self.auth_token_file {
            Some(path) => Some(Arc::new(
                auth::Tokens::load(path).map_err(|e| InvalidSetting::new("--auth-token-file", e.to_string()))?,
            )),
            None => None,
        };
        let tls = self.tls()?.map(tls::Tls::load).transpose();
        let tls = tls.map_err(|e| InvalidSetting::new(e.flag(), e.to_string()))?;
        let mut http_addr = self.http_addr;
        if let Some(port) = self.http_port {
            http_addr.set_port(port);
        }
        Ok(ReceiverConfig {
            http_addr,
            grpc_addr: self.grpc_addr.addr(),
            http: HttpConfig {
                max_request_bytes: self.max_request_size,
                retry_after,
                drain_timeout,
                cors_allowed_origins: self.cors_allowed_origins.iter().map(|o| o.trim().to_owned()).collect(),
                header_timeout: self.header_timeout,
                body_timeout: self.body_timeout,
                request_timeout: self.request_timeout,
                http2_keepalive: self.http2_keepalive,
                http2_max_streams: self.http2_max_streams,
                max_connections: self.max_connections,
                auth,
                tls: tls.map(Arc::new),
            },
        })
    }

    /// The TLS files the flags name, if any: a certificate needs its key and the other way round, a client CA
    /// needs both.
    fn tls(&self) -> Result<Option<tls::TlsFiles>, InvalidSetting> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                Ok(Some(tls::TlsFiles { cert: cert.clone(), key: key.clone(), client_ca: self.tls_client_ca.clone() }))
            }
            (Some(_), None) => {
                Err(InvalidSetting::new("--tls-cert", "needs --tls-key (the certificate's private key)"))
            }
            (None, Some(_)) => Err(InvalidSetting::new("--tls-key", "needs --tls-cert (the certificate it signs for)")),
            (None, None) if self.tls_client_ca.is_some() => {
                Err(InvalidSetting::new("--tls-client-ca", "needs --tls-cert and --tls-key (mTLS is on top of TLS)"))
            }
            (None, None) => Ok(None),
        }
    }
}

/// How requests are received.
#[derive(Debug, Clone)]
pub(crate) struct HttpConfig {
    pub(crate) max_request_bytes: u64,
    pub(crate) retry_after: Duration,
    /// How long requests may still be answered once shutdown begins; then those still waiting get 503.
    pub(crate) drain_timeout: Duration,
    /// Origins allowed to send from browsers (`*` for any); empty: no CORS.
    pub(crate) cors_allowed_origins: Vec<String>,
    pub(crate) header_timeout: Duration,
    pub(crate) body_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) http2_keepalive: Duration,
    pub(crate) http2_max_streams: u32,
    pub(crate) max_connections: usize,
    /// Bearer tokens an export must carry; `None`: none needed.
    pub(crate) auth: Option<Arc<auth::Tokens>>,
    /// TLS on every listener; `None`: plain text.
    pub(crate) tls: Option<Arc<tls::Tls>>,
}

struct State {
    /// Taken at shutdown, which lets the pipeline drain even if a connection outlives the drain timeout.
    submitter: RwLock<Option<Submitter>>,
    /// Turns true once the drain timeout has passed: requests still waiting are answered 503.
    give_up: tokio::sync::watch::Receiver<bool>,
    config: HttpConfig,
    /// Counts every answer (see [`crate::self_metrics`]).
    metrics: SelfMetrics,
}

impl State {
    /// `Err(reason)` while exports cannot succeed: shutting down, or the pipeline says so.
    fn ready(&self) -> Result<(), String> {
        let guard = self.submitter.read().map_err(|_| Stopped::ShuttingDown.to_string())?;
        guard.as_ref().ok_or_else(|| Stopped::ShuttingDown.to_string())?.ready()
    }

    /// Run `f` with the submitter, unless the collector is shutting down.
    fn with_submitter<T>(&self, f: impl FnOnce(&Submitter) -> Result<T, ExportError>) -> Result<T, ExportError> {
        let shutting_down = || ExportError::Unavailable(Failure::new(Stopped::ShuttingDown));
        // Poisoned only if a thread panicked while taking the submitter at shutdown.
        let guard = self.submitter.read().map_err(|_| shutting_down())?;
        f(guard.as_ref().ok_or_else(shutting_down)?)
    }

    /// Refuse an export whose headers carry none of the bearer tokens (when tokens are configured).
    fn authorize(&self, headers: &http::HeaderMap) -> Result<(), ReceiveError> {
        match &self.config.auth {
            Some(tokens) if !tokens.allows(headers.get(AUTHORIZATION).map(HeaderValue::as_bytes)) => {
                Err(ReceiveError::Unauthenticated)
            }
            _ => Ok(()),
        }
    }

    /// Refuse a signal the collector does not take, before anything else is looked at.
    fn takes(&self, signal: Signal) -> Result<(), ReceiveError> {
        Ok(self.with_submitter(|s| if s.takes(signal) { Ok(()) } else { Err(ExportError::SignalOff(signal)) })?)
    }

    /// Reserve in-flight budget for a request of `signal` before its body is read (its declared length; chunks
    /// beyond it are charged as they arrive).
    fn reserve(&self, signal: Signal, declared: u64) -> Result<Permit, ReceiveError> {
        Ok(self.with_submitter(|s| s.reserve(signal, declared))?)
    }

    /// Admit a decoded body of `signal` into its pipeline and wait for its answer.
    async fn submit(
        &self,
        signal: Signal,
        body: Bytes,
        format: Format,
        permit: Permit,
    ) -> Result<Accepted, ReceiveError> {
        if body.is_empty() {
            return Ok(Accepted::default());
        }
        let answer = self.with_submitter(|s| s.submit(signal, body, format, permit))?;
        let mut give_up = self.give_up.clone();
        let unavailable = |why| Err(ExportError::Unavailable(Failure::new(why)).into());
        tokio::select! {
            answer = tokio::time::timeout(self.config.request_timeout, answer) => match answer {
                Ok(Ok(result)) => Ok(result?),
                Ok(Err(_)) => unavailable(Stopped::Dropped),
                Err(_) => unavailable(Stopped::Deadline(self.config.request_timeout)),
            },
            _ = give_up.wait_for(|g| *g) => unavailable(Stopped::ShuttingDown),
        }
    }
}

/// Serve OTLP on every listener until `shutdown` resolves; then stop accepting, let in-flight requests finish
/// for up to the drain timeout, answer those still waiting 503, and drop the submitter.
pub(crate) async fn serve(
    listeners: Vec<TcpListener>,
    submitter: Submitter,
    config: HttpConfig,
    metrics: SelfMetrics,
    shutdown: impl Future<Output = ()>,
) {
    let connections = Arc::new(Semaphore::new(config.max_connections));
    let (give_up_tx, give_up) = tokio::sync::watch::channel(false);
    // Tokens follow their file while serving.
    let _reload = config.auth.clone().map(|tokens| {
        AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(auth::RELOAD_EVERY).await;
                tokens.reload_if_changed();
            }
        }))
    });
    // So do the TLS files.
    let _reload_tls = config.tls.clone().map(|tls| {
        tls.log_start();
        AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(tls::RELOAD_EVERY).await;
                tls.reload_if_changed();
            }
        }))
    });
    let state = Arc::new(State { submitter: RwLock::new(Some(submitter)), give_up, config, metrics });
    let graceful = Arc::new(GracefulShutdown::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let accept_loops: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            let connections = connections.clone();
            tokio::spawn(accept_loop(listener, state.clone(), graceful.clone(), connections, stop_rx.clone()))
        })
        .collect();
    shutdown.await;
    let _ = stop_tx.send(true);
    for accept_loop in accept_loops {
        let _ = accept_loop.await;
    }
    let drain = state.config.drain_timeout;
    match Arc::try_unwrap(graceful) {
        Ok(graceful) => {
            let mut closed = std::pin::pin!(graceful.shutdown());
            if tokio::time::timeout(drain, &mut closed).await.is_err() {
                tracing::warn!(?drain, "requests still waiting after the drain timeout: answering them 503");
                give_up_tx.send_replace(true);
                // Their answers are on their way; connections that still do not close are left behind.
                if tokio::time::timeout(GIVE_UP_GRACE, closed).await.is_err() {
                    tracing::warn!("connections still open after the drain timeout");
                }
            }
        }
        Err(_) => tracing::warn!("accept loops still hold the connection watcher"),
    }
    if let Ok(mut submitter) = state.submitter.write() {
        submitter.take();
    };
}

/// A task that ends with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    graceful: Arc<GracefulShutdown>,
    connections: Arc<Semaphore>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let config = &state.config;
    let header_timeout = config.header_timeout;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's HTTP/1 header timer also runs while a keep-alive connection waits for its next request.
    builder.http1().timer(TokioTimer::new()).header_read_timeout(config.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(config.http2_keepalive)
        .keep_alive_timeout(HTTP2_PING_TIMEOUT)
        .max_concurrent_streams(config.http2_max_streams);
    // Shared by the connection tasks (each connection still takes its own copy once it starts).
    let builder = Arc::new(builder);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = connections.clone().try_acquire_owned() else {
                    // At the limit: close at once (the client retries elsewhere or later) instead of queueing.
                    tracing::debug!(limit = state.config.max_connections, "connection refused: at the limit");
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                // The configuration in force now; the handshake itself runs in the connection's task.
                let tls = config.tls.as_ref().map(|tls| tls.acceptor());
                let metrics = state.metrics.clone();
                let state = state.clone();
                let service = service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(route(req, &state, peer).await) }
                });
                let (builder, watcher) = (builder.clone(), graceful.watcher());
                tokio::spawn(async move {
                    let stream = match tls {
                        Some(acceptor) => match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => tls::Stream::Tls(Box::new(stream)),
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, "TLS handshake failed");
                                metrics.tls_handshake_failed(false);
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(timeout = ?header_timeout, "TLS handshake timed out");
                                metrics.tls_handshake_failed(true);
                                return;
                            }
                        },
                        None => tls::Stream::Plain(stream),
                    };
                    let connection = watcher.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned());
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    drop(slot);
                });
            }
            _ = stop.changed() => return,
        }
    }
}

async fn route(req: Request<Incoming>, state: &State, peer: SocketAddr) -> Response<Body> {
    let retry_after = state.config.retry_after;
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if media_type(content_type).starts_with(GRPC) {
        return grpc::call(req, state, peer).await;
    }
    let origin = req.headers().get(ORIGIN).cloned();
    let path = req.uri().path();
    let mut response = match (req.method(), path, signal_of_path(path)) {
        (&Method::GET | &Method::HEAD, "/" | "/health", _) => response::health(),
        (&Method::GET | &Method::HEAD, "/ready", _) => response::ready(state.ready()),
        (&Method::POST, _, Some(signal)) => {
            let format = request_format(content_type);
            let started = Instant::now();
            let sent_id = req.headers().get(REQUEST_ID).cloned();
            match export(req, signal, state).await {
                Ok(accepted) => {
                    let (stored, rejected, took) = (accepted.records, accepted.rejected, started.elapsed());
                    state.metrics.exported(Transport::Http, signal, stored, rejected, took);
                    response::export_ok(&accepted, signal, format.unwrap_or(Format::Protobuf))
                }
                Err(e) => {
                    let id = RequestId::new(sent_id.as_ref());
                    e.log(&id, peer, Transport::Http);
                    state.metrics.export_refused(Transport::Http, e.http_status(), e.reason(), started.elapsed());
                    e.into_http(format.unwrap_or(Format::Protobuf), retry_after, &id)
                }
            }
        }
        (&Method::OPTIONS, _, Some(_)) if allowed_origin(&state.config, origin.as_ref()).is_some() => preflight(&req),
        (method, _, Some(_)) => refuse(state, &req, peer, ReceiveError::MethodNotAllowed(method.to_string())),
        (_, path, None) => refuse(state, &req, peer, ReceiveError::NotFound(path.to_owned())),
    };
    if let Some(allowed) = allowed_origin(&state.config, origin.as_ref()) {
        response.headers_mut().insert(ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        response.headers_mut().insert(VARY, HeaderValue::from_static("Origin"));
    }
    response
}

/// Answer a request that is not an export (no such path or method), counting and logging it.
fn refuse(state: &State, req: &Request<Incoming>, peer: SocketAddr, e: ReceiveError) -> Response<Body> {
    let id = RequestId::new(req.headers().get(REQUEST_ID));
    e.log(&id, peer, Transport::Http);
    state.metrics.refused(Transport::Http, e.http_status(), e.reason());
    e.into_http(Format::Protobuf, state.config.retry_after, &id)
}

async fn export(req: Request<Incoming>, signal: Signal, state: &State) -> Result<Accepted, ReceiveError> {
    let limit = state.config.max_request_bytes;
    let headers = req.headers();
    state.authorize(headers)?;
    state.takes(signal)?;
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let format =
        request_format(content_type).ok_or_else(|| ReceiveError::UnsupportedMediaType(content_type.to_owned()))?;
    let encoding = Encoding::from_header(headers.get(CONTENT_ENCODING).and_then(|v| v.to_str().ok()))?;
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ReceiveError::TooLarge { limit });
    }
    // Admission before the body is read: an overloaded collector refuses before it buffers anything.
    let mut permit = state.reserve(signal, declared.unwrap_or(0))?;
    let raw = body::read_limited(req.into_body(), limit, state.config.body_timeout, &mut permit).await?;
    let body = body::decompress_charged(encoding, raw, limit, &mut permit).await?;
    state.submit(signal, body, format, permit).await
}

/// The OTLP encoding a Content-Type names, if any.
fn request_format(content_type: &str) -> Option<Format> {
    match media_type(content_type).as_str() {
        PROTOBUF => Some(Format::Protobuf),
        JSON => Some(Format::Json),
        _ => None,
    }
}

/// `type/subtype` of a Content-Type, lowercased, without parameters.
fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// The `Access-Control-Allow-Origin` value for a request from `origin`, if that origin is allowed.
fn allowed_origin(config: &HttpConfig, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
    let origin = origin?;
    let text = origin.to_str().ok()?;
    config.cors_allowed_origins.iter().any(|o| o == "*" || o.eq_ignore_ascii_case(text)).then(|| origin.clone())
}

fn preflight(req: &Request<Incoming>) -> Response<Body> {
    let mut response = response::no_content();
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
    let requested = req.headers().get(ACCESS_CONTROL_REQUEST_HEADERS).cloned();
    headers.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        requested.unwrap_or_else(|| HeaderValue::from_static("content-type, content-encoding")),
    );
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("7200"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_ignores_parameters_and_case() {
        assert_eq!(media_type("Application/X-Protobuf; charset=utf-8"), PROTOBUF);
        assert_eq!(request_format("application/json; charset=utf-8"), Some(Format::Json));
        assert_eq!(request_format("text/plain"), None);
        assert_eq!(media_type(""), "");
    }

    #[test]
    fn cors_origins_match_exactly_or_by_wildcard() {
        let mut config = HttpConfig {
            max_request_bytes: 1,
            retry_after: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(1),
            cors_allowed_origins: vec!["https://app.example.com".into()],
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            http2_keepalive: Duration::from_secs(1),
            http2_max_streams: 1,
            max_connections: 1,
            auth: None,
            tls: None,
        };
        let origin = HeaderValue::from_static("https://app.example.com");
        assert!(allowed_origin(&config, Some(&origin)).is_some());
        assert!(allowed_origin(&config, Some(&HeaderValue::from_static("https://evil.example"))).is_none());
        assert!(allowed_origin(&config, None).is_none());
        config.cors_allowed_origins = vec!["*".into()];
        assert!(allowed_origin(&config, Some(&HeaderValue::from_static("https://any.example"))).is_some());
    }
}
