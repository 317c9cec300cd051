//! Logs end to end: OTLP logs over HTTP protobuf, HTTP JSON and gRPC land in the logs table beside the spans table,
//! row for row as the reference mapping (`logs_reference`) says; `--signals` turns a signal off; the two signals
//! share the in-flight budget without one starving the other; concurrent traces and logs each land exactly once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use proptest::strategy::{Strategy as _, ValueTree as _};
use proptest::test_runner::TestRunner;
use prost::Message as _;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

use crate::http::{post, request as spans_request};
use crate::logs_reference::{expected_v1, expected_v2, request_with};
use crate::reference::{double, finite_double};
use crate::support::{read_rows, Collector};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// The logs table of a collector whose spans table is `spans` (`<dir>/spans` → `<dir>/logs`).
fn logs_table(spans: &Path) -> PathBuf {
    spans.with_file_name("logs")
}

/// `n` generated requests (a fixed seed), with any doubles or with finite ones only (OTLP/JSON has no NaN).
fn generated(n: usize, finite: bool) -> Vec<ExportLogsServiceRequest> {
    let mut runner = TestRunner::deterministic();
    let strategy =
        if finite { request_with(finite_double().boxed()).boxed() } else { request_with(double().boxed()).boxed() };
    (0..n).map(|_| strategy.new_tree(&mut runner).unwrap().current()).collect()
}

/// Rows in a canonical order, for comparing multisets.
fn sorted(mut rows: Vec<Value>) -> Vec<Value> {
    rows.sort_by_cached_key(|r| r.to_string());
    rows
}

fn records(request: &ExportLogsServiceRequest) -> usize {
    request.resource_logs.iter().flat_map(|r| &r.scope_logs).map(|s| s.log_records.len()).sum()
}

async fn logs_over_every_transport_match_the_reference(layout: &str) {
    let c = Collector::start(&["--layout", layout]).await;
    let logs_url = format!("http://{}/v1/logs", c.addr);
    let (protobuf, json, grpc) = (generated(8, false), generated(8, true), generated(8, false));
    let mut expected = Vec::new();
    let expect = |request: &ExportLogsServiceRequest, expected: &mut Vec<Value>| {
        let rows = if layout == "v1" { expected_v1(request) } else { expected_v2(request) };
        let rejected = (records(request) - rows.len()) as i64;
        expected.extend(rows);
        rejected
    };
    for request in &protobuf {
        let rejected = expect(request, &mut expected);
        let response = post(&logs_url, PROTOBUF, request.encode_to_vec()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let answer = ExportLogsServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
        let answered = answer.partial_success.map_or(0, |p| p.rejected_log_records);
        assert_eq!(answered, rejected, "protobuf: partial success counts the records refused alone");
    }
    for request in &json {
        let rejected = expect(request, &mut expected);
        let response = post(&logs_url, JSON, serde_json::to_vec(request).unwrap()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let answer: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        let answered = answer["partialSuccess"]["rejectedLogRecords"].as_str().map_or(0, |n| n.parse().unwrap());
        assert_eq!(answered, rejected, "JSON: {answer}");
    }
    let mut client = LogsServiceClient::connect(c.grpc_url()).await.unwrap();
    for request in &grpc {
        let rejected = expect(request, &mut expected);
        let answer = client.export(request.clone()).await.unwrap().into_inner();
        assert_eq!(answer.partial_success.map_or(0, |p| p.rejected_log_records), rejected, "gRPC");
    }
    let stopped = c.stop().await.unwrap();
    let mut rows = read_rows(logs_table(&stopped.table)).await;
    for row in &mut rows {
        // A UUIDv7 per row, checked by the reference tests; not part of the mapping.
        row.as_object_mut().unwrap().remove("record_id");
    }
    assert!(!expected.is_empty());
    assert_eq!(sorted(rows), sorted(expected), "{layout}: the logs table holds exactly the reference rows");
    assert!(read_rows(&stopped.table).await.is_empty(), "no log record went to the spans table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_logs_over_every_transport_match_the_reference() {
    logs_over_every_transport_match_the_reference("v1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_logs_over_every_transport_match_the_reference() {
    logs_over_every_transport_match_the_reference("v2").await;
}

/// A log request of `n` records whose bodies are `"<tag>-<i>"`.
pub fn tagged_logs(tag: &str, n: usize) -> ExportLogsServiceRequest {
    let records = (0..n)
        .map(|i| LogRecord {
            time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
            body: Some(AnyValue { value: Some(any_value::Value::StringValue(format!("{tag}-{i}"))) }),
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs { log_records: records, ..Default::default() }],
            ..Default::default()
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_left_out_is_not_found_and_gets_no_table() {
    let c = Collector::start(&["--signals", "traces"]).await;
    let body = tagged_logs("off", 1).encode_to_vec();
    let response = post(&format!("http://{}/v1/logs", c.addr), PROTOBUF, body).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let mut client = LogsServiceClient::connect(c.grpc_url()).await.unwrap();
    let status = client.export(tagged_logs("off", 1)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
    assert_eq!(post(&c.traces_url(), PROTOBUF, spans_request(1, 2).encode_to_vec()).await.status(), StatusCode::OK);
    let stopped = c.stop().await.unwrap();
    assert!(!logs_table(&stopped.table).exists(), "no logs table is made for a signal left out");
    assert_eq!(read_rows(&stopped.table).await.len(), 2);

    let c = Collector::start(&["--signals", "logs"]).await;
    let response = post(&c.traces_url(), PROTOBUF, spans_request(1, 2).encode_to_vec()).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = post(&format!("http://{}/v1/logs", c.addr), PROTOBUF, tagged_logs("on", 3).encode_to_vec()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let stopped = c.stop().await.unwrap();
    assert_eq!(read_rows(logs_table(&stopped.table)).await.len(), 3);
}

/// `otel_delta_inflight_bytes` as the collector reports it now.
async fn inflight(c: &Collector) -> u64 {
    let text = c.metrics().await;
    let line = text.lines().find(|l| l.starts_with("otel_delta_inflight_bytes ")).expect("the in-flight gauge");
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Flooded traces fill their lane of the in-flight budget, never the logs' floor: with 4 MiB for two signals each
/// is guaranteed 1 MiB. Requests whose headers declare 1 MiB and whose bodies never come hold the traces lane
/// (their share is reserved from the headers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_traces_leaves_logs_their_floor_of_the_budget() {
    const MIB: u64 = 1 << 20;
    let c = Collector::start(&["--max-inflight-size", "4MiB", "--max-request-size", "1MiB"]).await;
    let mut stalled = Vec::new();
    for held in 1..=3 {
        let mut stream = tokio::net::TcpStream::connect(c.addr).await.unwrap();
        let head =
            format!("POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: {PROTOBUF}\r\ncontent-length: {MIB}\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        stalled.push(stream);
        // Wait (bounded) until the collector has reserved this request's share.
        let mut polls = 0;
        while inflight(&c).await < held * MIB {
            polls += 1;
            assert!(polls < 500, "the stalled request was never admitted");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let one_mib_of_spans = vec![0u8; MIB as usize];
    let refused = post(&c.traces_url(), PROTOBUF, one_mib_of_spans).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE, "traces hold all but the logs' floor");
    // 2,000 records of 400 bytes: over half the floor, its rows well within what its share covers.
    let mut logs = tagged_logs("floor", 2_000);
    for record in &mut logs.resource_logs[0].scope_logs[0].log_records {
        if let Some(any_value::Value::StringValue(body)) = record.body.as_mut().and_then(|b| b.value.as_mut()) {
            body.push_str(&"x".repeat(400));
        }
    }
    assert!(logs.encoded_len() as u64 > MIB / 2 && (logs.encoded_len() as u64) < MIB);
    let response = post(&format!("http://{}/v1/logs", c.addr), PROTOBUF, logs.encode_to_vec()).await;
    assert_eq!(response.status(), StatusCode::OK, "logs are admitted however busy traces are");
    drop(stalled);
    let stopped = c.stop().await.unwrap();
    assert_eq!(read_rows(logs_table(&stopped.table)).await.len(), 2_000);
}

/// Traces and logs sent at the same time, on many connections: every acknowledged span and log record is in its
/// own table exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_traces_and_logs_each_land_exactly_once_in_their_table() {
    let c = Collector::start(&["--flush-interval", "100ms"]).await;
    let logs_url = format!("http://{}/v1/logs", c.addr);
    let mut tasks = Vec::new();
    for i in 0..24u64 {
        let (traces_url, logs_url) = (c.traces_url(), logs_url.clone());
        tasks.push(tokio::spawn(async move {
            let spans = post(&traces_url, PROTOBUF, spans_request(i, 50).encode_to_vec()).await.status();
            let logs = post(&logs_url, PROTOBUF, tagged_logs(&format!("req{i}"), 70).encode_to_vec()).await.status();
            (spans, logs)
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), (StatusCode::OK, StatusCode::OK));
    }
    let stopped = c.stop().await.unwrap();
    let mut spans: HashMap<String, usize> = HashMap::new();
    for row in read_rows(&stopped.table).await {
        *spans.entry(row["name"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(spans.len(), 24 * 50);
    assert!(spans.values().all(|&n| n == 1), "a span twice");
    let mut logs: HashMap<String, usize> = HashMap::new();
    for row in read_rows(logs_table(&stopped.table)).await {
        *logs.entry(row["body"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(logs.len(), 24 * 70);
    assert!(logs.values().all(|&n| n == 1), "a log record twice");
}
