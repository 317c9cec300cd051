//! otel-delta: OpenTelemetry traces over OTLP into a Delta Lake table, acknowledged only once durable.
//!
//! Data flow, one module per step:
//! [`receiver`] → [`decode`] → [`batch`] (Arrow columns) → [`encode`] (Parquet) → [`store`] (object store)
//! → [`commit`] (Delta log); [`pipeline`] carries a request through them and answers it after its commit.
//! [`upkeep`] (compaction, vacuum) keeps the table healthy off the ack path.

pub mod batch;
pub mod commit;
pub mod config;
pub mod databricks;
pub mod decode;
pub mod encode;
pub mod pipeline;
pub mod receiver;
pub mod store;
pub mod upkeep;

use std::future::Future;

use tokio::net::TcpListener;

pub use config::{Config, OptimizeArgs, ServeArgs, TableArgs, VacuumArgs};

/// Why the collector could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Table(#[from] commit::CommitError),
    #[error("Databricks: {0}")]
    Databricks(#[from] databricks::StartError),
    #[error("Databricks: {0}")]
    DatabricksConfig(#[from] databricks::DatabricksError),
    #[error("starting worker threads: {0}")]
    Threads(#[from] std::io::Error),
}

/// Open where the configuration sends spans: `--table`, or with Databricks configured, after linking the MLflow
/// experiment, the Unity Catalog table (through its vended credentials) or a Zerobus stream into it.
pub async fn open_sink(config: &Config) -> Result<pipeline::Sink, ServeError> {
    if let Some(db) = &config.databricks {
        let ws = databricks::Workspace::from_env(|name| std::env::var(name).ok())?.ok_or_else(|| {
            databricks::DatabricksError::Config(
                "MLFLOW_EXPERIMENT_NAME, --sink unity-catalog and --sink zerobus need DATABRICKS_HOST (and a token)"
                    .into(),
            )
        })?;
        tracing::info!(host = %ws.host(), auth = ws.auth_kind(), "Databricks workspace");
        if let Some(sink) = databricks::start(std::sync::Arc::new(ws), db).await? {
            return Ok(sink);
        }
    }
    Ok(pipeline::Sink::Delta(commit::Table::open_or_create(&config.table_url, config.storage_options.clone()).await?))
}

/// Open (or create) the Delta table the configuration writes (see [`open_sink`]); an error for the Zerobus sink.
pub async fn open_table(config: &Config) -> Result<commit::Table, ServeError> {
    match open_sink(config).await? {
        pipeline::Sink::Delta(table) => Ok(table),
        pipeline::Sink::Zerobus(_) => Err(ServeError::DatabricksConfig(databricks::DatabricksError::Config(
            "the Zerobus sink writes no Delta table of its own".into(),
        ))),
    }
}

/// Open the sink, then serve OTLP (HTTP and gRPC, on every listener) until `shutdown` resolves.
/// On shutdown: stop accepting, store everything accepted, answer those requests, return. Tests bind port 0
/// and pass their own `shutdown`.
pub async fn serve(
    listeners: Vec<TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let sink = open_sink(&config).await?;
    serve_sink(listeners, config, sink, shutdown).await
}

/// Serve OTLP into an opened sink (see [`serve`]).
pub async fn serve_sink(
    listeners: Vec<TcpListener>,
    config: Config,
    sink: pipeline::Sink,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    match &sink {
        pipeline::Sink::Delta(table) => {
            tracing::info!(table = %table.url(), version = ?table.version(), "spans table open")
        }
        pipeline::Sink::Zerobus(z) => tracing::info!(table = z.table(), endpoint = z.endpoint(), "Zerobus sink open"),
    }
    let (stop_upkeep, upkeep_stopped) = tokio::sync::watch::channel(false);
    let upkeep = match config.optimize_interval {
        Some(interval) => {
            // Its own handle on the table: compaction commits never wait behind (or delay) the append path.
            let own = open_table(&config).await?;
            let options = upkeep::OptimizeOptions {
                codec: config.pipeline.codec,
                upload: config.pipeline.upload,
                ..Default::default()
            };
            Some(tokio::spawn(upkeep::optimize_periodically(own, options, interval, upkeep_stopped)))
        }
        None => None,
    };
    let (submitter, drain, pipeline) = pipeline::Pipeline::start(sink, &config.pipeline)?;
    let shutdown = async move {
        shutdown.await;
        // Requests waiting for their commit are answered now, not at the flush interval.
        drain.now();
    };
    receiver::serve(listeners, submitter, config.http.clone(), shutdown).await;
    pipeline.join().await;
    let _ = stop_upkeep.send(true);
    if let Some(task) = upkeep {
        let _ = task.await;
    }
    Ok(())
}
