//! Delta per-file statistics (`add.stats`, PROTOCOL.md "Per-file Statistics"), accumulated batch by batch.
//!
//! Which columns get min/max and which only a null count is the table contract's choice
//! ([`FileStatColumns`]). Strings longer than [`MAX_STRING_STAT`] characters keep a truncated min (still a lower
//! bound) and no max, as a truncated max would not be an upper bound.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute;
use arrow::datatypes::{DataType, Date32Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use arrow::temporal_conversions::{date32_to_datetime, timestamp_us_to_datetime};
use serde_json::{Map, Value};

use crate::table::FileStatColumns;

/// Longest string kept in min/max statistics (Spark and delta-rs use 32 as well).
pub(crate) const MAX_STRING_STAT: usize = 32;

#[derive(Debug, Clone, PartialEq)]
enum Bound {
    Int(i64),
    Str(String),
    /// A UTC timestamp, microseconds since the epoch.
    Micros(i64),
    /// A date, days since the epoch.
    Days(i32),
}

#[derive(Debug, Clone, Default)]
struct ColumnStats {
    min: Option<Bound>,
    max: Option<Bound>,
    /// A string longer than the stat limit was the max at some point: no max is written.
    max_unknown: bool,
    null_count: u64,
}

/// Statistics of one data file.
#[derive(Debug, Clone)]
pub struct FileStats {
    pub num_records: u64,
    of: &'static FileStatColumns,
    columns: Vec<ColumnStats>,
}

static NO_COLUMNS: FileStatColumns = FileStatColumns { min_max: &[], null_count: &[] };

impl Default for FileStats {
    /// A row count only (no column statistics).
    fn default() -> Self {
        FileStats::new(&NO_COLUMNS)
    }
}

impl FileStats {
    /// Statistics of these columns.
    pub(crate) fn new(of: &'static FileStatColumns) -> Self {
        FileStats { num_records: 0, of, columns: vec![ColumnStats::default(); of.all().count()] }
    }

    /// Fold a batch (of the schema the columns were chosen from) into the statistics.
    pub(crate) fn update(&mut self, batch: &RecordBatch) {
        let with_min_max = self.of.min_max_len();
        self.num_records += batch.num_rows() as u64;
        for (i, path) in self.of.all().enumerate() {
            let Some(array) = column(batch, path) else { continue };
            let stats = &mut self.columns[i];
            stats.null_count += array.null_count() as u64;
            if i < with_min_max {
                let (min, max) = min_max(array.as_ref());
                merge(&mut stats.min, min, |new, old| new < old);
                if let Some(Bound::Str(s)) = &max {
                    if s.chars().count() > MAX_STRING_STAT {
                        stats.max_unknown = true;
                    }
                }
                merge(&mut stats.max, max, |new, old| new > old);
            }
        }
    }

    /// The `stats` JSON string of a Delta `add` action.
    pub(crate) fn to_json(&self) -> String {
        let mut min_values = Map::new();
        let mut max_values = Map::new();
        let mut null_count = Map::new();
        for (path, stats) in self.of.all().zip(&self.columns) {
            insert(&mut null_count, path, Value::from(stats.null_count));
            if let Some(min) = &stats.min {
                insert(&mut min_values, path, bound_json(min, Truncate::Prefix));
            }
            if let (Some(max), false) = (&stats.max, stats.max_unknown) {
                insert(&mut max_values, path, bound_json(max, Truncate::Never));
            }
        }
        let mut out = Map::new();
        out.insert("numRecords".into(), Value::from(self.num_records));
        out.insert("minValues".into(), Value::Object(min_values));
        out.insert("maxValues".into(), Value::Object(max_values));
        out.insert("nullCount".into(), Value::Object(null_count));
        Value::Object(out).to_string()
    }
}

enum Truncate {
    Prefix,
    Never,
}

fn bound_json(bound: &Bound, truncate: Truncate) -> Value {
    match (bound, truncate) {
        (Bound::Int(i), _) => Value::from(*i),
        (Bound::Str(s), Truncate::Prefix) => Value::from(s.chars().take(MAX_STRING_STAT).collect::<String>()),
        (Bound::Str(s), Truncate::Never) => Value::from(s.as_str()),
        // ISO 8601 at full (microsecond) precision: exact bounds both ways (Spark truncates to milliseconds and
        // widens the max on read, which only loosens an exact max).
        (Bound::Micros(v), _) => timestamp_us_to_datetime(*v)
            .map_or(Value::Null, |t| Value::from(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())),
        (Bound::Days(v), _) => {
            date32_to_datetime(*v).map_or(Value::Null, |t| Value::from(t.format("%Y-%m-%d").to_string()))
        }
    }
}

fn insert(map: &mut Map<String, Value>, path: &[&str], value: Value) {
    match path {
        [leaf] => {
            map.insert((*leaf).to_owned(), value);
        }
        [parent, rest @ ..] => {
            let child = map.entry((*parent).to_owned()).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(child) = child {
                insert(child, rest, value);
            }
        }
        [] => {}
    }
}

fn merge(slot: &mut Option<Bound>, new: Option<Bound>, better: impl Fn(&Bound, &Bound) -> bool) {
    match (slot.as_ref(), new) {
        (_, None) => {}
        (None, Some(new)) => *slot = Some(new),
        (Some(old), Some(new)) => {
            if better(&new, old) {
                *slot = Some(new);
            }
        }
    }
}

impl PartialOrd for Bound {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Bound::Int(a), Bound::Int(b)) => a.partial_cmp(b),
            (Bound::Str(a), Bound::Str(b)) => a.partial_cmp(b),
            (Bound::Micros(a), Bound::Micros(b)) => a.partial_cmp(b),
            (Bound::Days(a), Bound::Days(b)) => a.partial_cmp(b),
            _ => None,
        }
    }
}

fn column(batch: &RecordBatch, path: &[&str]) -> Option<arrow::array::ArrayRef> {
    let (first, rest) = path.split_first()?;
    let mut array = batch.column_by_name(first)?.clone();
    for name in rest {
        array = array.as_struct_opt()?.column_by_name(name)?.clone();
    }
    Some(array)
}

fn min_max(array: &dyn Array) -> (Option<Bound>, Option<Bound>) {
    match array.data_type() {
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            let s = |v: Option<&str>| v.map(|v| Bound::Str(v.to_owned()));
            (s(compute::min_string(a)), s(compute::max_string(a)))
        }
        DataType::Utf8View => {
            let a = array.as_string_view();
            let s = |v: Option<&str>| v.map(|v| Bound::Str(v.to_owned()));
            (s(compute::min_string_view(a)), s(compute::max_string_view(a)))
        }
        DataType::Int64 => {
            let a = array.as_primitive::<Int64Type>();
            (compute::min(a).map(Bound::Int), compute::max(a).map(Bound::Int))
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let a = array.as_primitive::<TimestampMicrosecondType>();
            (compute::min(a).map(Bound::Micros), compute::max(a).map(Bound::Micros))
        }
        DataType::Date32 => {
            let a = array.as_primitive::<Date32Type>();
            (compute::min(a).map(Bound::Days), compute::max(a).map(Bound::Days))
        }
        DataType::Int32 => {
            let a = array.as_primitive::<Int32Type>();
            let i = |v: Option<i32>| v.map(|v| Bound::Int(i64::from(v)));
            (i(compute::min(a)), i(compute::max(a)))
        }
        _ => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Date32Array, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    static TIME: FileStatColumns = FileStatColumns { min_max: &[&[&["time"], &["date"]]], null_count: &[] };

    #[test]
    fn times_and_dates_are_iso_8601_bounds() {
        let schema = Schema::new(vec![
            Field::new("time", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("date", DataType::Date32, true),
        ]);
        let time =
            TimestampMicrosecondArray::from(vec![Some(1_700_000_000_123_456), None, Some(1_700_000_000_000_001)])
                .with_timezone("UTC");
        let date = Date32Array::from(vec![Some(19_675), Some(19_676), None]);
        let batch = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(time), Arc::new(date)]).unwrap();
        let mut stats = FileStats::new(&TIME);
        stats.update(&batch);
        let json: Value = serde_json::from_str(&stats.to_json()).unwrap();
        assert_eq!(json["minValues"]["time"], "2023-11-14T22:13:20.000001Z");
        assert_eq!(json["maxValues"]["time"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(json["minValues"]["date"], "2023-11-14");
        assert_eq!(json["maxValues"]["date"], "2023-11-15");
        assert_eq!(json["nullCount"]["time"], 1);
    }
}
