//! Views of an OTLP `ExportLogsServiceRequest`: `ResourceLogs` → `ScopeLogs` → `LogRecord`, with the resource,
//! scope, attribute and `AnyValue` views the traces decoder uses. Same contract as the module above (zero-copy,
//! bounded, total, proto3): [`validate_logs`] runs the code the logs row builder (`table::logs`) runs.
//!
//! Per-record rules ([`LogRecordView::rejection`]): a log record need not belong to a trace, so empty ids are
//! fine; an id of any other length than OTLP's (16-byte trace id, 8-byte span id) is refused alone, as a span
//! with a bad id is, and counted in the partial success. The OTLP spec lets a receiver treat such a record as not
//! associated with a trace; refusing it instead keeps the table's ids well-formed (joins with the spans table)
//! and tells the sender, rather than silently dropping the id or storing a value no trace can have.

use super::wire::Reader;
use super::{
    check_attributes, check_value, fields, AnyValue, Attributes, DecodeError, Extent, Message, Repeated, ResourceView,
    ScopeView, Summary,
};

/// `SeverityNumber` names after `SEVERITY_NUMBER_`, by number (OTLP's `logs.proto`): what OTLP/JSON may send and
/// what the tables store.
pub(crate) const SEVERITY_NAMES: [&str; 25] = [
    "UNSPECIFIED",
    "TRACE",
    "TRACE2",
    "TRACE3",
    "TRACE4",
    "DEBUG",
    "DEBUG2",
    "DEBUG3",
    "DEBUG4",
    "INFO",
    "INFO2",
    "INFO3",
    "INFO4",
    "WARN",
    "WARN2",
    "WARN3",
    "WARN4",
    "ERROR",
    "ERROR2",
    "ERROR3",
    "ERROR4",
    "FATAL",
    "FATAL2",
    "FATAL3",
    "FATAL4",
];

/// Walk the whole `ExportLogsServiceRequest`, checking every field the logs row builder will read.
pub fn validate_logs(body: &[u8]) -> Result<Summary, DecodeError> {
    let mut summary = Summary::default();
    for rl in LogsRequest::new(body).resource_logs() {
        let rl = rl?;
        check_attributes(rl.resource.attributes)?;
        for sl in rl.scope_logs() {
            let sl = sl?;
            check_attributes(sl.scope.attributes)?;
            for record in sl.log_records() {
                let record = record?;
                if let Some(reason) = record.rejection() {
                    summary.rejected += 1;
                    summary.first_rejection.get_or_insert(reason);
                    continue;
                }
                summary.accepted += 1;
                check_value(record.body, 1)?;
                check_attributes(record.attributes())?;
            }
        }
    }
    Ok(summary)
}

/// An `ExportLogsServiceRequest`.
pub(crate) struct LogsRequest<'a> {
    buf: &'a [u8],
}

impl<'a> LogsRequest<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        LogsRequest { buf }
    }

    pub(crate) fn resource_logs(&self) -> Repeated<'a, ResourceLogsView<'a>> {
        Repeated::new(self.buf, fields::logs_request::RESOURCE_LOGS)
    }
}

/// `ResourceLogs`: a resource, its schema URL, and its scopes.
pub(crate) struct ResourceLogsView<'a> {
    buf: &'a [u8],
    pub(crate) resource: ResourceView<'a>,
    pub(crate) schema_url: &'a str,
}

impl<'a> Message<'a> for ResourceLogsView<'a> {
    fn parse(buf: &'a [u8]) -> Result<Self, DecodeError> {
        use fields::resource_logs as f;
        let mut view = ResourceLogsView { buf: &[], resource: ResourceView::default(), schema_url: "" };
        let mut scope_logs = Extent::default();
        let mut r = Reader::new(buf);
        while let Some((field, value, at)) = r.next_field_at()? {
            match field {
                f::RESOURCE => view.resource = ResourceView::parse(value.bytes(field)?)?,
                f::SCOPE_LOGS => {
                    value.bytes(field)?;
                    scope_logs.cover(at);
                }
                f::SCHEMA_URL => view.schema_url = value.string(field)?,
                _ => {}
            }
        }
        view.buf = scope_logs.of(buf);
        Ok(view)
    }
}

impl<'a> ResourceLogsView<'a> {
    pub(crate) fn scope_logs(&self) -> Repeated<'a, ScopeLogsView<'a>> {
        Repeated::new(self.buf, fields::resource_logs::SCOPE_LOGS)
    }
}

/// `ScopeLogs`: an instrumentation scope, its schema URL, and its log records.
pub(crate) struct ScopeLogsView<'a> {
    buf: &'a [u8],
    pub(crate) scope: ScopeView<'a>,
    pub(crate) schema_url: &'a str,
}

impl<'a> Message<'a> for ScopeLogsView<'a> {
    fn parse(buf: &'a [u8]) -> Result<Self, DecodeError> {
        use fields::scope_logs as f;
        let mut view = ScopeLogsView { buf: &[], scope: ScopeView::default(), schema_url: "" };
        let mut records = Extent::default();
        let mut r = Reader::new(buf);
        while let Some((field, value, at)) = r.next_field_at()? {
            match field {
                f::SCOPE => view.scope = ScopeView::parse(value.bytes(field)?)?,
                f::LOG_RECORDS => {
                    value.bytes(field)?;
                    records.cover(at);
                }
                f::SCHEMA_URL => view.schema_url = value.string(field)?,
                _ => {}
            }
        }
        view.buf = records.of(buf);
        Ok(view)
    }
}

impl<'a> ScopeLogsView<'a> {
    pub(crate) fn log_records(&self) -> Repeated<'a, LogRecordView<'a>> {
        Repeated::new(self.buf, fields::scope_logs::LOG_RECORDS)
    }
}

/// `LogRecord`: scalar fields and the body read eagerly (the body's arrays and kvlists lazily, as any
/// `AnyValue`), attributes lazily.
#[derive(Clone, Copy)]
pub(crate) struct LogRecordView<'a> {
    attributes_buf: &'a [u8],
    pub(crate) time_unix_nano: u64,
    pub(crate) observed_time_unix_nano: u64,
    pub(crate) severity_number: i32,
    pub(crate) severity_text: &'a str,
    /// [`AnyValue::Empty`] when the record has no body (or a body with no value set).
    pub(crate) body: AnyValue<'a>,
    pub(crate) dropped_attributes_count: u32,
    pub(crate) flags: u32,
    pub(crate) trace_id: &'a [u8],
    pub(crate) span_id: &'a [u8],
    pub(crate) event_name: &'a str,
    /// Bytes of the encoded record.
    pub(crate) encoded_len: usize,
}

impl<'a> Message<'a> for LogRecordView<'a> {
    fn parse(buf: &'a [u8]) -> Result<Self, DecodeError> {
        use fields::log_record as f;
        let mut view = LogRecordView {
            attributes_buf: &[],
            time_unix_nano: 0,
            observed_time_unix_nano: 0,
            severity_number: 0,
            severity_text: "",
            body: AnyValue::Empty,
            dropped_attributes_count: 0,
            flags: 0,
            trace_id: &[],
            span_id: &[],
            event_name: "",
            encoded_len: buf.len(),
        };
        let mut attributes = Extent::default();
        let mut r = Reader::new(buf);
        while let Some((field, value, at)) = r.next_field_at()? {
            match field {
                f::TIME_UNIX_NANO => view.time_unix_nano = value.fixed64(field)?,
                f::OBSERVED_TIME_UNIX_NANO => view.observed_time_unix_nano = value.fixed64(field)?,
                f::SEVERITY_NUMBER => view.severity_number = value.varint32(field)? as i32,
                f::SEVERITY_TEXT => view.severity_text = value.string(field)?,
                f::BODY => view.body = AnyValue::parse(value.bytes(field)?)?,
                f::ATTRIBUTES => {
                    value.bytes(field)?;
                    attributes.cover(at);
                }
                f::DROPPED_ATTRIBUTES_COUNT => view.dropped_attributes_count = value.varint32(field)?,
                f::FLAGS => view.flags = value.fixed32(field)?,
                f::TRACE_ID => view.trace_id = value.bytes(field)?,
                f::SPAN_ID => view.span_id = value.bytes(field)?,
                f::EVENT_NAME => view.event_name = value.string(field)?,
                _ => {}
            }
        }
        view.attributes_buf = attributes.of(buf);
        Ok(view)
    }
}

impl<'a> LogRecordView<'a> {
    pub(crate) fn attributes(&self) -> Attributes<'a> {
        Attributes::new(self.attributes_buf, fields::log_record::ATTRIBUTES)
    }

    /// Why this record cannot be stored on its own, if it cannot: its ids, when present, must be OTLP ids (see
    /// the module's rules).
    pub(crate) fn rejection(&self) -> Option<&'static str> {
        if !self.trace_id.is_empty() && self.trace_id.len() != 16 {
            Some("trace_id must be empty or 16 bytes")
        } else if !self.span_id.is_empty() && self.span_id.len() != 8 {
            Some("span_id must be empty or 8 bytes")
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue as Pb, ArrayValue, KeyValue};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use prost::Message as _;

    use super::*;

    fn request(records: Vec<LogRecord>) -> Vec<u8> {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs { log_records: records, ..Default::default() }],
                schema_url: "r".into(),
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn every_field_is_read() {
        let record = LogRecord {
            time_unix_nano: 1,
            observed_time_unix_nano: 2,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: Some(Pb { value: Some(any_value::Value::StringValue("hello".into())) }),
            attributes: vec![KeyValue {
                key: "k".into(),
                value: Some(Pb { value: Some(any_value::Value::IntValue(3)) }),
                ..Default::default()
            }],
            dropped_attributes_count: 4,
            flags: 0x101,
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            event_name: "e".into(),
        };
        let body = request(vec![record]);
        let rl = LogsRequest::new(&body).resource_logs().next().unwrap().unwrap();
        assert_eq!(rl.schema_url, "r");
        let sl = rl.scope_logs().next().unwrap().unwrap();
        let r = sl.log_records().next().unwrap().unwrap();
        assert_eq!((r.time_unix_nano, r.observed_time_unix_nano, r.severity_number), (1, 2, 9));
        assert_eq!((r.severity_text, r.event_name, r.flags, r.dropped_attributes_count), ("INFO", "e", 0x101, 4));
        assert_eq!((r.trace_id, r.span_id), (&[1u8; 16][..], &[2u8; 8][..]));
        assert_eq!(r.body, AnyValue::String("hello"));
        let kv = r.attributes().into_iter().next().unwrap().unwrap();
        assert_eq!((kv.key, kv.value), ("k", AnyValue::Int(3)));
        assert_eq!(validate_logs(&body), Ok(Summary { accepted: 1, rejected: 0, first_rejection: None }));
    }

    #[test]
    fn bad_ids_are_refused_alone_and_empty_ids_are_fine() {
        let record = |trace_id: Vec<u8>, span_id: Vec<u8>| LogRecord { trace_id, span_id, ..Default::default() };
        let body = request(vec![
            record(vec![], vec![]),
            record(vec![1; 16], vec![]),
            record(vec![1; 15], vec![]),
            record(vec![], vec![2; 9]),
        ]);
        let summary = validate_logs(&body).unwrap();
        assert_eq!((summary.accepted, summary.rejected), (2, 2));
        assert_eq!(summary.first_rejection, Some("trace_id must be empty or 16 bytes"));
    }

    #[test]
    fn a_too_deep_body_is_refused() {
        let mut value = Pb { value: Some(any_value::Value::IntValue(1)) };
        for _ in 0..super::super::MAX_VALUE_DEPTH + 1 {
            value = Pb { value: Some(any_value::Value::ArrayValue(ArrayValue { values: vec![value] })) };
        }
        let body = request(vec![LogRecord { body: Some(value), ..Default::default() }]);
        assert_eq!(validate_logs(&body), Err(DecodeError::TooDeep));
    }

    #[test]
    fn a_wrong_wire_type_is_refused() {
        // time_unix_nano (fixed64) sent as a length-delimited field.
        let mut record = super::super::wire::Writer::new();
        record.bytes_field(fields::log_record::TIME_UNIX_NANO, b"x");
        let mut scope = super::super::wire::Writer::new();
        scope.bytes_field(fields::scope_logs::LOG_RECORDS, &record.buf);
        let mut resource = super::super::wire::Writer::new();
        resource.bytes_field(fields::resource_logs::SCOPE_LOGS, &scope.buf);
        let mut top = super::super::wire::Writer::new();
        top.bytes_field(fields::logs_request::RESOURCE_LOGS, &resource.buf);
        assert!(matches!(validate_logs(&top.buf), Err(DecodeError::WrongWireType { .. })));
    }
}
