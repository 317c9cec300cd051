//! The v1 OpenTelemetry logs table (Databricks' legacy layout): its Delta schema, the Arrow schema derived from it,
//! its row builder's choices ([`V1`]), how its Parquet files are tuned and which columns carry file statistics.
//! Every column nullable, as for spans; the body is `STRING`.

use std::sync::LazyLock;

use arrow::datatypes::SchemaRef;
use deltalake::kernel::{DataType, MapType, StructType};

use super::{
    log_columns, LogColumns, LogLayout, BLOOM_FILTERS, MIN_MAX_COLUMNS, NO_DICTIONARY, NO_STATISTICS,
    NULL_COUNT_COLUMNS, REPEATED,
};
use crate::decode::logs::SEVERITY_NAMES;
use crate::table::bags::map::{MapColumn, RepeatedMap, TextColumn};
use crate::table::schema::{arrow_schema_of, structure};
use crate::table::{Contract, FileStatColumns, Layout, Leaves, ParquetTuning, Signal};

pub(in crate::table) static CONTRACT: Contract = Contract {
    signal: Signal::Logs,
    layout: Layout::V1,
    name_suffix: "otel_logs",
    comment: "OpenTelemetry logs (otel-delta, v1 layout)",
    delta_schema,
    arrow_schema,
    row_builder: || Box::new(LogColumns::<V1>::new()),
    parquet: ParquetTuning {
        no_dictionary: &[NO_DICTIONARY],
        no_statistics: &[MAP_NO_STATISTICS, NO_STATISTICS],
        bloom_filters: BLOOM_FILTERS,
    },
    file_stats: FileStatColumns { min_max: &[MIN_MAX_COLUMNS], null_count: &[NULL_COUNT_COLUMNS] },
};

/// The v1 layout: attribute bags as `MAP<STRING,STRING>`, the body as text, severity names without their prefix,
/// absent ids as `""`.
pub(crate) struct V1;

impl LogLayout for V1 {
    type Bag = MapColumn;
    type Repeated = RepeatedMap;
    type Body = TextColumn;
    const LEADING: bool = false;
    const ABSENT_ID_IS_NULL: bool = false;

    fn arrow_schema() -> SchemaRef {
        arrow_schema()
    }

    /// `INFO`, `WARN2`…; a number OTLP does not define is `UNSPECIFIED`.
    fn severity_name(number: i32) -> &'static str {
        usize::try_from(number).ok().and_then(|n| SEVERITY_NAMES.get(n)).copied().unwrap_or(SEVERITY_NAMES[0])
    }
}

/// The body (free text) and the attribute maps' leaves (keys and values of every key share one column): min/max
/// bound nothing a query can use.
const MAP_NO_STATISTICS: Leaves = &[
    "body",
    "attributes.key_value.key",
    "attributes.key_value.value",
    "resource.attributes.key_value.key",
    "resource.attributes.key_value.value",
    "instrumentation_scope.attributes.key_value.key",
    "instrumentation_scope.attributes.key_value.value",
];

fn build() -> StructType {
    let map = MapType::new(DataType::STRING, DataType::STRING, true);
    structure(log_columns(map.into(), DataType::STRING))
}

static DELTA: LazyLock<StructType> = LazyLock::new(build);

static ARROW: LazyLock<SchemaRef> = LazyLock::new(|| arrow_schema_of(&DELTA, REPEATED));

fn delta_schema() -> &'static StructType {
    &DELTA
}

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
                "event_name",
                "trace_id",
                "span_id",
                "time_unix_nano",
                "observed_time_unix_nano",
                "severity_number",
                "severity_text",
                "body",
                "attributes",
                "dropped_attributes_count",
                "flags",
                "resource",
                "resource_schema_url",
                "instrumentation_scope",
                "log_schema_url"
            ]
        );
        assert!(delta_schema().fields().all(|f| f.is_nullable()));
    }

    #[test]
    fn severity_names() {
        assert_eq!(V1::severity_name(9), "INFO");
        assert_eq!(V1::severity_name(24), "FATAL4");
        assert_eq!(V1::severity_name(25), "UNSPECIFIED");
        assert_eq!(V1::severity_name(-1), "UNSPECIFIED");
    }
}
