//! The real binary: start-up output, SIGTERM while requests wait for their commit, exit 0 with every accepted
//! span committed.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use prost::Message as _;

use crate::http::request;
use crate::support::read_rows;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_commits_accepted_spans_answers_them_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    // A long flush interval: the requests below are still waiting for their commit when SIGTERM arrives.
    let mut child = Command::new(env!("CARGO_BIN_EXE_otel-delta"))
        .args([
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--grpc-addr",
            "127.0.0.1:0",
            "--flush-interval",
            "60s",
            "--warehouse",
        ])
        .arg(dir.path())
        .env("UC_CATALOG_NAME", "cat")
        .env("UC_SCHEMA_NAME", "sch")
        .env("UC_TABLE_PREFIX_NAME", "app")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let table_line = lines.next().unwrap().unwrap();
    assert!(table_line.contains("/cat/sch/app_otel_spans"), "{table_line}");
    let http_line = lines.next().unwrap().unwrap();
    let url = http_line.rsplit(' ').next().unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/v1/traces"), "{http_line}");
    let grpc_line = lines.next().unwrap().unwrap();
    assert!(grpc_line.contains("OTLP/gRPC on http://127.0.0.1:"), "{grpc_line}");

    let requests: Vec<_> = (0..4u64)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(url)
                    .header("content-type", "application/x-protobuf")
                    .body(request(10 + i, 5).encode_to_vec())
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    // Let the requests arrive, then ask the collector to stop.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    for r in requests {
        assert_eq!(r.await.unwrap(), reqwest::StatusCode::OK);
    }
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    let table = dir.path().join("cat").join("sch").join("app_otel_spans");
    assert_eq!(read_rows(&table).await.len(), 20);
}
