//! The v2 OpenTelemetry logs table (Databricks' current layout, `otel.schemaVersion = v2`): four leading columns
//! (`record_id`, `time`, `date`, `service_name`), then the v1 columns with every attribute bag and the body as
//! VARIANT; severity numbers by their OTLP names (`SEVERITY_NUMBER_INFO`), absent ids NULL. Not clustered, for
//! the reason the v2 spans table is not.

use std::sync::LazyLock;

use arrow::datatypes::SchemaRef;
use deltalake::kernel::{DataType, StructType};

use super::{
    log_columns, LogColumns, LogLayout, BLOOM_FILTERS, MIN_MAX_COLUMNS, NO_DICTIONARY, NO_STATISTICS,
    NULL_COUNT_COLUMNS, REPEATED,
};
use crate::table::bags::variant::{RepeatedVariant, VariantColumn, VariantValueColumn};
use crate::table::schema::{arrow_schema_of, field, structure};
use crate::table::{Contract, FileStatColumns, Layout, Leaves, ParquetTuning, Paths, Signal};

pub(in crate::table) static CONTRACT: Contract = Contract {
    signal: Signal::Logs,
    layout: Layout::V2,
    name_suffix: "otel_logs",
    comment: "OpenTelemetry logs (otel-delta, v2 layout)",
    delta_schema,
    arrow_schema,
    row_builder: || Box::new(LogColumns::<V2>::new()),
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

/// The v2 layout: attribute bags and the body as VARIANT, the four leading columns, OTLP severity names, absent
/// ids NULL.
pub(crate) struct V2;

/// The OTLP names: `SEVERITY_NUMBER_` and v1's (`crate::decode::logs::SEVERITY_NAMES`).
const OTLP_SEVERITY_NAMES: [&str; 25] = [
    "SEVERITY_NUMBER_UNSPECIFIED",
    "SEVERITY_NUMBER_TRACE",
    "SEVERITY_NUMBER_TRACE2",
    "SEVERITY_NUMBER_TRACE3",
    "SEVERITY_NUMBER_TRACE4",
    "SEVERITY_NUMBER_DEBUG",
    "SEVERITY_NUMBER_DEBUG2",
    "SEVERITY_NUMBER_DEBUG3",
    "SEVERITY_NUMBER_DEBUG4",
    "SEVERITY_NUMBER_INFO",
    "SEVERITY_NUMBER_INFO2",
    "SEVERITY_NUMBER_INFO3",
    "SEVERITY_NUMBER_INFO4",
    "SEVERITY_NUMBER_WARN",
    "SEVERITY_NUMBER_WARN2",
    "SEVERITY_NUMBER_WARN3",
    "SEVERITY_NUMBER_WARN4",
    "SEVERITY_NUMBER_ERROR",
    "SEVERITY_NUMBER_ERROR2",
    "SEVERITY_NUMBER_ERROR3",
    "SEVERITY_NUMBER_ERROR4",
    "SEVERITY_NUMBER_FATAL",
    "SEVERITY_NUMBER_FATAL2",
    "SEVERITY_NUMBER_FATAL3",
    "SEVERITY_NUMBER_FATAL4",
];

impl LogLayout for V2 {
    type Bag = VariantColumn;
    type Repeated = RepeatedVariant;
    type Body = VariantValueColumn;
    const LEADING: bool = true;
    const ABSENT_ID_IS_NULL: bool = true;

    fn arrow_schema() -> SchemaRef {
        arrow_schema()
    }

    /// The OTLP name of a severity number; a number OTLP does not define is `SEVERITY_NUMBER_UNSPECIFIED`.
    fn severity_name(number: i32) -> &'static str {
        usize::try_from(number).ok().and_then(|n| OTLP_SEVERITY_NAMES.get(n)).copied().unwrap_or(OTLP_SEVERITY_NAMES[0])
    }
}

/// The leading columns whose values are (nearly) all distinct.
const LEADING_NO_DICTIONARY: Leaves = &["record_id", "time"];

/// `record_id` and the VARIANT bytes: a binary range bounds nothing a query can use.
const VARIANT_NO_STATISTICS: Leaves = &[
    "record_id",
    "body.metadata",
    "body.value",
    "attributes.metadata",
    "attributes.value",
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
    columns.extend(log_columns(DataType::unshredded_variant(), DataType::unshredded_variant()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::logs::SEVERITY_NAMES;

    #[test]
    fn names_follow_otlp_and_v1() {
        for (number, name) in OTLP_SEVERITY_NAMES.iter().enumerate() {
            assert_eq!(Some(SEVERITY_NAMES[number]), name.strip_prefix("SEVERITY_NUMBER_"));
        }
        assert_eq!(V2::severity_name(13), "SEVERITY_NUMBER_WARN");
        assert_eq!(V2::severity_name(99), "SEVERITY_NUMBER_UNSPECIFIED");
        let names: Vec<_> = delta_schema().fields().map(|f| f.name().as_str()).take(5).collect();
        assert_eq!(names, ["record_id", "time", "date", "service_name", "event_name"]);
    }
}
