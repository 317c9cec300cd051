//! The real binary: start-up output, its log lines, SIGTERM while requests wait for their commit, exit 0 with
//! every accepted span committed.

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

/// Every failed request is one log line with its request id (the client's `x-request-id` when it sent one, else a
/// new one), who sent it and how it was answered; the id comes back in the answer's `x-request-id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_request_is_one_log_line_under_its_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t");
    let c = crate::stores::Serve::start_with(&["--table", table.to_str().unwrap(), "--log-format", "json"], &[]).await;
    let client = reqwest::Client::new();
    let sent = client
        .post(&c.traces_url)
        .header("content-type", "text/plain")
        .header("x-request-id", "it-4711")
        .body("spans?")
        .send()
        .await
        .unwrap();
    assert_eq!((sent.status().as_u16(), sent.headers()["x-request-id"].to_str().unwrap()), (415, "it-4711"));
    let missing = client.get(c.traces_url.replace("/v1/traces", "/v1/nothing")).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let new_id = missing.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(new_id.len(), 16, "a new id when the client sent none");
    let ok = crate::http::post(&c.traces_url, "application/x-protobuf", request(43, 1).encode_to_vec()).await;
    assert!(ok.status().is_success() && !ok.headers().contains_key("x-request-id"), "successes are not logged");
    let logs = c.log_buffer();
    c.stop().await;
    let logs = logs.lock().unwrap().clone();
    let failed: Vec<serde_json::Value> = logs
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["message"] == "request failed")
        .collect();
    assert_eq!(failed.len(), 2, "one line per failed request: {logs}");
    let line = |id: &str| failed.iter().find(|l| l["request_id"] == id).unwrap_or_else(|| panic!("{id}: {logs}"));
    let (unsupported, not_found) = (line("it-4711"), line(&new_id));
    assert_eq!(
        (unsupported["status"].as_u64(), unsupported["reason"].as_str()),
        (Some(415), Some("unsupported_media_type"))
    );
    assert_eq!((not_found["status"].as_u64(), not_found["transport"].as_str()), (Some(404), Some("http")));
    assert!(unsupported["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:")), "{unsupported}");
    assert_eq!(unsupported["level"], "INFO", "a client's mistake is not a warning");
}
