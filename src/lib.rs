//! otel-delta: OpenTelemetry traces over OTLP into a Delta Lake table, acknowledged only once durable.
//!
//! Data flow, one module per step:
//! [`receiver`] → [`decode`] → [`batch`] (Arrow columns) → [`encode`] (Parquet) → [`store`] (object store)
//! → [`commit`] (Delta log); [`pipeline`] carries a request through them and answers it after its commit.
//! [`upkeep`] (compaction, vacuum) keeps the table healthy off the ack path.

pub mod batch;
pub mod commit;
pub mod config;
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
    #[error("starting worker threads: {0}")]
    Threads(#[from] std::io::Error),
}

/// Open (or create) the table, then serve OTLP (HTTP and gRPC, on every listener) until `shutdown` resolves.
/// On shutdown: stop accepting, commit everything accepted, answer those requests, return. Tests bind port 0
/// and pass their own `shutdown`.
pub async fn serve(
    listeners: Vec<TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let table = commit::Table::open_or_create(&config.table_url, config.storage_options.clone()).await?;
    tracing::info!(table = %table.url(), version = ?table.version(), "spans table open");
    let (stop_upkeep, upkeep_stopped) = tokio::sync::watch::channel(false);
    let upkeep = match config.optimize_interval {
        Some(interval) => {
            // Its own handle on the table: compaction commits never wait behind (or delay) the append path.
            let own = commit::Table::open_or_create(&config.table_url, config.storage_options.clone()).await?;
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
