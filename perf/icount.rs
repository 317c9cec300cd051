//! otel-delta-icount: the CPU path of one worker (decode → Arrow columns → Parquet zstd:1) on a fixed input, for
//! an instruction-count regression guard under callgrind. Instruction counts are repeatable on a noisy shared
//! machine where wall-clock time is not.
//!
//! `perf/icount.sh` builds this with the `icount` profile, runs it under
//! `valgrind --tool=callgrind --toggle-collect=*icount_pipeline*` (only the pipeline is counted, not the input
//! generation), and compares the total with `perf/icount-baseline.txt`.

mod workload;

use otel_delta::{Codec, Contract, ParquetFile, Rows};

/// The measured part: every request validated, appended, one record batch per profile, one Parquet file.
#[inline(never)]
fn icount_pipeline(requests: &[workload::Request]) -> (u64, usize) {
    let mut columns = Rows::new(Contract::spans_v1());
    let mut rows = 0;
    for r in requests {
        // As a worker does: the request is checked while its rows are built.
        rows += columns.append_request(&r.body).expect("the fixed workload is valid").accepted;
    }
    let batch = columns.finish().expect("batch");
    let mut file = ParquetFile::new(Contract::spans_v1(), Codec::Zstd(1)).expect("writer");
    file.write(&batch).expect("write");
    (rows, file.finish().expect("finish").tail.len())
}

fn main() {
    // About 1 MB per profile, deterministic.
    let mut total = (0, 0);
    for (profile, count) in
        [(workload::Profile::Small, 4), (workload::Profile::Large, 1), (workload::Profile::Mixed, 1)]
    {
        let requests = workload::pool(profile, count, 42);
        let (rows, bytes) = icount_pipeline(std::hint::black_box(&requests));
        total.0 += rows;
        total.1 += bytes;
    }
    println!("rows {} parquet_bytes {}", total.0, total.1);
}
