//! OTLP/HTTP protocol behaviour with a raw HTTP client: acks, status codes, error bodies, limits.

use std::io::Write as _;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;
use reqwest::StatusCode;

use crate::support::{read_rows, Collector};

/// `google.rpc.Status`, the body of every OTLP/HTTP error.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

const PROTOBUF: &str = "application/x-protobuf";

/// `n` spans with ids derived from `seed`, each with a little text.
pub fn request(seed: u64, n: usize) -> ExportTraceServiceRequest {
    let spans = (0..n as u64)
        .map(|i| Span {
            trace_id: [seed.to_be_bytes(), i.to_be_bytes()].concat(),
            span_id: (seed * 1_000_003 + i).to_be_bytes().to_vec(),
            name: format!("op-{seed}-{i}"),
            start_time_unix_nano: 1_700_000_000_000_000_000 + i,
            end_time_unix_nano: 1_700_000_000_000_000_100 + i,
            attributes: vec![KeyValue {
                key: "text".into(),
                value: Some(AnyValue { value: Some(any_value::Value::StringValue(format!("payload {seed} {i}"))) }),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    }
}

pub async fn post(url: &str, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    post_encoded(url, content_type, None, body).await
}

/// POST with an optional Content-Encoding.
pub async fn post_encoded(url: &str, content_type: &str, encoding: Option<&str>, body: Vec<u8>) -> reqwest::Response {
    let mut request = reqwest::Client::new().post(url).header("content-type", content_type);
    if let Some(encoding) = encoding {
        request = request.header("content-encoding", encoding);
    }
    request.body(body).send().await.unwrap()
}

pub async fn rpc_status(response: reqwest::Response) -> RpcStatus {
    assert_eq!(response.headers()["content-type"], PROTOBUF);
    RpcStatus::decode(response.bytes().await.unwrap()).expect("error body is a google.rpc.Status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_means_the_rows_are_committed() {
    let c = Collector::start(&[]).await;
    let response = post(&c.traces_url(), PROTOBUF, request(1, 3).encode_to_vec()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], PROTOBUF);
    let body = ExportTraceServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(body.partial_success, None, "full success leaves partial_success unset");
    // Read while the collector still runs: the acknowledged rows are already in a committed version.
    let rows = read_rows(&c.table).await;
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().any(|r| r["name"] == "op-1-2"));
    // A client retry re-sends: duplicates are normal in OTLP and stored as sent, never refused.
    let again = post(&c.traces_url(), PROTOBUF, request(1, 3).encode_to_vec()).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(read_rows(&c.table).await.len(), 6);
    c.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_type_parameters_are_ignored_and_empty_requests_succeed() {
    let c = Collector::start(&[]).await;
    let r = post(&c.traces_url(), "Application/X-Protobuf; charset=utf-8", request(2, 1).encode_to_vec()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = post(&c.traces_url(), PROTOBUF, Vec::new()).await;
    assert_eq!(r.status(), StatusCode::OK);
    // A request whose envelopes hold no spans.
    let empty = ExportTraceServiceRequest { resource_spans: vec![ResourceSpans::default()] };
    assert_eq!(post(&c.traces_url(), PROTOBUF, empty.encode_to_vec()).await.status(), StatusCode::OK);
    let table = c.stop().await.unwrap();
    assert_eq!(read_rows(&table).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_have_the_right_status_and_a_status_body() {
    let c = Collector::start(&["--max-request-size", "4KiB", "--max-inflight-size", "1MiB"]).await;
    let url = c.traces_url();

    let r = post(&url, "application/xml", request(3, 1).encode_to_vec()).await;
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(rpc_status(r).await.message.contains("Content-Type"));

    let r = post_encoded(&url, PROTOBUF, Some("br"), request(3, 1).encode_to_vec()).await;
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let r = post(&url, PROTOBUF, vec![0x0a, 0xff, 0x01, 0x02]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let status = rpc_status(r).await;
    assert_eq!(status.code, 3, "INVALID_ARGUMENT");
    assert!(status.message.contains("protobuf"), "{}", status.message);

    let r = post(&url, PROTOBUF, request(3, 200).encode_to_vec()).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.headers().get("retry-after").is_none());
    assert_eq!(rpc_status(r).await.code, 8, "RESOURCE_EXHAUSTED");

    // A gzip bomb: 1 MiB of zeros in about 1 KiB, over the 4 KiB limit once inflated.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![0u8; 1 << 20]).unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 4096);
    let r = post_encoded(&url, PROTOBUF, Some("gzip"), bomb).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let client = reqwest::Client::new();
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "POST");
    let r = client.post(format!("http://{}/v1/profiles", c.addr)).body("x").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = client.get(format!("http://{}/", c.addr)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "{\"status\":\"ok\"}");

    // Still serving after all of that, and a gzip request within the limit lands.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&request(4, 2).encode_to_vec()).unwrap();
    let r = post_encoded(&url, PROTOBUF, Some("gzip"), gz.finish().unwrap()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let table = c.stop().await.unwrap();
    assert_eq!(read_rows(&table).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_with_bad_ids_are_rejected_alone() {
    let c = Collector::start(&[]).await;
    let mut req = request(5, 3);
    let spans = &mut req.resource_spans[0].scope_spans[0].spans;
    spans[1].trace_id = vec![1, 2, 3];
    spans.push(Span { trace_id: vec![7; 16], span_id: vec![7; 8], parent_span_id: vec![1; 3], ..Default::default() });
    let r = post(&c.traces_url(), PROTOBUF, req.encode_to_vec()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = ExportTraceServiceResponse::decode(r.bytes().await.unwrap()).unwrap();
    let partial = body.partial_success.expect("partial success reported");
    assert_eq!(partial.rejected_spans, 2);
    assert!(partial.error_message.contains("trace_id must be 16 bytes"), "{}", partial.error_message);
    let rows = read_rows(&c.table).await;
    let mut names: Vec<_> = rows.iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect();
    names.sort();
    assert_eq!(names, ["op-5-0", "op-5-2"]);
    c.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_inflight_budget_requests_get_503_with_retry_after() {
    // 3 s flush interval: the first request holds its budget share until its file is committed.
    let c = Collector::start(&["--flush-interval", "3s", "--max-request-size", "6KiB", "--max-inflight-size", "8KiB"])
        .await;
    let body = request(6, 64).encode_to_vec();
    assert!(body.len() > 4096 && body.len() < 6144, "{}", body.len());
    let url = c.traces_url();
    let first = tokio::spawn({
        let (url, body) = (url.clone(), body.clone());
        async move { post(&url, PROTOBUF, body).await.status() }
    });
    // Wait until the first request is admitted (the budget is in use) by probing with a request too big to
    // fit beside it; each probe that gets through would show up as extra rows below.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut refused = None;
    for _ in 0..100 {
        let r = post(&url, PROTOBUF, request(7, 64).encode_to_vec()).await;
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status(), StatusCode::OK, "a probe that is not refused must be stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = refused.expect("a request beyond the budget is refused");
    assert_eq!(refused.headers()["retry-after"], "3");
    assert_eq!(rpc_status(refused).await.code, 14, "UNAVAILABLE");
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    c.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_failure_is_503_never_500_and_the_collector_keeps_serving() {
    let c = Collector::start(&[]).await;
    // Replace the table folder by a plain file: the data file upload cannot create its file.
    std::fs::rename(&c.table, c.table.with_extension("moved")).unwrap();
    std::fs::write(&c.table, b"not a folder").unwrap();
    let r = post(&c.traces_url(), PROTOBUF, request(8, 2).encode_to_vec()).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    let status = rpc_status(r).await;
    assert_eq!(status.code, 14);
    // The client gets a request id to quote, not the collector's paths (those are in its log, under that id).
    assert!(status.message.contains("request id "), "{}", status.message);
    let table_dir = c.table.to_string_lossy().into_owned();
    assert!(!status.message.contains(&table_dir) && !status.message.contains("part-"), "{}", status.message);
    let health = reqwest::get(format!("http://{}/health", c.addr)).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    // Alive, not ready, with the reason (for the operator, on the collector's own port).
    let ready = reqwest::get(format!("http://{}/ready", c.addr)).await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    c.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_share_files_and_commits_and_lose_nothing() {
    let c = Collector::start(&[]).await;
    let url = c.traces_url();
    let (clients, per_client, spans) = (16u64, 5u64, 10usize);
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let url = url.clone();
            tokio::spawn(async move {
                for i in 0..per_client {
                    let r = post(&url, PROTOBUF, request(100 + client * per_client + i, spans).encode_to_vec()).await;
                    assert_eq!(r.status(), StatusCode::OK);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let table = c.stop().await.unwrap();

    let rows = read_rows(&table).await;
    let requests = clients * per_client;
    assert_eq!(rows.len() as u64, requests * spans as u64);
    let mut ids: Vec<_> = rows.iter().map(|r| format!("{}{}", r["trace_id"], r["span_id"])).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), rows.len(), "every acknowledged span exactly once");
    let commits = std::fs::read_dir(table.as_ref().join("_delta_log"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".json"))
        .count() as u64;
    // Version 0 creates the table; group commit puts many requests in each later version.
    assert!(commits - 1 <= requests / 2, "{commits} commits for {requests} requests");
}
