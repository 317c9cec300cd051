//! The table at start-up: created with the v1 schema, reopened as is, refused when it is something else.

use deltalake::kernel::{DataType, StructField};
use prost::Message as _;

use crate::http::{post, request};
use crate::support::{log_entry, read_rows, table_url, workspace_made_v2_table, Collector};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_table_is_v2_by_default_and_reopening_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("main").join("default").join("otel_otel_spans");
    let c = Collector::start_at(&path, &[]).await.unwrap();
    let r = post(&c.traces_url(), "application/x-protobuf", request(1, 4).encode_to_vec()).await;
    assert!(r.status().is_success());
    c.stop().await.unwrap();

    let url = table_url(&path);
    let table = deltalake::open_table(url).await.unwrap();
    let snapshot = table.snapshot().unwrap();
    assert_eq!(snapshot.metadata().configuration().get("otel.schemaVersion").map(String::as_str), Some("v2"));
    assert_eq!(snapshot.schema().as_ref(), otel_delta::Contract::spans_v2().delta_schema());
    // Each add carries stats readers can skip files with.
    let log = std::fs::read_to_string(path.join("_delta_log").join(format!("{:020}.json", 1))).unwrap();
    let add: serde_json::Value = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|a| a.get("add").is_some())
        .unwrap();
    let stats: serde_json::Value = serde_json::from_str(add["add"]["stats"].as_str().unwrap()).unwrap();
    assert_eq!(stats["numRecords"], 4);
    assert_eq!(stats["minValues"]["name"], "op-1-0");
    assert_eq!(stats["maxValues"]["name"], "op-1-3");
    assert_eq!(stats["minValues"]["start_time_unix_nano"], 1_700_000_000_000_000_000i64);
    assert_eq!(stats["nullCount"]["status"]["code"], 0);
    assert!(add["add"]["path"].as_str().unwrap().ends_with(".zstd.parquet"));

    // Reopen: same table, rows kept, new rows appended.
    let c = Collector::start_at(&path, &[]).await.unwrap();
    let r = post(&c.traces_url(), "application/x-protobuf", request(2, 1).encode_to_vec()).await;
    assert!(r.status().is_success());
    c.stop().await.unwrap();
    assert_eq!(read_rows(&path).await.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_with_another_schema_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other");
    std::fs::create_dir_all(&path).unwrap();
    let url = table_url(&path);
    let created = deltalake::DeltaTable::try_from_url(url.clone())
        .await
        .unwrap()
        .create()
        .with_columns([
            StructField::new("trace_id", DataType::STRING, true),
            StructField::new("body", DataType::STRING, true),
        ])
        .await
        .unwrap();
    let version = created.version();

    let err = match Collector::start_at(&path, &[]).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a foreign table must be refused"),
    };
    assert!(err.contains("not an otel-delta v1 spans table"), "{err}");
    assert!(err.contains("column span_id is missing"), "{err}");
    let after = deltalake::open_table(url).await.unwrap();
    assert_eq!(after.version(), version, "the refused table is not altered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_of_another_layout_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2");
    std::fs::create_dir_all(&path).unwrap();
    let url = table_url(&path);
    deltalake::DeltaTable::try_from_url(url)
        .await
        .unwrap()
        .create()
        .with_columns(otel_delta::Contract::spans_v1().delta_schema().fields().cloned())
        .with_configuration([("otel.schemaVersion", Some("v2"))])
        .with_raise_if_key_not_exists(false)
        .await
        .unwrap();
    let err = Collector::start_at(&path, &[]).await.err().expect("refused").to_string();
    assert!(err.contains("otel.schemaVersion is \"v2\""), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_changed_by_another_writer_is_adopted_or_refused_never_wedges() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spans");
    let c = Collector::start_at(&path, &["--layout", "v1", "--flush-interval", "50ms"]).await.unwrap();
    let send = |seed| {
        let url = c.traces_url();
        async move { post(&url, "application/x-protobuf", request(seed, 2).encode_to_vec()).await.status() }
    };
    assert!(send(1).await.is_success());
    let ready_url = c.traces_url().replace("/v1/traces", "/ready");
    assert_eq!(reqwest::get(&ready_url).await.unwrap().status(), reqwest::StatusCode::OK);

    // Another writer sets a table property: a metadata change our next commit conflicts with. The collector reads
    // the table again, finds it still a v1 spans table, and commits.
    let table = deltalake::open_table(table_url(&path)).await.unwrap();
    let props =
        std::collections::HashMap::from([("delta.logRetentionDuration".to_owned(), "interval 60 days".to_owned())]);
    table.set_tbl_properties().with_properties(props).await.unwrap();
    assert!(send(2).await.is_success());
    assert!(send(3).await.is_success(), "not stuck on a stale snapshot");

    // Another writer adds a column: no longer our layout. Appends are refused (503, retryable), never written.
    let table = deltalake::open_table(table_url(&path)).await.unwrap();
    let extra = StructField::new("extra", DataType::STRING, true);
    table.add_columns().with_fields([extra]).await.unwrap();
    assert_eq!(send(4).await, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(send(5).await, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    // Alive, but not ready: a load balancer stops sending here, an operator sees why.
    let base = c.traces_url().replace("/v1/traces", "");
    let health = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    let ready = reqwest::get(format!("{base}/ready")).await.unwrap();
    assert_eq!(ready.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let reason = ready.text().await.unwrap();
    assert!(reason.contains("refuses writes") && reason.contains("extra"), "{reason}");
    c.stop().await.unwrap();
    assert_eq!(read_rows(&path).await.len(), 6, "spans of seeds 1-3 only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_table_carries_variant_and_is_reopened_in_its_own_layout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spans");
    let c = Collector::start_at(&path, &["--layout", "v2"]).await.unwrap();
    let r = post(&c.traces_url(), "application/x-protobuf", request(1, 4).encode_to_vec()).await;
    assert!(r.status().is_success());
    c.stop().await.unwrap();

    let table = deltalake::open_table(table_url(&path)).await.unwrap();
    let snapshot = table.snapshot().unwrap();
    assert_eq!(snapshot.metadata().configuration().get("otel.schemaVersion").map(String::as_str), Some("v2"));
    assert_eq!(snapshot.schema().as_ref(), otel_delta::Contract::spans_v2().delta_schema());
    let protocol = serde_json::to_value(snapshot.protocol()).unwrap();
    assert_eq!((protocol["minReaderVersion"].as_i64(), protocol["minWriterVersion"].as_i64()), (Some(3), Some(7)));
    assert_eq!(protocol["readerFeatures"], serde_json::json!(["variantType"]), "{protocol}");
    assert_eq!(protocol["writerFeatures"], serde_json::json!(["variantType"]), "{protocol}");
    let log = std::fs::read_to_string(path.join("_delta_log").join(format!("{:020}.json", 1))).unwrap();
    let add =
        log.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).find(|a| a.get("add").is_some());
    let stats: serde_json::Value = serde_json::from_str(add.unwrap()["add"]["stats"].as_str().unwrap()).unwrap();
    assert_eq!(stats["minValues"]["time"], "2023-11-14T22:13:20.000000Z", "{stats}");
    assert_eq!(stats["minValues"]["date"], "2023-11-14", "{stats}");
    assert_eq!(stats["nullCount"]["parent_span_id"], 4, "root spans have a NULL parent in v2: {stats}");

    // Reopened without --layout: written in its own layout.
    let c = Collector::start_at(&path, &[]).await.unwrap();
    let r = post(&c.traces_url(), "application/x-protobuf", request(2, 1).encode_to_vec()).await;
    assert!(r.status().is_success());
    c.stop().await.unwrap();
    let rows = read_rows(&path).await;
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r["kind"].as_str().unwrap().starts_with("SPAN_KIND_")), "{rows:#?}");

    // A layout the table does not have is refused, naming both.
    let err = Collector::start_at(&path, &["--layout", "v1"]).await.err().expect("refused").to_string();
    assert!(err.contains("\"v2\"") && err.contains("\"v1\""), "{err}");
}

/// A table as the workspace creates it (clustering, domain metadata, row tracking, in-commit timestamps): appended
/// to through otel-delta's own log entries, with row ids above the table's mark and its domain metadata kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_made_v2_table_gets_row_ids_and_keeps_its_clustering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spans");
    let created_ict = workspace_made_v2_table(&path, &[]);
    let c = Collector::start_at(&path, &[]).await.unwrap();
    for (seed, spans) in [(1, 4), (2, 3)] {
        let r = post(&c.traces_url(), "application/x-protobuf", request(seed, spans).encode_to_vec()).await;
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    c.stop().await.unwrap();

    let (mut mark, mut ict) = (99, created_ict);
    for version in [1, 2] {
        let entry = log_entry(&path, version);
        let info = &entry[0]["commitInfo"];
        let this_ict = info["inCommitTimestamp"]
            .as_i64()
            .unwrap_or_else(|| panic!("commitInfo first, with an in-commit timestamp: {entry:#?}"));
        assert!(this_ict > ict, "in-commit timestamps increase: {entry:#?}");
        ict = this_ict;
        let adds: Vec<_> = entry.iter().filter_map(|a| a.get("add")).collect();
        assert!(!adds.is_empty(), "{entry:#?}");
        for add in adds {
            assert_eq!(add["baseRowId"], mark + 1, "{entry:#?}");
            assert_eq!(add["defaultRowCommitVersion"], version, "{entry:#?}");
            assert!(add.get("clusteringProvider").is_none_or(|p| p.is_null()), "{add}");
            let stats: serde_json::Value = serde_json::from_str(add["stats"].as_str().unwrap()).unwrap();
            mark += stats["numRecords"].as_i64().unwrap();
        }
        let domains: Vec<_> = entry.iter().filter_map(|a| a.get("domainMetadata")).collect();
        assert_eq!(domains.len(), 1, "only the row-id mark moves: {entry:#?}");
        assert_eq!(domains[0]["domain"], "delta.rowTracking");
        assert_eq!(domains[0]["configuration"], format!("{{\"rowIdHighWaterMark\":{mark}}}"));
    }
    assert_eq!(mark, 99 + 7);

    // Version 1 completed a checkpoint interval: the checkpoint was written, and the kernel reads through it.
    assert!(path.join("_delta_log").join(format!("{:020}.checkpoint.parquet", 1)).exists());
    // Read back by the Delta kernel: the clustering domain as the workspace wrote it, the mark where we left it.
    let root = table_url(&path);
    let engine = deltalake::open_table(root.clone()).await.unwrap().log_store().engine(None);
    let domains = tokio::task::spawn_blocking(move || {
        let snapshot = delta_kernel::Snapshot::builder_for(root.as_str()).build(engine.as_ref()).unwrap();
        let domain = |name| snapshot.get_domain_metadata_internal(name, engine.as_ref()).unwrap();
        (domain("delta.clustering"), domain("delta.rowTracking"))
    })
    .await
    .unwrap();
    assert_eq!(
        domains.0.as_deref(),
        Some("{\"clusteringColumns\":[[\"time\"],[\"service_name\"],[\"trace_id\"]],\"domainName\":\"delta.clustering\"}")
    );
    assert_eq!(domains.1.as_deref(), Some("{\"rowIdHighWaterMark\":106}"));
    assert_eq!(read_rows(&path).await.len(), 7);
}

/// A writer feature nobody here can honour is refused at start-up, by name; the table is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_with_a_writer_feature_we_cannot_honour_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spans");
    workspace_made_v2_table(&path, &["someFutureFeature"]);
    let err = Collector::start_at(&path, &[]).await.err().expect("refused").to_string();
    assert!(err.contains("someFutureFeature"), "{err}");
    assert!(!path.join("_delta_log").join(format!("{:020}.json", 1)).exists());
}
