//! Building blocks of the row builders: Arrow builders that start each batch with the room the last one took,
//! list and map assembly against a schema's fields, and the schema lookups every layout's `finish` uses.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, ListArray, PrimitiveBuilder, StringBuilder, StructArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{ArrowPrimitiveType, DataType, FieldRef, Fields};
use arrow::error::ArrowError;

/// Per-row overhead in the row builders' byte estimates: offsets, fixed-width columns, validity bits.
pub(crate) const ROW_OVERHEAD: u64 = 128;

/// Lowercase hex of an id, in a reused buffer.
pub(crate) fn hex_into<'s>(bytes: &[u8], out: &'s mut String) -> &'s str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.clear();
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

pub(crate) fn finish_list(
    list_type: &DataType,
    offsets: &mut Vec<i32>,
    values: StructArray,
) -> Result<ArrayRef, ArrowError> {
    let item = list_item(list_type)?;
    let offsets = OffsetBuffer::new(take_offsets(offsets).into());
    Ok(Arc::new(ListArray::try_new(item.clone(), offsets, Arc::new(values) as ArrayRef, None)?))
}

/// Builders are cut at a fixed input size (see `policy`), so the next batch is about as large as the last: each
/// builder starts the next one with the room this one took, plus an eighth, instead of regrowing (reallocating
/// and copying) every buffer a dozen times per batch (cost: `docs/design-notes.md#builder-capacity`).
pub(crate) trait FinishSized {
    fn finish_sized(&mut self) -> ArrayRef;
}

impl FinishSized for StringBuilder {
    fn finish_sized(&mut self) -> ArrayRef {
        let array = self.finish();
        *self = StringBuilder::with_capacity(headroom(array.len()), headroom(array.value_data().len()));
        Arc::new(array)
    }
}

impl<T: ArrowPrimitiveType> FinishSized for PrimitiveBuilder<T> {
    fn finish_sized(&mut self) -> ArrayRef {
        let array = self.finish();
        *self = PrimitiveBuilder::with_capacity(headroom(array.len()));
        Arc::new(array)
    }
}

/// The offsets of a list or map column, leaving a vector of the same room (and the leading 0) in their place.
pub(crate) fn take_offsets(offsets: &mut Vec<i32>) -> Vec<i32> {
    let mut next = Vec::with_capacity(headroom(offsets.len()));
    next.push(0);
    std::mem::replace(offsets, next)
}

/// Room for the next batch: what this one took plus an eighth, but never more than `MAX_RESERVED` (a batch
/// that was huge, e.g. a request refused for its size, must not leave its room behind).
pub(crate) fn headroom(n: usize) -> usize {
    (n + n / 8).min(MAX_RESERVED)
}

/// Most room (elements, or bytes of string data) a builder keeps for the next batch.
const MAX_RESERVED: usize = 32 << 20;

pub(crate) fn field_type<'f>(fields: &'f Fields, name: &str) -> Result<&'f DataType, ArrowError> {
    fields.find(name).map(|(_, f)| f.data_type()).ok_or_else(|| schema_mismatch(name))
}

pub(crate) fn list_item(data_type: &DataType) -> Result<&FieldRef, ArrowError> {
    match data_type {
        DataType::List(item) => Ok(item),
        _ => Err(schema_mismatch("list")),
    }
}

pub(crate) fn struct_fields(data_type: &DataType) -> Result<&Fields, ArrowError> {
    match data_type {
        DataType::Struct(fields) => Ok(fields),
        _ => Err(schema_mismatch("struct")),
    }
}

pub(crate) fn schema_mismatch(what: &str) -> ArrowError {
    ArrowError::SchemaError(format!("table schema has no {what} where the column builder expects one"))
}
