//! Object store retries, counted for the self-metrics. The store client (`object_store`) retries failed requests
//! itself (`max_retries`, `retry_timeout`) and tells nobody but its log: one INFO event per retry, with the target
//! [`RETRY_TARGET`]. [`StoreRetries`] is a tracing layer that counts those events, whatever the log filter lets
//! through; the binary installs it beside its log output. Process-wide, like the store clients it counts.

use std::sync::atomic::{AtomicU64, Ordering};

use tracing::Subscriber;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, Filter, Layer};

/// Where `object_store` logs a retry (its `client::retry` module).
const RETRY_TARGET: &str = "object_store::client::retry";

static RETRIES: AtomicU64 = AtomicU64::new(0);

/// Object store requests retried since the process started (every store client in it), as far as a
/// [`StoreRetries`] layer is installed.
pub(crate) fn store_retries() -> u64 {
    RETRIES.load(Ordering::Relaxed)
}

/// A tracing layer counting the object store client's retries (see the module docs). Add it to the subscriber
/// with [`StoreRetries::layer`]: it is filtered to the retry events alone, so every other event stays disabled at
/// its call site for it.
#[derive(Debug, Default, Clone, Copy)]
pub struct StoreRetries;

impl StoreRetries {
    /// The layer with its own filter (the retry target at INFO and above).
    pub fn layer<S>() -> impl Layer<S> + Send + Sync
    where
        S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        StoreRetries.with_filter(StoreRetries::filter::<S>())
    }

    fn filter<S: Subscriber>() -> impl Filter<S> + Send + Sync {
        Targets::new().with_target(RETRY_TARGET, LevelFilter::INFO)
    }
}

impl<S: Subscriber> Layer<S> for StoreRetries {
    fn on_event(&self, _event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        RETRIES.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use object_store::aws::AmazonS3Builder;
    use object_store::{ObjectStoreExt as _, RetryConfig};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tracing_subscriber::layer::SubscriberExt as _;

    /// A real S3 client against a loopback server that answers every request 503: each retry it makes is counted,
    /// and events of other targets are not.
    #[test]
    fn the_store_clients_retries_are_counted() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let subscriber = tracing_subscriber::registry().with(StoreRetries::layer());
        let _guard = tracing::subscriber::set_default(subscriber);
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                loop {
                    let Ok((mut socket, _)) = listener.accept().await else { return };
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        let _ = socket.read(&mut buf).await;
                        let answer =
                            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                        let _ = socket.write_all(answer.as_bytes()).await;
                    });
                }
            });
            let retry = RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(10),
                backoff: object_store::BackoffConfig {
                    init_backoff: Duration::from_millis(1),
                    max_backoff: Duration::from_millis(5),
                    base: 2.0,
                },
            };
            let store = AmazonS3Builder::new()
                .with_endpoint(format!("http://{addr}"))
                .with_allow_http(true)
                .with_bucket_name("b")
                .with_region("us-east-1")
                .with_access_key_id("k")
                .with_secret_access_key("s")
                .with_retry(retry)
                .build()
                .unwrap();
            let before = store_retries();
            tracing::info!(target: "object_store::client::other", "not a retry");
            assert!(store.get(&object_store::path::Path::from("x")).await.is_err());
            assert_eq!(store_retries() - before, 3, "max_retries retries, each counted once");
        });
    }
}
