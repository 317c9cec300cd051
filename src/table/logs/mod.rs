//! The logs tables: one row per log record, appended straight from the decoder's views, in either layout ([`v1`],
//! [`v2`]). One row builder serves both, as for spans: the layouts differ in how attribute bags and the body are
//! stored (`bags`), in the names of severity numbers, in an absent id, and in v2's four leading columns
//! ([`LogLayout`]). Resource and scope are on every row, stored once per `ResourceLogs` / `ScopeLogs`.
//!
//! Mapping (`otel-tables.md`, and our choices where it is silent):
//! - ids lowercase hex; an absent (empty) `trace_id` / `span_id` is `""` in v1 (as v1's root `parent_span_id`)
//!   and NULL in v2 (as v2's root `parent_span_id`);
//! - `severity_number` by its OTLP name: v1 without the prefix (`INFO`, `WARN2`, as v1 names span kinds), v2 with
//!   it (`SEVERITY_NUMBER_INFO`); a number OTLP does not define is `UNSPECIFIED` / `SEVERITY_NUMBER_UNSPECIFIED`;
//! - `body`: v1 text as an attribute value is rendered (strings raw, other values JSON), v2 a VARIANT of the value;
//!   a record without a body (or with an unset one) has a NULL body;
//! - v2 `time`: `time_unix_nano`, or `observed_time_unix_nano` when the record's time is 0 (unknown);
//! - `flags` (`fixed32`) bit for bit in a signed INT, as spans' flags.
//!
//! Requests are checked while their rows are built, as [`crate::decode::validate_logs`] checks them; an invalid
//! request, or one over the byte limit, adds no row (the cut-back of `spans`).

pub(super) mod v1;
pub(super) mod v2;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int32Builder, Int64Builder, RecordBatch, StringBuilder, StructArray};
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use deltalake::kernel::{DataType as DeltaType, StructField};

use super::bags::{BagColumn, RepeatedBagColumn, ValueColumn};
use super::columns::{field_type, hex_into, struct_fields, FinishSized, ROW_OVERHEAD};
use super::leading::Leading;
use super::repeated::RepeatedStrings;
use super::schema::{field, structure};
use super::{Leaves, Paths, RowBuilder};
use crate::decode::logs::LogsRequest;
use crate::decode::{DecodeError, LogRecordView, Summary};

/// What a logs layout decides; the row builder does the rest.
pub(crate) trait LogLayout: Send + 'static {
    /// How attribute bags are stored.
    type Bag: BagColumn;
    /// How resource and scope attribute bags are stored.
    type Repeated: RepeatedBagColumn;
    /// How the body is stored.
    type Body: ValueColumn;
    /// v2's four leading columns: `record_id`, `time`, `date`, `service_name`.
    const LEADING: bool;
    /// An absent `trace_id` / `span_id`: NULL, or the empty string.
    const ABSENT_ID_IS_NULL: bool;
    fn arrow_schema() -> SchemaRef;
    fn severity_name(number: i32) -> &'static str;
}

/// Rows of a logs table under construction.
pub(crate) struct LogColumns<L: LogLayout> {
    schema: SchemaRef,
    leading: Option<Leading>,
    event_name: StringBuilder,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    time_unix_nano: Int64Builder,
    observed_time_unix_nano: Int64Builder,
    severity_number: StringBuilder,
    severity_text: StringBuilder,
    body: L::Body,
    attributes: L::Bag,
    dropped_attributes_count: Int32Builder,
    flags: Int32Builder,
    resource_attributes: L::Repeated,
    resource_dropped_attributes_count: Int32Builder,
    resource_schema_url: RepeatedStrings,
    scope_name: RepeatedStrings,
    scope_version: RepeatedStrings,
    scope_attributes: L::Repeated,
    scope_dropped_attributes_count: Int32Builder,
    log_schema_url: RepeatedStrings,
    /// Complete rows in the builders.
    rows: usize,
    /// Estimated bytes of the rows appended since the last `finish` (see `record_cost`).
    bytes: u64,
    /// Rows set aside when a request failed half-way, ahead of the builders' rows (see `cut_back`).
    kept: Vec<RecordBatch>,
    /// Setting rows aside failed (a schema bug, not an input error): the next `finish` reports it.
    broken: Option<ArrowError>,
    /// Reused for hex ids, so appending a record allocates nothing once it has grown.
    hex: String,
}

impl<L: LogLayout> RowBuilder for LogColumns<L> {
    fn append_request(&mut self, body: &[u8], limit: u64) -> Result<(Summary, u64), DecodeError> {
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

    fn rows(&self) -> usize {
        self.rows + self.kept.iter().map(RecordBatch::num_rows).sum::<usize>()
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }

    fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
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
}

impl<L: LogLayout> LogColumns<L> {
    pub(crate) fn new() -> Self {
        LogColumns {
            schema: L::arrow_schema(),
            leading: L::LEADING.then(Leading::new),
            event_name: StringBuilder::new(),
            trace_id: StringBuilder::new(),
            span_id: StringBuilder::new(),
            time_unix_nano: Int64Builder::new(),
            observed_time_unix_nano: Int64Builder::new(),
            severity_number: StringBuilder::new(),
            severity_text: StringBuilder::new(),
            body: L::Body::new(),
            attributes: L::Bag::new(),
            dropped_attributes_count: Int32Builder::new(),
            flags: Int32Builder::new(),
            resource_attributes: L::Repeated::new(),
            resource_dropped_attributes_count: Int32Builder::new(),
            resource_schema_url: RepeatedStrings::new(),
            scope_name: RepeatedStrings::new(),
            scope_version: RepeatedStrings::new(),
            scope_attributes: L::Repeated::new(),
            scope_dropped_attributes_count: Int32Builder::new(),
            log_schema_url: RepeatedStrings::new(),
            rows: 0,
            bytes: 0,
            kept: Vec::new(),
            broken: None,
            hex: String::new(),
        }
    }

    /// One row per storable log record, checking the whole request on the way (the checks of `validate_logs`, the
    /// same view code, in the same order). Records with bad ids are skipped and counted as rejected.
    fn append_all(&mut self, body: &[u8], limit: u64) -> Result<(Summary, u64), DecodeError> {
        let mut summary = Summary::default();
        let mut bytes = 0u64;
        for rl in LogsRequest::new(body).resource_logs() {
            let rl = rl?;
            let (resource_attributes, resource_cost) = self.resource_attributes.store(rl.resource.attributes)?;
            let resource_cost = resource_cost + rl.schema_url.len() as u64;
            let resource_schema_url = self.resource_schema_url.store(rl.schema_url);
            let service_name = match self.leading.as_mut() {
                Some(leading) => leading.store_service_name(rl.resource.attributes)?,
                None => None,
            };
            for sl in rl.scope_logs() {
                let sl = sl?;
                let (scope_attributes, scope_cost) = self.scope_attributes.store(sl.scope.attributes)?;
                let scope_cost =
                    scope_cost + (sl.scope.name.len() + sl.scope.version.len() + sl.schema_url.len()) as u64;
                let scope_name = self.scope_name.store(sl.scope.name);
                let scope_version = self.scope_version.store(sl.scope.version);
                let log_schema_url = self.log_schema_url.store(sl.schema_url);
                for record in sl.log_records() {
                    let record = record?;
                    if let Some(reason) = record.rejection() {
                        summary.rejected += 1;
                        summary.first_rejection.get_or_insert(reason);
                        continue;
                    }
                    // Checked before the record is appended: a refused request never grows a column past the limit.
                    bytes += record_cost(&record) + resource_cost + scope_cost;
                    if bytes > limit {
                        return Err(DecodeError::RowsTooLarge { limit });
                    }
                    self.append_record(&record)?;
                    if let Some(leading) = self.leading.as_mut() {
                        let time = match record.time_unix_nano {
                            0 => record.observed_time_unix_nano,
                            time => time,
                        };
                        leading.append(time, service_name);
                    }
                    self.resource_attributes.push(&resource_attributes);
                    self.resource_dropped_attributes_count.append_value(rl.resource.dropped_attributes_count as i32);
                    self.resource_schema_url.push(Some(resource_schema_url));
                    self.scope_name.push(Some(scope_name));
                    self.scope_version.push(Some(scope_version));
                    self.scope_attributes.push(&scope_attributes);
                    self.scope_dropped_attributes_count.append_value(sl.scope.dropped_attributes_count as i32);
                    self.log_schema_url.push(Some(log_schema_url));
                    self.rows += 1;
                    summary.accepted += 1;
                }
            }
        }
        Ok((summary, bytes))
    }

    /// After a failed request: set the complete rows before it aside and restart the builders empty. As for spans,
    /// every column is consistent up to its own row count (the body and attributes, the only fallible parts, append
    /// nothing when they fail), so cutting every column at `rows` drops exactly the failed request.
    fn cut_back(&mut self) {
        match self.finish_builders() {
            Ok(batch) if batch.num_rows() > 0 => self.kept.push(batch),
            Ok(_) => {}
            Err(e) => self.broken = Some(e),
        }
    }

    /// The record's own columns (everything but resource, scope and the leading columns).
    fn append_record(&mut self, record: &LogRecordView<'_>) -> Result<(), DecodeError> {
        self.event_name.append_value(record.event_name);
        for (column, id) in [(&mut self.trace_id, record.trace_id), (&mut self.span_id, record.span_id)] {
            if id.is_empty() && L::ABSENT_ID_IS_NULL {
                column.append_null();
            } else {
                column.append_value(hex_into(id, &mut self.hex));
            }
        }
        self.time_unix_nano.append_value(record.time_unix_nano as i64);
        self.observed_time_unix_nano.append_value(record.observed_time_unix_nano as i64);
        self.severity_number.append_value(L::severity_name(record.severity_number));
        self.severity_text.append_value(record.severity_text);
        self.body.append(&record.body)?;
        self.attributes.append(record.attributes())?;
        self.dropped_attributes_count.append_value(record.dropped_attributes_count as i32);
        // `fixed32 flags` is stored bit for bit in a signed INT column.
        self.flags.append_value(record.flags as i32);
        Ok(())
    }

    /// The builders' rows (the first `rows` of every column) as a record batch; the builders start empty.
    fn finish_builders(&mut self) -> Result<RecordBatch, ArrowError> {
        let schema = self.schema.clone();
        let fields = schema.fields();
        let resource_fields = struct_fields(field_type(fields, "resource")?)?;
        let scope_fields = struct_fields(field_type(fields, "instrumentation_scope")?)?;

        let mut columns: Vec<ArrayRef> = Vec::with_capacity(fields.len());
        if let Some(leading) = self.leading.as_mut() {
            columns.extend(leading.finish()?);
        }
        columns.extend([
            self.event_name.finish_sized(),
            self.trace_id.finish_sized(),
            self.span_id.finish_sized(),
            self.time_unix_nano.finish_sized(),
            self.observed_time_unix_nano.finish_sized(),
            self.severity_number.finish_sized(),
            self.severity_text.finish_sized(),
            self.body.finish(field_type(fields, "body")?)?,
            self.attributes.finish(field_type(fields, "attributes")?)?,
            self.dropped_attributes_count.finish_sized(),
            self.flags.finish_sized(),
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
            self.log_schema_url.finish()?,
        ]);
        // Past `rows` a column may hold values of a request that failed half-way (see `cut_back`).
        let rows = std::mem::take(&mut self.rows);
        let columns = columns.into_iter().map(|c| if c.len() == rows { c } else { c.slice(0, rows) }).collect();
        RecordBatch::try_new(schema, columns)
    }
}

/// What a record's own columns take, estimated from its encoded size as for spans (ids double as hex, rendered
/// values grow a little); checked before anything is appended.
fn record_cost(record: &LogRecordView<'_>) -> u64 {
    2 * record.encoded_len as u64 + ROW_OVERHEAD
}

/// The columns of a log row in both layouts (v2 puts its four leading columns before them), with attribute bags
/// of type `bag` and the body of type `body`. Every column is nullable, as Spark/Databricks create them from SQL
/// DDL.
pub(super) fn log_columns(bag: DeltaType, body: DeltaType) -> Vec<StructField> {
    let resource =
        structure(vec![field("attributes", bag.clone()), field("dropped_attributes_count", DeltaType::INTEGER)]);
    let scope = structure(vec![
        field("name", DeltaType::STRING),
        field("version", DeltaType::STRING),
        field("attributes", bag.clone()),
        field("dropped_attributes_count", DeltaType::INTEGER),
    ]);
    vec![
        field("event_name", DeltaType::STRING),
        field("trace_id", DeltaType::STRING),
        field("span_id", DeltaType::STRING),
        field("time_unix_nano", DeltaType::LONG),
        field("observed_time_unix_nano", DeltaType::LONG),
        field("severity_number", DeltaType::STRING),
        field("severity_text", DeltaType::STRING),
        field("body", body),
        field("attributes", bag),
        field("dropped_attributes_count", DeltaType::INTEGER),
        field("flags", DeltaType::INTEGER),
        field("resource", resource),
        field("resource_schema_url", DeltaType::STRING),
        field("instrumentation_scope", scope),
        field("log_schema_url", DeltaType::STRING),
    ]
}

/// Columns holding a resource's or scope's values, built as views of values stored once per request.
pub(super) const REPEATED: &[&str] =
    &["service_name", "resource", "resource_schema_url", "instrumentation_scope", "log_schema_url"];

// ---- Parquet tuning and file statistics both layouts share (each layout adds its own columns' entries) ----

/// `trace_id` is looked up to join a trace's logs: sized as the spans table's filter (most records of a request
/// share few traces, and many records have none).
pub(super) const BLOOM_FILTERS: &[(&str, u64, f64)] = &[("trace_id", 100_000, 0.01)];

/// Leaves whose values are (nearly) all distinct.
pub(super) const NO_DICTIONARY: Leaves = &["span_id", "time_unix_nano", "observed_time_unix_nano"];

/// Leaves without min/max statistics: random span ids, free text and near-constant strings nobody filters by
/// (severity text, schema URLs, scope version). Kept: trace ids, times, event name, severity number, scope name.
pub(super) const NO_STATISTICS: Leaves =
    &["span_id", "severity_text", "resource_schema_url", "log_schema_url", "instrumentation_scope.version"];

/// Delta file statistics with min/max: the scalar columns readers filter on.
pub(super) const MIN_MAX_COLUMNS: Paths = &[
    &["event_name"],
    &["trace_id"],
    &["time_unix_nano"],
    &["observed_time_unix_nano"],
    &["severity_number"],
    &["dropped_attributes_count"],
    &["flags"],
    &["resource_schema_url"],
    &["instrumentation_scope", "name"],
    &["log_schema_url"],
];

/// Delta file statistics with only a null count (nested, random or free text).
pub(super) const NULL_COUNT_COLUMNS: Paths = &[
    &["span_id"],
    &["severity_text"],
    &["body"],
    &["attributes"],
    &["resource", "attributes"],
    &["resource", "dropped_attributes_count"],
    &["instrumentation_scope", "version"],
    &["instrumentation_scope", "attributes"],
    &["instrumentation_scope", "dropped_attributes_count"],
];
