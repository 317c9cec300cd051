//! Configuration: command-line flags, each with an environment variable, resolved and validated into a [`Config`]
//! before anything starts. The table location reads the environment names of the Python Databricks App this
//! replaces (`UC_CATALOG_NAME`, `UC_SCHEMA_NAME`, `UC_TABLE_PREFIX_NAME`), so its `app.yaml` keeps working.
//!
//! Each component owns its section of flags (receiver, pipeline, store uploads, Databricks), their defaults and
//! their validation; this module puts the sections together and checks what spans two of them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use url::Url;

use crate::databricks::{DatabricksArgs, DatabricksConfig, DatabricksSink};
use crate::decode::Signal;
use crate::encode::Codec;
use crate::pipeline::{PipelineArgs, PipelineConfig};
use crate::receiver::{HttpConfig, ReceiverArgs};
use crate::settings::{parse_duration, parse_size, InvalidSetting, Listen};
use crate::table::{beside_spans, table_word, Layout};

/// Where the tables are: flags shared by `serve`, `optimize` and `vacuum`.
#[derive(Debug, Clone, clap::Args)]
pub struct TableArgs {
    /// The spans table: a local path, or a file://, s3:// (s3a://), az:// (abfss://, adl://) or gs:// URL.
    /// Default: derived from the warehouse and UC names.
    #[arg(long, env = "OTEL_DELTA_TABLE")]
    pub table: Option<String>,
    /// The logs table, as --table. Default: beside the spans table, its name's `spans` ending replaced by `logs`
    /// (`…/otel_otel_spans` → `…/otel_otel_logs`; another name gets `_logs` appended).
    #[arg(long, env = "OTEL_DELTA_LOGS_TABLE")]
    pub logs_table: Option<String>,
    /// Warehouse holding <catalog>/<schema>/<prefix>_otel_spans (and _otel_logs): a local folder or an object store
    /// URL.
    #[arg(long, env = "OTEL_DELTA_WAREHOUSE", default_value = "./otel-warehouse")]
    pub warehouse: String,
    /// Catalog name (Unity Catalog naming; `UC_CATALOG_NAME` as the Python app's app.yaml sets it).
    #[arg(long, env = "UC_CATALOG_NAME", default_value = "main")]
    pub catalog: String,
    /// Schema name.
    #[arg(long, env = "UC_SCHEMA_NAME", default_value = "default")]
    pub schema: String,
    /// Table prefix: the spans table is <prefix>_otel_spans.
    #[arg(long, env = "UC_TABLE_PREFIX_NAME", default_value = "otel")]
    pub table_prefix: String,
    /// Object store option, key=value (repeatable), e.g. aws_endpoint=http://127.0.0.1:9000. Credentials and
    /// endpoints are also read from the usual AWS_*, AZURE_*, GOOGLE_* environment variables; secrets belong there
    /// or in --storage-options-file, not on the command line (which `ps` shows).
    #[arg(
        long = "storage-option",
        env = "OTEL_DELTA_STORAGE_OPTIONS",
        hide_env_values = true,
        value_delimiter = ',',
        value_parser = parse_key_value
    )]
    pub storage_options: Vec<(String, String)>,
    /// A file of object store options, key=value a line (`#` comments), read at start-up; --storage-option
    /// overrides a key it also sets.
    #[arg(long, env = "OTEL_DELTA_STORAGE_OPTIONS_FILE")]
    pub storage_options_file: Option<std::path::PathBuf>,
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
    /// Where the spans table is.
    pub fn resolve(&self) -> Result<TableLocation, ConfigError> {
        self.resolve_signal(Signal::Traces)
    }

    /// Where the table of `signal` is: its own flag, else beside an explicit --table, else in the warehouse.
    pub fn resolve_signal(&self, signal: Signal) -> Result<TableLocation, ConfigError> {
        self.locate(signal, &self.given_storage_options()?)
    }

    /// Where the tables of `signals` are, the storage options file read once for all of them.
    pub fn resolve_signals(
        &self,
        signals: impl IntoIterator<Item = Signal>,
    ) -> Result<Vec<(Signal, TableLocation)>, ConfigError> {
        let given = self.given_storage_options()?;
        signals.into_iter().map(|signal| Ok((signal, self.locate(signal, &given)?))).collect()
    }

    /// The object store options the user gave: `--storage-options-file`, overridden by `--storage-option`.
    fn given_storage_options(&self) -> Result<HashMap<String, String>, ConfigError> {
        let mut options = match &self.storage_options_file {
            Some(path) => read_storage_options(path)?,
            None => HashMap::new(),
        };
        options.extend(self.storage_options.iter().cloned());
        Ok(options)
    }

    /// The table of `signal` with its store's options: `given`, plus retry defaults on an object store.
    fn locate(&self, signal: Signal, given: &HashMap<String, String>) -> Result<TableLocation, ConfigError> {
        let own = match signal {
            Signal::Traces => &self.table,
            Signal::Logs => &self.logs_table,
        };
        let url = match (own, &self.table) {
            (Some(table), _) => table_url(table)?,
            (None, Some(spans)) => beside(&table_url(spans)?, signal)?,
            (None, None) => {
                for (name, value) in [
                    ("UC_CATALOG_NAME", &self.catalog),
                    ("UC_SCHEMA_NAME", &self.schema),
                    ("UC_TABLE_PREFIX_NAME", &self.table_prefix),
                ] {
                    if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                        return Err(ConfigError::BadName { name, value: value.clone() });
                    }
                }
                let name = format!("{}_otel_{}", self.table_prefix, table_word(signal));
                if self.warehouse.contains("://") {
                    let warehouse = self.warehouse.trim_end_matches('/');
                    table_url(&format!("{warehouse}/{}/{}/{name}", self.catalog, self.schema))?
                } else {
                    let path = Path::new(&self.warehouse).join(&self.catalog).join(&self.schema).join(name);
                    local_table_url(&path).map_err(|e| ConfigError::BadTable(path.display().to_string(), e))?
                }
            }
        };
        let mut storage_options = given.clone();
        if url.scheme() != "file" {
            for (key, value) in DEFAULT_STORE_RETRIES {
                storage_options.entry(key.to_owned()).or_insert_with(|| value.to_owned());
            }
        }
        Ok(TableLocation { url, storage_options })
    }
}

/// Flags of `otel-delta serve`, as parsed (raw): each component's section, and the table.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    receiver: ReceiverArgs,
    #[command(flatten)]
    table: TableArgs,
    #[command(flatten)]
    pipeline: PipelineArgs,
    #[command(flatten)]
    databricks: DatabricksArgs,
    /// Signals taken, comma-separated: traces, logs. A signal left out is answered 404 (gRPC UNIMPLEMENTED) and
    /// gets no table. Default: all.
    #[arg(long, env = "OTEL_DELTA_SIGNALS", value_enum, value_delimiter = ',')]
    signals: Option<Vec<SignalArg>>,
    /// Layout of a table otel-delta creates: v2 (VARIANT attributes and four leading columns, as the workspace
    /// creates tables today; the default) or v1 (MAP attributes; Databricks' legacy layout). An existing table is
    /// written in its own layout; naming a layout it does not have is refused at start-up.
    #[arg(long, env = "OTEL_DELTA_LAYOUT", value_enum)]
    layout: Option<LayoutArg>,
    /// Compact small files every this often while serving (e.g. 10m); off by default (run `otel-delta optimize`).
    #[arg(long, env = "OTEL_DELTA_OPTIMIZE_INTERVAL", value_parser = parse_duration)]
    optimize_interval: Option<Duration>,
    /// Longest a SIGTERM takes: requests not answered by then get 503 and the process exits (a second signal
    /// exits at once).
    #[arg(long, env = "OTEL_DELTA_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    shutdown_timeout: Duration,
    /// Address serving the collector's own metrics as Prometheus text (`GET /metrics`); `off` to disable.
    #[arg(long, env = "OTEL_DELTA_METRICS_ADDR", default_value = "127.0.0.1:8888")]
    metrics_addr: Listen,
}

/// `--signals`, `--signal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SignalArg {
    Traces,
    Logs,
}

impl SignalArg {
    fn signal(self) -> Signal {
        match self {
            SignalArg::Traces => Signal::Traces,
            SignalArg::Logs => Signal::Logs,
        }
    }
}

/// The tables `optimize` or `vacuum` works on: `--signal`'s, or every signal's (`must_exist` false: a signal's
/// table that was never made is skipped).
pub struct Maintained {
    pub signal: Signal,
    pub location: TableLocation,
    pub must_exist: bool,
}

fn maintained(table: &TableArgs, only: Option<SignalArg>) -> Result<Vec<Maintained>, ConfigError> {
    let signals = match only {
        Some(one) => vec![one.signal()],
        None => Signal::ALL.to_vec(),
    };
    let located = table.resolve_signals(signals)?.into_iter();
    Ok(located
        .map(|(signal, location)| {
            let must_exist = only.is_some() || signal == Signal::Traces;
            Maintained { signal, location, must_exist }
        })
        .collect())
}

impl OptimizeArgs {
    /// The tables to compact.
    pub fn tables(&self) -> Result<Vec<Maintained>, ConfigError> {
        maintained(&self.table, self.signal)
    }
}

impl VacuumArgs {
    /// The tables to vacuum.
    pub fn tables(&self) -> Result<Vec<Maintained>, ConfigError> {
        maintained(&self.table, self.signal)
    }
}

/// `--layout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LayoutArg {
    V1,
    V2,
}

/// Flags of `otel-delta optimize`.
#[derive(Debug, Clone, clap::Args)]
pub struct OptimizeArgs {
    #[command(flatten)]
    pub table: TableArgs,
    /// Only the table of this signal (traces, logs). Default: every signal's table that exists.
    #[arg(long, value_enum)]
    signal: Option<SignalArg>,
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
    /// Only the table of this signal (traces, logs). Default: every signal's table that exists.
    #[arg(long, value_enum)]
    signal: Option<SignalArg>,
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
    #[error(transparent)]
    Setting(#[from] InvalidSetting),
}

/// Validated configuration of `serve`.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) http_addr: SocketAddr,
    pub(crate) grpc_addr: Option<SocketAddr>,
    /// Where `/metrics` is served, if anywhere.
    pub(crate) metrics_addr: Option<SocketAddr>,
    /// The table of each signal taken, in [`Signal::ALL`] order (with a Databricks destination: where the tables
    /// would be without it, unused; the signals are still these).
    pub(crate) tables: Vec<(Signal, TableLocation)>,
    /// `--signals` was given: every signal named must get its table (with a Databricks destination, a default
    /// signal other than traces whose table is missing and cannot be made is left out instead, with a warning).
    pub(crate) signals_listed: bool,
    pub(crate) http: HttpConfig,
    pub(crate) pipeline: PipelineConfig,
    /// Compaction inside `serve`, if enabled.
    pub(crate) optimize_interval: Option<Duration>,
    /// Longest shutdown may take once signalled.
    pub(crate) shutdown_timeout: Duration,
    /// Databricks start-up (experiment linking, Unity Catalog sink), if configured.
    pub(crate) databricks: Option<DatabricksConfig>,
    /// `--layout`, if given.
    pub(crate) layout: Option<Layout>,
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

    /// `https` when the OTLP listeners speak TLS (`--tls-cert`), else `http`: the scheme of their URLs.
    pub fn otlp_scheme(&self) -> &'static str {
        if self.http.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Where the collector's own metrics are served (`GET /metrics`), if anywhere.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The table of `signal` (`--table`, `--logs-table`, or derived), if it is taken.
    pub fn table_url(&self, signal: Signal) -> Option<&Url> {
        self.tables.iter().find(|(s, _)| *s == signal).map(|(_, location)| &location.url)
    }

    /// The signals taken (`--signals`).
    pub fn signals(&self) -> impl Iterator<Item = Signal> + '_ {
        self.tables.iter().map(|(signal, _)| *signal)
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

    /// Check every section, then what spans two of them, and derive the table location.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let pipeline = self.pipeline.resolve()?;
        if self.shutdown_timeout.is_zero() {
            return Err(InvalidSetting::new("--shutdown-timeout", "must be above zero").into());
        }
        let receiver = self.receiver.resolve(pipeline.retry_after(), self.shutdown_timeout)?;
        let table = &self.table;
        let databricks = self.databricks.resolve(&table.catalog, &table.schema, &table.table_prefix)?;
        let signals: Vec<Signal> = match &self.signals {
            None => Signal::ALL.to_vec(),
            Some(listed) => Signal::ALL
                .into_iter()
                .filter(|s| {
                    listed.contains(&match s {
                        Signal::Traces => SignalArg::Traces,
                        Signal::Logs => SignalArg::Logs,
                    })
                })
                .collect(),
        };
        if signals.is_empty() {
            return Err(InvalidSetting::new("--signals", "name at least one of traces, logs").into());
        }
        let tables = table.resolve_signals(signals)?;
        if pipeline.max_inflight_bytes < receiver.http.max_request_bytes {
            let reason = "must be at least --max-request-size, or a largest request could never be admitted";
            return Err(InvalidSetting::new("--max-inflight-size", reason).into());
        }
        if let Some(interval) = self.optimize_interval {
            if interval.is_zero() {
                return Err(InvalidSetting::new("--optimize-interval", "must be above zero").into());
            }
            if databricks.as_ref().is_some_and(|d| matches!(d.sink, DatabricksSink::Zerobus { .. })) {
                let reason = "compacts Delta tables otel-delta writes; Zerobus tables are managed by Databricks";
                return Err(InvalidSetting::new("--optimize-interval", reason).into());
            }
        }
        let layout = self.layout.map(|l| match l {
            LayoutArg::V1 => Layout::V1,
            LayoutArg::V2 => Layout::V2,
        });
        Ok(Config {
            http_addr: receiver.http_addr,
            grpc_addr: receiver.grpc_addr,
            metrics_addr: self.metrics_addr.addr(),
            tables,
            signals_listed: self.signals.is_some(),
            http: receiver.http,
            pipeline,
            optimize_interval: self.optimize_interval,
            shutdown_timeout: self.shutdown_timeout,
            databricks,
            layout,
        })
    }
}

/// The table of `signal` beside the spans table `spans` (see [`beside_spans`]), its folder made when local.
fn beside(spans: &Url, signal: Signal) -> Result<Url, ConfigError> {
    let url = beside_spans(spans, signal).ok_or_else(|| {
        ConfigError::BadTable(spans.to_string(), "names no folder to put the other signals' tables beside".into())
    })?;
    if url.scheme() == "file" {
        let path =
            url.to_file_path().map_err(|()| ConfigError::BadTable(url.to_string(), "not a local path".into()))?;
        return local_table_url(&path).map_err(|e| ConfigError::BadTable(path.display().to_string(), e));
    }
    Ok(url)
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

/// The options of `--storage-options-file`: `key=value` lines; blank lines and `#` comments skipped. Errors name
/// the line, never its value (it may be a secret).
fn read_storage_options(path: &Path) -> Result<HashMap<String, String>, InvalidSetting> {
    let invalid =
        |reason: String| InvalidSetting::new("--storage-options-file", format!("{}: {reason}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
    let mut options = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = parse_key_value(line).map_err(|_| invalid(format!("line {} is not key=value", n + 1)))?;
        options.insert(key, value.trim().to_owned());
    }
    Ok(options)
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
    fn table_is_derived_from_warehouse_and_uc_names() {
        let dir = tempfile::tempdir().unwrap();
        let wh = dir.path().to_str().unwrap();
        let config = args(&["--warehouse", wh, "--catalog", "cat", "--schema", "sch", "--table-prefix", "app"])
            .resolve()
            .unwrap();
        assert!(
            config.table_url(Signal::Traces).unwrap().as_str().ends_with("/cat/sch/app_otel_spans/"),
            "{}",
            config.table_url(Signal::Traces).unwrap()
        );
        assert!(config.table_url(Signal::Traces).unwrap().as_str().starts_with("file:///"));
    }

    #[test]
    fn each_signal_has_its_table_beside_the_spans_table_unless_named() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
        let config = args(&["--table", &at("app_otel_spans")]).resolve().unwrap();
        let logs = config.table_url(Signal::Logs).unwrap().as_str();
        assert!(logs.ends_with("/app_otel_logs/"), "{logs}");
        assert!(dir.path().join("app_otel_logs").is_dir());
        let config = args(&["--table", &at("t")]).resolve().unwrap();
        assert!(config.table_url(Signal::Logs).unwrap().as_str().ends_with("/t_logs/"));
        let config = args(&["--table", "s3://b/x/spans", "--logs-table", "gs://c/l"]).resolve().unwrap();
        assert_eq!(config.table_url(Signal::Logs).unwrap().as_str(), "gs://c/l/");
        let config = args(&["--table", "s3://b/x/spans"]).resolve().unwrap();
        assert_eq!(config.table_url(Signal::Logs).unwrap().as_str(), "s3://b/x/logs/");
        assert!(args(&["--table", "s3://b/"]).resolve().is_err(), "no name to put a logs table beside");
        let wh = at("wh");
        let config = args(&["--warehouse", &wh, "--signals", "logs"]).resolve().unwrap();
        assert_eq!(config.signals().collect::<Vec<_>>(), [Signal::Logs]);
        assert!(config.table_url(Signal::Logs).unwrap().as_str().ends_with("/main/default/otel_otel_logs/"));
        assert!(config.table_url(Signal::Traces).is_none());
        let config = args(&["--warehouse", &wh]).resolve().unwrap();
        assert_eq!(config.signals().collect::<Vec<_>>(), Signal::ALL, "every signal by default");
    }

    #[test]
    fn storage_options_come_from_a_file_and_flags_override_it() {
        let table = |flags: &[&str]| args(flags).table;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("options");
        std::fs::write(&file, "# S3\naws_access_key_id = AKIA\n\naws_secret_access_key=s3cr=t\nmax_retries=5\n")
            .unwrap();
        let path = file.to_str().unwrap();
        let location = table(&["--table", "s3://b/t", "--storage-options-file", path]).resolve().unwrap();
        let options = location.storage_options;
        assert_eq!(options["aws_access_key_id"], "AKIA");
        assert_eq!(options["aws_secret_access_key"], "s3cr=t", "split at the first '='");
        assert_eq!(options["max_retries"], "5", "the file's value over the default");
        let args = ["--table", "s3://b/t", "--storage-options-file", path, "--storage-option", "max_retries=9"];
        assert_eq!(table(&args).resolve().unwrap().storage_options["max_retries"], "9");

        std::fs::write(&file, "aws_secret_access_key=hunter2\nno equals sign hunter2\n").unwrap();
        let refused =
            table(&["--table", "s3://b/t", "--storage-options-file", path]).resolve().unwrap_err().to_string();
        assert!(refused.contains("line 2") && !refused.contains("hunter2"), "{refused}");
        let missing = dir.path().join("missing");
        let args = ["--table", "s3://b/t", "--storage-options-file", missing.to_str().unwrap()];
        assert!(table(&args).resolve().is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let wh = dir.path().to_str().unwrap();
        assert!(matches!(args(&["--warehouse", wh, "--schema", "../x"]).resolve(), Err(ConfigError::BadName { .. })));
        let derived = args(&["--warehouse", wh, "--sink", "zerobus"]).resolve().unwrap().databricks.unwrap();
        assert_eq!(derived.sink, DatabricksSink::Zerobus { endpoint: None }, "derived from the workspace at start-up");
        assert!(args(&[
            "--warehouse",
            wh,
            "--sink",
            "zerobus",
            "--zerobus-endpoint",
            "https://z",
            "--optimize-interval",
            "1m"
        ])
        .resolve()
        .is_err());
        let zerobus = ["--warehouse", wh, "--sink", "zerobus", "--zerobus-endpoint", "http://127.0.0.1:9"];
        let refused = args(&zerobus).resolve().unwrap_err().to_string();
        assert!(refused.contains("ZEROBUS_ENDPOINT") && refused.contains("--insecure-databricks-http"), "{refused}");
        let insecure = args(&[&zerobus[..], &["--insecure-databricks-http"]].concat()).resolve();
        assert!(insecure.is_ok(), "a plain endpoint with the flag");
        assert!(ServeArgs::try_parse_from(["--sink", "kafka"]).is_err());
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
    fn layout_is_unset_unless_named_with_any_sink() {
        let dir = tempfile::tempdir().unwrap();
        let wh = dir.path().to_str().unwrap();
        assert_eq!(args(&["--warehouse", wh]).resolve().unwrap().layout, None);
        assert_eq!(args(&["--warehouse", wh, "--layout", "v2"]).resolve().unwrap().layout, Some(Layout::V2));
        assert!(ServeArgs::try_parse_from(["--layout", "v3"]).is_err());
        let zerobus = ["--warehouse", wh, "--sink", "zerobus", "--zerobus-endpoint", "https://z"];
        let unity = ["--warehouse", wh, "--sink", "unity-catalog"];
        for sink in [&zerobus[..], &unity[..]] {
            assert_eq!(args(sink).resolve().unwrap().layout, None);
            for (name, layout) in [("v1", Layout::V1), ("v2", Layout::V2)] {
                let config = args(&[sink, &["--layout", name]].concat()).resolve().unwrap();
                assert_eq!(config.layout, Some(layout));
            }
        }
    }

    #[test]
    fn object_store_tables_are_folders_with_default_retries() {
        let config = args(&["--table", "s3://bucket/spans", "--storage-option", "max_retries=7"]).resolve().unwrap();
        assert_eq!(config.table_url(Signal::Traces).unwrap().as_str(), "s3://bucket/spans/");
        let spans = &config.tables[0].1.storage_options;
        assert_eq!(spans["max_retries"], "7");
        assert_eq!(spans["retry_timeout"], "20s");
        // Each table its own options: a local logs table gets no store retry defaults.
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        let config = args(&["--table", "s3://bucket/spans", "--logs-table", logs.to_str().unwrap()]).resolve().unwrap();
        assert_eq!(config.tables[0].1.storage_options["retry_timeout"], "20s");
        assert!(!config.tables[1].1.storage_options.contains_key("retry_timeout"));
        let config = args(&["--warehouse", "abfss://c@acct.dfs.core.windows.net/wh/", "--catalog", "c1"]).resolve();
        assert_eq!(
            config.unwrap().table_url(Signal::Traces).unwrap().as_str(),
            "abfss://c@acct.dfs.core.windows.net/wh/c1/default/otel_otel_spans/"
        );
    }

    #[test]
    fn tls_flags_come_in_pairs_and_name_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("some.pem");
        std::fs::write(&file, "not pem").unwrap();
        let file = file.to_str().unwrap();
        let plain = args(&["--table", "/tmp/t"]).resolve().unwrap();
        assert_eq!(plain.otlp_scheme(), "http");
        for (flags, expected) in [
            (&["--tls-cert", file][..], "--tls-cert needs --tls-key"),
            (&["--tls-key", file], "--tls-key needs --tls-cert"),
            (&["--tls-client-ca", file], "--tls-client-ca needs --tls-cert and --tls-key"),
            (&["--tls-cert", file, "--tls-key", file], "--tls-cert the TLS certificate"),
        ] {
            let error = args(&[&["--table", "/tmp/t"], flags].concat()).resolve().unwrap_err().to_string();
            assert!(error.contains(expected), "{flags:?}: {error}");
            assert!(!error.contains('\n'), "one line: {error}");
        }
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
        let by_path =
            args(&["--table", path.to_str().unwrap()]).resolve().unwrap().table_url(Signal::Traces).unwrap().clone();
        let url = Url::from_directory_path(&path).unwrap();
        let by_url = args(&["--table", url.as_str()]).resolve().unwrap().table_url(Signal::Traces).unwrap().clone();
        assert_eq!(by_path, by_url);
    }
}
