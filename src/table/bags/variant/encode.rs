//! A direct encoder of attribute bags as VARIANT bytes (Parquet `VariantEncoding.md`), written straight into the
//! caller's buffers: what the `parquet-variant` builders produced, without their per-row maps, hashing and
//! allocations (the v2 layout's cost on small spans).
//!
//! Contract of [`Encoder::append_bag`]:
//! - One bag becomes one VARIANT: its metadata appended to one buffer, its value to another. The value is an object
//!   of the bag's keys; values keep their OTLP type (string, boolean, int64, double, binary, array, object; an
//!   unset value is a variant null); a key repeated in one object keeps its last value.
//! - Metadata: one dictionary per bag, every key used anywhere in it once, sorted by bytes (sorted flag set; an
//!   empty dictionary is left unflagged, as the arrow-rs writer does for interop). Objects list their fields by key
//!   name, values in the order met.
//! - Valid for `parquet::variant::Variant::try_new` and logically equal to what the arrow-rs builders make of the
//!   same bag (the unit tests hold it to that).
//! - Bounded: nesting is bounded by the decoder ([`crate::decode::MAX_VALUE_DEPTH`]); a size past the format's
//!   32-bit offsets or counts is [`DecodeError::Variant`], never a panic. On any error the buffers are cut back to
//!   where they were.
//! - No allocation per bag once the scratch vectors have grown to the bags' size.
//!
//! [`Encoder::append_value`] encodes one value as a whole VARIANT (a log record's body) under the same contract:
//! a kvlist is an object as a bag is, any other value as it is inside a bag, its dictionary the keys under it.

use crate::decode::{AnyValue, Attributes, DecodeError, KeyValueView};

// Basic types (the value header's low two bits).
const PRIMITIVE: u8 = 0;
const SHORT_STRING: u8 = 1;
const OBJECT: u8 = 2;
const ARRAY: u8 = 3;

// Primitive type ids.
const NULL: u8 = 0;
const TRUE: u8 = 1;
const FALSE: u8 = 2;
const INT64: u8 = 6;
const DOUBLE: u8 = 7;
const BINARY: u8 = 15;
const STRING: u8 = 16;

/// Longest string stored with its length in the header byte.
const MAX_SHORT_STRING: usize = 63;

/// Metadata header: version 1.
const VERSION: u8 = 1;
const SORTED_STRINGS: u8 = 1 << 4;

/// One key met while encoding a bag, as a range of [`Encoder::key_bytes`].
struct Key {
    start: usize,
    end: usize,
    /// False once the field it names was dropped for a later one with the same key (and for every key under
    /// that field's value): such keys stay out of the dictionary.
    live: bool,
}

/// One field of an object being written.
#[derive(Clone, Copy)]
struct Field {
    /// Index of its key in [`Encoder::keys`]; also its provisional field id (see [`Encoder::object`]).
    key: usize,
    /// Its value's bytes, relative to the start of the object's values.
    start: usize,
    end: usize,
    /// `Encoder::keys.len()` after its value: the keys from `key` to here are this field's and its value's.
    keys_end: usize,
}

/// Why a bag is encoded again.
enum Retry {
    Failed(DecodeError),
    /// A nested object wrote its field ids narrower than the dictionary needs: encode the bag again with ids of at
    /// least this many bytes.
    WidenIds(usize),
}

impl From<DecodeError> for Retry {
    fn from(e: DecodeError) -> Self {
        Retry::Failed(e)
    }
}

/// Encodes bags one at a time; holds only scratch space, reused from bag to bag.
pub(crate) struct Encoder {
    /// Every key met in the bag, in the order met (a key repeated in the bag is here once per field).
    keys: Vec<Key>,
    key_bytes: Vec<u8>,
    /// The fields of the objects being written, innermost last.
    fields: Vec<Field>,
    /// The item offsets of the arrays being written, innermost last.
    items: Vec<usize>,
    /// The dictionary: the first key of each distinct name, sorted by name.
    dictionary: Vec<usize>,
    /// The field id of each key: its name's index in `dictionary`.
    ids: Vec<usize>,
    /// Room to compact an object's values after dropping a repeated key's field.
    moved: Vec<u8>,
    /// Whether the bag holds an object below the top one (whose ids then need rewriting, see [`Self::object`]).
    nested_objects: bool,
    /// Narrowest field ids a nested object may use (1 unless a first attempt found them too narrow).
    min_id_width: usize,
}

impl Encoder {
    pub(crate) fn new() -> Self {
        Encoder {
            keys: Vec::new(),
            key_bytes: Vec::new(),
            fields: Vec::new(),
            items: Vec::new(),
            dictionary: Vec::new(),
            ids: Vec::new(),
            moved: Vec::new(),
            nested_objects: false,
            min_id_width: 1,
        }
    }

    /// Append `attributes` as one VARIANT object: its metadata to `metadata`, its value to `value`. On error both
    /// are as they were.
    pub(crate) fn append_bag(
        &mut self,
        attributes: Attributes<'_>,
        metadata: &mut Vec<u8>,
        value: &mut Vec<u8>,
    ) -> Result<(), DecodeError> {
        self.encode_with(metadata, value, |this, metadata, value, start| {
            this.try_bag(attributes, metadata, value, start)
        })
    }

    /// Append one value as one VARIANT (see the module's contract): its metadata to `metadata`, the value to
    /// `value`. On error both are as they were.
    pub(crate) fn append_value(
        &mut self,
        v: &AnyValue<'_>,
        metadata: &mut Vec<u8>,
        value: &mut Vec<u8>,
    ) -> Result<(), DecodeError> {
        self.encode_with(metadata, value, |this, metadata, value, start| this.try_value(v, metadata, value, start))
    }

    /// Run one encoding attempt (`attempt(self, metadata, value, value_start)`), again with wider ids if it asks,
    /// and cut the buffers back on error.
    #[inline]
    fn encode_with(
        &mut self,
        metadata: &mut Vec<u8>,
        value: &mut Vec<u8>,
        mut attempt: impl FnMut(&mut Self, &mut Vec<u8>, &mut Vec<u8>, usize) -> Result<(), Retry>,
    ) -> Result<(), DecodeError> {
        let (metadata_start, value_start) = (metadata.len(), value.len());
        self.min_id_width = 1;
        // A second attempt knows the dictionary's size, so its ids are wide enough: a third is never needed.
        let mut result = Err(Retry::Failed(DecodeError::Variant));
        for _ in 0..2 {
            result = attempt(self, metadata, value, value_start);
            match result {
                Err(Retry::WidenIds(width)) => {
                    value.truncate(value_start);
                    self.min_id_width = width;
                }
                _ => break,
            }
        }
        let result = match result {
            Ok(()) => Ok(()),
            Err(Retry::Failed(e)) => Err(e),
            Err(Retry::WidenIds(_)) => Err(DecodeError::Variant),
        };
        if result.is_err() {
            metadata.truncate(metadata_start);
            value.truncate(value_start);
        }
        result
    }

    fn try_bag(
        &mut self,
        attributes: Attributes<'_>,
        metadata: &mut Vec<u8>,
        value: &mut Vec<u8>,
        value_start: usize,
    ) -> Result<(), Retry> {
        self.reset();
        self.object(attributes, 0, value, true)?;
        if self.nested_objects {
            self.rewrite_nested_ids(value, value_start)?;
        }
        self.write_metadata(metadata)?;
        Ok(())
    }

    /// One value as a whole VARIANT, at nesting level 1 (as a value in a bag, so the decoder's depth bound holds).
    fn try_value(
        &mut self,
        v: &AnyValue<'_>,
        metadata: &mut Vec<u8>,
        value: &mut Vec<u8>,
        value_start: usize,
    ) -> Result<(), Retry> {
        self.reset();
        match v {
            // The top object: written last, with the final ids (see `object`).
            AnyValue::KvList(kvs) => {
                self.object(kvs.iter(1)?, 1, value, true)?;
                if self.nested_objects {
                    self.rewrite_nested_ids(value, value_start)?;
                }
            }
            other => {
                self.value(other, 1, value)?;
                // No top object: the dictionary is every key under the value (none for a scalar), and the objects
                // in an array get their final ids here.
                self.build_dictionary(self.fields.len());
                if self.nested_objects {
                    self.rewrite_ids(value, value_start)?;
                }
            }
        }
        self.write_metadata(metadata)?;
        Ok(())
    }

    /// Empty the scratch space of the last bag or value.
    fn reset(&mut self) {
        self.keys.clear();
        self.key_bytes.clear();
        self.fields.clear();
        self.items.clear();
        self.nested_objects = false;
    }

    /// Write one value. `depth` is its nesting level, bounded by the decoder.
    fn value(&mut self, v: &AnyValue<'_>, depth: u32, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        match *v {
            AnyValue::Empty => out.push(primitive(NULL)),
            AnyValue::Bool(b) => out.push(primitive(if b { TRUE } else { FALSE })),
            AnyValue::Int(i) => {
                out.push(primitive(INT64));
                out.extend_from_slice(&i.to_le_bytes());
            }
            AnyValue::Double(d) => {
                out.push(primitive(DOUBLE));
                out.extend_from_slice(&d.to_le_bytes());
            }
            AnyValue::String(s) if s.len() <= MAX_SHORT_STRING => {
                out.push((s.len() as u8) << 2 | SHORT_STRING);
                out.extend_from_slice(s.as_bytes());
            }
            AnyValue::String(s) => long(out, STRING, s.as_bytes())?,
            AnyValue::Bytes(b) => long(out, BINARY, b)?,
            AnyValue::Array(array) => {
                let start = out.len();
                let mark = self.items.len();
                for item in array.iter(depth)? {
                    let item = item?;
                    self.items.push(out.len() - start);
                    self.value(&item, depth + 1, out)?;
                }
                self.finish_array(out, start, mark)?;
            }
            AnyValue::KvList(kvs) => {
                self.nested_objects = true;
                self.object(kvs.iter(depth)?, depth, out, false).map_err(|e| match e {
                    Retry::Failed(e) => e,
                    // Only the top object asks for a retry, after every nested one is written.
                    Retry::WidenIds(_) => DecodeError::Variant,
                })?;
            }
        }
        Ok(())
    }

    /// Write an object of `entries`; `depth` is its own nesting level (its values are one deeper).
    ///
    /// Values are written first, as they come; the header (field ids and offsets, sorted by key name) is then put
    /// in front of them. Field ids index the bag's dictionary, which is complete only once the whole bag is read:
    /// so the top object, written last, gets the final ids, and a nested object gets provisional ones (its keys'
    /// indexes in `keys`), which [`Self::rewrite_nested_ids`] maps to the final ones.
    fn object<'a>(
        &mut self,
        entries: impl IntoIterator<Item = Result<KeyValueView<'a>, DecodeError>>,
        depth: u32,
        out: &mut Vec<u8>,
        top: bool,
    ) -> Result<(), Retry> {
        let start = out.len();
        let mark = self.fields.len();
        for kv in entries {
            let kv = kv?;
            let key = self.keys.len();
            let key_start = self.key_bytes.len();
            self.key_bytes.extend_from_slice(kv.key.as_bytes());
            self.keys.push(Key { start: key_start, end: self.key_bytes.len(), live: true });
            let value_start = out.len() - start;
            self.value(&kv.value, depth + 1, out)?;
            self.fields.push(Field { key, start: value_start, end: out.len() - start, keys_end: self.keys.len() });
        }
        self.sort_and_dedup_fields(mark, out, start);
        let fields = self.fields.len() - mark;
        let id_width = if top {
            self.build_dictionary(mark);
            width(self.dictionary.len().saturating_sub(1))
        } else {
            let widest = self.fields[mark..].iter().map(|f| f.key).max().unwrap_or(0);
            width(widest).max(self.min_id_width)
        };
        let size = out.len() - start;
        if u32::try_from(size).is_err() || u32::try_from(self.keys.len()).is_err() {
            return Err(Retry::Failed(DecodeError::Variant));
        }
        let offset_width = width(size);
        let count_width = if fields > 255 { 4 } else { 1 };
        let header = ((count_width == 4) as u8) << 4 | ((id_width - 1) as u8) << 2 | (offset_width - 1) as u8;
        let len = 1 + count_width + fields * id_width + (fields + 1) * offset_width;
        let mut put = Put { buf: insert(out, start, len), at: 0 };
        put.byte(header << 2 | OBJECT);
        put.le(fields, count_width);
        for f in &self.fields[mark..] {
            put.le(if top { self.ids[f.key] } else { f.key }, id_width);
        }
        for f in &self.fields[mark..] {
            put.le(f.start, offset_width);
        }
        put.le(size, offset_width);
        self.fields.truncate(mark);
        Ok(())
    }

    /// Sort the fields from `mark` by key name and keep the last of each name (OTLP says keys do not repeat; a
    /// VARIANT object must not repeat them). Dropped values are cut out of `out`, whose object values start at
    /// `start`, and their keys out of the dictionary.
    fn sort_and_dedup_fields(&mut self, mark: usize, out: &mut Vec<u8>, start: usize) {
        let (keys, bytes) = (&self.keys, &self.key_bytes);
        let name = |f: &Field| &bytes[keys[f.key].start..keys[f.key].end];
        // Ties (a repeated key) in the order met, so the last of a run is the value that wins.
        self.fields[mark..].sort_unstable_by(|a, b| name(a).cmp(name(b)).then(a.key.cmp(&b.key)));
        let mut kept = mark;
        for i in mark..self.fields.len() {
            let field = self.fields[i];
            let repeated = self.fields.get(i + 1).is_some_and(|next| self.name(next.key) == self.name(field.key));
            if repeated {
                // Its key and the keys under its value leave the dictionary (unless used elsewhere too).
                for key in &mut self.keys[field.key..field.keys_end] {
                    key.live = false;
                }
                continue;
            }
            self.fields[kept] = field;
            kept += 1;
        }
        if kept == self.fields.len() {
            return;
        }
        // A repeated key (rare): the kept values are packed together.
        self.moved.clear();
        for f in &mut self.fields[mark..kept] {
            let (value_start, value_end) = (f.start, f.end);
            f.start = self.moved.len();
            self.moved.extend_from_slice(&out[start + value_start..start + value_end]);
            f.end = self.moved.len();
        }
        out.truncate(start);
        out.extend_from_slice(&self.moved);
        self.fields.truncate(kept);
    }

    fn name(&self, key: usize) -> &[u8] {
        let key = &self.keys[key];
        &self.key_bytes[key.start..key.end]
    }

    /// The dictionary of the bag whose top object's fields start at `mark`, and each key's id in it.
    fn build_dictionary(&mut self, mark: usize) {
        self.dictionary.clear();
        self.ids.clear();
        self.ids.resize(self.keys.len(), 0);
        if !self.nested_objects {
            // Every live key names a field of the top object, already sorted and unique.
            for (id, f) in self.fields[mark..].iter().enumerate() {
                self.dictionary.push(f.key);
                self.ids[f.key] = id;
            }
            return;
        }
        let mut sorted = std::mem::take(&mut self.dictionary);
        sorted.extend((0..self.keys.len()).filter(|&k| self.keys[k].live));
        sorted.sort_unstable_by(|&a, &b| self.name(a).cmp(self.name(b)));
        // `sorted` becomes the dictionary in place: each distinct name once.
        let mut distinct = 0;
        for i in 0..sorted.len() {
            let key = sorted[i];
            if distinct == 0 || self.name(sorted[distinct - 1]) != self.name(key) {
                sorted[distinct] = key;
                distinct += 1;
            }
            self.ids[key] = distinct - 1;
        }
        sorted.truncate(distinct);
        self.dictionary = sorted;
    }

    /// Map the provisional field ids of the objects under the top object (at `at` in `out`) to dictionary ids.
    fn rewrite_nested_ids(&self, out: &mut [u8], at: usize) -> Result<(), Retry> {
        let top = Container::read(out, at);
        for i in 0..top.count {
            let child = top.value_at(out, i);
            self.rewrite_ids(out, child)?;
        }
        Ok(())
    }

    fn rewrite_ids(&self, out: &mut [u8], at: usize) -> Result<(), Retry> {
        let basic_type = out[at] & 3;
        if basic_type != OBJECT && basic_type != ARRAY {
            return Ok(());
        }
        let container = Container::read(out, at);
        if basic_type == OBJECT {
            for i in 0..container.count {
                let slot = container.ids + i * container.id_width;
                let id = self.ids[get_le(out, slot, container.id_width)];
                if width(id) > container.id_width {
                    return Err(Retry::WidenIds(width(self.dictionary.len().saturating_sub(1))));
                }
                Put { buf: &mut out[slot..], at: 0 }.le(id, container.id_width);
            }
        }
        for i in 0..container.count {
            let child = container.value_at(out, i);
            self.rewrite_ids(out, child)?;
        }
        Ok(())
    }

    fn write_metadata(&self, metadata: &mut Vec<u8>) -> Result<(), DecodeError> {
        let count = self.dictionary.len();
        let size: usize = self.dictionary.iter().map(|&k| self.name(k).len()).sum();
        if u32::try_from(count).is_err() || u32::try_from(size).is_err() {
            return Err(DecodeError::Variant);
        }
        let offset_width = width(count.max(size));
        let sorted = if count > 0 { SORTED_STRINGS } else { 0 };
        metadata.push(VERSION | sorted | ((offset_width - 1) as u8) << 6);
        push_le(metadata, count, offset_width);
        push_le(metadata, 0, offset_width);
        let mut end = 0;
        for &k in &self.dictionary {
            end += self.name(k).len();
            push_le(metadata, end, offset_width);
        }
        for &k in &self.dictionary {
            metadata.extend_from_slice(self.name(k));
        }
        Ok(())
    }

    /// Put the header of the array whose item values start at `start` (item offsets from `mark` in `items`) in
    /// front of them.
    fn finish_array(&mut self, out: &mut Vec<u8>, start: usize, mark: usize) -> Result<(), DecodeError> {
        let items = self.items.len() - mark;
        let size = out.len() - start;
        if u32::try_from(size).is_err() || u32::try_from(items).is_err() {
            return Err(DecodeError::Variant);
        }
        let offset_width = width(size);
        let count_width = if items > 255 { 4 } else { 1 };
        let header = ((count_width == 4) as u8) << 2 | (offset_width - 1) as u8;
        let mut put = Put { buf: insert(out, start, 1 + count_width + (items + 1) * offset_width), at: 0 };
        put.byte(header << 2 | ARRAY);
        put.le(items, count_width);
        for &offset in &self.items[mark..] {
            put.le(offset, offset_width);
        }
        put.le(size, offset_width);
        self.items.truncate(mark);
        Ok(())
    }
}

/// Where the parts of an object or array this encoder wrote are.
struct Container {
    count: usize,
    /// Field ids (objects only).
    ids: usize,
    id_width: usize,
    offsets: usize,
    offset_width: usize,
    values: usize,
}

impl Container {
    fn read(out: &[u8], at: usize) -> Container {
        let header = out[at] >> 2;
        let (large, id_width) = match out[at] & 3 {
            OBJECT => (header >> 4 & 1 == 1, (header >> 2 & 3) as usize + 1),
            _ => (header >> 2 & 1 == 1, 0),
        };
        let count_width = if large { 4 } else { 1 };
        let count = get_le(out, at + 1, count_width);
        let ids = at + 1 + count_width;
        let offsets = ids + count * id_width;
        let offset_width = (header & 3) as usize + 1;
        let values = offsets + (count + 1) * offset_width;
        Container { count, ids, id_width, offsets, offset_width, values }
    }

    fn value_at(&self, out: &[u8], i: usize) -> usize {
        self.values + get_le(out, self.offsets + i * self.offset_width, self.offset_width)
    }
}

fn primitive(id: u8) -> u8 {
    id << 2 | PRIMITIVE
}

/// A string or binary too long for a short string: type, 4-byte length, bytes.
fn long(out: &mut Vec<u8>, id: u8, bytes: &[u8]) -> Result<(), DecodeError> {
    let len = u32::try_from(bytes.len()).map_err(|_| DecodeError::Variant)?;
    out.push(primitive(id));
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Bytes needed for unsigned values up to `max` (callers keep it within 32 bits).
fn width(max: usize) -> usize {
    match max {
        0..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xff_ffff => 3,
        _ => 4,
    }
}

/// Open `len` bytes at `at` in `out`, moving what follows; returns them. A container's header goes in front of
/// values already written: its size depends on theirs.
fn insert(out: &mut Vec<u8>, at: usize, len: usize) -> &mut [u8] {
    let end = out.len();
    out.resize(end + len, 0);
    out.copy_within(at..end, at + len);
    &mut out[at..at + len]
}

/// Writes little-endian values into a header opened by [`insert`].
struct Put<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl Put<'_> {
    fn byte(&mut self, b: u8) {
        self.buf[self.at] = b;
        self.at += 1;
    }

    fn le(&mut self, v: usize, width: usize) {
        self.buf[self.at..self.at + width].copy_from_slice(&(v as u64).to_le_bytes()[..width]);
        self.at += width;
    }
}

fn push_le(out: &mut Vec<u8>, v: usize, width: usize) {
    out.extend_from_slice(&(v as u64).to_le_bytes()[..width]);
}

fn get_le(buf: &[u8], at: usize, width: usize) -> usize {
    let mut bytes = [0; 8];
    bytes[..width].copy_from_slice(&buf[at..at + width]);
    u64::from_le_bytes(bytes) as usize
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    use opentelemetry_proto::tonic::common::v1::{AnyValue as Pb, ArrayValue, KeyValue, KeyValueList};
    use parquet::variant::{Variant, VariantBuilder};
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;
    use crate::table::bags::variant::oracle::{append_attributes, append_value};
    use crate::table::bags::variant::tests::{one_span, span_attributes};

    /// Our encoding of a span's `attributes`: (metadata, value).
    fn ours(attributes: &[KeyValue]) -> Result<(Vec<u8>, Vec<u8>), DecodeError> {
        let body = one_span(attributes.to_vec());
        let (mut metadata, mut value) = (vec![0xee], vec![0xdd]);
        let result = Encoder::new().append_bag(span_attributes(&body), &mut metadata, &mut value);
        if let Err(e) = result {
            assert_eq!((metadata, value), (vec![0xee], vec![0xdd]), "a failed bag leaves the buffers as they were");
            return Err(e);
        }
        Ok((metadata[1..].to_vec(), value[1..].to_vec()))
    }

    /// The arrow-rs builders' encoding of the same.
    fn theirs(attributes: &[KeyValue]) -> Result<(Vec<u8>, Vec<u8>), DecodeError> {
        let body = one_span(attributes.to_vec());
        let mut builder = VariantBuilder::new();
        append_attributes(&mut builder, span_attributes(&body))?;
        Ok(builder.finish())
    }

    /// Logical equality, with doubles compared by their bits (NaN is a value here) and each value's physical type
    /// kept (a short string is not a long string).
    fn same(a: &Variant<'_, '_>, b: &Variant<'_, '_>) -> bool {
        match (a, b) {
            (Variant::Object(x), Variant::Object(y)) => {
                x.len() == y.len() && x.iter().zip(y.iter()).all(|((ka, va), (kb, vb))| ka == kb && same(&va, &vb))
            }
            (Variant::List(x), Variant::List(y)) => {
                x.len() == y.len() && x.iter().zip(y.iter()).all(|(va, vb)| same(&va, &vb))
            }
            (Variant::Double(x), Variant::Double(y)) => x.to_bits() == y.to_bits(),
            _ => a == b,
        }
    }

    /// Every key under `v`.
    fn keys_of<'m>(v: &Variant<'m, '_>, out: &mut Vec<&'m str>) {
        match v {
            Variant::Object(o) => {
                for (k, v) in o.iter() {
                    out.push(k);
                    keys_of(&v, out);
                }
            }
            Variant::List(l) => l.iter().for_each(|v| keys_of(&v, out)),
            _ => {}
        }
    }

    /// Ours and theirs agree: the same error, or values logically equal, ours valid by a full validation, with a
    /// sorted dictionary of exactly the keys used.
    fn agree(attributes: &[KeyValue]) -> Result<(), TestCaseError> {
        let (ours, theirs) = (ours(attributes), theirs(attributes));
        let ((metadata, value), (their_metadata, their_value)) = match (ours, theirs) {
            (Ok(ours), Ok(theirs)) => (ours, theirs),
            (ours, theirs) => {
                prop_assert_eq!(ours.err(), theirs.err());
                return Ok(());
            }
        };
        let row = Variant::try_new(&metadata, &value);
        prop_assert!(row.is_ok(), "ours is refused: {:?}", row.err());
        let row = row.unwrap();
        let expected = Variant::new(&their_metadata, &their_value);
        prop_assert!(same(&row, &expected), "ours {:?}\ntheirs {:?}", row, expected);
        let mut used = Vec::new();
        keys_of(&row, &mut used);
        used.sort_unstable();
        used.dedup();
        let dictionary: Vec<&str> = row.metadata().iter().collect();
        prop_assert_eq!(dictionary, used);
        prop_assert_eq!(row.metadata().is_sorted(), !row.metadata().is_empty());
        Ok(())
    }

    /// Ours and theirs agree on one value encoded as a whole VARIANT (a log body), as [`agree`] on bags.
    fn agree_value(v: Option<V>) -> Result<(), TestCaseError> {
        let body = one_span(vec![kv("k", v)]);
        let decoded = span_attributes(&body).into_iter().next().unwrap().unwrap().value;
        let (mut metadata, mut value) = (vec![0xee], vec![0xdd]);
        let ours = Encoder::new().append_value(&decoded, &mut metadata, &mut value);
        let mut builder = VariantBuilder::new();
        let theirs = append_value(&mut builder, &decoded, 1);
        match (ours, theirs) {
            (Ok(()), Ok(())) => {}
            (ours, theirs) => {
                prop_assert_eq!(ours, theirs);
                prop_assert_eq!((metadata, value), (vec![0xee], vec![0xdd]));
                return Ok(());
            }
        }
        let (their_metadata, their_value) = builder.finish();
        let row = Variant::try_new(&metadata[1..], &value[1..]);
        prop_assert!(row.is_ok(), "ours is refused: {:?}", row.err());
        let row = row.unwrap();
        let expected = Variant::new(&their_metadata, &their_value);
        prop_assert!(same(&row, &expected), "ours {:?}\ntheirs {:?}", row, expected);
        let mut used = Vec::new();
        keys_of(&row, &mut used);
        used.sort_unstable();
        used.dedup();
        prop_assert_eq!(row.metadata().iter().collect::<Vec<&str>>(), used);
        Ok(())
    }

    fn kv(key: impl Into<String>, value: Option<V>) -> KeyValue {
        KeyValue { key: key.into(), value: Some(Pb { value }), ..Default::default() }
    }

    fn key() -> impl Strategy<Value = String> {
        // Few short keys (repeats), any unicode, and a few long ones (wider dictionary offsets).
        prop_oneof![4 => "[a-c]{1,2}", 4 => "\\PC{0,12}", 1 => "[a-z]{250,300}"]
    }

    fn value() -> impl Strategy<Value = Option<V>> {
        let leaf = prop_oneof![
            Just(None),
            "\\PC{0,70}".prop_map(|s| Some(V::StringValue(s))),
            "[a-z]{62,65}".prop_map(|s| Some(V::StringValue(s))),
            "[a-z]{250,300}".prop_map(|s| Some(V::StringValue(s))),
            any::<bool>().prop_map(|b| Some(V::BoolValue(b))),
            any::<i64>().prop_map(|i| Some(V::IntValue(i))),
            any::<f64>().prop_map(|d| Some(V::DoubleValue(d))),
            vec(any::<u8>(), 0..300).prop_map(|b| Some(V::BytesValue(b))),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(|values| Some(V::ArrayValue(ArrayValue {
                    values: values.into_iter().map(|value| Pb { value }).collect(),
                }))),
                vec((key(), inner), 0..6).prop_map(|kvs| Some(V::KvlistValue(KeyValueList {
                    values: kvs.into_iter().map(|(k, v)| kv(k, v)).collect(),
                }))),
            ]
        })
    }

    fn bag() -> impl Strategy<Value = Vec<KeyValue>> {
        let entry = || (key(), value()).prop_map(|(k, v)| kv(k, v));
        prop_oneof![
            8 => vec(entry(), 0..10),
            // Past 255 fields and dictionary entries: 4-byte counts, 2-byte ids.
            1 => vec(("[a-z]{3,6}", any::<i64>()).prop_map(|(k, i)| kv(k, Some(V::IntValue(i)))), 250..320),
            // Many repeats of few keys.
            1 => vec(("[a-c]{1,2}", any::<bool>()).prop_map(|(k, b)| kv(k, Some(V::BoolValue(b)))), 250..300),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn bags_encode_as_the_arrow_rs_builders_do(attributes in bag()) {
            agree(&attributes)?;
        }

        #[test]
        fn values_encode_as_the_arrow_rs_builders_do(v in value()) {
            agree_value(v)?;
        }
    }

    #[test]
    fn a_nested_object_written_before_the_dictionary_passed_255_keys_is_widened() {
        // "zz" is the 2nd key met, so its nested object first writes 1-byte ids; it ends up 301st.
        let mut attributes = vec![kv("zzz", Some(V::KvlistValue(KeyValueList { values: vec![kv("zz", None)] })))];
        attributes.extend((0..300).map(|i| kv(format!("k{i:03}"), Some(V::IntValue(i)))));
        agree(&attributes).unwrap();
        let (metadata, _) = ours(&attributes).unwrap();
        assert_eq!(metadata[0] >> 6, 1, "2-byte dictionary offsets");
    }

    #[test]
    fn repeated_keys_keep_the_last_value_and_drop_the_keys_under_the_others() {
        let inner = |key: &str| Some(V::KvlistValue(KeyValueList { values: vec![kv(key, Some(V::BoolValue(true)))] }));
        let attributes = [kv("k", inner("gone")), kv("a", Some(V::IntValue(1))), kv("k", inner("kept")), kv("a", None)];
        agree(&attributes).unwrap();
        let (metadata, value) = ours(&attributes).unwrap();
        let row = Variant::try_new(&metadata, &value).unwrap();
        assert_eq!(row.metadata().iter().collect::<Vec<_>>(), ["a", "k", "kept"]);
        assert_eq!(row.as_object().unwrap().get("a"), Some(Variant::Null));
    }

    #[test]
    fn nesting_as_deep_as_the_decoder_accepts() {
        for levels in [63, 64, 65] {
            let mut deep = Some(V::IntValue(1));
            for level in 0..levels {
                deep = Some(if level % 2 == 0 {
                    V::ArrayValue(ArrayValue { values: vec![Pb { value: deep }] })
                } else {
                    V::KvlistValue(KeyValueList { values: vec![kv(format!("l{level}"), deep)] })
                });
            }
            let attributes = [kv("deep", deep.clone())];
            agree(&attributes).unwrap();
            agree_value(deep).unwrap();
            assert_eq!(ours(&attributes).is_ok(), levels <= 64, "{levels} levels");
        }
    }

    #[test]
    fn long_values_take_wider_offsets() {
        // Past 64 KiB (3-byte offsets) and past 16 MiB (4-byte offsets).
        for len in [70_000, (16 << 20) + 10] {
            let attributes = [
                kv(
                    "list",
                    Some(V::ArrayValue(ArrayValue { values: vec![Pb { value: Some(V::BytesValue(vec![7; len])) }] })),
                ),
                kv("s", Some(V::StringValue("x".repeat(len)))),
                kv(
                    "o",
                    Some(V::KvlistValue(KeyValueList { values: vec![kv("b", Some(V::BytesValue(vec![1; len])))] })),
                ),
            ];
            agree(&attributes).unwrap();
        }
    }

    #[test]
    fn an_empty_bag_is_an_empty_object_with_an_empty_dictionary() {
        assert_eq!(ours(&[]).unwrap(), (vec![0x01, 0, 0], vec![OBJECT, 0, 0]));
        agree(&[]).unwrap();
    }
}
