//! Building blocks of the contracts' schemas: Delta columns as Spark/Databricks create them from SQL DDL (every
//! column nullable), and the Arrow schema a row builder makes batches of, derived from the Delta schema.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
use deltalake::kernel::{DataType as DeltaType, StructField, StructType};

use super::bags::variant::annotate_variants;
use super::repeated::as_views;

/// A nullable column.
pub(super) fn field(name: &str, data_type: impl Into<DeltaType>) -> StructField {
    StructField::new(name, data_type, true)
}

pub(super) fn structure(fields: Vec<StructField>) -> StructType {
    // Field names are distinct literals: `try_new` only fails on duplicates.
    StructType::try_new(fields).unwrap_or_else(|e| unreachable!("static schema is valid: {e}"))
}

/// The Arrow schema batches of a table are built in: the Delta kernel's own conversion of its Delta schema (child
/// names `element`, `key_value` as Delta readers expect), with the `repeated` top-level columns (resource and scope
/// values, stored once per request) as views (`Utf8View`: the same Parquet `STRING`) and VARIANT columns annotated
/// for the Parquet writer.
pub(super) fn arrow_schema_of(delta: &StructType, repeated: &[&str]) -> SchemaRef {
    let schema: arrow::datatypes::Schema =
        delta.try_into_arrow().unwrap_or_else(|e| unreachable!("static schema converts to Arrow: {e}"));
    let fields = schema.fields().iter().map(|f| {
        let f = annotate_variants(f);
        match repeated.contains(&f.name().as_str()) {
            true => Arc::new(f.clone().with_data_type(as_views(f.data_type()))),
            false => Arc::new(f),
        }
    });
    Arc::new(arrow::datatypes::Schema::new_with_metadata(fields.collect::<Vec<_>>(), schema.metadata().clone()))
}
