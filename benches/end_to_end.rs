//! In-process end to end: the collector (library `serve`) on 127.0.0.1:0 over a temporary local table, flush
//! interval 100 ms, driven over OTLP/HTTP by 32 concurrent requests per iteration (distinct, pre-generated); an
//! iteration ends when every request is acknowledged, i.e. committed. It models a busy collector with durable acks
//! at a fixed concurrency: the figures are bytes and spans acknowledged per second of wall time, bounded by the
//! flush interval as much as by CPU (for peak throughput use the `perf/` harness with hundreds of connections).
//!
//! Run: `cargo bench --bench end_to_end`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[path = "../perf/workload.rs"]
mod workload;

const CONCURRENT: usize = 32;

fn end_to_end(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    for profile in [workload::Profile::Small, workload::Profile::Large, workload::Profile::Mixed] {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = dir.path().join("spans");
        let table_arg = table.to_str().expect("utf-8 path");
        let args = ["--table", table_arg, "--grpc-addr", "off", "--flush-interval", "100ms"];
        let config = otel_delta::ServeArgs::try_parse_from(args).expect("arguments").resolve().expect("config");
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
        let url = format!("http://{}/v1/traces", listener.local_addr().expect("address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = runtime.spawn(otel_delta::serve(vec![listener], config, async move {
            let _ = stopped.await;
        }));
        let pool: Vec<bytes::Bytes> =
            workload::pool(profile, CONCURRENT * 2, 3).into_iter().map(|r| bytes::Bytes::from(r.body)).collect();
        let per_iteration = &pool[..CONCURRENT];
        let bytes: u64 = per_iteration.iter().map(|b| b.len() as u64).sum();
        let client = reqwest::Client::new();
        // Wait for the table to open.
        runtime.block_on(async {
            while client.get(url.replace("/v1/traces", "/health")).send().await.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });

        let mut group = c.benchmark_group("end_to_end");
        group.sample_size(10);
        let spans = (CONCURRENT * profile.spans_per_request()) as u64;
        group.throughput(Throughput::ElementsAndBytes { elements: spans, bytes });
        let mut round = 0usize;
        group.bench_function(format!("{}/{CONCURRENT}_concurrent", profile.name()), |b| {
            b.iter(|| {
                round += 1;
                let start = (round % 2) * CONCURRENT;
                runtime.block_on(async {
                    let sends = pool[start..start + CONCURRENT].iter().map(|body| {
                        client.post(&url).header("content-type", "application/x-protobuf").body(body.clone()).send()
                    });
                    for response in futures::future::join_all(sends).await {
                        assert!(response.expect("sent").status().is_success());
                    }
                })
            })
        });
        group.finish();
        let _ = stop.send(());
        runtime.block_on(server).expect("server task").expect("clean shutdown");
    }
}

criterion_group!(benches, end_to_end);
criterion_main!(benches);
