//! Columns whose values repeat over many rows: a request's resource and scope values (strings, and in v2 the
//! VARIANT bytes of their attributes), the same on every span under them.
//!
//! A value is stored once (its bytes copied into a shared block) and every row holds a 16-byte Arrow view of it,
//! so a 1 MiB resource attribute over 2,000 spans takes 1 MiB and 32 KiB in the builder instead of 2 GiB, and a
//! span costs no copy of its resource. The columns are Arrow `Utf8View` / `BinaryView`; Parquet stores them as the
//! same `STRING` / `BINARY` as the table's other columns (the file still repeats the value on each row: the
//! in-flight budget counts that).

use std::marker::PhantomData;
use std::sync::Arc;

use arrow::array::{make_view, ArrayRef, GenericByteViewArray, NullBufferBuilder};
use arrow::buffer::{Buffer, ScalarBuffer};
use arrow::datatypes::{BinaryViewType, ByteViewType, StringViewType};
use arrow::datatypes::{DataType, Field, Fields};
use arrow::error::ArrowError;

/// A stored value: what each row that repeats it holds. Valid until the column's next
/// [`finish`](RepeatedStrings::finish).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct View {
    view: u128,
    /// The column's `finish` count when it was stored: a view from before a `finish` points at blocks that are
    /// gone.
    generation: u64,
}

/// Values up to this long live inside their view (Arrow's inline limit) and take no block space.
const INLINE: usize = 12;

/// A block is closed once it holds this much, so blocks stay a size the allocator reuses (and offsets fit 32 bits).
const BLOCK: usize = 4 << 20;

/// A `Utf8View` (or `BinaryView`: VARIANT bytes) column under construction.
pub(crate) struct RepeatedBytes<T: ByteViewType> {
    views: Vec<u128>,
    nulls: NullBufferBuilder,
    blocks: Vec<Buffer>,
    /// The block values are copied into; its index is `blocks.len()` until it is closed.
    open: Vec<u8>,
    generation: u64,
    /// Why the rows cannot make a valid array (a misuse, not an input error): reported by `finish`.
    invalid: Option<&'static str>,
    kind: PhantomData<T>,
}

/// Resource and scope strings.
pub(crate) type RepeatedStrings = RepeatedBytes<StringViewType>;

/// Resource and scope VARIANT bytes (`metadata`, `value`).
pub(crate) type RepeatedBinary = RepeatedBytes<BinaryViewType>;

impl<T: ByteViewType> RepeatedBytes<T> {
    pub(crate) fn new() -> Self {
        RepeatedBytes {
            views: Vec::new(),
            nulls: NullBufferBuilder::new(0),
            blocks: Vec::new(),
            open: Vec::new(),
            generation: 0,
            invalid: None,
            kind: PhantomData,
        }
    }

    /// Store `value` once; push the returned view on each row that holds it.
    pub(crate) fn store(&mut self, value: &T::Native) -> View {
        let bytes: &[u8] = value.as_ref();
        let generation = self.generation;
        if bytes.len() <= INLINE {
            return View { view: make_view(bytes, 0, 0), generation };
        }
        if u32::try_from(bytes.len()).is_err() {
            // Request bodies are bounded far below 4 GiB; a view could not hold the length.
            self.invalid = Some("a value longer than 4 GiB");
            return View { view: make_view(b"", 0, 0), generation };
        }
        if !self.open.is_empty() && self.open.len() + bytes.len() > BLOCK {
            self.close();
        }
        // The open block only grows past `BLOCK` by a lone value, so the offset fits 32 bits.
        let offset = self.open.len() as u32;
        self.open.extend_from_slice(bytes);
        View { view: make_view(bytes, self.blocks.len() as u32, offset), generation }
    }

    /// One row: a stored value, or NULL.
    pub(crate) fn push(&mut self, view: Option<View>) {
        match view {
            Some(View { view, generation }) if generation == self.generation => {
                self.views.push(view);
                self.nulls.append_non_null();
            }
            Some(_) => {
                self.invalid = Some("a value stored before the last finish");
                self.views.push(0);
                self.nulls.append_null();
            }
            None => {
                self.views.push(0);
                self.nulls.append_null();
            }
        }
    }

    /// Rows pushed since the last [`finish`](Self::finish).
    pub(crate) fn len(&self) -> usize {
        self.views.len()
    }

    fn close(&mut self) {
        let block = std::mem::take(&mut self.open);
        self.blocks.push(Buffer::from_vec(block));
    }

    /// The rows so far as an array; the column starts empty again and the views stored before are no longer valid.
    pub(crate) fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        if !self.open.is_empty() {
            self.close();
        }
        let views = ScalarBuffer::from(std::mem::take(&mut self.views));
        let blocks = std::mem::take(&mut self.blocks);
        let nulls = self.nulls.finish();
        self.generation += 1;
        if let Some(what) = self.invalid.take() {
            return Err(ArrowError::InvalidArgumentError(format!("repeated value column holds {what}")));
        }
        // SAFETY: every view was made by `make_view` over a `T::Native` (for strings: valid UTF-8) in this
        // generation: inline, or pointing at the bytes `store` copied at that offset of the block with that index
        // (blocks are only appended, in order, and all of them are here). Views of other generations or lengths
        // were refused above. `try_new` would check the same by re-reading every row's value, which costs as much
        // as copying them.
        let array = unsafe { GenericByteViewArray::<T>::new_unchecked(views, blocks, nulls) };
        Ok(Arc::new(array))
    }
}

/// `data_type` with every string inside it (struct fields, map keys and values) as a `Utf8View`: the Arrow type of
/// a column built from [`RepeatedStrings`].
pub(crate) fn as_views(data_type: &DataType) -> DataType {
    let field = |f: &Field| Arc::new(f.clone().with_data_type(as_views(f.data_type())));
    match data_type {
        DataType::Utf8 => DataType::Utf8View,
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(|f| field(f)).collect::<Fields>()),
        DataType::Map(entries, sorted) => DataType::Map(field(entries), *sorted),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};

    use super::*;

    #[test]
    fn each_row_reads_its_value_and_long_values_are_stored_once() {
        let mut column = RepeatedStrings::new();
        let long = "a resource attribute longer than a view".repeat(1000);
        let (short, stored) = (column.store("checkout"), column.store(&long));
        for _ in 0..1000 {
            column.push(Some(stored));
            column.push(Some(short));
            column.push(None);
        }
        let array = column.finish().unwrap();
        let strings = array.as_string_view();
        assert_eq!(strings.len(), 3000);
        assert_eq!((strings.value(0), strings.value(1)), (long.as_str(), "checkout"));
        assert_eq!((strings.value(2997), strings.value(2998)), (long.as_str(), "checkout"));
        assert!(strings.is_null(2999) && strings.is_valid(2998));
        assert_eq!(strings.data_buffers().iter().map(|b| b.len()).sum::<usize>(), long.len());
    }

    #[test]
    fn blocks_close_when_full_and_views_keep_pointing_at_theirs() {
        let mut column = RepeatedStrings::new();
        let values: Vec<String> = (0..10).map(|i| format!("{i}").repeat(BLOCK / 3)).collect();
        let views: Vec<View> = values.iter().map(|v| column.store(v)).collect();
        views.iter().for_each(|v| column.push(Some(*v)));
        let array = column.finish().unwrap();
        let strings = array.as_string_view();
        assert!(strings.data_buffers().len() > 1);
        for (i, v) in values.iter().enumerate() {
            assert_eq!(strings.value(i), v);
        }
        assert_eq!(column.finish().unwrap().len(), 0, "finish starts the column empty");
    }

    #[test]
    fn a_view_from_before_finish_is_refused_not_read() {
        let mut column = RepeatedStrings::new();
        let old = column.store("a value longer than twelve bytes");
        column.push(Some(old));
        column.finish().unwrap();
        column.push(Some(old));
        assert!(column.finish().is_err());
        let fresh = column.store("a value longer than twelve bytes");
        column.push(Some(fresh));
        assert_eq!(column.finish().unwrap().len(), 1, "the column is usable again");
    }
}
