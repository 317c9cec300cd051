//! Any bytes as an `ExportTraceServiceRequest`, between two valid requests, in each table layout: the row builder
//! refuses them exactly when validation does, and then keeps no row of them (a request refused half-way is cut
//! back); accepted, they add exactly the rows validation counted. The columns always form a batch of the table
//! schema; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otel_delta::testing::one_span_request;
use otel_delta::{validate, Contract, Rows};

fuzz_target!(|data: &[u8]| {
    let valid = one_span_request();
    let validated = validate(data);
    for contract in [Contract::spans_v1(), Contract::spans_v2()] {
        let mut columns = Rows::new(contract);
        assert_eq!(columns.append_request(&valid).map(|s| s.accepted), Ok(1));
        let appended = columns.append_request(data);
        assert_eq!(appended.is_ok(), validated.is_ok(), "{contract}: the row builder refuses what validation refuses");
        if let Ok(summary) = appended {
            assert_eq!(Ok(summary), validated, "{contract}: rows == spans validation accepted");
        }
        assert_eq!(columns.append_request(&valid).map(|s| s.accepted), Ok(1));
        let batch = columns.finish().expect("columns form a batch of the table schema");
        assert_eq!(batch.num_rows() as u64, 2 + appended.map_or(0, |s| s.accepted), "{contract}");
    }
});
