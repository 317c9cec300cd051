//! Any bytes as a gzip body: decompression never yields more than the limit and never panics.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use otel_delta::{decompress, Encoding};

const LIMIT: u64 = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    if let Ok(out) = decompress(Encoding::Gzip, Bytes::copy_from_slice(data), LIMIT) {
        assert!(out.len() as u64 <= LIMIT);
    }
});
