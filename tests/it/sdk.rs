//! The OpenTelemetry Rust SDK's OTLP/HTTP protobuf exporter → collector → Delta table.

use std::time::Duration;

use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{KeyValue, Value as OtelValue};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use serde_json::json;

use crate::support::{map_get, read_rows, Collector};

/// Export spans with the SDK on a plain thread (its blocking HTTP client must not run inside tokio).
fn export_with_sdk(endpoint: String, gzip: bool) {
    std::thread::spawn(move || {
        let mut builder = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .with_timeout(Duration::from_secs(30));
        if gzip {
            builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
        }
        let exporter = builder.build().expect("exporter builds");
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name("checkout")
                    .with_attribute(KeyValue::new("deployment.environment", "test"))
                    .build(),
            )
            .build();
        let tracer = provider.tracer_with_scope(
            opentelemetry::InstrumentationScope::builder("shop.instrumentation").with_version("1.2.3").build(),
        );
        tracer.in_span("GET /cart", |cx| {
            let span = cx.span();
            span.set_attribute(KeyValue::new("http.response.status_code", 200));
            span.set_attribute(KeyValue::new("http.route", "/cart"));
            span.set_attribute(KeyValue::new("sampled.ratio", 0.5));
            span.set_attribute(KeyValue::new("cache.hit", true));
            span.set_attribute(KeyValue::new(
                "items",
                OtelValue::Array(
                    vec![opentelemetry::StringValue::from("a"), opentelemetry::StringValue::from("b")].into(),
                ),
            ));
            span.add_event("cart loaded", vec![KeyValue::new("items.count", 2)]);
            let mut child =
                tracer.span_builder("SELECT cart").with_kind(SpanKind::Client).start_with_context(&tracer, &cx);
            child.set_status(Status::error("timeout"));
            child.end();
        });
        provider.force_flush().expect("spans are acknowledged");
        provider.shutdown().expect("clean shutdown");
    })
    .join()
    .expect("exporter thread");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_spans_land_as_rows() {
    let collector = Collector::start(&[]).await;
    let endpoint = collector.traces_url();
    tokio::task::spawn_blocking(move || export_with_sdk(endpoint, false)).await.unwrap();
    let table = collector.stop().await.unwrap();

    let rows = read_rows(&table).await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let parent = rows.iter().find(|r| r["name"] == "GET /cart").unwrap();
    let child = rows.iter().find(|r| r["name"] == "SELECT cart").unwrap();

    assert_eq!(parent["kind"], "INTERNAL");
    assert_eq!(parent["parent_span_id"], "");
    assert_eq!(parent["trace_id"].as_str().unwrap().len(), 32);
    assert_eq!(child["trace_id"], parent["trace_id"]);
    assert_eq!(child["parent_span_id"], parent["span_id"]);
    assert_eq!(child["kind"], "CLIENT");
    assert_eq!(child["status"], json!({"message": "timeout", "code": "ERROR"}));
    assert_eq!(parent["status"]["code"], "UNSET");

    let attrs = &parent["attributes"];
    assert_eq!(map_get(attrs, "http.response.status_code"), Some(&json!("200")));
    assert_eq!(map_get(attrs, "http.route"), Some(&json!("/cart")));
    assert_eq!(map_get(attrs, "sampled.ratio"), Some(&json!("0.5")));
    assert_eq!(map_get(attrs, "cache.hit"), Some(&json!("true")));
    assert_eq!(map_get(attrs, "items"), Some(&json!("[\"a\",\"b\"]")));

    let events = parent["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["name"], "cart loaded");
    assert_eq!(map_get(&events[0]["attributes"], "items.count"), Some(&json!("2")));

    assert_eq!(map_get(&parent["resource"]["attributes"], "service.name"), Some(&json!("checkout")));
    assert_eq!(map_get(&parent["resource"]["attributes"], "deployment.environment"), Some(&json!("test")));
    assert_eq!(parent["instrumentation_scope"]["name"], "shop.instrumentation");
    assert_eq!(parent["instrumentation_scope"]["version"], "1.2.3");
    let start = parent["start_time_unix_nano"].as_i64().unwrap();
    assert!(start > 1_600_000_000_000_000_000 && parent["end_time_unix_nano"].as_i64().unwrap() >= start);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_gzip_export_lands_too() {
    let collector = Collector::start(&[]).await;
    let endpoint = collector.traces_url();
    tokio::task::spawn_blocking(move || export_with_sdk(endpoint, true)).await.unwrap();
    let table = collector.stop().await.unwrap();
    assert_eq!(read_rows(&table).await.len(), 2);
}
