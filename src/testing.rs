//! Fixtures shared by the unit tests, the integration tests, the benches and the fuzz targets (feature
//! `testing`): hand-built OTLP requests, the internals the fake-workspace tests drive directly, an in-memory store.
//! Not part of the collector's API.

use bytes::Bytes;

pub use crate::decode::wire::Writer as ProtobufWriter;

/// Databricks internals, for tests against a fake workspace.
pub mod databricks {
    pub use crate::databricks::zerobus::derive_endpoint as zerobus_endpoint;
    pub use crate::databricks::{mlflow, unity, Auth, DatabricksError, RetryPolicy, Workspace};
}

/// One storable span (16-byte trace id of 1s, 8-byte span id of 2s, nothing else) in one scope in one resource,
/// as an `ExportTraceServiceRequest`.
pub fn one_span_request() -> Bytes {
    Bytes::from(request_of_spans(&[span(&[1; 16], &[2; 8])]))
}

/// One storable log record (16-byte trace id of 1s, 8-byte span id of 2s, a string body) in one scope in one
/// resource, as an `ExportLogsServiceRequest`.
pub fn one_log_request() -> Bytes {
    let mut body = ProtobufWriter::new();
    body.bytes_field(1, b"hello");
    let mut record = ProtobufWriter::new();
    record.fixed64_field(1, 1_700_000_000_000_000_000);
    record.bytes_field(5, &body.buf);
    record.bytes_field(9, &[1; 16]);
    record.bytes_field(10, &[2; 8]);
    // ExportLogsServiceRequest { ResourceLogs { ScopeLogs { LogRecord } } }: the same nesting and field numbers as
    // the traces request.
    Bytes::from(request_of_spans(&[record.buf]))
}

/// One storable record of `signal`: [`one_span_request`] or [`one_log_request`].
pub fn one_request(signal: crate::decode::Signal) -> Bytes {
    match signal {
        crate::decode::Signal::Traces => one_span_request(),
        crate::decode::Signal::Logs => one_log_request(),
    }
}

/// A span message with these ids and no other field.
pub fn span(trace_id: &[u8], span_id: &[u8]) -> Vec<u8> {
    let mut span = ProtobufWriter::new();
    span.bytes_field(1, trace_id);
    span.bytes_field(2, span_id);
    span.buf
}

/// An `ExportTraceServiceRequest` holding these encoded spans in one scope of one resource.
pub fn request_of_spans(spans: &[Vec<u8>]) -> Vec<u8> {
    let mut scope_spans = ProtobufWriter::new();
    for span in spans {
        scope_spans.bytes_field(2, span);
    }
    let mut resource_spans = ProtobufWriter::new();
    resource_spans.bytes_field(2, &scope_spans.buf);
    let mut request = ProtobufWriter::new();
    request.bytes_field(1, &resource_spans.buf);
    request.buf
}
