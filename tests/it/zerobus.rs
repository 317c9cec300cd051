//! The Zerobus sink against a local gRPC server implementing `databricks.zerobus.Zerobus/EphemeralStream` from the
//! SDK's published proto (the server stubs the SDK's own build generates), beside the fake workspace of
//! `databricks.rs`: the real binary, started with app.yaml's command and values, streams every span as a record
//! of the table's layout, answers a request only after Zerobus acknowledged its records, and survives a dropped
//! stream without losing an acknowledged span.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use databricks_zerobus_ingest_sdk::databricks::zerobus::zerobus_server::{Zerobus, ZerobusServer};
use databricks_zerobus_ingest_sdk::databricks::zerobus::{
    ephemeral_stream_request, ephemeral_stream_response, ingest_record_batch_request, CreateIngestStreamResponse,
    EphemeralStreamRequest, EphemeralStreamResponse, IngestRecordResponse, PersistentStreamRequest,
    PersistentStreamResponse, RecordType, RetireStreamRequest, RetireStreamResponse,
};
use futures::Stream;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status as SpanStatus};
use prost::Message as _;
use prost_reflect::{DynamicMessage, FieldDescriptor, MapKey, ReflectMessage as _};
use serde_json::{json, Value};
use tonic::{Request, Response, Status, Streaming};

use crate::databricks::{app_yaml, v5, FakeDatabricks, FakeState, CLIENT, PAT};
use crate::stores::Serve;
use otel_delta::Layout;

const SPANS: &str = "main.default.otel_otel_spans";

/// What the fake Zerobus server saw and holds.
#[derive(Default)]
pub struct ZerobusState {
    /// Per stream created: (authorization, x-databricks-zerobus-table-name, create request's table name).
    pub streams: Vec<(String, String, String)>,
    /// The descriptor of the last stream created.
    pub descriptor: Vec<u8>,
    /// Records acknowledged as durable, in order.
    pub durable: Vec<Vec<u8>>,
    /// Batches received (all streams).
    pub batches: usize,
    /// End the stream with UNAVAILABLE, unacknowledged, when this batch arrives (1-based, over all streams).
    pub drop_at_batch: Option<usize>,
    pub dropped: usize,
    /// Refuse this batch (1-based, over all streams) as INVALID_ARGUMENT: an error the SDK does not retry, so its
    /// stream fails for good.
    pub refuse_batch: Option<usize>,
    /// Refuse every stream as unauthenticated.
    pub reject_all: bool,
}

#[derive(Clone)]
struct FakeZerobus(Arc<Mutex<ZerobusState>>);

type Responses = Pin<Box<dyn Stream<Item = Result<EphemeralStreamResponse, Status>> + Send>>;
type PersistentResponses = Pin<Box<dyn Stream<Item = Result<PersistentStreamResponse, Status>> + Send>>;

fn respond(payload: ephemeral_stream_response::Payload) -> Result<EphemeralStreamResponse, Status> {
    Ok(EphemeralStreamResponse { payload: Some(payload) })
}

#[tonic::async_trait]
impl Zerobus for FakeZerobus {
    type EphemeralStreamStream = Responses;
    type PersistentStreamStream = PersistentResponses;

    async fn ephemeral_stream(
        &self,
        request: Request<Streaming<EphemeralStreamRequest>>,
    ) -> Result<Response<Responses>, Status> {
        let header =
            |name: &str| request.metadata().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let (authorization, table_header) = (header("authorization"), header("x-databricks-zerobus-table-name"));
        let token = authorization.strip_prefix("Bearer ").unwrap_or_default();
        if self.0.lock().unwrap().reject_all || !(token == PAT || token.starts_with("oauth-")) {
            return Err(Status::unauthenticated("invalid token"));
        }
        let mut inbound = request.into_inner();
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let state = self.0.clone();
        tokio::spawn(async move {
            let create = match inbound.message().await {
                Ok(Some(EphemeralStreamRequest {
                    payload: Some(ephemeral_stream_request::Payload::CreateStream(c)),
                })) => c,
                _ => {
                    let _ = tx.unbounded_send(Err(Status::invalid_argument("the first message must be create_stream")));
                    return;
                }
            };
            let table = create.table_name.clone().unwrap_or_default();
            if table != table_header
                || create.record_type != Some(RecordType::Proto as i32)
                || create.descriptor_proto.as_deref().is_none_or(<[u8]>::is_empty)
            {
                let _ = tx.unbounded_send(Err(Status::invalid_argument("table name, PROTO records and a descriptor")));
                return;
            }
            {
                let mut s = state.lock().unwrap();
                s.streams.push((authorization, table_header, table));
                s.descriptor = create.descriptor_proto.clone().unwrap_or_default();
                let id = format!("stream-{}", s.streams.len());
                let created = CreateIngestStreamResponse { stream_id: Some(id) };
                let _ = tx.unbounded_send(respond(ephemeral_stream_response::Payload::CreateStreamResponse(created)));
            }
            while let Ok(Some(message)) = inbound.message().await {
                let (offset, records) = match message.payload {
                    Some(ephemeral_stream_request::Payload::IngestRecordBatch(batch)) => match batch.batch {
                        Some(ingest_record_batch_request::Batch::ProtoEncodedBatch(p)) => (batch.offset_id, p.records),
                        _ => (None, Vec::new()),
                    },
                    Some(ephemeral_stream_request::Payload::IngestRecord(record)) => match record.record {
                        Some(databricks_zerobus_ingest_sdk::databricks::zerobus::ingest_record_request::Record::ProtoEncodedRecord(r)) => {
                            (record.offset_id, vec![r])
                        }
                        _ => (None, Vec::new()),
                    },
                    _ => (None, Vec::new()),
                };
                let Some(offset) = offset.filter(|_| !records.is_empty()) else {
                    let _ = tx.unbounded_send(Err(Status::invalid_argument("an offset and proto records")));
                    return;
                };
                let mut s = state.lock().unwrap();
                s.batches += 1;
                if s.drop_at_batch == Some(s.batches) {
                    // A server going away mid-stream: nothing of this batch is durable or acknowledged.
                    s.dropped += 1;
                    let _ = tx.unbounded_send(Err(Status::unavailable("server restarting")));
                    return;
                }
                if s.refuse_batch == Some(s.batches) {
                    let _ = tx.unbounded_send(Err(Status::invalid_argument("record rejected")));
                    return;
                }
                s.durable.extend(records);
                let ack = IngestRecordResponse { durability_ack_up_to_offset: Some(offset) };
                let _ = tx.unbounded_send(respond(ephemeral_stream_response::Payload::IngestRecordResponse(ack)));
            }
        });
        Ok(Response::new(Box::pin(rx)))
    }

    async fn persistent_stream(
        &self,
        _request: Request<Streaming<PersistentStreamRequest>>,
    ) -> Result<Response<PersistentResponses>, Status> {
        Err(Status::unimplemented("persistent streams"))
    }

    async fn retire_stream(
        &self,
        _request: Request<RetireStreamRequest>,
    ) -> Result<Response<RetireStreamResponse>, Status> {
        Err(Status::unimplemented("persistent streams"))
    }
}

struct ZerobusServerHandle {
    endpoint: String,
    state: Arc<Mutex<ZerobusState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ZerobusServerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_zerobus(state: ZerobusState) -> ZerobusServerHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(Mutex::new(state));
    let service = ZerobusServer::new(FakeZerobus(state.clone()));
    let incoming = futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    });
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming).await;
    });
    ZerobusServerHandle { endpoint, state, task }
}

/// The spans table as Databricks describes a managed table MLflow created (the v1 columns).
fn managed_spans_table() -> Value {
    json!({ "full_name": SPANS, "table_id": "t-managed", "table_type": "MANAGED", "data_source_format": "DELTA",
        "storage_location": "s3://databricks-managed/t-managed", "columns": otel_delta::testing::databricks::unity::columns_json(otel_delta::Contract::spans_v1()) })
}

/// The spans table as Databricks describes a managed v2 table the workspace created (v2 columns: VARIANT,
/// TIMESTAMP, DATE; its `otel.schemaVersion`).
fn managed_v2_spans_table() -> Value {
    let columns = otel_delta::testing::databricks::unity::columns_json(otel_delta::Contract::spans_v2());
    json!({ "full_name": SPANS, "table_id": "t-managed-v2", "table_type": "MANAGED", "data_source_format": "DELTA",
        "storage_location": "s3://databricks-managed/t-managed-v2", "columns": columns,
        "properties": { "otel.schemaVersion": "v2" } })
}

/// The fake Zerobus server and workspace (holding the managed spans table), and the binary started with app.yaml's
/// command and values, pointed at the fakes, plus `auth`.
async fn start_app(zerobus: ZerobusState, auth: &[(&str, &str)]) -> (ZerobusServerHandle, FakeDatabricks, Serve) {
    start_app_on(managed_spans_table(), zerobus, auth).await
}

/// [`start_app`] with the workspace holding `table` as the spans table.
async fn start_app_on(
    table: Value,
    zerobus: ZerobusState,
    auth: &[(&str, &str)],
) -> (ZerobusServerHandle, FakeDatabricks, Serve) {
    let mut state = v5();
    state.tables.insert(SPANS.into(), table);
    start_app_in(state, zerobus, auth, "traces").await
}

/// [`start_app`] on a workspace in `state`, taking `signals` (`OTEL_DELTA_SIGNALS`: the fake Zerobus server keeps
/// one descriptor, so each test streams into one table).
async fn start_app_in(
    state: FakeState,
    zerobus: ZerobusState,
    auth: &[(&str, &str)],
    signals: &str,
) -> (ZerobusServerHandle, FakeDatabricks, Serve) {
    let zerobus = start_zerobus(zerobus).await;
    let fake = FakeDatabricks::start(state).await;
    let (command, yaml_env) = app_yaml();
    let args: Vec<String> =
        command[1..].iter().map(|a| a.replace("0.0.0.0", "127.0.0.1").replace("$DATABRICKS_APP_PORT", "0")).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut env: Vec<(&str, String)> =
        yaml_env.iter().filter(|(k, _)| k != "DATABRICKS_HOST").map(|(k, v)| (k.as_str(), v.clone())).collect();
    env.push(("DATABRICKS_HOST", fake.host()));
    // The endpoint app.yaml leaves to derivation would be a real host: the fake's, given as the override.
    env.push(("ZEROBUS_ENDPOINT", zerobus.endpoint.clone()));
    env.push(("OTEL_DELTA_FLUSH_INTERVAL", "200ms".into()));
    env.push(("OTEL_DELTA_SIGNALS", signals.into()));
    env.extend(auth.iter().map(|(k, v)| (*k, v.to_string())));
    let serve = Serve::spawn(&args, &env).await;
    (zerobus, fake, serve)
}

fn decode_all(state: &ZerobusState) -> Vec<DynamicMessage> {
    let proto = prost_types::DescriptorProto::decode(state.descriptor.as_slice()).expect("a DescriptorProto");
    let descriptor = databricks_zerobus_ingest_sdk::message_descriptor(&proto).expect("a valid descriptor");
    state.durable.iter().map(|r| DynamicMessage::decode(descriptor.clone(), r.as_slice()).expect("a record")).collect()
}

fn text(m: &DynamicMessage, name: &str) -> String {
    m.get_field_by_name(name).and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zerobus_sink_acknowledges_durable_records_and_recovers_a_dropped_stream() {
    // The secret's PAT, and the service principal Databricks Apps inject: the PAT is used, as in the original.
    let auth = [("DATABRICKS_TOKEN", PAT), ("DATABRICKS_CLIENT_ID", "app-sp"), ("DATABRICKS_CLIENT_SECRET", "x")];
    let (zerobus, _fake, c) = start_app(ZerobusState { drop_at_batch: Some(3), ..Default::default() }, &auth).await;
    assert!(c.table_line().contains(SPANS) && c.table_line().contains("Zerobus"), "{}", c.table_line());

    let mut acked = Vec::new();
    for seed in 0..8u64 {
        let request = crate::http::request(700 + seed, 5);
        let durable_before = zerobus.state.lock().unwrap().durable.len();
        let body = prost::Message::encode_to_vec(&request);
        let status = crate::http::post(&c.traces_url, "application/x-protobuf", body).await.status();
        assert_eq!(status, reqwest::StatusCode::OK, "{}", c.logs());
        // Answered only after Zerobus acknowledged the request's records.
        assert!(zerobus.state.lock().unwrap().durable.len() >= durable_before + 5, "acked before durable");
        acked.extend(crate::stores::span_keys(&request));
    }
    // The self-metrics count what Zerobus acknowledged, as the exporter and as the receiver.
    let metrics = c.metrics().await;
    for line in [
        format!(r#"otelcol_exporter_sent_spans_total{{exporter="zerobus"}} {}"#, acked.len()),
        format!(r#"otelcol_receiver_accepted_spans_total{{receiver="otlp",transport="http"}} {}"#, acked.len()),
    ] {
        assert!(metrics.lines().any(|l| l == line), "no {line:?} in\n{metrics}");
    }
    c.stop().await;

    let state = zerobus.state.lock().unwrap();
    assert_eq!(state.dropped, 1);
    assert!(state.streams.len() >= 2, "the dropped stream was replaced: {:?}", state.streams);
    for (authorization, header, table) in &state.streams {
        assert_eq!(authorization, &format!("Bearer {PAT}"));
        assert_eq!((header.as_str(), table.as_str()), (SPANS, SPANS));
    }
    let records = decode_all(&state);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in &records {
        *seen.entry(format!("{}{}", text(r, "trace_id"), text(r, "span_id"))).or_default() += 1;
    }
    for key in &acked {
        assert_eq!(seen.get(key), Some(&1), "acknowledged span {key} is durable exactly once");
    }
    assert_eq!(records.len(), acked.len(), "nothing else was written");
    // The rows' shape: the same mapping as the Delta tables.
    let first = records.iter().find(|r| text(r, "name") == "op-700-0").expect("span op-700-0");
    assert_eq!(text(first, "trace_id"), "00000000000002bc0000000000000000");
    assert_eq!(text(first, "kind"), "UNSPECIFIED");
    assert_eq!(first.get_field_by_name("start_time_unix_nano").unwrap().as_i64(), Some(1_700_000_000_000_000_000));
    let attributes = first.get_field_by_name("attributes").unwrap();
    let value =
        attributes.as_map().unwrap().get(&MapKey::String("text".into())).and_then(|v| v.as_str().map(str::to_owned));
    assert_eq!(value.as_deref(), Some("payload 700 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zerobus_sink_uses_the_sdk_oauth_token_for_a_service_principal() {
    let auth = [("DATABRICKS_TOKEN", ""), ("DATABRICKS_CLIENT_ID", CLIENT.0), ("DATABRICKS_CLIENT_SECRET", CLIENT.1)];
    let (zerobus, fake, c) = start_app(ZerobusState::default(), &auth).await;
    let request = crate::http::request(800, 3);
    let status = crate::http::post(&c.traces_url, "application/x-protobuf", prost::Message::encode_to_vec(&request))
        .await
        .status();
    assert_eq!(status, reqwest::StatusCode::OK, "{}", c.logs());
    c.stop().await;
    let state = zerobus.state.lock().unwrap();
    assert!(state.streams.iter().all(|(a, _, _)| a.starts_with("Bearer oauth-")), "{:?}", state.streams);
    assert_eq!(decode_all(&state).len(), 3);
    assert!(fake.calls().iter().any(|c| c == "POST /oidc/v1/token"));
}

/// Start-up stops with a clear reason: a missing table (MLflow creates it when linking), and credentials Zerobus
/// refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zerobus_sink_refuses_to_start_without_a_table_or_with_refused_credentials() {
    let zerobus = start_zerobus(ZerobusState { reject_all: true, ..Default::default() }).await;
    let fake = FakeDatabricks::start(v5()).await;
    let endpoint = zerobus.endpoint.clone();
    let run = |host| {
        let endpoint = endpoint.clone();
        async move { crate::support::serve_refused(host, &["--sink", "zerobus"], &[("ZEROBUS_ENDPOINT", &endpoint)]).await }
    };
    let missing = run(fake.host()).await;
    assert!(missing.contains(SPANS) && missing.contains("MLFLOW_EXPERIMENT_NAME"), "{missing}");
    fake.state.lock().unwrap().tables.insert(SPANS.into(), managed_spans_table());
    let refused = run(fake.host()).await;
    assert!(refused.contains(&zerobus.endpoint) && refused.contains("authentication credentials"), "{refused}");
    assert!(zerobus.state.lock().unwrap().streams.is_empty());
}

/// A stream that fails for good (an error the SDK does not retry) answers its request 503, and the next request
/// gets a new stream; the client's retry then lands, and every acknowledged span is durable exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_failed_for_good_answers_503_and_the_next_request_opens_a_new_one() {
    let refuse_second = ZerobusState { refuse_batch: Some(2), ..Default::default() };
    let (zerobus, _fake, c) = start_app(refuse_second, &[("DATABRICKS_TOKEN", PAT)]).await;
    let send = |seed: u64| {
        let url = c.traces_url.clone();
        async move {
            let request = crate::http::request(seed, 4);
            let response =
                crate::http::post(&url, "application/x-protobuf", prost::Message::encode_to_vec(&request)).await;
            (response.status(), response.headers().contains_key("retry-after"), crate::stores::span_keys(&request))
        }
    };
    let (first, _, mut acked) = send(600).await;
    assert_eq!(first, reqwest::StatusCode::OK, "{}", c.logs());
    let (refused, retry_after, _) = send(601).await;
    assert_eq!(refused, reqwest::StatusCode::SERVICE_UNAVAILABLE, "{}", c.logs());
    assert!(retry_after);
    for seed in [602, 601] {
        let (status, _, keys) = send(seed).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{}", c.logs());
        acked.extend(keys);
    }
    c.stop().await;
    let state = zerobus.state.lock().unwrap();
    assert_eq!(state.streams.len(), 2, "one new stream after the failed one");
    let mut keys: Vec<String> =
        decode_all(&state).iter().map(|r| format!("{}{}", text(r, "trace_id"), text(r, "span_id"))).collect();
    keys.sort();
    acked.sort();
    assert_eq!(keys, acked);
}

fn kv(key: &str, value: Option<any_value::Value>) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value }), ..Default::default() }
}

/// A root span and its child (a day later) with every field set, attributes of every value type (nested too),
/// events and links with attributes, in a resource and scope with attributes and schema URLs.
fn v2_request() -> ExportTraceServiceRequest {
    use any_value::Value as V;
    let any = |v: V| AnyValue { value: Some(v) };
    let attributes = vec![
        kv("http.method", Some(V::StringValue("GET".into()))),
        kv("ok", Some(V::BoolValue(true))),
        kv("count", Some(V::IntValue(-7))),
        kv("ratio", Some(V::DoubleValue(0.25))),
        kv("whole", Some(V::DoubleValue(3.0))),
        kv("nan", Some(V::DoubleValue(f64::NAN))),
        kv("inf", Some(V::DoubleValue(f64::INFINITY))),
        kv("bytes", Some(V::BytesValue(vec![0, 1, 254]))),
        kv(
            "list",
            Some(V::ArrayValue(ArrayValue { values: vec![any(V::IntValue(1)), any(V::StringValue("two".into()))] })),
        ),
        kv(
            "nested",
            Some(V::KvlistValue(KeyValueList {
                values: vec![
                    kv("inner", Some(V::StringValue("q\"uote\n".into()))),
                    kv("deep", Some(V::ArrayValue(ArrayValue { values: vec![any(V::BoolValue(false))] }))),
                ],
            })),
        ),
        kv("unset", None),
    ];
    let span = |id: u8, parent: Vec<u8>, start: u64| Span {
        trace_id: vec![0x5a; 16],
        span_id: vec![id; 8],
        trace_state: "rojo=00f067aa0ba902b7".into(),
        parent_span_id: parent,
        flags: 0x301,
        name: format!("op-{id}"),
        kind: i32::from(id),
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1_500,
        attributes: attributes.clone(),
        dropped_attributes_count: 2,
        events: vec![Event {
            time_unix_nano: start + 10,
            name: "retry".into(),
            attributes: vec![kv("attempt", Some(V::IntValue(3))), kv("why", Some(V::StringValue("timeout".into())))],
            dropped_attributes_count: 1,
        }],
        dropped_events_count: 3,
        links: vec![Link {
            trace_id: vec![0x11; 16],
            span_id: vec![0x22; 8],
            trace_state: "congo=t61rcWkgMzE".into(),
            attributes: vec![kv("link.kind", Some(V::StringValue("follows".into())))],
            dropped_attributes_count: 4,
            flags: 0x100,
        }],
        dropped_links_count: 5,
        status: Some(SpanStatus { message: "boom".into(), code: 2 }),
    };
    let root = span(2, Vec::new(), 1_700_000_000_123_456_789);
    let child = span(3, vec![2; 8], 1_700_086_400_000_999_999);
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", Some(V::StringValue("checkout".into()))),
                    kv("host", Some(V::IntValue(9))),
                ],
                dropped_attributes_count: 6,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    version: "1.2".into(),
                    attributes: vec![kv("scope.k", Some(V::DoubleValue(-0.5)))],
                    dropped_attributes_count: 7,
                }),
                spans: vec![root, child],
                schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
            }],
            schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
        }],
    }
}

/// A record as JSON: every field of its descriptor (an unset one null, a repeated one a list), VARIANT columns
/// (`attributes`, at any depth) parsed from their JSON text.
fn record_json(m: &DynamicMessage) -> Value {
    fn value(field: &FieldDescriptor, v: &prost_reflect::Value) -> Value {
        match v {
            prost_reflect::Value::String(s) if field.name() == "attributes" => {
                serde_json::from_str(s).unwrap_or_else(|e| panic!("attributes {s:?} is not JSON text: {e}"))
            }
            prost_reflect::Value::String(s) => json!(s),
            prost_reflect::Value::I32(i) => json!(i),
            prost_reflect::Value::I64(i) => json!(i),
            prost_reflect::Value::Message(m) => record_json(m),
            other => panic!("{}: unexpected {other:?}", field.name()),
        }
    }
    let mut row = serde_json::Map::new();
    for field in m.descriptor().fields() {
        let v = if field.is_list() {
            let items = m.get_field(&field);
            Value::Array(items.as_list().unwrap_or_default().iter().map(|v| value(&field, v)).collect())
        } else if m.has_field(&field) {
            value(&field, &m.get_field(&field))
        } else {
            Value::Null
        };
        row.insert(field.name().to_owned(), v);
    }
    Value::Object(row)
}

/// Integral doubles as integers: the JSON text of a VARIANT double 3.0 is `3` (arrow-rs), the reference's `3.0`.
fn integral(v: Value) -> Value {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9e15 => json!(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(integral).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, integral(v))).collect()),
        other => other,
    }
}

/// A workspace v2 table (VARIANT, TIMESTAMP, DATE columns) is written in its own layout: every record field is
/// what the span carried, VARIANT bags as JSON text, `time` the start time in microseconds, `date` its UTC day,
/// `record_id` a unique UUIDv7 of that time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zerobus_sink_writes_a_v2_table_in_its_layout() {
    let (zerobus, _fake, c) =
        start_app_on(managed_v2_spans_table(), ZerobusState::default(), &[("DATABRICKS_TOKEN", PAT)]).await;
    let request = v2_request();
    let status = crate::http::post(&c.traces_url, "application/x-protobuf", prost::Message::encode_to_vec(&request))
        .await
        .status();
    assert_eq!(status, reqwest::StatusCode::OK, "{}", c.logs());
    assert!(c.logs().contains("layout=\"v2\"") || c.logs().contains("layout=v2"), "{}", c.logs());
    c.stop().await;

    let state = zerobus.state.lock().unwrap();
    let mut ids = std::collections::HashSet::new();
    let mut records: Vec<Value> = decode_all(&state)
        .iter()
        .map(|r| {
            let mut row = record_json(r);
            let Some(Value::String(id)) = row.as_object_mut().and_then(|o| o.remove("record_id")) else {
                panic!("no record_id in {row}");
            };
            let hex: String = id.chars().filter(|c| *c != '-').collect();
            assert_eq!((id.len(), &hex[12..13]), (36, "7"), "a UUIDv7: {id}");
            let millis = row["time"].as_i64().expect("time") / 1_000;
            assert_eq!(i64::from_str_radix(&hex[..12], 16).unwrap(), millis, "{id} carries the row's time");
            assert!(ids.insert(id.clone()), "record_id {id} repeated");
            integral(row)
        })
        .collect();
    let mut expected: Vec<Value> = crate::reference::expected_records_v2(&request).into_iter().map(integral).collect();
    let key = |r: &Value| r["span_id"].as_str().unwrap_or_default().to_owned();
    records.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!((records.len(), expected.len()), (2, 2));
    for (record, expected) in records.iter().zip(&expected) {
        assert_eq!(record, expected);
    }
    // Spelled out once: the units the SDK maps TIMESTAMP and DATE to, and a VARIANT's JSON text.
    let root = &records[0];
    assert_eq!(root["time"], json!(1_700_000_000_123_456i64));
    assert_eq!(root["date"], json!(19_675), "2023-11-14");
    assert_eq!(records[1]["date"], json!(19_676), "a day later");
    assert_eq!(root["parent_span_id"], Value::Null, "a root span's parent is NULL in v2");
    assert_eq!(root["attributes"]["nested"], json!({"inner": "q\"uote\n", "deep": [false]}));
    assert_eq!(root["attributes"]["bytes"], json!("AAH+"));
    assert_eq!(root["attributes"]["nan"], json!("NaN"));
    assert_eq!(root["events"][0]["attributes"], json!({"attempt": 3, "why": "timeout"}));
    assert_eq!(root["resource"]["attributes"], json!({"service.name": "checkout", "host": 9}));
    assert_eq!(root["service_name"], json!("checkout"));
}

/// app.yaml as shipped, on a workspace where nothing exists yet, as a Databricks App's service principal (OAuth
/// M2M): the experiment is created and linked, linking provisions the MANAGED v2 spans table (as MLflow's linking
/// does), and every span lands through Zerobus as a record of that table's layout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_yaml_writes_the_managed_v2_table_linking_provisions_through_zerobus() {
    let state = FakeState { provision_managed: true, ..v5() };
    let auth = [("DATABRICKS_CLIENT_ID", CLIENT.0), ("DATABRICKS_CLIENT_SECRET", CLIENT.1)];
    let (zerobus, fake, c) = start_app_in(state, ZerobusState::default(), &auth, "traces").await;
    let mut sent = Vec::new();
    for seed in 0..3u64 {
        let request = crate::http::request(700 + seed, 4);
        let body = prost::Message::encode_to_vec(&request);
        let status = crate::http::post(&c.traces_url, "application/x-protobuf", body).await.status();
        assert_eq!(status, reqwest::StatusCode::OK, "{}", c.logs());
        sent.extend(crate::stores::span_keys(&request));
    }
    c.stop().await;
    {
        let s = fake.state.lock().unwrap();
        assert_eq!(s.tables[SPANS]["table_type"], "MANAGED", "provisioned by linking");
        assert_eq!(
            s.experiments["/Shared/opentelemetry-traces"].1
                [otel_delta::testing::databricks::mlflow::TRACE_LOCATION_TAG],
            "main.default.otel"
        );
        assert!(!s.tokens.is_empty(), "the service principal's OAuth tokens were used");
    }
    let state = zerobus.state.lock().unwrap();
    let records = decode_all(&state);
    assert!(records.iter().all(|r| text(r, "record_id").len() == 36), "v2 records");
    let mut landed: Vec<String> = records.iter().map(|r| text(r, "trace_id") + &text(r, "span_id")).collect();
    landed.sort();
    sent.sort();
    assert_eq!(landed, sent, "every span once");
}

/// `--layout v1` against the workspace's v2 table is refused at start-up, naming both layouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zerobus_sink_refuses_a_layout_the_table_does_not_have() {
    let zerobus = start_zerobus(ZerobusState::default()).await;
    let mut state = v5();
    state.tables.insert(SPANS.into(), managed_v2_spans_table());
    let fake = FakeDatabricks::start(state).await;
    let args = ["--sink", "zerobus", "--layout", "v1"];
    let stderr = crate::support::serve_refused(fake.host(), &args, &[("ZEROBUS_ENDPOINT", &zerobus.endpoint)]).await;
    assert!(
        stderr.contains(SPANS) && stderr.contains("is not an otel-delta v1 spans table: otel.schemaVersion is \"v2\""),
        "{stderr}"
    );
    assert!(zerobus.state.lock().unwrap().streams.is_empty(), "no stream opened");
}

/// A span whose record could never fit one ingest call (a 9 MiB attribute, above the 8 MiB a call holds) is
/// rejected alone: its request is answered 200 with partial success naming the size and the limit, its other span
/// and a request sent alongside are stored, nothing is answered 503 (a retry could never succeed). A request of
/// only such a span is answered 200 too, all of it rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_too_large_for_one_ingest_call_is_rejected_alone() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;

    const LIMIT: &str = "8388608";
    let (zerobus, _fake, c) = start_app(ZerobusState::default(), &[("DATABRICKS_TOKEN", PAT)]).await;
    let huge = |mut request: ExportTraceServiceRequest, span: usize| {
        let value = any_value::Value::StringValue("x".repeat(9 << 20));
        request.resource_spans[0].scope_spans[0].spans[span].attributes.push(kv("huge", Some(value)));
        request
    };
    let send = |request: ExportTraceServiceRequest| {
        let url = c.traces_url.clone();
        async move {
            let response = crate::http::post(&url, "application/x-protobuf", request.encode_to_vec()).await;
            let status = response.status();
            let body = response.bytes().await.unwrap();
            (status, ExportTraceServiceResponse::decode(body).map(|r| r.partial_success).ok().flatten())
        }
    };
    // A normal span (0) and a huge one (1), and an ordinary request alongside (one output, most likely).
    let mixed = huge(crate::http::request(900, 2), 1);
    let ordinary = crate::http::request(901, 3);
    let mut stored = crate::stores::span_keys(&mixed)[..1].to_vec();
    stored.extend(crate::stores::span_keys(&ordinary));
    let ((status, partial), (other_status, other_partial)) = tokio::join!(send(mixed), send(ordinary));
    assert_eq!((status, other_status), (reqwest::StatusCode::OK, reqwest::StatusCode::OK), "{}", c.logs());
    assert_eq!(other_partial, None, "the request alongside is untouched");
    let partial = partial.expect("partial success");
    assert_eq!(partial.rejected_spans, 1);
    let message = &partial.error_message;
    assert!(
        message.contains("Zerobus record is") && message.contains(&format!("above the {LIMIT} bytes")),
        "{message}"
    );
    // A request of only a huge span: answered, all of it rejected.
    let (status, partial) = send(huge(crate::http::request(902, 1), 0)).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{}", c.logs());
    assert_eq!(partial.map(|p| p.rejected_spans), Some(1));
    c.stop().await;

    let state = zerobus.state.lock().unwrap();
    let mut keys: Vec<String> =
        decode_all(&state).iter().map(|r| format!("{}{}", text(r, "trace_id"), text(r, "span_id"))).collect();
    keys.sort();
    stored.sort();
    assert_eq!(keys, stored, "exactly the normal spans reached Zerobus");
}

/// Logs take the same way: the linked logs table (MANAGED, v2), its own stream, records in the table's descriptor,
/// acknowledged once durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_go_through_zerobus_into_the_linked_logs_table() {
    const LOGS: &str = "main.default.otel_otel_logs";
    let columns = otel_delta::testing::databricks::unity::columns_json(otel_delta::Contract::logs(Layout::V2));
    let table = json!({ "full_name": LOGS, "table_id": "t-logs", "table_type": "MANAGED",
        "data_source_format": "DELTA", "storage_location": "s3://databricks-managed/t-logs", "columns": columns,
        "properties": { "otel.schemaVersion": "v2" } });
    let mut state = v5();
    state.tables.insert(LOGS.into(), table);
    let (zerobus, _fake, c) = start_app_in(state, ZerobusState::default(), &[("DATABRICKS_TOKEN", PAT)], "logs").await;
    assert!(c.table_line().contains(LOGS), "{}", c.table_line());
    let logs_url = c.traces_url.replace("/v1/traces", "/v1/logs");
    let body = prost::Message::encode_to_vec(&crate::logs::tagged_logs("zb", 3));
    let status = crate::http::post(&logs_url, "application/x-protobuf", body).await.status();
    assert_eq!(status, reqwest::StatusCode::OK, "{}", c.logs());
    assert_eq!(zerobus.state.lock().unwrap().durable.len(), 3, "answered once durable");
    let refused = crate::http::post(&c.traces_url, "application/x-protobuf", Vec::new()).await.status();
    assert_eq!(refused, reqwest::StatusCode::NOT_FOUND, "traces are not taken");
    c.stop().await;

    let state = zerobus.state.lock().unwrap();
    assert_eq!(state.streams.len(), 1);
    assert_eq!((state.streams[0].1.as_str(), state.streams[0].2.as_str()), (LOGS, LOGS));
    let mut bodies: Vec<String> = decode_all(&state).iter().map(|r| text(r, "body")).collect();
    bodies.sort();
    // VARIANT columns travel as JSON text (the SDK's mapping): a string body is a quoted JSON string.
    assert_eq!(bodies, [r#""zb-0""#, r#""zb-1""#, r#""zb-2""#]);
}
