//! The v1 OpenTelemetry spans table (`otel-tables.md`), as a Delta schema and the Arrow schema derived from it.
//!
//! Every column is nullable, as Spark/Databricks create them from the SQL DDL (`STRING`, `MAP<STRING,STRING>`
//! with nullable values, arrays with nullable elements): a table we create is one Databricks would create, and a
//! table Databricks created passes our check.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::SchemaRef;
use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
use deltalake::kernel::{ArrayType, DataType, MapType, StructField, StructType};

/// Table property that marks the layout (`v1`: MAP attributes).
pub const SCHEMA_VERSION_PROPERTY: &str = "otel.schemaVersion";
pub const SCHEMA_VERSION: &str = "v1";

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

static ARROW: LazyLock<SchemaRef> = LazyLock::new(|| {
    let schema: arrow::datatypes::Schema =
        (&*DELTA).try_into_arrow().unwrap_or_else(|e| unreachable!("static schema converts to Arrow: {e}"));
    Arc::new(schema)
});

/// The Delta schema of the spans table.
pub fn delta_schema() -> &'static StructType {
    &DELTA
}

/// The Arrow schema record batches are built in: the Delta kernel's own conversion of [`delta_schema`], so
/// child names (`element`, `key_value`) are what Delta readers expect.
pub fn arrow_schema() -> SchemaRef {
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
