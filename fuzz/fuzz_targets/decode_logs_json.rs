//! Any bytes as an OTLP/JSON logs request: the transcoder either refuses them or yields protobuf that the logs
//! decoder accepts (it writes only well-formed fields; only the nesting limit can still refuse), and the rows it
//! builds are exactly the log records validation accepted, in each layout. Never a panic.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use otel_delta::{to_protobuf, validate_logs, Contract, DecodeError, Format, Layout, Rows, Signal};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = to_protobuf(Signal::Logs, Format::Json, Bytes::copy_from_slice(data)) else { return };
    for contract in [Contract::logs(Layout::V1), Contract::logs(Layout::V2)] {
        let mut columns = Rows::new(contract);
        match columns.append_request(&body) {
            Ok(summary) => {
                assert_eq!(Ok(summary), validate_logs(&body));
                assert_eq!(columns.finish().expect("a batch").num_rows() as u64, summary.accepted);
            }
            Err(DecodeError::TooDeep) => {}
            Err(e) => panic!("{contract}: the transcoder wrote protobuf its own decoder refuses: {e}"),
        }
    }
});
