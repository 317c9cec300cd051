//! otel-delta-icount: the CPU path of one worker (decode → Arrow columns → Parquet zstd:1) on a fixed input, for
//! an instruction-count regression guard under callgrind. Instruction counts are repeatable on a noisy shared
//! machine where wall-clock time is not.
//!
//! `perf/icount.sh` builds this with the `icount` profile, runs it under
//! `valgrind --tool=callgrind --toggle-collect=*icount_pipeline*` (only the pipeline is counted, not the input
//! generation), and compares the total with `perf/icount-baseline.txt`. With the argument `v2` it builds the v2
//! layout's rows instead (baseline `perf/icount-baseline-v2.txt`); with `logs-v1` or `logs-v2`, the logs table's
//! rows of the `logs` workload (baselines `perf/icount-baseline-logs-v1.txt`, `-logs-v2.txt`). A second argument
//! (`small`, `large`, `mixed`) keeps only that span profile's input, to see where a difference between layouts comes
//! from.

mod workload;

use otel_delta::{Codec, Contract, Layout, ParquetFile, Rows};

/// The measured part: every request validated, appended, one record batch per profile, one Parquet file.
#[inline(never)]
fn icount_pipeline(contract: &'static Contract, requests: &[workload::Request]) -> (u64, usize) {
    let mut columns = Rows::new(contract);
    let mut rows = 0;
    for r in requests {
        // As a worker does: the request is checked while its rows are built.
        rows += columns.append_request(&r.body).expect("the fixed workload is valid").accepted;
    }
    let batch = columns.finish().expect("batch");
    let mut file = ParquetFile::new(contract, Codec::Zstd(1)).expect("writer");
    file.write(&batch).expect("write");
    (rows, file.finish().expect("finish").tail.len())
}

fn main() {
    let (contract, logs) = match std::env::args().nth(1).as_deref() {
        Some("v2") => (Contract::spans_v2(), false),
        Some("logs-v1") => (Contract::logs(Layout::V1), true),
        Some("logs-v2") => (Contract::logs(Layout::V2), true),
        _ => (Contract::spans_v1(), false),
    };
    if logs {
        // 4 requests of 512 records: about 600 KB.
        let requests = workload::pool(workload::Profile::Logs, 4, 42);
        let (rows, bytes) = icount_pipeline(contract, std::hint::black_box(&requests));
        println!("rows {rows} parquet_bytes {bytes}");
        return;
    }
    let only = std::env::args().nth(2).map(|p| workload::Profile::parse(&p).expect("small, large or mixed"));
    // About 1 MB per profile, deterministic.
    let mut total = (0, 0);
    for (profile, count) in
        [(workload::Profile::Small, 4), (workload::Profile::Large, 1), (workload::Profile::Mixed, 1)]
    {
        if only.is_some_and(|only| only != profile) {
            continue;
        }
        let requests = workload::pool(profile, count, 42);
        let (rows, bytes) = icount_pipeline(contract, std::hint::black_box(&requests));
        total.0 += rows;
        total.1 += bytes;
    }
    println!("rows {} parquet_bytes {}", total.0, total.1);
}
