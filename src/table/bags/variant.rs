//! OTLP values as VARIANT, the attribute type of the v2 layout (`otel-tables.md`), encoded by our own encoder
//! ([`encode`]) straight into the columns' buffers; the arrow-rs `parquet-variant` builders, which it replaced for
//! speed, are kept as the tests' oracle.
//!
//! Types are kept: a string stays a string, an int an int64, a double a double, a bool a boolean, bytes binary;
//! an array is a variant array and a kvlist an object, nested as deep as the decoder accepts. An attribute bag is
//! an object of its keys (an empty bag is an empty object); a key repeated in one bag keeps its last value (a
//! VARIANT object has unique keys; OTLP says keys must not repeat). An unset value (`AnyValue` with no field set)
//! is a variant null, so its key is still there: `attributes:['k']` is SQL NULL either way, but
//! `is_variant_null(attributes:['k'])` tells an unset value from a missing key.
//!
//! A single value as its own VARIANT ([`VariantValueColumn`], v2's log body) keeps its type the same way; an unset
//! one is SQL NULL (the struct is null; its children hold a variant null, so every row's bytes are valid).

use std::sync::Arc;

use arrow::array::NullBufferBuilder;
use arrow::array::{make_view, BinaryViewArray};
use arrow::array::{ArrayRef, StructArray};
use arrow::buffer::{Buffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, FieldRef, Fields};
use arrow::error::ArrowError;
use parquet::variant::VariantType;

use super::{BagColumn, RepeatedBagColumn, ValueColumn};
use crate::decode::{AnyValue, Attributes, DecodeError};
use crate::table::columns::{headroom, struct_fields};
use crate::table::repeated::{RepeatedBinary, View};
use encode::Encoder;

mod encode;

/// `field` with every VARIANT column in it (the Delta kernel's Arrow type for VARIANT: a struct of exactly a
/// `metadata` and a `value` binary) built as views of the encoders' buffers and tagged with the Parquet VARIANT
/// extension type, which makes the Parquet writer annotate the column with the VARIANT logical type.
pub(crate) fn annotate_variants(field: &Field) -> Field {
    let annotated = |f: &FieldRef| Arc::new(annotate_variants(f));
    match field.data_type() {
        DataType::Struct(children) if is_variant(children) => {
            let binary = |name: &str| Field::new(name, DataType::BinaryView, false);
            let children = Fields::from(vec![binary("metadata"), binary("value")]);
            field.clone().with_data_type(DataType::Struct(children)).with_extension_type(VariantType)
        }
        DataType::Struct(children) => {
            field.clone().with_data_type(DataType::Struct(children.iter().map(annotated).collect::<Fields>()))
        }
        DataType::List(item) => field.clone().with_data_type(DataType::List(annotated(item))),
        DataType::Map(entries, sorted) => field.clone().with_data_type(DataType::Map(annotated(entries), *sorted)),
        _ => field.clone(),
    }
}

/// Whether a struct's children are a VARIANT's: exactly a `metadata` and a `value` binary, in that order (the
/// Delta kernel's Arrow type for VARIANT, with or without the Parquet extension type on its field).
pub(crate) fn is_variant(children: &Fields) -> bool {
    let binary = |t: &DataType| matches!(t, DataType::Binary | DataType::BinaryView | DataType::LargeBinary);
    matches!(children.iter().map(|f| (f.name().as_str(), f.data_type())).collect::<Vec<_>>().as_slice(),
        [("metadata", m), ("value", v)] if binary(m) && binary(v))
}

/// A VARIANT column: `STRUCT<metadata BINARY, value BINARY>` (Arrow views of two byte buffers the rows are encoded
/// into), one attribute object per row.
pub(crate) struct VariantColumn {
    encoder: Encoder,
    metadata: Vec<u8>,
    value: Vec<u8>,
    /// Where each row's metadata and value end in the buffers.
    ends: Vec<(usize, usize)>,
}

impl BagColumn for VariantColumn {
    fn new() -> Self {
        VariantColumn { encoder: Encoder::new(), metadata: Vec::new(), value: Vec::new(), ends: Vec::new() }
    }

    fn append(&mut self, attributes: Attributes<'_>) -> Result<(), DecodeError> {
        self.encoder.append_bag(attributes, &mut self.metadata, &mut self.value)?;
        self.ends.push((self.metadata.len(), self.value.len()));
        Ok(())
    }

    fn finish(&mut self, data_type: &DataType) -> Result<ArrayRef, ArrowError> {
        let room = (headroom(self.metadata.len()), headroom(self.value.len()), headroom(self.ends.len()));
        let metadata = std::mem::replace(&mut self.metadata, Vec::with_capacity(room.0));
        let value = std::mem::replace(&mut self.value, Vec::with_capacity(room.1));
        let ends = std::mem::replace(&mut self.ends, Vec::with_capacity(room.2));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(views(metadata, ends.iter().map(|e| e.0))?),
            Arc::new(views(value, ends.iter().map(|e| e.1))?),
        ];
        Ok(Arc::new(StructArray::try_new(struct_fields(data_type)?.clone(), columns, None)?))
    }
}

/// A nullable VARIANT column of single values, one per row (v2's log body).
pub(crate) struct VariantValueColumn {
    encoder: Encoder,
    metadata: Vec<u8>,
    value: Vec<u8>,
    /// Where each row's metadata and value end in the buffers.
    ends: Vec<(usize, usize)>,
    nulls: NullBufferBuilder,
}

impl ValueColumn for VariantValueColumn {
    fn new() -> Self {
        VariantValueColumn {
            encoder: Encoder::new(),
            metadata: Vec::new(),
            value: Vec::new(),
            ends: Vec::new(),
            nulls: NullBufferBuilder::new(0),
        }
    }

    fn append(&mut self, value: &AnyValue<'_>) -> Result<(), DecodeError> {
        // An unset value still gets a variant null's bytes under the null row: readers that look at the children
        // of a null struct find a valid VARIANT.
        self.encoder.append_value(value, &mut self.metadata, &mut self.value)?;
        self.ends.push((self.metadata.len(), self.value.len()));
        self.nulls.append(!matches!(value, AnyValue::Empty));
        Ok(())
    }

    fn finish(&mut self, data_type: &DataType) -> Result<ArrayRef, ArrowError> {
        let room = (headroom(self.metadata.len()), headroom(self.value.len()), headroom(self.ends.len()));
        let metadata = std::mem::replace(&mut self.metadata, Vec::with_capacity(room.0));
        let value = std::mem::replace(&mut self.value, Vec::with_capacity(room.1));
        let ends = std::mem::replace(&mut self.ends, Vec::with_capacity(room.2));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(views(metadata, ends.iter().map(|e| e.0))?),
            Arc::new(views(value, ends.iter().map(|e| e.1))?),
        ];
        let nulls = self.nulls.finish();
        Ok(Arc::new(StructArray::try_new(struct_fields(data_type)?.clone(), columns, nulls)?))
    }
}

/// A `BinaryView` array of consecutive rows of `bytes`, each ending at the next of `ends`. Rows are views of the
/// buffer itself (no copy); a block holds at most 4 GiB, so a larger buffer is split at row boundaries.
fn views(bytes: Vec<u8>, ends: impl ExactSizeIterator<Item = usize>) -> Result<BinaryViewArray, ArrowError> {
    views_in_blocks_of(u32::MAX as usize, bytes, ends)
}

/// [`views`] with blocks of at most `block` bytes (tests split at a size they can afford).
fn views_in_blocks_of(
    block: usize,
    bytes: Vec<u8>,
    ends: impl ExactSizeIterator<Item = usize>,
) -> Result<BinaryViewArray, ArrowError> {
    let data = Buffer::from_vec(bytes);
    let too_large = || ArrowError::InvalidArgumentError("a VARIANT row longer than 4 GiB".into());
    let mut views = Vec::with_capacity(ends.len());
    let mut blocks = Vec::new();
    // The open block: from `block_start` to the end of the last row that is not inlined in its view (0: none).
    let (mut block_start, mut block_end, mut start) = (0, 0, 0);
    for end in ends {
        let row = data.get(start..end).ok_or_else(too_large)?;
        let len = u32::try_from(row.len()).map_err(|_| too_large())?;
        if len <= 12 {
            views.push(make_view(row, 0, 0));
        } else {
            if end - block_start > block {
                if block_end > block_start {
                    blocks.push(data.slice_with_length(block_start, block_end - block_start));
                }
                block_start = start;
            }
            let block = u32::try_from(blocks.len()).map_err(|_| too_large())?;
            views.push(make_view(row, block, (start - block_start) as u32));
            block_end = end;
        }
        start = end;
    }
    if block_end > block_start {
        blocks.push(data.slice_with_length(block_start, block_end - block_start));
    }
    BinaryViewArray::try_new(ScalarBuffer::from(views), blocks, None)
}

/// A VARIANT column whose rows repeat a few stored objects (resource and scope attributes).
pub(crate) struct RepeatedVariant {
    encoder: Encoder,
    /// One bag's bytes, before they are stored.
    scratch: (Vec<u8>, Vec<u8>),
    metadata: RepeatedBinary,
    value: RepeatedBinary,
}

impl RepeatedBagColumn for RepeatedVariant {
    /// The views of the object's metadata and value.
    type Stored = (View, View);

    fn new() -> Self {
        RepeatedVariant {
            encoder: Encoder::new(),
            scratch: (Vec::new(), Vec::new()),
            metadata: RepeatedBinary::new(),
            value: RepeatedBinary::new(),
        }
    }

    fn store(&mut self, attributes: Attributes<'_>) -> Result<(Self::Stored, u64), DecodeError> {
        let (metadata, value) = &mut self.scratch;
        metadata.clear();
        value.clear();
        self.encoder.append_bag(attributes, metadata, value)?;
        let cost = (metadata.len() + value.len()) as u64 + 8;
        Ok(((self.metadata.store(metadata), self.value.store(value)), cost))
    }

    fn push(&mut self, &(metadata, value): &Self::Stored) {
        self.metadata.push(Some(metadata));
        self.value.push(Some(value));
    }

    fn finish(&mut self, data_type: &DataType) -> Result<ArrayRef, ArrowError> {
        let columns = vec![self.metadata.finish()?, self.value.finish()?];
        Ok(Arc::new(StructArray::try_new(struct_fields(data_type)?.clone(), columns, None)?))
    }
}

/// The arrow-rs builders' encoding of a bag (what this module used before [`Encoder`]): the oracle the tests hold
/// the encoder to.
#[cfg(test)]
mod oracle {
    use parquet::variant::{ListBuilder, ObjectBuilder, ObjectFieldBuilder, Variant, VariantBuilderExt};

    use crate::decode::{AnyValue, Attributes, DecodeError};

    /// Append an attribute bag as one object value to `out` (one row of a variant column, or a nested field).
    pub(super) fn append_attributes(
        out: &mut impl VariantBuilderExt,
        attributes: Attributes<'_>,
    ) -> Result<(), DecodeError> {
        let mut object = out.try_new_object().map_err(invalid)?;
        for kv in attributes {
            let kv = kv?;
            append_value(&mut ObjectFieldBuilder::new(kv.key, &mut object), &kv.value, 1)?;
        }
        // An object left unfinished (an error above) is rolled back by the builder: the row is not appended.
        object.finish();
        Ok(())
    }

    /// Append one value. `depth` is its nesting level, bounded by the decoder.
    pub(super) fn append_value(
        out: &mut impl VariantBuilderExt,
        value: &AnyValue<'_>,
        depth: u32,
    ) -> Result<(), DecodeError> {
        match value {
            AnyValue::Empty => out.append_value(Variant::Null),
            AnyValue::String(s) => out.append_value(*s),
            AnyValue::Bool(b) => out.append_value(*b),
            AnyValue::Int(i) => out.append_value(*i),
            AnyValue::Double(d) => out.append_value(*d),
            AnyValue::Bytes(b) => out.append_value(Variant::Binary(b)),
            AnyValue::Array(array) => {
                let mut list: ListBuilder<'_, _> = out.try_new_list().map_err(invalid)?;
                for item in array.iter(depth)? {
                    append_value(&mut list, &item?, depth + 1)?;
                }
                list.finish();
            }
            AnyValue::KvList(kvs) => {
                let mut object: ObjectBuilder<'_, _> = out.try_new_object().map_err(invalid)?;
                for kv in kvs.iter(depth)? {
                    let kv = kv?;
                    append_value(&mut ObjectFieldBuilder::new(kv.key, &mut object), &kv.value, depth + 1)?;
                }
                object.finish();
            }
        }
        Ok(())
    }

    /// The builders refuse only what a bounded request cannot produce (a value or dictionary past 4 GiB).
    fn invalid(_: arrow::error::ArrowError) -> DecodeError {
        DecodeError::Variant
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue as Pb, ArrayValue, KeyValue, KeyValueList};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use parquet::variant::Variant;
    use prost::Message as _;

    use super::*;
    use crate::decode::Request;

    fn kv(key: &str, value: Option<any_value::Value>) -> KeyValue {
        KeyValue { key: key.into(), value: Some(Pb { value }), ..Default::default() }
    }

    /// A one-span request whose span has `attributes`, as protobuf.
    pub(super) fn one_span(attributes: Vec<KeyValue>) -> Vec<u8> {
        let span = Span { trace_id: vec![1; 16], span_id: vec![2; 8], attributes, ..Default::default() };
        let scope = ScopeSpans { spans: vec![span], ..Default::default() };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans { scope_spans: vec![scope], ..Default::default() }],
        };
        request.encode_to_vec()
    }

    /// The attributes of the span in a [`one_span`] request.
    pub(super) fn span_attributes(body: &[u8]) -> Attributes<'_> {
        let resource_spans = Request::new(body).resource_spans().next().unwrap().unwrap();
        let scope_spans = resource_spans.scope_spans().next().unwrap().unwrap();
        let span = scope_spans.spans().next().unwrap().unwrap();
        span.attributes()
    }

    /// The attributes of a one-span request, encoded as one variant row; returns the row's (metadata, value).
    fn encode(attributes: Vec<KeyValue>) -> (Vec<u8>, Vec<u8>) {
        let body = one_span(attributes);
        let (mut metadata, mut value) = (Vec::new(), Vec::new());
        Encoder::new().append_bag(span_attributes(&body), &mut metadata, &mut value).unwrap();
        (metadata, value)
    }

    #[test]
    fn values_keep_their_types() {
        use any_value::Value as V;
        let nested = KeyValueList {
            values: vec![kv(
                "deep",
                Some(V::ArrayValue(ArrayValue {
                    values: vec![Pb { value: Some(V::IntValue(1)) }, Pb { value: Some(V::StringValue("two".into())) }],
                })),
            )],
        };
        let (metadata, value) = encode(vec![
            kv("s", Some(V::StringValue("text".into()))),
            kv("b", Some(V::BoolValue(true))),
            kv("i", Some(V::IntValue(-7))),
            kv("d", Some(V::DoubleValue(1.5))),
            kv("bytes", Some(V::BytesValue(vec![0, 255]))),
            kv("unset", None),
            kv("list", Some(V::ArrayValue(ArrayValue { values: vec![Pb { value: Some(V::DoubleValue(0.5)) }] }))),
            kv("map", Some(V::KvlistValue(nested))),
        ]);
        let row = Variant::try_new(&metadata, &value).unwrap();
        let o = row.as_object().unwrap();
        assert_eq!(o.get("s"), Some(Variant::from("text")));
        assert_eq!(o.get("b"), Some(Variant::from(true)));
        assert_eq!(o.get("i"), Some(Variant::Int64(-7)));
        assert_eq!(o.get("d"), Some(Variant::Double(1.5)));
        assert_eq!(o.get("bytes"), Some(Variant::Binary(&[0, 255])));
        assert_eq!(o.get("unset"), Some(Variant::Null), "an unset value keeps its key, as a variant null");
        let list = o.get("list").unwrap();
        assert_eq!(list.as_list().unwrap().get(0), Some(Variant::Double(0.5)));
        let map = o.get("map").unwrap();
        let deep = map.as_object().unwrap().get("deep").unwrap();
        let deep = deep.as_list().unwrap();
        assert_eq!((deep.get(0), deep.get(1)), (Some(Variant::Int64(1)), Some(Variant::from("two"))));
        assert_eq!(o.len(), 8);
    }

    #[test]
    fn a_bag_that_fails_half_way_leaves_no_row_behind() {
        use any_value::Value as V;
        let mut deep = Pb { value: Some(V::IntValue(1)) };
        for _ in 0..200 {
            deep = Pb { value: Some(V::ArrayValue(ArrayValue { values: vec![deep] })) };
        }
        let span = |attributes| Span { trace_id: vec![1; 16], span_id: vec![2; 8], attributes, ..Default::default() };
        let spans = vec![
            span(vec![
                kv("a", Some(V::IntValue(1))),
                KeyValue { key: "deep".into(), value: Some(deep), ..Default::default() },
            ]),
            span(vec![kv("b", Some(V::StringValue("kept".into())))]),
        ];
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                ..Default::default()
            }],
        };
        let body = request.encode_to_vec();
        let mut column = VariantColumn::new();
        let mut results = Vec::new();
        for rs in Request::new(&body).resource_spans() {
            for ss in rs.unwrap().scope_spans() {
                for span in ss.unwrap().spans() {
                    results.push(column.append(span.unwrap().attributes()));
                }
            }
        }
        assert_eq!(results, [Err(DecodeError::TooDeep), Ok(())]);
        let data_type = DataType::Struct(Fields::from(vec![
            Field::new("metadata", DataType::BinaryView, false),
            Field::new("value", DataType::BinaryView, false),
        ]));
        let array = column.finish(&data_type).unwrap();
        let array = parquet::variant::VariantArray::try_new(array.as_ref()).unwrap();
        assert_eq!(array.len(), 1, "the failed bag appended no row");
        let row = array.value(0);
        let object = row.as_object().unwrap();
        assert_eq!((object.len(), object.get("b")), (1, Some(Variant::from("kept"))), "no bytes of the failed bag");
    }

    #[test]
    fn rows_past_a_block_start_a_new_block() {
        let rows: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; [3, 13, 30, 40][i as usize % 4]]).collect();
        let ends = rows.iter().scan(0, |end, row| {
            *end += row.len();
            Some(*end)
        });
        let array = views_in_blocks_of(40, rows.concat(), ends.collect::<Vec<_>>().into_iter()).unwrap();
        assert!(array.data_buffers().len() > 5, "{} blocks", array.data_buffers().len());
        assert!(array.data_buffers().iter().all(|b| b.len() <= 40));
        assert_eq!(array.iter().map(|r| r.unwrap().to_vec()).collect::<Vec<_>>(), rows);
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value_and_an_empty_bag_is_an_empty_object() {
        use any_value::Value as V;
        let (metadata, value) = encode(vec![kv("k", Some(V::IntValue(1))), kv("k", Some(V::IntValue(2)))]);
        let row = Variant::try_new(&metadata, &value).unwrap();
        let o = row.as_object().unwrap();
        assert_eq!((o.len(), o.get("k")), (1, Some(Variant::Int64(2))));
        let (metadata, value) = encode(vec![]);
        assert_eq!(Variant::try_new(&metadata, &value).unwrap().as_object().unwrap().len(), 0);
    }
}
