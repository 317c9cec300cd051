//! Every answer the receiver gives, and the one place errors become HTTP statuses.
//!
//! OTLP/HTTP rules: success is an `ExportTraceServiceResponse` (partial success set only when spans were
//! rejected); every 4xx/5xx body is a `google.rpc.Status`; retryable failures are 503 with `Retry-After`
//! (clients retry only 429/502/503/504, so a storage failure is never a 500).

use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::decode::wire::Writer;
use crate::pipeline::{Accepted, ExportError};

pub const PROTOBUF: &str = "application/x-protobuf";

/// Why a request was not acknowledged, as the receiver sees it.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("unsupported Content-Type {0:?}: send application/x-protobuf")]
    UnsupportedMediaType(String),
    #[error("unsupported Content-Encoding {0:?}: send identity or gzip")]
    UnsupportedEncoding(String),
    #[error("request body exceeds the limit of {limit} bytes (after decompression)")]
    TooLarge { limit: u64 },
    #[error("reading the request body: {0}")]
    BadBody(String),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error("no such path: {0}; OTLP traces go to POST /v1/traces")]
    NotFound(String),
    #[error("method {0} not allowed; use POST")]
    MethodNotAllowed(String),
}

/// gRPC status codes used in `google.rpc.Status.code`.
mod code {
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const NOT_FOUND: i32 = 5;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const UNAVAILABLE: i32 = 14;
}

impl ReceiveError {
    fn status(&self) -> (StatusCode, i32) {
        match self {
            ReceiveError::UnsupportedMediaType(_) | ReceiveError::UnsupportedEncoding(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, code::INVALID_ARGUMENT)
            }
            ReceiveError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, code::RESOURCE_EXHAUSTED),
            ReceiveError::BadBody(_) | ReceiveError::Export(ExportError::Invalid(_)) => {
                (StatusCode::BAD_REQUEST, code::INVALID_ARGUMENT)
            }
            ReceiveError::Export(ExportError::Overloaded | ExportError::Unavailable(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, code::UNAVAILABLE)
            }
            ReceiveError::NotFound(_) => (StatusCode::NOT_FOUND, code::NOT_FOUND),
            ReceiveError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, code::UNIMPLEMENTED),
        }
    }

    /// The HTTP answer: a `google.rpc.Status` body, `Retry-After` when the client should come back.
    pub fn into_response(self, retry_after: Duration) -> Response<Full<Bytes>> {
        let (status, grpc_code) = self.status();
        let mut body = Writer::new();
        body.varint_field(1, grpc_code as u64);
        body.bytes_field(2, self.to_string().as_bytes());
        let mut response = protobuf_response(status, body.buf);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let secs = retry_after.as_secs().max(1);
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        if let ReceiveError::MethodNotAllowed(_) = self {
            response.headers_mut().insert(ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

/// `200` with an `ExportTraceServiceResponse`; `partial_success` only when spans were rejected.
pub fn export_ok(accepted: &Accepted) -> Response<Full<Bytes>> {
    let mut body = Writer::new();
    if accepted.rejected > 0 || accepted.message.is_some() {
        let mut partial = Writer::new();
        if accepted.rejected > 0 {
            partial.varint_field(1, accepted.rejected);
        }
        if let Some(message) = &accepted.message {
            partial.bytes_field(2, message.as_bytes());
        }
        body.bytes_field(1, &partial.buf);
    }
    protobuf_response(StatusCode::OK, body.buf)
}

/// `200` with `{"status":"ok"}`, as the original app's health check.
pub fn health() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"{\"status\":\"ok\"}")));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn protobuf_response(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(PROTOBUF));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_success_has_an_empty_body_and_partial_success_sets_fields() {
        let ok = export_ok(&Accepted::default());
        assert_eq!(ok.status(), StatusCode::OK);
        let partial = export_ok(&Accepted { rejected: 2, message: Some("bad".into()) });
        let body = partial.into_body();
        let bytes = futures::executor::block_on(http_body_util::BodyExt::collect(body)).unwrap().to_bytes();
        // field 1 (len 7) { field 1 varint 2, field 2 "bad" }
        assert_eq!(&bytes[..], &[0x0a, 7, 0x08, 2, 0x12, 3, b'b', b'a', b'd']);
    }

    #[test]
    fn retryable_errors_are_503_with_retry_after() {
        let r = ReceiveError::Export(ExportError::Overloaded).into_response(Duration::from_secs(2));
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[RETRY_AFTER], "2");
        let r = ReceiveError::Export(ExportError::Unavailable("disk".into())).into_response(Duration::ZERO);
        assert_eq!(r.headers()[RETRY_AFTER], "1");
        let r = ReceiveError::TooLarge { limit: 1 }.into_response(Duration::from_secs(1));
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(r.headers().get(RETRY_AFTER).is_none());
        let r = ReceiveError::MethodNotAllowed("GET".into()).into_response(Duration::from_secs(1));
        assert_eq!(r.headers()[ALLOW], "POST");
    }
}
