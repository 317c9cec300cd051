//! upkeep: keeping otel-delta's tables healthy for years of appends, without a Spark cluster. Off the ack path.
//!
//! - [`optimize`] compacts small files: files below the target size are packed, in start-time order, into bins
//!   of about the target size; each bin is rewritten as one file (same rows, same order, our writer settings:
//!   bloom filter on `trace_id`, statistics) and committed as a data-change-free rearrangement
//!   ([`Table::rearrange`]). Concurrent appenders never conflict with it; a concurrent compaction of the same
//!   files makes one of the two give up instead of duplicating rows. Each rewrite checks its row count against the
//!   log's stats before anything is committed. On a row-tracked table each row keeps its id and commit version,
//!   written in the table's materialized row-tracking columns of the new file.
//! - [`vacuum`] deletes files the table no longer references (replaced by compaction, or orphans of failed
//!   uploads) once they are older than the retention (default 7 days, the Delta default, so readers of recent
//!   versions and uploads still in flight are safe).
//! - Checkpoints and expired-log cleanup run in the committer (see [`crate::commit`]).

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, FieldRef, Int64Type, Schema};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};

use crate::commit::{ActiveFile, CommitError, MaterializedRowIds, Table, UploadedFile};
use crate::encode::Codec;
use crate::store::{FileDestination, StoreError, UploadConfig};

/// Why upkeep failed.
#[derive(Debug, thiserror::Error)]
pub enum UpkeepError {
    #[error(transparent)]
    Commit(#[from] Box<CommitError>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading {path}")]
    Read {
        path: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("{path} is not in the table's layout")]
    Layout {
        path: String,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error("rewriting")]
    Write(#[source] parquet::errors::ParquetError),
    #[error("the rewrite task stopped")]
    Task(#[source] tokio::task::JoinError),
    #[error("retention {0:?} is out of range")]
    Retention(Duration),
    #[error("{path} holds {found} rows but the log says {expected}; not compacting it")]
    RowCount { path: String, found: u64, expected: u64 },
    #[error("{path}: its rows have no ids to carry over (no baseRowId, none materialized); not compacting it")]
    NoRowIds { path: String },
    #[error("vacuum: {0}")]
    Vacuum(#[source] deltalake::DeltaTableError),
}

/// Settings of a compaction run.
#[derive(Debug, Clone)]
pub struct OptimizeOptions {
    /// Files at or above this size are left alone; bins are filled up to it.
    pub target_file_size: u64,
    pub codec: Codec,
    pub upload: UploadConfig,
}

impl Default for OptimizeOptions {
    fn default() -> Self {
        OptimizeOptions {
            target_file_size: 128 * 1024 * 1024,
            codec: Codec::default(),
            upload: UploadConfig::default(),
        }
    }
}

/// What a compaction run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptimizeReport {
    pub files_before: usize,
    pub files_removed: usize,
    pub files_added: usize,
    pub rows_rewritten: u64,
    pub bytes_removed: u64,
    pub bytes_added: u64,
    /// Bins left as they were because of an error (logged): another compaction won, or a file we cannot read.
    pub bins_skipped: usize,
    pub last_version: Option<u64>,
}

impl std::fmt::Display for OptimizeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} file(s) before; {} small file(s) ({} bytes) rewritten as {} ({} bytes, {} rows); {} bin(s) skipped",
            self.files_before,
            self.files_removed,
            self.bytes_removed,
            self.files_added,
            self.bytes_added,
            self.rows_rewritten,
            self.bins_skipped
        )?;
        if let Some(v) = self.last_version {
            write!(f, "; table at version {v}")?;
        }
        Ok(())
    }
}

/// Group the files worth compacting: below the target size, in start-time order (so rewritten files keep
/// narrow time ranges), greedily packed up to the target. Only bins of two or more files are returned.
pub(crate) fn plan(files: &[ActiveFile], target_file_size: u64) -> Vec<Vec<ActiveFile>> {
    let mut small: Vec<&ActiveFile> =
        files.iter().filter(|f| f.size < target_file_size && !f.has_deletion_vector).collect();
    small.sort_by(|a, b| {
        (a.min_start_time.unwrap_or(i64::MAX), &a.path).cmp(&(b.min_start_time.unwrap_or(i64::MAX), &b.path))
    });
    let mut bins = Vec::new();
    let mut bin: Vec<ActiveFile> = Vec::new();
    let mut bin_size = 0u64;
    for file in small {
        if !bin.is_empty() && bin_size + file.size > target_file_size {
            bins.push(std::mem::take(&mut bin));
            bin_size = 0;
        }
        bin_size += file.size;
        bin.push(file.clone());
    }
    bins.push(bin);
    bins.retain(|b| b.len() >= 2);
    bins
}

/// Compact the table's small files. Runs while collectors append; see the module docs for the guarantees.
pub async fn optimize(table: &mut Table, options: &OptimizeOptions) -> Result<OptimizeReport, UpkeepError> {
    table.refresh().await.map_err(Box::new)?;
    // Before any file is rewritten: a table whose files cannot be replaced is left as it is.
    let row_ids = table.rewrites().map_err(Box::new)?;
    let files = table.files().map_err(Box::new)?;
    let mut report = OptimizeReport { files_before: files.len(), ..Default::default() };
    for bin in plan(&files, options.target_file_size) {
        let destination = FileDestination {
            store: table.store().clone(),
            runtime: tokio::runtime::Handle::current(),
            upload: options.upload,
            contract: table.contract(),
            codec: options.codec,
            hidden_columns: row_ids.as_ref().map(hidden_columns).unwrap_or_default(),
        };
        let inputs = bin.clone();
        let row_ids = row_ids.clone();
        let rewritten = tokio::task::spawn_blocking(move || rewrite(&inputs, &destination, row_ids.as_ref()))
            .await
            .map_err(UpkeepError::Task)
            .and_then(|r| r);
        let (file, rows) = match rewritten {
            Ok(done) => done,
            Err(e) => {
                tracing::warn!(error = %e, files = bin.len(), "compaction skipped a bin");
                report.bins_skipped += 1;
                continue;
            }
        };
        match table.rearrange(&bin, std::slice::from_ref(&file), options.target_file_size).await {
            Ok(version) => {
                report.files_removed += bin.len();
                report.bytes_removed += bin.iter().map(|f| f.size).sum::<u64>();
                report.files_added += 1;
                report.bytes_added += file.size;
                report.rows_rewritten += rows;
                report.last_version = Some(version);
                tracing::info!(version, replaced = bin.len(), rows, "compacted files");
                table.checkpoint_if_due(version);
            }
            Err(e) => {
                tracing::warn!(error = %e, "compaction of a bin not committed; its new file is deleted");
                report.bins_skipped += 1;
                if let Err(e) = table.store().delete(&file.path).await {
                    tracing::warn!(error = %e, path = file.path, "leaving an unreferenced file for vacuum");
                }
            }
        }
    }
    Ok(report)
}

/// The materialized row-tracking columns a rewritten file carries after the table's.
fn hidden_columns(row_ids: &MaterializedRowIds) -> Vec<FieldRef> {
    let column = |name: &str| Arc::new(Field::new(name, DataType::Int64, true));
    vec![column(&row_ids.row_id), column(&row_ids.commit_version)]
}

/// Rewrite `bin` as one file (on a blocking thread: reads and uploads go through the destination's runtime). With
/// `row_ids` (a row-tracked table), each row keeps its id and commit version in the materialized columns: the
/// value a file already materialized, else its `baseRowId` + the row's index and its `defaultRowCommitVersion`.
fn rewrite(
    bin: &[ActiveFile],
    destination: &FileDestination,
    row_ids: Option<&MaterializedRowIds>,
) -> Result<(UploadedFile, u64), UpkeepError> {
    let mut out = destination.create_file().map_err(UpkeepError::Write)?;
    let schema = destination.contract.arrow_schema();
    let hidden = row_ids.map(hidden_columns).unwrap_or_default();
    let out_schema = Arc::new(Schema::new(schema.fields().iter().chain(&hidden).cloned().collect::<Vec<_>>()));
    let mut rows = 0u64;
    for input in bin {
        let read_err = |source| UpkeepError::Read { path: input.path.clone(), source };
        let layout_err = |source| UpkeepError::Layout { path: input.path.clone(), source };
        let bytes: Bytes = destination.runtime.block_on(destination.store.get(&input.path))?;
        // Read in our Arrow types (whatever Arrow schema, if any, the file embeds), the file's columns in its own
        // order: the table's, and materialized row-tracking ones where an earlier rewrite (or Spark) wrote them.
        // A file of another layout fails here or below.
        let footer = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::new()).map_err(read_err)?;
        let read_schema = footer
            .schema()
            .fields()
            .iter()
            .map(|f| match schema.field_with_name(f.name()) {
                Ok(ours) => Ok(Arc::new(ours.clone())),
                Err(_) => hidden.iter().find(|h| h.name() == f.name()).cloned().ok_or_else(|| {
                    layout_err(arrow::error::ArrowError::SchemaError(format!("unexpected column {}", f.name())))
                }),
            })
            .collect::<Result<Vec<FieldRef>, _>>()?;
        // The footer read above, with our types: parsed once.
        let options = ArrowReaderOptions::new().with_schema(Arc::new(Schema::new(read_schema)));
        let metadata = ArrowReaderMetadata::try_new(footer.metadata().clone(), options).map_err(read_err)?;
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, metadata)
            .with_batch_size(8192)
            .build()
            .map_err(read_err)?;
        let mut found = 0u64;
        for batch in reader {
            let batch = batch.map_err(|e| read_err(e.into()))?;
            let mut columns = Vec::with_capacity(out_schema.fields().len());
            for field in schema.fields() {
                let column = batch.column_by_name(field.name()).ok_or_else(|| {
                    layout_err(arrow::error::ArrowError::SchemaError(format!("no column {}", field.name())))
                })?;
                columns.push(column.clone());
            }
            if let Some(row_ids) = row_ids {
                let first = found as i64;
                let kept = |name: &str| batch.column_by_name(name).and_then(|c| c.as_primitive_opt::<Int64Type>());
                let ids = carried(kept(&row_ids.row_id), batch.num_rows(), |i| {
                    input.base_row_id.and_then(|base| base.checked_add(first + i as i64))
                });
                if ids.null_count() > 0 {
                    return Err(UpkeepError::NoRowIds { path: input.path.clone() });
                }
                // A row with no commit version (none kept, no default) keeps none: readers then see NULL as before.
                let versions =
                    carried(kept(&row_ids.commit_version), batch.num_rows(), |_| input.default_row_commit_version);
                columns.push(Arc::new(ids));
                columns.push(Arc::new(versions));
            }
            // Same columns, our schema (and field metadata): a file of another layout is refused here.
            let batch = RecordBatch::try_new(out_schema.clone(), columns).map_err(layout_err)?;
            found += batch.num_rows() as u64;
            out.write(&batch).map_err(UpkeepError::Write)?;
        }
        if let Some(expected) = input.num_records.filter(|&n| n != found) {
            return Err(UpkeepError::RowCount { path: input.path.clone(), found, expected });
        }
        rows += found;
    }
    let (upload, stats) = out.finish().map_err(UpkeepError::Write)?;
    let path = upload.path.clone();
    let size = destination.runtime.block_on(upload.wait())?;
    Ok((UploadedFile { path, size, stats }, rows))
}

/// `rows` values: each one `kept` has, else `default(row)` (NULL if that is `None` too).
fn carried(kept: Option<&Int64Array>, rows: usize, default: impl Fn(usize) -> Option<i64>) -> Int64Array {
    (0..rows)
        .map(|i| match kept {
            Some(kept) if kept.is_valid(i) => Some(kept.value(i)),
            _ => default(i),
        })
        .collect()
}

/// What vacuum did (or, on a dry run, would do).
#[derive(Debug, Clone)]
pub struct VacuumReport {
    pub dry_run: bool,
    pub files: Vec<String>,
}

/// Delete files the table no longer references and that are older than `retention`. A retention shorter than
/// the table's `delta.deletedFileRetentionDuration` is refused unless `allow_short_retention`.
pub async fn vacuum(
    table: &Table,
    retention: Duration,
    dry_run: bool,
    allow_short_retention: bool,
) -> Result<VacuumReport, UpkeepError> {
    let retention = chrono::Duration::from_std(retention).map_err(|_| UpkeepError::Retention(retention))?;
    // The library's vacuum brackets the deletion with two log entries, which its commit path refuses on tables
    // only our own entries can write. Those entries are informational: there, the library plans and we delete.
    let plan_only = dry_run || table.writes_own_entries();
    let (_, metrics) = table
        .delta()
        .clone()
        .vacuum()
        .with_retention_period(retention)
        .with_enforce_retention_duration(!allow_short_retention)
        .with_mode(deltalake::operations::vacuum::VacuumMode::Full)
        .with_dry_run(plan_only)
        .await
        .map_err(UpkeepError::Vacuum)?;
    if plan_only && !dry_run {
        table.store().delete_all(&metrics.files_deleted).await?;
    }
    Ok(VacuumReport { dry_run, files: metrics.files_deleted })
}

/// Compact every `interval` until `stop` resolves (inside `serve`, on its own handle to the table).
pub(crate) async fn optimize_periodically(
    mut table: Table,
    options: OptimizeOptions,
    interval: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut stop = stop;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        match optimize(&mut table, &options).await {
            Ok(report) if report.files_removed > 0 => tracing::info!(%report, "scheduled optimize"),
            Ok(_) => tracing::debug!("scheduled optimize: nothing to compact"),
            Err(e) => tracing::warn!(error = %e, "scheduled optimize failed; trying again at the next interval"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64, start: i64) -> ActiveFile {
        ActiveFile {
            path: path.into(),
            size,
            num_records: Some(1),
            min_start_time: Some(start),
            has_deletion_vector: false,
            base_row_id: None,
            default_row_commit_version: None,
        }
    }

    #[test]
    fn small_files_are_packed_in_start_time_order_up_to_the_target() {
        let files = vec![
            file("d", 40, 4),
            file("big", 100, 0),
            file("a", 40, 1),
            file("c", 40, 3),
            file("b", 40, 2),
            file("e", 10, 5),
        ];
        let bins: Vec<Vec<String>> =
            plan(&files, 100).into_iter().map(|b| b.into_iter().map(|f| f.path).collect()).collect();
        // "big" is at the target already; a + b = 80 (c would pass 100); c + d + e = 90.
        assert_eq!(bins, vec![vec!["a", "b"], vec!["c", "d", "e"]]);
    }

    #[test]
    fn a_lone_small_file_or_a_deletion_vector_file_is_left_alone() {
        let mut with_dv = file("dv", 10, 0);
        with_dv.has_deletion_vector = true;
        assert!(plan(&[file("a", 10, 0), with_dv], 100).is_empty());
    }
}
