//! commit: the Delta log. Opens (or creates) the spans table and appends uploaded files to it, many files per
//! commit.
//!
//! Contract:
//! - [`Table::open_or_create`] returns only for a table that holds the rows of a contract the caller accepts
//!   ([`Wanted`]: one layout, or any layout of its signal) and whose protocol we can write; anything else is
//!   refused with a message naming the difference. A missing table is created (version 0 written by
//!   [`entry::create`], put-if-absent: of collectors racing to create it, one writes it and the others open it);
//!   an existing one is never altered.
//! - [`Table::append`] returns `Ok(version)` once a log entry adding all the given files exists: from then on
//!   every Delta reader sees their rows. Concurrent writers are handled by Delta's put-if-absent log entries,
//!   retried at the next version (appends never conflict logically).
//! - Checkpoints are written off the ack path, every `delta.checkpointInterval` commits, followed by the cleanup
//!   of log entries older than `delta.logRetentionDuration` (when `delta.enableExpiredLogCleanup`, the default).
//! - [`Table::rearrange`] (compaction) commits only if every file it replaces is still in the table at the version
//!   it commits on; concurrent appends never make it fail, a concurrent rearrangement of the same files does.
//! - Both go through the library's commit builder, or, for a table with writer features it refuses but an append
//!   can honour (the ones the Databricks workspace creates), through log entries written in [`entry`], under the
//!   same put-if-absent rule.

mod entry;

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, Remove};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::table::state::DeltaTableState;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use object_store::ObjectStore;
use url::Url;

pub(crate) use self::entry::MaterializedRowIds;
use self::entry::{CommitPath, LastEntry, Written};
use crate::encode::FileStats;
use crate::store::Store;
use crate::table::{Contract, CONTRACTS};

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
        "the table at {url} is not an otel-delta {contract} table: {difference}. \
         Point --table at another location, or migrate the table; it is never altered"
    )]
    SchemaMismatch { url: Url, contract: &'static Contract, difference: String },
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
    #[error("syncing log entry {version} to disk: {source}")]
    Sync {
        version: u64,
        #[source]
        source: crate::store::StoreError,
    },
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
    /// Row tracking: the id of the file's first row (the others follow in file order) and the version that last
    /// committed its rows, where the file has none materialized.
    pub base_row_id: Option<i64>,
    pub default_row_commit_version: Option<i64>,
}

/// Commit attempts of a rearrangement before giving up (each against a freshly verified snapshot).
const REARRANGE_ATTEMPTS: usize = 30;

/// Commit attempts of an append through our own log entries (the library's default is 15 retries).
const APPEND_ATTEMPTS: usize = 30;

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
    contract: &'static Contract,
    /// How the table was reached, to open another handle on it.
    backend: Backend,
    table: DeltaTable,
    /// Whether the library commits for us or we write the log entries (see [`entry`]).
    path: CommitPath,
    /// The last log entry we wrote ourselves.
    last_entry: Option<LastEntry>,
    store: Store,
    checkpoint_interval: u64,
    /// Set when a re-read found the table changed into something we must not write: every later append is refused.
    refused: Option<String>,
    /// Checkpoints being written in the background.
    checkpoints: tokio::task::JoinSet<()>,
}

/// How long [`Table::finish`] waits for checkpoints still being written.
const CHECKPOINT_DRAIN: std::time::Duration = std::time::Duration::from_secs(60);

/// The table a collector wants at its URL.
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    /// What a missing table is created as.
    create: &'static Contract,
    /// An existing table must hold exactly `create`'s rows (a layout was asked for), or any layout of its signal.
    exact: bool,
}

impl Wanted {
    /// A table of exactly this contract.
    pub fn exactly(contract: &'static Contract) -> Self {
        Wanted { create: contract, exact: true }
    }

    /// An existing table of `contract`'s signal in whichever layout it has; a missing one created as `contract`.
    pub fn any_layout(contract: &'static Contract) -> Self {
        Wanted { create: contract, exact: false }
    }
}

impl CommitError {
    /// There is no Delta table at the location (nothing to open).
    pub fn is_no_table(&self) -> bool {
        matches!(self, CommitError::Open { source, .. } if matches!(**source, DeltaTableError::NotATable(_)))
    }
}

impl Table {
    /// Open the table `wanted` at `url`, creating it if no table is there.
    pub async fn open_or_create(
        url: &Url,
        storage_options: HashMap<String, String>,
        wanted: Wanted,
    ) -> Result<Self, CommitError> {
        Table::open_checked(url, &Backend::Options(storage_options), Some(wanted)).await
    }

    /// Open the existing table at `url`, whichever otel-delta table it is (for upkeep: never creates one).
    pub async fn open(url: &Url, storage_options: HashMap<String, String>) -> Result<Self, CommitError> {
        Table::open_checked(url, &Backend::Options(storage_options), None).await
    }

    /// Like [`Table::open_or_create`], through an object store built by the caller (rooted at the bucket or
    /// container of `url`), e.g. one whose credentials Unity Catalog vends.
    pub(crate) async fn open_or_create_on(
        url: &Url,
        store: Arc<dyn ObjectStore>,
        wanted: Wanted,
    ) -> Result<Self, CommitError> {
        Table::open_checked(url, &Backend::Store(store), Some(wanted)).await
    }

    /// Open the table at `url`. With `wanted`: create it if none is there, and refuse it unless it holds rows
    /// `wanted` accepts; without: recognize which contract's rows it holds.
    async fn open_checked(url: &Url, backend: &Backend, wanted: Option<Wanted>) -> Result<Self, CommitError> {
        register_object_stores();
        let mut created = false;
        let table = match (backend.open(url).await, wanted) {
            (Ok(table), _) => table,
            (Err(DeltaTableError::NotATable(_)), Some(wanted)) => {
                created = create_table(url, backend, wanted.create).await?;
                if !created {
                    // Another writer created it first: use theirs (and check it below). An expected race.
                    tracing::info!(table = %url, "another writer created the table first; opening theirs");
                }
                backend
                    .open(url)
                    .await
                    .map_err(|source| CommitError::Open { url: url.clone(), source: Box::new(source) })?
            }
            (Err(source), _) => return Err(CommitError::Open { url: url.clone(), source: Box::new(source) }),
        };
        let state =
            table.snapshot().map_err(|source| CommitError::Open { url: url.clone(), source: Box::new(source) })?;
        let contract = recognize(state, wanted).map_err(|(contract, difference)| CommitError::SchemaMismatch {
            url: url.clone(),
            contract,
            difference,
        })?;
        let path = CommitPath::of(state).map_err(|reason| CommitError::Unwritable { url: url.clone(), reason })?;
        let checkpoint_interval = state
            .metadata()
            .configuration()
            .get("delta.checkpointInterval")
            .and_then(|v| v.parse().ok())
            .filter(|&n: &u64| n > 0)
            .unwrap_or(100);
        let store = Store::new(table.log_store().object_store(None), url);
        if created {
            // A table we created must survive a machine crash before anything is acknowledged in it.
            store.sync_created_table().await.map_err(|source| CommitError::Sync { version: 0, source })?;
        }
        Ok(Table {
            url: url.clone(),
            contract,
            backend: backend.clone(),
            table,
            path,
            last_entry: None,
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
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Another handle on the same table, through the same store (its own commits, e.g. for compaction).
    pub(crate) async fn open_again(&self) -> Result<Table, CommitError> {
        Table::open_checked(&self.url, &self.backend, Some(Wanted::exactly(self.contract))).await
    }

    /// Delete the staging files crashed uploads left behind (see [`Store::remove_stale_staging_files`]).
    pub(crate) async fn remove_stale_staging_files(&self, older_than: std::time::Duration) {
        match self.store.remove_stale_staging_files(older_than).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(files = n, "removed staging files of uploads a crash left behind"),
            Err(e) => tracing::warn!(error = %e, "could not remove stale upload staging files"),
        }
    }

    /// Whether appends go through log entries written here rather than the library's (see [`entry`]).
    pub(crate) fn writes_own_entries(&self) -> bool {
        matches!(self.path, CommitPath::Own(_))
    }

    /// How files of the table may be replaced by rewritten ones (compaction): as they are (`None`), or with their
    /// row ids materialized in the columns named; `Err` if not at all.
    pub(crate) fn rewrites(&self) -> Result<Option<MaterializedRowIds>, CommitError> {
        let refused = |reason| CommitError::Unwritable { url: self.url.clone(), reason };
        let state = self.table.snapshot().map_err(|e| CommitError::Read(Box::new(e)))?;
        self.path.rewrites(state.metadata().configuration()).map_err(refused)
    }

    /// The contract of the table's rows.
    pub fn contract(&self) -> &'static Contract {
        self.contract
    }

    /// The version this process last saw.
    pub fn version(&self) -> Option<u64> {
        self.table.version()
    }

    /// The underlying Delta table (for upkeep operations).
    pub(crate) fn delta(&self) -> &DeltaTable {
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
            .map(|f| {
                // The add action is the library's only way to a file's row-tracking fields (deprecated in favour
                // of Arrow arrays it does not expose them in).
                #[allow(deprecated)]
                let add = f.add_action();
                ActiveFile {
                    path: f.object_store_path().to_string(),
                    size: f.size().max(0) as u64,
                    num_records: f.num_records().map(|n| n as u64),
                    min_start_time: f.stats().and_then(|s| min_start_time(&s)),
                    has_deletion_vector: add.deletion_vector.is_some(),
                    base_row_id: add.base_row_id,
                    default_row_commit_version: add.default_row_commit_version,
                }
            })
            .collect())
    }

    /// Replace `removed` by `added` (the same rows, laid out anew) in one commit that changes no data. Appends
    /// committed meanwhile are kept; if any of `removed` is no longer in the table, nothing is committed.
    pub(crate) async fn rearrange(
        &mut self,
        removed: &[ActiveFile],
        added: &[UploadedFile],
        target_size: u64,
    ) -> Result<u64, CommitError> {
        let err = |source| CommitError::Append { files: added.len(), source: Box::new(source) };
        self.rewrites()?;
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
                base_row_id: f.base_row_id,
                default_row_commit_version: f.default_row_commit_version,
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
            if let CommitPath::Own(own) = self.path {
                let parameters = HashMap::from([("targetSize".to_owned(), serde_json::Value::from(target_size))]);
                let log_store = self.table.log_store();
                match own
                    .commit(state, log_store.as_ref(), actions.clone(), "OPTIMIZE", parameters, &mut self.last_entry)
                    .await
                    .map_err(err)?
                {
                    Written::At(version) => {
                        self.table.update_incremental(Some(version)).await.map_err(err)?;
                        self.sync(version).await?;
                        return Ok(version);
                    }
                    Written::Taken => continue,
                }
            }
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
                    self.sync(version).await?;
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
        self.sync(version).await?;
        Ok(version)
    }

    /// Make log entry `version` durable (on a local disk, fsync'd with its folder).
    async fn sync(&self, version: u64) -> Result<(), CommitError> {
        self.store
            .sync_log_entry(&format!("_delta_log/{version:020}.json"))
            .await
            .map_err(|source| CommitError::Sync { version, source })
    }

    async fn commit_appends(&mut self, actions: Vec<Action>) -> Result<u64, DeltaTableError> {
        if let CommitPath::Own(own) = self.path {
            let parameters = HashMap::from([("mode".to_owned(), serde_json::Value::from("Append"))]);
            // Appends never conflict logically: retry at the next version, as the library does, unless the table's
            // metadata or protocol changed meanwhile (then the caller checks the table again).
            let before = self.table.snapshot().map(table_definition)?;
            for _ in 0..APPEND_ATTEMPTS {
                let state = self.table.snapshot()?;
                match own
                    .commit(
                        state,
                        self.table.log_store().as_ref(),
                        actions.clone(),
                        "WRITE",
                        parameters.clone(),
                        &mut self.last_entry,
                    )
                    .await?
                {
                    Written::At(version) => {
                        self.table.update_incremental(Some(version)).await?;
                        return Ok(version);
                    }
                    Written::Taken => {
                        self.table.update_state().await?;
                        if self.table.snapshot().map(table_definition)? != before {
                            return Err(DeltaTableError::Generic(
                                "another writer changed the table's metadata or protocol".into(),
                            ));
                        }
                    }
                }
            }
            return Err(DeltaTableError::Generic(format!("lost {APPEND_ATTEMPTS} commit races in a row")));
        }
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
        recognize(state, Some(Wanted::exactly(self.contract)))
            .map_err(|(contract, difference)| CommitError::SchemaMismatch { url: url.clone(), contract, difference })?;
        self.path = CommitPath::of(state).map_err(|reason| CommitError::Unwritable { url, reason })?;
        Ok(())
    }

    /// Whether the table changed into something this writer must not write (every append is refused).
    pub(crate) fn refuses_writes(&self) -> bool {
        self.refused.is_some()
    }

    /// Write a checkpoint in the background when `version` completes a checkpoint interval.
    pub(crate) fn checkpoint_if_due(&mut self, version: u64) {
        while self.checkpoints.try_join_next().is_some() {}
        if !(version + 1).is_multiple_of(self.checkpoint_interval) {
            return;
        }
        let table = self.table.clone();
        let store = self.store.clone();
        self.checkpoints.spawn(async move {
            if let Err(e) = deltalake::checkpoints::create_checkpoint(&table, None).await {
                tracing::warn!(version, error = %e, "Delta checkpoint failed; readers replay the JSON log");
                return;
            }
            // On a local disk, durable like the log entries: readers trust `_last_checkpoint`.
            for file in [format!("_delta_log/{version:020}.checkpoint.parquet"), "_delta_log/_last_checkpoint".into()] {
                if let Err(e) = store.sync_log_entry(&file).await {
                    tracing::warn!(version, error = %e, "syncing the checkpoint to disk failed");
                }
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

/// What a conflicting commit must not have changed under an append: the table's metadata and protocol.
fn table_definition(state: &DeltaTableState) -> (serde_json::Value, serde_json::Value) {
    (
        serde_json::to_value(state.metadata()).unwrap_or_default(),
        serde_json::to_value(state.protocol()).unwrap_or_default(),
    )
}

/// `minValues.start_time_unix_nano` of a file's stats JSON.
fn min_start_time(stats: &str) -> Option<i64> {
    let stats: serde_json::Value = serde_json::from_str(stats).ok()?;
    stats.get("minValues")?.get("start_time_unix_nano")?.as_i64()
}

/// How a table's storage is reached.
#[derive(Clone)]
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

/// Create the table at `url` for `contract`; `false` when another writer created one there first.
async fn create_table(url: &Url, backend: &Backend, contract: &'static Contract) -> Result<bool, CommitError> {
    let err = |source| CommitError::Create { url: url.clone(), source: Box::new(source) };
    let table = backend.builder(url).and_then(|b| b.build()).map_err(err)?;
    // Our own put-if-absent entry rather than the library's CREATE: two collectors starting on a new table race to
    // create it, and the loser must neither write a second CREATE nor log its expected defeat as an error.
    let written = entry::create(table.log_store().as_ref(), contract, &table_name(url, contract)).await.map_err(err)?;
    Ok(matches!(written, Written::At(_)))
}

fn table_name(url: &Url, contract: &Contract) -> String {
    url.path_segments().and_then(|mut s| s.rfind(|s| !s.is_empty())).unwrap_or(contract.name_suffix).to_owned()
}

/// The contract the table's rows follow: the first contract `wanted` accepts (any, without it) whose rows it holds;
/// else the first of those contracts and how the table differs from it.
fn recognize(
    state: &DeltaTableState,
    wanted: Option<Wanted>,
) -> Result<&'static Contract, (&'static Contract, String)> {
    let metadata = state.metadata();
    let schema = state.schema();
    let candidates = CONTRACTS.iter().copied().filter(|&c| match wanted {
        Some(Wanted { create, exact: true }) => c == create,
        Some(Wanted { create, exact: false }) => c.signal == create.signal,
        None => true,
    });
    let mut first = None;
    for contract in candidates {
        match contract.difference(metadata.configuration(), metadata.partition_columns(), &schema) {
            None => return Ok(contract),
            Some(difference) => {
                first.get_or_insert((contract, difference));
            }
        }
    }
    Err(first.unwrap_or((Contract::spans_v1(), "no otel-delta table has these columns".to_owned())))
}
