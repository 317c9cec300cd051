//! The spans tables: one row per span, appended straight from the decoder's views, in either layout ([`v1`],
//! [`v2`]). One row builder serves both: the layouts differ in how attribute bags are stored (`bags`), in the
//! names of enums, in a root span's `parent_span_id`, and in v2's four leading columns ([`SpanLayout`]).
//!
//! Resource and scope attributes are stored once per `ResourceSpans` / `ScopeSpans` and referred to by each of
//! their spans. Arrays are assembled against the fields of the layout's Arrow schema, so the batch type is exactly
//! the table's.

pub(super) mod v1;
pub(super) mod v2;

use std::sync::Arc;

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, Int32Builder, Int64Builder, RecordBatch, StringBuilder, StructArray,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Fields, SchemaRef};
use arrow::error::ArrowError;
use deltalake::kernel::{ArrayType, DataType as DeltaType, StructField};

use super::bags::{BagColumn, RepeatedBagColumn};
use super::columns::{
    field_type, finish_list, hex_into, list_item, schema_mismatch, struct_fields, FinishSized, ROW_OVERHEAD,
};
use super::leading::Leading;
use super::repeated::RepeatedStrings;
use super::schema::{field, structure};
use super::{Leaves, Paths, RowBuilder};
use crate::decode::{DecodeError, Request, SpanView, Summary};

/// What a spans layout decides; the row builder does the rest.
pub(crate) trait SpanLayout: Send + 'static {
    /// How attribute bags are stored.
    type Bag: BagColumn;
    /// How resource and scope attribute bags are stored.
    type Repeated: RepeatedBagColumn;
    /// v2's four leading columns: `record_id`, `time`, `date`, `service_name`.
    const LEADING: bool;
    /// A root span's `parent_span_id`: NULL, or the empty string.
    const ROOT_PARENT_IS_NULL: bool;
    fn arrow_schema() -> SchemaRef;
    fn kind_name(kind: i32) -> &'static str;
    fn status_code_name(code: i32) -> &'static str;
}

/// Rows of a spans table under construction.
pub(crate) struct SpanColumns<L: SpanLayout> {
    schema: SchemaRef,
    leading: Option<Leading>,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    trace_state: StringBuilder,
    parent_span_id: StringBuilder,
    flags: Int32Builder,
    name: StringBuilder,
    kind: StringBuilder,
    start_time_unix_nano: Int64Builder,
    end_time_unix_nano: Int64Builder,
    attributes: L::Bag,
    dropped_attributes_count: Int32Builder,
    events: EventColumn<L::Bag>,
    dropped_events_count: Int32Builder,
    links: LinkColumn<L::Bag>,
    dropped_links_count: Int32Builder,
    status_message: StringBuilder,
    status_code: StringBuilder,
    resource_attributes: L::Repeated,
    resource_dropped_attributes_count: Int32Builder,
    resource_schema_url: RepeatedStrings,
    scope_name: RepeatedStrings,
    scope_version: RepeatedStrings,
    scope_attributes: L::Repeated,
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
    /// Reused for hex ids, so appending a span allocates nothing once it has grown.
    hex: String,
}

impl<L: SpanLayout> RowBuilder for SpanColumns<L> {
    fn append_request(&mut self, body: &[u8], limit: u64) -> Result<(Summary, u64), DecodeError> {
        SpanColumns::append_request_within(self, body, limit)
    }

    fn rows(&self) -> usize {
        SpanColumns::rows(self)
    }

    fn bytes(&self) -> u64 {
        SpanColumns::bytes(self)
    }

    fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        SpanColumns::finish(self)
    }
}

impl<L: SpanLayout> Default for SpanColumns<L> {
    fn default() -> Self {
        Self::new()
    }
}

impl<L: SpanLayout> SpanColumns<L> {
    pub fn new() -> Self {
        let leading = L::LEADING.then(Leading::new);
        SpanColumns {
            schema: L::arrow_schema(),
            leading,
            trace_id: StringBuilder::new(),
            span_id: StringBuilder::new(),
            trace_state: StringBuilder::new(),
            parent_span_id: StringBuilder::new(),
            flags: Int32Builder::new(),
            name: StringBuilder::new(),
            kind: StringBuilder::new(),
            start_time_unix_nano: Int64Builder::new(),
            end_time_unix_nano: Int64Builder::new(),
            attributes: L::Bag::new(),
            dropped_attributes_count: Int32Builder::new(),
            events: EventColumn::new(),
            dropped_events_count: Int32Builder::new(),
            links: LinkColumn::new(),
            dropped_links_count: Int32Builder::new(),
            status_message: StringBuilder::new(),
            status_code: StringBuilder::new(),
            resource_attributes: L::Repeated::new(),
            resource_dropped_attributes_count: Int32Builder::new(),
            resource_schema_url: RepeatedStrings::new(),
            scope_name: RepeatedStrings::new(),
            scope_version: RepeatedStrings::new(),
            scope_attributes: L::Repeated::new(),
            scope_dropped_attributes_count: Int32Builder::new(),
            span_schema_url: RepeatedStrings::new(),
            rows: 0,
            bytes: 0,
            kept: Vec::new(),
            broken: None,
            hex: String::new(),
        }
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn rows(&self) -> usize {
        self.rows + self.kept.iter().map(RecordBatch::num_rows).sum::<usize>()
    }

    /// Append one row per storable span of a request, checking the whole request on the way: the checks of
    /// [`crate::decode::validate`] (the same view code), in the same pass as the rows are built, so each request
    /// is parsed once. Spans with bad ids are skipped and counted as rejected, as `validate` counts them. A
    /// request whose rows would take more than `limit` bytes is refused with [`DecodeError::RowsTooLarge`].
    /// On success: the summary and the rows' bytes.
    ///
    /// On error the request adds no row: the rows before it are kept and the builders restart clean.
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
            let (resource_attributes, resource_cost) = self.resource_attributes.store(rs.resource.attributes)?;
            let resource_cost = resource_cost + rs.schema_url.len() as u64;
            let resource_schema_url = self.resource_schema_url.store(rs.schema_url);
            let service_name = match self.leading.as_mut() {
                Some(leading) => leading.store_service_name(rs.resource.attributes)?,
                None => None,
            };
            for ss in rs.scope_spans() {
                let ss = ss?;
                let (scope_attributes, scope_cost) = self.scope_attributes.store(ss.scope.attributes)?;
                let scope_cost =
                    scope_cost + (ss.scope.name.len() + ss.scope.version.len() + ss.schema_url.len()) as u64;
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
                    if let Some(leading) = self.leading.as_mut() {
                        leading.append(span.start_time_unix_nano, service_name);
                    }
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

    /// The span's own columns (everything but resource, scope and the leading columns). Fallible parts (attribute
    /// bags, events, links) come before the columns that follow them only in the schema's order, so a failure
    /// leaves every column consistent up to its own row count (see `cut_back`).
    fn append_span(&mut self, span: &SpanView<'_>) -> Result<(), DecodeError> {
        let hex = &mut self.hex;
        self.trace_id.append_value(hex_into(span.trace_id, hex));
        self.span_id.append_value(hex_into(span.span_id, hex));
        self.trace_state.append_value(span.trace_state);
        if span.parent_span_id.is_empty() && L::ROOT_PARENT_IS_NULL {
            self.parent_span_id.append_null();
        } else {
            self.parent_span_id.append_value(hex_into(span.parent_span_id, hex));
        }
        // `fixed32 flags` is stored bit for bit in a signed INT column.
        self.flags.append_value(span.flags as i32);
        self.name.append_value(span.name);
        self.kind.append_value(L::kind_name(span.kind));
        self.start_time_unix_nano.append_value(span.start_time_unix_nano as i64);
        self.end_time_unix_nano.append_value(span.end_time_unix_nano as i64);
        self.attributes.append(span.attributes())?;
        self.dropped_attributes_count.append_value(span.dropped_attributes_count as i32);
        for event in span.events() {
            self.events.append(&event?)?;
        }
        self.events.end_row();
        self.dropped_events_count.append_value(span.dropped_events_count as i32);
        for link in span.links() {
            self.links.append(&link?, &mut self.hex)?;
        }
        self.links.end_row();
        self.dropped_links_count.append_value(span.dropped_links_count as i32);
        self.status_message.append_value(span.status.message);
        self.status_code.append_value(L::status_code_name(span.status.code));
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
        let bag_type = field_type(fields, "attributes")?;

        let mut columns: Vec<ArrayRef> = Vec::with_capacity(fields.len());
        if let Some(leading) = self.leading.as_mut() {
            columns.extend(leading.finish()?);
        }
        columns.extend([
            self.trace_id.finish_sized(),
            self.span_id.finish_sized(),
            self.trace_state.finish_sized(),
            self.parent_span_id.finish_sized(),
            self.flags.finish_sized(),
            self.name.finish_sized(),
            self.kind.finish_sized(),
            self.start_time_unix_nano.finish_sized(),
            self.end_time_unix_nano.finish_sized(),
            self.attributes.finish(bag_type)?,
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
        ]);
        // Past `rows` a column may hold values of a request that failed half-way (see `cut_back`).
        let rows = std::mem::take(&mut self.rows);
        let columns = columns.into_iter().map(|c| if c.len() == rows { c } else { c.slice(0, rows) }).collect();
        RecordBatch::try_new(schema, columns)
    }
}

/// What a span's own columns take, estimated from its encoded size: ids double as hex, rendered values grow a
/// little; an upper bound for the usual span, checked before anything is appended.
fn span_cost(span: &SpanView<'_>) -> u64 {
    2 * span.encoded_len as u64 + ROW_OVERHEAD
}

/// The columns of a span row in both layouts (v2 puts its four leading columns before them), with attribute bags
/// of type `bag`. Every column is nullable, as Spark/Databricks create them from SQL DDL.
pub(super) fn span_columns(bag: DeltaType) -> Vec<StructField> {
    let attributes = || bag.clone();
    let event = structure(vec![
        field("time_unix_nano", DeltaType::LONG),
        field("name", DeltaType::STRING),
        field("attributes", attributes()),
        field("dropped_attributes_count", DeltaType::INTEGER),
    ]);
    let link = structure(vec![
        field("trace_id", DeltaType::STRING),
        field("span_id", DeltaType::STRING),
        field("trace_state", DeltaType::STRING),
        field("attributes", attributes()),
        field("dropped_attributes_count", DeltaType::INTEGER),
        field("flags", DeltaType::INTEGER),
    ]);
    let status = structure(vec![field("message", DeltaType::STRING), field("code", DeltaType::STRING)]);
    let resource =
        structure(vec![field("attributes", attributes()), field("dropped_attributes_count", DeltaType::INTEGER)]);
    let scope = structure(vec![
        field("name", DeltaType::STRING),
        field("version", DeltaType::STRING),
        field("attributes", attributes()),
        field("dropped_attributes_count", DeltaType::INTEGER),
    ]);
    vec![
        field("trace_id", DeltaType::STRING),
        field("span_id", DeltaType::STRING),
        field("trace_state", DeltaType::STRING),
        field("parent_span_id", DeltaType::STRING),
        field("flags", DeltaType::INTEGER),
        field("name", DeltaType::STRING),
        field("kind", DeltaType::STRING),
        field("start_time_unix_nano", DeltaType::LONG),
        field("end_time_unix_nano", DeltaType::LONG),
        field("attributes", attributes()),
        field("dropped_attributes_count", DeltaType::INTEGER),
        field("events", ArrayType::new(DeltaType::from(event), true)),
        field("dropped_events_count", DeltaType::INTEGER),
        field("links", ArrayType::new(DeltaType::from(link), true)),
        field("dropped_links_count", DeltaType::INTEGER),
        field("status", status),
        field("resource", resource),
        field("resource_schema_url", DeltaType::STRING),
        field("instrumentation_scope", scope),
        field("span_schema_url", DeltaType::STRING),
    ]
}

// ---- Parquet tuning and file statistics both layouts share (each layout adds its own columns' entries) ----

/// `trace_id` is looked up: a bloom filter per row group sized for 100k distinct traces at 1% false positives
/// (~120 KiB, folded down by the writer when fewer ids were seen). Sizing and its cost:
/// `docs/design-notes.md#bloom-filter`.
pub(super) const BLOOM_FILTERS: &[(&str, u64, f64)] = &[("trace_id", 100_000, 0.01)];

/// Leaves whose values are (nearly) all distinct: a dictionary only costs time before the writer falls back to
/// plain encoding.
pub(super) const NO_DICTIONARY: Leaves = &[
    "trace_id",
    "span_id",
    "parent_span_id",
    "start_time_unix_nano",
    "end_time_unix_nano",
    "events.list.element.time_unix_nano",
    "links.list.element.trace_id",
    "links.list.element.span_id",
];

/// Leaves without min/max statistics (computing them compares every string): they are kept only where a reader
/// can skip pages or row groups by them: ids used to find a trace, times, `name`, `kind`, `status.code`, the scope
/// name. Not here (besides each layout's attribute bags):
/// - span ids: random, so a page's range covers nearly all of them (looked up with their `trace_id` anyway);
/// - free text and near-constant strings nobody filters by (trace state, status message, schema URLs, scope
///   version).
pub(super) const NO_STATISTICS: Leaves = &[
    "span_id",
    "parent_span_id",
    "links.list.element.trace_id",
    "links.list.element.span_id",
    "trace_state",
    "links.list.element.trace_state",
    "status.message",
    "resource_schema_url",
    "span_schema_url",
    "instrumentation_scope.version",
];

/// Delta file statistics with min/max: the scalar columns readers filter on.
pub(super) const MIN_MAX_COLUMNS: Paths = &[
    &["trace_id"],
    &["span_id"],
    &["parent_span_id"],
    &["flags"],
    &["name"],
    &["kind"],
    &["start_time_unix_nano"],
    &["end_time_unix_nano"],
    &["dropped_attributes_count"],
    &["dropped_events_count"],
    &["dropped_links_count"],
    &["status", "code"],
    &["resource_schema_url"],
    &["instrumentation_scope", "name"],
    &["span_schema_url"],
];

/// Delta file statistics with only a null count (nested or long free text).
pub(super) const NULL_COUNT_COLUMNS: Paths = &[
    &["trace_state"],
    &["attributes"],
    &["events"],
    &["links"],
    &["status", "message"],
    &["resource", "attributes"],
    &["resource", "dropped_attributes_count"],
    &["instrumentation_scope", "version"],
    &["instrumentation_scope", "attributes"],
    &["instrumentation_scope", "dropped_attributes_count"],
];

/// Columns holding a resource's or scope's values, built as views of values stored once per request
/// (`table::repeated`).
pub(super) const REPEATED: &[&str] =
    &["service_name", "resource", "resource_schema_url", "instrumentation_scope", "span_schema_url"];

/// `events ARRAY<STRUCT<time_unix_nano, name, attributes, dropped_attributes_count>>`.
struct EventColumn<B> {
    offsets: Vec<i32>,
    time_unix_nano: Int64Builder,
    name: StringBuilder,
    attributes: B,
    dropped_attributes_count: Int32Builder,
}

impl<B: BagColumn> EventColumn<B> {
    fn new() -> Self {
        EventColumn {
            offsets: vec![0],
            time_unix_nano: Int64Builder::new(),
            name: StringBuilder::new(),
            attributes: B::new(),
            dropped_attributes_count: Int32Builder::new(),
        }
    }

    fn append(&mut self, event: &crate::decode::EventView<'_>) -> Result<(), DecodeError> {
        // Attributes first: the only part that can fail, so a failure appends none of the other fields.
        self.attributes.append(event.attributes)?;
        self.time_unix_nano.append_value(event.time_unix_nano as i64);
        self.name.append_value(event.name);
        self.dropped_attributes_count.append_value(event.dropped_attributes_count as i32);
        Ok(())
    }

    fn end_row(&mut self) {
        self.offsets.push(ArrayBuilder::len(&self.name) as i32);
    }

    fn finish(&mut self, list_type: &DataType, fields: &Fields) -> Result<ArrayRef, ArrowError> {
        let bag_type = fields.find("attributes").map(|(_, f)| f.data_type().clone());
        let bag_type = bag_type.ok_or_else(|| schema_mismatch("events.attributes"))?;
        let values = StructArray::try_new(
            fields.clone(),
            vec![
                self.time_unix_nano.finish_sized(),
                self.name.finish_sized(),
                self.attributes.finish(&bag_type)?,
                self.dropped_attributes_count.finish_sized(),
            ],
            None,
        )?;
        finish_list(list_type, &mut self.offsets, values)
    }
}

/// `links ARRAY<STRUCT<trace_id, span_id, trace_state, attributes, dropped_attributes_count, flags>>`.
struct LinkColumn<B> {
    offsets: Vec<i32>,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    trace_state: StringBuilder,
    attributes: B,
    dropped_attributes_count: Int32Builder,
    flags: Int32Builder,
}

impl<B: BagColumn> LinkColumn<B> {
    fn new() -> Self {
        LinkColumn {
            offsets: vec![0],
            trace_id: StringBuilder::new(),
            span_id: StringBuilder::new(),
            trace_state: StringBuilder::new(),
            attributes: B::new(),
            dropped_attributes_count: Int32Builder::new(),
            flags: Int32Builder::new(),
        }
    }

    fn append(&mut self, link: &crate::decode::LinkView<'_>, hex: &mut String) -> Result<(), DecodeError> {
        // Attributes first: the only part that can fail, so a failure appends none of the other fields.
        self.attributes.append(link.attributes)?;
        self.trace_id.append_value(hex_into(link.trace_id, hex));
        self.span_id.append_value(hex_into(link.span_id, hex));
        self.trace_state.append_value(link.trace_state);
        self.dropped_attributes_count.append_value(link.dropped_attributes_count as i32);
        self.flags.append_value(link.flags as i32);
        Ok(())
    }

    fn end_row(&mut self) {
        self.offsets.push(ArrayBuilder::len(&self.trace_id) as i32);
    }

    fn finish(&mut self, list_type: &DataType, fields: &Fields) -> Result<ArrayRef, ArrowError> {
        let bag_type = fields.find("attributes").map(|(_, f)| f.data_type().clone());
        let bag_type = bag_type.ok_or_else(|| schema_mismatch("links.attributes"))?;
        let values = StructArray::try_new(
            fields.clone(),
            vec![
                self.trace_id.finish_sized(),
                self.span_id.finish_sized(),
                self.trace_state.finish_sized(),
                self.attributes.finish(&bag_type)?,
                self.dropped_attributes_count.finish_sized(),
                self.flags.finish_sized(),
            ],
            None,
        )?;
        finish_list(list_type, &mut self.offsets, values)
    }
}
