//! Configuration: command-line flags, each with an environment variable (the original app's `app.yaml` names
//! for the table location), resolved and validated into a [`Config`] before anything starts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use url::Url;

use crate::batch::{FlushPolicy, MAX_BATCH_BYTES};
use crate::databricks::DatabricksConfig;
use crate::encode::Codec;
use crate::pipeline::{retry_after, PipelineConfig};
use crate::receiver::HttpConfig;
use crate::store::{UploadConfig, MIN_PART_SIZE};

/// Largest accepted `--max-request-size`: one request's strings must fit Arrow's 2 GiB array offsets even
/// after JSON escaping of nested values (up to 6x).
pub(crate) const MAX_REQUEST_LIMIT: u64 = 256 * 1024 * 1024;

/// Where the spans table is: flags shared by `serve`, `optimize` and `vacuum`.
#[derive(Debug, Clone, clap::Args)]
pub struct TableArgs {
    /// The spans table: a local path, or a file://, s3:// (s3a://), az:// (abfss://, adl://) or gs:// URL.
    /// Default: derived from the warehouse and UC names.
    #[arg(long, env = "OTEL_DELTA_TABLE")]
    pub table: Option<String>,
    /// Warehouse holding <catalog>/<schema>/<prefix>_otel_spans: a local folder or an object store URL.
    #[arg(long, env = "OTEL_DELTA_WAREHOUSE", default_value = "./otel-warehouse")]
    pub warehouse: String,
    /// Catalog name (Unity Catalog naming, as in the original app.yaml).
    #[arg(long, env = "UC_CATALOG_NAME", default_value = "main")]
    pub catalog: String,
    /// Schema name.
    #[arg(long, env = "UC_SCHEMA_NAME", default_value = "default")]
    pub schema: String,
    /// Table prefix: the spans table is <prefix>_otel_spans.
    #[arg(long, env = "UC_TABLE_PREFIX_NAME", default_value = "otel")]
    pub table_prefix: String,
    /// Object store option, key=value (repeatable), e.g. aws_endpoint=http://127.0.0.1:9000. Credentials and
    /// endpoints are also read from the usual AWS_*, AZURE_*, GOOGLE_* environment variables.
    #[arg(long = "storage-option", env = "OTEL_DELTA_STORAGE_OPTIONS", value_delimiter = ',', value_parser = parse_key_value)]
    pub storage_options: Vec<(String, String)>,
}

/// A resolved table location.
#[derive(Debug, Clone)]
pub struct TableLocation {
    /// Always ends with `/`.
    pub url: Url,
    pub storage_options: HashMap<String, String>,
}

/// Object store client retries, unless the user set them: a few quick retries with backoff, so a failing store
/// turns into 503s within seconds rather than the client's default of minutes.
const DEFAULT_STORE_RETRIES: [(&str, &str); 2] = [("max_retries", "3"), ("retry_timeout", "20s")];

impl TableArgs {
    pub fn resolve(&self) -> Result<TableLocation, ConfigError> {
        let url = match &self.table {
            Some(table) => table_url(table)?,
            None => {
                for (name, value) in [
                    ("UC_CATALOG_NAME", &self.catalog),
                    ("UC_SCHEMA_NAME", &self.schema),
                    ("UC_TABLE_PREFIX_NAME", &self.table_prefix),
                ] {
                    if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                        return Err(ConfigError::BadName { name, value: value.clone() });
                    }
                }
                let name = format!("{}_otel_spans", self.table_prefix);
                if self.warehouse.contains("://") {
                    let warehouse = self.warehouse.trim_end_matches('/');
                    table_url(&format!("{warehouse}/{}/{}/{name}", self.catalog, self.schema))?
                } else {
                    let path = Path::new(&self.warehouse).join(&self.catalog).join(&self.schema).join(name);
                    local_table_url(&path).map_err(|e| ConfigError::BadTable(path.display().to_string(), e))?
                }
            }
        };
        let mut storage_options: HashMap<String, String> = self.storage_options.iter().cloned().collect();
        if url.scheme() != "file" {
            for (key, value) in DEFAULT_STORE_RETRIES {
                storage_options.entry(key.to_owned()).or_insert_with(|| value.to_owned());
            }
        }
        Ok(TableLocation { url, storage_options })
    }
}

/// Flags of `otel-delta serve`, as parsed (raw).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address of the OTLP/HTTP listener.
    #[arg(long, env = "OTEL_DELTA_HTTP_ADDR", default_value = "127.0.0.1:4318")]
    pub http_addr: SocketAddr,
    /// Port of the OTLP/HTTP listener, replacing the port of --http-addr (for platforms that hand out a port, like
    /// Databricks Apps' $DATABRICKS_APP_PORT).
    #[arg(long, env = "OTEL_DELTA_HTTP_PORT")]
    pub http_port: Option<u16>,
    /// Address of the OTLP/gRPC listener (OTLP/HTTP is served there too); `off` to disable.
    #[arg(long, env = "OTEL_DELTA_GRPC_ADDR", default_value = "127.0.0.1:4317")]
    pub grpc_addr: String,
    /// Origins browsers may send spans from (CORS), comma-separated; `*` for any.
    #[arg(long, env = "OTEL_DELTA_CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Vec<String>,
    #[command(flatten)]
    pub table: TableArgs,
    /// Longest a request waits for its file to be sealed and committed (e.g. 1s, 500ms).
    #[arg(long, env = "OTEL_DELTA_FLUSH_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub flush_interval: Duration,
    /// Seal a data file once this much OTLP request data went into it (e.g. 128MiB).
    #[arg(long, env = "OTEL_DELTA_TARGET_FILE_SIZE", default_value = "128MiB", value_parser = parse_size)]
    pub target_file_size: u64,
    /// Parquet compression: zstd[:level], snappy, lz4, gzip[:level], none.
    #[arg(long, env = "OTEL_DELTA_COMPRESSION", default_value = "zstd:1")]
    pub compression: Codec,
    /// Largest request body, after decompression; larger ones get 413.
    #[arg(long, env = "OTEL_DELTA_MAX_REQUEST_SIZE", default_value = "64MiB", value_parser = parse_size)]
    pub max_request_size: u64,
    /// Request bytes accepted but not yet committed; beyond it requests get 503 + Retry-After.
    #[arg(long, env = "OTEL_DELTA_MAX_INFLIGHT_SIZE", default_value = "512MiB", value_parser = parse_size)]
    pub max_inflight_size: u64,
    /// Batching worker threads (decode, columns, Parquet). Default: one per CPU.
    #[arg(long, env = "OTEL_DELTA_WORKERS")]
    pub workers: Option<usize>,
    /// Data files larger than this go to the store as multipart uploads in parts of this size (at least 5MiB).
    #[arg(long, env = "OTEL_DELTA_UPLOAD_PART_SIZE", default_value = "16MiB", value_parser = parse_size)]
    pub upload_part_size: u64,
    /// Parts of one file uploaded at once.
    #[arg(long, env = "OTEL_DELTA_UPLOAD_CONCURRENCY", default_value = "4")]
    pub upload_concurrency: usize,
    /// Longest wait for any one store operation; past it the upload fails and its requests get 503.
    #[arg(long, env = "OTEL_DELTA_UPLOAD_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub upload_timeout: Duration,
    /// Compact small files every this often while serving (e.g. 10m); off by default (run `otel-delta optimize`).
    #[arg(long, env = "OTEL_DELTA_OPTIMIZE_INTERVAL", value_parser = parse_duration)]
    pub optimize_interval: Option<Duration>,
    /// Where spans go: `delta` (the table of --table / --warehouse), `unity-catalog` (the Unity Catalog table
    /// <catalog>.<schema>.<prefix>_otel_spans, or the one MLflow linking names, written directly with credentials
    /// Unity Catalog vends; needs DATABRICKS_HOST) or `zerobus` (that table, through Databricks Zerobus Ingest:
    /// for managed tables; needs DATABRICKS_HOST and --zerobus-endpoint).
    #[arg(long, env = "OTEL_DELTA_SINK", default_value = "delta", value_parser = ["delta", "unity-catalog", "zerobus"])]
    pub sink: String,
    /// zerobus sink: the workspace's Zerobus endpoint, https://<workspace-id>.zerobus.<region>.cloud.databricks.com
    /// (Azure: …azuredatabricks.net).
    #[arg(long, env = "ZEROBUS_ENDPOINT")]
    pub zerobus_endpoint: Option<String>,
    /// MLflow experiment to link to the Unity Catalog trace tables at start-up (needs DATABRICKS_HOST).
    #[arg(long, env = "MLFLOW_EXPERIMENT_NAME")]
    pub experiment: Option<String>,
    /// unity-catalog sink: create the table as an EXTERNAL Delta table at this location if it is missing.
    #[arg(long, env = "OTEL_DELTA_UC_STORAGE_LOCATION")]
    pub uc_storage_location: Option<String>,
}

/// Flags of `otel-delta optimize`.
#[derive(Debug, Clone, clap::Args)]
pub struct OptimizeArgs {
    #[command(flatten)]
    pub table: TableArgs,
    /// Files below this size are compacted into files of about this size.
    #[arg(long, env = "OTEL_DELTA_OPTIMIZE_TARGET_SIZE", default_value = "128MiB", value_parser = parse_size)]
    pub target_size: u64,
    /// Parquet compression of the rewritten files.
    #[arg(long, env = "OTEL_DELTA_COMPRESSION", default_value = "zstd:1")]
    pub compression: Codec,
}

/// Flags of `otel-delta vacuum`.
#[derive(Debug, Clone, clap::Args)]
pub struct VacuumArgs {
    #[command(flatten)]
    pub table: TableArgs,
    /// Only files unreferenced for longer than this are deleted (default: 7 days, Delta's default).
    #[arg(long, default_value = "168h", value_parser = parse_duration)]
    pub retention: Duration,
    /// List what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Allow a retention shorter than the table's delta.deletedFileRetentionDuration (readers of older versions,
    /// and uploads in flight, may then lose files).
    #[arg(long)]
    pub allow_short_retention: bool,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} {value:?} must be a plain name (letters, digits, '_', '-'), as in Unity Catalog")]
    BadName { name: &'static str, value: String },
    #[error("--table {0:?}: {1}")]
    BadTable(String, String),
    #[error("{0}")]
    Invalid(String),
}

/// Validated configuration of `serve`.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) http_addr: SocketAddr,
    pub(crate) grpc_addr: Option<SocketAddr>,
    pub(crate) table_url: Url,
    pub(crate) storage_options: HashMap<String, String>,
    pub(crate) http: HttpConfig,
    pub(crate) pipeline: PipelineConfig,
    /// Compaction inside `serve`, if enabled.
    pub(crate) optimize_interval: Option<Duration>,
    /// Databricks start-up (experiment linking, Unity Catalog sink), if configured.
    pub(crate) databricks: Option<DatabricksConfig>,
}

impl Config {
    /// Where OTLP/HTTP (and gRPC) is served.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where OTLP/gRPC (and HTTP) is served too, if anywhere.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc_addr
    }

    /// The table `--table` (or the warehouse) names.
    pub fn table_url(&self) -> &Url {
        &self.table_url
    }

    /// Call `hook` on a batch worker thread once it has been idle a while after sealing an output: lets the
    /// binary hand that thread's freed memory back to the OS (the library does not own the allocator).
    pub fn on_worker_idle(&mut self, hook: fn()) {
        self.pipeline.on_idle = Some(hook);
    }
}

/// `serve`'s flags alone, for [`ServeArgs::try_parse_from`].
#[derive(clap::Parser)]
#[command(name = "otel-delta serve")]
struct ServeCommand {
    #[command(flatten)]
    serve: ServeArgs,
}

impl ServeArgs {
    /// Parse `serve`'s flags (and their environment variables) from `args`, which do not include the program
    /// name or the subcommand: `["--table", "/tmp/t", "--grpc-addr", "off"]`.
    pub fn try_parse_from<I, T>(args: I) -> Result<ServeArgs, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::Parser as _;
        let program = std::iter::once(std::ffi::OsString::from("otel-delta serve"));
        ServeCommand::try_parse_from(program.chain(args.into_iter().map(Into::into))).map(|c| c.serve)
    }

    /// Check every value and derive the table location.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let TableLocation { url: table_url, storage_options } = self.table.resolve()?;
        if self.max_request_size == 0 || self.max_request_size > MAX_REQUEST_LIMIT {
            return Err(ConfigError::Invalid(format!(
                "--max-request-size must be between 1 byte and {MAX_REQUEST_LIMIT} bytes"
            )));
        }
        if self.max_inflight_size < self.max_request_size {
            return Err(ConfigError::Invalid(
                "--max-inflight-size must be at least --max-request-size, or a largest request could never be admitted"
                    .into(),
            ));
        }
        if self.flush_interval.is_zero() {
            return Err(ConfigError::Invalid("--flush-interval must be above zero".into()));
        }
        if self.target_file_size == 0 {
            return Err(ConfigError::Invalid("--target-file-size must be above zero".into()));
        }
        if (self.upload_part_size as usize) < MIN_PART_SIZE || self.upload_part_size > 5 * 1024 * 1024 * 1024 {
            return Err(ConfigError::Invalid("--upload-part-size must be between 5MiB and 5GiB (S3's limits)".into()));
        }
        if self.upload_concurrency == 0 || self.upload_timeout.is_zero() {
            return Err(ConfigError::Invalid("--upload-concurrency and --upload-timeout must be above zero".into()));
        }
        if self.optimize_interval.is_some_and(|i| i.is_zero()) {
            return Err(ConfigError::Invalid("--optimize-interval must be above zero".into()));
        }
        let unity_catalog_sink = self.sink == "unity-catalog";
        let zerobus_endpoint = match (self.sink == "zerobus", self.zerobus_endpoint.as_deref().map(str::trim)) {
            (false, _) => None,
            (true, Some(endpoint)) if !endpoint.is_empty() => Some(endpoint.to_owned()),
            (true, _) => {
                return Err(ConfigError::Invalid("--sink zerobus needs --zerobus-endpoint (ZEROBUS_ENDPOINT)".into()))
            }
        };
        if zerobus_endpoint.is_some() && self.optimize_interval.is_some() {
            return Err(ConfigError::Invalid(
                "--optimize-interval compacts Delta tables otel-delta writes; Zerobus tables are managed by Databricks"
                    .into(),
            ));
        }
        let experiment = self.experiment.clone().filter(|e| !e.trim().is_empty());
        let databricks =
            (unity_catalog_sink || zerobus_endpoint.is_some() || experiment.is_some()).then(|| DatabricksConfig {
                experiment,
                unity_catalog_sink,
                zerobus_endpoint,
                catalog: self.table.catalog.clone(),
                schema: self.table.schema.clone(),
                table_prefix: self.table.table_prefix.clone(),
                storage_location: self.uc_storage_location.clone(),
            });
        let workers = match self.workers {
            Some(0) => return Err(ConfigError::Invalid("--workers must be at least 1".into())),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        let mut http_addr = self.http_addr;
        if let Some(port) = self.http_port {
            http_addr.set_port(port);
        }
        Ok(Config {
            http_addr,
            grpc_addr: parse_optional_addr(&self.grpc_addr).map_err(ConfigError::Invalid)?,
            table_url,
            storage_options,
            http: HttpConfig {
                max_request_bytes: self.max_request_size,
                retry_after: retry_after(self.flush_interval),
                drain_timeout: Duration::from_secs(30),
                cors_allowed_origins: self.cors_allowed_origins.iter().map(|o| o.trim().to_owned()).collect(),
            },
            pipeline: PipelineConfig {
                workers,
                codec: self.compression,
                flush: FlushPolicy {
                    target_file_bytes: self.target_file_size,
                    max_age: self.flush_interval,
                    batch_bytes: MAX_BATCH_BYTES.min(self.target_file_size),
                },
                upload: UploadConfig {
                    part_size: self.upload_part_size as usize,
                    concurrency: self.upload_concurrency,
                    timeout: self.upload_timeout,
                },
                max_inflight_bytes: self.max_inflight_size,
                queue_depth: 1024,
                on_idle: None,
            },
            optimize_interval: self.optimize_interval,
            databricks,
        })
    }
}

/// Object store schemes this build writes to.
const OBJECT_STORE_SCHEMES: &[&str] = &["s3", "s3a", "az", "azure", "abfs", "abfss", "adl", "gs"];

/// `--table`: a local path (created if missing), or a URL of a local or object store folder.
fn table_url(table: &str) -> Result<Url, ConfigError> {
    let bad = |why: String| ConfigError::BadTable(table.to_owned(), why);
    if let Some((scheme, _)) = table.split_once("://") {
        let mut url = Url::parse(table).map_err(|e| bad(e.to_string()))?;
        return match scheme {
            "file" => {
                let path = url.to_file_path().map_err(|()| bad("not a local file URL".into()))?;
                local_table_url(&path).map_err(bad)
            }
            s if OBJECT_STORE_SCHEMES.contains(&s) => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(bad(format!("{s}:// needs a bucket or container, e.g. {s}://bucket/spans")));
                }
                // A table is a folder: a trailing slash keeps joined paths inside it.
                if !url.path().ends_with('/') {
                    url.set_path(&format!("{}/", url.path()));
                }
                Ok(url)
            }
            other => Err(bad(format!(
                "{other}:// is not a supported table location; use a local path, file://, s3://, s3a://, az://, \
                 abfss://, adl:// or gs://"
            ))),
        };
    }
    local_table_url(Path::new(table)).map_err(bad)
}

fn local_table_url(path: &Path) -> Result<Url, String> {
    std::fs::create_dir_all(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let path = std::fs::canonicalize(path).map_err(|e| format!("cannot resolve {}: {e}", path.display()))?;
    Url::from_directory_path(&path).map_err(|()| format!("{} is not an absolute path", path.display()))
}

/// `1s`, `500ms`, `2m`, `1.5s`, `168h`, `7d`, or a plain number of seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number.trim().parse().map_err(|_| format!("bad duration {s:?}: use e.g. 1s, 500ms, 2m"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        _ => return Err(format!("bad duration unit in {s:?}: use ms, s, m, h or d")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("bad duration {s:?}: {e}"))
}

/// `128MiB`, `64MB`, `1GiB`, `512KiB`, `1k`, or a plain number of bytes.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number.trim().parse().map_err(|_| format!("bad size {s:?}: use e.g. 64MiB"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("bad size unit in {s:?}: use B, KiB, MiB, GiB, KB, MB or GB")),
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("size {s:?} out of range"));
    }
    Ok(bytes as u64)
}

fn parse_optional_addr(s: &str) -> Result<Option<SocketAddr>, String> {
    match s.trim() {
        "" | "off" | "none" => Ok(None),
        addr => addr.parse().map(Some).map_err(|e| format!("--grpc-addr {addr:?}: {e}")),
    }
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("storage option {s:?} must be key=value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> ServeArgs {
        ServeArgs::try_parse_from(extra).unwrap()
    }

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("10 MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("17").unwrap(), 17);
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("168h").unwrap(), Duration::from_secs(7 * 86400));
        assert!(parse_duration("1y").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn table_is_derived_from_warehouse_and_uc_names() {
        let dir = tempfile::tempdir().unwrap();
        let wh = dir.path().to_str().unwrap();
        let config = args(&["--warehouse", wh, "--catalog", "cat", "--schema", "sch", "--table-prefix", "app"])
            .resolve()
            .unwrap();
        assert!(config.table_url.as_str().ends_with("/cat/sch/app_otel_spans/"), "{}", config.table_url);
        assert!(config.table_url.as_str().starts_with("file:///"));
    }

    #[test]
    fn bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let wh = dir.path().to_str().unwrap();
        assert!(matches!(args(&["--warehouse", wh, "--schema", "../x"]).resolve(), Err(ConfigError::BadName { .. })));
        assert!(args(&["--table", "s3:///t"]).resolve().is_err());
        assert!(args(&["--table", "ftp://host/t"]).resolve().is_err());
        assert!(args(&["--warehouse", wh, "--upload-part-size", "1MiB"]).resolve().is_err());
        assert!(args(&["--warehouse", wh, "--max-request-size", "1GiB"]).resolve().is_err());
        assert!(args(&["--warehouse", wh, "--max-request-size", "64MiB", "--max-inflight-size", "1MiB"])
            .resolve()
            .is_err());
        assert!(args(&["--warehouse", wh, "--workers", "0"]).resolve().is_err());
    }

    #[test]
    fn object_store_tables_are_folders_with_default_retries() {
        let config = args(&["--table", "s3://bucket/spans", "--storage-option", "max_retries=7"]).resolve().unwrap();
        assert_eq!(config.table_url.as_str(), "s3://bucket/spans/");
        assert_eq!(config.storage_options["max_retries"], "7");
        assert_eq!(config.storage_options["retry_timeout"], "20s");
        let config = args(&["--warehouse", "abfss://c@acct.dfs.core.windows.net/wh/", "--catalog", "c1"]).resolve();
        assert_eq!(
            config.unwrap().table_url.as_str(),
            "abfss://c@acct.dfs.core.windows.net/wh/c1/default/otel_otel_spans/"
        );
    }

    #[test]
    fn a_platform_port_replaces_the_listen_port() {
        let dir = tempfile::tempdir().unwrap();
        let wh = dir.path().to_str().unwrap();
        let config = args(&["--warehouse", wh, "--http-addr", "0.0.0.0:8000", "--http-port", "8123"]).resolve();
        assert_eq!(config.unwrap().http_addr, "0.0.0.0:8123".parse().unwrap());
    }

    #[test]
    fn explicit_table_path_and_file_url() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let by_path = args(&["--table", path.to_str().unwrap()]).resolve().unwrap().table_url;
        let url = Url::from_directory_path(&path).unwrap();
        let by_url = args(&["--table", url.as_str()]).resolve().unwrap().table_url;
        assert_eq!(by_path, by_url);
    }
}
