//! `/metrics` on `--metrics-addr`: scraped while a collector serves, the counters match what was sent and what
//! the table holds.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use reqwest::StatusCode;

use crate::http::{post, request};
use crate::support::{read_rows, table_url, Collector};

const PROTOBUF: &str = "application/x-protobuf";

/// The samples of an OpenMetrics text, `name{labels}` → value (comments and `# EOF` left out).
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {l}"));
            (key.to_owned(), value.parse::<f64>().unwrap_or_else(|e| panic!("{e}: {l}")))
        })
        .collect()
}

fn value(samples: &HashMap<String, f64>, key: &str) -> f64 {
    *samples.get(key).unwrap_or_else(|| panic!("no sample {key}; have {:#?}", samples.keys()))
}

/// The one `otel_delta_table_version` sample (its `table` label is the table's URL).
fn table_version(samples: &HashMap<String, f64>) -> f64 {
    let versions: Vec<_> = samples.iter().filter(|(k, _)| k.starts_with("otel_delta_table_version{")).collect();
    assert_eq!(versions.len(), 2, "the spans and the logs table: {versions:?}");
    let versions: Vec<_> = versions.into_iter().filter(|(k, _)| k.ends_with("/spans/\"}")).collect();
    assert_eq!(versions.len(), 1, "labelled with the table's URL: {versions:?}");
    *versions[0].1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_match_what_was_sent_and_what_the_table_holds() {
    // A request of 64 spans is below the 6 KiB request limit, and one waiting for its commit (a 2 s flush
    // interval) leaves too little of the 8 KiB in-flight budget for another.
    let c = Collector::start(&["--flush-interval", "2s", "--max-request-size", "6KiB", "--max-inflight-size", "8KiB"])
        .await;
    let before = samples(&c.metrics().await);
    assert_eq!(value(&before, r#"otelcol_receiver_accepted_spans_total{receiver="otlp",transport="http"}"#), 0.0);
    assert_eq!(value(&before, "otel_delta_inflight_budget_bytes"), 8192.0);
    assert_eq!(table_version(&before), 0.0, "the version the table was created at");

    let url = c.traces_url();
    // Held: 64 spans waiting for the flush; meanwhile another request finds the budget taken (503).
    let held = tokio::spawn({
        let url = url.clone();
        async move { post(&url, PROTOBUF, request(1, 64).encode_to_vec()).await.status() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = samples(&c.metrics().await);
    assert!(value(&during, "otel_delta_inflight_bytes") > 0.0, "the held request is in flight");
    assert_eq!(post(&url, PROTOBUF, request(2, 64).encode_to_vec()).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(held.await.unwrap(), StatusCode::OK);

    // Partial success: 3 spans, one with a bad trace id.
    let mut partial = request(3, 3);
    partial.resource_spans[0].scope_spans[0].spans[1].trace_id = vec![1, 2, 3];
    assert_eq!(post(&url, PROTOBUF, partial.encode_to_vec()).await.status(), StatusCode::OK);
    // Too large (413), twice; an unknown path (404).
    for _ in 0..2 {
        assert_eq!(post(&url, PROTOBUF, request(4, 200).encode_to_vec()).await.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    let r = reqwest::Client::new().post(format!("http://{}/v1/profiles", c.addr)).body("x").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // 5 spans over gRPC, and a span refused alone there too.
    let mut client = TraceServiceClient::connect(c.grpc_url()).await.unwrap();
    let mut grpc = request(5, 5);
    grpc.resource_spans[0].scope_spans[0].spans.push(Span { trace_id: vec![9; 3], ..Default::default() });
    let answer = client.export(grpc).await.unwrap().into_inner();
    assert_eq!(answer.partial_success.map(|p| p.rejected_spans), Some(1));

    let after = samples(&c.metrics().await);
    let rows = read_rows(&c.table).await;
    assert_eq!(rows.len(), 64 + 2 + 5);
    let http = r#"{receiver="otlp",transport="http"}"#;
    let grpc = r#"{receiver="otlp",transport="grpc"}"#;
    assert_eq!(value(&after, &format!("otelcol_receiver_accepted_spans_total{http}")), 66.0);
    assert_eq!(value(&after, &format!("otelcol_receiver_accepted_spans_total{grpc}")), 5.0);
    assert_eq!(value(&after, &format!("otelcol_receiver_refused_spans_total{http}")), 1.0);
    assert_eq!(value(&after, &format!("otelcol_receiver_refused_spans_total{grpc}")), 1.0);
    assert_eq!(value(&after, r#"otelcol_exporter_sent_spans_total{exporter="delta"}"#), rows.len() as f64);
    assert_eq!(value(&after, r#"otelcol_exporter_send_failed_spans_total{exporter="delta"}"#), 0.0);
    let refused = |status: u16, reason: &str| {
        value(
            &after,
            &format!(r#"otel_delta_refused_requests_total{{transport="http",status="{status}",reason="{reason}"}}"#),
        )
    };
    assert_eq!(refused(503, "overloaded"), 1.0);
    assert_eq!(refused(413, "too_large"), 2.0);
    assert_eq!(refused(404, "not_found"), 1.0);
    // Every export request is timed however answered: over HTTP 2 OK, one 503, two 413 (the 404 is no export).
    assert_eq!(value(&after, r#"otel_delta_request_duration_seconds_count{transport="http"}"#), 5.0);
    assert_eq!(value(&after, r#"otel_delta_request_duration_seconds_count{transport="grpc"}"#), 1.0);

    // The version gauge is the table's; every commit added one file.
    let table = deltalake::open_table(table_url(&c.table)).await.unwrap();
    let version = table.version().unwrap();
    assert_eq!(table_version(&after), version as f64);
    let commits = value(&after, "otel_delta_commit_duration_seconds_count");
    assert_eq!(commits, version as f64, "one commit per version after the table's creation");
    assert_eq!(value(&after, "otel_delta_files_written_total"), table.get_file_uris().unwrap().count() as f64);
    assert!(value(&after, "otel_delta_bytes_written_total") > 0.0);
    assert_eq!(value(&after, "otel_delta_inflight_bytes"), 0.0);
    assert_eq!(value(&after, "otel_delta_queue_depth"), 0.0);

    // Other paths of the metrics listener.
    let r = reqwest::get(format!("http://{}/other", c.metrics_addr)).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    c.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_address_in_use_stops_start_up() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_otel-delta"))
        .args(["serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "off", "--metrics-addr", &addr, "--table"])
        .arg(dir.path().join("t"))
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("binding the metrics listener (--metrics-addr) on {addr}")), "{stderr}");
}
