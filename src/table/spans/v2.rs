//! The v2 OpenTelemetry spans table (Databricks' current layout, `otel.schemaVersion = v2`): four leading columns
//! (`record_id`, `time`, `date`, `service_name`), then the v1 columns with every attribute bag as VARIANT; enums by
//! their OTLP names (`SPAN_KIND_SERVER`, `STATUS_CODE_ERROR`) and a root span's `parent_span_id` NULL.
//!
//! Tables otel-delta creates in this layout are not clustered (`CLUSTER BY` needs the `clustering` and
//! `domainMetadata` table features, which the commit path does not write); the workspace's own v2 tables are.

use std::sync::LazyLock;

use arrow::datatypes::SchemaRef;
use deltalake::kernel::{DataType, StructType};

use super::{
    span_columns, SpanColumns, SpanLayout, BLOOM_FILTERS, MIN_MAX_COLUMNS, NO_DICTIONARY, NO_STATISTICS,
    NULL_COUNT_COLUMNS, REPEATED,
};
use crate::table::bags::variant::{RepeatedVariant, VariantColumn};
use crate::table::schema::{arrow_schema_of, field, structure};
use crate::table::{Contract, FileStatColumns, Layout, Leaves, ParquetTuning, Paths, Signal};

pub(in crate::table) static CONTRACT: Contract = Contract {
    signal: Signal::Traces,
    layout: Layout::V2,
    name_suffix: "otel_spans",
    comment: "OpenTelemetry spans (otel-delta, v2 layout)",
    delta_schema,
    arrow_schema,
    row_builder: || Box::new(SpanColumns::<V2>::new()),
    parquet: ParquetTuning {
        no_dictionary: &[LEADING_NO_DICTIONARY, NO_DICTIONARY],
        no_statistics: &[VARIANT_NO_STATISTICS, NO_STATISTICS],
        bloom_filters: BLOOM_FILTERS,
    },
    file_stats: FileStatColumns {
        min_max: &[LEADING_MIN_MAX, MIN_MAX_COLUMNS],
        null_count: &[LEADING_NULL_COUNT, NULL_COUNT_COLUMNS],
    },
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

/// The leading columns whose values are (nearly) all distinct.
const LEADING_NO_DICTIONARY: Leaves = &["record_id", "time"];

/// `record_id` (unique ids nobody ranges over) and the VARIANT bytes: a binary range bounds nothing a query can use.
const VARIANT_NO_STATISTICS: Leaves = &[
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
];

/// Min/max for the clustering columns `time`, `date` and `service_name` too.
const LEADING_MIN_MAX: Paths = &[&["time"], &["date"], &["service_name"]];

/// A null count only for the unique `record_id`.
const LEADING_NULL_COUNT: Paths = &[&["record_id"]];

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

static ARROW: LazyLock<SchemaRef> = LazyLock::new(|| arrow_schema_of(&DELTA, REPEATED));

fn delta_schema() -> &'static StructType {
    &DELTA
}

pub(in crate::table) fn arrow_schema() -> SchemaRef {
    ARROW.clone()
}
