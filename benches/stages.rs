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
//! - `logs_decode`, `logs_columns/<layout>`: the same for logs (`validate_logs`; rows of each logs layout), on
//!   requests of 512 log records of about 300 bytes each (a service's structured logs: body text, a few attributes,
//!   trace context on most records).
//!
//! Run: `cargo bench --bench stages` (add `-- decode/small` to pick one).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use otel_delta::{
    to_protobuf, validate, validate_logs, Codec, Contract, Format, Layout, ParquetFile, Rows, Signal, Wanted,
};

#[path = "../perf/workload.rs"]
mod workload;

use workload::{pool, Profile};

const PROFILES: [Profile; 3] = [Profile::Small, Profile::Large, Profile::Mixed];

fn inputs(profile: Profile) -> (Vec<workload::Request>, u64, u64) {
    // About 4 MB of distinct requests per profile.
    let count = match profile {
        Profile::Small | Profile::Logs => 16,
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

/// `count` distinct `ExportLogsServiceRequest`s of 512 records of about 300 bytes, one resource and scope each.
fn log_requests(count: usize, seed: u64) -> Vec<Vec<u8>> {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, InstrumentationScope, KeyValue};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message as _;

    let kv = |key: &str, value: Value| KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    };
    let mut g = workload::Gen::new(seed);
    (0..count)
        .map(|_| {
            let start = 1_700_000_000_000_000_000 + g.below(1 << 40);
            let records = (0..512u64)
                .map(|i| {
                    let traced = g.below(4) != 0;
                    let id = |g: &mut workload::Gen, n: usize| -> Vec<u8> {
                        if traced {
                            (0..n).map(|_| g.next() as u8).collect()
                        } else {
                            Vec::new()
                        }
                    };
                    let severity = [9, 9, 9, 13, 17][g.below(5) as usize];
                    LogRecord {
                        time_unix_nano: start + i * 1_000_000,
                        observed_time_unix_nano: start + i * 1_000_000 + 50_000,
                        severity_number: severity,
                        severity_text: ["INFO", "WARN", "ERROR"][(severity as usize - 9) / 4].to_owned(),
                        body: Some(AnyValue { value: Some(Value::StringValue(g.text(130))) }),
                        attributes: vec![
                            kv("code.filepath", Value::StringValue(format!("src/{}.rs", g.text(8)))),
                            kv("thread.id", Value::IntValue(g.below(64) as i64)),
                            kv("http.response.status_code", Value::IntValue(200 + g.below(4) as i64 * 100)),
                            kv("user.id", Value::StringValue(g.text(12))),
                        ],
                        trace_id: id(&mut g, 16),
                        span_id: id(&mut g, 8),
                        event_name: if g.below(8) == 0 { "user.login".to_owned() } else { String::new() },
                        ..Default::default()
                    }
                })
                .collect();
            ExportLogsServiceRequest {
                resource_logs: vec![ResourceLogs {
                    resource: Some(Resource {
                        attributes: vec![
                            kv("service.name", Value::StringValue("checkout".into())),
                            kv("host.name", Value::StringValue(g.text(12))),
                        ],
                        ..Default::default()
                    }),
                    scope_logs: vec![ScopeLogs {
                        scope: Some(InstrumentationScope { name: "io.example.log".into(), ..Default::default() }),
                        log_records: records,
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                }],
            }
            .encode_to_vec()
        })
        .collect()
}

fn logs(c: &mut Criterion) {
    let requests = log_requests(8, 11);
    let bytes = requests.iter().map(|r| r.len() as u64).sum();
    let records = 512 * requests.len() as u64;
    let throughput = Throughput::ElementsAndBytes { elements: records, bytes };

    let mut group = c.benchmark_group("logs_decode");
    group.throughput(throughput.clone());
    group.bench_function("512x300B", |b| {
        b.iter(|| requests.iter().map(|r| validate_logs(r).expect("valid").accepted).sum::<u64>())
    });
    group.finish();

    let mut group = c.benchmark_group("logs_columns");
    group.throughput(throughput);
    for layout in [Layout::V1, Layout::V2] {
        group.bench_function(BenchmarkId::new(layout.name(), "512x300B"), |b| {
            b.iter(|| {
                let mut rows = Rows::new(Contract::logs(layout));
                for r in &requests {
                    rows.append_request(r).expect("valid workload");
                }
                rows.finish().expect("batch").num_rows()
            })
        });
    }
    group.finish();
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

criterion_group!(benches, stages, logs, commit);
criterion_main!(benches);
