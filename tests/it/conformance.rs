//! The OTLP conformance checklist (`otlp-conformance.md`) beyond what `http.rs` covers: OTLP/JSON, every
//! Content-Encoding, OTLP/gRPC statuses and limits with a real gRPC client, CORS.

use std::io::Write as _;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, KeyValue};
use prost::Message as _;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::http::{post_encoded, request};
use crate::support::{read_rows, Collector};

async fn post_json(url: &str, body: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

/// The same span in canonical OTLP/JSON and in every lenient form the Collector accepts.
const CANONICAL: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"json-svc"}}]},
  "scopeSpans":[{"scope":{"name":"lib","version":"2"},"spans":[{
    "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","parentSpanId":"eee19b7ec3c1b173",
    "name":"json span","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000",
    "attributes":[{"key":"n","value":{"intValue":"42"}},{"key":"d","value":{"doubleValue":2.5}},
                  {"key":"b","value":{"bytesValue":"AAEC"}},{"key":"a","value":{"arrayValue":{"values":[{"boolValue":true}]}}}],
    "events":[{"timeUnixNano":"1544712660500000000","name":"ev"}],
    "status":{"code":2,"message":"bad"},"flags":257}],"schemaUrl":"s"}]}]}"#;

const LENIENT: &str = r#"{"resource_spans":[{"resource":{"attributes":[{"key":"service.name","value":{"string_value":"json-svc"}}]},
  "scope_spans":[{"scope":{"name":"lib","version":"2","unknownField":{"x":1}},"spans":[{
    "trace_id":"5B8EFFF798038103D269B633813FC60C","span_id":"EEE19B7EC3C1B174","parent_span_id":"eee19b7ec3c1b173",
    "name":"json span","kind":"SPAN_KIND_SERVER","start_time_unix_nano":1544712660000000000,"end_time_unix_nano":1544712661000000000,
    "attributes":[{"key":"n","value":{"int_value":42}},{"key":"d","value":{"double_value":"2.5"}},
                  {"key":"b","value":{"bytes_value":"AAEC"}},{"key":"a","value":{"array_value":{"values":[{"bool_value":true}]}}}],
    "events":[{"time_unix_nano":"1544712660500000000","name":"ev","attributes":null}],
    "status":{"code":"STATUS_CODE_ERROR","message":"bad"},"flags":257,"somethingNew":[1,2]}],"schema_url":"s"}]}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_json_lands_as_rows_and_leniency_changes_nothing() {
    let mut tables = Vec::new();
    for body in [CANONICAL, LENIENT] {
        // Checked against v1's text values (the JSON decoding is the same for both layouts).
        let c = Collector::start(&["--layout", "v1"]).await;
        let r = post_json(&c.traces_url(), body).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(r.text().await.unwrap(), "{}");
        tables.push(c.stop().await.unwrap());
    }
    let canonical = read_rows(&tables[0]).await;
    assert_eq!(canonical.len(), 1);
    let row = &canonical[0];
    assert_eq!(row["trace_id"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(row["kind"], "SERVER");
    assert_eq!(row["flags"], 257);
    assert_eq!(row["start_time_unix_nano"], 1_544_712_660_000_000_000i64);
    assert_eq!(row["status"], json!({"message": "bad", "code": "ERROR"}));
    assert_eq!(row["attributes"], json!([["n", "42"], ["d", "2.5"], ["b", "\"AAEC\""], ["a", "[true]"]]));
    assert_eq!(read_rows(&tables[1]).await, canonical);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_json_errors_and_partial_success_are_json() {
    let c = Collector::start(&[]).await;
    let r = post_json(&c.traces_url(), "{\"resourceSpans\": [").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["content-type"], "application/json");
    let status: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(status["code"], 3);
    assert!(status["message"].as_str().unwrap().contains("JSON"), "{status}");

    let bad_hex = CANONICAL.replace("5b8efff798038103d269b633813fc60c", "not-hex-at-all!!");
    let r = post_json(&c.traces_url(), &bad_hex).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let short_id = CANONICAL.replace("5b8efff798038103d269b633813fc60c", "5b8e");
    let r = post_json(&c.traces_url(), &short_id).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["partialSuccess"]["rejectedSpans"], "1");
    assert!(body["partialSuccess"]["errorMessage"].as_str().unwrap().contains("trace_id"));

    let r = post_json(&c.traces_url(), "").await;
    assert_eq!(r.status(), StatusCode::OK);
    c.stop().await.unwrap();
}

fn compress(encoding: &str, data: &[u8]) -> Vec<u8> {
    match encoding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "zstd" => zstd::stream::encode_all(data, 3).unwrap(),
        "snappy" => {
            let mut e = snap::write::FrameEncoder::new(Vec::new());
            e.write_all(data).unwrap();
            e.into_inner().unwrap()
        }
        "lz4" => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        other => panic!("no encoder for {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_content_encoding_is_accepted_and_bombs_are_413() {
    let c = Collector::start(&["--max-request-size", "64KiB"]).await;
    let encodings = ["gzip", "deflate", "zstd", "snappy", "lz4"];
    for (i, encoding) in encodings.iter().enumerate() {
        let body = compress(encoding, &request(200 + i as u64, 3).encode_to_vec());
        let r = post_encoded(&c.traces_url(), "application/x-protobuf", Some(encoding), body).await;
        assert_eq!(r.status(), StatusCode::OK, "{encoding}");
        // 1 MiB of zeros: under the 64 KiB limit compressed, 16 times over it inflated.
        let bomb = compress(encoding, &vec![0u8; 1 << 20]);
        assert!(bomb.len() < 64 << 10, "{encoding}: {}", bomb.len());
        let r = post_encoded(&c.traces_url(), "application/x-protobuf", Some(encoding), bomb).await;
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE, "{encoding} bomb");
    }
    let table = c.stop().await.unwrap();
    assert_eq!(read_rows(&table).await.len(), 3 * encodings.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_and_origin_headers_for_configured_origins() {
    let c = Collector::start(&["--cors-allowed-origins", "https://app.example.com"]).await;
    let client = reqwest::Client::new();
    let r = client
        .request(reqwest::Method::OPTIONS, c.traces_url())
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(r.headers()["access-control-allow-methods"], "POST");
    let r = client
        .post(c.traces_url())
        .header("origin", "https://app.example.com")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.example.com");
    // Another origin gets no CORS headers and no preflight.
    let r = client
        .request(reqwest::Method::OPTIONS, c.traces_url())
        .header("origin", "https://elsewhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    c.stop().await.unwrap();
}

async fn grpc_client(c: &Collector) -> TraceServiceClient<tonic::transport::Channel> {
    TraceServiceClient::connect(c.grpc_url())
        .await
        .unwrap()
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX)
}

fn has_retry_info(status: &tonic::Status) -> bool {
    status.details().windows(9).any(|w| w == b"RetryInfo")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_statuses_follow_the_spec() {
    let c = Collector::start(&["--max-request-size", "1MiB"]).await;
    let mut client = grpc_client(&c).await;

    // OK, with partial success for a span with a bad id.
    let mut req = request(300, 3);
    req.resource_spans[0].scope_spans[0].spans[0].span_id = vec![1];
    let response = client.export(req).await.unwrap().into_inner();
    assert_eq!(response.partial_success.unwrap().rejected_spans, 1);
    // An empty request is fine.
    assert!(client.export(ExportTraceServiceRequest::default()).await.is_ok());

    // Permanently invalid data: INVALID_ARGUMENT.
    let mut deep = AnyValue { value: Some(any_value::Value::IntValue(1)) };
    for _ in 0..100 {
        deep = AnyValue { value: Some(any_value::Value::ArrayValue(ArrayValue { values: vec![deep] })) };
    }
    let mut req = request(301, 1);
    req.resource_spans[0].scope_spans[0].spans[0].attributes.push(KeyValue {
        key: "deep".into(),
        value: Some(deep),
        ..Default::default()
    });
    let status = client.export(req).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    // Over the limit, plain and gzip-compressed (a bomb): RESOURCE_EXHAUSTED without RetryInfo.
    let mut big = request(302, 1);
    big.resource_spans[0].scope_spans[0].spans[0].name = "x".repeat(2 << 20);
    let status = client.export(big.clone()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(!has_retry_info(&status));
    let mut gzip_client = grpc_client(&c).await.send_compressed(tonic::codec::CompressionEncoding::Gzip);
    let status = gzip_client.export(big).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");

    // Still serving.
    assert!(client.export(request(303, 2)).await.is_ok());
    let table = c.stop().await.unwrap();
    assert_eq!(read_rows(&table).await.len(), 2 + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_overload_is_unavailable_with_retry_info() {
    let c = Collector::start(&["--flush-interval", "3s", "--max-request-size", "6KiB", "--max-inflight-size", "8KiB"])
        .await;
    let mut first_client = grpc_client(&c).await;
    let first = tokio::spawn(async move { first_client.export(request(400, 64)).await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut client = grpc_client(&c).await;
    let status = client.export(request(401, 64)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(has_retry_info(&status), "UNAVAILABLE carries RetryInfo");
    first.await.unwrap().unwrap();
    c.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_grpc_methods_are_unimplemented() {
    let c = Collector::start(&[]).await;
    let r = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
        .post(format!("{}/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export", c.grpc_url()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["grpc-status"], "12");
    c.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_takes_messages_over_4_mib_and_many_calls_on_one_connection() {
    let c = Collector::start(&[]).await;
    let client = grpc_client(&c).await;
    // 5 MiB: over gRPC's usual 4 MiB default, under the OTLP-recommended 64 MiB.
    let mut big = request(500, 1);
    big.resource_spans[0].scope_spans[0].spans[0].name = "y".repeat(5 << 20);
    client.clone().export(big).await.unwrap();
    // Concurrent unary calls multiplexed on one HTTP/2 connection (clones share the channel).
    let calls: Vec<_> = (0..16u64)
        .map(|i| {
            let mut client = client.clone();
            tokio::spawn(async move { client.export(request(600 + i, 4)).await.map(|_| ()) })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let table = c.stop().await.unwrap();
    assert_eq!(read_rows(&table).await.len(), 1 + 16 * 4);
}
