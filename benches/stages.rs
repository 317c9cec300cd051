//! One bench per CPU stage of the pipeline, on the three workload profiles of `benchmarking.md` (distinct
//! requests, generated before timing). Each reports elements (spans) and bytes (of OTLP protobuf input, or of
//! JSON for `decode_json`).
//!
//! - `decode`: `decode::validate`, the full zero-copy walk alone (no rows); a worker makes this walk once per
//!   request, while it builds the rows (part of `columns`).
//! - `decode_json`: the same requests in OTLP/JSON (as `opentelemetry-proto`'s serde writes them), transcoded to
//!   protobuf and validated; throughput in JSON bytes.
//! - `columns`: append rows to the Arrow builders (checking each request on the way) + finish the record batch:
//!   what a worker does per request, without Parquet.
//! - `encode/<codec>`: Parquet encoding of ready record batches, per compression codec (the codec trade-off).
//! - `worker`: decode → columns → Parquet (zstd:1) in memory: one worker thread's whole CPU path, no I/O.
//! - `commit`: one committer round on a local table: upload (with fsync) of 2 small data files, then one Delta
//!   commit adding them (log entry + fsync); elements are rounds. The table grows as the bench runs, as a real
//!   table does between checkpoints.
//!
//! Run: `cargo bench --bench stages` (add `-- decode/small` to pick one).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use otel_delta::{to_protobuf, validate, Codec, Contract, Format, ParquetFile, Rows, Signal, Wanted};

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
    let mut columns = Rows::new(Contract::spans_v1());
    for r in requests {
        columns.append_request(&r.body).expect("valid workload");
    }
    columns.finish().expect("batch")
}

fn stages(c: &mut Criterion) {
    for profile in PROFILES {
        let (requests, bytes, spans) = inputs(profile);
        let name = profile.name();

        let both = Throughput::ElementsAndBytes { elements: spans, bytes };
        let mut group = c.benchmark_group("decode");
        group.throughput(both.clone());
        group.bench_function(name, |b| {
            b.iter(|| requests.iter().map(|r| validate(&r.body).expect("valid").accepted).sum::<u64>())
        });
        group.finish();

        let json: Vec<Vec<u8>> = requests
            .iter()
            .map(|r| {
                let message = <opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest as prost::Message>::decode(&r.body[..]).expect("valid");
                serde_json::to_vec(&message).expect("serializable")
            })
            .collect();
        let mut group = c.benchmark_group("decode_json");
        group.throughput(Throughput::ElementsAndBytes {
            elements: spans,
            bytes: json.iter().map(|j| j.len() as u64).sum(),
        });
        group.bench_function(name, |b| {
            b.iter(|| {
                json.iter()
                    .map(|j| {
                        let body =
                            to_protobuf(Signal::Traces, Format::Json, bytes::Bytes::copy_from_slice(j)).expect("valid");
                        validate(&body).expect("valid").accepted
                    })
                    .sum::<u64>()
            })
        });
        group.finish();

        let mut group = c.benchmark_group("columns");
        group.throughput(both.clone());
        group.bench_function(name, |b| b.iter(|| build(&requests).num_rows()));
        group.finish();

        let batch = build(&requests);
        let mut group = c.benchmark_group("encode");
        group.throughput(both.clone());
        group.sample_size(10);
        for codec in [Codec::Zstd(1), Codec::Zstd(3), Codec::Lz4, Codec::Snappy, Codec::None] {
            group.bench_with_input(BenchmarkId::new(codec.to_string(), name), &batch, |b, batch| {
                b.iter(|| {
                    let mut file = ParquetFile::new(Contract::spans_v1(), codec).expect("writer");
                    file.write(batch).expect("write");
                    file.finish().expect("finish").tail.len()
                })
            });
        }
        group.finish();

        let mut group = c.benchmark_group("worker");
        group.throughput(both.clone());
        group.sample_size(10);
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut file = ParquetFile::new(Contract::spans_v1(), Codec::Zstd(1)).expect("writer");
                file.write(&build(&requests)).expect("write");
                file.finish().expect("finish").tail.len()
            })
        });
        group.finish();
    }
}

fn commit(c: &mut Criterion) {
    use otel_delta::{Table, UploadedFile};
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = url::Url::from_directory_path(dir.path()).expect("absolute");
    let mut table = runtime
        .block_on(Table::open_or_create(&url, Default::default(), Wanted::exactly(Contract::spans_v1())))
        .expect("table");
    let (requests, _, _) = inputs(Profile::Small);
    let mut file = ParquetFile::new(Contract::spans_v1(), Codec::Zstd(1)).expect("writer");
    file.write(&build(&requests[..1])).expect("write");
    let encoded = file.finish().expect("finish");
    let mut group = c.benchmark_group("commit");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.bench_function("two_files_local", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut files = Vec::new();
                for _ in 0..2 {
                    let path = format!("part-{}.zstd.parquet", uuid::Uuid::new_v4());
                    std::fs::write(dir.path().join(&path), &encoded.tail).expect("write the data file");
                    files.push(UploadedFile { path, size: encoded.tail.len() as u64, stats: encoded.stats.clone() });
                }
                table.append(&files).await.expect("commit")
            })
        })
    });
    group.finish();
}

criterion_group!(benches, stages, commit);
criterion_main!(benches);
