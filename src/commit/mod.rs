//! commit: the Delta log. Opens (or creates) the spans table and appends uploaded files to it, many files per
//! commit.
//!
//! Contract:
//! - [`Table::open_or_create`] returns only for a table whose schema is the v1 spans schema and whose protocol
//!   we can write; anything else is refused with a message naming the difference. A table is never altered.
//! - [`Table::append`] returns `Ok(version)` once a log entry adding all the given files exists: from then on
//!   every Delta reader sees their rows. Concurrent writers are handled by Delta's put-if-absent log entries,
//!   retried at the next version (appends never conflict logically).
//! - Checkpoints are written off the ack path, every `delta.checkpointInterval` commits, followed by the cleanup
//!   of log entries older than `delta.logRetentionDuration` (when `delta.enableExpiredLogCleanup`, the default).
//! - [`Table::rearrange`] (compaction) commits only if every file it replaces is still in the table at the version
//!   it commits on; concurrent appends never make it fail, a concurrent rearrangement of the same files does.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, PROTOCOL};
use deltalake::kernel::{Action, Add, Remove, StructType};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::table::state::DeltaTableState;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use object_store::ObjectStore;
use url::Url;

use crate::batch::schema::{delta_schema, SCHEMA_VERSION, SCHEMA_VERSION_PROPERTY};
use crate::encode::FileStats;
use crate::store::Store;

/// Why the table could not be opened or appended to.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("opening the Delta table at {url}: {source}")]
    Open {
        url: Url,
        #[source]
        source: Box<DeltaTableError>,
    },
    #[error("creating the Delta table at {url}: {source}")]
    Create {
        url: Url,
        #[source]
        source: Box<DeltaTableError>,
    },
    #[error(
        "the table at {url} is not an otel-delta v1 spans table: {difference}. \
         Point --table at another location, or migrate the table; it is never altered"
    )]
    SchemaMismatch { url: Url, difference: String },
    #[error("the table at {url} needs a Delta protocol feature this writer lacks: {reason}")]
    Unwritable { url: Url, reason: String },
    #[error("committing {files} file(s) to the Delta log: {source}")]
    Append {
        files: usize,
        #[source]
        source: Box<DeltaTableError>,
    },
    #[error("reading the Delta log: {0}")]
    Read(#[source] Box<DeltaTableError>),
    #[error("rearranging files: {0} of the replaced files left the table meanwhile (another compaction?)")]
    Rearranged(usize),
}

/// A data file the table currently holds.
#[derive(Debug, Clone)]
pub struct ActiveFile {
    /// Path relative to the table root, as an object store path.
    pub path: String,
    pub size: u64,
    pub num_records: Option<u64>,
    /// `minValues.start_time_unix_nano` of its stats, if present.
    pub min_start_time: Option<i64>,
    /// Files with deletion vectors are never rewritten (their rows are not all live).
    pub has_deletion_vector: bool,
}

/// Commit attempts of a rearrangement before giving up (each against a freshly verified snapshot).
const REARRANGE_ATTEMPTS: usize = 30;

/// A data file uploaded under the table root, ready to be added to the log.
#[derive(Debug, Clone)]
pub struct UploadedFile {
    /// Path relative to the table root.
    pub path: String,
    pub size: u64,
    pub stats: FileStats,
}

/// Make s3://, s3a://, az://, abfss://, adl://, gs:// table URLs known to the Delta library (idempotent). Called
/// by [`Table::open_or_create`]; call it before opening such URLs with `deltalake` directly.
pub fn register_object_stores() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        deltalake::aws::register_handlers(None);
        deltalake::azure::register_handlers(None);
        deltalake::gcp::register_handlers(None);
    });
}

/// The spans table, as of the last version this process committed or read.
pub struct Table {
    url: Url,
    table: DeltaTable,
    store: Store,
    checkpoint_interval: u64,
    /// Set when a re-read found the table changed into something we must not write: every later append is refused.
    refused: Option<String>,
    /// Checkpoints being written in the background.
    checkpoints: tokio::task::JoinSet<()>,
}

/// How long [`Table::finish`] waits for checkpoints still being written.
const CHECKPOINT_DRAIN: std::time::Duration = std::time::Duration::from_secs(60);

impl Table {
    /// Open the table at `url`, creating it with the v1 spans schema if no table is there.
    pub async fn open_or_create(url: &Url, storage_options: HashMap<String, String>) -> Result<Self, CommitError> {
        Table::open_checked(url, &Backend::Options(storage_options), true).await
    }

    /// Open the existing table at `url` (for upkeep: never creates one).
    pub async fn open(url: &Url, storage_options: HashMap<String, String>) -> Result<Self, CommitError> {
        Table::open_checked(url, &Backend::Options(storage_options), false).await
    }

    /// Like [`Table::open_or_create`], through an object store built by the caller (rooted at the bucket or
    /// container of `url`), e.g. one whose credentials Unity Catalog vends.
    pub async fn open_or_create_on(url: &Url, store: Arc<dyn ObjectStore>) -> Result<Self, CommitError> {
        Table::open_checked(url, &Backend::Store(store), true).await
    }

    async fn open_checked(url: &Url, backend: &Backend, create_if_missing: bool) -> Result<Self, CommitError> {
        register_object_stores();
        let table = match backend.open(url).await {
            Ok(table) => table,
            Err(DeltaTableError::NotATable(_)) if create_if_missing => match create(url, backend).await {
                Ok(table) => table,
                // Another writer created it first: use theirs (and check it below).
                Err(_) => backend
                    .open(url)
                    .await
                    .map_err(|source| CommitError::Open { url: url.clone(), source: Box::new(source) })?,
            },
            Err(source) => return Err(CommitError::Open { url: url.clone(), source: Box::new(source) }),
        };
        let state =
            table.snapshot().map_err(|source| CommitError::Open { url: url.clone(), source: Box::new(source) })?;
        check_schema(state).map_err(|difference| CommitError::SchemaMismatch { url: url.clone(), difference })?;
        PROTOCOL
            .can_write_to(state)
            .map_err(|e| CommitError::Unwritable { url: url.clone(), reason: e.to_string() })?;
        let checkpoint_interval = state
            .metadata()
            .configuration()
            .get("delta.checkpointInterval")
            .and_then(|v| v.parse().ok())
            .filter(|&n: &u64| n > 0)
            .unwrap_or(100);
        let store = Store::new(table.log_store().object_store(None), url);
        Ok(Table {
            url: url.clone(),
            table,
            store,
            checkpoint_interval,
            refused: None,
            checkpoints: Default::default(),
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The table root's object store, for data files.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The version this process last saw.
    pub fn version(&self) -> Option<u64> {
        self.table.version()
    }

    /// The underlying Delta table (for upkeep operations).
    pub fn delta(&self) -> &DeltaTable {
        &self.table
    }

    /// Read the log up to its latest version.
    pub async fn refresh(&mut self) -> Result<(), CommitError> {
        self.table.update_state().await.map_err(|e| CommitError::Read(Box::new(e)))
    }

    /// The data files of the version last read.
    pub fn files(&self) -> Result<Vec<ActiveFile>, CommitError> {
        let state = self.table.snapshot().map_err(|e| CommitError::Read(Box::new(e)))?;
        Ok(state
            .log_data()
            .iter()
            .map(|f| ActiveFile {
                path: f.object_store_path().to_string(),
                size: f.size().max(0) as u64,
                num_records: f.num_records().map(|n| n as u64),
                min_start_time: f.stats().and_then(|s| min_start_time(&s)),
                has_deletion_vector: f.remove_action(false).deletion_vector.is_some(),
            })
            .collect())
    }

    /// Replace `removed` by `added` (the same rows, laid out anew) in one commit that changes no data. Appends
    /// committed meanwhile are kept; if any of `removed` is no longer in the table, nothing is committed.
    pub async fn rearrange(
        &mut self,
        removed: &[ActiveFile],
        added: &[UploadedFile],
        target_size: u64,
    ) -> Result<u64, CommitError> {
        let err = |source| CommitError::Append { files: added.len(), source: Box::new(source) };
        let now = chrono::Utc::now().timestamp_millis();
        let mut actions: Vec<Action> = added.iter().map(|f| add_action(f, now, false)).collect();
        actions.extend(removed.iter().map(|f| {
            Action::Remove(Remove {
                path: f.path.clone(),
                data_change: false,
                deletion_timestamp: Some(now),
                extended_file_metadata: Some(true),
                partition_values: Some(HashMap::new()),
                size: Some(f.size as i64),
                tags: None,
                deletion_vector: None,
                base_row_id: None,
                default_row_commit_version: None,
            })
        }));
        let operation = DeltaOperation::Optimize { predicate: None, target_size: target_size as i64 };
        let mut last_error = None;
        for _ in 0..REARRANGE_ATTEMPTS {
            // delta-rs does not treat two rearrangements removing the same file as a conflict (it ignores removes
            // without data change), which would duplicate rows. So: no blind retries. Each attempt commits on a
            // snapshot in which we checked that every replaced file is still live; a commit landing in between
            // fails the attempt (max_retries 0) and we check again.
            self.refresh().await?;
            let live: std::collections::HashSet<String> = self.files()?.into_iter().map(|f| f.path).collect();
            let gone = removed.iter().filter(|f| !live.contains(&f.path)).count();
            if gone > 0 {
                return Err(CommitError::Rearranged(gone));
            }
            let state: &DeltaTableState = self.table.snapshot().map_err(err)?;
            let properties = CommitProperties::default()
                .with_max_retries(0)
                .with_create_checkpoint(false)
                .with_cleanup_expired_logs(Some(false));
            let result = CommitBuilder::from(properties)
                .with_actions(actions.clone())
                .build(Some(state), self.table.log_store(), operation.clone())
                .await;
            match result {
                Ok(finalized) => {
                    let version = finalized.version();
                    self.table.state = Some(finalized.snapshot());
                    self.store
                        .sync_log_entry(&format!("_delta_log/{version:020}.json"))
                        .await
                        .map_err(|e| err(DeltaTableError::Generic(e.to_string())))?;
                    return Ok(version);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "rearrangement lost a commit race; checking again");
                    last_error = Some(e);
                }
            }
        }
        Err(err(last_error.unwrap_or_else(|| DeltaTableError::Generic("no attempt made".into()))))
    }

    /// Add `files` to the table in one commit; returns the committed version. If the commit fails (another writer
    /// changed the table's metadata, say), the table is read again, checked again, and the commit tried once more
    /// on the fresh state: a stale snapshot must not wedge the collector. Committing the same files twice cannot
    /// duplicate rows (a path is added once), so a retry after an ambiguous failure is safe.
    pub async fn append(&mut self, files: &[UploadedFile]) -> Result<u64, CommitError> {
        let err = |source| CommitError::Append { files: files.len(), source: Box::new(source) };
        if let Some(refused) = &self.refused {
            return Err(CommitError::Unwritable { url: self.url.clone(), reason: refused.clone() });
        }
        let now = chrono::Utc::now().timestamp_millis();
        let actions: Vec<Action> = files.iter().map(|f| add_action(f, now, true)).collect();
        let version = match self.commit_appends(actions.clone()).await {
            Ok(version) => version,
            Err(first) => {
                tracing::warn!(error = %first, "Delta commit failed; reading the table again and retrying once");
                match self.resync().await {
                    Ok(()) => {}
                    Err(e @ (CommitError::SchemaMismatch { .. } | CommitError::Unwritable { .. })) => {
                        tracing::error!(error = %e, "the table changed under the collector; refusing every append");
                        self.refused = Some(e.to_string());
                        return Err(e);
                    }
                    Err(e) => return Err(e),
                }
                self.commit_appends(actions).await.map_err(err)?
            }
        };
        // The log entry is the commit: on a local disk it must reach the platter before we acknowledge.
        self.store
            .sync_log_entry(&format!("_delta_log/{version:020}.json"))
            .await
            .map_err(|e| err(DeltaTableError::Generic(e.to_string())))?;
        Ok(version)
    }

    async fn commit_appends(&mut self, actions: Vec<Action>) -> Result<u64, DeltaTableError> {
        let state: &DeltaTableState = self.table.snapshot()?;
        // Checkpoints and log cleanup run after the ack (see `checkpoint_if_due`), so a failure there can
        // never turn a committed append into an error.
        let properties =
            CommitProperties::default().with_create_checkpoint(false).with_cleanup_expired_logs(Some(false));
        let operation = DeltaOperation::Write { mode: SaveMode::Append, partition_by: None, predicate: None };
        let finalized = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(state), self.table.log_store(), operation)
            .await?;
        let version = finalized.version();
        self.table.state = Some(finalized.snapshot());
        Ok(version)
    }

    /// Read the log to its latest version and check again that we may write the table.
    async fn resync(&mut self) -> Result<(), CommitError> {
        self.refresh().await?;
        let url = self.url.clone();
        let state = self.table.snapshot().map_err(|e| CommitError::Read(Box::new(e)))?;
        check_schema(state).map_err(|difference| CommitError::SchemaMismatch { url: url.clone(), difference })?;
        PROTOCOL.can_write_to(state).map_err(|e| CommitError::Unwritable { url, reason: e.to_string() })
    }

    /// Write a checkpoint in the background when `version` completes a checkpoint interval.
    pub fn checkpoint_if_due(&mut self, version: u64) {
        while self.checkpoints.try_join_next().is_some() {}
        if !(version + 1).is_multiple_of(self.checkpoint_interval) {
            return;
        }
        let table = self.table.clone();
        self.checkpoints.spawn(async move {
            if let Err(e) = deltalake::checkpoints::create_checkpoint(&table, None).await {
                tracing::warn!(version, error = %e, "Delta checkpoint failed; readers replay the JSON log");
                return;
            }
            tracing::info!(version, "wrote Delta checkpoint");
            let cleanup = table.snapshot().is_ok_and(|s| s.table_config().enable_expired_log_cleanup.unwrap_or(true));
            if cleanup {
                match deltalake::checkpoints::cleanup_metadata(&table, None).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(version, deleted = n, "removed expired Delta log entries"),
                    Err(e) => {
                        tracing::warn!(version, error = %e, "expired log cleanup failed; retried at the next checkpoint")
                    }
                }
            }
        });
    }
}

impl Table {
    /// Wait (bounded) for checkpoints still being written: a checkpoint cut off by the process exiting would be
    /// missing until the next interval.
    pub async fn finish(mut self) {
        let drained =
            tokio::time::timeout(CHECKPOINT_DRAIN, async { while self.checkpoints.join_next().await.is_some() {} })
                .await;
        if drained.is_err() {
            tracing::warn!("a Delta checkpoint was still being written at shutdown; abandoned");
        }
    }
}

fn add_action(file: &UploadedFile, modification_time: i64, data_change: bool) -> Action {
    Action::Add(Add {
        path: file.path.clone(),
        partition_values: HashMap::new(),
        size: file.size as i64,
        modification_time,
        data_change,
        stats: Some(file.stats.to_json()),
        tags: None,
        deletion_vector: None,
        base_row_id: None,
        default_row_commit_version: None,
        clustering_provider: None,
    })
}

/// `minValues.start_time_unix_nano` of a file's stats JSON.
fn min_start_time(stats: &str) -> Option<i64> {
    let stats: serde_json::Value = serde_json::from_str(stats).ok()?;
    stats.get("minValues")?.get("start_time_unix_nano")?.as_i64()
}

/// How a table's storage is reached.
enum Backend {
    /// Built by delta-rs from the URL scheme, these options and the environment.
    Options(HashMap<String, String>),
    /// Given, rooted at the bucket or container.
    Store(Arc<dyn ObjectStore>),
}

impl Backend {
    fn builder(&self, url: &Url) -> Result<DeltaTableBuilder, DeltaTableError> {
        let builder = DeltaTableBuilder::from_url(url.clone())?;
        Ok(match self {
            Backend::Options(options) => builder.with_storage_options(options.clone()),
            Backend::Store(store) => builder.with_storage_backend(store.clone(), url.clone()),
        })
    }

    async fn open(&self, url: &Url) -> Result<DeltaTable, DeltaTableError> {
        self.builder(url)?.load().await
    }
}

async fn create(url: &Url, backend: &Backend) -> Result<DeltaTable, CommitError> {
    let err = |source| CommitError::Create { url: url.clone(), source: Box::new(source) };
    backend
        .builder(url)
        .and_then(|b| b.build())
        .map_err(err)?
        .create()
        .with_table_name(table_name(url))
        .with_comment("OpenTelemetry spans (otel-delta, v1 layout)")
        .with_columns(delta_schema().fields().cloned())
        .with_configuration([(SCHEMA_VERSION_PROPERTY, Some(SCHEMA_VERSION))])
        .with_raise_if_key_not_exists(false)
        .with_save_mode(SaveMode::ErrorIfExists)
        // Two collectors starting on a new table race to create it: the loser must fail (and open the winner's
        // table), not retry its CREATE at the next version and write a second one.
        .with_commit_properties(CommitProperties::default().with_max_retries(0))
        .await
        .map_err(err)
}

fn table_name(url: &Url) -> String {
    url.path_segments().and_then(|mut s| s.rfind(|s| !s.is_empty())).unwrap_or("otel_spans").to_owned()
}

/// `Err(difference)` unless the table holds the v1 spans schema (field metadata aside) and, if it names a
/// layout, names v1.
fn check_schema(state: &DeltaTableState) -> Result<(), String> {
    if let Some(version) = state.metadata().configuration().get(SCHEMA_VERSION_PROPERTY) {
        if version != SCHEMA_VERSION {
            return Err(format!("{SCHEMA_VERSION_PROPERTY} is {version:?}, this writer writes {SCHEMA_VERSION:?}"));
        }
    }
    if !state.metadata().partition_columns().is_empty() {
        return Err(format!("it is partitioned by {:?}; the spans table is not", state.metadata().partition_columns()));
    }
    let theirs = state.schema();
    schema_difference(&theirs, delta_schema()).map_or(Ok(()), Err)
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
    let (theirs_json, ours_json) = (json(theirs), json(ours));
    if theirs_json == ours_json {
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
    use deltalake::kernel::{DataType, StructField};

    #[test]
    fn identical_schemas_have_no_difference() {
        assert_eq!(schema_difference(delta_schema(), delta_schema()), None);
    }

    #[test]
    fn a_changed_column_is_named() {
        let fields = delta_schema().fields().map(|f| {
            if f.name() == "flags" {
                StructField::new("flags", DataType::LONG, true)
            } else {
                f.clone()
            }
        });
        let theirs = StructType::try_new(fields).unwrap();
        let diff = schema_difference(&theirs, delta_schema()).unwrap();
        assert!(diff.contains("column flags is long"), "{diff}");
    }

    #[test]
    fn a_missing_column_is_named() {
        let theirs = StructType::try_new(delta_schema().fields().filter(|f| f.name() != "links").cloned()).unwrap();
        let diff = schema_difference(&theirs, delta_schema()).unwrap();
        assert!(diff.contains("column links is missing"), "{diff}");
    }
}
