//! Any bytes as an OTLP/JSON request: the transcoder either refuses them or yields protobuf that the protobuf
//! decoder accepts (it writes only well-formed fields; only the nesting limit can still refuse), and the rows it
//! builds are exactly the spans validation accepted. Never a panic.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use otel_delta::{to_protobuf, validate, Contract, DecodeError, Format, Rows, Signal};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = to_protobuf(Signal::Traces, Format::Json, Bytes::copy_from_slice(data)) else { return };
    let mut columns = Rows::new(Contract::spans_v1());
    match columns.append_request(&body) {
        Ok(summary) => {
            assert_eq!(Ok(summary), validate(&body));
            assert_eq!(columns.finish().expect("a batch").num_rows() as u64, summary.accepted);
        }
        Err(DecodeError::TooDeep) => {}
        Err(e) => panic!("the transcoder wrote protobuf its own decoder refuses: {e}"),
    }
});
