//! The v1 OpenTelemetry spans table (Databricks' legacy layout): its Delta schema, the Arrow schema derived from
//! it, its row builder's choices ([`V1`]), how its Parquet files are tuned and which columns carry file statistics.
//!
//! Every column is nullable, as Spark/Databricks create them from the SQL DDL (`STRING`, `MAP<STRING,STRING>`
//! with nullable values, arrays with nullable elements): a table we create is one Databricks would create, and a
//! table Databricks created passes our check.

use std::sync::LazyLock;

use arrow::datatypes::SchemaRef;
use deltalake::kernel::{DataType, MapType, StructType};

use super::{
    span_columns, SpanColumns, SpanLayout, BLOOM_FILTERS, MIN_MAX_COLUMNS, NO_DICTIONARY, NO_STATISTICS,
    NULL_COUNT_COLUMNS, REPEATED,
};
use crate::table::bags::map::{MapColumn, RepeatedMap};
use crate::table::schema::{arrow_schema_of, structure};
use crate::table::{Contract, FileStatColumns, Layout, Leaves, ParquetTuning, Signal};

pub(in crate::table) static CONTRACT: Contract = Contract {
    signal: Signal::Traces,
    layout: Layout::V1,
    name_suffix: "otel_spans",
    comment: "OpenTelemetry spans (otel-delta, v1 layout)",
    delta_schema,
    arrow_schema,
    row_builder: || Box::new(SpanColumns::<V1>::new()),
    parquet: ParquetTuning {
        no_dictionary: &[NO_DICTIONARY],
        no_statistics: &[MAP_NO_STATISTICS, NO_STATISTICS],
        bloom_filters: BLOOM_FILTERS,
    },
    file_stats: FileStatColumns { min_max: &[MIN_MAX_COLUMNS], null_count: &[NULL_COUNT_COLUMNS] },
};

/// The v1 layout: attribute bags as `MAP<STRING,STRING>`, short enum names, a root span's parent as `""`.
pub(crate) struct V1;

impl SpanLayout for V1 {
    type Bag = MapColumn;
    type Repeated = RepeatedMap;
    const LEADING: bool = false;
    const ROOT_PARENT_IS_NULL: bool = false;

    fn arrow_schema() -> SchemaRef {
        arrow_schema()
    }

    /// Span kind as the v1 table names it; unknown kinds are `INTERNAL` (what the Python app this replaces wrote,
    /// so existing v1 tables stay consistent).
    fn kind_name(kind: i32) -> &'static str {
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
    fn status_code_name(code: i32) -> &'static str {
        match code {
            1 => "OK",
            2 => "ERROR",
            _ => "UNSET",
        }
    }
}

/// The attribute maps' leaves: the keys and values of every key share one column, so min/max bound nothing a
/// query can use.
const MAP_NO_STATISTICS: Leaves = &[
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
];

fn build() -> StructType {
    structure(span_columns(MapType::new(DataType::STRING, DataType::STRING, true).into()))
}

static DELTA: LazyLock<StructType> = LazyLock::new(build);

static ARROW: LazyLock<SchemaRef> = LazyLock::new(|| arrow_schema_of(&DELTA, REPEATED));

/// The Delta schema of the spans table.
fn delta_schema() -> &'static StructType {
    &DELTA
}

/// The Arrow schema record batches are built in: the Delta kernel's own conversion of [`delta_schema`], so
/// child names (`element`, `key_value`) are what Delta readers expect, with the resource and scope strings as
/// `Utf8View` (the same Parquet `STRING`).
pub(in crate::table) fn arrow_schema() -> SchemaRef {
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
