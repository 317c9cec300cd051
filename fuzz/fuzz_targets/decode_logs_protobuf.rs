//! Any bytes as an `ExportLogsServiceRequest`, between two valid requests, in each logs table layout: the row
//! builder refuses them exactly when `validate_logs` does, and then keeps no row of them (a request refused
//! half-way is cut back); accepted, they add exactly the rows validation counted. The columns always form a batch
//! of the table schema; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otel_delta::testing::one_log_request;
use otel_delta::{validate_logs, Contract, Layout, Rows};

fuzz_target!(|data: &[u8]| {
    let valid = one_log_request();
    let validated = validate_logs(data);
    for contract in [Contract::logs(Layout::V1), Contract::logs(Layout::V2)] {
        let mut columns = Rows::new(contract);
        assert_eq!(columns.append_request(&valid).map(|s| s.accepted), Ok(1));
        let appended = columns.append_request(data);
        assert_eq!(appended.is_ok(), validated.is_ok(), "{contract}: the row builder refuses what validation refuses");
        if let Ok(summary) = appended {
            assert_eq!(Ok(summary), validated, "{contract}: rows == log records validation accepted");
        }
        assert_eq!(columns.append_request(&valid).map(|s| s.accepted), Ok(1));
        let batch = columns.finish().expect("columns form a batch of the table schema");
        assert_eq!(batch.num_rows() as u64, 2 + appended.map_or(0, |s| s.accepted), "{contract}");
    }
});
