//! OTLP/JSON → the protobuf wire format, so one decoder per signal ([`super::validate`],
//! [`super::validate_logs`] and the row builders) serves both encodings and a JSON request yields exactly the rows
//! of the same request in protobuf. The caller says which request the body holds ([`Signal`]): the traces and the
//! logs request share only their resource, scope and value writers.
//!
//! The body is parsed in place by simd-json (strings borrowed from the buffer where unescaped; no serde structs)
//! and written field by field as protobuf. Rules (OTLP specification, "JSON Protobuf Encoding"), with the
//! OpenTelemetry Collector's leniency:
//! - keys in lowerCamelCase, and snake_case too (compared without `_`, ASCII case-insensitively);
//! - trace and span ids as hex, case-insensitive; `""` means absent; a wrong length goes through to the span
//!   rules (partial success), an odd length or a non-hex digit is invalid;
//! - enums as integers, and as their names (`SPAN_KIND_SERVER`, also `SERVER`; `SEVERITY_NUMBER_INFO`, also
//!   `INFO`);
//! - 64-bit integers as decimal strings or numbers; doubles as numbers or `"NaN"`, `"Infinity"`, `"-Infinity"`;
//! - `bytesValue` as base64 (standard or URL-safe, padding optional);
//! - unknown fields and `null` values are ignored.

use base64::Engine as _;
use simd_json::prelude::*;
use simd_json::{BorrowedValue as Value, StaticNode};

use super::fields;
use super::logs::SEVERITY_NAMES;
use super::wire::Writer;
use super::{DecodeError, Signal, MAX_VALUE_DEPTH};

type Object<'v> = simd_json::value::borrowed::Object<'v>;

/// Transcode an OTLP/JSON export request of `signal` (`ExportTraceServiceRequest`, `ExportLogsServiceRequest`;
/// parsed in place, hence `&mut`) into protobuf bytes.
pub(crate) fn to_protobuf(signal: Signal, body: &mut [u8]) -> Result<Vec<u8>, DecodeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let value = simd_json::to_borrowed_value(body)
        .map_err(|_| DecodeError::Json { path: "request", what: "is not valid JSON" })?;
    let mut w = Writer::new();
    match signal {
        Signal::Traces => traces_request(&value, &mut w)?,
        Signal::Logs => logs_request(&value, &mut w)?,
    }
    Ok(w.buf)
}

/// A key without `_`, lowercased: `traceId`, `trace_id` and `TRACEID` all become `traceid`. Keys longer than
/// any OTLP field name are returned as `""` (unknown).
fn normalize(key: &str, buf: &mut [u8; 32]) -> usize {
    let mut n = 0;
    for b in key.bytes().filter(|&b| b != b'_') {
        if n == buf.len() {
            return 0;
        }
        buf[n] = b.to_ascii_lowercase();
        n += 1;
    }
    n
}

/// Visit the fields of a JSON object, skipping `null`s, with normalized keys.
fn fields<'v>(
    value: &'v Value<'v>,
    path: &'static str,
    mut visit: impl FnMut(&[u8], &'v Value<'v>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let object: &Object<'v> = value.as_object().ok_or(DecodeError::Json { path, what: "must be an object" })?;
    let mut buf = [0u8; 32];
    for (key, v) in object.iter() {
        if v.is_null() {
            continue;
        }
        let n = normalize(key, &mut buf);
        visit(&buf[..n], v)?;
    }
    Ok(())
}

fn array<'v>(value: &'v Value<'v>, path: &'static str) -> Result<&'v [Value<'v>], DecodeError> {
    value.as_array().map(|a| a.as_slice()).ok_or(DecodeError::Json { path, what: "must be an array" })
}

fn string<'v>(value: &'v Value<'v>, path: &'static str) -> Result<&'v str, DecodeError> {
    value.as_str().ok_or(DecodeError::Json { path, what: "must be a string" })
}

fn uint(value: &Value<'_>, path: &'static str) -> Result<u64, DecodeError> {
    let bad = DecodeError::Json { path, what: "must be a non-negative integer or a decimal string" };
    match value {
        Value::Static(StaticNode::U64(u)) => Ok(*u),
        Value::Static(StaticNode::I64(i)) => u64::try_from(*i).map_err(|_| bad),
        Value::Static(StaticNode::F64(f)) if f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64 => Ok(*f as u64),
        Value::String(s) => s.trim().parse().map_err(|_| bad),
        _ => Err(bad),
    }
}

fn int(value: &Value<'_>, path: &'static str) -> Result<i64, DecodeError> {
    let bad = DecodeError::Json { path, what: "must be an integer or a decimal string" };
    match value {
        Value::Static(StaticNode::I64(i)) => Ok(*i),
        Value::Static(StaticNode::U64(u)) => i64::try_from(*u).map_err(|_| bad),
        Value::Static(StaticNode::F64(f)) if f.fract() == 0.0 && *f >= i64::MIN as f64 && *f < -(i64::MIN as f64) => {
            Ok(*f as i64)
        }
        Value::String(s) => s.trim().parse().map_err(|_| bad),
        _ => Err(bad),
    }
}

fn uint32(value: &Value<'_>, path: &'static str) -> Result<u32, DecodeError> {
    u32::try_from(uint(value, path)?).map_err(|_| DecodeError::Json { path, what: "must fit in 32 bits" })
}

fn double(value: &Value<'_>, path: &'static str) -> Result<f64, DecodeError> {
    let bad = DecodeError::Json { path, what: "must be a number, \"NaN\", \"Infinity\" or \"-Infinity\"" };
    match value {
        Value::Static(StaticNode::F64(f)) => Ok(*f),
        Value::Static(StaticNode::I64(i)) => Ok(*i as f64),
        Value::Static(StaticNode::U64(u)) => Ok(*u as f64),
        Value::String(s) => match s.as_ref() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other.trim().parse().map_err(|_| bad),
        },
        _ => Err(bad),
    }
}

fn boolean(value: &Value<'_>, path: &'static str) -> Result<bool, DecodeError> {
    value.as_bool().ok_or(DecodeError::Json { path, what: "must be true or false" })
}

/// An enum as its number or its name (with or without the `prefix`).
fn enumeration(value: &Value<'_>, path: &'static str, prefix: &str, names: &[&str]) -> Result<u64, DecodeError> {
    if let Some(name) = value.as_str() {
        let short = name.strip_prefix(prefix).unwrap_or(name);
        return names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(short))
            .map(|i| i as u64)
            .ok_or(DecodeError::Json { path, what: "is not a known enum name" });
    }
    Ok(u64::from(int(value, path)? as i32 as u32))
}

/// A hex id; `""` is absent (`None`).
fn hex_id(value: &Value<'_>, path: &'static str, out: &mut Vec<u8>) -> Result<bool, DecodeError> {
    let s = string(value, path)?.as_bytes();
    if s.is_empty() {
        return Ok(false);
    }
    let bad = DecodeError::Json { path, what: "must be an even number of hex digits" };
    if s.len() % 2 != 0 {
        return Err(bad);
    }
    out.clear();
    for pair in s.chunks_exact(2) {
        let digit = |b: u8| (b as char).to_digit(16).ok_or(bad);
        out.push((digit(pair[0])? << 4 | digit(pair[1])?) as u8);
    }
    Ok(true)
}

/// Write a hex id field unless it is `""` (absent).
fn id_field(
    w: &mut Writer,
    field: u32,
    value: &Value<'_>,
    path: &'static str,
    id: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    if hex_id(value, path, id)? {
        w.bytes_field(field, id);
    }
    Ok(())
}

fn base64_bytes(value: &Value<'_>, path: &'static str) -> Result<Vec<u8>, DecodeError> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let config = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let s = string(value, path)?;
    GeneralPurpose::new(&base64::alphabet::STANDARD, config)
        .decode(s)
        .or_else(|_| GeneralPurpose::new(&base64::alphabet::URL_SAFE, config).decode(s))
        .map_err(|_| DecodeError::Json { path, what: "must be base64" })
}

fn traces_request(v: &Value<'_>, w: &mut Writer) -> Result<(), DecodeError> {
    fields(v, "request", |key, v| {
        if key == b"resourcespans" {
            for rs in array(v, "resourceSpans")? {
                w.message_field(fields::request::RESOURCE_SPANS, |w| resource_spans(rs, w))?;
            }
        }
        Ok(())
    })
}

fn resource_spans(v: &Value<'_>, w: &mut Writer) -> Result<(), DecodeError> {
    use fields::resource_spans as f;
    fields(v, "resourceSpans[]", |key, v| {
        match key {
            b"resource" => w.message_field(f::RESOURCE, |w| resource(v, w))?,
            b"scopespans" => {
                for ss in array(v, "scopeSpans")? {
                    w.message_field(f::SCOPE_SPANS, |w| scope_spans(ss, w))?;
                }
            }
            b"schemaurl" => w.bytes_field(f::SCHEMA_URL, string(v, "resourceSpans[].schemaUrl")?.as_bytes()),
            _ => {}
        }
        Ok(())
    })
}

fn scope_spans(v: &Value<'_>, w: &mut Writer) -> Result<(), DecodeError> {
    use fields::scope_spans as f;
    fields(v, "scopeSpans[]", |key, v| {
        match key {
            b"scope" => w.message_field(f::SCOPE, |w| scope(v, w))?,
            b"spans" => {
                let mut id = Vec::with_capacity(16);
                for span in array(v, "spans")? {
                    w.message_field(f::SPANS, |w| self::span(span, w, &mut id))?;
                }
            }
            b"schemaurl" => w.bytes_field(f::SCHEMA_URL, string(v, "scopeSpans[].schemaUrl")?.as_bytes()),
            _ => {}
        }
        Ok(())
    })
}

/// A `Resource` (both signals).
fn resource(v: &Value<'_>, w: &mut Writer) -> Result<(), DecodeError> {
    fields(v, "resource", |key, v| {
        match key {
            b"attributes" => attributes(v, fields::resource::ATTRIBUTES, w)?,
            b"droppedattributescount" => w.varint_field(
                fields::resource::DROPPED_ATTRIBUTES_COUNT,
                u64::from(uint32(v, "resource.droppedAttributesCount")?),
            ),
            _ => {}
        }
        Ok(())
    })
}

/// An `InstrumentationScope` (both signals).
fn scope(v: &Value<'_>, w: &mut Writer) -> Result<(), DecodeError> {
    use fields::scope as s;
    fields(v, "scope", |key, v| {
        match key {
            b"name" => w.bytes_field(s::NAME, string(v, "scope.name")?.as_bytes()),
            b"version" => w.bytes_field(s::VERSION, string(v, "scope.version")?.as_bytes()),
            b"attributes" => attributes(v, s::ATTRIBUTES, w)?,
            b"droppedattributescount" => {
                w.varint_field(s::DROPPED_ATTRIBUTES_COUNT, u64::from(uint32(v, "scope.droppedAttributesCount")?))
            }
            _ => {}
        }
        Ok(())
    })
}

const SPAN_KINDS: &[&str] = &["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"];
const STATUS_CODES: &[&str] = &["UNSET", "OK", "ERROR"];

fn span(v: &Value<'_>, w: &mut Writer, id: &mut Vec<u8>) -> Result<(), DecodeError> {
    use fields::span as f;
    fields(v, "spans[]", |key, v| {
        match key {
            b"traceid" => id_field(w, f::TRACE_ID, v, "spans[].traceId", id)?,
            b"spanid" => id_field(w, f::SPAN_ID, v, "spans[].spanId", id)?,
            b"parentspanid" => id_field(w, f::PARENT_SPAN_ID, v, "spans[].parentSpanId", id)?,
            b"tracestate" => w.bytes_field(f::TRACE_STATE, string(v, "spans[].traceState")?.as_bytes()),
            b"name" => w.bytes_field(f::NAME, string(v, "spans[].name")?.as_bytes()),
            b"kind" => w.varint_field(f::KIND, enumeration(v, "spans[].kind", "SPAN_KIND_", SPAN_KINDS)?),
            b"flags" => w.fixed32_field(f::FLAGS, uint32(v, "spans[].flags")?),
            b"starttimeunixnano" => w.fixed64_field(f::START_TIME_UNIX_NANO, uint(v, "spans[].startTimeUnixNano")?),
            b"endtimeunixnano" => w.fixed64_field(f::END_TIME_UNIX_NANO, uint(v, "spans[].endTimeUnixNano")?),
            b"attributes" => attributes(v, f::ATTRIBUTES, w)?,
            b"droppedattributescount" => {
                w.varint_field(f::DROPPED_ATTRIBUTES_COUNT, u64::from(uint32(v, "spans[].droppedAttributesCount")?))
            }
            b"droppedeventscount" => {
                w.varint_field(f::DROPPED_EVENTS_COUNT, u64::from(uint32(v, "spans[].droppedEventsCount")?))
            }
            b"droppedlinkscount" => {
                w.varint_field(f::DROPPED_LINKS_COUNT, u64::from(uint32(v, "spans[].droppedLinksCount")?))
            }
            b"events" => {
                for event in array(v, "spans[].events")? {
                    w.message_field(f::EVENTS, |w| self::event(event, w))?;
                }
            }
            b"links" => {
                for link in array(v, "spans[].links")? {
                    w.message_field(f::LINKS, |w| self::link(link, w, id))?;
                }
            }
            b"status" => w.message_field(f::STATUS, |w| {
                fields(v, "spans[].status", |key, v| {
                    match key {
                        b"message" => w.bytes_field(fields::status::MESSAGE, string(v, "status.message")?.as_bytes()),
                        b"code" => w.varint_field(
                            fields::status::CODE,
                            enumeration(v, "status.code", "STATUS_CODE_", STATUS_CODES)?,
                        ),
                        _ => {}
                    }
                    Ok(())
                })
            })?,
            _ => {}
        }
        Ok(())
    })
}

fn event(v: &Value<'_>, w: &mut Writer) -> Result<(), DecodeError> {
    use fields::event as f;
    fields(v, "events[]", |key, v| {
        match key {
            b"timeunixnano" => w.fixed64_field(f::TIME_UNIX_NANO, uint(v, "events[].timeUnixNano")?),
            b"name" => w.bytes_field(f::NAME, string(v, "events[].name")?.as_bytes()),
            b"attributes" => attributes(v, f::ATTRIBUTES, w)?,
            b"droppedattributescount" => {
                w.varint_field(f::DROPPED_ATTRIBUTES_COUNT, u64::from(uint32(v, "events[].droppedAttributesCount")?))
            }
            _ => {}
        }
        Ok(())
    })
}

fn link(v: &Value<'_>, w: &mut Writer, id: &mut Vec<u8>) -> Result<(), DecodeError> {
    use fields::link as f;
    fields(v, "links[]", |key, v| {
        match key {
            b"traceid" => id_field(w, f::TRACE_ID, v, "links[].traceId", id)?,
            b"spanid" => id_field(w, f::SPAN_ID, v, "links[].spanId", id)?,
            b"tracestate" => w.bytes_field(f::TRACE_STATE, string(v, "links[].traceState")?.as_bytes()),
            b"attributes" => attributes(v, f::ATTRIBUTES, w)?,
            b"droppedattributescount" => {
                w.varint_field(f::DROPPED_ATTRIBUTES_COUNT, u64::from(uint32(v, "links[].droppedAttributesCount")?))
            }
            b"flags" => w.fixed32_field(f::FLAGS, uint32(v, "links[].flags")?),
            _ => {}
        }
        Ok(())
    })
}

fn logs_request(v: &Value<'_>, w: &mut Writer) -> Result<(), DecodeError> {
    fields(v, "request", |key, v| {
        if key == b"resourcelogs" {
            for rl in array(v, "resourceLogs")? {
                w.message_field(fields::logs_request::RESOURCE_LOGS, |w| resource_logs(rl, w))?;
            }
        }
        Ok(())
    })
}

fn resource_logs(v: &Value<'_>, w: &mut Writer) -> Result<(), DecodeError> {
    use fields::resource_logs as f;
    fields(v, "resourceLogs[]", |key, v| {
        match key {
            b"resource" => w.message_field(f::RESOURCE, |w| resource(v, w))?,
            b"scopelogs" => {
                for sl in array(v, "scopeLogs")? {
                    w.message_field(f::SCOPE_LOGS, |w| scope_logs(sl, w))?;
                }
            }
            b"schemaurl" => w.bytes_field(f::SCHEMA_URL, string(v, "resourceLogs[].schemaUrl")?.as_bytes()),
            _ => {}
        }
        Ok(())
    })
}

fn scope_logs(v: &Value<'_>, w: &mut Writer) -> Result<(), DecodeError> {
    use fields::scope_logs as f;
    fields(v, "scopeLogs[]", |key, v| {
        match key {
            b"scope" => w.message_field(f::SCOPE, |w| scope(v, w))?,
            b"logrecords" => {
                let mut id = Vec::with_capacity(16);
                for record in array(v, "logRecords")? {
                    w.message_field(f::LOG_RECORDS, |w| log_record(record, w, &mut id))?;
                }
            }
            b"schemaurl" => w.bytes_field(f::SCHEMA_URL, string(v, "scopeLogs[].schemaUrl")?.as_bytes()),
            _ => {}
        }
        Ok(())
    })
}

fn log_record(v: &Value<'_>, w: &mut Writer, id: &mut Vec<u8>) -> Result<(), DecodeError> {
    use fields::log_record as f;
    fields(v, "logRecords[]", |key, v| {
        match key {
            b"timeunixnano" => w.fixed64_field(f::TIME_UNIX_NANO, uint(v, "logRecords[].timeUnixNano")?),
            b"observedtimeunixnano" => {
                w.fixed64_field(f::OBSERVED_TIME_UNIX_NANO, uint(v, "logRecords[].observedTimeUnixNano")?)
            }
            b"severitynumber" => w.varint_field(
                f::SEVERITY_NUMBER,
                enumeration(v, "logRecords[].severityNumber", "SEVERITY_NUMBER_", &SEVERITY_NAMES)?,
            ),
            b"severitytext" => w.bytes_field(f::SEVERITY_TEXT, string(v, "logRecords[].severityText")?.as_bytes()),
            b"body" => w.message_field(f::BODY, |w| any_value(v, w, 1))?,
            b"attributes" => attributes(v, f::ATTRIBUTES, w)?,
            b"droppedattributescount" => w.varint_field(
                f::DROPPED_ATTRIBUTES_COUNT,
                u64::from(uint32(v, "logRecords[].droppedAttributesCount")?),
            ),
            b"flags" => w.fixed32_field(f::FLAGS, uint32(v, "logRecords[].flags")?),
            b"traceid" => id_field(w, f::TRACE_ID, v, "logRecords[].traceId", id)?,
            b"spanid" => id_field(w, f::SPAN_ID, v, "logRecords[].spanId", id)?,
            b"eventname" => w.bytes_field(f::EVENT_NAME, string(v, "logRecords[].eventName")?.as_bytes()),
            _ => {}
        }
        Ok(())
    })
}

/// A repeated `KeyValue` field.
fn attributes(v: &Value<'_>, field: u32, w: &mut Writer) -> Result<(), DecodeError> {
    for kv in array(v, "attributes")? {
        w.message_field(field, |w| key_value(kv, w, 1))?;
    }
    Ok(())
}

fn key_value(v: &Value<'_>, w: &mut Writer, depth: u32) -> Result<(), DecodeError> {
    fields(v, "attributes[]", |key, v| {
        match key {
            b"key" => w.bytes_field(fields::key_value::KEY, string(v, "attributes[].key")?.as_bytes()),
            b"value" => w.message_field(fields::key_value::VALUE, |w| any_value(v, w, depth))?,
            _ => {}
        }
        Ok(())
    })
}

fn any_value(v: &Value<'_>, w: &mut Writer, depth: u32) -> Result<(), DecodeError> {
    use fields::any_value as f;
    // One level past the protobuf limit, so `validate` refuses the same requests in both encodings.
    if depth > MAX_VALUE_DEPTH + 1 {
        return Err(DecodeError::TooDeep);
    }
    fields(v, "value", |key, v| {
        match key {
            b"stringvalue" => w.bytes_field(f::STRING, string(v, "stringValue")?.as_bytes()),
            b"boolvalue" => w.varint_field(f::BOOL, u64::from(boolean(v, "boolValue")?)),
            b"intvalue" => w.varint_field(f::INT, int(v, "intValue")? as u64),
            b"doublevalue" => w.fixed64_field(f::DOUBLE, double(v, "doubleValue")?.to_bits()),
            b"bytesvalue" => w.bytes_field(f::BYTES, &base64_bytes(v, "bytesValue")?),
            b"arrayvalue" => w.message_field(f::ARRAY, |w| {
                fields(v, "arrayValue", |key, v| {
                    if key == b"values" {
                        for item in array(v, "arrayValue.values")? {
                            w.message_field(fields::LIST_VALUES, |w| any_value(item, w, depth + 1))?;
                        }
                    }
                    Ok(())
                })
            })?,
            b"kvlistvalue" => w.message_field(f::KVLIST, |w| {
                fields(v, "kvlistValue", |key, v| {
                    if key == b"values" {
                        for kv in array(v, "kvlistValue.values")? {
                            w.message_field(fields::LIST_VALUES, |w| key_value(kv, w, depth + 1))?;
                        }
                    }
                    Ok(())
                })
            })?,
            _ => {}
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{AnyValue, Request};

    /// Transcode, then read the first span's first attribute value back through the protobuf views.
    fn first_attribute(value_json: &str, check: impl FnOnce(AnyValue<'_>)) {
        let json = format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"00000000000000000000000000000001",
            "spanId":"0000000000000001","attributes":[{{"key":"k","value":{value_json}}}]}}]}}]}}]}}"#
        );
        let protobuf = to_protobuf(Signal::Traces, &mut json.into_bytes()).unwrap();
        let rs = Request::new(&protobuf).resource_spans().next().unwrap().unwrap();
        let ss = rs.scope_spans().next().unwrap().unwrap();
        let span = ss.spans().next().unwrap().unwrap();
        let kv = span.attributes().into_iter().next().unwrap().unwrap();
        assert_eq!(kv.key, "k");
        check(kv.value);
    }

    #[test]
    fn special_doubles_and_number_forms() {
        first_attribute(r#"{"doubleValue":"NaN"}"#, |v| assert!(matches!(v, AnyValue::Double(d) if d.is_nan())));
        first_attribute(r#"{"doubleValue":"-Infinity"}"#, |v| assert_eq!(v, AnyValue::Double(f64::NEG_INFINITY)));
        first_attribute(r#"{"doubleValue":3}"#, |v| assert_eq!(v, AnyValue::Double(3.0)));
        first_attribute(r#"{"intValue":"-9223372036854775808"}"#, |v| assert_eq!(v, AnyValue::Int(i64::MIN)));
        first_attribute(r#"{"intValue":12}"#, |v| assert_eq!(v, AnyValue::Int(12)));
        first_attribute(r#"{"bytesValue":"-_8"}"#, |v| assert_eq!(v, AnyValue::Bytes(&[0xfb, 0xff])));
        first_attribute(r#"{"bytesValue":"+/8="}"#, |v| assert_eq!(v, AnyValue::Bytes(&[0xfb, 0xff])));
        first_attribute(r#"{}"#, |v| assert_eq!(v, AnyValue::Empty));
    }

    #[test]
    fn malformed_values_are_refused_with_their_path() {
        let refuse = |json: &str| to_protobuf(Signal::Traces, &mut json.as_bytes().to_vec()).unwrap_err().to_string();
        assert!(refuse(r#"{"resourceSpans":{}}"#).contains("resourceSpans must be an array"));
        assert!(refuse(r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"abc"}]}]}]}"#).contains("traceId"));
        assert!(
            refuse(r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_NOPE"}]}]}]}"#).contains("enum")
        );
        assert!(refuse(r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":-1}]}]}]}"#)
            .contains("non-negative"));
        assert!(refuse("[1, 2").contains("not valid JSON"));
        assert!(refuse("[]").contains("must be an object"));
    }

    #[test]
    fn whitespace_is_an_empty_request() {
        assert!(to_protobuf(Signal::Traces, &mut b" \n".to_vec()).unwrap().is_empty());
        assert!(to_protobuf(Signal::Logs, &mut b" \n".to_vec()).unwrap().is_empty());
    }

    #[test]
    fn a_log_record_with_every_field() {
        use crate::decode::logs::LogsRequest;
        let json =
            br#"{"resource_logs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"s"}}]},
            "scopeLogs":[{"scope":{"name":"sc"},"logRecords":[{"timeUnixNano":"5","observed_time_unix_nano":6,
            "severityNumber":"SEVERITY_NUMBER_WARN2","severityText":"W","body":{"kvlistValue":{"values":[
            {"key":"a","value":{"intValue":"7"}}]}},"attributes":[{"key":"k","value":{"boolValue":true}}],
            "droppedAttributesCount":1,"flags":257,"traceId":"0102030405060708090A0B0C0D0E0F10",
            "spanId":"0102030405060708","eventName":"ev"}],"schemaUrl":"u"}]}]}"#;
        let protobuf = to_protobuf(Signal::Logs, &mut json.to_vec()).unwrap();
        let rl = LogsRequest::new(&protobuf).resource_logs().next().unwrap().unwrap();
        let sl = rl.scope_logs().next().unwrap().unwrap();
        assert_eq!((sl.scope.name, sl.schema_url), ("sc", "u"));
        let r = sl.log_records().next().unwrap().unwrap();
        assert_eq!((r.time_unix_nano, r.observed_time_unix_nano, r.severity_number), (5, 6, 14));
        assert_eq!((r.severity_text, r.event_name, r.flags, r.dropped_attributes_count), ("W", "ev", 257, 1));
        assert_eq!(r.trace_id, (1..=16).collect::<Vec<u8>>());
        assert_eq!(r.span_id, (1..=8).collect::<Vec<u8>>());
        let AnyValue::KvList(body) = r.body else { panic!("body {:?}", r.body) };
        let kv = body.iter(1).unwrap().next().unwrap().unwrap();
        assert_eq!((kv.key, kv.value), ("a", AnyValue::Int(7)));
        let kv = r.attributes().into_iter().next().unwrap().unwrap();
        assert_eq!((kv.key, kv.value), ("k", AnyValue::Bool(true)));
        // Short severity names and numbers too; a traces body read as logs holds no log record.
        for (severity, number) in [(r#""INFO""#, 9), ("24", 24)] {
            let json =
                format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"severityNumber":{severity}}}]}}]}}]}}"#);
            let protobuf = to_protobuf(Signal::Logs, &mut json.into_bytes()).unwrap();
            let rl = LogsRequest::new(&protobuf).resource_logs().next().unwrap().unwrap();
            let r = rl.scope_logs().next().unwrap().unwrap().log_records().next().unwrap().unwrap();
            assert_eq!(r.severity_number, number);
        }
        let traces = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{}]}]}]}"#;
        assert!(to_protobuf(Signal::Logs, &mut traces.to_vec()).unwrap().is_empty());
    }

    #[test]
    fn malformed_log_fields_are_refused_with_their_path() {
        let refuse = |json: &str| to_protobuf(Signal::Logs, &mut json.as_bytes().to_vec()).unwrap_err().to_string();
        let record =
            |fields: &str| format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{{fields}}}]}}]}}]}}"#);
        assert!(refuse(&record(r#""severityNumber":"LOUD""#)).contains("severityNumber"));
        assert!(refuse(&record(r#""traceId":"xyz""#)).contains("traceId"));
        assert!(refuse(&record(r#""observedTimeUnixNano":-1"#)).contains("observedTimeUnixNano"));
        assert!(refuse(&record(r#""body":[]"#)).contains("must be an object"));
        assert!(refuse(r#"{"resourceLogs":{}}"#).contains("resourceLogs must be an array"));
    }
}
