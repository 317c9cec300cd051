//! Bearer-token authentication (`--auth-token-file`): the OpenTelemetry SDK with its token lands rows; a missing or
//! wrong token gets 401 (HTTP) / UNAUTHENTICATED (gRPC) and writes nothing; a replaced token file takes effect
//! while serving; probes stay open.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message as _;
use reqwest::StatusCode;

use crate::http::{request, RpcStatus};
use crate::support::{read_rows, Collector};

const PROTOBUF: &str = "application/x-protobuf";

/// POST two spans (none with `seed` 0) with this Authorization header, if any.
async fn post_with(url: &str, authorization: Option<&str>, seed: u64) -> reqwest::Response {
    let mut post = reqwest::Client::new().post(url).header("content-type", PROTOBUF);
    if let Some(value) = authorization {
        post = post.header("authorization", value);
    }
    let spans = if seed == 0 { 0 } else { 2 };
    post.body(request(seed, spans).encode_to_vec()).send().await.unwrap()
}

/// One span named `name`, exported by the SDK's OTLP/HTTP exporter with `token` as its bearer token.
fn export_with_sdk(addr: std::net::SocketAddr, token: &'static str, name: &'static str) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let _entered = runtime.enter();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("http://{addr}/v1/traces"))
            .with_headers(HashMap::from([("authorization".to_owned(), format!("Bearer {token}"))]))
            .with_timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().with_simple_exporter(exporter).build();
        provider.tracer("auth-test").in_span(name, |_| {});
        provider.force_flush().expect("the span is acknowledged");
        provider.shutdown().unwrap();
    })
    .join()
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_need_a_bearer_token_of_the_file_and_a_replaced_file_takes_effect() {
    let tokens = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tokens.path(), "# collectors\ntoken-one\ntoken-two\n").unwrap();
    let c = Collector::start(&["--auth-token-file", tokens.path().to_str().unwrap()]).await;
    let url = c.traces_url();

    // Refused before the body is read: 401, a Bearer challenge and an OTLP status body.
    for refused in [None, Some("Bearer nope"), Some("Basic dG9rZW4tb25lOg=="), Some("Bearer token-on")] {
        let r = post_with(&url, refused, 1).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{refused:?}");
        assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"), "{refused:?}");
        let status = RpcStatus::decode(r.bytes().await.unwrap()).unwrap();
        assert_eq!(status.code, 16, "UNAUTHENTICATED");
    }
    for probe in ["/health", "/ready"] {
        let r = reqwest::get(format!("http://{}{probe}", c.addr)).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{probe} needs no token");
    }
    assert_eq!(post_with(&url, Some("Bearer token-two"), 2).await.status(), StatusCode::OK);
    let addr = c.addr;
    tokio::task::spawn_blocking(move || export_with_sdk(addr, "token-one", "sdk span")).await.unwrap();

    // gRPC: the same tokens, as metadata.
    let mut client = TraceServiceClient::connect(c.grpc_url()).await.unwrap();
    let status = client.export(request(3, 2)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let mut call = tonic::Request::new(request(4, 2));
    call.metadata_mut().insert("authorization", "Bearer token-one".parse().unwrap());
    client.export(call).await.unwrap();

    // The file replaced while serving: within a few of its one-second checks, only the new token lets in (probed
    // with span-less requests, which write nothing either way).
    std::fs::write(tokens.path(), "token-three\n").unwrap();
    let mut refused_old = false;
    for _ in 0..100 {
        if post_with(&url, Some("Bearer token-one"), 0).await.status() == StatusCode::UNAUTHORIZED {
            refused_old = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused_old, "the old token still let in after 10 s");
    assert_eq!(post_with(&url, Some("Bearer token-three"), 6).await.status(), StatusCode::OK);

    let table = c.stop().await.unwrap();
    let rows = read_rows(&table).await;
    let names: HashSet<&str> = rows.iter().filter_map(|r| r["name"].as_str()).collect();
    let expected: HashSet<&str> = ["op-2-0", "op-2-1", "sdk span", "op-4-0", "op-4-1", "op-6-0", "op-6-1"].into();
    assert!(!names.contains("op-1-0") && !names.contains("op-3-0"), "refused exports wrote nothing");
    assert_eq!(names, expected, "only the authenticated exports were written");
    assert_eq!(rows.len(), expected.len());
}
