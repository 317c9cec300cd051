//! Table upkeep on a local table: compaction while a collector appends keeps every row exactly once, two
//! compactions racing on the same files never duplicate rows, vacuum deletes only what the log no longer needs.

use std::collections::HashMap;

use prost::Message as _;
use reqwest::StatusCode;

use crate::http::{post, request};
use crate::support::{read_rows, table_url, workspace_made_v2_table, Collector};
use otel_delta::{optimize, vacuum, Contract, OptimizeOptions, Table};

const PROTOBUF: &str = "application/x-protobuf";

fn span_ids(rows: &[serde_json::Value]) -> Vec<String> {
    let mut ids: Vec<String> = rows.iter().map(|r| r["span_id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids
}

async fn send(collector: &Collector, seed: u64, spans: usize) {
    let response = post(&collector.traces_url(), PROTOBUF, request(seed, spans).encode_to_vec()).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_while_appending_keeps_every_row_once_and_vacuum_cleans_up() {
    let collector = Collector::start(&["--flush-interval", "50ms", "--workers", "1"]).await;
    // Sequential requests with a short flush interval: (about) one small file per request.
    for seed in 0..12 {
        send(&collector, seed, 20).await;
    }
    let url = table_url(&collector.table);
    let mut table = Table::open(&url, HashMap::new()).await.unwrap();
    table.refresh().await.unwrap();
    let files_before = table.files().unwrap().len();
    assert!(files_before >= 6, "expected many small files, got {files_before}");

    // Compact while more requests land; run two compactions at once on their own table handles.
    let appending = {
        let url = collector.traces_url();
        tokio::spawn(async move {
            for seed in 100..112 {
                let response = post(&url, PROTOBUF, request(seed, 20).encode_to_vec()).await;
                assert_eq!(response.status(), StatusCode::OK);
            }
        })
    };
    let mut other = Table::open(&url, HashMap::new()).await.unwrap();
    let options = OptimizeOptions::default();
    let (a, b) = tokio::join!(optimize(&mut table, &options), optimize(&mut other, &options));
    let (a, b) = (a.unwrap(), b.unwrap());
    appending.await.unwrap();
    assert!(a.files_removed + b.files_removed >= files_before, "{a}\n{b}");

    let stopped = collector.stop().await.unwrap();
    let rows = read_rows(&stopped).await;
    let expected: Vec<String> = {
        let mut ids: Vec<String> = (0..12)
            .chain(100..112)
            .flat_map(|seed| (0..20u64).map(move |i| hex((seed * 1_000_003 + i).to_be_bytes())))
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(span_ids(&rows), expected, "every acknowledged span exactly once");

    // A second pass leaves at most the files appended after the first pass plus one per bin.
    let mut table = Table::open(&url, HashMap::new()).await.unwrap();
    optimize(&mut table, &options).await.unwrap();
    table.refresh().await.unwrap();
    assert!(table.files().unwrap().len() <= 2, "{} files after optimize", table.files().unwrap().len());
    assert_eq!(span_ids(&read_rows(&stopped).await), expected);

    // Vacuum: the default retention keeps everything (the replaced files are minutes old, not days).
    let kept = vacuum(&table, std::time::Duration::from_secs(7 * 86400), false, false).await.unwrap();
    assert!(kept.files.is_empty(), "{:?}", kept.files);
    // A zero retention is refused unless asked for explicitly, then deletes the replaced files only.
    assert!(vacuum(&table, std::time::Duration::ZERO, true, false).await.is_err());
    let dry = vacuum(&table, std::time::Duration::ZERO, true, true).await.unwrap();
    assert!(dry.files.len() >= files_before, "{:?}", dry.files);
    let done = vacuum(&table, std::time::Duration::ZERO, false, true).await.unwrap();
    assert_eq!(done.files.len(), dry.files.len());
    assert_eq!(span_ids(&read_rows(&stopped).await), expected, "vacuum removed no live file");
}

fn hex(bytes: [u8; 8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_writes_checkpoints_at_the_table_interval() {
    // A table made by someone else with a short checkpoint interval: the collector adopts it as is.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spans");
    std::fs::create_dir_all(&path).unwrap();
    deltalake::DeltaTable::try_from_url(table_url(&path))
        .await
        .unwrap()
        .create()
        .with_columns(Contract::spans_v1().delta_schema().fields().cloned())
        .with_configuration_property(deltalake::TableProperty::CheckpointInterval, Some("3"))
        .await
        .unwrap();
    let collector = Collector::start_at(&path, &["--flush-interval", "50ms", "--workers", "1"]).await.unwrap();
    for seed in 0..6 {
        send(&collector, seed, 3).await;
    }
    let stopped = collector.stop().await.unwrap();
    // Checkpoints are written after the ack, in the background: wait for the one at version 5 (bounded).
    let last_checkpoint = path.join("_delta_log").join("_last_checkpoint");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !last_checkpoint.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let hint: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&last_checkpoint).unwrap()).unwrap();
    assert!(hint["version"].as_u64().unwrap() >= 2, "{hint}");
    assert_eq!(read_rows(&stopped).await.len(), 18);
    // A fresh reader starts from the checkpoint and sees every row.
    let table = deltalake::open_table(table_url(&path)).await.unwrap();
    assert_eq!(table.snapshot().unwrap().log_data().num_files(), table.get_file_uris().unwrap().count());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_rewrites_a_v2_table_in_its_own_layout() {
    let collector = Collector::start(&["--layout", "v2", "--flush-interval", "50ms", "--workers", "1"]).await;
    for seed in 0..6 {
        send(&collector, seed, 20).await;
    }
    let stopped = collector.stop().await.unwrap();
    let before = read_rows(&stopped).await;
    let url = table_url(&stopped.table);
    let mut table = Table::open(&url, HashMap::new()).await.unwrap();
    assert_eq!(table.contract(), Contract::spans_v2());
    let files_before = table.files().unwrap().len();
    assert!(files_before >= 3, "expected several small files, got {files_before}");
    let report = optimize(&mut table, &OptimizeOptions::default()).await.unwrap();
    assert_eq!(report.files_removed, files_before, "{report}");
    table.refresh().await.unwrap();
    assert_eq!(table.files().unwrap().len(), 1);

    // Same rows, VARIANT values and all, in the v2 schema.
    let by_id = |rows: Vec<serde_json::Value>| {
        let mut rows = rows;
        rows.sort_by_key(|r| r["record_id"].as_str().unwrap().to_owned());
        rows
    };
    let after = read_rows(&stopped).await;
    assert_eq!(by_id(after), by_id(before));
    let snapshot = deltalake::open_table(url).await.unwrap();
    assert_eq!(snapshot.snapshot().unwrap().schema().as_ref(), Contract::spans_v2().delta_schema());
}

/// Each row's (id, commit version) under row tracking, by span id: materialized in the file where it is, else the
/// file's `baseRowId` + the row's index and its `defaultRowCommitVersion`.
async fn row_ids(table: &mut Table, path: &std::path::Path) -> HashMap<String, (i64, Option<i64>)> {
    table.refresh().await.unwrap();
    let mut ids = HashMap::new();
    for file in table.files().unwrap() {
        let bytes = std::fs::read(path.join(&file.path)).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
            .unwrap()
            .build()
            .unwrap();
        let mut index = 0;
        for batch in reader {
            for row in crate::support::batch_rows(&batch.unwrap()) {
                let id = row[ROW_ID].as_i64().or(file.base_row_id.map(|b| b + index)).expect("a row id");
                let version = row[ROW_VERSION].as_i64().or(file.default_row_commit_version);
                ids.insert(row["span_id"].as_str().unwrap().to_owned(), (id, version));
                index += 1;
            }
        }
    }
    ids
}

/// The materialized row-tracking columns of [`workspace_made_v2_table`].
const ROW_ID: &str = "_row-id-col-5e3b6c1e";
const ROW_VERSION: &str = "_row-commit-version-col-7a9d2f40";

/// On a table as the workspace creates it (row tracking): optimize keeps every row's id and commit version,
/// materialized in the rewritten file, twice over; vacuum deletes unreferenced files without the library's
/// bracketing log entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upkeep_on_a_workspace_made_table_keeps_row_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spans");
    workspace_made_v2_table(&path, &[]);
    let url = table_url(&path);
    let mut table = Table::open(&url, HashMap::new()).await.unwrap();
    for round in 0..2 {
        let collector = Collector::start_at(&path, &["--flush-interval", "50ms"]).await.unwrap();
        for seed in 0..3 {
            send(&collector, 10 * round + seed, 5).await;
        }
        collector.stop().await.unwrap();
        let before = row_ids(&mut table, &path).await;
        assert_eq!(before.len(), 15 * (round as usize + 1));
        let report = optimize(&mut table, &OptimizeOptions::default()).await.unwrap();
        assert!(report.files_removed >= 3 && report.files_added == 1, "{report}");
        assert_eq!(row_ids(&mut table, &path).await, before, "round {round}: ids and versions carried over");
        let mut distinct: Vec<i64> = before.values().map(|(id, _)| *id).collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), before.len(), "ids unique");
        assert!(distinct[0] >= 100, "above the workspace's mark");
    }
    assert_eq!(read_rows(&path).await.len(), 30);

    let version = table.version();
    let orphan = path.join("part-orphan.parquet");
    std::fs::write(&orphan, b"not referenced").unwrap();
    let done = vacuum(&table, std::time::Duration::ZERO, false, true).await.unwrap();
    assert!(done.files.contains(&"part-orphan.parquet".to_owned()), "{done:?}");
    assert!(!orphan.exists());
    table.refresh().await.unwrap();
    assert_eq!(table.version(), version, "no log entry");
    assert_eq!(read_rows(&path).await.len(), 30);
}
