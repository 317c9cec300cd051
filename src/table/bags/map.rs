//! Attribute bags as `MAP<STRING,STRING>` (the v1 layout, `otel-tables.md`): a string value is stored raw; every
//! other value is JSON — `true`, `42`, `1.5`, arrays and kvlists as JSON arrays/objects (recursively), bytes as a
//! base64 string. An unset value is a NULL map value. Entries keep their order (a repeated key stays repeated).
//! A single value as `STRING` ([`TextColumn`], v1's log body) is rendered the same way.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{ArrayBuilder, ArrayRef, MapArray, StringBuilder, StructArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use base64::Engine as _;

use super::{BagColumn, RepeatedBagColumn, ValueColumn};
use crate::decode::{AnyValue, Attributes, DecodeError};
use crate::table::columns::{schema_mismatch, struct_fields, take_offsets, FinishSized};
use crate::table::repeated::{RepeatedStrings, View};

/// A `MAP<STRING,STRING>` column.
pub(crate) struct MapColumn {
    offsets: Vec<i32>,
    keys: StringBuilder,
    values: StringBuilder,
    /// Reused for rendered values, so appending allocates nothing once it has grown.
    scratch: String,
}

impl BagColumn for MapColumn {
    fn new() -> Self {
        MapColumn { offsets: vec![0], keys: StringBuilder::new(), values: StringBuilder::new(), scratch: String::new() }
    }

    fn append(&mut self, attributes: Attributes<'_>) -> Result<(), DecodeError> {
        for kv in attributes {
            let kv = kv?;
            // Rendered before anything is appended: a failure leaves keys and values the same length.
            let value = render_attribute(&kv.value, &mut self.scratch)?;
            self.keys.append_value(kv.key);
            self.values.append_option(value);
        }
        // Batches are cut far below 2^31 entries (see `policy`), so the offset fits.
        self.offsets.push(ArrayBuilder::len(&self.keys) as i32);
        Ok(())
    }

    fn finish(&mut self, map_type: &DataType) -> Result<ArrayRef, ArrowError> {
        let (keys, values) = (self.keys.finish_sized(), self.values.finish_sized());
        finish_map(map_type, &mut self.offsets, keys, values)
    }
}

/// A `STRING` column of single values rendered as map values are (v1's log body); NULL when unset.
pub(crate) struct TextColumn {
    values: StringBuilder,
    /// Reused for rendered values, as in [`MapColumn`].
    scratch: String,
}

impl ValueColumn for TextColumn {
    fn new() -> Self {
        TextColumn { values: StringBuilder::new(), scratch: String::new() }
    }

    fn append(&mut self, value: &AnyValue<'_>) -> Result<(), DecodeError> {
        let value = render_attribute(value, &mut self.scratch)?;
        self.values.append_option(value);
        Ok(())
    }

    fn finish(&mut self, data_type: &DataType) -> Result<ArrayRef, ArrowError> {
        match data_type {
            DataType::Utf8 => Ok(self.values.finish_sized()),
            _ => Err(schema_mismatch("a text value column")),
        }
    }
}

/// A `MAP<STRING,STRING>` column whose rows repeat a few stored maps (resource and scope attributes).
pub(crate) struct RepeatedMap {
    offsets: Vec<i32>,
    keys: RepeatedStrings,
    values: RepeatedStrings,
}

impl RepeatedBagColumn for RepeatedMap {
    /// The entries' views.
    type Stored = Vec<(View, Option<View>)>;

    fn new() -> Self {
        RepeatedMap { offsets: vec![0], keys: RepeatedStrings::new(), values: RepeatedStrings::new() }
    }

    fn store(&mut self, attributes: Attributes<'_>) -> Result<(Self::Stored, u64), DecodeError> {
        let entries = render_all(attributes)?;
        let mut map = Vec::with_capacity(entries.len());
        for (key, value) in &entries {
            map.push((self.keys.store(key), value.as_deref().map(|v| self.values.store(v))));
        }
        Ok((map, rendered_cost(&entries)))
    }

    fn push(&mut self, map: &Self::Stored) {
        for (key, value) in map {
            self.keys.push(Some(*key));
            self.values.push(*value);
        }
        // Batches are cut far below 2^31 entries (see `policy`), so the offset fits.
        self.offsets.push(self.keys.len() as i32);
    }

    fn finish(&mut self, map_type: &DataType) -> Result<ArrayRef, ArrowError> {
        let (keys, values) = (self.keys.finish()?, self.values.finish()?);
        finish_map(map_type, &mut self.offsets, keys, values)
    }
}

fn finish_map(
    map_type: &DataType,
    offsets: &mut Vec<i32>,
    keys: ArrayRef,
    values: ArrayRef,
) -> Result<ArrayRef, ArrowError> {
    let DataType::Map(entries_field, sorted) = map_type else {
        return Err(schema_mismatch("map"));
    };
    let entries = StructArray::try_new(struct_fields(entries_field.data_type())?.clone(), vec![keys, values], None)?;
    let offsets = OffsetBuffer::new(take_offsets(offsets).into());
    Ok(Arc::new(MapArray::try_new(entries_field.clone(), offsets, entries, None, *sorted)?))
}

/// Attribute values rendered once, to be repeated on many rows (resource and scope attributes).
type Rendered<'a> = Vec<(&'a str, Option<Cow<'a, str>>)>;

fn render_all(attributes: Attributes<'_>) -> Result<Rendered<'_>, DecodeError> {
    let mut out = Vec::new();
    let mut scratch = String::new();
    for kv in attributes {
        let kv = kv?;
        let value = match kv.value {
            AnyValue::String(s) => Some(Cow::Borrowed(s)),
            ref other => render_attribute(other, &mut scratch)?.map(|s| Cow::Owned(s.to_owned())),
        };
        out.push((kv.key, value));
    }
    Ok(out)
}

/// What rendered attributes take on each row of the Parquet file they are repeated on.
fn rendered_cost(entries: &Rendered<'_>) -> u64 {
    entries.iter().map(|(k, v)| (k.len() + v.as_deref().map_or(0, str::len) + 8) as u64).sum()
}

/// Render `value` as the table stores it, into `out` (cleared first). `None`: the value is unset (NULL).
pub(crate) fn render_attribute<'v>(value: &AnyValue<'v>, out: &'v mut String) -> Result<Option<&'v str>, DecodeError> {
    out.clear();
    match value {
        AnyValue::Empty => return Ok(None),
        AnyValue::String(s) => return Ok(Some(s)),
        other => write_json(other, out, 1)?,
    }
    Ok(Some(out.as_str()))
}

/// Write `value` as a JSON value. `depth` is the nesting level of `value`, bounded by the decoder.
pub(crate) fn write_json(value: &AnyValue<'_>, out: &mut String, depth: u32) -> Result<(), DecodeError> {
    match value {
        AnyValue::Empty => out.push_str("null"),
        AnyValue::String(s) => write_json_string(s, out),
        AnyValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        AnyValue::Int(i) => {
            use std::fmt::Write as _;
            let _ = write!(out, "{i}");
        }
        AnyValue::Double(d) => write_double(*d, out),
        AnyValue::Bytes(b) => {
            out.push('"');
            base64::engine::general_purpose::STANDARD.encode_string(b, out);
            out.push('"');
        }
        AnyValue::Array(array) => {
            out.push('[');
            for (i, v) in array.iter(depth)?.enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(&v?, out, depth + 1)?;
            }
            out.push(']');
        }
        AnyValue::KvList(list) => {
            out.push('{');
            for (i, kv) in list.iter(depth)?.enumerate() {
                let kv = kv?;
                if i > 0 {
                    out.push(',');
                }
                write_json_string(kv.key, out);
                out.push(':');
                write_json(&kv.value, out, depth + 1)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// Finite doubles in their shortest round-trip form (`1.0`, `1.5e-7`); JSON has no NaN or infinities, so those
/// are written as the strings proto3 JSON uses.
fn write_double(d: f64, out: &mut String) {
    if d.is_nan() {
        out.push_str("\"NaN\"");
    } else if d.is_infinite() {
        out.push_str(if d > 0.0 { "\"Infinity\"" } else { "\"-Infinity\"" });
    } else if let Some(n) = serde_json::Number::from_f64(d) {
        out.push_str(&n.to_string());
    }
}

/// A JSON string literal, escaped exactly as serde_json escapes (so renderings are byte-comparable).
fn write_json_string(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            use std::fmt::Write as _;
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(value: AnyValue<'_>) -> Option<String> {
        let mut buf = String::new();
        render_attribute(&value, &mut buf).unwrap().map(str::to_owned)
    }

    #[test]
    fn scalars_follow_the_table_rules() {
        assert_eq!(render(AnyValue::String("a\"b")), Some("a\"b".into()));
        assert_eq!(render(AnyValue::Bool(true)), Some("true".into()));
        assert_eq!(render(AnyValue::Int(-42)), Some("-42".into()));
        assert_eq!(render(AnyValue::Double(1.5)), Some("1.5".into()));
        assert_eq!(render(AnyValue::Double(1.0)), Some("1.0".into()));
        assert_eq!(render(AnyValue::Double(f64::NAN)), Some("\"NaN\"".into()));
        assert_eq!(render(AnyValue::Bytes(&[0, 1, 2, 255])), Some("\"AAEC/w==\"".into()));
        assert_eq!(render(AnyValue::Empty), None);
    }

    #[test]
    fn strings_inside_json_are_escaped() {
        let mut out = String::new();
        write_json_string("q\"\\\n\u{1}é", &mut out);
        assert_eq!(out, "\"q\\\"\\\\\\n\\u0001é\"");
        let parsed: String = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, "q\"\\\n\u{1}é");
    }
}
