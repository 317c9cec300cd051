//! The v1 OpenTelemetry spans table (Databricks' legacy layout): its Delta schema, the Arrow schema derived from
//! it, its row builder ([`SpanColumns`]), how its Parquet files are tuned and which columns carry file statistics.
//!
//! Every column is nullable, as Spark/Databricks create them from the SQL DDL (`STRING`, `MAP<STRING,STRING>`
//! with nullable values, arrays with nullable elements): a table we create is one Databricks would create, and a
//! table Databricks created passes our check.

mod columns;
mod values;

use std::sync::{Arc, LazyLock};

use arrow::datatypes::SchemaRef;
use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
use deltalake::kernel::{ArrayType, DataType, MapType, StructField, StructType};

use super::repeated::as_views;
use super::{Contract, FileStatColumns, Layout, ParquetTuning, RowBuilder, Signal};
use crate::decode::{DecodeError, Summary};
pub use columns::SpanColumns;

pub(super) static CONTRACT: Contract = Contract {
    signal: Signal::Traces,
    layout: Layout::V1,
    name_suffix: "otel_spans",
    comment: "OpenTelemetry spans (otel-delta, v1 layout)",
    delta_schema,
    arrow_schema,
    row_builder: || Box::new(SpanColumns::new()),
    parquet: ParquetTuning { no_dictionary: NO_DICTIONARY, no_statistics: NO_STATISTICS, bloom_filters: BLOOM_FILTERS },
    file_stats: FileStatColumns { min_max: MIN_MAX_COLUMNS, null_count: NULL_COUNT_COLUMNS },
};

impl RowBuilder for SpanColumns {
    fn append_request(&mut self, body: &[u8], limit: u64) -> Result<(Summary, u64), DecodeError> {
        SpanColumns::append_request_within(self, body, limit)
    }

    fn rows(&self) -> usize {
        SpanColumns::rows(self)
    }

    fn bytes(&self) -> u64 {
        SpanColumns::bytes(self)
    }

    fn finish(&mut self) -> Result<arrow::array::RecordBatch, arrow::error::ArrowError> {
        SpanColumns::finish(self)
    }
}

/// `trace_id` is looked up: a bloom filter per row group sized for 100k distinct traces at 1% false positives
/// (~120 KiB, folded down by the writer when fewer ids were seen). Sizing and its cost:
/// `docs/design-notes.md#bloom-filter`.
const BLOOM_FILTERS: &[(&str, u64, f64)] = &[("trace_id", 100_000, 0.01)];

/// Leaves whose values are (nearly) all distinct: a dictionary only costs time before the writer falls back to
/// plain encoding.
const NO_DICTIONARY: &[&str] = &[
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
/// name. Not here:
/// - attribute maps: the keys and values of every key share one column, so min/max bound nothing a query can use;
/// - span ids: random, so a page's range covers nearly all of them (looked up with their `trace_id` anyway);
/// - free text and near-constant strings nobody filters by (trace state, status message, schema URLs, scope
///   version).
const NO_STATISTICS: &[&str] = &[
    "attributes.key_value.key",
    "attributes.key_value.value",
    "events.list.element.attributes.key_value.key",
    "events.list.element.attributes.key_value.value",
    "links.list.element.attributes.key_value.key",
    "links.list.element.attributes.key_value.value",
    "resource.attributes.key_value.key",
    "resource.attributes.key_value.value",
    "instrumentation_scope.attributes.key_value.key",
    "instrumentation_scope.attributes.key_value.value",
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
const MIN_MAX_COLUMNS: &[&[&str]] = &[
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
const NULL_COUNT_COLUMNS: &[&[&str]] = &[
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

fn attributes() -> DataType {
    MapType::new(DataType::STRING, DataType::STRING, true).into()
}

fn field(name: &str, data_type: impl Into<DataType>) -> StructField {
    StructField::new(name, data_type, true)
}

fn structure(fields: Vec<StructField>) -> StructType {
    // Field names are distinct literals: `try_new` only fails on duplicates.
    StructType::try_new(fields).unwrap_or_else(|e| unreachable!("static schema is valid: {e}"))
}

fn build() -> StructType {
    let event = structure(vec![
        field("time_unix_nano", DataType::LONG),
        field("name", DataType::STRING),
        field("attributes", attributes()),
        field("dropped_attributes_count", DataType::INTEGER),
    ]);
    let link = structure(vec![
        field("trace_id", DataType::STRING),
        field("span_id", DataType::STRING),
        field("trace_state", DataType::STRING),
        field("attributes", attributes()),
        field("dropped_attributes_count", DataType::INTEGER),
        field("flags", DataType::INTEGER),
    ]);
    let status = structure(vec![field("message", DataType::STRING), field("code", DataType::STRING)]);
    let resource =
        structure(vec![field("attributes", attributes()), field("dropped_attributes_count", DataType::INTEGER)]);
    let scope = structure(vec![
        field("name", DataType::STRING),
        field("version", DataType::STRING),
        field("attributes", attributes()),
        field("dropped_attributes_count", DataType::INTEGER),
    ]);
    structure(vec![
        field("trace_id", DataType::STRING),
        field("span_id", DataType::STRING),
        field("trace_state", DataType::STRING),
        field("parent_span_id", DataType::STRING),
        field("flags", DataType::INTEGER),
        field("name", DataType::STRING),
        field("kind", DataType::STRING),
        field("start_time_unix_nano", DataType::LONG),
        field("end_time_unix_nano", DataType::LONG),
        field("attributes", attributes()),
        field("dropped_attributes_count", DataType::INTEGER),
        field("events", ArrayType::new(DataType::from(event), true)),
        field("dropped_events_count", DataType::INTEGER),
        field("links", ArrayType::new(DataType::from(link), true)),
        field("dropped_links_count", DataType::INTEGER),
        field("status", status),
        field("resource", resource),
        field("resource_schema_url", DataType::STRING),
        field("instrumentation_scope", scope),
        field("span_schema_url", DataType::STRING),
    ])
}

static DELTA: LazyLock<StructType> = LazyLock::new(build);

/// Columns holding a resource's or scope's values, built as views of values stored once per request
/// (`table::repeated`).
const REPEATED: &[&str] = &["resource", "resource_schema_url", "instrumentation_scope", "span_schema_url"];

static ARROW: LazyLock<SchemaRef> = LazyLock::new(|| {
    let schema: arrow::datatypes::Schema =
        (&*DELTA).try_into_arrow().unwrap_or_else(|e| unreachable!("static schema converts to Arrow: {e}"));
    let fields = schema.fields().iter().map(|f| match REPEATED.contains(&f.name().as_str()) {
        true => Arc::new(f.as_ref().clone().with_data_type(as_views(f.data_type()))),
        false => f.clone(),
    });
    Arc::new(arrow::datatypes::Schema::new_with_metadata(fields.collect::<Vec<_>>(), schema.metadata().clone()))
});

/// The Delta schema of the spans table.
fn delta_schema() -> &'static StructType {
    &DELTA
}

/// The Arrow schema record batches are built in: the Delta kernel's own conversion of [`delta_schema`], so
/// child names (`element`, `key_value`) are what Delta readers expect, with the resource and scope strings as
/// `Utf8View` (the same Parquet `STRING`).
pub(super) fn arrow_schema() -> SchemaRef {
    ARROW.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_the_v1_columns_in_order() {
        let names: Vec<_> = delta_schema().fields().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "trace_id",
                "span_id",
                "trace_state",
                "parent_span_id",
                "flags",
                "name",
                "kind",
                "start_time_unix_nano",
                "end_time_unix_nano",
                "attributes",
                "dropped_attributes_count",
                "events",
                "dropped_events_count",
                "links",
                "dropped_links_count",
                "status",
                "resource",
                "resource_schema_url",
                "instrumentation_scope",
                "span_schema_url"
            ]
        );
        assert!(delta_schema().fields().all(|f| f.is_nullable()));
    }

    #[test]
    fn serializes_as_spark_types() {
        let json = serde_json::to_value(delta_schema()).unwrap();
        let attributes = &json["fields"][9]["type"];
        assert_eq!(attributes["type"], "map");
        assert_eq!(attributes["keyType"], "string");
        assert_eq!(attributes["valueContainsNull"], true);
        assert_eq!(json["fields"][7]["type"], "long");
        assert_eq!(json["fields"][4]["type"], "integer");
        assert_eq!(json["fields"][11]["type"]["type"], "array");
    }
}
