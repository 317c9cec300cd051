//! table: the contract between otel-delta and the tables it writes, one [`Contract`] per signal and layout.
//!
//! A contract says everything the rest of the tree needs to know about a table and nothing else does:
//!
//! ```text
//!            Contract (signal × layout)
//!   ┌───────────────┬──────────────────┬─────────────────────┬───────────────────────────┐
//!   │ Delta schema  │ Arrow schema     │ table properties    │ row builder               │
//!   │ (commit,      │ (batches, encode,│ (otel.schemaVersion:│ (decoded request → Arrow  │
//!   │  databricks)  │  Zerobus records)│  create, recognize) │  rows, on the workers)    │
//!   └───────────────┴──────────────────┴─────────────────────┴───────────────────────────┘
//!            + Parquet tuning (dictionary, statistics, bloom filters) and Delta file-stat columns (encode)
//! ```
//!
//! Guarantees: a contract's row builder makes record batches of exactly its Arrow schema, which is the Delta
//! kernel's own conversion of its Delta schema (child names `element`, `key_value` as Delta readers expect), with
//! two in-memory choices that Parquet does not see: repeated resource and scope values as views (`repeated`) and
//! VARIANT columns tagged for the Parquet writer (`bags::variant`). [`Contract::difference`] accepts a table only
//! if it holds that schema (field metadata aside) and names no other layout. Adding a signal or a layout is one
//! more [`Contract`] in [`CONTRACTS`] and its row builder; the layouts differ in their attribute bags (`bags`), so a
//! signal's row builder is written once, generic over them (`spans`, `logs`), and v2's leading columns (`leading`)
//! and the schema helpers (`schema`) are shared by every signal.

mod bags;

pub(crate) use bags::variant::is_variant;
mod columns;
mod leading;
mod logs;
mod record_id;
mod repeated;
mod schema;
mod spans;

use std::fmt;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use deltalake::kernel::StructType;

use crate::decode::{DecodeError, Summary};

/// Rows of one table built from OTLP requests, as the batch workers build them (the benches and the reference
/// tests drive it directly).
pub struct Rows(Box<dyn RowBuilder>);

impl Rows {
    /// An empty builder of `contract`'s rows.
    pub fn new(contract: &'static Contract) -> Self {
        Rows(contract.row_builder())
    }

    /// Append the rows of one OTLP export request of the contract's signal (protobuf), checking all of it; an
    /// invalid request adds no row.
    pub fn append_request(&mut self, body: &[u8]) -> Result<Summary, DecodeError> {
        self.0.append_request(body, u64::MAX).map(|(summary, _)| summary)
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn rows(&self) -> usize {
        self.0.rows()
    }

    /// The rows so far as a record batch of the contract's Arrow schema; the builder starts empty again.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.0.finish()
    }
}

/// Table property that names the layout (`v1`: MAP attributes, Databricks' legacy layout; `v2`: VARIANT).
pub(crate) const LAYOUT_PROPERTY: &str = "otel.schemaVersion";

/// An OpenTelemetry signal, each in its own table (defined with the decoders, which read one request per signal).
pub use crate::decode::Signal;

/// A table layout, named as Databricks names them in `otel.schemaVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Layout {
    /// MAP attributes, as the original app and MLflow's first UC trace locations wrote.
    V1,
    /// VARIANT attributes and four leading columns, as the workspace creates tables today: the layout of a table
    /// otel-delta creates unless told otherwise.
    #[default]
    V2,
}

impl Layout {
    /// The value of [`LAYOUT_PROPERTY`].
    pub fn name(self) -> &'static str {
        match self {
            Layout::V1 => "v1",
            Layout::V2 => "v2",
        }
    }

    /// The table features (reader and writer alike) a table of this layout needs: VARIANT columns need
    /// `variantType`.
    pub(crate) fn table_features(self) -> &'static [&'static str] {
        match self {
            Layout::V1 => &[],
            Layout::V2 => &["variantType"],
        }
    }
}

/// Rows of one table under construction, appended request by request on a worker thread.
pub(crate) trait RowBuilder: Send {
    /// Append the rows of one OTLP export request (protobuf), checking the whole request on the way; returns the
    /// summary and the (estimated) bytes its rows take. An invalid request, or one whose rows would take more than
    /// `limit` bytes ([`DecodeError::RowsTooLarge`]), adds no row: the rows before it are kept.
    fn append_request(&mut self, body: &[u8], limit: u64) -> Result<(Summary, u64), DecodeError>;
    /// Rows appended since the last [`finish`](Self::finish).
    fn rows(&self) -> usize;
    /// Estimated bytes of those rows.
    fn bytes(&self) -> u64;
    /// The rows so far as a record batch of the contract's Arrow schema; the builder starts empty again.
    fn finish(&mut self) -> Result<RecordBatch, ArrowError>;
}

/// Leaf column paths (`a.b.c`).
pub(crate) type Leaves = &'static [&'static str];

/// Column paths into the schema, one part per level (a struct child has two parts).
pub(crate) type Paths = &'static [&'static [&'static str]];

/// How a table's Parquet files are tuned. Each list is given in groups (what a signal's layouts share, what one
/// layout adds), read as one.
#[derive(Debug)]
pub(crate) struct ParquetTuning {
    /// Leaves whose values are (nearly) all distinct: a dictionary only costs time.
    pub(crate) no_dictionary: &'static [Leaves],
    /// Leaves without min/max statistics: no reader can skip pages by them.
    pub(crate) no_statistics: &'static [Leaves],
    /// Leaves with a bloom filter per row group: (column, distinct values it is sized for, false-positive rate).
    pub(crate) bloom_filters: &'static [(&'static str, u64, f64)],
}

impl ParquetTuning {
    pub(crate) fn no_dictionary(&self) -> impl Iterator<Item = &'static str> {
        self.no_dictionary.iter().flat_map(|group| group.iter().copied())
    }

    pub(crate) fn no_statistics(&self) -> impl Iterator<Item = &'static str> {
        self.no_statistics.iter().flat_map(|group| group.iter().copied())
    }
}

/// Which columns get Delta per-file statistics (`add.stats`), in groups as [`ParquetTuning`]'s lists.
#[derive(Debug)]
pub(crate) struct FileStatColumns {
    /// min, max and null count.
    pub(crate) min_max: &'static [Paths],
    /// Null count only (nested, or long free text).
    pub(crate) null_count: &'static [Paths],
}

impl FileStatColumns {
    /// Every column with statistics: first those with min/max ([`Self::min_max_len`] of them), then null counts only.
    pub(crate) fn all(&self) -> impl Iterator<Item = &'static [&'static str]> {
        self.min_max.iter().chain(self.null_count).flat_map(|group| group.iter().copied())
    }

    /// How many columns get min/max.
    pub(crate) fn min_max_len(&self) -> usize {
        self.min_max.iter().map(|group| group.len()).sum()
    }
}

/// One table layout of one signal: what otel-delta writes there.
pub struct Contract {
    pub(crate) signal: Signal,
    pub(crate) layout: Layout,
    /// The table's name after `<prefix>_`, e.g. `otel_spans`.
    pub(crate) name_suffix: &'static str,
    /// The comment on tables otel-delta creates.
    pub(crate) comment: &'static str,
    delta_schema: fn() -> &'static StructType,
    arrow_schema: fn() -> SchemaRef,
    row_builder: fn() -> Box<dyn RowBuilder>,
    pub(crate) parquet: ParquetTuning,
    pub(crate) file_stats: FileStatColumns,
}

impl fmt::Debug for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.layout.name(), self.signal.rows())
    }
}

impl PartialEq for Contract {
    fn eq(&self, other: &Self) -> bool {
        (self.signal, self.layout) == (other.signal, other.layout)
    }
}

/// The word a signal's table is named with: `<prefix>_otel_spans`, `<prefix>_otel_logs`.
pub(crate) fn table_word(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "spans",
        Signal::Logs => "logs",
    }
}

/// Where the table of `signal` goes beside the spans table at `spans` (a folder URL): the last folder's `spans`
/// ending replaced by the signal's word (`…/app_otel_spans/` → `…/app_otel_logs/`), or `_<word>` appended
/// (`…/t/` → `…/t_logs/`). `None` when the URL names no folder.
pub(crate) fn beside_spans(spans: &url::Url, signal: Signal) -> Option<url::Url> {
    let word = table_word(signal);
    let name = spans.path_segments()?.rfind(|s| !s.is_empty())?;
    let name = match name.strip_suffix(table_word(Signal::Traces)) {
        Some(stem) => format!("{stem}{word}"),
        None => format!("{name}_{word}"),
    };
    let mut folder = spans.clone();
    if !folder.path().ends_with('/') {
        folder.set_path(&format!("{}/", folder.path()));
    }
    folder.join(&format!("../{name}/")).ok()
}

/// Every table otel-delta writes.
pub(crate) static CONTRACTS: &[&Contract] =
    &[&spans::v1::CONTRACT, &spans::v2::CONTRACT, &logs::v1::CONTRACT, &logs::v2::CONTRACT];

impl Contract {
    /// The v1 spans table.
    pub fn spans_v1() -> &'static Contract {
        &spans::v1::CONTRACT
    }

    /// The v2 spans table.
    pub fn spans_v2() -> &'static Contract {
        &spans::v2::CONTRACT
    }

    /// The spans table in `layout`.
    pub(crate) fn spans(layout: Layout) -> &'static Contract {
        match layout {
            Layout::V1 => &spans::v1::CONTRACT,
            Layout::V2 => &spans::v2::CONTRACT,
        }
    }

    /// The table of `signal` in `layout`.
    pub(crate) fn of(signal: Signal, layout: Layout) -> &'static Contract {
        match signal {
            Signal::Traces => Contract::spans(layout),
            Signal::Logs => Contract::logs(layout),
        }
    }

    /// The logs table in `layout`.
    pub fn logs(layout: Layout) -> &'static Contract {
        match layout {
            Layout::V1 => &logs::v1::CONTRACT,
            Layout::V2 => &logs::v2::CONTRACT,
        }
    }

    /// The table's Delta schema.
    pub fn delta_schema(&self) -> &'static StructType {
        (self.delta_schema)()
    }

    /// The Arrow schema of its record batches.
    pub(crate) fn arrow_schema(&self) -> SchemaRef {
        (self.arrow_schema)()
    }

    /// A new, empty row builder.
    pub(crate) fn row_builder(&self) -> Box<dyn RowBuilder> {
        (self.row_builder)()
    }

    /// The table properties otel-delta sets when it creates the table.
    pub(crate) fn properties(&self) -> [(&'static str, &'static str); 1] {
        [(LAYOUT_PROPERTY, self.layout.name())]
    }

    /// `Some(difference)` unless a table with these properties, partition columns and schema holds this
    /// contract's rows: the same columns (field metadata aside), not partitioned, and no other layout named.
    pub(crate) fn difference<'a>(
        &self,
        properties: impl IntoIterator<Item = (&'a String, &'a String)>,
        partition_columns: &[String],
        schema: &StructType,
    ) -> Option<String> {
        if let Some((_, layout)) = properties.into_iter().find(|(k, _)| *k == LAYOUT_PROPERTY) {
            if layout != self.layout.name() {
                return Some(format!("{LAYOUT_PROPERTY} is {layout:?}, this writer writes {:?}", self.layout.name()));
            }
        }
        if !partition_columns.is_empty() {
            return Some(format!("it is partitioned by {partition_columns:?}; the {} table is not", self.name_suffix));
        }
        schema_difference(schema, self.delta_schema())
    }
}

/// The first difference between two schemas, ignoring field metadata.
fn schema_difference(theirs: &StructType, ours: &StructType) -> Option<String> {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.remove("metadata");
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let json = |s: &StructType| {
        let mut v = serde_json::to_value(s).unwrap_or_default();
        strip(&mut v);
        v
    };
    if json(theirs) == json(ours) {
        return None;
    }
    let names = |s: &StructType| s.fields().map(|f| f.name().clone()).collect::<Vec<_>>();
    for field in ours.fields() {
        match theirs.field(field.name()) {
            None => return Some(format!("column {} is missing", field.name())),
            Some(t) if t.data_type() != field.data_type() || t.is_nullable() != field.is_nullable() => {
                return Some(format!(
                    "column {} is {} (nullable: {}), expected {} (nullable: {})",
                    field.name(),
                    t.data_type(),
                    t.is_nullable(),
                    field.data_type(),
                    field.is_nullable()
                ))
            }
            Some(_) => {}
        }
    }
    Some(format!("columns are {:?}, expected {:?}", names(theirs), names(ours)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::kernel::StructField;

    #[test]
    fn one_contract_per_signal_and_layout() {
        for (i, a) in CONTRACTS.iter().enumerate() {
            assert!(CONTRACTS[..i].iter().all(|b| (a.signal, a.layout) != (b.signal, b.layout)), "{a} twice");
        }
    }

    #[test]
    fn every_row_builder_makes_batches_of_its_arrow_schema() {
        for contract in CONTRACTS {
            let mut rows = contract.row_builder();
            let request = crate::testing::one_request(contract.signal);
            assert_eq!(rows.append_request(&request, u64::MAX).unwrap().0.accepted, 1);
            assert!(rows.bytes() > 0);
            assert_eq!(rows.append_request(&request, 1), Err(DecodeError::RowsTooLarge { limit: 1 }));
            let batch = rows.finish().unwrap();
            assert_eq!(batch.schema(), contract.arrow_schema(), "{contract}");
            assert_eq!(batch.num_rows(), 1, "{contract}: a request over the limit adds no row");
            assert_eq!(rows.bytes(), 0);
        }
    }

    #[test]
    fn a_signal_s_rows_need_its_request() {
        // The other signal's request, read as this one's: refused, or no row (the field numbers overlap).
        for contract in CONTRACTS {
            let other = match contract.signal {
                Signal::Traces => Signal::Logs,
                Signal::Logs => Signal::Traces,
            };
            let mut rows = contract.row_builder();
            let appended = rows.append_request(&crate::testing::one_request(other), u64::MAX);
            assert!(appended.map_or(true, |(summary, _)| summary.accepted == 0), "{contract}");
            assert_eq!(rows.finish().unwrap().num_rows(), 0, "{contract}");
        }
        assert_eq!(Contract::logs(Layout::V1).to_string(), "v1 log records");
        assert_eq!(Contract::logs(Layout::V2).name_suffix, "otel_logs");
        let beside = |url: &str| beside_spans(&url::Url::parse(url).unwrap(), Signal::Logs).map(|u| u.to_string());
        assert_eq!(beside("s3://b/w/app_otel_spans/").as_deref(), Some("s3://b/w/app_otel_logs/"));
        assert_eq!(beside("s3://b/w/t").as_deref(), Some("s3://b/w/t_logs/"));
        assert_eq!(beside("file:///w/spans/").as_deref(), Some("file:///w/logs/"));
        assert_eq!(beside("s3://b/"), None);
    }

    #[test]
    fn identical_schemas_have_no_difference() {
        let ours = Contract::spans_v1().delta_schema();
        assert_eq!(schema_difference(ours, ours), None);
    }

    #[test]
    fn a_changed_type_or_missing_column_is_named() {
        let ours = Contract::spans_v1().delta_schema();
        let fields = ours.fields().map(|f| {
            if f.name() == "flags" {
                StructField::new("flags", deltalake::kernel::DataType::LONG, true)
            } else {
                f.clone()
            }
        });
        let theirs = StructType::try_new(fields).unwrap();
        let diff = schema_difference(&theirs, ours).unwrap();
        assert!(diff.contains("flags") && diff.contains("long"), "{diff}");
        let theirs = StructType::try_new(ours.fields().filter(|f| f.name() != "links").cloned()).unwrap();
        let diff = schema_difference(&theirs, ours).unwrap();
        assert!(diff.contains("links") && diff.contains("missing"), "{diff}");
    }

    #[test]
    fn another_layout_or_a_partitioned_table_is_refused() {
        let spans = Contract::spans_v1();
        let v2 = [(LAYOUT_PROPERTY.to_owned(), "v2".to_owned())];
        let diff = spans.difference(v2.iter().map(|(k, v)| (k, v)), &[], spans.delta_schema()).unwrap();
        assert!(diff.contains("v2"), "{diff}");
        let diff = spans.difference([], &["name".to_owned()], spans.delta_schema()).unwrap();
        assert!(diff.contains("partitioned"), "{diff}");
        assert_eq!(spans.difference([], &[], spans.delta_schema()), None);
    }
}
