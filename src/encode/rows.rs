//! Record batches → one protobuf message per row, in the layout a protobuf descriptor gives: the row format of
//! the Zerobus sink, where Databricks derives the descriptor from the Unity Catalog table (a column's field number
//! is its position + 1, maps are repeated `key`/`value` entries, structs are nested messages).
//!
//! Contract: [`RowEncoder::new`] matches every column of the batch schema, at every nesting level, to a field of
//! the descriptor by name and checks their types, so a table that cannot hold a column is refused before any row
//! is sent (nothing is dropped silently). Fields the batch does not have are left unset (they must not be
//! `required`). Encoding then follows that plan: a null value leaves its field unset; an empty string is written
//! (proto2 presence: empty and null stay distinct, as in the Delta rows). Lengths are minimal varints.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Fields, Int32Type, Int64Type};
use prost_reflect::{Cardinality, FieldDescriptor, Kind, MessageDescriptor};

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

/// How one column is written.
#[derive(Debug, Clone)]
enum Value {
    Str,
    /// A 32- or 64-bit integer column (written as a varint of its sign-extended value: int32 and int64 agree).
    Int32,
    Int64,
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

    /// Append one encoded message per row of `batch` to `out`; returns the bytes appended.
    pub(crate) fn encode(&self, batch: &RecordBatch, out: &mut Vec<Vec<u8>>) -> usize {
        let mut total = 0;
        for row in 0..batch.num_rows() {
            let mut message = Vec::with_capacity(256);
            write_fields(&self.fields, batch.columns(), row, &mut message);
            total += message.len();
            out.push(message);
        }
        total
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
    let mismatch =
        || RowSchemaError::Mismatch { column: name.to_owned(), ours: arrow.to_string(), theirs: describe(proto) };
    let single = !proto.is_list() && !proto.is_map();
    let string = |f: &FieldDescriptor| matches!(f.kind(), Kind::String) && !f.is_list();
    match (arrow, proto.kind()) {
        (DataType::Utf8 | DataType::Utf8View, Kind::String) if single => Ok(Value::Str),
        (DataType::Int32, Kind::Int32 | Kind::Int64) if single => Ok(Value::Int32),
        (DataType::Int64, Kind::Int64) if single => Ok(Value::Int64),
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
        (DataType::Struct(children), Kind::Message(m)) if single => Ok(Value::Struct(plan(&m, children, name)?)),
        (DataType::List(item), Kind::Message(m)) if proto.is_list() => match item.data_type() {
            DataType::Struct(children) => Ok(Value::Repeated(plan(&m, children, name)?)),
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

fn varint_field(out: &mut Vec<u8>, number: u32, v: u64) {
    varint(out, u64::from(number) << 3);
    varint(out, v);
}

/// Write `row` of `columns` as the fields of one message. The plan was checked against the schema, so every
/// downcast below matches the column's type; a column that does not (impossible) is skipped, not panicked on.
fn write_fields(fields: &[Field], columns: &[ArrayRef], row: usize, out: &mut Vec<u8>) {
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
                write_fields(children, s.columns(), row, &mut nested);
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
                    write_fields(children, items.columns(), item, &mut nested);
                    bytes_field(out, field.number, &nested);
                }
            }
        }
    }
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

    #[test]
    fn rows_decode_with_the_descriptor_databricks_derives_from_the_table() {
        let descriptor = v1_descriptor();
        let encoder = RowEncoder::new(&descriptor, Contract::spans_v1().arrow_schema().fields()).unwrap();
        let mut columns = Rows::new(Contract::spans_v1());
        columns.append_request(&one_request()).unwrap();
        let batch = columns.finish().unwrap();
        let mut rows = Vec::new();
        encoder.encode(&batch, &mut rows);
        assert_eq!(rows.len(), 1);
        let row = DynamicMessage::decode(descriptor.clone(), rows[0].as_slice()).unwrap();
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
        encoder.encode(&batch, &mut rows);
        let decoded: Vec<DynamicMessage> =
            rows.iter().map(|r| DynamicMessage::decode(extra.clone(), r.as_slice()).unwrap()).collect();
        assert_eq!(decoded[0].get_field_by_name("start").unwrap().as_i64(), Some(-1));
        assert!(!decoded[1].has_field_by_name("name"), "null stays unset");
        assert!(!decoded[0].has_field_by_name("tenant"));
    }
}
