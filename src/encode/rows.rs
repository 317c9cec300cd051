//! Record batches → one protobuf message per row, in the layout a protobuf descriptor gives: the row format of
//! the Zerobus sink, where Databricks derives the descriptor from the Unity Catalog table (a column's field number
//! is its position + 1, maps are repeated `key`/`value` entries, structs are nested messages).
//!
//! Contract: [`RowEncoder::new`] matches every column of the batch schema, at every nesting level, to a field of
//! the descriptor by name and checks their types, so a table that cannot hold a column is refused before any row
//! is sent (nothing is dropped silently). Fields the batch does not have are left unset (they must not be
//! `required`). Encoding then follows that plan: a null value leaves its field unset; an empty string is written
//! (proto2 presence: empty and null stay distinct, as in the Delta rows). Lengths are minimal varints.
//!
//! Types the Zerobus SDK maps to scalars (its `schema.rs` type table) are written in its units:
//! - `TIMESTAMP` (Arrow `Timestamp(Microsecond, _)`) → `int64` microseconds since 1970-01-01 00:00:00 UTC. The
//!   descriptor does not tell `TIMESTAMP` from `TIMESTAMP_NTZ` (both `int64`); our batches hold UTC instants.
//! - `DATE` (Arrow `Date32`) → `int32` days since 1970-01-01.
//! - `VARIANT` (Arrow: a struct of exactly a `metadata` and a `value` binary, as the Delta kernel and
//!   `table::bags::variant` build it) → `string` holding the value as JSON text, as the SDK maps it, at any
//!   nesting level (`events[].attributes`, `resource.attributes`). The text is what arrow-rs's
//!   `parquet_variant_json::VariantToJson` writes: strings JSON-escaped, ints as integers, a double in Rust's
//!   shortest decimal form without exponent (an integral double loses its fraction: `1.0` → `1`), binary as a
//!   standard base64 string with padding (as the v1 layout renders bytes), dates and timestamps as quoted ISO
//!   text. One exception: arrow-rs writes a non-finite double as a bare `NaN` / `inf`, which is not JSON (the
//!   table would refuse the record, again on every retry); it is written as the string `"NaN"`, `"Infinity"` or
//!   `"-Infinity"` instead, as OTLP/JSON and the v1 layout write it. A value whose bytes are not a valid variant
//!   fails the batch ([`RowEncodeError`]), never written as something else.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Date32Type, Fields, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use arrow::error::ArrowError;
use parquet::variant::Variant;
use parquet_variant_json::VariantToJson;
use prost_reflect::{Cardinality, FieldDescriptor, Kind, MessageDescriptor};

use crate::table::is_variant;

/// Why a descriptor cannot carry the batch's rows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RowSchemaError {
    #[error("column {0} is not in the table")]
    MissingInTable(String),
    #[error("the table's column {0} is required but otel-delta has no value for it")]
    RequiredUnknown(String),
    #[error("column {column}: otel-delta writes {ours}, the table has {theirs}")]
    Mismatch { column: String, ours: String, theirs: String },
}

/// Why a batch's rows could not be encoded (the plan matched, a value did not).
#[derive(Debug, thiserror::Error)]
pub(crate) enum RowEncodeError {
    #[error("column {column}: not a valid VARIANT value: {source}")]
    Variant {
        column: String,
        #[source]
        source: ArrowError,
    },
}

/// How one column is written.
#[derive(Debug, Clone)]
enum Value {
    Str,
    /// A 32- or 64-bit integer column (written as a varint of its sign-extended value: int32 and int64 agree).
    Int32,
    Int64,
    /// TIMESTAMP: microseconds since the epoch, as int64.
    Micros,
    /// DATE: days since the epoch, as int32.
    Days,
    /// VARIANT as its JSON text; the column's path names it in errors.
    VariantJson(String),
    /// MAP<STRING,STRING> as repeated entries with these field numbers.
    Map {
        key: u32,
        value: u32,
    },
    Struct(Vec<Field>),
    /// ARRAY<STRUCT<…>> as a repeated nested message.
    Repeated(Vec<Field>),
}

#[derive(Debug, Clone)]
struct Field {
    number: u32,
    column: usize,
    value: Value,
}

/// Encodes rows of batches in one schema for one descriptor.
#[derive(Debug, Clone)]
pub(crate) struct RowEncoder {
    fields: Vec<Field>,
}

impl RowEncoder {
    /// Plan the encoding of rows with `schema` (the batch's fields) as messages of `descriptor`.
    pub(crate) fn new(descriptor: &MessageDescriptor, schema: &Fields) -> Result<Self, RowSchemaError> {
        Ok(RowEncoder { fields: plan(descriptor, schema, "")? })
    }

    /// Append one encoded message per row of `batch` to `out`; returns the bytes appended. On an error, the rows
    /// of this batch appended so far are taken back (the batch is all or nothing).
    pub(crate) fn encode(&self, batch: &RecordBatch, out: &mut Vec<Vec<u8>>) -> Result<usize, RowEncodeError> {
        let before = out.len();
        let mut total = 0;
        for row in 0..batch.num_rows() {
            let mut message = Vec::with_capacity(256);
            if let Err(e) = write_fields(&self.fields, batch.columns(), row, &mut message) {
                out.truncate(before);
                return Err(e);
            }
            total += message.len();
            out.push(message);
        }
        Ok(total)
    }
}

fn plan(descriptor: &MessageDescriptor, schema: &Fields, path: &str) -> Result<Vec<Field>, RowSchemaError> {
    let named = |name: &str| if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") };
    let mut fields = Vec::new();
    for proto in descriptor.fields() {
        let Some((column, arrow)) = schema.find(proto.name()) else {
            if proto.cardinality() == Cardinality::Required {
                return Err(RowSchemaError::RequiredUnknown(named(proto.name())));
            }
            continue;
        };
        let name = named(arrow.name());
        let value = value(&proto, arrow.data_type(), &name)?;
        fields.push(Field { number: proto.number(), column, value });
    }
    if let Some(missing) = schema.iter().find(|f| descriptor.get_field_by_name(f.name()).is_none()) {
        return Err(RowSchemaError::MissingInTable(named(missing.name())));
    }
    Ok(fields)
}

fn describe(proto: &FieldDescriptor) -> String {
    let kind = match proto.kind() {
        Kind::Message(m) => m.name().to_owned(),
        other => format!("{other:?}").to_lowercase(),
    };
    if proto.is_map() {
        format!("map {kind}")
    } else if proto.is_list() {
        format!("repeated {kind}")
    } else {
        kind
    }
}

fn value(proto: &FieldDescriptor, arrow: &DataType, name: &str) -> Result<Value, RowSchemaError> {
    let mismatch = || {
        let ours = match arrow {
            DataType::Struct(children) if is_variant(children) => "VARIANT".to_owned(),
            other => other.to_string(),
        };
        RowSchemaError::Mismatch { column: name.to_owned(), ours, theirs: describe(proto) }
    };
    let single = !proto.is_list() && !proto.is_map();
    let string = |f: &FieldDescriptor| matches!(f.kind(), Kind::String) && !f.is_list();
    match (arrow, proto.kind()) {
        (DataType::Utf8 | DataType::Utf8View, Kind::String) if single => Ok(Value::Str),
        (DataType::Int32, Kind::Int32 | Kind::Int64) if single => Ok(Value::Int32),
        (DataType::Int64, Kind::Int64) if single => Ok(Value::Int64),
        // Other units would need converting; no contract has them, so they stay refused.
        (DataType::Timestamp(TimeUnit::Microsecond, _), Kind::Int64) if single => Ok(Value::Micros),
        (DataType::Date32, Kind::Int32) if single => Ok(Value::Days),
        (DataType::Struct(children), Kind::String) if single && is_variant(children) => {
            Ok(Value::VariantJson(name.to_owned()))
        }
        (DataType::Map(entries, _), Kind::Message(entry)) if proto.is_map() || proto.is_list() => {
            let DataType::Struct(kv) = entries.data_type() else { return Err(mismatch()) };
            let (key, value) = (entry.get_field_by_name("key"), entry.get_field_by_name("value"));
            match (key, value, kv.iter().map(|f| f.data_type()).collect::<Vec<_>>().as_slice()) {
                (Some(k), Some(v), [DataType::Utf8 | DataType::Utf8View, DataType::Utf8 | DataType::Utf8View])
                    if string(&k) && string(&v) =>
                {
                    Ok(Value::Map { key: k.number(), value: v.number() })
                }
                _ => Err(mismatch()),
            }
        }
        (DataType::Struct(children), Kind::Message(m)) if single && !is_variant(children) => {
            Ok(Value::Struct(plan(&m, children, name)?))
        }
        (DataType::List(item), Kind::Message(m)) if proto.is_list() => match item.data_type() {
            DataType::Struct(children) if !is_variant(children) => Ok(Value::Repeated(plan(&m, children, name)?)),
            _ => Err(mismatch()),
        },
        _ => Err(mismatch()),
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    varint(out, (u64::from(number) << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The string at `row` of a string column in either layout the table contracts build (offsets, or views of
/// values stored once: `table::repeated`).
fn string_at(array: &dyn Array, row: usize) -> Option<&str> {
    match array.as_string_opt::<i32>() {
        Some(a) => Some(a.value(row)),
        None => array.as_string_view_opt().map(|a| a.value(row)),
    }
}

/// The bytes at `row` of a binary column in any of its layouts (the VARIANT builders make views).
fn binary_at(array: &dyn Array, row: usize) -> Option<&[u8]> {
    if let Some(a) = array.as_binary_view_opt() {
        return Some(a.value(row));
    }
    match array.as_binary_opt::<i32>() {
        Some(a) => Some(a.value(row)),
        None => array.as_binary_opt::<i64>().map(|a| a.value(row)),
    }
}

fn varint_field(out: &mut Vec<u8>, number: u32, v: u64) {
    varint(out, u64::from(number) << 3);
    varint(out, v);
}

/// Write `row` of `columns` as the fields of one message. The plan was checked against the schema, so every
/// downcast below matches the column's type; a column that does not (impossible) is skipped, not panicked on.
fn write_fields(fields: &[Field], columns: &[ArrayRef], row: usize, out: &mut Vec<u8>) -> Result<(), RowEncodeError> {
    let mut nested = Vec::new();
    for field in fields {
        let Some(array) = columns.get(field.column) else { continue };
        if array.is_null(row) {
            continue;
        }
        match &field.value {
            Value::Str => {
                if let Some(s) = string_at(array.as_ref(), row) {
                    bytes_field(out, field.number, s.as_bytes());
                }
            }
            Value::Int32 => {
                if let Some(a) = array.as_primitive_opt::<Int32Type>() {
                    varint_field(out, field.number, i64::from(a.value(row)) as u64);
                }
            }
            Value::Int64 => {
                if let Some(a) = array.as_primitive_opt::<Int64Type>() {
                    varint_field(out, field.number, a.value(row) as u64);
                }
            }
            Value::Micros => {
                if let Some(a) = array.as_primitive_opt::<TimestampMicrosecondType>() {
                    varint_field(out, field.number, a.value(row) as u64);
                }
            }
            Value::Days => {
                if let Some(a) = array.as_primitive_opt::<Date32Type>() {
                    varint_field(out, field.number, i64::from(a.value(row)) as u64);
                }
            }
            Value::VariantJson(column) => {
                let Some(s) = array.as_struct_opt() else { continue };
                let (Some(metadata), Some(value)) = (s.columns().first(), s.columns().get(1)) else { continue };
                let (Some(metadata), Some(value)) = (binary_at(metadata.as_ref(), row), binary_at(value.as_ref(), row))
                else {
                    continue;
                };
                nested.clear();
                Variant::try_new(metadata, value)
                    .and_then(|v| write_json(&v, &mut nested))
                    .map_err(|source| RowEncodeError::Variant { column: column.clone(), source })?;
                bytes_field(out, field.number, &nested);
            }
            Value::Map { key, value } => {
                let Some(map) = array.as_map_opt() else { continue };
                let (keys, values) = (map.keys().as_ref(), map.values().as_ref());
                let offsets = map.value_offsets();
                for entry in offsets[row] as usize..offsets[row + 1] as usize {
                    let Some(k) = string_at(keys, entry) else { continue };
                    nested.clear();
                    bytes_field(&mut nested, *key, k.as_bytes());
                    if let Some(v) = string_at(values, entry).filter(|_| values.is_valid(entry)) {
                        bytes_field(&mut nested, *value, v.as_bytes());
                    }
                    bytes_field(out, field.number, &nested);
                }
            }
            Value::Struct(children) => {
                let Some(s) = array.as_struct_opt() else { continue };
                nested.clear();
                write_fields(children, s.columns(), row, &mut nested)?;
                bytes_field(out, field.number, &nested);
            }
            Value::Repeated(children) => {
                let Some(list) = array.as_list_opt::<i32>() else { continue };
                let Some(items) = list.values().as_struct_opt() else { continue };
                let offsets = list.value_offsets();
                for item in offsets[row] as usize..offsets[row + 1] as usize {
                    if items.is_null(item) {
                        continue;
                    }
                    nested.clear();
                    write_fields(children, items.columns(), item, &mut nested)?;
                    bytes_field(out, field.number, &nested);
                }
            }
        }
    }
    Ok(())
}

/// `variant` as JSON text (see the module doc): arrow-rs's conversion, except for non-finite doubles, which are
/// reached by walking objects and lists here rather than inside arrow-rs.
fn write_json(variant: &Variant<'_, '_>, out: &mut Vec<u8>) -> Result<(), ArrowError> {
    let key = |out: &mut Vec<u8>, key: &str| {
        serde_json::to_writer(&mut *out, key).map_err(|e| ArrowError::InvalidArgumentError(format!("JSON key: {e}")))
    };
    match variant {
        Variant::Object(object) => {
            out.push(b'{');
            for (i, field) in object.iter_try().enumerate() {
                let (name, value) = field?;
                if i > 0 {
                    out.push(b',');
                }
                key(out, name)?;
                out.push(b':');
                write_json(&value, out)?;
            }
            out.push(b'}');
        }
        Variant::List(list) => {
            out.push(b'[');
            for (i, item) in list.iter_try().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(&item?, out)?;
            }
            out.push(b']');
        }
        Variant::Double(d) if !d.is_finite() => non_finite(*d, out),
        Variant::Float(f) if !f.is_finite() => non_finite(f64::from(*f), out),
        leaf => leaf.to_json(out)?,
    }
    Ok(())
}

/// A non-finite double as OTLP/JSON writes it: a string.
fn non_finite(d: f64, out: &mut Vec<u8>) {
    let text: &[u8] = if d.is_nan() {
        b"\"NaN\""
    } else if d > 0.0 {
        b"\"Infinity\""
    } else {
        b"\"-Infinity\""
    };
    out.extend_from_slice(text);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use prost_reflect::{DescriptorPool, DynamicMessage, MapKey};
    use prost_types::field_descriptor_proto::{Label, Type};
    use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet};

    use super::*;
    use crate::table::{Contract, Rows};

    fn field(name: &str, number: i32, kind: Type, type_name: Option<&str>, label: Label) -> FieldDescriptorProto {
        FieldDescriptorProto {
            name: Some(name.into()),
            number: Some(number),
            r#type: Some(kind as i32),
            type_name: type_name.map(str::to_owned),
            label: Some(label as i32),
            ..Default::default()
        }
    }

    /// A descriptor the way Databricks derives one from the v1 spans table's columns (position + 1, nested types
    /// for structs and map entries): built from the same Unity Catalog column JSON we create tables with.
    fn v1_descriptor() -> MessageDescriptor {
        let columns = crate::databricks::unity::uc_columns(crate::table::Contract::spans_v1());
        let proto = databricks_zerobus_ingest_sdk::schema::descriptor_from_uc_columns(&columns, "spans").unwrap();
        databricks_zerobus_ingest_sdk::message_descriptor(&proto).unwrap()
    }

    fn one_request() -> bytes::Bytes {
        use crate::decode::wire::Writer;
        let mut kv = Writer::new();
        kv.bytes_field(1, b"http.method");
        let mut any = Writer::new();
        any.bytes_field(1, b"GET");
        kv.bytes_field(2, &any.buf);
        let mut event = Writer::new();
        event.fixed64_field(1, 5);
        event.bytes_field(2, b"retry");
        let mut span = Writer::new();
        span.bytes_field(1, &[0xab; 16]);
        span.bytes_field(2, &[0xcd; 8]);
        span.bytes_field(5, b"GET /");
        span.varint_field(6, 2);
        span.fixed64_field(7, 10);
        span.fixed64_field(8, 20);
        span.bytes_field(9, &kv.buf);
        span.bytes_field(11, &event.buf);
        bytes::Bytes::from(crate::testing::request_of_spans(&[span.buf]))
    }

    /// The one span of `request` as `contract`'s row, encoded for `descriptor` and decoded with it.
    fn encode_one(descriptor: &MessageDescriptor, contract: &'static Contract, request: &[u8]) -> DynamicMessage {
        let encoder = RowEncoder::new(descriptor, contract.arrow_schema().fields()).unwrap();
        let mut columns = Rows::new(contract);
        columns.append_request(request).unwrap();
        let mut rows = Vec::new();
        encoder.encode(&columns.finish().unwrap(), &mut rows).unwrap();
        assert_eq!(rows.len(), 1);
        DynamicMessage::decode(descriptor.clone(), rows[0].as_slice()).unwrap()
    }

    #[test]
    fn rows_decode_with_the_descriptor_databricks_derives_from_the_table() {
        let row = encode_one(&v1_descriptor(), Contract::spans_v1(), &one_request());
        let get = |name: &str| row.get_field_by_name(name).unwrap().into_owned();
        assert_eq!(get("trace_id").as_str(), Some("abababababababababababababababab"));
        assert_eq!(get("span_id").as_str(), Some("cdcdcdcdcdcdcdcd"));
        assert_eq!(get("parent_span_id").as_str(), Some(""), "a root span's empty parent is written, not null");
        assert_eq!(get("name").as_str(), Some("GET /"));
        assert_eq!(get("kind").as_str(), Some("SERVER"));
        assert_eq!(get("start_time_unix_nano").as_i64(), Some(10));
        assert_eq!(get("end_time_unix_nano").as_i64(), Some(20));
        let attributes = get("attributes");
        let attributes = attributes.as_map().unwrap();
        assert_eq!(attributes.get(&MapKey::String("http.method".into())).and_then(|v| v.as_str()), Some("GET"));
        let events = get("events");
        let events = events.as_list().unwrap();
        assert_eq!(events.len(), 1);
        let event = events[0].as_message().unwrap();
        assert_eq!(event.get_field_by_name("name").unwrap().as_str(), Some("retry"));
        assert_eq!(event.get_field_by_name("time_unix_nano").unwrap().as_i64(), Some(5));
        assert!(!row.has_field_by_name("links") || get("links").as_list().unwrap().is_empty());
        let status = get("status");
        assert_eq!(status.as_message().unwrap().get_field_by_name("code").unwrap().as_str(), Some("UNSET"));
    }

    /// The descriptor Databricks derives from the v2 spans table's columns (VARIANT, TIMESTAMP, DATE included).
    fn v2_descriptor() -> MessageDescriptor {
        let columns = crate::databricks::unity::uc_columns(Contract::spans_v2());
        let proto = databricks_zerobus_ingest_sdk::schema::descriptor_from_uc_columns(&columns, "spans").unwrap();
        databricks_zerobus_ingest_sdk::message_descriptor(&proto).unwrap()
    }

    /// An OTLP `KeyValue` whose `AnyValue` has `field` set to `value` (wire-encoded).
    fn kv(key: &str, field: u32, value: impl FnOnce(&mut crate::decode::wire::Writer, u32)) -> Vec<u8> {
        let mut any = crate::decode::wire::Writer::new();
        value(&mut any, field);
        let mut kv = crate::decode::wire::Writer::new();
        kv.bytes_field(1, key.as_bytes());
        kv.bytes_field(2, &any.buf);
        kv.buf
    }

    fn string_kv(key: &str, value: &str) -> Vec<u8> {
        kv(key, 1, |w, f| w.bytes_field(f, value.as_bytes()))
    }

    /// A request of one span carrying every attribute value type, an event and a link with attributes, in a
    /// resource and scope with attributes.
    fn v2_request() -> Vec<u8> {
        use crate::decode::wire::Writer;
        let mut array = Writer::new();
        array.bytes_field(1, &{
            let mut any = Writer::new();
            any.varint_field(3, 1);
            any.buf
        });
        array.bytes_field(1, &{
            let mut any = Writer::new();
            any.bytes_field(1, b"x");
            any.buf
        });
        let mut kvlist = Writer::new();
        kvlist.bytes_field(1, &string_kv("k", "v \"quoted\""));
        let mut span = Writer::new();
        span.bytes_field(1, &[0xab; 16]);
        span.bytes_field(2, &[0xcd; 8]);
        span.bytes_field(5, b"GET /");
        span.varint_field(6, 2);
        span.fixed64_field(7, 1_700_000_000_123_456_789);
        span.fixed64_field(8, 1_700_000_001_000_000_000);
        for attribute in [
            string_kv("s", "GET"),
            kv("b", 2, |w, f| w.varint_field(f, 1)),
            kv("i", 3, |w, f| w.varint_field(f, (-42i64) as u64)),
            kv("d", 4, |w, f| w.fixed64_field(f, 1.5f64.to_bits())),
            kv("whole", 4, |w, f| w.fixed64_field(f, 2.0f64.to_bits())),
            kv("nan", 4, |w, f| w.fixed64_field(f, f64::NAN.to_bits())),
            kv("inf", 4, |w, f| w.fixed64_field(f, f64::NEG_INFINITY.to_bits())),
            kv("arr", 5, |w, f| w.bytes_field(f, &array.buf)),
            kv("kv", 6, |w, f| w.bytes_field(f, &kvlist.buf)),
            kv("by", 7, |w, f| w.bytes_field(f, &[1, 2, 255])),
        ] {
            span.bytes_field(9, &attribute);
        }
        let mut event = Writer::new();
        event.fixed64_field(1, 5);
        event.bytes_field(2, b"retry");
        event.bytes_field(3, &kv("attempt", 3, |w, f| w.varint_field(f, 3)));
        span.bytes_field(11, &event.buf);
        let mut link = Writer::new();
        link.bytes_field(1, &[0x11; 16]);
        link.bytes_field(2, &[0x22; 8]);
        link.bytes_field(4, &string_kv("why", "follows"));
        span.bytes_field(13, &link.buf);
        let mut scope = Writer::new();
        scope.bytes_field(1, b"lib");
        scope.bytes_field(3, &string_kv("scope.k", "scope.v"));
        let mut scope_spans = Writer::new();
        scope_spans.bytes_field(1, &scope.buf);
        scope_spans.bytes_field(2, &span.buf);
        let mut resource = Writer::new();
        resource.bytes_field(1, &string_kv("service.name", "checkout"));
        let mut resource_spans = Writer::new();
        resource_spans.bytes_field(1, &resource.buf);
        resource_spans.bytes_field(2, &scope_spans.buf);
        let mut request = Writer::new();
        request.bytes_field(1, &resource_spans.buf);
        request.buf
    }

    fn json_of(value: &prost_reflect::Value) -> serde_json::Value {
        let text = value.as_str().expect("VARIANT is written as a string");
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON: {text}: {e}"))
    }

    #[test]
    fn v2_rows_carry_variants_as_json_and_times_in_the_sdk_units() {
        let row = encode_one(&v2_descriptor(), Contract::spans_v2(), &v2_request());
        let get = |name: &str| row.get_field_by_name(name).unwrap().into_owned();
        let record_id = get("record_id");
        assert_eq!(record_id.as_str().map(str::len), Some(36), "{record_id:?}");
        assert_eq!(get("time").as_i64(), Some(1_700_000_000_123_456), "microseconds of the start time");
        assert_eq!(get("date").as_i32(), Some(19_675), "2023-11-14, days since 1970-01-01");
        assert_eq!(get("service_name").as_str(), Some("checkout"));
        assert_eq!(get("kind").as_str(), Some("SPAN_KIND_SERVER"));
        assert!(!row.has_field_by_name("parent_span_id"), "a root span's parent is NULL in v2");
        let attributes = json_of(&get("attributes"));
        let expected = serde_json::json!({
            "s": "GET", "b": true, "i": -42, "d": 1.5, "nan": "NaN", "inf": "-Infinity",
            "arr": [1, "x"], "kv": {"k": "v \"quoted\""}, "by": "AQL/",
            // arrow-rs writes an integral double without its fraction.
            "whole": 2,
        });
        assert_eq!(attributes, expected);
        let events = get("events");
        let event = events.as_list().unwrap()[0].as_message().unwrap().clone();
        assert_eq!(json_of(&event.get_field_by_name("attributes").unwrap()), serde_json::json!({"attempt": 3}));
        let links = get("links");
        let link = links.as_list().unwrap()[0].as_message().unwrap().clone();
        assert_eq!(json_of(&link.get_field_by_name("attributes").unwrap()), serde_json::json!({"why": "follows"}));
        let resource = get("resource");
        let resource = resource.as_message().unwrap();
        assert_eq!(
            json_of(&resource.get_field_by_name("attributes").unwrap()),
            serde_json::json!({"service.name": "checkout"})
        );
        let scope = get("instrumentation_scope");
        let scope = scope.as_message().unwrap();
        assert_eq!(json_of(&scope.get_field_by_name("attributes").unwrap()), serde_json::json!({"scope.k": "scope.v"}));
        assert_eq!(
            get("status").as_message().unwrap().get_field_by_name("code").unwrap().as_str(),
            Some("STATUS_CODE_UNSET")
        );
    }

    #[test]
    fn v2_columns_are_refused_by_a_v1_table_and_the_reverse() {
        let v1 = RowEncoder::new(&v1_descriptor(), Contract::spans_v2().arrow_schema().fields()).unwrap_err();
        assert!(matches!(v1, RowSchemaError::Mismatch { ref column, .. } if column == "attributes"), "{v1}");
        assert!(v1.to_string().contains("writes VARIANT, the table has map"), "{v1}");
        let v2 = RowEncoder::new(&v2_descriptor(), Contract::spans_v1().arrow_schema().fields()).unwrap_err();
        assert!(matches!(v2, RowSchemaError::Mismatch { ref column, .. } if column == "attributes"), "{v2}");
    }

    #[test]
    fn timestamps_dates_and_variants_need_the_sdk_types() {
        use arrow::datatypes::{Field as F, TimeUnit};
        let variant = DataType::Struct(Fields::from(vec![
            F::new("metadata", DataType::BinaryView, false),
            F::new("value", DataType::BinaryView, false),
        ]));
        let cases = [
            ("t", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), Type::Int32),
            ("t", DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), Type::Int64),
            ("t", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), Type::String),
            ("d", DataType::Date32, Type::Int64),
            ("d", DataType::Date32, Type::String),
            ("v", variant.clone(), Type::Bytes),
            ("v", variant.clone(), Type::Int64),
        ];
        for (name, arrow, proto) in cases {
            let descriptor = pool_with(DescriptorProto {
                name: Some("Row".into()),
                field: vec![field(name, 1, proto, None, Label::Optional)],
                ..Default::default()
            });
            let fields = Fields::from(vec![F::new(name, arrow.clone(), true)]);
            let err = RowEncoder::new(&descriptor, &fields).unwrap_err();
            assert!(matches!(err, RowSchemaError::Mismatch { ref column, .. } if column == name), "{arrow}: {err}");
        }
        // A VARIANT names itself as such when refused.
        let descriptor = pool_with(DescriptorProto {
            name: Some("Row".into()),
            field: vec![field("v", 1, Type::Int64, None, Label::Optional)],
            ..Default::default()
        });
        let err = RowEncoder::new(&descriptor, &Fields::from(vec![F::new("v", variant, true)])).unwrap_err();
        assert!(err.to_string().contains("writes VARIANT"), "{err}");
    }

    #[test]
    fn an_invalid_variant_fails_the_batch_and_adds_no_row() {
        use arrow::array::{BinaryViewArray, StructArray};
        use arrow::datatypes::Field as F;
        let children = Fields::from(vec![
            F::new("metadata", DataType::BinaryView, false),
            F::new("value", DataType::BinaryView, false),
        ]);
        let fields = Fields::from(vec![F::new("v", DataType::Struct(children.clone()), true)]);
        let descriptor = pool_with(DescriptorProto {
            name: Some("Row".into()),
            field: vec![field("v", 1, Type::String, None, Label::Optional)],
            ..Default::default()
        });
        let encoder = RowEncoder::new(&descriptor, &fields).unwrap();
        let metadata: ArrayRef = Arc::new(BinaryViewArray::from(vec![&[1u8, 0, 0][..], &[9u8, 9][..]]));
        let value: ArrayRef = Arc::new(BinaryViewArray::from(vec![&[0u8][..], &[0u8][..]]));
        let column = StructArray::try_new(children, vec![metadata, value], None).unwrap();
        let batch =
            RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), vec![Arc::new(column)]).unwrap();
        let mut rows = vec![b"earlier".to_vec()];
        let err = encoder.encode(&batch, &mut rows).unwrap_err();
        assert!(err.to_string().contains("column v"), "{err}");
        assert_eq!(rows, [b"earlier".to_vec()], "the valid first row was taken back");
    }

    fn pool_with(message: DescriptorProto) -> MessageDescriptor {
        let file = FileDescriptorProto {
            name: Some("t.proto".into()),
            package: Some("t".into()),
            message_type: vec![message],
            syntax: Some("proto2".into()),
            ..Default::default()
        };
        let pool = DescriptorPool::from_file_descriptor_set(FileDescriptorSet { file: vec![file] }).unwrap();
        pool.get_message_by_name("t.Row").unwrap()
    }

    #[test]
    fn a_table_that_cannot_hold_a_column_is_refused_by_name() {
        let fields = Fields::from(vec![
            arrow::datatypes::Field::new("name", DataType::Utf8, true),
            arrow::datatypes::Field::new("start", DataType::Int64, true),
        ]);
        let row = |fields: Vec<FieldDescriptorProto>| {
            pool_with(DescriptorProto { name: Some("Row".into()), field: fields, ..Default::default() })
        };
        let name = field("name", 1, Type::String, None, Label::Optional);
        let missing = RowEncoder::new(&row(vec![name.clone()]), &fields).unwrap_err();
        assert_eq!(missing, RowSchemaError::MissingInTable("start".into()));
        let narrow =
            RowEncoder::new(&row(vec![name.clone(), field("start", 2, Type::Int32, None, Label::Optional)]), &fields)
                .unwrap_err();
        assert!(matches!(narrow, RowSchemaError::Mismatch { ref column, .. } if column == "start"), "{narrow}");
        let required = row(vec![
            name.clone(),
            field("start", 2, Type::Int64, None, Label::Optional),
            field("tenant", 3, Type::String, None, Label::Required),
        ]);
        assert_eq!(RowEncoder::new(&required, &fields).unwrap_err(), RowSchemaError::RequiredUnknown("tenant".into()));
        // An extra optional column of the table is fine: left unset.
        let extra = row(vec![
            name,
            field("start", 2, Type::Int64, None, Label::Optional),
            field("tenant", 3, Type::String, None, Label::Optional),
        ]);
        let encoder = RowEncoder::new(&extra, &fields).unwrap();
        let batch = RecordBatch::try_new(
            Arc::new(arrow::datatypes::Schema::new(fields.clone())),
            vec![
                Arc::new(arrow::array::StringArray::from(vec![Some("a"), None])),
                Arc::new(arrow::array::Int64Array::from(vec![Some(-1), Some(7)])),
            ],
        )
        .unwrap();
        let mut rows = Vec::new();
        encoder.encode(&batch, &mut rows).unwrap();
        let decoded: Vec<DynamicMessage> =
            rows.iter().map(|r| DynamicMessage::decode(extra.clone(), r.as_slice()).unwrap()).collect();
        assert_eq!(decoded[0].get_field_by_name("start").unwrap().as_i64(), Some(-1));
        assert!(!decoded[1].has_field_by_name("name"), "null stays unset");
        assert!(!decoded[0].has_field_by_name("tenant"));
    }
}
