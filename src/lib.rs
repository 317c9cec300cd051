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

/// Open (or create) the spans table the configuration names: `--table`, or with Databricks configured, after
/// linking the MLflow experiment, the Unity Catalog table through its vended credentials.
pub async fn open_table(config: &Config) -> Result<commit::Table, ServeError> {
    if let Some(db) = &config.databricks {
        let ws = databricks::Workspace::from_env(|name| std::env::var(name).ok())?.ok_or_else(|| {
            databricks::DatabricksError::Config(
                "MLFLOW_EXPERIMENT_NAME or --sink unity-catalog needs DATABRICKS_HOST (and a token)".into(),
            )
        })?;
        tracing::info!(host = %ws.host(), auth = ws.auth_kind(), "Databricks workspace");
        if let Some(table) = databricks::start(std::sync::Arc::new(ws), db).await? {
            return Ok(table);
        }
    }
    Ok(commit::Table::open_or_create(&config.table_url, config.storage_options.clone()).await?)
}

/// Open (or create) the table, then serve OTLP (HTTP and gRPC, on every listener) until `shutdown` resolves.
/// On shutdown: stop accepting, commit everything accepted, answer those requests, return. Tests bind port 0
/// and pass their own `shutdown`.
pub async fn serve(
    listeners: Vec<TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let table = open_table(&config).await?;
    serve_table(listeners, config, table, shutdown).await
}

/// Serve OTLP into an opened table (see [`serve`]).
pub async fn serve_table(
    listeners: Vec<TcpListener>,
    config: Config,
    table: commit::Table,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    tracing::info!(table = %table.url(), version = ?table.version(), "spans table open");
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
    let (submitter, drain, pipeline) = pipeline::Pipeline::start(table, &config.pipeline)?;
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
