//! Property tests of the logs path, as `reference` for spans: for generated OTLP logs requests, the rows our
//! zero-copy decoder builds in each layout equal the rows a reference mapping computes from the
//! `opentelemetry-proto` (prost) types; the same request in OTLP/JSON (the `opentelemetry-proto` serde encoding)
//! gives the same rows; any bytes are refused by the row builder exactly when `validate_logs` refuses them, and a
//! refused request leaves the rows around it intact.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;
use otel_delta::{to_protobuf, validate_logs, Codec, Contract, Format, Layout, ParquetFile, Rows, Signal, Summary};
use proptest::collection::vec;
use proptest::prelude::*;
use prost::Message as _;
use serde_json::{json, Value};

use crate::reference::{
    any_json, any_value_with, attributes, double, finite_double, hex, id, key_values_with, object, service_name, text,
    typed,
};
use crate::support::batch_rows;

// ---- the reference mapping (otel-tables.md), written against prost types ----

/// A record is stored unless an id it has is not an OTLP id.
fn storable(record: &LogRecord) -> bool {
    (record.trace_id.is_empty() || record.trace_id.len() == 16)
        && (record.span_id.is_empty() || record.span_id.len() == 8)
}

/// The OTLP name of a severity number (prost's own table); unknown numbers are unspecified.
fn severity(number: i32) -> &'static str {
    SeverityNumber::try_from(number).unwrap_or(SeverityNumber::Unspecified).as_str_name()
}

/// What a layout's reference mapping decides; [`log_rows`] does the rest.
struct Mapping {
    bag: fn(&[KeyValue]) -> Value,
    body: fn(Option<&AnyValue>) -> Value,
    severity: fn(i32) -> Value,
    /// An absent (empty) id.
    absent_id: Value,
    /// Columns only this layout has, added to the row.
    leading: fn(&Resource, &LogRecord, &mut serde_json::Map<String, Value>),
}

fn log_rows(request: &ExportLogsServiceRequest, mapping: &Mapping) -> Vec<Value> {
    let bag = mapping.bag;
    let id = |bytes: &[u8]| if bytes.is_empty() { mapping.absent_id.clone() } else { json!(hex(bytes)) };
    let mut rows = Vec::new();
    for rl in &request.resource_logs {
        let resource = rl.resource.clone().unwrap_or_default();
        for sl in &rl.scope_logs {
            let scope = sl.scope.clone().unwrap_or_default();
            for record in sl.log_records.iter().filter(|r| storable(r)) {
                let mut row = json!({
                    "event_name": record.event_name,
                    "trace_id": id(&record.trace_id),
                    "span_id": id(&record.span_id),
                    "time_unix_nano": record.time_unix_nano as i64,
                    "observed_time_unix_nano": record.observed_time_unix_nano as i64,
                    "severity_number": (mapping.severity)(record.severity_number),
                    "severity_text": record.severity_text,
                    "body": (mapping.body)(record.body.as_ref()),
                    "attributes": bag(&record.attributes),
                    "dropped_attributes_count": record.dropped_attributes_count as i32,
                    "flags": record.flags as i32,
                    "resource": {
                        "attributes": bag(&resource.attributes),
                        "dropped_attributes_count": resource.dropped_attributes_count as i32,
                    },
                    "resource_schema_url": rl.schema_url,
                    "instrumentation_scope": {
                        "name": scope.name,
                        "version": scope.version,
                        "attributes": bag(&scope.attributes),
                        "dropped_attributes_count": scope.dropped_attributes_count as i32,
                    },
                    "log_schema_url": sl.schema_url,
                });
                if let Value::Object(columns) = &mut row {
                    (mapping.leading)(&resource, record, columns);
                }
                rows.push(row);
            }
        }
    }
    rows
}

/// The v1 rows: MAP bags, the body as text (a string raw, any other value as JSON, none NULL), severity names
/// without their prefix, absent ids `""`.
pub fn expected_v1(request: &ExportLogsServiceRequest) -> Vec<Value> {
    let mapping = Mapping {
        bag: attributes,
        body: |body| match body.and_then(|b| b.value.as_ref()) {
            None => Value::Null,
            Some(any_value::Value::StringValue(s)) => json!(s),
            Some(_) => json!(body.map(any_json).unwrap_or(Value::Null).to_string()),
        },
        severity: |n| json!(severity(n).trim_start_matches("SEVERITY_NUMBER_")),
        absent_id: json!(""),
        leading: |_, _, _| {},
    };
    log_rows(request, &mapping)
}

/// The v2 rows, `record_id` left out: VARIANT bags and body (none NULL), OTLP severity names, absent ids NULL, the
/// time falling back to the observed time.
pub fn expected_v2(request: &ExportLogsServiceRequest) -> Vec<Value> {
    let mapping = Mapping {
        bag: object,
        body: |body| body.map_or(Value::Null, typed),
        severity: |n| json!(severity(n)),
        absent_id: Value::Null,
        leading: |resource, record, row| {
            let nanos = if record.time_unix_nano == 0 { record.observed_time_unix_nano } else { record.time_unix_nano };
            let micros = (nanos / 1_000) as i64;
            row.insert("time".into(), json!({"micros": micros}));
            row.insert("date".into(), json!({"days": micros.div_euclid(86_400_000_000) as i32}));
            row.insert("service_name".into(), service_name(resource));
        },
    };
    log_rows(request, &mapping)
}

/// Our rows of a protobuf request in `layout` (v2 without `record_id`, each checked: a UUIDv7 of the row's time,
/// unique), checked against `validate_logs` on the way.
fn ours(body: &[u8], layout: Layout) -> (Summary, Vec<Value>) {
    let mut columns = Rows::new(Contract::logs(layout));
    let summary = columns.append_request(body).expect("valid request");
    assert_eq!(Ok(summary), validate_logs(body), "the row builder checks what validation checks");
    let mut rows = batch_rows(&columns.finish().unwrap());
    if layout == Layout::V2 {
        let mut ids = std::collections::HashSet::new();
        for row in &mut rows {
            let Some(Value::String(id)) = row.as_object_mut().and_then(|r| r.remove("record_id")) else {
                panic!("no record_id in {row}");
            };
            let millis = row["time"]["micros"].as_i64().unwrap().max(0) / 1_000;
            let hex: String = id.chars().filter(|c| *c != '-').collect();
            assert_eq!(i64::from_str_radix(&hex[..12], 16).unwrap(), millis & 0xffff_ffff_ffff, "{id}");
            assert!(ids.insert(id.clone()), "record_id {id} repeated");
        }
    }
    (summary, rows)
}

// ---- generators ----

fn log_record(d: BoxedStrategy<f64>) -> impl Strategy<Value = LogRecord> {
    let time = || prop_oneof![1 => Just(0u64), 4 => any::<u64>()];
    let times = (time(), time(), -2i32..30, text(), text());
    let ids = (prop_oneof![Just(vec![]), id(16)], prop_oneof![Just(vec![]), id(8)]);
    let body = prop::option::weighted(0.8, any_value_with(d.clone()));
    let rest = (body, key_values_with(d), any::<u32>(), any::<u32>());
    (times, ids, rest).prop_map(
        |((t, observed, severity_number, severity_text, event_name), (trace_id, span_id), r)| LogRecord {
            time_unix_nano: t,
            observed_time_unix_nano: observed,
            severity_number,
            severity_text,
            body: r.0,
            attributes: r.1,
            dropped_attributes_count: r.2,
            flags: r.3,
            trace_id,
            span_id,
            event_name,
        },
    )
}

pub fn request_with(d: BoxedStrategy<f64>) -> impl Strategy<Value = ExportLogsServiceRequest> {
    let key_values = {
        let d = d.clone();
        move || key_values_with(d.clone())
    };
    let scope =
        prop::option::of((text(), text(), key_values(), any::<u32>()).prop_map(|(name, version, attributes, d)| {
            InstrumentationScope { name, version, attributes, dropped_attributes_count: d }
        }));
    let scope_logs = (scope, vec(log_record(d.clone()), 0..4), text())
        .prop_map(|(scope, log_records, schema_url)| ScopeLogs { scope, log_records, schema_url });
    // `service.name` often set, so v2's `service_name` is exercised.
    let service = prop::option::of(text()).prop_map(|name| {
        name.map(|s| KeyValue {
            key: "service.name".into(),
            value: Some(AnyValue { value: Some(any_value::Value::StringValue(s)) }),
            ..Default::default()
        })
    });
    let resource = prop::option::of((key_values(), service, any::<u32>()).prop_map(|(mut attributes, service, d)| {
        attributes.extend(service);
        Resource { attributes, dropped_attributes_count: d, ..Default::default() }
    }));
    let resource_logs = (resource, vec(scope_logs, 0..3), text())
        .prop_map(|(resource, scope_logs, schema_url)| ResourceLogs { resource, scope_logs, schema_url });
    vec(resource_logs, 0..3).prop_map(|resource_logs| ExportLogsServiceRequest { resource_logs })
}

fn request() -> impl Strategy<Value = ExportLogsServiceRequest> {
    request_with(double().boxed())
}

/// A fixed valid request of a few records (with and without bodies, ids and times).
fn valid() -> ExportLogsServiceRequest {
    let string = |s: &str| Some(AnyValue { value: Some(any_value::Value::StringValue(s.into())) });
    let records = vec![
        LogRecord { time_unix_nano: 1_700_000_000_000_000_000, body: string("one"), ..Default::default() },
        LogRecord {
            observed_time_unix_nano: 1_700_000_000_000_000_001,
            trace_id: vec![7; 16],
            span_id: vec![8; 8],
            severity_number: 17,
            ..Default::default()
        },
        LogRecord {
            body: Some(AnyValue {
                value: Some(any_value::Value::KvlistValue(opentelemetry_proto::tonic::common::v1::KeyValueList {
                    values: vec![KeyValue { key: "k".into(), value: string("v"), ..Default::default() }],
                })),
            }),
            ..Default::default()
        },
    ];
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue { key: "service.name".into(), value: string("svc"), ..Default::default() }],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs { log_records: records, ..Default::default() }],
            schema_url: String::new(),
        }],
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn v1_rows_match_the_reference_mapping(request in request()) {
        let (summary, rows) = ours(&request.encode_to_vec(), Layout::V1);
        let expected = expected_v1(&request);
        let total: usize =
            request.resource_logs.iter().flat_map(|r| &r.scope_logs).map(|s| s.log_records.len()).sum();
        prop_assert_eq!(summary.accepted as usize, expected.len());
        prop_assert_eq!(summary.rejected as usize, total - expected.len());
        prop_assert_eq!(rows, expected);
    }

    #[test]
    fn v2_rows_match_the_reference_mapping(request in request()) {
        let (summary, rows) = ours(&request.encode_to_vec(), Layout::V2);
        let expected = expected_v2(&request);
        prop_assert_eq!(summary.accepted as usize, expected.len());
        prop_assert_eq!(rows, expected);
    }

    #[test]
    fn json_gives_the_rows_of_protobuf(request in request_with(finite_double().boxed())) {
        let json = serde_json::to_vec(&request).unwrap();
        let body = to_protobuf(Signal::Logs, Format::Json, bytes::Bytes::copy_from_slice(&json)).expect("valid JSON");
        for layout in [Layout::V1, Layout::V2] {
            let (summary, rows) = ours(&body, layout);
            let (proto_summary, proto_rows) = ours(&request.encode_to_vec(), layout);
            prop_assert_eq!(summary, proto_summary);
            prop_assert_eq!(rows, proto_rows);
        }
    }

    /// Any bytes: an error or a summary, never a panic; the row builder agrees with validation.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        appends_as_validation_says(&bytes)?;
    }

    /// A valid request with one byte changed or the tail cut off: same guarantees.
    #[test]
    fn mutated_requests_never_panic(
        request in request(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>(),
    ) {
        let mut body = request.encode_to_vec();
        if !body.is_empty() {
            let i = at.index(body.len());
            if cut { body.truncate(i) } else { body[i] = byte }
        }
        appends_as_validation_says(&body)?;
    }
}

/// Between two valid requests, `body` is refused by the row builder exactly when `validate_logs` refuses it, and
/// then adds no row; accepted, it adds the rows validation counted. The rows around it are intact. In each layout.
fn appends_as_validation_says(body: &[u8]) -> Result<(), TestCaseError> {
    let valid = valid().encode_to_vec();
    for layout in [Layout::V1, Layout::V2] {
        let mut columns = Rows::new(Contract::logs(layout));
        let before = columns.append_request(&valid).expect("a valid request").accepted;
        let appended = columns.append_request(body);
        prop_assert_eq!(appended.is_ok(), validate_logs(body).is_ok());
        if let (Ok(summary), Ok(validated)) = (appended, validate_logs(body)) {
            prop_assert_eq!(summary, validated);
        }
        let after = columns.append_request(&valid).expect("a valid request").accepted;
        let added = appended.map_or(0, |s| s.accepted);
        let batch = columns.finish().expect("the columns form a batch");
        prop_assert_eq!(batch.num_rows() as u64, before + added + after);
        let mut rows = batch_rows(&batch);
        rows.iter_mut().for_each(|r| drop(r.as_object_mut().and_then(|r| r.remove("record_id"))));
        let expected = ours(&valid, layout).1;
        prop_assert_eq!(&rows[..expected.len()], &expected[..]);
        prop_assert_eq!(&rows[rows.len() - expected.len()..], &expected[..]);
    }
    Ok(())
}

/// A record refused half-way (a body nested too deep, after a good record): no row of its request is kept, and the
/// cut-back batch (NULL and VARIANT bodies among its rows) writes to Parquet and reads back the same, in each layout.
#[test]
fn a_request_refused_half_way_leaves_a_batch_that_round_trips_through_parquet() {
    let mut deep = AnyValue { value: Some(any_value::Value::IntValue(1)) };
    for _ in 0..100 {
        deep = AnyValue {
            value: Some(any_value::Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                values: vec![deep],
            })),
        };
    }
    let mut bad = valid();
    bad.resource_logs[0].scope_logs[0].log_records.push(LogRecord { body: Some(deep), ..Default::default() });
    let bad = bad.encode_to_vec();
    appends_as_validation_says(&bad).expect("refused as a whole, the rows around it intact");
    for layout in [Layout::V1, Layout::V2] {
        let contract = Contract::logs(layout);
        let mut columns = Rows::new(contract);
        columns.append_request(&valid().encode_to_vec()).unwrap();
        assert!(columns.append_request(&bad).is_err());
        columns.append_request(&valid().encode_to_vec()).unwrap();
        let batch = columns.finish().unwrap();
        assert_eq!(batch.num_rows(), 6);
        let mut file = ParquetFile::new(contract, Codec::default()).unwrap();
        file.write(&batch).unwrap();
        let bytes = file.finish().unwrap().tail;
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap();
        let read: Vec<_> = reader.map(|b| batch_rows(&b.unwrap())).collect::<Vec<_>>().concat();
        assert_eq!(read, batch_rows(&batch), "{contract}");
        assert_eq!(read[1]["body"], Value::Null, "{contract}: no body is NULL");
    }
}

#[test]
fn a_traces_request_is_not_a_logs_request() {
    let spans = otel_delta::testing::one_span_request();
    let mut columns = Rows::new(Contract::logs(Layout::V2));
    assert_eq!(columns.append_request(&spans).is_ok(), validate_logs(&spans).is_ok());
    assert_eq!(columns.finish().unwrap().num_rows(), 0);
}
