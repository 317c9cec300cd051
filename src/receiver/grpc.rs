//! OTLP/gRPC: the unary `opentelemetry.proto.collector.trace.v1.TraceService/Export` and
//! `opentelemetry.proto.collector.logs.v1.LogsService/Export`, served by the same hyper server (HTTP/2) as OTLP/HTTP, so gRPC and HTTP may share a port (requests are told apart by `application/grpc`).
//!
//! The message is taken as bytes from its length-prefixed frame and handed to our own decoder: no generated
//! code, no copy. Limits: the message is refused with RESOURCE_EXHAUSTED when its frame, or its decompressed
//! bytes (`grpc-encoding`), exceed the request limit (the OTLP default is 64 MiB, not gRPC's usual 4 MiB).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use http::Request;
use hyper::body::Incoming;

use super::body::{self, Encoding};
use super::response::{self, Body, ReceiveError, RequestId, REQUEST_ID};
use super::State;
use crate::decode::{Format, Signal};
use crate::self_metrics::Transport;

/// The traces method.
pub(crate) const TRACES_METHOD: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// The logs method.
pub(crate) const LOGS_METHOD: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// The signal whose export method `path` is.
fn signal_of_method(path: &str) -> Option<Signal> {
    match path {
        TRACES_METHOD => Some(Signal::Traces),
        LOGS_METHOD => Some(Signal::Logs),
        _ => None,
    }
}

/// Answer one gRPC call.
pub(super) async fn call(req: Request<Incoming>, state: &State, peer: SocketAddr) -> http::Response<Body> {
    let retry_after = state.config.retry_after;
    let started = Instant::now();
    let sent_id = req.headers().get(REQUEST_ID).cloned();
    let signal = signal_of_method(req.uri().path());
    match export(req, signal, state).await {
        Ok(accepted) => {
            let (stored, rejected, took) = (accepted.records, accepted.rejected, started.elapsed());
            state.metrics.exported(Transport::Grpc, signal.unwrap_or(Signal::Traces), stored, rejected, took);
            response::grpc_ok(&accepted)
        }
        Err(e) => {
            let id = RequestId::new(sent_id.as_ref());
            e.log(&id, peer, Transport::Grpc);
            state.metrics.export_refused(Transport::Grpc, e.http_status(), e.reason(), started.elapsed());
            e.into_grpc(retry_after, &id)
        }
    }
}

async fn export(
    req: Request<Incoming>,
    signal: Option<Signal>,
    state: &State,
) -> Result<crate::ack::Accepted, ReceiveError> {
    let Some(signal) = signal else {
        return Err(ReceiveError::UnknownGrpcMethod(req.uri().path().to_owned()));
    };
    state.authorize(req.headers())?;
    state.takes(signal)?;
    let limit = state.config.max_request_bytes;
    let encoding = Encoding::from_header(req.headers().get("grpc-encoding").and_then(|v| v.to_str().ok()))?;
    // Admission before the body is read; chunks are charged as they arrive (gRPC declares no length up front).
    let mut permit = state.reserve(signal, 0)?;
    // The frame header is 5 bytes; a unary request holds exactly one message.
    let framed =
        body::read_limited(req.into_body(), limit.saturating_add(5), state.config.body_timeout, &mut permit).await?;
    let (message, compressed) = unframe(framed, encoding, limit)?;
    let message = match compressed {
        Some(encoding) => body::decompress_charged(encoding, message, limit, &mut permit).await?,
        None => message,
    };
    state.submit(signal, message, Format::Protobuf, permit).await
}

/// The message of a single length-prefixed gRPC frame, and the encoding to undo if its flag says it is
/// compressed.
fn unframe(framed: Bytes, encoding: Encoding, limit: u64) -> Result<(Bytes, Option<Encoding>), ReceiveError> {
    if framed.is_empty() {
        // No message at all: an empty request.
        return Ok((Bytes::new(), None));
    }
    if framed.len() < 5 {
        return Err(ReceiveError::BadBody("gRPC frame shorter than its 5-byte header".into()));
    }
    let compressed = framed[0];
    let len = u32::from_be_bytes([framed[1], framed[2], framed[3], framed[4]]) as u64;
    if len > limit {
        return Err(ReceiveError::TooLarge { limit });
    }
    if framed.len() as u64 != 5 + len {
        return Err(ReceiveError::BadBody(format!(
            "gRPC frame declares {len} bytes but carries {}; a unary call sends one message",
            framed.len() - 5
        )));
    }
    let message = framed.slice(5..);
    match (compressed, encoding) {
        (0, _) => Ok((message, None)),
        (1, Encoding::Identity) => {
            Err(ReceiveError::BadBody("gRPC message flagged compressed without a grpc-encoding".into()))
        }
        (1, encoding) => Ok((message, Some(encoding))),
        (flag, _) => Err(ReceiveError::BadBody(format!("gRPC frame has unknown flag {flag}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(flag: u8, message: &[u8]) -> Bytes {
        let mut out = vec![flag];
        out.extend_from_slice(&(message.len() as u32).to_be_bytes());
        out.extend_from_slice(message);
        Bytes::from(out)
    }

    #[test]
    fn frames_are_unwrapped_and_checked() {
        assert_eq!(unframe(frame(0, b"abc"), Encoding::Identity, 10).unwrap(), (Bytes::from_static(b"abc"), None));
        assert!(unframe(Bytes::new(), Encoding::Identity, 10).unwrap().0.is_empty());
        assert!(matches!(unframe(frame(0, b"abc"), Encoding::Identity, 2), Err(ReceiveError::TooLarge { .. })));
        assert!(matches!(unframe(Bytes::from_static(b"\0\0"), Encoding::Identity, 10), Err(ReceiveError::BadBody(_))));
        let mut two = frame(0, b"a").to_vec();
        two.extend_from_slice(&frame(0, b"b"));
        assert!(matches!(unframe(Bytes::from(two), Encoding::Identity, 10), Err(ReceiveError::BadBody(_))));
        assert!(matches!(unframe(frame(1, b"abc"), Encoding::Identity, 10), Err(ReceiveError::BadBody(_))));
        assert!(matches!(unframe(frame(7, b"abc"), Encoding::Identity, 10), Err(ReceiveError::BadBody(_))));
    }

    #[test]
    fn compressed_frames_name_their_encoding() {
        let (message, encoding) = unframe(frame(1, b"zz"), Encoding::Gzip, 10).unwrap();
        assert_eq!((&message[..], encoding), (&b"zz"[..], Some(Encoding::Gzip)));
    }
}
