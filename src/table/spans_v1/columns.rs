//! Column builders for the spans table: one row per span, appended straight from the decoder's views.
//!
//! Resource and scope attributes are rendered once per `ResourceSpans` / `ScopeSpans` and repeated for each of
//! their spans. Arrays are assembled against the fields of [`arrow_schema`], so the batch type is exactly the
//! table's.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, Int32Builder, Int64Builder, ListArray, MapArray, PrimitiveBuilder, RecordBatch,
    StringBuilder, StructArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::compute::concat_batches;
use arrow::datatypes::{ArrowPrimitiveType, DataType, FieldRef, Fields, SchemaRef};
use arrow::error::ArrowError;

use super::arrow_schema;
use super::values::render_attribute;
use crate::decode::{AnyValue, Attributes, DecodeError, Request, SpanView, Summary};
use crate::table::repeated::{RepeatedStrings, View};

/// Rows of the spans table under construction.
pub struct SpanColumns {
    schema: SchemaRef,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    trace_state: StringBuilder,
    parent_span_id: StringBuilder,
    flags: Int32Builder,
    name: StringBuilder,
    kind: StringBuilder,
    start_time_unix_nano: Int64Builder,
    end_time_unix_nano: Int64Builder,
    attributes: MapColumn,
    dropped_attributes_count: Int32Builder,
    events: EventColumn,
    dropped_events_count: Int32Builder,
    links: LinkColumn,
    dropped_links_count: Int32Builder,
    status_message: StringBuilder,
    status_code: StringBuilder,
    resource_attributes: RepeatedMap,
    resource_dropped_attributes_count: Int32Builder,
    resource_schema_url: RepeatedStrings,
    scope_name: RepeatedStrings,
    scope_version: RepeatedStrings,
    scope_attributes: RepeatedMap,
    scope_dropped_attributes_count: Int32Builder,
    span_schema_url: RepeatedStrings,
    /// Complete rows in the builders.
    rows: usize,
    /// Estimated bytes of the rows appended since the last `finish` (see `row_cost`).
    bytes: u64,
    /// Rows set aside when a request failed half-way, ahead of the builders' rows (see `cut_back`).
    kept: Vec<RecordBatch>,
    /// Setting rows aside failed (a schema bug, not an input error): the next `finish` reports it.
    broken: Option<ArrowError>,
    scratch: Scratch,
}

/// Reused buffers, so appending a span allocates nothing once they have grown.
#[derive(Default)]
struct Scratch {
    value: String,
    hex: String,
}

impl Default for SpanColumns {
    fn default() -> Self {
        Self::new()
    }
}

impl SpanColumns {
    pub fn new() -> Self {
        SpanColumns {
            schema: arrow_schema(),
            trace_id: StringBuilder::new(),
            span_id: StringBuilder::new(),
            trace_state: StringBuilder::new(),
            parent_span_id: StringBuilder::new(),
            flags: Int32Builder::new(),
            name: StringBuilder::new(),
            kind: StringBuilder::new(),
            start_time_unix_nano: Int64Builder::new(),
            end_time_unix_nano: Int64Builder::new(),
            attributes: MapColumn::new(),
            dropped_attributes_count: Int32Builder::new(),
            events: EventColumn::new(),
            dropped_events_count: Int32Builder::new(),
            links: LinkColumn::new(),
            dropped_links_count: Int32Builder::new(),
            status_message: StringBuilder::new(),
            status_code: StringBuilder::new(),
            resource_attributes: RepeatedMap::new(),
            resource_dropped_attributes_count: Int32Builder::new(),
            resource_schema_url: RepeatedStrings::new(),
            scope_name: RepeatedStrings::new(),
            scope_version: RepeatedStrings::new(),
            scope_attributes: RepeatedMap::new(),
            scope_dropped_attributes_count: Int32Builder::new(),
            span_schema_url: RepeatedStrings::new(),
            rows: 0,
            bytes: 0,
            kept: Vec::new(),
            broken: None,
            scratch: Scratch::default(),
        }
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn rows(&self) -> usize {
        self.rows + self.kept.iter().map(RecordBatch::num_rows).sum::<usize>()
    }

    /// Append one row per storable span of a request, checking the whole request on the way: the checks of
    /// [`crate::decode::validate`] (the same view code), in the same pass as the rows are built, so each request
    /// is parsed once. Spans with bad ids are skipped and counted as rejected, as `validate` counts them.
    ///
    /// On error the request adds no row: the rows before it are kept and the builders restart clean.
    pub fn append_request(&mut self, body: &[u8]) -> Result<Summary, DecodeError> {
        self.append_request_within(body, u64::MAX).map(|(summary, _)| summary)
    }

    /// [`append_request`](Self::append_request), refusing with [`DecodeError::RowsTooLarge`] (and adding no row)
    /// a request whose rows would take more than `limit` bytes; on success, the summary and the rows' bytes.
    pub(crate) fn append_request_within(&mut self, body: &[u8], limit: u64) -> Result<(Summary, u64), DecodeError> {
        let before = self.rows;
        let result = self.append_all(body, limit);
        match result {
            Ok((_, bytes)) => self.bytes += bytes,
            Err(_) => {
                self.rows = before;
                self.cut_back();
            }
        }
        result
    }

    /// Estimated bytes of the rows appended since the last [`finish`](Self::finish).
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    fn append_all(&mut self, body: &[u8], limit: u64) -> Result<(Summary, u64), DecodeError> {
        let mut summary = Summary::default();
        let mut bytes = 0u64;
        for rs in Request::new(body).resource_spans() {
            let rs = rs?;
            let resource_attributes = render_all(rs.resource.attributes)?;
            let resource_cost = rendered_cost(&resource_attributes) + rs.schema_url.len() as u64;
            let resource_attributes = self.resource_attributes.store(&resource_attributes);
            let resource_schema_url = self.resource_schema_url.store(rs.schema_url);
            for ss in rs.scope_spans() {
                let ss = ss?;
                let scope_attributes = render_all(ss.scope.attributes)?;
                let scope_cost = rendered_cost(&scope_attributes)
                    + (ss.scope.name.len() + ss.scope.version.len() + ss.schema_url.len()) as u64;
                let scope_attributes = self.scope_attributes.store(&scope_attributes);
                let scope_name = self.scope_name.store(ss.scope.name);
                let scope_version = self.scope_version.store(ss.scope.version);
                let span_schema_url = self.span_schema_url.store(ss.schema_url);
                for span in ss.spans() {
                    let span = span?;
                    if let Some(reason) = span.rejection() {
                        summary.rejected += 1;
                        summary.first_rejection.get_or_insert(reason);
                        continue;
                    }
                    // Checked before the span is appended: a refused request never grows a column past the limit.
                    bytes += span_cost(&span) + resource_cost + scope_cost;
                    if bytes > limit {
                        return Err(DecodeError::RowsTooLarge { limit });
                    }
                    self.append_span(&span)?;
                    self.resource_attributes.push(&resource_attributes);
                    self.resource_dropped_attributes_count.append_value(rs.resource.dropped_attributes_count as i32);
                    self.resource_schema_url.push(Some(resource_schema_url));
                    self.scope_name.push(Some(scope_name));
                    self.scope_version.push(Some(scope_version));
                    self.scope_attributes.push(&scope_attributes);
                    self.scope_dropped_attributes_count.append_value(ss.scope.dropped_attributes_count as i32);
                    self.span_schema_url.push(Some(span_schema_url));
                    self.rows += 1;
                    summary.accepted += 1;
                }
            }
        }
        Ok((summary, bytes))
    }

    /// After a failed request: set the complete rows before it aside and restart the builders empty.
    ///
    /// A failure can leave values past `rows`: some top-level columns got the failing span's value, some not,
    /// and nested entries of unfinished rows (map entries, list items) trail their offsets. Every child value is
    /// appended only once its siblings can no longer fail (a map key with its rendered value, an event's fields
    /// after its attributes), so each column is consistent up to its own row count, and cutting every top-level
    /// column at `rows` ([`Self::finish_builders`]) drops exactly the failed request.
    fn cut_back(&mut self) {
        match self.finish_builders() {
            Ok(batch) if batch.num_rows() > 0 => self.kept.push(batch),
            Ok(_) => {}
            Err(e) => self.broken = Some(e),
        }
    }

    /// The span's own columns (everything but resource and scope).
    fn append_span(&mut self, span: &SpanView<'_>) -> Result<(), DecodeError> {
        let hex = &mut self.scratch.hex;
        self.trace_id.append_value(hex_into(span.trace_id, hex));
        self.span_id.append_value(hex_into(span.span_id, hex));
        self.trace_state.append_value(span.trace_state);
        self.parent_span_id.append_value(hex_into(span.parent_span_id, hex));
        // `fixed32 flags` is stored bit for bit in a signed INT column.
        self.flags.append_value(span.flags as i32);
        self.name.append_value(span.name);
        self.kind.append_value(kind_name(span.kind));
        self.start_time_unix_nano.append_value(span.start_time_unix_nano as i64);
        self.end_time_unix_nano.append_value(span.end_time_unix_nano as i64);
        self.attributes.append(span.attributes(), &mut self.scratch.value)?;
        self.dropped_attributes_count.append_value(span.dropped_attributes_count as i32);
        for event in span.events() {
            self.events.append(&event?, &mut self.scratch.value)?;
        }
        self.events.end_row();
        self.dropped_events_count.append_value(span.dropped_events_count as i32);
        for link in span.links() {
            self.links.append(&link?, &mut self.scratch)?;
        }
        self.links.end_row();
        self.dropped_links_count.append_value(span.dropped_links_count as i32);
        self.status_message.append_value(span.status.message);
        self.status_code.append_value(status_code_name(span.status.code));
        Ok(())
    }

    /// Take the rows built so far as a record batch of the table schema; the builders start empty again.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.bytes = 0;
        let batch = self.finish_builders();
        if let Some(e) = self.broken.take() {
            self.kept.clear();
            return Err(e);
        }
        if self.kept.is_empty() {
            return batch;
        }
        // Only after a failed request (rare): the rows set aside before it, then those since.
        let mut batches = std::mem::take(&mut self.kept);
        batches.push(batch?);
        concat_batches(&self.schema, &batches)
    }

    /// The builders' rows (the first `rows` of every column) as a record batch; the builders start empty.
    fn finish_builders(&mut self) -> Result<RecordBatch, ArrowError> {
        let schema = self.schema.clone();
        let fields = schema.fields();
        let event_fields = struct_fields(list_item(field_type(fields, "events")?)?.data_type())?;
        let link_fields = struct_fields(list_item(field_type(fields, "links")?)?.data_type())?;
        let status_fields = struct_fields(field_type(fields, "status")?)?;
        let resource_fields = struct_fields(field_type(fields, "resource")?)?;
        let scope_fields = struct_fields(field_type(fields, "instrumentation_scope")?)?;
        let map_type = field_type(fields, "attributes")?;

        let columns: Vec<ArrayRef> = vec![
            self.trace_id.finish_sized(),
            self.span_id.finish_sized(),
            self.trace_state.finish_sized(),
            self.parent_span_id.finish_sized(),
            self.flags.finish_sized(),
            self.name.finish_sized(),
            self.kind.finish_sized(),
            self.start_time_unix_nano.finish_sized(),
            self.end_time_unix_nano.finish_sized(),
            self.attributes.finish(map_type)?,
            self.dropped_attributes_count.finish_sized(),
            self.events.finish(field_type(fields, "events")?, event_fields)?,
            self.dropped_events_count.finish_sized(),
            self.links.finish(field_type(fields, "links")?, link_fields)?,
            self.dropped_links_count.finish_sized(),
            Arc::new(StructArray::try_new(
                status_fields.clone(),
                vec![self.status_message.finish_sized(), self.status_code.finish_sized()],
                None,
            )?),
            Arc::new(StructArray::try_new(
                resource_fields.clone(),
                vec![
                    self.resource_attributes.finish(field_type(resource_fields, "attributes")?)?,
                    self.resource_dropped_attributes_count.finish_sized(),
                ],
                None,
            )?),
            self.resource_schema_url.finish()?,
            Arc::new(StructArray::try_new(
                scope_fields.clone(),
                vec![
                    self.scope_name.finish()?,
                    self.scope_version.finish()?,
                    self.scope_attributes.finish(field_type(scope_fields, "attributes")?)?,
                    self.scope_dropped_attributes_count.finish_sized(),
                ],
                None,
            )?),
            self.span_schema_url.finish()?,
        ];
        // Past `rows` a column may hold values of a request that failed half-way (see `cut_back`).
        let rows = std::mem::take(&mut self.rows);
        let columns = columns.into_iter().map(|c| if c.len() == rows { c } else { c.slice(0, rows) }).collect();
        RecordBatch::try_new(schema, columns)
    }
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

/// Per-row overhead in the estimate: offsets, fixed-width columns, validity bits.
const ROW_OVERHEAD: u64 = 128;

/// What a span's own columns take, estimated from its encoded size: ids double as hex, rendered values grow a
/// little; an upper bound for the usual span, checked before anything is appended.
fn span_cost(span: &SpanView<'_>) -> u64 {
    2 * span.encoded_len as u64 + ROW_OVERHEAD
}

/// What rendered attributes take on each row they are repeated on: once in the builders (see [`RepeatedMap`]), but
/// on every row in the Parquet file, which is what the in-flight budget must cover.
fn rendered_cost(entries: &Rendered<'_>) -> u64 {
    entries.iter().map(|(k, v)| (k.len() + v.as_deref().map_or(0, str::len) + 8) as u64).sum()
}

/// Span kind as the v1 table names it; unknown kinds are `INTERNAL` (what the Python app this replaces wrote,
/// so existing v1 tables stay consistent).
pub(crate) fn kind_name(kind: i32) -> &'static str {
    match kind {
        0 => "UNSPECIFIED",
        2 => "SERVER",
        3 => "CLIENT",
        4 => "PRODUCER",
        5 => "CONSUMER",
        _ => "INTERNAL",
    }
}

/// Status code as the v1 table names it; unknown codes are `UNSET`.
pub(crate) fn status_code_name(code: i32) -> &'static str {
    match code {
        1 => "OK",
        2 => "ERROR",
        _ => "UNSET",
    }
}

/// Lowercase hex of an id, in a reused buffer.
fn hex_into<'s>(bytes: &[u8], out: &'s mut String) -> &'s str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.clear();
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// A `MAP<STRING,STRING>` column.
struct MapColumn {
    offsets: Vec<i32>,
    keys: StringBuilder,
    values: StringBuilder,
}

impl MapColumn {
    fn new() -> Self {
        MapColumn { offsets: vec![0], keys: StringBuilder::new(), values: StringBuilder::new() }
    }

    /// One row: the rendered entries of `attributes`.
    fn append(&mut self, attributes: Attributes<'_>, scratch: &mut String) -> Result<(), DecodeError> {
        for kv in attributes {
            let kv = kv?;
            // Rendered before anything is appended: a failure leaves keys and values the same length.
            let value = render_attribute(&kv.value, scratch)?;
            self.keys.append_value(kv.key);
            self.values.append_option(value);
        }
        self.end_row();
        Ok(())
    }

    fn end_row(&mut self) {
        // Batches are cut far below 2^31 entries (see `policy`), so the offset fits.
        self.offsets.push(ArrayBuilder::len(&self.keys) as i32);
    }

    fn finish(&mut self, map_type: &DataType) -> Result<ArrayRef, ArrowError> {
        let DataType::Map(entries_field, sorted) = map_type else {
            return Err(schema_mismatch("map"));
        };
        let entries = StructArray::try_new(
            struct_fields(entries_field.data_type())?.clone(),
            vec![self.keys.finish_sized(), self.values.finish_sized()],
            None,
        )?;
        let offsets = OffsetBuffer::new(take_offsets(&mut self.offsets).into());
        Ok(Arc::new(MapArray::try_new(entries_field.clone(), offsets, entries, None, *sorted)?))
    }
}

/// A `MAP<STRING,STRING>` column whose rows repeat a few stored maps (resource and scope attributes).
struct RepeatedMap {
    offsets: Vec<i32>,
    keys: RepeatedStrings,
    values: RepeatedStrings,
}

/// A map stored in a [`RepeatedMap`]: its entries' views.
type StoredMap = Vec<(View, Option<View>)>;

impl RepeatedMap {
    fn new() -> Self {
        RepeatedMap { offsets: vec![0], keys: RepeatedStrings::new(), values: RepeatedStrings::new() }
    }

    /// Store rendered entries once, for [`push`](Self::push) on each row that holds them.
    fn store(&mut self, entries: &Rendered<'_>) -> StoredMap {
        let mut map = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            map.push((self.keys.store(key), value.as_deref().map(|v| self.values.store(v))));
        }
        map
    }

    /// One row holding a stored map.
    fn push(&mut self, map: &StoredMap) {
        for (key, value) in map {
            self.keys.push(Some(*key));
            self.values.push(*value);
        }
        // Batches are cut far below 2^31 entries (see `policy`), so the offset fits.
        self.offsets.push(self.keys.len() as i32);
    }

    fn finish(&mut self, map_type: &DataType) -> Result<ArrayRef, ArrowError> {
        let DataType::Map(entries_field, sorted) = map_type else {
            return Err(schema_mismatch("map"));
        };
        let entries = StructArray::try_new(
            struct_fields(entries_field.data_type())?.clone(),
            vec![self.keys.finish()?, self.values.finish()?],
            None,
        )?;
        let offsets = OffsetBuffer::new(take_offsets(&mut self.offsets).into());
        Ok(Arc::new(MapArray::try_new(entries_field.clone(), offsets, entries, None, *sorted)?))
    }
}

/// `events ARRAY<STRUCT<time_unix_nano, name, attributes, dropped_attributes_count>>`.
struct EventColumn {
    offsets: Vec<i32>,
    time_unix_nano: Int64Builder,
    name: StringBuilder,
    attributes: MapColumn,
    dropped_attributes_count: Int32Builder,
}

impl EventColumn {
    fn new() -> Self {
        EventColumn {
            offsets: vec![0],
            time_unix_nano: Int64Builder::new(),
            name: StringBuilder::new(),
            attributes: MapColumn::new(),
            dropped_attributes_count: Int32Builder::new(),
        }
    }

    fn append(&mut self, event: &crate::decode::EventView<'_>, scratch: &mut String) -> Result<(), DecodeError> {
        // Attributes first: the only part that can fail, so a failure appends none of the other fields.
        self.attributes.append(event.attributes, scratch)?;
        self.time_unix_nano.append_value(event.time_unix_nano as i64);
        self.name.append_value(event.name);
        self.dropped_attributes_count.append_value(event.dropped_attributes_count as i32);
        Ok(())
    }

    fn end_row(&mut self) {
        self.offsets.push(ArrayBuilder::len(&self.name) as i32);
    }

    fn finish(&mut self, list_type: &DataType, fields: &Fields) -> Result<ArrayRef, ArrowError> {
        let map_type = fields.find("attributes").map(|(_, f)| f.data_type().clone());
        let map_type = map_type.ok_or_else(|| schema_mismatch("events.attributes"))?;
        let values = StructArray::try_new(
            fields.clone(),
            vec![
                self.time_unix_nano.finish_sized(),
                self.name.finish_sized(),
                self.attributes.finish(&map_type)?,
                self.dropped_attributes_count.finish_sized(),
            ],
            None,
        )?;
        finish_list(list_type, &mut self.offsets, values)
    }
}

/// `links ARRAY<STRUCT<trace_id, span_id, trace_state, attributes, dropped_attributes_count, flags>>`.
struct LinkColumn {
    offsets: Vec<i32>,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    trace_state: StringBuilder,
    attributes: MapColumn,
    dropped_attributes_count: Int32Builder,
    flags: Int32Builder,
}

impl LinkColumn {
    fn new() -> Self {
        LinkColumn {
            offsets: vec![0],
            trace_id: StringBuilder::new(),
            span_id: StringBuilder::new(),
            trace_state: StringBuilder::new(),
            attributes: MapColumn::new(),
            dropped_attributes_count: Int32Builder::new(),
            flags: Int32Builder::new(),
        }
    }

    fn append(&mut self, link: &crate::decode::LinkView<'_>, scratch: &mut Scratch) -> Result<(), DecodeError> {
        // Attributes first: the only part that can fail, so a failure appends none of the other fields.
        self.attributes.append(link.attributes, &mut scratch.value)?;
        self.trace_id.append_value(hex_into(link.trace_id, &mut scratch.hex));
        self.span_id.append_value(hex_into(link.span_id, &mut scratch.hex));
        self.trace_state.append_value(link.trace_state);
        self.dropped_attributes_count.append_value(link.dropped_attributes_count as i32);
        self.flags.append_value(link.flags as i32);
        Ok(())
    }

    fn end_row(&mut self) {
        self.offsets.push(ArrayBuilder::len(&self.trace_id) as i32);
    }

    fn finish(&mut self, list_type: &DataType, fields: &Fields) -> Result<ArrayRef, ArrowError> {
        let map_type = fields.find("attributes").map(|(_, f)| f.data_type().clone());
        let map_type = map_type.ok_or_else(|| schema_mismatch("links.attributes"))?;
        let values = StructArray::try_new(
            fields.clone(),
            vec![
                self.trace_id.finish_sized(),
                self.span_id.finish_sized(),
                self.trace_state.finish_sized(),
                self.attributes.finish(&map_type)?,
                self.dropped_attributes_count.finish_sized(),
                self.flags.finish_sized(),
            ],
            None,
        )?;
        finish_list(list_type, &mut self.offsets, values)
    }
}

fn finish_list(list_type: &DataType, offsets: &mut Vec<i32>, values: StructArray) -> Result<ArrayRef, ArrowError> {
    let item = list_item(list_type)?;
    let offsets = OffsetBuffer::new(take_offsets(offsets).into());
    Ok(Arc::new(ListArray::try_new(item.clone(), offsets, Arc::new(values) as ArrayRef, None)?))
}

/// Builders are cut at a fixed input size (see `policy`), so the next batch is about as large as the last: each
/// builder starts the next one with the room this one took, plus an eighth, instead of regrowing (reallocating
/// and copying) every buffer a dozen times per batch (cost: `docs/design-notes.md#builder-capacity`).
trait FinishSized {
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
fn take_offsets(offsets: &mut Vec<i32>) -> Vec<i32> {
    let mut next = Vec::with_capacity(headroom(offsets.len()));
    next.push(0);
    std::mem::replace(offsets, next)
}

/// Room for the next batch: what this one took plus an eighth, but never more than `MAX_RESERVED` (a batch
/// that was huge, e.g. a request refused for its size, must not leave its room behind).
fn headroom(n: usize) -> usize {
    (n + n / 8).min(MAX_RESERVED)
}

/// Most room (elements, or bytes of string data) a builder keeps for the next batch.
const MAX_RESERVED: usize = 32 << 20;

fn field_type<'f>(fields: &'f Fields, name: &str) -> Result<&'f DataType, ArrowError> {
    fields.find(name).map(|(_, f)| f.data_type()).ok_or_else(|| schema_mismatch(name))
}

fn list_item(data_type: &DataType) -> Result<&FieldRef, ArrowError> {
    match data_type {
        DataType::List(item) => Ok(item),
        _ => Err(schema_mismatch("list")),
    }
}

fn struct_fields(data_type: &DataType) -> Result<&Fields, ArrowError> {
    match data_type {
        DataType::Struct(fields) => Ok(fields),
        _ => Err(schema_mismatch("struct")),
    }
}

fn schema_mismatch(what: &str) -> ArrowError {
    ArrowError::SchemaError(format!("spans schema has no {what} where the column builder expects one"))
}
