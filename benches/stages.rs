//! One bench per CPU stage of the pipeline, on the three workload profiles of `benchmarking.md` (distinct
//! requests, generated before timing). Each reports bytes (of OTLP protobuf input) and elements (spans).
//!
//! - `decode`: `decode::validate`, the full zero-copy walk every request gets before any row is built.
//! - `columns`: validate + append rows to the Arrow builders + finish the record batch: what a worker does per
//!   request, without Parquet.
//! - `encode/<codec>`: Parquet encoding of ready record batches, per compression codec (the codec trade-off).
//! - `worker`: decode → columns → Parquet (zstd:1) in memory: one worker thread's whole CPU path, no I/O.
//!
//! Run: `cargo bench --bench stages` (add `-- decode/small` to pick one).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use otel_delta::batch::columns::SpanColumns;
use otel_delta::decode;
use otel_delta::encode::{Codec, ParquetFile};

#[path = "../perf/workload.rs"]
mod workload;

use workload::{pool, Profile};

const PROFILES: [Profile; 3] = [Profile::Small, Profile::Large, Profile::Mixed];

fn inputs(profile: Profile) -> (Vec<workload::Request>, u64, u64) {
    // About 4 MB of distinct requests per profile.
    let count = match profile {
        Profile::Small => 16,
        Profile::Large => 4,
        Profile::Mixed => 6,
    };
    let requests = pool(profile, count, 7);
    let bytes = requests.iter().map(|r| r.body.len() as u64).sum();
    let spans = requests.iter().map(|r| r.spans as u64).sum();
    (requests, bytes, spans)
}

fn build(requests: &[workload::Request]) -> arrow::array::RecordBatch {
    let mut columns = SpanColumns::new();
    for r in requests {
        decode::validate(&r.body).expect("valid workload");
        columns.append_request(&r.body).expect("valid workload");
    }
    columns.finish().expect("batch")
}

fn stages(c: &mut Criterion) {
    for profile in PROFILES {
        let (requests, bytes, spans) = inputs(profile);
        let name = profile.name();

        let mut group = c.benchmark_group("decode");
        group.throughput(Throughput::Bytes(bytes));
        group.bench_function(name, |b| {
            b.iter(|| requests.iter().map(|r| decode::validate(&r.body).expect("valid").accepted).sum::<u64>())
        });
        group.finish();

        let mut group = c.benchmark_group("columns");
        group.throughput(Throughput::Elements(spans));
        group.bench_function(name, |b| b.iter(|| build(&requests).num_rows()));
        group.finish();

        let batch = build(&requests);
        let mut group = c.benchmark_group("encode");
        group.throughput(Throughput::Bytes(bytes));
        group.sample_size(10);
        for codec in [Codec::Zstd(1), Codec::Zstd(3), Codec::Lz4, Codec::Snappy, Codec::None] {
            group.bench_with_input(BenchmarkId::new(codec.to_string(), name), &batch, |b, batch| {
                b.iter(|| {
                    let mut file = ParquetFile::new(codec).expect("writer");
                    file.write(batch).expect("write");
                    file.finish().expect("finish").bytes.len()
                })
            });
        }
        group.finish();

        let mut group = c.benchmark_group("worker");
        group.throughput(Throughput::Bytes(bytes));
        group.sample_size(10);
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut file = ParquetFile::new(Codec::Zstd(1)).expect("writer");
                file.write(&build(&requests)).expect("write");
                file.finish().expect("finish").bytes.len()
            })
        });
        group.finish();
    }
}

criterion_group!(benches, stages);
criterion_main!(benches);
