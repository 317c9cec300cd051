//! serve: the collector put together. Opens the sink of each signal taken (after Databricks start-up when
//! configured), starts the pipeline, serves OTLP (and `/metrics`, given its listener) until told to stop, then
//! drains.
//!
//! Contract: [`Collector::open`] returns only once every destination is writable (each signal's table opened or
//! created and checked, or the Zerobus stream open), so a collector that starts serving can store what it accepts.
//! [`Collector::serve`] returns once every accepted request has been answered (200 only once stored) and every
//! accepted row stored or failed; past `--shutdown-timeout` after the shutdown signal it returns
//! [`ServeError::ShutdownTimeout`] instead, every request still waiting having been answered 503.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use crate::commit::{CommitError, Table, Wanted};
use crate::config::Config;
use crate::databricks::{self, DatabricksError, Destination, StartError, Workspace};
use crate::decode::Signal;
use crate::pipeline::Pipeline;
use crate::self_metrics::{self, SelfMetrics};
use crate::sink::{DeltaSink, Target, ZerobusSink};
use crate::table::Contract;
use crate::{receiver, upkeep};

/// At least this long for the last commit after the receiver is done, even past the shutdown timeout: requests
/// answered before it may be in it.
const LAST_COMMIT_GRACE: Duration = Duration::from_secs(1);

/// Why the collector could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Table(#[from] CommitError),
    #[error("Databricks: {0}")]
    Databricks(#[from] StartError),
    #[error("Databricks: {0}")]
    DatabricksConfig(#[from] DatabricksError),
    #[error("starting worker threads: {0}")]
    Threads(#[from] std::io::Error),
    #[error("shutdown took longer than {0:?}: requests still waiting were answered 503, uploads in flight abandoned")]
    ShutdownTimeout(std::time::Duration),
}

/// A collector whose destinations are open, ready to serve.
pub struct Collector {
    config: Config,
    /// One per signal taken, in [`Signal::ALL`] order.
    targets: Vec<Target>,
    /// Where `/metrics` is served, if anywhere (see [`Collector::with_metrics_listener`]).
    metrics_listener: Option<TcpListener>,
}

impl Collector {
    /// Open where the configuration sends each signal: `--table` and the tables beside it (see `--logs-table`), or
    /// with Databricks configured, after linking the MLflow experiment, each signal's Unity Catalog table (through
    /// its vended credentials) or a Zerobus stream into it.
    pub async fn open(config: Config) -> Result<Collector, ServeError> {
        let pipeline = &config.pipeline;
        if let Some(db) = &config.databricks {
            let ws = Workspace::from_env(|name| std::env::var(name).ok(), db.insecure_http)?
                .ok_or(DatabricksError::NoHost)?;
            tracing::info!(host = %ws.host(), auth = ws.auth_kind(), "Databricks workspace");
            let signals: Vec<(Signal, bool)> =
                config.signals().map(|s| (s, s == Signal::Traces || config.signals_listed)).collect();
            if let Some(destinations) = databricks::start(Arc::new(ws), db, &signals, config.layout).await? {
                let targets = destinations
                    .into_iter()
                    .map(|destination| match destination {
                        Destination::UnityCatalog(table) => {
                            Target::Delta(Box::new(DeltaSink::new(*table, pipeline.codec, pipeline.upload)))
                        }
                        Destination::Zerobus(stream) => Target::Zerobus(Box::new(ZerobusSink::new(*stream))),
                    })
                    .collect();
                return Ok(Collector { config, targets, metrics_listener: None });
            }
        }
        let mut targets = Vec::new();
        for (signal, location) in &config.tables {
            let contract = Contract::of(*signal, config.layout.unwrap_or_default());
            let wanted = match config.layout {
                Some(_) => Wanted::exactly(contract),
                None => Wanted::any_layout(contract),
            };
            let table = Table::open_or_create(&location.url, location.storage_options.clone(), wanted).await?;
            targets.push(Target::Delta(Box::new(DeltaSink::new(table, pipeline.codec, pipeline.upload))));
        }
        Ok(Collector { config, targets, metrics_listener: None })
    }

    /// Serve the collector's own metrics (`GET /metrics`, Prometheus text) on `listener` while serving OTLP. The
    /// caller binds it (`--metrics-addr`, see [`Config::metrics_addr`]), as it binds the OTLP listeners.
    pub fn with_metrics_listener(mut self, listener: TcpListener) -> Collector {
        self.metrics_listener = Some(listener);
        self
    }

    /// Serve OTLP (HTTP and gRPC, on every listener) until `shutdown` resolves. On shutdown: stop accepting,
    /// store everything accepted, answer those requests, return. Tests bind port 0 and pass their own `shutdown`.
    pub async fn serve(
        self,
        listeners: Vec<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let Collector { config, targets, metrics_listener } = self;
        let metrics = SelfMetrics::new();
        let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics_server = metrics_listener.map(|listener| {
            tokio::spawn(self_metrics::serve(listener, metrics.clone(), async move {
                let _ = metrics_stopped.await;
            }))
        });
        let (stop_upkeep, upkeep_stopped) = tokio::sync::watch::channel(false);
        let mut upkeep = Vec::new();
        for target in &targets {
            match target {
                Target::Delta(sink) => {
                    let table = sink.table();
                    tracing::info!(table = %table.url(), version = ?table.version(), signal = %target.signal().name(), "table open");
                    table.remove_stale_staging_files(config.pipeline.upload.timeout).await;
                    if let Some(interval) = config.optimize_interval {
                        // Its own handle on the table: compaction commits never wait behind (or delay) the append
                        // path.
                        let own = table.open_again().await?;
                        let options = upkeep::OptimizeOptions {
                            codec: config.pipeline.codec,
                            upload: config.pipeline.upload,
                            ..Default::default()
                        };
                        let stopped = upkeep_stopped.clone();
                        upkeep.push(tokio::spawn(upkeep::optimize_periodically(own, options, interval, stopped)));
                    }
                }
                // Configuration refuses --optimize-interval with the Zerobus sink: Databricks manages those tables.
                Target::Zerobus(sink) => {
                    tracing::info!(table = sink.table(), endpoint = sink.endpoint(), "Zerobus sink open")
                }
            }
        }
        let (submitter, drain, pipeline) = Pipeline::start(targets, &config.pipeline, &metrics)?;
        let (signalled_tx, signalled) = tokio::sync::oneshot::channel();
        let shutdown = async move {
            shutdown.await;
            let _ = signalled_tx.send(Instant::now());
            // Requests waiting for their commit are answered now, not at the flush interval.
            drain.now();
        };
        receiver::serve(listeners, submitter, config.http.clone(), metrics, shutdown).await;
        // Every request is answered (or the receiver gave up on it); what is accepted is stored within the rest of
        // the shutdown timeout, or abandoned (its requests already got 503).
        let deadline = signalled.await.unwrap_or_else(|_| Instant::now()) + config.shutdown_timeout;
        let left = deadline.saturating_duration_since(Instant::now()).max(LAST_COMMIT_GRACE);
        let joined = tokio::time::timeout(left, pipeline.join()).await;
        // Metrics are served until every accepted request is settled, so a last scrape sees the final counts.
        let _ = stop_metrics.send(());
        if let Some(task) = metrics_server {
            let _ = task.await;
        }
        if joined.is_err() {
            let _ = stop_upkeep.send(true);
            return Err(ServeError::ShutdownTimeout(config.shutdown_timeout));
        }
        let _ = stop_upkeep.send(true);
        for task in upkeep {
            let _ = task.await;
        }
        Ok(())
    }
}

impl std::fmt::Display for Collector {
    /// Where rows go, for the start-up line: `table <url>` for each signal, `; ` between them, the spans table's
    /// first and bare, the others followed by their signal: `table file:///w/spans/; table file:///w/logs/ (logs)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, target) in self.targets.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            match target.signal() {
                Signal::Traces => write!(f, "{target}")?,
                signal => write!(f, "{target} ({})", signal.name())?,
            }
        }
        Ok(())
    }
}

/// Open the configured destination, then serve until `shutdown` resolves (see [`Collector`]); no `/metrics`.
pub async fn serve(
    listeners: Vec<TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    Collector::open(config).await?.serve(listeners, shutdown).await
}
