//! receiver: OTLP/HTTP on hyper (HTTP/1.1 and HTTP/2, keep-alive).
//!
//! `POST /v1/traces` with `application/x-protobuf` (media-type parameters ignored), optionally gzip-encoded.
//! Limits are checked before work: the declared and the actual (decompressed) body size against
//! `max_request_bytes` (413), then admission into the pipeline (503 + Retry-After when full). The answer waits
//! for the request's commit (see [`crate::pipeline`]). `GET /` and `GET /health` answer 200 once serving.

pub mod body;
pub mod response;

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::pipeline::{ExportError, Submitter};
use body::Encoding;
use response::{ReceiveError, PROTOBUF};

/// Receiver limits.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub max_request_bytes: u64,
    pub retry_after: Duration,
    /// How long shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
}

struct State {
    /// Taken at shutdown, which lets the pipeline drain even if a connection outlives the drain timeout.
    submitter: RwLock<Option<Submitter>>,
    config: HttpConfig,
}

/// Serve OTLP/HTTP on `listener` until `shutdown` resolves; then stop accepting, let in-flight requests finish
/// (up to the drain timeout) and drop the submitter.
pub async fn serve(
    listener: TcpListener,
    submitter: Submitter,
    config: HttpConfig,
    shutdown: impl Future<Output = ()>,
) {
    let state = Arc::new(State { submitter: RwLock::new(Some(submitter)), config });
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let service = service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(route(req, &state).await) }
                });
                let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned());
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let drain = state.config.drain_timeout;
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!(?drain, "connections still open after the drain timeout");
    }
    if let Ok(mut submitter) = state.submitter.write() {
        submitter.take();
    };
}

async fn route(req: Request<Incoming>, state: &State) -> Response<Full<Bytes>> {
    let retry_after = state.config.retry_after;
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/" | "/health") => response::health(),
        (&Method::POST, "/v1/traces") => match export(req, state).await {
            Ok(response) => response,
            Err(e) => {
                tracing::debug!(error = %e, "export refused");
                e.into_response(retry_after)
            }
        },
        (method, "/v1/traces") => ReceiveError::MethodNotAllowed(method.to_string()).into_response(retry_after),
        (_, path) => ReceiveError::NotFound(path.to_owned()).into_response(retry_after),
    }
}

async fn export(req: Request<Incoming>, state: &State) -> Result<Response<Full<Bytes>>, ReceiveError> {
    let limit = state.config.max_request_bytes;
    let headers = req.headers();
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if media_type(content_type) != PROTOBUF {
        return Err(ReceiveError::UnsupportedMediaType(content_type.to_owned()));
    }
    let encoding = Encoding::from_header(headers.get(CONTENT_ENCODING).and_then(|v| v.to_str().ok()))?;
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ReceiveError::TooLarge { limit });
    }
    let raw = body::read_limited(req.into_body(), limit).await?;
    let body = body::decode(encoding, raw, limit)?;
    if body.is_empty() {
        return Ok(response::export_ok(&Default::default()));
    }
    let answer = {
        let submitter =
            state.submitter.read().map_err(|_| ExportError::Unavailable("receiver state poisoned".into()))?;
        let submitter =
            submitter.as_ref().ok_or_else(|| ExportError::Unavailable("the collector is shutting down".into()))?;
        submitter.submit(body)?
    };
    match answer.await {
        Ok(Ok(accepted)) => Ok(response::export_ok(&accepted)),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(ExportError::Unavailable("the request was dropped before its commit".into()).into()),
    }
}

/// `type/subtype` of a Content-Type, lowercased, without parameters.
fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_ignores_parameters_and_case() {
        assert_eq!(media_type("Application/X-Protobuf; charset=utf-8"), PROTOBUF);
        assert_eq!(media_type(""), "");
    }
}
