//! self_metrics: the collector's own metrics, as Prometheus text on `GET /metrics` of `--metrics-addr` (a leaf:
//! other modules import it, it imports none of theirs but the [`Signal`] type). Encoded by `prometheus-client` (OpenMetrics text).
//!
//! One [`SelfMetrics`] per collector (created with it, handed to the receiver, the pipeline and the sink), so
//! several collectors in one process (the integration tests) count apart. Handles are cheap clones of shared
//! atomics; the request path does a few relaxed atomic adds per request and nothing per span.
//!
//! Contract, metric by metric (counters are exposed with the `_total` suffix OpenMetrics gives them):
//!
//! - `otelcol_receiver_accepted_spans{receiver="otlp",transport="http"|"grpc"}`: spans stored for an export
//!   answered OK, counted when the answer is sent; `otelcol_receiver_accepted_log_records` the same for logs.
//! - `otelcol_receiver_refused_spans{receiver,transport}`: spans of an export answered OK that were refused
//!   alone (its partial success `rejected_spans`), counted when the answer is sent; `…_refused_log_records`.
//! - `otel_delta_refused_requests{transport,status,reason}`: requests answered with an error; `status` is the
//!   HTTP status the error maps to (401, 404, 408, 413, 415, 400, 503…; gRPC calls too, by the same mapping),
//!   `reason` one word per kind of error (`too_large`, `overloaded`, `unauthenticated`…).
//! - `otel_delta_request_duration_seconds{transport}`: histogram of export requests, from their headers to their
//!   answer, however answered.
//! - `otelcol_exporter_sent_spans{exporter="delta"|"zerobus"}`: spans the sink made durable (committed, or
//!   acknowledged by Zerobus), counted as their requests are settled OK; `…_sent_log_records` for logs.
//! - `otelcol_exporter_send_failed_spans{exporter}`: spans the sink failed to store, counted as their requests are
//!   answered 503; `…_send_failed_log_records` for logs.
//! - `otel_delta_commit_duration_seconds`: histogram of Delta commit attempts (uploads excluded).
//! - `otel_delta_files_written`, `otel_delta_bytes_written`: data files (and their bytes) added by Delta commits.
//! - `otel_delta_table_version{table}`: the table's version after this collector's last commit (at start: the
//!   version it opened).
//! - `otel_delta_inflight_bytes`, `otel_delta_inflight_budget_bytes`: bytes accepted but not yet answered, and
//!   `--max-inflight-size`; read when scraped.
//! - `otel_delta_queue_depth`: requests admitted and waiting for a batch worker; read when scraped.
//! - `otel_delta_tls_handshake_failures{reason="failed"|"timed_out"}`: connections closed before their TLS handshake
//!   completed (a client speaking plain text, distrusting our certificate, without a client certificate under
//!   mTLS, or silent past `--header-timeout`).
//! - `otel_delta_worker_restarts`: batch worker panics caught (process-wide: every collector in the process);
//!   read when scraped.
//!
//! Not counted as spans: a request refused before or while decoding (the count is unknown then; the request is
//! in `otel_delta_refused_requests`), and one answered 503 after admission (its spans are in
//! `otelcol_exporter_send_failed_spans` when the sink failed them, not when a batch worker panicked or the
//! request's deadline passed first). Object store retries happen inside `object_store` and are not seen.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::decode::Signal;

/// The path scraped.
pub(crate) const METRICS_PATH: &str = "/metrics";

/// What `prometheus-client`'s text encoder writes.
pub(crate) const CONTENT_TYPE_OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The receiver's transports, as the `transport` label says them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Transport {
    Http,
    Grpc,
}

impl Transport {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Grpc => "grpc",
        }
    }
}

/// The sinks, as the `exporter` label says them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exporter {
    Delta,
    Zerobus,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReceiverLabels {
    receiver: &'static str,
    transport: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RefusedLabels {
    transport: &'static str,
    status: u16,
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TransportLabels {
    transport: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ExporterLabels {
    exporter: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HandshakeLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TableLabels {
    table: String,
}

/// One transport's handles, resolved once (no label lookup per request); counters per [`Signal::index`].
#[derive(Clone)]
struct ReceiverHandles {
    accepted: Vec<Counter>,
    refused: Vec<Counter>,
    duration: Histogram,
}

/// One exporter's counters, per [`Signal::index`].
struct ExporterHandles {
    sent: Vec<Counter>,
    failed: Vec<Counter>,
}

/// The metric name part for the records of `signal`, as the OpenTelemetry Collector names them.
fn records_name(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "spans",
        Signal::Logs => "log_records",
    }
}

/// Values read when scraped rather than kept up to date: each a function of the running pipeline.
type Probe = Box<dyn Fn() -> u64 + Send + Sync>;

#[derive(Default)]
struct Probes {
    inflight: Option<Probe>,
    queue: Option<Probe>,
    restarts: Option<Probe>,
}

struct Inner {
    registry: Registry,
    http: ReceiverHandles,
    grpc: ReceiverHandles,
    refused_requests: Family<RefusedLabels, Counter>,
    delta: ExporterHandles,
    zerobus: ExporterHandles,
    commit_duration: Histogram,
    files_written: Counter,
    bytes_written: Counter,
    table_version: Family<TableLabels, Gauge>,
    inflight: Gauge,
    inflight_budget: Gauge,
    queue_depth: Gauge,
    worker_restarts: Counter,
    store_retries: Counter,
    tls_failed: Counter,
    tls_timed_out: Counter,
    /// Also serializes scrapes (the restart counter catches up with its probe under it).
    probes: Mutex<Probes>,
}

/// A collector's metrics: the registry and every handle. Clones share them.
#[derive(Clone)]
pub(crate) struct SelfMetrics(Arc<Inner>);

impl Default for SelfMetrics {
    fn default() -> Self {
        SelfMetrics::new()
    }
}

/// Request latencies: 1 ms to about 65 s (a request waits for its commit, a flush interval and more).
fn request_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl SelfMetrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::default();
        let (mut accepted, mut refused, mut sent, mut failed) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for signal in Signal::ALL {
            let (records, rows) = (records_name(signal), signal.rows());
            let family = Family::<ReceiverLabels, Counter>::default();
            let help = format!("{rows} stored for export requests answered OK");
            registry.register(format!("otelcol_receiver_accepted_{records}"), help, family.clone());
            accepted.push(family);
            let family = Family::<ReceiverLabels, Counter>::default();
            let help = format!("{rows} of export requests answered OK that were refused alone (partial success)");
            registry.register(format!("otelcol_receiver_refused_{records}"), help, family.clone());
            refused.push(family);
            let family = Family::<ExporterLabels, Counter>::default();
            let help = format!("{rows} the sink stored durably");
            registry.register(format!("otelcol_exporter_sent_{records}"), help, family.clone());
            sent.push(family);
            let family = Family::<ExporterLabels, Counter>::default();
            let help = format!("{rows} the sink failed to store (their requests answered 503)");
            registry.register(format!("otelcol_exporter_send_failed_{records}"), help, family.clone());
            failed.push(family);
        }
        let refused_requests = Family::<RefusedLabels, Counter>::default();
        registry.register(
            "otel_delta_refused_requests",
            "Requests answered with an error, by HTTP status and reason",
            refused_requests.clone(),
        );
        let durations = Family::<TransportLabels, Histogram, fn() -> Histogram>::new_with_constructor(request_buckets);
        registry.register(
            "otel_delta_request_duration_seconds",
            "Export requests, from their headers to their answer",
            durations.clone(),
        );
        let commit_duration = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        registry.register("otel_delta_commit_duration_seconds", "Delta commits (attempts)", commit_duration.clone());
        let files_written = Counter::default();
        registry.register("otel_delta_files_written", "Data files added by Delta commits", files_written.clone());
        let bytes_written = Counter::default();
        registry.register(
            "otel_delta_bytes_written",
            "Bytes of the data files added by Delta commits",
            bytes_written.clone(),
        );
        let table_version = Family::<TableLabels, Gauge>::default();
        registry.register(
            "otel_delta_table_version",
            "Version of the table's last commit by this collector",
            table_version.clone(),
        );
        let inflight = Gauge::default();
        registry.register("otel_delta_inflight_bytes", "Bytes accepted but not yet answered", inflight.clone());
        let inflight_budget = Gauge::default();
        registry.register(
            "otel_delta_inflight_budget_bytes",
            "Most bytes that may be accepted but not yet answered (--max-inflight-size)",
            inflight_budget.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register("otel_delta_queue_depth", "Requests waiting for a batch worker", queue_depth.clone());
        let worker_restarts = Counter::default();
        registry.register(
            "otel_delta_worker_restarts",
            "Batch worker panics caught and restarted (the whole process)",
            worker_restarts.clone(),
        );
        let store_retries = Counter::default();
        registry.register(
            "otel_delta_store_retries",
            "Object store requests retried by the store client (uploads, log reads and writes; process-wide)",
            store_retries.clone(),
        );
        let handshakes = Family::<HandshakeLabels, Counter>::default();
        registry.register(
            "otel_delta_tls_handshake_failures",
            "Connections closed before their TLS handshake completed",
            handshakes.clone(),
        );
        let handshake = |reason| handshakes.get_or_create(&HandshakeLabels { reason }).clone();
        let receiver = |transport: Transport| {
            let labels = ReceiverLabels { receiver: "otlp", transport: transport.label() };
            ReceiverHandles {
                accepted: accepted.iter().map(|f| f.get_or_create(&labels).clone()).collect(),
                refused: refused.iter().map(|f| f.get_or_create(&labels).clone()).collect(),
                duration: durations.get_or_create(&TransportLabels { transport: transport.label() }).clone(),
            }
        };
        let exporter = |exporter| {
            let labels = ExporterLabels { exporter };
            ExporterHandles {
                sent: sent.iter().map(|f| f.get_or_create(&labels).clone()).collect(),
                failed: failed.iter().map(|f| f.get_or_create(&labels).clone()).collect(),
            }
        };
        let (http, grpc) = (receiver(Transport::Http), receiver(Transport::Grpc));
        SelfMetrics(Arc::new(Inner {
            http,
            grpc,
            refused_requests,
            delta: exporter("delta"),
            zerobus: exporter("zerobus"),
            commit_duration,
            files_written,
            bytes_written,
            table_version,
            inflight,
            inflight_budget,
            queue_depth,
            worker_restarts,
            store_retries,
            tls_failed: handshake("failed"),
            tls_timed_out: handshake("timed_out"),
            probes: Mutex::new(Probes::default()),
            registry,
        }))
    }

    fn receiver(&self, transport: Transport) -> &ReceiverHandles {
        match transport {
            Transport::Http => &self.0.http,
            Transport::Grpc => &self.0.grpc,
        }
    }

    /// An export of `signal` answered OK: `stored` records stored, `rejected` refused alone; it took `took`.
    pub(crate) fn exported(&self, transport: Transport, signal: Signal, stored: u64, rejected: u64, took: Duration) {
        let handles = self.receiver(transport);
        handles.accepted[signal.index()].inc_by(stored);
        if rejected > 0 {
            handles.refused[signal.index()].inc_by(rejected);
        }
        handles.duration.observe(took.as_secs_f64());
    }

    /// An export answered with an error (`took` after its headers).
    pub(crate) fn export_refused(&self, transport: Transport, status: u16, reason: &'static str, took: Duration) {
        self.refused(transport, status, reason);
        self.receiver(transport).duration.observe(took.as_secs_f64());
    }

    /// Any other request answered with an error (no such path, method).
    pub(crate) fn refused(&self, transport: Transport, status: u16, reason: &'static str) {
        self.0.refused_requests.get_or_create(&RefusedLabels { transport: transport.label(), status, reason }).inc();
    }

    /// The sink settled requests holding `records` records of `signal`: stored (`ok`) or failed.
    pub(crate) fn settled(&self, exporter: Exporter, signal: Signal, records: u64, ok: bool) {
        let handles = match exporter {
            Exporter::Delta => &self.0.delta,
            Exporter::Zerobus => &self.0.zerobus,
        };
        let counters = if ok { &handles.sent } else { &handles.failed };
        counters[signal.index()].inc_by(records);
    }

    /// A connection's TLS handshake failed, or (`timed_out`) did not complete in time.
    pub(crate) fn tls_handshake_failed(&self, timed_out: bool) {
        if timed_out { &self.0.tls_timed_out } else { &self.0.tls_failed }.inc();
    }

    /// A Delta commit attempt took `took`.
    pub(crate) fn commit_took(&self, took: Duration) {
        self.0.commit_duration.observe(took.as_secs_f64());
    }

    /// A Delta commit added `files` files of `bytes` bytes to `table`, making `version`.
    pub(crate) fn committed(&self, table: &str, version: u64, files: u64, bytes: u64) {
        self.0.files_written.inc_by(files);
        self.0.bytes_written.inc_by(bytes);
        self.table_version(table, version);
    }

    /// `table` is at `version`.
    pub(crate) fn table_version(&self, table: &str, version: u64) {
        self.0.table_version.get_or_create(&TableLabels { table: table.to_owned() }).set(gauge_value(version));
    }

    /// Read the pipeline's levels when scraped: bytes in flight (of `budget`), requests queued, worker restarts.
    pub(crate) fn watch_pipeline(
        &self,
        budget: u64,
        inflight: impl Fn() -> u64 + Send + Sync + 'static,
        queue: impl Fn() -> u64 + Send + Sync + 'static,
        restarts: impl Fn() -> u64 + Send + Sync + 'static,
    ) {
        self.0.inflight_budget.set(gauge_value(budget));
        let mut probes = self.0.probes.lock().unwrap_or_else(|e| e.into_inner());
        *probes = Probes {
            inflight: Some(Box::new(inflight)),
            queue: Some(Box::new(queue)),
            restarts: Some(Box::new(restarts)),
        };
    }

    /// Every metric, in the OpenMetrics text format.
    pub(crate) fn encode(&self) -> String {
        let probes = self.0.probes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(inflight) = &probes.inflight {
            self.0.inflight.set(gauge_value(inflight()));
        }
        if let Some(queue) = &probes.queue {
            self.0.queue_depth.set(gauge_value(queue()));
        }
        if let Some(restarts) = &probes.restarts {
            let seen = self.0.worker_restarts.get();
            self.0.worker_restarts.inc_by(restarts().saturating_sub(seen));
        }
        let retries = crate::store::store_retries();
        self.0.store_retries.inc_by(retries.saturating_sub(self.0.store_retries.get()));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.0.registry);
        text
    }
}

/// The answer to one request on the metrics listener.
fn answer(req: &Request<Incoming>, metrics: &SelfMetrics) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, METRICS_PATH) => (StatusCode::OK, CONTENT_TYPE_OPENMETRICS, metrics.encode()),
        (&Method::GET | &Method::HEAD, _) => {
            (StatusCode::NOT_FOUND, "text/plain; charset=utf-8", format!("metrics are at {METRICS_PATH}\n"))
        }
        _ => (StatusCode::METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", "use GET\n".to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Serve `GET /metrics` on `listener` until `stop` resolves (connections still open then are dropped: a scrape
/// is retried at the next interval).
pub(crate) async fn serve(listener: TcpListener, metrics: SelfMetrics, stop: impl Future<Output = ()>) {
    let accept = async {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let response = answer(&req, &metrics);
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
                let builder = auto::Builder::new(TokioExecutor::new());
                if let Err(e) = builder.serve_connection(TokioIo::new(stream), service).await {
                    tracing::debug!(error = %e, "metrics connection ended with an error");
                }
            });
        }
    };
    tokio::select! {
        _ = accept => {}
        _ = stop => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoding_names_every_metric_with_its_labels() {
        let metrics = SelfMetrics::new();
        metrics.exported(Transport::Http, Signal::Traces, 5, 1, Duration::from_millis(3));
        metrics.exported(Transport::Grpc, Signal::Traces, 2, 0, Duration::from_millis(3));
        metrics.exported(Transport::Grpc, Signal::Logs, 9, 2, Duration::from_millis(3));
        metrics.export_refused(Transport::Http, 413, "too_large", Duration::from_millis(1));
        metrics.settled(Exporter::Delta, Signal::Traces, 7, true);
        metrics.settled(Exporter::Delta, Signal::Traces, 4, false);
        metrics.settled(Exporter::Delta, Signal::Logs, 9, true);
        metrics.commit_took(Duration::from_millis(20));
        metrics.committed("file:///t/", 3, 2, 1000);
        metrics.watch_pipeline(512, || 100, || 4, || 1);
        metrics.tls_handshake_failed(false);
        let text = metrics.encode();
        for line in [
            r#"otelcol_receiver_accepted_spans_total{receiver="otlp",transport="http"} 5"#,
            r#"otelcol_receiver_accepted_spans_total{receiver="otlp",transport="grpc"} 2"#,
            r#"otelcol_receiver_refused_spans_total{receiver="otlp",transport="http"} 1"#,
            r#"otel_delta_refused_requests_total{transport="http",status="413",reason="too_large"} 1"#,
            r#"otelcol_receiver_accepted_log_records_total{receiver="otlp",transport="grpc"} 9"#,
            r#"otelcol_receiver_refused_log_records_total{receiver="otlp",transport="grpc"} 2"#,
            r#"otelcol_receiver_accepted_log_records_total{receiver="otlp",transport="http"} 0"#,
            r#"otel_delta_request_duration_seconds_count{transport="http"} 2"#,
            r#"otelcol_exporter_sent_spans_total{exporter="delta"} 7"#,
            r#"otelcol_exporter_send_failed_spans_total{exporter="delta"} 4"#,
            r#"otelcol_exporter_sent_spans_total{exporter="zerobus"} 0"#,
            r#"otelcol_exporter_sent_log_records_total{exporter="delta"} 9"#,
            r#"otelcol_exporter_send_failed_log_records_total{exporter="delta"} 0"#,
            "otel_delta_commit_duration_seconds_count 1",
            "otel_delta_files_written_total 2",
            "otel_delta_bytes_written_total 1000",
            r#"otel_delta_table_version{table="file:///t/"} 3"#,
            "otel_delta_inflight_bytes 100",
            "otel_delta_inflight_budget_bytes 512",
            "otel_delta_queue_depth 4",
            "otel_delta_worker_restarts_total 1",
            r#"otel_delta_tls_handshake_failures_total{reason="failed"} 1"#,
            r#"otel_delta_tls_handshake_failures_total{reason="timed_out"} 0"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        // Process-wide (another test may be retrying a store meanwhile): only its presence here.
        assert!(text.lines().any(|l| l.starts_with("otel_delta_store_retries_total ")), "{text}");
        assert!(text.ends_with("# EOF\n"));
        // The restart counter follows its probe without counting twice.
        assert!(metrics.encode().lines().any(|l| l == "otel_delta_worker_restarts_total 1"));
    }

    #[test]
    fn collectors_count_apart() {
        let (a, b) = (SelfMetrics::new(), SelfMetrics::new());
        a.exported(Transport::Http, Signal::Traces, 3, 0, Duration::ZERO);
        let line = r#"otelcol_receiver_accepted_spans_total{receiver="otlp",transport="http"} 0"#;
        assert!(b.encode().lines().any(|l| l == line));
    }
}
