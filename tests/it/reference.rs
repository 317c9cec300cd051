//! Property tests: for generated OTLP requests, the rows our zero-copy decoder builds equal the rows a reference
//! mapping computes from the `opentelemetry-proto` (prost) types; and the same request in OTLP/JSON (as the
//! `opentelemetry-proto` serde encoding writes it) gives the same rows as in protobuf.

use base64::Engine as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use otel_delta::testing::ProtobufWriter;
use otel_delta::{to_protobuf, validate, Codec, Contract, DecodeError, Format, ParquetFile, Rows, Signal, Summary};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use prost::Message as _;
use serde_json::{json, Value};

use crate::support::batch_rows;

// ---- the reference mapping (otel-tables.md v1), written against prost types ----

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn any_json(value: &AnyValue) -> Value {
    match &value.value {
        None => Value::Null,
        Some(any_value::Value::StringValue(s)) => json!(s),
        Some(any_value::Value::BoolValue(b)) => json!(b),
        Some(any_value::Value::IntValue(i)) => json!(i),
        Some(any_value::Value::DoubleValue(d)) if d.is_nan() => json!("NaN"),
        Some(any_value::Value::DoubleValue(d)) if d.is_infinite() => {
            json!(if *d > 0.0 { "Infinity" } else { "-Infinity" })
        }
        Some(any_value::Value::DoubleValue(d)) => json!(d),
        Some(any_value::Value::BytesValue(b)) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
        Some(any_value::Value::ArrayValue(a)) => Value::Array(a.values.iter().map(any_json).collect()),
        Some(any_value::Value::KvlistValue(l)) => Value::Object(
            l.values.iter().map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Value::Null, any_json))).collect(),
        ),
        #[allow(unreachable_patterns)]
        Some(_) => Value::Null,
    }
}

pub(crate) fn attributes(kvs: &[KeyValue]) -> Value {
    Value::Array(
        kvs.iter()
            .map(|kv| {
                let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    None => Value::Null,
                    Some(any_value::Value::StringValue(s)) => json!(s),
                    Some(_) => json!(any_json(kv.value.as_ref().unwrap()).to_string()),
                };
                json!([kv.key, value])
            })
            .collect(),
    )
}

fn kind(k: i32) -> &'static str {
    ["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"]
        .get(k as usize)
        .copied()
        .unwrap_or("INTERNAL")
}

fn storable(span: &Span) -> bool {
    span.trace_id.len() == 16
        && span.span_id.len() == 8
        && (span.parent_span_id.is_empty() || span.parent_span_id.len() == 8)
}

pub fn expected_rows(request: &ExportTraceServiceRequest) -> Vec<Value> {
    let mapping = Mapping {
        bag: attributes,
        kind: |k| json!(kind(k)),
        code: |c| json!(["UNSET", "OK", "ERROR"].get(c as usize).copied().unwrap_or("UNSET")),
        root_parent: json!(""),
        leading: |_, _, _| {},
    };
    span_rows(request, &mapping)
}

/// What a layout's reference mapping decides; [`span_rows`] does the rest.
struct Mapping {
    bag: fn(&[KeyValue]) -> Value,
    kind: fn(i32) -> Value,
    code: fn(i32) -> Value,
    /// A root span's `parent_span_id`.
    root_parent: Value,
    /// Columns only this layout has, added to the row.
    leading: fn(&Resource, &Span, &mut serde_json::Map<String, Value>),
}

/// One row per storable span, as `mapping` says.
fn span_rows(request: &ExportTraceServiceRequest, mapping: &Mapping) -> Vec<Value> {
    let bag = mapping.bag;
    let mut rows = Vec::new();
    for rs in &request.resource_spans {
        let resource = rs.resource.clone().unwrap_or_default();
        for ss in &rs.scope_spans {
            let scope = ss.scope.clone().unwrap_or_default();
            for span in ss.spans.iter().filter(|s| storable(s)) {
                let status = span.status.clone().unwrap_or_default();
                let parent = if span.parent_span_id.is_empty() {
                    mapping.root_parent.clone()
                } else {
                    json!(hex(&span.parent_span_id))
                };
                let mut row = json!({
                    "trace_id": hex(&span.trace_id),
                    "span_id": hex(&span.span_id),
                    "trace_state": span.trace_state,
                    "parent_span_id": parent,
                    "flags": span.flags as i32,
                    "name": span.name,
                    "kind": (mapping.kind)(span.kind),
                    "start_time_unix_nano": span.start_time_unix_nano as i64,
                    "end_time_unix_nano": span.end_time_unix_nano as i64,
                    "attributes": bag(&span.attributes),
                    "dropped_attributes_count": span.dropped_attributes_count as i32,
                    "events": span.events.iter().map(|e| json!({
                        "time_unix_nano": e.time_unix_nano as i64,
                        "name": e.name,
                        "attributes": bag(&e.attributes),
                        "dropped_attributes_count": e.dropped_attributes_count as i32,
                    })).collect::<Vec<_>>(),
                    "dropped_events_count": span.dropped_events_count as i32,
                    "links": span.links.iter().map(|l| json!({
                        "trace_id": hex(&l.trace_id),
                        "span_id": hex(&l.span_id),
                        "trace_state": l.trace_state,
                        "attributes": bag(&l.attributes),
                        "dropped_attributes_count": l.dropped_attributes_count as i32,
                        "flags": l.flags as i32,
                    })).collect::<Vec<_>>(),
                    "dropped_links_count": span.dropped_links_count as i32,
                    "status": {
                        "message": status.message,
                        "code": (mapping.code)(status.code),
                    },
                    "resource": {
                        "attributes": bag(&resource.attributes),
                        "dropped_attributes_count": resource.dropped_attributes_count as i32,
                    },
                    "resource_schema_url": rs.schema_url,
                    "instrumentation_scope": {
                        "name": scope.name,
                        "version": scope.version,
                        "attributes": bag(&scope.attributes),
                        "dropped_attributes_count": scope.dropped_attributes_count as i32,
                    },
                    "span_schema_url": ss.schema_url,
                });
                if let Value::Object(columns) = &mut row {
                    (mapping.leading)(&resource, span, columns);
                }
                rows.push(row);
            }
        }
    }
    rows
}

// ---- the v2 reference mapping (otel-tables.md v2): VARIANT values keep their types ----

/// A value as `support::variant_json` shows a decoded VARIANT.
pub(crate) fn typed(value: &AnyValue) -> Value {
    match &value.value {
        None => Value::Null,
        Some(any_value::Value::StringValue(s)) => json!(s),
        Some(any_value::Value::BoolValue(b)) => json!(b),
        Some(any_value::Value::IntValue(i)) => json!({"int": i}),
        Some(any_value::Value::DoubleValue(d)) => json!({"double": crate::support::double_json(*d)}),
        Some(any_value::Value::BytesValue(b)) => json!({"binary": hex(b)}),
        Some(any_value::Value::ArrayValue(a)) => Value::Array(a.values.iter().map(typed).collect()),
        Some(any_value::Value::KvlistValue(l)) => object(&l.values),
        #[allow(unreachable_patterns)]
        Some(_) => Value::Null,
    }
}

/// An attribute bag as a VARIANT object: a key given twice keeps its last value.
pub(crate) fn object(kvs: &[KeyValue]) -> Value {
    let mut map = serde_json::Map::new();
    for kv in kvs {
        map.insert(kv.key.clone(), kv.value.as_ref().map_or(Value::Null, typed));
    }
    Value::Object(map)
}

pub(crate) fn service_name(resource: &Resource) -> Value {
    match resource.attributes.iter().rev().find(|kv| kv.key == "service.name") {
        Some(KeyValue { value: Some(AnyValue { value: Some(any_value::Value::StringValue(s)) }), .. }) => json!(s),
        _ => Value::Null,
    }
}

const KINDS: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
const CODES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

/// The v2 rows, `record_id` left out (it is checked on its own: unique, and shaped as a UUIDv7 of the row's time).
pub fn expected_rows_v2(request: &ExportTraceServiceRequest) -> Vec<Value> {
    let leading: fn(&Resource, &Span, &mut serde_json::Map<String, Value>) = |resource, span, row| {
        let micros = (span.start_time_unix_nano / 1_000) as i64;
        row.insert("time".into(), json!({"micros": micros}));
        row.insert("date".into(), json!({"days": micros.div_euclid(86_400_000_000) as i32}));
        row.insert("service_name".into(), service_name(resource));
    };
    let mapping = Mapping {
        bag: object,
        kind: |k| json!(KINDS.get(k as usize).copied().unwrap_or(KINDS[0])),
        code: |c| json!(CODES.get(c as usize).copied().unwrap_or(CODES[0])),
        root_parent: Value::Null,
        leading,
    };
    span_rows(request, &mapping)
}

/// The v2 rows as Zerobus records carry them (`encode::rows`), `record_id` left out: each VARIANT as the JSON its
/// text holds (a value's JSON as the v1 mapping writes it: bytes base64, non-finite doubles as strings; a key
/// given twice keeps its last value), TIMESTAMP as microseconds, DATE as days.
pub fn expected_records_v2(request: &ExportTraceServiceRequest) -> Vec<Value> {
    let leading: fn(&Resource, &Span, &mut serde_json::Map<String, Value>) = |resource, span, row| {
        let micros = (span.start_time_unix_nano / 1_000) as i64;
        row.insert("time".into(), json!(micros));
        row.insert("date".into(), json!(micros.div_euclid(86_400_000_000) as i32));
        row.insert("service_name".into(), service_name(resource));
    };
    let mapping = Mapping {
        bag: |kvs| {
            Value::Object(
                kvs.iter().map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Value::Null, any_json))).collect(),
            )
        },
        kind: |k| json!(KINDS.get(k as usize).copied().unwrap_or(KINDS[0])),
        code: |c| json!(CODES.get(c as usize).copied().unwrap_or(CODES[0])),
        root_parent: Value::Null,
        leading,
    };
    span_rows(request, &mapping)
}

/// Our v2 rows, with each `record_id` checked and taken out: a UUIDv7 whose timestamp is the row's time (in
/// milliseconds), unique across the rows.
pub fn our_rows_v2(body: &[u8]) -> (Summary, Vec<Value>) {
    let mut columns = Rows::new(Contract::spans_v2());
    let summary = columns.append_request(body).expect("valid request");
    let mut rows = batch_rows(&columns.finish().unwrap());
    let mut ids = std::collections::HashSet::new();
    for row in &mut rows {
        let Some(Value::String(id)) = row.as_object_mut().and_then(|r| r.remove("record_id")) else {
            panic!("no record_id in {row}");
        };
        let millis = row["time"]["micros"].as_i64().unwrap().max(0) / 1_000;
        let hex: String = id.chars().filter(|c| *c != '-').collect();
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(i64::from_str_radix(&hex[..12], 16).unwrap(), millis & 0xffff_ffff_ffff, "{id}");
        assert_eq!(&hex[12..13], "7", "version 7: {id}");
        assert!(ids.insert(id.clone()), "record_id {id} repeated");
    }
    (summary, rows)
}

/// Our JSON path: transcode, then the protobuf path.
pub fn our_json_rows(json: &[u8]) -> (Summary, Vec<Value>) {
    let body = to_protobuf(Signal::Traces, Format::Json, bytes::Bytes::copy_from_slice(json)).expect("valid OTLP/JSON");
    our_rows(&body)
}

/// Our decoder: build columns (checking the request on the way), then read them back as rows.
pub fn our_rows(body: &[u8]) -> (Summary, Vec<Value>) {
    let mut columns = Rows::new(Contract::spans_v1());
    let summary = columns.append_request(body).expect("valid request");
    assert_eq!(Ok(summary), validate(body), "the row builder checks what validation checks");
    (summary, batch_rows(&columns.finish().unwrap()))
}

// ---- generators ----

pub(crate) fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z.]{0,12}", "(?s).{0,10}"]
}

pub(crate) fn double() -> impl Strategy<Value = f64> {
    prop_oneof![any::<f64>(), Just(f64::NAN), Just(f64::INFINITY), Just(-0.0), Just(1.0)]
}

/// Doubles JSON can carry as numbers (serde_json writes NaN and infinities as null).
pub(crate) fn finite_double() -> impl Strategy<Value = f64> {
    prop_oneof![any::<f64>().prop_filter("finite", |d| d.is_finite()), Just(-0.0), Just(1.0), Just(1e300)]
}

pub(crate) fn any_value_with(double: BoxedStrategy<f64>) -> impl Strategy<Value = AnyValue> {
    use any_value::Value as V;
    let leaf = prop_oneof![
        text().prop_map(|s| Some(V::StringValue(s))),
        any::<bool>().prop_map(|b| Some(V::BoolValue(b))),
        any::<i64>().prop_map(|i| Some(V::IntValue(i))),
        double.prop_map(|d| Some(V::DoubleValue(d))),
        vec(any::<u8>(), 0..8).prop_map(|b| Some(V::BytesValue(b))),
        Just(None),
    ]
    .prop_map(|value| AnyValue { value });
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(|values| Some(V::ArrayValue(ArrayValue { values }))),
            // Sorted, unique keys: the reference renders objects through serde_json's sorted map.
            btree_map("[a-z]{1,5}", inner, 0..4).prop_map(|m| Some(V::KvlistValue(KeyValueList {
                values: m.into_iter().map(|(key, v)| KeyValue { key, value: Some(v), ..Default::default() }).collect(),
            }))),
        ]
        .prop_map(|value| AnyValue { value })
    })
}

pub(crate) fn key_values_with(double: BoxedStrategy<f64>) -> impl Strategy<Value = Vec<KeyValue>> {
    vec(
        ("[a-z._]{1,10}", prop::option::weighted(0.9, any_value_with(double))).prop_map(|(key, value)| KeyValue {
            key,
            value,
            ..Default::default()
        }),
        0..4,
    )
}

pub(crate) fn id(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![9 => vec(any::<u8>(), len), 1 => vec(any::<u8>(), 0..len + 3)]
}

fn span(d: BoxedStrategy<f64>) -> impl Strategy<Value = Span> {
    let key_values = move || key_values_with(d.clone());
    let ids = (id(16), id(8), prop_oneof![Just(vec![]), id(8)], text(), any::<u32>());
    let body = (text(), 0i32..8, any::<u64>(), any::<u64>(), key_values(), any::<u32>());
    let event = (any::<u64>(), text(), key_values(), any::<u32>()).prop_map(|(t, name, attributes, d)| Event {
        time_unix_nano: t,
        name,
        attributes,
        dropped_attributes_count: d,
    });
    let link = (vec(any::<u8>(), 16), vec(any::<u8>(), 8), text(), key_values(), any::<u32>(), any::<u32>()).prop_map(
        |(trace_id, span_id, trace_state, attributes, d, flags)| Link {
            trace_id,
            span_id,
            trace_state,
            attributes,
            dropped_attributes_count: d,
            flags,
        },
    );
    let status = prop::option::of((text(), 0i32..4).prop_map(|(message, code)| Status { message, code }));
    let rest = (vec(event, 0..3), any::<u32>(), vec(link, 0..2), any::<u32>(), status);
    (ids, body, rest).prop_map(|((trace_id, span_id, parent_span_id, trace_state, flags), b, r)| Span {
        trace_id,
        span_id,
        parent_span_id,
        trace_state,
        flags,
        name: b.0,
        kind: b.1,
        start_time_unix_nano: b.2,
        end_time_unix_nano: b.3,
        attributes: b.4,
        dropped_attributes_count: b.5,
        events: r.0,
        dropped_events_count: r.1,
        links: r.2,
        dropped_links_count: r.3,
        status: r.4,
    })
}

fn request() -> impl Strategy<Value = ExportTraceServiceRequest> {
    request_with(double().boxed())
}

fn request_with(d: BoxedStrategy<f64>) -> impl Strategy<Value = ExportTraceServiceRequest> {
    let key_values = {
        let d = d.clone();
        move || key_values_with(d.clone())
    };
    let scope =
        prop::option::of((text(), text(), key_values(), any::<u32>()).prop_map(|(name, version, attributes, d)| {
            InstrumentationScope { name, version, attributes, dropped_attributes_count: d }
        }));
    let scope_spans = (scope, vec(span(d.clone()), 0..4), text()).prop_map(|(scope, spans, schema_url)| ScopeSpans {
        scope,
        spans,
        schema_url,
    });
    let resource = prop::option::of((key_values(), any::<u32>()).prop_map(|(attributes, d)| Resource {
        attributes,
        dropped_attributes_count: d,
        ..Default::default()
    }));
    let resource_spans = (resource, vec(scope_spans, 0..3), text())
        .prop_map(|(resource, scope_spans, schema_url)| ResourceSpans { resource, scope_spans, schema_url });
    vec(resource_spans, 0..3).prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn json_gives_the_rows_of_protobuf(request in request_with(finite_double().boxed())) {
        let json = serde_json::to_vec(&request).unwrap();
        let (summary, rows) = our_json_rows(&json);
        let (proto_summary, proto_rows) = our_rows(&request.encode_to_vec());
        prop_assert_eq!(summary, proto_summary);
        prop_assert_eq!(rows, proto_rows);
    }

    #[test]
    fn rows_match_the_reference_decoder(request in request()) {
        let body = request.encode_to_vec();
        let (summary, rows) = our_rows(&body);
        let expected = expected_rows(&request);
        let total: usize = request.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
        prop_assert_eq!(summary.accepted as usize, expected.len());
        prop_assert_eq!(summary.rejected as usize, total - expected.len());
        prop_assert_eq!(rows, expected);
    }

    #[test]
    fn v2_rows_match_the_reference_mapping(request in request()) {
        let (summary, rows) = our_rows_v2(&request.encode_to_vec());
        let expected = expected_rows_v2(&request);
        prop_assert_eq!(summary.accepted as usize, expected.len());
        prop_assert_eq!(rows, expected);
    }

    /// Any bytes: an error or a summary, never a panic; the row builder agrees with validation.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        appends_as_validation_says(&bytes)?;
    }

    /// A valid request with one byte changed or the tail cut off: same guarantees.
    #[test]
    fn mutated_requests_never_panic(request in request(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()) {
        let mut body = request.encode_to_vec();
        if !body.is_empty() {
            let i = at.index(body.len());
            if cut { body.truncate(i) } else { body[i] = byte }
        }
        appends_as_validation_says(&body)?;
    }
}

/// Between two valid requests, `body` is refused by the row builder exactly when validation refuses it, and then
/// adds no row (a request refused half-way is cut back); accepted, it adds the rows validation counted. The rows
/// around it are intact either way. In each layout.
fn appends_as_validation_says(body: &[u8]) -> Result<(), proptest::test_runner::TestCaseError> {
    let valid = crate::http::request(3, 2).encode_to_vec();
    for contract in [Contract::spans_v1(), Contract::spans_v2()] {
        let mut columns = Rows::new(contract);
        let before = columns.append_request(&valid).expect("a valid request").accepted;
        let appended = columns.append_request(body);
        prop_assert_eq!(appended.is_ok(), validate(body).is_ok());
        if let (Ok(summary), Ok(validated)) = (appended, validate(body)) {
            prop_assert_eq!(summary, validated);
        }
        let after = columns.append_request(&valid).expect("a valid request").accepted;
        let added = appended.map_or(0, |s| s.accepted);
        let batch = columns.finish().expect("the columns form a batch");
        prop_assert_eq!(batch.num_rows() as u64, before + added + after);
        let mut rows = batch_rows(&batch);
        let expected = if contract == Contract::spans_v1() {
            our_rows(&valid).1
        } else {
            // Record ids differ from build to build: compared without them.
            rows.iter_mut().for_each(|r| drop(r.as_object_mut().and_then(|r| r.remove("record_id"))));
            our_rows_v2(&valid).1
        };
        prop_assert_eq!(&rows[..expected.len()], &expected[..]);
        prop_assert_eq!(&rows[rows.len() - expected.len()..], &expected[..]);
    }
    Ok(())
}

#[test]
fn unknown_fields_are_skipped() {
    // Unknown fields of every wire type, at the top level and inside a span, change no row.
    let request = crate::http::request(9, 2);
    let body = request.encode_to_vec();
    let unknown: &[u8] =
        &[0xb8, 0x06, 0x01, 0xc1, 0x06, 1, 2, 3, 4, 5, 6, 7, 8, 0xca, 0x06, 0x02, b'h', b'i', 0xd5, 0x06, 1, 2, 3, 4];
    let mut span = request.resource_spans[0].scope_spans[0].spans[0].encode_to_vec();
    span.extend_from_slice(unknown);
    let mut tampered = request.clone();
    tampered.resource_spans[0].scope_spans[0].spans.remove(0);
    // ScopeSpans { ...the other span, the tampered span } inside ResourceSpans inside the request.
    let mut scope_spans = ProtobufWriter { buf: tampered.resource_spans[0].scope_spans[0].encode_to_vec() };
    scope_spans.bytes_field(2, &span);
    let mut resource_spans = ProtobufWriter::new();
    resource_spans.bytes_field(2, &scope_spans.buf);
    let mut top = ProtobufWriter::new();
    top.bytes_field(1, &resource_spans.buf);
    let mut top = top.buf;
    top.extend_from_slice(unknown);
    let (_, ours) = our_rows(&top);
    let (_, reference) = our_rows(&body);
    // The tampered request holds the same spans, the first moved last.
    let mut expected = reference.clone();
    expected.rotate_left(1);
    assert_eq!(ours, expected);
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    // An attribute value nested 100,000 arrays deep, built as raw bytes (prost itself would recurse that deep):
    // refused with TooDeep after 64 levels, no stack overflow.
    fn wrap(field: u8, inner: &[u8]) -> Vec<u8> {
        let mut out = vec![(field << 3) | 2];
        let mut len = inner.len();
        while len >= 0x80 {
            out.push((len as u8) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(inner);
        out
    }
    let mut value = vec![0x18, 0x01]; // AnyValue { int_value: 1 }
    for _ in 0..100_000 {
        value = wrap(5, &wrap(1, &value)); // AnyValue { array_value: ArrayValue { values: [value] } }
    }
    let kv = [wrap(1, b"deep"), wrap(2, &value)].concat();
    let span = [wrap(1, &[1; 16]), wrap(2, &[2; 8]), wrap(9, &kv)].concat();
    let body = wrap(1, &wrap(2, &wrap(2, &span)));
    assert_eq!(validate(&body), Err(DecodeError::TooDeep));
    let mut columns = Rows::new(Contract::spans_v1());
    assert_eq!(columns.append_request(&body), Err(DecodeError::TooDeep));

    // Refused half-way through its rows: after a good span, in a span's attributes (its ids and times already
    // appended), or in its second event's attributes (the first event appended): no row of it is kept.
    let good_span = [
        wrap(1, &[3; 16]),
        wrap(2, &[4; 8]),
        wrap(5, b"good"),
        wrap(9, &[wrap(1, b"k"), wrap(2, &[0x18, 0x07])].concat()),
    ]
    .concat();
    let event = |kv: &[u8]| [wrap(2, b"event"), wrap(3, kv)].concat();
    let deep_in_event = [wrap(1, &[5; 16]), wrap(2, &[6; 8]), wrap(11, &event(&[])), wrap(11, &event(&kv))].concat();
    for bad_span in [span, deep_in_event] {
        let spans = [wrap(2, &good_span), wrap(2, &bad_span)].concat();
        let body = wrap(1, &wrap(2, &spans));
        appends_as_validation_says(&body).expect("refused as a whole, the rows around it intact");

        // The cut-back batch (sliced columns, concatenated) encodes to Parquet and reads back the same.
        let valid = crate::http::request(3, 2).encode_to_vec();
        let mut columns = Rows::new(Contract::spans_v1());
        columns.append_request(&valid).expect("a valid request");
        assert!(columns.append_request(&body).is_err());
        columns.append_request(&valid).expect("a valid request");
        let batch = columns.finish().expect("a batch");
        let mut file = ParquetFile::new(Contract::spans_v1(), Codec::default()).unwrap();
        file.write(&batch).unwrap();
        let bytes = file.finish().unwrap().tail;
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap();
        let read: Vec<_> = reader.map(|b| batch_rows(&b.unwrap())).collect::<Vec<_>>().concat();
        assert_eq!(read, batch_rows(&batch));
        assert_eq!(read.len(), 4);
    }
}
