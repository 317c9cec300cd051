//! Any bytes as an `ExportTraceServiceRequest`, between two valid requests: the row builder refuses them exactly
//! when validation does, and then keeps no row of them (a request refused half-way is cut back); accepted, they
//! add exactly the rows validation counted. The columns always form a batch of the table schema; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otel_delta::batch::columns::SpanColumns;
use otel_delta::decode::{self, wire::Writer};

/// One storable span (16-byte trace id, 8-byte span id) in one scope in one resource.
fn valid_request() -> Vec<u8> {
    let mut span = Writer::new();
    span.bytes_field(1, &[1; 16]);
    span.bytes_field(2, &[2; 8]);
    let mut scope_spans = Writer::new();
    scope_spans.bytes_field(2, &span.buf);
    let mut resource_spans = Writer::new();
    resource_spans.bytes_field(2, &scope_spans.buf);
    let mut request = Writer::new();
    request.bytes_field(1, &resource_spans.buf);
    request.buf
}

fuzz_target!(|data: &[u8]| {
    let valid = valid_request();
    let mut columns = SpanColumns::new();
    assert_eq!(columns.append_request(&valid).map(|s| s.accepted), Ok(1));
    let appended = columns.append_request(data);
    let validated = decode::validate(data);
    assert_eq!(appended.is_ok(), validated.is_ok(), "the row builder refuses what validation refuses");
    if let Ok(summary) = appended {
        assert_eq!(Ok(summary), validated, "rows == spans validation accepted");
    }
    assert_eq!(columns.append_request(&valid).map(|s| s.accepted), Ok(1));
    let batch = columns.finish().expect("columns form a batch of the table schema");
    assert_eq!(batch.num_rows() as u64, 2 + appended.map_or(0, |s| s.accepted));
});
