//! Every answer the receiver gives, and the one place errors become HTTP and gRPC statuses.
//!
//! OTLP rules: success is an `ExportTraceServiceResponse` in the request's encoding (partial success set only when
//! spans were rejected); every HTTP 4xx/5xx body is a `google.rpc.Status` in the request's encoding; retryable
//! failures are HTTP 503 with `Retry-After` or gRPC UNAVAILABLE with `RetryInfo` (clients retry only
//! 429/502/503/504 and UNAVAILABLE-like codes, so a storage failure is never a 500 or INTERNAL); an oversized
//! request is 413 / RESOURCE_EXHAUSTED without `RetryInfo` (not retryable).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{ALLOW, CONNECTION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full};

use crate::ack::{Accepted, ExportError};
use crate::decode::wire::Writer;
use crate::decode::{DecodeError, Format, Signal};
use crate::self_metrics::Transport;

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

pub(crate) const PROTOBUF: &str = "application/x-protobuf";
pub(crate) const JSON: &str = "application/json";
pub(crate) const GRPC: &str = "application/grpc";

/// The header (gRPC: the metadata key) a failed request's id travels in, both ways.
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// A failed request's id, in its log line, its `x-request-id` answer header and, for a failure inside the
/// collector, its message: the client's own `x-request-id` when it sent a usable one (so its logs and ours
/// meet), else a new random one.
pub(crate) struct RequestId(HeaderValue);

impl RequestId {
    /// Longest client id kept; a longer or non-printable one is replaced.
    const MAX_LEN: usize = 64;

    pub(crate) fn new(sent: Option<&HeaderValue>) -> RequestId {
        let usable = |v: &&HeaderValue| {
            let b = v.as_bytes();
            !b.is_empty() && b.len() <= Self::MAX_LEN && b.iter().all(|c| c.is_ascii_graphic())
        };
        match sent.filter(usable) {
            Some(value) => RequestId(value.clone()),
            None => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                RequestId(HeaderValue::from_str(&id[..16]).unwrap_or(HeaderValue::from_static("-")))
            }
        }
    }

    fn as_str(&self) -> &str {
        // Only visible ASCII gets in (see `new`).
        self.0.to_str().unwrap_or("-")
    }
}

/// Why a request was not acknowledged, as the receiver sees it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReceiveError {
    #[error("unsupported Content-Type {0:?}: send application/x-protobuf or application/json")]
    UnsupportedMediaType(String),
    #[error("unsupported Content-Encoding {0:?}: send identity, gzip, deflate, zstd, snappy or lz4")]
    UnsupportedEncoding(String),
    #[error("request exceeds the limit of {limit} bytes (after decompression)")]
    TooLarge { limit: u64 },
    #[error("reading the request body: {0}")]
    BadBody(String),
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(std::time::Duration),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error("no such path: {0}; OTLP goes to POST /v1/traces and /v1/logs")]
    NotFound(String),
    #[error("method {0} not allowed; use POST")]
    MethodNotAllowed(String),
    #[error(
        "unknown gRPC method {0}; this server implements opentelemetry.proto.collector.trace.v1.TraceService/Export \
         and opentelemetry.proto.collector.logs.v1.LogsService/Export"
    )]
    UnknownGrpcMethod(String),
    #[error("missing or unknown bearer token: send Authorization: Bearer <token>")]
    Unauthenticated,
}

/// gRPC status codes.
pub(crate) mod code {
    pub(crate) const OK: u32 = 0;
    pub(crate) const INVALID_ARGUMENT: u32 = 3;
    pub(crate) const DEADLINE_EXCEEDED: u32 = 4;
    pub(crate) const NOT_FOUND: u32 = 5;
    pub(crate) const RESOURCE_EXHAUSTED: u32 = 8;
    pub(crate) const UNIMPLEMENTED: u32 = 12;
    pub(crate) const UNAVAILABLE: u32 = 14;
    pub(crate) const UNAUTHENTICATED: u32 = 16;
}

impl ReceiveError {
    /// HTTP status, gRPC code, and whether the client should retry (after `Retry-After` / `RetryInfo`).
    fn status(&self) -> (StatusCode, u32, bool) {
        match self {
            ReceiveError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, code::INVALID_ARGUMENT, false)
            }
            ReceiveError::UnsupportedEncoding(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, code::UNIMPLEMENTED, false),
            ReceiveError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, code::RESOURCE_EXHAUSTED, false),
            ReceiveError::Export(ExportError::Invalid(DecodeError::RowsTooLarge { .. })) => {
                (StatusCode::PAYLOAD_TOO_LARGE, code::RESOURCE_EXHAUSTED, false)
            }
            ReceiveError::BadBody(_) | ReceiveError::Export(ExportError::Invalid(_)) => {
                (StatusCode::BAD_REQUEST, code::INVALID_ARGUMENT, false)
            }
            ReceiveError::Export(ExportError::Overloaded | ExportError::Unavailable(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, code::UNAVAILABLE, true)
            }
            ReceiveError::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, code::DEADLINE_EXCEEDED, false),
            ReceiveError::NotFound(_) => (StatusCode::NOT_FOUND, code::NOT_FOUND, false),
            ReceiveError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, code::UNIMPLEMENTED, false),
            ReceiveError::UnknownGrpcMethod(_) | ReceiveError::Export(ExportError::SignalOff(_)) => {
                (StatusCode::NOT_FOUND, code::UNIMPLEMENTED, false)
            }
            ReceiveError::Unauthenticated => (StatusCode::UNAUTHORIZED, code::UNAUTHENTICATED, false),
        }
    }

    /// The HTTP status this error is answered with (for gRPC too: the self-metrics' `status` label).
    pub(crate) fn http_status(&self) -> u16 {
        self.status().0.as_u16()
    }

    /// Why, in one word, for the self-metrics' `reason` label (a handful of values, never from the request).
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            ReceiveError::UnsupportedMediaType(_) => "unsupported_media_type",
            ReceiveError::UnsupportedEncoding(_) => "unsupported_encoding",
            ReceiveError::TooLarge { .. } => "too_large",
            ReceiveError::Export(ExportError::Invalid(DecodeError::RowsTooLarge { .. })) => "rows_too_large",
            ReceiveError::BadBody(_) => "bad_body",
            ReceiveError::Export(ExportError::Invalid(_)) => "invalid",
            ReceiveError::Export(ExportError::Overloaded) => "overloaded",
            ReceiveError::Export(ExportError::Unavailable(_)) => "unavailable",
            ReceiveError::BodyTimeout(_) => "body_timeout",
            ReceiveError::NotFound(_) => "not_found",
            ReceiveError::MethodNotAllowed(_) => "method_not_allowed",
            ReceiveError::UnknownGrpcMethod(_) => "unknown_grpc_method",
            ReceiveError::Export(ExportError::SignalOff(_)) => "signal_off",
            ReceiveError::Unauthenticated => "unauthenticated",
        }
    }

    /// A failure inside the collector (storage, a bug) rather than something the client or the load did.
    fn is_internal(&self) -> bool {
        matches!(self, ReceiveError::Export(ExportError::Unavailable(failure)) if failure.is_internal())
    }

    /// The failed request's one log line: its id, who sent it, how it was answered and why. A failure inside the
    /// collector is a warning and carries the whole error; the rest (the client's mistakes, overload, shutdown)
    /// are info, so a misbehaving client cannot turn the log into warnings.
    pub(crate) fn log(&self, id: &RequestId, peer: SocketAddr, transport: Transport) {
        let (request_id, status, reason, transport) =
            (id.as_str(), self.http_status(), self.reason(), transport.label());
        if self.is_internal() {
            tracing::warn!(request_id, %peer, transport, status, reason, error = %self, "request failed");
        } else {
            tracing::info!(request_id, %peer, transport, status, reason, error = %self, "request failed");
        }
    }

    /// What the client is told. A failure inside the collector gets a generic reason with the request id: paths
    /// and endpoints stay in the log line (see [`ReceiveError::log`]), which the id finds. Everything else is
    /// the client's to act on and is said as is.
    fn client_message(&self, id: &RequestId) -> String {
        if self.is_internal() {
            format!("the records could not be stored; retry later (request id {})", id.as_str())
        } else {
            self.to_string()
        }
    }

    /// The OTLP/HTTP answer: a `google.rpc.Status` body in `format`, `Retry-After` when the client should come
    /// back.
    pub(crate) fn into_http(self, format: Format, retry_after: Duration, id: &RequestId) -> Response<Body> {
        let (status, grpc_code, retryable) = self.status();
        let message = self.client_message(id);
        let body = match format {
            Format::Protobuf => rpc_status(grpc_code, &message, None),
            Format::Json => serde_json::json!({"code": grpc_code, "message": message}).to_string().into_bytes(),
        };
        let mut response = full(status, format, body);
        response.headers_mut().insert(REQUEST_ID, id.0.clone());
        if retryable {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
        }
        if let ReceiveError::Unauthenticated = self {
            response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"otel-delta\""));
        }
        if let ReceiveError::MethodNotAllowed(_) = self {
            response.headers_mut().insert(ALLOW, HeaderValue::from_static("POST"));
        }
        if let ReceiveError::BodyTimeout(_) = self {
            // The rest of a stalled body may still come: the connection cannot carry another request.
            response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }

    /// The OTLP/gRPC answer: a trailers-only response with `grpc-status`, `grpc-message` and, when the client
    /// should retry, a `RetryInfo` in `grpc-status-details-bin`.
    pub(crate) fn into_grpc(self, retry_after: Duration, id: &RequestId) -> Response<Body> {
        let (_, grpc_code, retryable) = self.status();
        let message = self.client_message(id);
        let mut response = Response::new(empty());
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(GRPC));
        headers.insert(REQUEST_ID, id.0.clone());
        grpc_status_headers(headers, grpc_code, &message, retryable.then_some(retry_after));
        response
    }
}

fn grpc_status_headers(headers: &mut HeaderMap, grpc_code: u32, message: &str, retry: Option<Duration>) {
    headers.insert("grpc-status", HeaderValue::from(grpc_code));
    if grpc_code == code::OK {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(&percent_encode(message)) {
        headers.insert("grpc-message", value);
    }
    let details = rpc_status(grpc_code, message, retry);
    let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(details);
    if let Ok(value) = HeaderValue::from_str(&encoded) {
        headers.insert("grpc-status-details-bin", value);
    }
}

/// gRPC's `grpc-message` encoding: percent-encode bytes outside printable ASCII, and `%` itself.
fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A `google.rpc.Status`, with a `google.rpc.RetryInfo` detail when `retry` is set.
fn rpc_status(grpc_code: u32, message: &str, retry: Option<Duration>) -> Vec<u8> {
    let mut status = Writer::new();
    status.varint_field(1, u64::from(grpc_code));
    status.bytes_field(2, message.as_bytes());
    if let Some(delay) = retry {
        let mut duration = Writer::new();
        duration.varint_field(1, delay.as_secs().max(1));
        let mut retry_info = Writer::new();
        retry_info.bytes_field(1, &duration.buf);
        let mut any = Writer::new();
        any.bytes_field(1, b"type.googleapis.com/google.rpc.RetryInfo");
        any.bytes_field(2, &retry_info.buf);
        status.bytes_field(3, &any.buf);
    }
    status.buf
}

/// The export response for `accepted`, in protobuf: `ExportTraceServiceResponse` and `ExportLogsServiceResponse`
/// are the same message but for names (`partial_success` = 1, its `rejected_*` = 1 and `error_message` = 2).
fn export_response(accepted: &Accepted) -> Vec<u8> {
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
    body.buf
}

/// HTTP `200` with the export response of `signal` in `format`; `partial_success` only when records were
/// rejected.
pub(crate) fn export_ok(accepted: &Accepted, signal: Signal, format: Format) -> Response<Body> {
    let body = match format {
        Format::Protobuf => export_response(accepted),
        Format::Json if accepted.rejected == 0 && accepted.message.is_none() => b"{}".to_vec(),
        Format::Json => {
            let rejected = match signal {
                Signal::Traces => "rejectedSpans",
                Signal::Logs => "rejectedLogRecords",
            };
            serde_json::json!({"partialSuccess": {
                rejected: accepted.rejected.to_string(),
                "errorMessage": accepted.message.clone().unwrap_or_default(),
            }})
            .to_string()
            .into_bytes()
        }
    };
    full(StatusCode::OK, format, body)
}

/// gRPC OK: one length-prefixed `ExportTraceServiceResponse`, then the `grpc-status: 0` trailer.
pub(crate) fn grpc_ok(accepted: &Accepted) -> Response<Body> {
    let message = export_response(accepted);
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    let mut trailers = HeaderMap::new();
    grpc_status_headers(&mut trailers, code::OK, "", None);
    let body = Full::new(Bytes::from(framed)).with_trailers(async move { Some(Ok(trailers)) });
    let mut response = Response::new(body.boxed_unsync());
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(GRPC));
    response
}

/// `/ready`: `200` `{"status":"ready"}`, or `503` `{"status":"unready","reason":…}` while exports cannot succeed.
pub(crate) fn ready(state: Result<(), String>) -> Response<Body> {
    match state {
        Ok(()) => full(StatusCode::OK, Format::Json, b"{\"status\":\"ready\"}".to_vec()),
        Err(reason) => {
            let body = serde_json::json!({"status": "unready", "reason": reason}).to_string().into_bytes();
            full(StatusCode::SERVICE_UNAVAILABLE, Format::Json, body)
        }
    }
}

/// `200` with `{"status":"ok"}`: the body the Python app this replaces answered, which deployed probes may
/// match on.
pub(crate) fn health() -> Response<Body> {
    full(StatusCode::OK, Format::Json, b"{\"status\":\"ok\"}".to_vec())
}

/// `204` to a CORS preflight.
pub(crate) fn no_content() -> Response<Body> {
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

fn empty() -> Body {
    Full::new(Bytes::new()).boxed_unsync()
}

fn full(status: StatusCode, format: Format, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *response.status_mut() = status;
    let content_type = match format {
        Format::Protobuf => PROTOBUF,
        Format::Json => JSON,
    };
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> RequestId {
        RequestId::new(None)
    }

    fn body_bytes(response: Response<Body>) -> Bytes {
        futures::executor::block_on(response.into_body().collect()).unwrap().to_bytes()
    }

    #[test]
    fn full_success_has_an_empty_body_and_partial_success_sets_fields() {
        let ok = export_ok(&Accepted::default(), Signal::Traces, Format::Protobuf);
        assert_eq!(ok.status(), StatusCode::OK);
        assert!(body_bytes(ok).is_empty());
        let accepted = Accepted { records: 1, rejected: 2, message: Some("bad".into()) };
        let partial = export_ok(&accepted, Signal::Logs, Format::Protobuf);
        // field 1 (len 7) { field 1 varint 2, field 2 "bad" }
        assert_eq!(&body_bytes(partial)[..], &[0x0a, 7, 0x08, 2, 0x12, 3, b'b', b'a', b'd']);
    }

    #[test]
    fn json_responses_follow_the_otlp_json_encoding() {
        assert_eq!(&body_bytes(export_ok(&Accepted::default(), Signal::Traces, Format::Json))[..], b"{}");
        let accepted = Accepted { records: 1, rejected: 3, message: Some("why".into()) };
        let partial = export_ok(&accepted, Signal::Traces, Format::Json);
        assert_eq!(partial.headers()[CONTENT_TYPE], JSON);
        let v: serde_json::Value = serde_json::from_slice(&body_bytes(partial)).unwrap();
        assert_eq!(v, serde_json::json!({"partialSuccess": {"rejectedSpans": "3", "errorMessage": "why"}}));
        let v: serde_json::Value =
            serde_json::from_slice(&body_bytes(export_ok(&accepted, Signal::Logs, Format::Json))).unwrap();
        assert_eq!(v, serde_json::json!({"partialSuccess": {"rejectedLogRecords": "3", "errorMessage": "why"}}));
        let err = ReceiveError::TooLarge { limit: 1 }.into_http(Format::Json, Duration::from_secs(1), &id());
        let v: serde_json::Value = serde_json::from_slice(&body_bytes(err)).unwrap();
        assert_eq!(v["code"], 8);
    }

    use crate::ack::Failure;

    #[test]
    fn retryable_errors_are_503_with_retry_after() {
        let r =
            ReceiveError::Export(ExportError::Overloaded).into_http(Format::Protobuf, Duration::from_secs(2), &id());
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[RETRY_AFTER], "2");
        let r = ReceiveError::Export(ExportError::Unavailable(Failure::new(std::io::Error::other("disk")))).into_http(
            Format::Protobuf,
            Duration::ZERO,
            &id(),
        );
        assert_eq!(r.headers()[RETRY_AFTER], "1");
        let r = ReceiveError::TooLarge { limit: 1 }.into_http(Format::Protobuf, Duration::from_secs(1), &id());
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(r.headers().get(RETRY_AFTER).is_none());
        let r = ReceiveError::MethodNotAllowed("GET".into()).into_http(Format::Protobuf, Duration::from_secs(1), &id());
        assert_eq!(r.headers()[ALLOW], "POST");
    }

    #[test]
    fn grpc_errors_carry_retry_info_only_when_retryable() {
        let r = ReceiveError::Export(ExportError::Overloaded).into_grpc(Duration::from_secs(3), &id());
        assert_eq!(r.headers()["grpc-status"], "14");
        assert!(r.headers().contains_key("grpc-status-details-bin"));
        let details = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(r.headers()["grpc-status-details-bin"].as_bytes())
            .unwrap();
        assert!(details.windows(9).any(|w| w == b"RetryInfo"));
        let r = ReceiveError::TooLarge { limit: 1 }.into_grpc(Duration::from_secs(3), &id());
        assert_eq!(r.headers()["grpc-status"], "8");
        let details = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(r.headers()["grpc-status-details-bin"].as_bytes())
            .unwrap();
        assert!(!details.windows(9).any(|w| w == b"RetryInfo"), "RESOURCE_EXHAUSTED must not be retryable");
        assert_eq!(percent_encode("100% é"), "100%25 %C3%A9");
    }

    #[test]
    fn a_failed_request_keeps_a_usable_client_id_and_gets_one_otherwise() {
        let sent = HeaderValue::from_static("client-7f3a");
        assert_eq!(RequestId::new(Some(&sent)).as_str(), "client-7f3a");
        for unusable in ["", "has space", &"x".repeat(65)] {
            let id = RequestId::new(Some(&HeaderValue::from_str(unusable).unwrap()));
            assert_eq!(id.as_str().len(), 16, "{unusable:?} replaced by a new id");
        }
        assert_ne!(RequestId::new(None).as_str(), RequestId::new(None).as_str());

        let sent = RequestId::new(Some(&sent));
        let r = ReceiveError::Export(ExportError::Unavailable(Failure::new(std::io::Error::other("/secret/path"))))
            .into_http(Format::Json, Duration::ZERO, &sent);
        assert_eq!(r.headers()[REQUEST_ID], "client-7f3a");
        let body = String::from_utf8(body_bytes(r).to_vec()).unwrap();
        assert!(body.contains("request id client-7f3a") && !body.contains("/secret/path"), "{body}");
        let r = ReceiveError::Unauthenticated.into_grpc(Duration::ZERO, &sent);
        assert_eq!(r.headers()[REQUEST_ID], "client-7f3a");
    }
}
