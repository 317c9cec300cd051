//! Any bytes as an `ExportTraceServiceRequest`: validation either refuses them or accepts them, and then the
//! row builder takes them without error, builds exactly the rows validation counted, and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otel_delta::batch::columns::SpanColumns;
use otel_delta::decode;

fuzz_target!(|data: &[u8]| {
    let Ok(summary) = decode::validate(data) else { return };
    let mut columns = SpanColumns::new();
    let added = columns.append_request(data).expect("a validated request appends");
    assert_eq!(added, summary.accepted, "rows == spans validation accepted");
    let batch = columns.finish().expect("columns form a batch of the table schema");
    assert_eq!(batch.num_rows() as u64, added);
});
