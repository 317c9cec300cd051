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
            "--metrics-addr",
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
    let metrics_line = lines.next().unwrap().unwrap();
    assert!(metrics_line.starts_with("otel-delta: metrics on http://127.0.0.1:"), "{metrics_line}");
    assert!(metrics_line.ends_with("/metrics"), "{metrics_line}");

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

/// `--log-format json`: every stderr line is one JSON object (level, message, target, the event's fields), and a
/// commit is logged at debug with its files, bytes, rows and latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_a_line_and_a_commit_says_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t");
    let args = ["--table", table.to_str().unwrap(), "--flush-interval", "200ms", "--log-format", "json"];
    let c = crate::stores::Serve::start_with(&args, &[("RUST_LOG", "info,otel_delta=debug".to_owned())]).await;
    let status = crate::http::post(&c.traces_url, "application/x-protobuf", request(42, 3).encode_to_vec()).await;
    assert_eq!(status.status(), reqwest::StatusCode::OK);
    let logs = c.log_buffer();
    c.stop().await;
    let logs = logs.lock().unwrap().clone();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        // The stdout lines (start-up addresses) are copied in with a `stdout: ` prefix.
        .filter(|l| !l.starts_with("stdout: ") && !l.starts_with("otel-delta: "))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.iter().any(|l| l["level"] == "INFO" && l["message"] == "table open"), "{logs}");
    let commit = lines.iter().find(|l| l["message"] == "committed").unwrap_or_else(|| panic!("no commit line: {logs}"));
    assert_eq!(
        (commit["level"].as_str(), commit["rows"].as_u64(), commit["files"].as_u64()),
        (Some("DEBUG"), Some(3), Some(1))
    );
    assert!(commit["bytes"].as_u64().unwrap() > 0 && commit["commit_ms"].is_u64(), "{commit}");
    assert_eq!(read_rows(&table).await.len(), 3);
}
