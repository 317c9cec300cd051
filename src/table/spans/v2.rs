//! The v2 OpenTelemetry spans table (Databricks' current layout, `otel.schemaVersion = v2`): four leading columns
//! (`record_id`, `time`, `date`, `service_name`), then the v1 columns with every attribute bag as VARIANT; enums by
//! their OTLP names (`SPAN_KIND_SERVER`, `STATUS_CODE_ERROR`) and a root span's `parent_span_id` NULL.
//!
//! Tables otel-delta creates in this layout are not clustered (`CLUSTER BY` needs the `clustering` and
//! `domainMetadata` table features, which the commit path does not write); the workspace's own v2 tables are.

use std::sync::LazyLock;

use arrow::datatypes::SchemaRef;
use deltalake::kernel::{DataType, StructType};

use super::{arrow_schema_of, field, span_columns, structure, SpanColumns, SpanLayout};
use crate::table::bags::variant::{RepeatedVariant, VariantColumn};
use crate::table::{Contract, FileStatColumns, Layout, ParquetTuning, Signal};

pub(in crate::table) static CONTRACT: Contract = Contract {
    signal: Signal::Traces,
    layout: Layout::V2,
    name_suffix: "otel_spans",
    comment: "OpenTelemetry spans (otel-delta, v2 layout)",
    delta_schema,
    arrow_schema,
    row_builder: || Box::new(SpanColumns::<V2>::new()),
    parquet: ParquetTuning { no_dictionary: NO_DICTIONARY, no_statistics: NO_STATISTICS, bloom_filters: BLOOM_FILTERS },
    file_stats: FileStatColumns { min_max: MIN_MAX_COLUMNS, null_count: NULL_COUNT_COLUMNS },
};

/// The v2 layout: attribute bags as VARIANT, the four leading columns, OTLP enum names, a root span's parent NULL.
pub(crate) struct V2;

impl SpanLayout for V2 {
    type Bag = VariantColumn;
    type Repeated = RepeatedVariant;
    const LEADING: bool = true;
    const ROOT_PARENT_IS_NULL: bool = true;

    fn arrow_schema() -> SchemaRef {
        arrow_schema()
    }

    /// The OTLP name of a span kind; a number OTLP does not define is `SPAN_KIND_UNSPECIFIED`.
    fn kind_name(kind: i32) -> &'static str {
        match kind {
            1 => "SPAN_KIND_INTERNAL",
            2 => "SPAN_KIND_SERVER",
            3 => "SPAN_KIND_CLIENT",
            4 => "SPAN_KIND_PRODUCER",
            5 => "SPAN_KIND_CONSUMER",
            _ => "SPAN_KIND_UNSPECIFIED",
        }
    }

    /// The OTLP name of a status code; a number OTLP does not define is `STATUS_CODE_UNSET`.
    fn status_code_name(code: i32) -> &'static str {
        match code {
            1 => "STATUS_CODE_OK",
            2 => "STATUS_CODE_ERROR",
            _ => "STATUS_CODE_UNSET",
        }
    }
}

/// As v1: `trace_id` is looked up (`docs/design-notes.md#bloom-filter`).
const BLOOM_FILTERS: &[(&str, u64, f64)] = &[("trace_id", 100_000, 0.01)];

/// As v1, plus the leading columns whose values are (nearly) all distinct.
const NO_DICTIONARY: &[&str] = &[
    "record_id",
    "time",
    "trace_id",
    "span_id",
    "parent_span_id",
    "start_time_unix_nano",
    "end_time_unix_nano",
    "events.list.element.time_unix_nano",
    "links.list.element.trace_id",
    "links.list.element.span_id",
];

/// As v1 (see there why), with VARIANT bytes instead of map keys and values: a binary range bounds nothing a
/// query can use.
const NO_STATISTICS: &[&str] = &[
    "record_id",
    "attributes.metadata",
    "attributes.value",
    "events.list.element.attributes.metadata",
    "events.list.element.attributes.value",
    "links.list.element.attributes.metadata",
    "links.list.element.attributes.value",
    "resource.attributes.metadata",
    "resource.attributes.value",
    "instrumentation_scope.attributes.metadata",
    "instrumentation_scope.attributes.value",
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

/// Delta file statistics with min/max: v1's, plus the clustering columns `time`, `date` and `service_name`.
const MIN_MAX_COLUMNS: &[&[&str]] = &[
    &["time"],
    &["date"],
    &["service_name"],
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

/// Delta file statistics with only a null count (nested, free text, or unique ids).
const NULL_COUNT_COLUMNS: &[&[&str]] = &[
    &["record_id"],
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

fn build() -> StructType {
    let mut columns = vec![
        field("record_id", DataType::STRING),
        field("time", DataType::TIMESTAMP),
        field("date", DataType::DATE),
        field("service_name", DataType::STRING),
    ];
    columns.extend(span_columns(DataType::unshredded_variant()));
    structure(columns)
}

static DELTA: LazyLock<StructType> = LazyLock::new(build);

static ARROW: LazyLock<SchemaRef> = LazyLock::new(|| arrow_schema_of(&DELTA));

fn delta_schema() -> &'static StructType {
    &DELTA
}

pub(in crate::table) fn arrow_schema() -> SchemaRef {
    ARROW.clone()
}
