//! The OpenTelemetry Rust SDK's OTLP exporters (HTTP protobuf, HTTP protobuf + gzip, HTTP JSON, gRPC + gzip)
//! → collector → Delta table. Each transport lands the same rows.

use std::time::Duration;

use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{KeyValue, Value as OtelValue};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use serde_json::{json, Value};

use crate::support::{map_get, read_rows, Collector};

#[derive(Debug, Clone, Copy)]
enum Transport {
    HttpProtobuf,
    HttpProtobufGzip,
    HttpJson,
    GrpcGzip,
}

/// The SDK's OTLP exporter of `$kind` (`SpanExporter`, `LogExporter`: their builders share no trait) for the
/// collector at `$addr` over `$transport`; OTLP/HTTP posts to `$path`.
macro_rules! exporter {
    ($kind:path, $addr:expr, $path:literal, $transport:expr) => {{
        let http = |protocol| {
            <$kind>::builder()
                .with_http()
                .with_protocol(protocol)
                .with_endpoint(format!("http://{}{}", $addr, $path))
                .with_timeout(Duration::from_secs(30))
        };
        match $transport {
            Transport::HttpProtobuf => http(Protocol::HttpBinary).build(),
            Transport::HttpProtobufGzip => {
                http(Protocol::HttpBinary).with_compression(opentelemetry_otlp::Compression::Gzip).build()
            }
            Transport::HttpJson => http(Protocol::HttpJson).build(),
            Transport::GrpcGzip => <$kind>::builder()
                .with_tonic()
                .with_endpoint(format!("http://{}", $addr))
                .with_compression(opentelemetry_otlp::Compression::Gzip)
                .with_timeout(Duration::from_secs(30))
                .build(),
        }
        .expect("exporter builds")
    }};
}

/// Export the same two spans with the SDK, on a plain thread with its own tokio runtime entered (the blocking
/// HTTP client must not run inside the test's runtime; tonic needs a runtime to run in).
fn export_with_sdk(collector_addr: std::net::SocketAddr, transport: Transport) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let _entered = runtime.enter();
        let exporter = exporter!(opentelemetry_otlp::SpanExporter, collector_addr, "/v1/traces", transport);
        // The simple processor exports each span as it ends, on this thread.
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter)
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

/// The two spans exported with `transport` to a collector started with `extra`, read back from its table: the
/// parent ("GET /cart") first.
async fn exported_rows(extra: &[&str], transport: Transport) -> Vec<Value> {
    let collector = Collector::start(extra).await;
    let addr = collector.addr;
    tokio::task::spawn_blocking(move || export_with_sdk(addr, transport)).await.unwrap();
    let table = collector.stop().await.unwrap();
    let mut rows = read_rows(&table).await;
    assert_eq!(rows.len(), 2, "{transport:?}: {rows:#?}");
    rows.sort_by_key(|r| r["name"].as_str().unwrap().to_owned());
    rows
}

/// Export with `transport`, read the table, check the rows, and return them without ids and times (which differ
/// from run to run) for comparison across transports.
async fn rows_via(transport: Transport) -> Vec<Value> {
    // v1 rows (`v2_rows_keep_the_types_the_sdk_sent` checks the SDK's spans in v2).
    let mut rows = exported_rows(&["--layout", "v1"], transport).await;
    let (parent, child) = (&rows[0], &rows[1]);
    assert_eq!(parent["name"], "GET /cart");
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

    for row in &mut rows {
        let row = row.as_object_mut().unwrap();
        for varying in ["trace_id", "span_id", "parent_span_id", "start_time_unix_nano", "end_time_unix_nano"] {
            row.remove(varying);
        }
        for event in row["events"].as_array_mut().unwrap() {
            event.as_object_mut().unwrap().remove("time_unix_nano");
        }
        // The SDK keeps its resource in a hash map: each exporter sends those attributes in its own order.
        if let Some(resource) = row["resource"]["attributes"].as_array_mut() {
            resource.sort_by_key(|kv| kv[0].as_str().unwrap_or_default().to_owned());
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sdk_transport_lands_the_same_rows() {
    let reference = rows_via(Transport::HttpProtobuf).await;
    for transport in [Transport::HttpProtobufGzip, Transport::HttpJson, Transport::GrpcGzip] {
        assert_eq!(rows_via(transport).await, reference, "{transport:?} differs from HTTP protobuf");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_rows_keep_the_types_the_sdk_sent() {
    for transport in [Transport::HttpProtobuf, Transport::GrpcGzip] {
        let rows = exported_rows(&["--layout", "v2"], transport).await;
        let (parent, child) = (&rows[0], &rows[1]);
        assert_eq!(parent["kind"], "SPAN_KIND_INTERNAL");
        assert_eq!(parent["parent_span_id"], Value::Null);
        assert_eq!(child["parent_span_id"], parent["span_id"]);
        assert_eq!(child["kind"], "SPAN_KIND_CLIENT");
        assert_eq!(child["status"], json!({"message": "timeout", "code": "STATUS_CODE_ERROR"}));
        assert_eq!(
            parent["attributes"],
            json!({
                "http.response.status_code": {"int": 200},
                "http.route": "/cart",
                "sampled.ratio": {"double": 0.5},
                "cache.hit": true,
                "items": ["a", "b"],
            })
        );
        assert_eq!(parent["events"][0]["attributes"], json!({"items.count": {"int": 2}}));
        assert_eq!(parent["service_name"], "checkout");
        assert_eq!(parent["resource"]["attributes"]["service.name"], "checkout");
        assert_eq!(parent["resource"]["attributes"]["deployment.environment"], "test");
        let micros = parent["start_time_unix_nano"].as_i64().unwrap() / 1_000;
        assert_eq!(parent["time"], json!({"micros": micros}));
        assert_eq!(parent["date"], json!({"days": micros.div_euclid(86_400_000_000)}));
        let id = parent["record_id"].as_str().unwrap();
        assert_eq!((id.len(), &id[14..15]), (36, "7"), "{id}");
        assert_ne!(parent["record_id"], child["record_id"]);
    }
}

/// Emit three log records with the Rust SDK's OTLP log exporter over `transport` (a plain thread, as
/// [`export_with_sdk`]): one inside a trace, with attributes of every kind.
fn export_logs_with_sdk(collector_addr: std::net::SocketAddr, transport: Transport) {
    use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let _entered = runtime.enter();
        let exporter = exporter!(opentelemetry_otlp::LogExporter, collector_addr, "/v1/logs", transport);
        let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
            .with_simple_exporter(exporter)
            .with_resource(Resource::builder().with_service_name("checkout").build())
            .build();
        let logger = provider
            .logger_with_scope(opentelemetry::InstrumentationScope::builder("shop.logs").with_version("2.0.0").build());
        let at = std::time::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        for (i, (severity, text)) in
            [(Severity::Info, "INFO"), (Severity::Warn, "WARN"), (Severity::Error, "ERROR")].into_iter().enumerate()
        {
            let mut record = logger.create_log_record();
            record.set_timestamp(at + Duration::from_secs(i as u64));
            record.set_severity_number(severity);
            record.set_severity_text(text);
            record.set_body(AnyValue::from(format!("cart event {i}")));
            record.add_attribute("items.count", i as i64);
            record.add_attribute("ratio", 0.5);
            record.add_attribute("cache.hit", i == 1);
            record.add_attribute("user", "ada");
            if i == 2 {
                record.set_trace_context(
                    opentelemetry::trace::TraceId::from_bytes([7; 16]),
                    opentelemetry::trace::SpanId::from_bytes([8; 8]),
                    Some(opentelemetry::trace::TraceFlags::SAMPLED),
                );
            }
            logger.emit(record);
        }
        provider.force_flush().expect("log records are acknowledged");
        provider.shutdown().expect("clean shutdown");
    })
    .join()
    .expect("exporter thread");
}

/// The three log records exported with `transport` to a collector in `layout`, read back from its logs table by
/// body, observed times (set by the SDK when emitted) and v2 record ids (random) left out.
async fn exported_log_rows(layout: &str, transport: Transport) -> Vec<Value> {
    let collector = Collector::start(&["--layout", layout]).await;
    let addr = collector.addr;
    tokio::task::spawn_blocking(move || export_logs_with_sdk(addr, transport)).await.unwrap();
    let stopped = collector.stop().await.unwrap();
    let mut rows = read_rows(stopped.table.with_file_name("logs")).await;
    assert_eq!(rows.len(), 3, "{transport:?}: {rows:#?}");
    for row in &mut rows {
        let row = row.as_object_mut().unwrap();
        assert!(row.remove("observed_time_unix_nano").unwrap().as_i64().unwrap() > 1_700_000_000_000_000_000);
        row.remove("record_id");
        if let Some(resource) = row["resource"]["attributes"].as_array_mut() {
            resource.sort_by_key(|kv| kv[0].as_str().unwrap_or_default().to_owned());
        }
    }
    rows.sort_by_key(|r| r["body"].to_string());
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_log_records_land_field_by_field_over_every_transport() {
    let v1 = exported_log_rows("v1", Transport::HttpProtobuf).await;
    let last = &v1[2];
    assert_eq!(last["body"], "cart event 2");
    assert_eq!((&last["severity_number"], &last["severity_text"]), (&json!("ERROR"), &json!("ERROR")));
    assert_eq!(last["time_unix_nano"], 1_700_000_002_123_456_789_i64);
    assert_eq!((&last["trace_id"], &last["span_id"]), (&json!("07".repeat(16)), &json!("08".repeat(8))));
    assert_eq!(last["flags"], 1);
    assert_eq!(v1[0]["trace_id"], "", "no trace context: an empty id in v1");
    assert_eq!(map_get(&last["attributes"], "items.count"), Some(&json!("2")));
    assert_eq!(map_get(&last["attributes"], "ratio"), Some(&json!("0.5")));
    assert_eq!(map_get(&last["attributes"], "cache.hit"), Some(&json!("false")));
    assert_eq!(map_get(&last["attributes"], "user"), Some(&json!("ada")));
    assert_eq!(map_get(&last["resource"]["attributes"], "service.name"), Some(&json!("checkout")));
    assert_eq!(last["instrumentation_scope"]["name"], "shop.logs");
    assert_eq!(last["instrumentation_scope"]["version"], "2.0.0");
    for transport in [Transport::HttpProtobufGzip, Transport::HttpJson, Transport::GrpcGzip] {
        assert_eq!(exported_log_rows("v1", transport).await, v1, "{transport:?} differs from HTTP protobuf");
    }

    let v2 = exported_log_rows("v2", Transport::GrpcGzip).await;
    let last = &v2[2];
    assert_eq!(last["body"], "cart event 2");
    assert_eq!(last["severity_number"], "SEVERITY_NUMBER_ERROR");
    assert_eq!(
        last["attributes"],
        json!({"items.count": {"int": 2}, "ratio": {"double": 0.5}, "cache.hit": false, "user": "ada"})
    );
    assert_eq!(v2[0]["trace_id"], Value::Null, "no trace context: NULL in v2");
    assert_eq!(last["service_name"], "checkout");
    assert_eq!(last["time"], json!({"micros": 1_700_000_002_123_456_i64}));
    assert_eq!(exported_log_rows("v2", Transport::HttpJson).await, v2, "JSON differs from gRPC");
}
