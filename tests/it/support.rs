//! Shared test helpers: a collector on port 0 over a temporary table, and an independent read-back of the
//! Delta table (delta-rs for the file list, the Parquet reader for the rows).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Date32Type, Int32Type, Int64Type, TimestampMicrosecondType};
use otel_delta::{ServeArgs, ServeError};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// `ServeArgs` as the command line would give them.
pub fn serve_args(args: &[&str]) -> ServeArgs {
    ServeArgs::try_parse_from(args).expect("test arguments parse")
}

/// A collector serving on 127.0.0.1:0 in this process, its metrics on another port 0.
pub struct Collector {
    pub addr: SocketAddr,
    /// Where `GET /metrics` answers.
    pub metrics_addr: SocketAddr,
    pub table: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
    _dir: Option<tempfile::TempDir>,
}

impl Collector {
    /// A fresh table in a temporary directory, short flush interval.
    pub async fn start(extra: &[&str]) -> Collector {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("spans");
        let mut c = Collector::start_at(&table, extra).await.unwrap();
        c._dir = Some(dir);
        c
    }

    /// Serve the table at `table` (created if missing). Errors of start-up (table refused) are returned.
    pub async fn start_at(table: &Path, extra: &[&str]) -> Result<Collector, ServeError> {
        let mut args = vec!["--table", table.to_str().unwrap(), "--http-addr", "127.0.0.1:0", "--grpc-addr", "off"];
        if !extra.contains(&"--flush-interval") {
            args.extend_from_slice(&["--flush-interval", "200ms"]);
        }
        args.extend_from_slice(extra);
        let config = serve_args(&args).resolve().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_addr = metrics.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let collector = otel_delta::Collector::open(config).await?.with_metrics_listener(metrics);
            collector
                .serve(vec![listener], async move {
                    let _ = rx.await;
                })
                .await
        });
        // Start-up either fails (task ends) or serves /health (with TLS, which needs the test's certificates:
        // /metrics, served once the collector is open).
        let client = reqwest::Client::new();
        let probe = match extra.contains(&"--tls-cert") {
            true => format!("http://{metrics_addr}/metrics"),
            false => format!("http://{addr}/health"),
        };
        loop {
            if task.is_finished() {
                return Err(task.await.unwrap().unwrap_err());
            }
            if let Ok(r) = client.get(&probe).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Ok(Collector { addr, metrics_addr, table: table.to_owned(), shutdown: Some(tx), task, _dir: None })
    }

    /// The gRPC endpoint (gRPC and HTTP share the listener).
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn traces_url(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// The collector's own metrics, as `GET /metrics` answers them now.
    pub async fn metrics(&self) -> String {
        let response = reqwest::get(format!("http://{}/metrics", self.metrics_addr)).await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
        response.text().await.unwrap()
    }

    /// Shut down as SIGTERM would, and wait for the drain. The table stays on disk while the result lives.
    pub async fn stop(mut self) -> Result<Stopped, ServeError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.unwrap()?;
        Ok(Stopped { table: self.table.clone(), _dir: self._dir.take() })
    }
}

/// A stopped collector's table (and the temporary folder holding it).
pub struct Stopped {
    pub table: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl AsRef<Path> for Stopped {
    fn as_ref(&self) -> &Path {
        &self.table
    }
}

/// The `file://` URL of an existing local table folder.
pub fn table_url(path: &Path) -> url::Url {
    url::Url::from_directory_path(std::fs::canonicalize(path).unwrap()).unwrap()
}

/// Every row of the table, as JSON objects (column name → value), in file order.
pub async fn read_rows(table: impl AsRef<Path>) -> Vec<Value> {
    let url = table_url(table.as_ref());
    let table = deltalake::open_table(url).await.unwrap();
    let mut rows = Vec::new();
    for uri in table.get_file_uris().unwrap() {
        let path = match url::Url::parse(&uri) {
            Ok(url) => url.to_file_path().unwrap(),
            Err(_) => PathBuf::from(&uri),
        };
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap().build().unwrap();
        for batch in reader {
            rows.extend(batch_rows(&batch.unwrap()));
        }
    }
    rows
}

/// Every row of the table at `url` (any store deltalake opens: `s3://`, `az://`, `file://`), as JSON objects in
/// file order. Each data file is read through the table's own object store, so this works where the files are
/// not on local disk. Call `otel_delta::register_object_stores()` before opening cloud URLs.
pub async fn read_rows_at(url: &url::Url, storage_options: HashMap<String, String>) -> Vec<Value> {
    use object_store::ObjectStoreExt as _;
    let table = deltalake::open_table_with_storage_options(url.clone(), storage_options)
        .await
        .unwrap_or_else(|e| panic!("opening the table at {url}: {e}"));
    let store = table.log_store().object_store(None);
    let mut rows = Vec::new();
    for add in table.snapshot().unwrap().log_data() {
        let path = add.object_store_path();
        let bytes =
            store.get(&path).await.unwrap_or_else(|e| panic!("reading {path} of {url}: {e}")).bytes().await.unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap();
        for batch in reader {
            rows.extend(batch_rows(&batch.unwrap()));
        }
    }
    rows
}

/// The rows of a batch as JSON: maps as `[[key, value], ...]` in entry order.
pub fn batch_rows(batch: &RecordBatch) -> Vec<Value> {
    (0..batch.num_rows())
        .map(|row| {
            let mut object = serde_json::Map::new();
            for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                object.insert(field.name().clone(), cell(column.as_ref(), row));
            }
            Value::Object(object)
        })
        .collect()
}

fn cell(array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Utf8 => json!(array.as_string::<i32>().value(row)),
        DataType::Utf8View => json!(array.as_string_view().value(row)),
        DataType::Int32 => json!(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => json!(array.as_primitive::<Int64Type>().value(row)),
        DataType::Timestamp(_, _) => json!({"micros": array.as_primitive::<TimestampMicrosecondType>().value(row)}),
        DataType::Date32 => json!({"days": array.as_primitive::<Date32Type>().value(row)}),
        DataType::Struct(fields) if is_variant(fields) => {
            let s = array.as_struct();
            let bytes = |c: &dyn Array| match c.as_binary_view_opt() {
                Some(b) => b.value(row).to_vec(),
                None => c.as_binary::<i32>().value(row).to_vec(),
            };
            let (metadata, value) = (bytes(s.column(0).as_ref()), bytes(s.column(1).as_ref()));
            variant_json(&parquet::variant::Variant::new(&metadata, &value))
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            Value::Object(
                fields.iter().zip(s.columns()).map(|(f, c)| (f.name().clone(), cell(c.as_ref(), row))).collect(),
            )
        }
        DataType::List(_) => {
            let items = array.as_list::<i32>().value(row);
            Value::Array((0..items.len()).map(|i| cell(items.as_ref(), i)).collect())
        }
        DataType::Map(_, _) => {
            let entries = array.as_map().value(row);
            let (keys, values) = (entries.column(0), entries.column(1));
            Value::Array(
                (0..entries.len()).map(|i| json!([cell(keys.as_ref(), i), cell(values.as_ref(), i)])).collect(),
            )
        }
        other => panic!("unexpected column type {other}"),
    }
}

/// A VARIANT column as Parquet and Arrow readers see it: a struct of exactly `metadata` and `value` bytes.
fn is_variant(fields: &arrow::datatypes::Fields) -> bool {
    fields.len() == 2 && fields[0].name() == "metadata" && fields[1].name() == "value"
}

/// A VARIANT value, decoded by the `parquet-variant` reader, as JSON that keeps its type: strings, booleans,
/// arrays and objects as themselves; `{"int": n}` for integers of any width, `{"double": d}` (`"NaN"`,
/// `"Infinity"`, `"-Infinity"` as strings), `{"binary": hex}`; variant null as JSON null. Other variant types
/// (decimals, dates, ...) are never written by otel-delta and show as `{"other": debug}`.
pub fn variant_json(value: &parquet::variant::Variant<'_, '_>) -> Value {
    use parquet::variant::Variant as V;
    match value {
        V::Null => Value::Null,
        V::BooleanTrue => json!(true),
        V::BooleanFalse => json!(false),
        V::Int8(i) => json!({"int": i}),
        V::Int16(i) => json!({"int": i}),
        V::Int32(i) => json!({"int": i}),
        V::Int64(i) => json!({"int": i}),
        V::Double(d) => json!({"double": double_json(*d)}),
        V::String(s) => json!(s),
        V::ShortString(s) => json!(s.as_str()),
        V::Binary(b) => json!({"binary": b.iter().map(|b| format!("{b:02x}")).collect::<String>()}),
        V::List(list) => Value::Array(list.iter().map(|v| variant_json(&v)).collect()),
        V::Object(object) => Value::Object(object.iter().map(|(k, v)| (k.to_owned(), variant_json(&v))).collect()),
        other => json!({"other": format!("{other:?}")}),
    }
}

/// A double as JSON, with the non-finite ones as strings.
pub fn double_json(d: f64) -> Value {
    if d.is_nan() {
        json!("NaN")
    } else if d.is_infinite() {
        json!(if d > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(d)
    }
}

/// Look up a map cell's value by key.
pub fn map_get<'v>(map: &'v Value, key: &str) -> Option<&'v Value> {
    map.as_array()?.iter().find(|e| e[0] == key).map(|e| &e[1])
}

/// A v2 spans table at `path` as the Databricks workspace creates one (written by hand, from the Delta protocol
/// and `otel-tables.md`): writer features the Delta library's commit path refuses (clustering, domainMetadata,
/// rowTracking, inCommitTimestamp, the legacy invariants) plus `extra_writer_features`, clustering domain
/// metadata, and a row-id high-water mark of 99 (rows written before). Its in-commit timestamp is a day ahead of
/// the clock, so a writer must take it into account. A checkpoint is due every 2 versions. Returns that timestamp.
pub fn workspace_made_v2_table(path: &Path, extra_writer_features: &[&str]) -> i64 {
    let (entry, ict) = workspace_made_v2_log(extra_writer_features);
    let log = path.join("_delta_log");
    std::fs::create_dir_all(&log).unwrap();
    std::fs::write(log.join(format!("{:020}.json", 0)), entry).unwrap();
    ict
}

/// The first log entry of [`workspace_made_v2_table`], and its in-commit timestamp.
pub fn workspace_made_v2_log(extra_writer_features: &[&str]) -> (String, i64) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let ict = now + 86_400_000;
    let schema = serde_json::to_string(otel_delta::Contract::spans_v2().delta_schema()).unwrap();
    let mut writer_features = vec![
        "appendOnly",
        "invariants",
        "deletionVectors",
        "variantType",
        "v2Checkpoint",
        "vacuumProtocolCheck",
        "clustering",
        "domainMetadata",
        "rowTracking",
        "inCommitTimestamp",
    ];
    writer_features.extend_from_slice(extra_writer_features);
    let actions = [
        json!({"commitInfo": {"timestamp": now, "inCommitTimestamp": ict, "operation": "CREATE TABLE",
            "operationParameters": {"clusterBy": "[\"time\",\"service_name\",\"trace_id\"]"},
            "engineInfo": "Databricks-Runtime/17.3.x-scala2.13"}}),
        json!({"protocol": {"minReaderVersion": 3, "minWriterVersion": 7,
            "readerFeatures": ["deletionVectors", "variantType", "v2Checkpoint", "vacuumProtocolCheck"],
            "writerFeatures": writer_features}}),
        json!({"metaData": {"id": "3f1c2a9e-5d7b-4e8a-9c61-0b2d4f6a8e10", "format": {"provider": "parquet", "options": {}},
            "schemaString": schema, "partitionColumns": [], "createdTime": now,
            "configuration": {
                "otel.schemaVersion": "v2",
                "delta.checkpointPolicy": "classic",
                "delta.checkpointInterval": "2",
                "delta.enableDeletionVectors": "true",
                "delta.enableRowTracking": "true",
                "delta.rowTracking.materializedRowIdColumnName": "_row-id-col-5e3b6c1e",
                "delta.rowTracking.materializedRowCommitVersionColumnName": "_row-commit-version-col-7a9d2f40",
                "delta.enableInCommitTimestamps": "true",
                "delta.inCommitTimestampEnablementVersion": "0",
                "delta.inCommitTimestampEnablementTimestamp": ict.to_string()}}}),
        json!({"domainMetadata": {"domain": "delta.clustering", "removed": false,
            "configuration": "{\"clusteringColumns\":[[\"time\"],[\"service_name\"],[\"trace_id\"]],\"domainName\":\"delta.clustering\"}"}}),
        json!({"domainMetadata": {"domain": "delta.rowTracking", "removed": false,
            "configuration": "{\"rowIdHighWaterMark\":99,\"domainName\":\"delta.rowTracking\"}"}}),
    ];
    let lines: Vec<String> = actions.iter().map(Value::to_string).collect();
    (lines.join("\n") + "\n", ict)
}

/// The actions of log entry `version` of the local table at `path`.
pub fn log_entry(path: &Path, version: u64) -> Vec<Value> {
    let text = std::fs::read_to_string(path.join("_delta_log").join(format!("{version:020}.json"))).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Run `otel-delta serve` against a Databricks workspace at `host` (PAT auth, no experiment, plain HTTP allowed)
/// with `args` (after `serve`, loopback port 0, no gRPC) and `env`, expecting start-up to fail; returns what it
/// printed on stderr.
pub async fn serve_refused(host: String, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_otel-delta"));
    command.args(["serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "off"]).args(args);
    command.env("DATABRICKS_HOST", host).env("DATABRICKS_TOKEN", crate::databricks::PAT).env("NO_COLOR", "1");
    command.env("OTEL_DELTA_METRICS_ADDR", "off").env("OTEL_DELTA_INSECURE_DATABRICKS_HTTP", "true");
    command.env_remove("MLFLOW_EXPERIMENT_NAME").envs(env.iter().copied());
    let output = command.output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "otel-delta serve {args:?} started:\n{stderr}");
    stderr
}
