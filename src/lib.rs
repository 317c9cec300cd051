//! otel-delta: OpenTelemetry traces over OTLP into a Delta Lake table, acknowledged only once durable.
//!
//! Data flow, one module per step:
//! [`receiver`] → [`decode`] → [`batch`] (Arrow columns) → [`encode`] (Parquet) → [`store`] (object store)
//! → [`commit`] (Delta log); [`pipeline`] carries a request through them and answers it after its commit.

pub mod batch;
pub mod commit;
pub mod config;
pub mod decode;
pub mod encode;
pub mod pipeline;
pub mod receiver;
pub mod store;

use std::future::Future;

use tokio::net::TcpListener;

pub use config::{Config, ServeArgs};

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
    let (submitter, drain, pipeline) = pipeline::Pipeline::start(table, &config.pipeline)?;
    let shutdown = async move {
        shutdown.await;
        // Requests waiting for their commit are answered now, not at the flush interval.
        drain.now();
    };
    receiver::serve(listeners, submitter, config.http.clone(), shutdown).await;
    pipeline.join().await;
    Ok(())
}
