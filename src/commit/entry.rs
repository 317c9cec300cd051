//! Log entries otel-delta writes itself, for tables whose writer features the Delta library's commit path refuses
//! although an append can honour them. Tables the Databricks workspace creates carry such features (`clustering`,
//! `domainMetadata`, `rowTracking`, often `inCommitTimestamp` and the legacy `invariants`).
//!
//! Contract:
//! - [`CommitPath::of`] says, from a table's protocol and metadata, whether the library's commit path may write the
//!   table, whether our own entries honour every writer feature it has, or which feature nobody here can honour
//!   (named in the refusal).
//! - [`create`] writes a new table's first entry (version 0), or returns [`Written::Taken`] when another writer
//!   created the table first: a lost race is an outcome, not an error, so nothing is logged as one.
//! - [`OwnEntries::commit`] writes one log entry at the version after the snapshot it is given, as one
//!   put-if-absent object (the log store's own mechanism, as the library does it). It returns
//!   [`Written::Taken`] when another writer holds that version: nothing was written and the caller reads the log
//!   again and recomputes the entry, since row ids and commit versions depend on the version it lands at.
//!
//! How each feature is honoured by an entry that only adds (or, for compaction, re-adds) files:
//! - `clustering`, `domainMetadata`: domain metadata (the clustering columns included) is left as it is; new
//!   files carry no `clusteringProvider`, which marks them unclustered until the table's owner clusters them.
//! - `rowTracking`: every added file gets `baseRowId` (consecutive ranges above the table's high-water mark) and
//!   `defaultRowCommitVersion` (the entry's version), and the `delta.rowTracking` domain records the new mark.
//!   A rewritten file (compaction) carries its rows' ids and commit versions over in the table's materialized
//!   row-tracking columns ([`MaterializedRowIds`]) and gets a fresh range like any added file.
//! - `inCommitTimestamp` (when enabled): `commitInfo` comes first with an `inCommitTimestamp` above the previous
//!   entry's.
//! - `invariants`, `checkConstraints`, `generatedColumns`, `identityColumns`: honoured only while no column or
//!   property uses them (otherwise refused: this writer evaluates no SQL expression).
//! - `changeDataFeed`: entries that only add rows need no change files.
//! - `variantShredding`: unshredded VARIANT values stay valid. `vacuumProtocolCheck` asks vacuum to check the
//!   protocol first; appends are unaffected.
//! - `columnMapping`: only with mode `none` (our files carry physical names equal to the column names).

use std::collections::HashMap;

use bytes::Bytes;
use deltalake::kernel::transaction::{TransactionError, PROTOCOL};
use deltalake::kernel::{Action, Add, CommitInfo, DomainMetadata, Metadata, Protocol};
use deltalake::logstore::{CommitOrBytes, LogStore};
use deltalake::table::state::DeltaTableState;
use deltalake::DeltaTableError;
use object_store::path::Path;
use object_store::ObjectStoreExt as _;
use serde_json::{json, Value};

use crate::table::Contract;

/// `commitInfo.engineInfo` of our entries.
const ENGINE: &str = concat!("otel-delta/", env!("CARGO_PKG_VERSION"));

/// The domain holding the row-id high-water mark.
const ROW_TRACKING_DOMAIN: &str = "delta.rowTracking";

/// How appends reach a table's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommitPath {
    /// The library's commit builder (the table needs nothing it lacks).
    Library,
    /// Entries written by [`OwnEntries`].
    Own(OwnEntries),
}

/// What our own entries must add for the table's features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct OwnEntries {
    /// Assign row ids and commit versions to added files, advance the high-water mark.
    row_tracking: bool,
    /// Lead with a monotonic in-commit timestamp.
    in_commit_timestamps: bool,
}

impl CommitPath {
    /// How this writer honours the writer features of the table `state` is a snapshot of; `Err` names what it
    /// cannot honour.
    pub(crate) fn of(state: &DeltaTableState) -> Result<CommitPath, String> {
        let library = PROTOCOL.can_write_to(state);
        let protocol = serde_json::to_value(state.protocol()).unwrap_or_default();
        let Some(features) = protocol.get("writerFeatures").and_then(Value::as_array) else {
            // A legacy protocol (writer version below 7): its features follow from the version, as the library
            // checks them.
            return library.map(|()| CommitPath::Library).map_err(|e| e.to_string());
        };
        if library.is_ok() {
            return Ok(CommitPath::Library);
        }
        let names: Vec<String> = features.iter().filter_map(Value::as_str).map(str::to_owned).collect();
        let metadata = state.metadata();
        let schema = serde_json::to_value(state.schema().as_ref()).unwrap_or_default();
        OwnEntries::honouring(&names, metadata.configuration(), &schema).map(CommitPath::Own)
    }

    /// How files of a table with this `configuration` can be rewritten (compaction): as they are (`None`), or
    /// with their rows' ids and commit versions materialized in the columns named. `Err` says why not at all.
    pub(crate) fn rewrites(
        &self,
        configuration: &HashMap<String, String>,
    ) -> Result<Option<MaterializedRowIds>, String> {
        if !matches!(self, CommitPath::Own(OwnEntries { row_tracking: true, .. })) {
            return Ok(None);
        }
        let name = |key: &str| {
            configuration.get(key).filter(|n| !n.is_empty()).cloned().ok_or_else(|| {
                format!(
                    "it has row tracking but no {key}: rewriting its files would lose each row's id, so they are left \
                     as they are"
                )
            })
        };
        Ok(Some(MaterializedRowIds {
            row_id: name("delta.rowTracking.materializedRowIdColumnName")?,
            commit_version: name("delta.rowTracking.materializedRowCommitVersionColumnName")?,
        }))
    }
}

/// The hidden columns in which a rewritten file of a row-tracked table keeps each row's id and last commit
/// version (readers take them over the file's `baseRowId` + row index and `defaultRowCommitVersion`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MaterializedRowIds {
    pub(crate) row_id: String,
    pub(crate) commit_version: String,
}

/// The outcome of one attempt to write an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    At(u64),
    /// Another writer holds the version: read the log again and retry.
    Taken,
}

impl OwnEntries {
    /// The entries that honour the writer `features` of a table with this configuration and schema (as Delta
    /// JSON); `Err` names those that cannot be honoured, and why.
    fn honouring(
        features: &[String],
        configuration: &HashMap<String, String>,
        schema: &Value,
    ) -> Result<OwnEntries, String> {
        let mut own = OwnEntries::default();
        let mut refused = Vec::new();
        let enabled = |key: &str| configuration.get(key).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        for feature in features {
            let mut unused_metadata = |key: &str| {
                if field_metadata_uses(schema, key) {
                    refused.push(format!("{feature} (a column has {key}, which this writer does not evaluate)"));
                }
            };
            match feature.as_str() {
                // What the library writes too: nothing an append must do.
                "appendOnly"
                | "timestampNtz"
                | "variantType"
                | "variantType-preview"
                | "v2Checkpoint"
                | "deletionVectors"
                | "checkpointProtection" => {}
                "clustering" | "domainMetadata" | "changeDataFeed" | "vacuumProtocolCheck" => {}
                "variantShredding" | "variantShredding-preview" => {}
                "rowTracking" => own.row_tracking = true,
                "inCommitTimestamp" => own.in_commit_timestamps = enabled("delta.enableInCommitTimestamps"),
                "invariants" => unused_metadata("delta.invariants"),
                "generatedColumns" => unused_metadata("delta.generationExpression"),
                "identityColumns" => unused_metadata("delta.identity.start"),
                "checkConstraints" => {
                    if let Some(key) = configuration.keys().find(|k| k.starts_with("delta.constraints.")) {
                        refused.push(format!("{feature} ({key}, which this writer does not evaluate)"));
                    }
                }
                "columnMapping" => match configuration.get("delta.columnMapping.mode").map(String::as_str) {
                    None | Some("none") => {}
                    Some(mode) => refused.push(format!("{feature} (mode {mode}; this writer writes plain names)")),
                },
                other => refused.push(other.to_owned()),
            }
        }
        if refused.is_empty() {
            Ok(own)
        } else {
            Err(format!("writer feature(s) this writer cannot honour: {}", refused.join(", ")))
        }
    }

    /// Write `actions` (adds, and removes for compaction) as the entry after `state`'s version. `operation` and
    /// `parameters` go to `commitInfo`.
    ///
    /// `last` is what the previous entry this writer wrote says (its version, row-id mark and in-commit
    /// timestamp): when `state` is at that version, the log need not be read for them. It is updated on success.
    pub(crate) async fn commit(
        &self,
        state: &DeltaTableState,
        log_store: &dyn LogStore,
        mut actions: Vec<Action>,
        operation: &str,
        parameters: HashMap<String, Value>,
        last: &mut Option<LastEntry>,
    ) -> Result<Written, DeltaTableError> {
        let version = state.version() + 1;
        let known = last.filter(|l| l.version == state.version());
        let mut entry: Vec<Action> = Vec::with_capacity(actions.len() + 2);
        let now = chrono::Utc::now().timestamp_millis();
        let in_commit_timestamp = match (self.in_commit_timestamps, known) {
            (false, _) => None,
            (true, Some(known)) => Some(now.max(known.in_commit_timestamp.map_or(0, |t| t + 1))),
            (true, None) => {
                let previous = previous_in_commit_timestamp(log_store, state.version()).await?;
                Some(now.max(previous.map_or(0, |t| t + 1)))
            }
        };
        entry.push(Action::CommitInfo(CommitInfo {
            timestamp: Some(now),
            in_commit_timestamp,
            operation: Some(operation.to_owned()),
            operation_parameters: Some(parameters),
            read_version: Some(state.version()),
            is_blind_append: Some(actions.iter().all(|a| matches!(a, Action::Add(_)))),
            engine_info: Some(ENGINE.to_owned()),
            ..Default::default()
        }));
        let mut row_id_mark = None;
        if self.row_tracking {
            let mark = match known {
                Some(known) => known.row_id_mark,
                None => row_id_high_water_mark(log_store, state.version()).await?,
            };
            let (moved, tracked) = assign_row_ids(mark, version, actions)?;
            actions = tracked;
            row_id_mark = moved.or(mark);
            if let Some(mark) = moved {
                entry.push(Action::DomainMetadata(DomainMetadata {
                    domain: ROW_TRACKING_DOMAIN.to_owned(),
                    configuration: serde_json::json!({ "rowIdHighWaterMark": mark }).to_string(),
                    removed: false,
                }));
            }
        }
        entry.extend(actions);
        let written = write_put_if_absent(log_store, version, lines(&entry)?).await?;
        *last = match written {
            Written::At(version) => Some(LastEntry { version, row_id_mark, in_commit_timestamp }),
            Written::Taken => None,
        };
        Ok(written)
    }
}

/// Create the table `contract` describes: version 0 with `commitInfo`, `protocol` (the contract's table features;
/// the legacy 1/2 without any) and `metaData` (its schema, `name`, comment and properties), as one put-if-absent
/// object. [`Written::Taken`] when a table is already there.
pub(crate) async fn create(
    log_store: &dyn LogStore,
    contract: &Contract,
    name: &str,
) -> Result<Written, DeltaTableError> {
    let json = |e: serde_json::Error| DeltaTableError::Generic(e.to_string());
    let features = contract.layout.table_features();
    let protocol: Protocol = serde_json::from_value(if features.is_empty() {
        json!({ "minReaderVersion": 1, "minWriterVersion": 2 })
    } else {
        json!({ "minReaderVersion": 3, "minWriterVersion": 7, "readerFeatures": features, "writerFeatures": features })
    })
    .map_err(json)?;
    let now = chrono::Utc::now().timestamp_millis();
    let metadata: Metadata = serde_json::from_value(json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "name": name,
        "description": contract.comment,
        "format": { "provider": "parquet", "options": {} },
        "schemaString": serde_json::to_string(contract.delta_schema()).map_err(json)?,
        "partitionColumns": [],
        "configuration": contract.properties().into_iter().collect::<HashMap<_, _>>(),
        "createdTime": now,
    }))
    .map_err(json)?;
    let commit_info = CommitInfo {
        timestamp: Some(now),
        operation: Some("CREATE TABLE".to_owned()),
        operation_parameters: Some(HashMap::from([("mode".to_owned(), json!("ErrorIfExists"))])),
        engine_info: Some(ENGINE.to_owned()),
        ..Default::default()
    };
    let entry = [Action::CommitInfo(commit_info), Action::Protocol(protocol), Action::Metadata(metadata)];
    write_put_if_absent(log_store, 0, lines(&entry)?).await
}

/// One JSON line per action.
fn lines(actions: &[Action]) -> Result<Bytes, DeltaTableError> {
    let mut bytes = Vec::new();
    for action in actions {
        serde_json::to_writer(&mut bytes, action).map_err(|e| DeltaTableError::Generic(e.to_string()))?;
        bytes.push(b'\n');
    }
    Ok(Bytes::from(bytes))
}

/// What the last entry this writer wrote says, to write the next one without reading the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LastEntry {
    version: u64,
    row_id_mark: Option<i64>,
    in_commit_timestamp: Option<i64>,
}

/// Whether any field of a Delta schema (JSON), at any depth, carries metadata `key`.
fn field_metadata_uses(schema: &Value, key: &str) -> bool {
    match schema {
        Value::Object(map) => {
            map.get("metadata").and_then(Value::as_object).is_some_and(|m| m.contains_key(key))
                || map.values().any(|v| field_metadata_uses(v, key))
        }
        Value::Array(items) => items.iter().any(|v| field_metadata_uses(v, key)),
        _ => false,
    }
}

/// The row-id high-water mark of the table at `version`; `None` before any row id was assigned. The library
/// refuses to read `delta.*` domains, so this asks the Delta kernel beneath it (a log replay for that domain).
async fn row_id_high_water_mark(log_store: &dyn LogStore, version: u64) -> Result<Option<i64>, DeltaTableError> {
    let engine = log_store.engine(None);
    let root = log_store.root_url().clone();
    let configuration = tokio::task::spawn_blocking(move || {
        let snapshot = delta_kernel::Snapshot::builder_for(root.as_str()).at_version(version).build(engine.as_ref())?;
        snapshot.get_domain_metadata_internal(ROW_TRACKING_DOMAIN, engine.as_ref())
    })
    .await
    .map_err(|e| DeltaTableError::Generic(format!("reading the row-id high-water mark: {e}")))?
    .map_err(|e| DeltaTableError::Generic(format!("reading the row-id high-water mark: {e}")))?;
    high_water_mark(configuration.as_deref())
}

/// The row-id high-water mark in the `delta.rowTracking` domain's configuration; `None` before any row id.
fn high_water_mark(configuration: Option<&str>) -> Result<Option<i64>, DeltaTableError> {
    let Some(configuration) = configuration else { return Ok(None) };
    let value: Value = serde_json::from_str(configuration)
        .map_err(|e| DeltaTableError::Generic(format!("{ROW_TRACKING_DOMAIN} domain metadata: {e}")))?;
    value.get("rowIdHighWaterMark").and_then(Value::as_i64).map(Some).ok_or_else(|| {
        DeltaTableError::Generic(format!("{ROW_TRACKING_DOMAIN} domain metadata has no rowIdHighWaterMark"))
    })
}

/// Give each added file fresh row ids above `mark` and commit version `version`; returns the new mark if it
/// moved. Every add needs its row count.
fn assign_row_ids(
    mark: Option<i64>,
    version: u64,
    actions: Vec<Action>,
) -> Result<(Option<i64>, Vec<Action>), DeltaTableError> {
    let exhausted = || DeltaTableError::Generic(format!("row ids above {mark:?} run past i64"));
    let mut next = match mark {
        Some(m) => m.checked_add(1).ok_or_else(exhausted)?,
        None => 0,
    };
    let actions = actions
        .into_iter()
        .map(|action| match action {
            Action::Add(add) => {
                let rows = num_records(&add)?;
                let add = Add { base_row_id: Some(next), default_row_commit_version: Some(version as i64), ..add };
                next = next.checked_add(rows).ok_or_else(exhausted)?;
                Ok(Action::Add(add))
            }
            other => Ok(other),
        })
        .collect::<Result<Vec<_>, DeltaTableError>>()?;
    let moved = next - 1 > mark.unwrap_or(-1);
    Ok((moved.then_some(next - 1), actions))
}

fn num_records(add: &Add) -> Result<i64, DeltaTableError> {
    add.stats
        .as_deref()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|s| s.get("numRecords").and_then(Value::as_i64))
        .filter(|&n| n >= 0)
        .ok_or_else(|| DeltaTableError::Generic(format!("{}: row tracking needs numRecords in its stats", add.path)))
}

/// The in-commit timestamp of log entry `version`, if it has one.
async fn previous_in_commit_timestamp(log_store: &dyn LogStore, version: u64) -> Result<Option<i64>, DeltaTableError> {
    let path = Path::from(format!("_delta_log/{version:020}.json"));
    let bytes = log_store.object_store(None).get(&path).await?.bytes().await?;
    let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(first) = serde_json::from_slice::<Value>(first) else { return Ok(None) };
    Ok(first.get("commitInfo").and_then(|c| c.get("inCommitTimestamp")).and_then(Value::as_i64))
}

/// Create log entry `version` unless it exists, the way the library does for this log store: conditional put of
/// the bytes where the store has it, else a temporary object renamed if the target does not exist.
async fn write_put_if_absent(log_store: &dyn LogStore, version: u64, bytes: Bytes) -> Result<Written, DeltaTableError> {
    let operation_id = uuid::Uuid::new_v4();
    let entry = if matches!(log_store.name().as_str(), "DefaultLogStore" | "LakeFSLogStore") {
        CommitOrBytes::LogBytes(bytes)
    } else {
        let path = Path::from(format!("_delta_log/_commit_{operation_id}.json.tmp"));
        log_store.object_store(Some(operation_id)).put(&path, bytes.into()).await?;
        CommitOrBytes::TmpCommit(path)
    };
    match log_store.write_commit_entry(version, entry.clone(), operation_id).await {
        Ok(()) => Ok(Written::At(version)),
        Err(TransactionError::VersionAlreadyExists(_)) => {
            if let Err(e) = log_store.abort_commit_entry(version, entry, operation_id).await {
                tracing::debug!(error = %e, "removing the temporary log entry of a lost commit race");
            }
            Ok(Written::Taken)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(path: &str, rows: i64) -> Action {
        Action::Add(Add {
            path: path.into(),
            stats: Some(format!(r#"{{"numRecords":{rows}}}"#)),
            data_change: true,
            ..Default::default()
        })
    }

    /// Both layouts' first entries, as a Delta reader sees them; a second CREATE loses the race without
    /// writing.
    #[tokio::test]
    async fn create_writes_version_zero_once() {
        for contract in crate::table::CONTRACTS {
            let dir = tempfile::tempdir().unwrap();
            let url = url::Url::from_directory_path(dir.path()).unwrap();
            let table = deltalake::DeltaTableBuilder::from_url(url.clone()).unwrap().build().unwrap();
            let log_store = table.log_store();
            assert_eq!(create(log_store.as_ref(), contract, "t").await.unwrap(), Written::At(0));
            assert_eq!(create(log_store.as_ref(), contract, "t").await.unwrap(), Written::Taken);
            assert_eq!(std::fs::read_dir(dir.path().join("_delta_log")).unwrap().count(), 1, "{contract}");

            let mut table = deltalake::DeltaTableBuilder::from_url(url).unwrap().build().unwrap();
            table.load().await.unwrap();
            let state = table.snapshot().unwrap();
            assert_eq!(state.version(), 0);
            assert_eq!(state.schema().as_ref(), contract.delta_schema(), "{contract}");
            assert_eq!(state.metadata().name(), Some("t"));
            let protocol = serde_json::to_value(state.protocol()).unwrap();
            let features = contract.layout.table_features();
            let (reader, writer) = if features.is_empty() { (1, 2) } else { (3, 7) };
            assert_eq!(protocol["minReaderVersion"], reader, "{contract}");
            assert_eq!(protocol["minWriterVersion"], writer, "{contract}");
            if !features.is_empty() {
                assert_eq!(protocol["readerFeatures"], json!(features), "{contract}");
                assert_eq!(protocol["writerFeatures"], json!(features), "{contract}");
            }
            assert_eq!(CommitPath::of(state), Ok(CommitPath::Library), "{contract}");
        }
    }

    fn ids(actions: &[Action]) -> Vec<(Option<i64>, Option<i64>)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Add(a) => Some((a.base_row_id, a.default_row_commit_version)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn row_ids_continue_above_the_mark_in_consecutive_ranges() {
        let (mark, actions) = assign_row_ids(Some(99), 7, vec![add("a", 10), add("b", 5)]).unwrap();
        assert_eq!(mark, Some(114));
        assert_eq!(ids(&actions), [(Some(100), Some(7)), (Some(110), Some(7))]);
        let (mark, actions) = assign_row_ids(None, 1, vec![add("a", 3)]).unwrap();
        assert_eq!((mark, ids(&actions)), (Some(2), vec![(Some(0), Some(1))]));
        // No row added: the mark has not moved.
        assert_eq!(assign_row_ids(Some(4), 2, vec![]).unwrap().0, None);
        assert_eq!(assign_row_ids(None, 2, vec![add("empty", 0)]).unwrap().0, None);
        assert!(assign_row_ids(Some(i64::MAX), 1, vec![add("a", 1)]).is_err());
        assert!(assign_row_ids(Some(i64::MAX - 2), 1, vec![add("a", 5)]).is_err());
        let no_stats = Action::Add(Add { path: "c".into(), ..Default::default() });
        assert!(assign_row_ids(None, 1, vec![no_stats]).is_err());
    }

    #[test]
    fn high_water_mark_is_read_from_the_domain() {
        assert_eq!(high_water_mark(None).unwrap(), None);
        assert_eq!(high_water_mark(Some(r#"{"rowIdHighWaterMark":41}"#)).unwrap(), Some(41));
        assert!(high_water_mark(Some("{}")).is_err());
        assert!(high_water_mark(Some("not json")).is_err());
    }

    #[test]
    fn features_are_honoured_or_named() {
        let schema = serde_json::json!({"type": "struct", "fields": [
            {"name": "a", "type": "string", "nullable": true, "metadata": {"comment": "x"}}]});
        let config = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let features = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let workspace = features(&["clustering", "domainMetadata", "rowTracking", "invariants", "inCommitTimestamp"]);
        let own = OwnEntries::honouring(&workspace, &config(&[("delta.enableInCommitTimestamps", "true")]), &schema);
        assert_eq!(own, Ok(OwnEntries { row_tracking: true, in_commit_timestamps: true }));
        let own = OwnEntries::honouring(&features(&["inCommitTimestamp"]), &config(&[]), &schema);
        assert_eq!(own, Ok(OwnEntries::default()));

        let with_invariant = serde_json::json!({"type": "struct", "fields": [
            {"name": "a", "type": "long", "nullable": true, "metadata": {"delta.invariants": "a > 0"}}]});
        let err = OwnEntries::honouring(&features(&["invariants"]), &config(&[]), &with_invariant).unwrap_err();
        assert!(err.contains("invariants (a column has delta.invariants"), "{err}");
        let err = OwnEntries::honouring(
            &features(&["columnMapping", "checkConstraints", "futureFeature"]),
            &config(&[("delta.columnMapping.mode", "name"), ("delta.constraints.positive", "a > 0")]),
            &schema,
        )
        .unwrap_err();
        assert!(err.contains("columnMapping (mode name"), "{err}");
        assert!(err.contains("checkConstraints (delta.constraints.positive"), "{err}");
        assert!(err.contains("futureFeature"), "{err}");
    }
}
