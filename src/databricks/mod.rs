//! databricks: the Databricks control plane the collector talks to at start-up and while it runs: auth (a PAT or
//! OAuth machine-to-machine), the MLflow experiment and its link to Unity Catalog trace tables ([`mlflow`]), and
//! Unity Catalog tables with vended storage credentials ([`unity`]).
//!
//! Contract: every call is retried on 429 and 503 (after `Retry-After` seconds, 1 s when absent, plus jitter) and
//! on connection errors (linear backoff up to 10 s), as the Databricks SDKs do, until [`RetryPolicy::total`] has
//! passed; any other failure comes back at once as a typed [`DatabricksError`] carrying the API's `error_code` and
//! message. An OAuth token is refreshed before it expires, and once more if the workspace rejects it (401).
//!
//! Everything here is written to the documented REST shapes and tested against local servers that speak them
//! (`tests/it/databricks.rs`); no real workspace was reachable while it was written.

pub(crate) mod auth;
pub mod mlflow;
pub mod unity;
pub(crate) mod zerobus;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;

pub use auth::Auth;

use std::sync::Arc;

use crate::commit::{CommitError, Table, Wanted};
use crate::decode::Signal;
use crate::settings::InvalidSetting;
use crate::table::{self, Contract, Layout};

/// Where rows go: `--table`, or a Unity Catalog table written directly or through Zerobus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SinkKind {
    /// The Delta table of --table / --warehouse.
    Delta,
    /// The Unity Catalog table, written directly with credentials Unity Catalog vends.
    UnityCatalog,
    /// The Unity Catalog table, through Databricks Zerobus Ingest (for managed tables).
    Zerobus,
}

/// Flags of the destination and of Databricks start-up.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Destination and Databricks")]
pub(crate) struct DatabricksArgs {
    /// Where spans go: `delta` (the table of --table / --warehouse), `unity-catalog` (the Unity Catalog table
    /// <catalog>.<schema>.<prefix>_otel_spans, or the one MLflow linking names, written directly with credentials
    /// Unity Catalog vends; needs DATABRICKS_HOST) or `zerobus` (that table, through Databricks Zerobus Ingest:
    /// for managed tables; needs DATABRICKS_HOST).
    #[arg(long, env = "OTEL_DELTA_SINK", value_enum, default_value_t = SinkKind::Delta)]
    sink: SinkKind,
    /// zerobus sink: the workspace's Zerobus endpoint, https://<workspace-id>.zerobus.<region>.cloud.databricks.com
    /// (Azure: …azuredatabricks.net, GCP: …gcp.databricks.com). Unset: derived from the workspace's id and its
    /// metastore's cloud and region.
    #[arg(long, env = "ZEROBUS_ENDPOINT")]
    zerobus_endpoint: Option<String>,
    /// MLflow experiment to link to the Unity Catalog trace tables at start-up (needs DATABRICKS_HOST).
    #[arg(long, env = "MLFLOW_EXPERIMENT_NAME")]
    experiment: Option<String>,
    /// SQL warehouse MLflow's UC-schema trace location API is given (its `sql_warehouse_id`); unset, the workspace
    /// uses its default warehouse.
    #[arg(long, env = "MLFLOW_TRACING_SQL_WAREHOUSE_ID")]
    sql_warehouse_id: Option<String>,
    /// unity-catalog sink: create the table as an EXTERNAL Delta table at this location if it is missing.
    #[arg(long, env = "OTEL_DELTA_UC_STORAGE_LOCATION")]
    uc_storage_location: Option<String>,
    /// Allow `http://` for DATABRICKS_HOST and ZEROBUS_ENDPOINT, for a local test server only: the token and the
    /// rows then travel unencrypted. Without it, only `https://` is accepted.
    #[arg(long, env = "OTEL_DELTA_INSECURE_DATABRICKS_HTTP")]
    insecure_databricks_http: bool,
}

impl DatabricksArgs {
    /// What Databricks start-up does for tables named `catalog.schema.<prefix>_…`; `None` when nothing (rows go
    /// to `--table` and no experiment is linked).
    pub(crate) fn resolve(
        &self,
        catalog: &str,
        schema: &str,
        table_prefix: &str,
    ) -> Result<Option<DatabricksConfig>, InvalidSetting> {
        let sink = match self.sink {
            SinkKind::Delta => DatabricksSink::Table,
            SinkKind::UnityCatalog => {
                DatabricksSink::UnityCatalog { storage_location: self.uc_storage_location.clone() }
            }
            SinkKind::Zerobus => {
                let endpoint =
                    self.zerobus_endpoint.as_deref().map(str::trim).filter(|e| !e.is_empty()).map(str::to_owned);
                if let Some(endpoint) = &endpoint {
                    if !self.insecure_databricks_http && !endpoint.starts_with("https://") {
                        let reason = format!(
                            "{endpoint:?} is not https://: the stream's token would travel unencrypted \
                             (--insecure-databricks-http allows it, for a local test server only)"
                        );
                        return Err(InvalidSetting::new("ZEROBUS_ENDPOINT", reason));
                    }
                }
                DatabricksSink::Zerobus { endpoint }
            }
        };
        let experiment = self.experiment.clone().filter(|e| !e.trim().is_empty());
        if sink == DatabricksSink::Table && experiment.is_none() {
            return Ok(None);
        }
        Ok(Some(DatabricksConfig {
            experiment,
            sql_warehouse_id: self.sql_warehouse_id.clone().filter(|w| !w.trim().is_empty()),
            sink,
            catalog: catalog.to_owned(),
            schema: schema.to_owned(),
            table_prefix: table_prefix.to_owned(),
            insecure_http: self.insecure_databricks_http,
        }))
    }
}

/// Where Databricks start-up sends rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DatabricksSink {
    /// To `--table`: start-up only links the experiment.
    Table,
    /// The Unity Catalog table, written directly; created (EXTERNAL) at `storage_location` if missing and given.
    UnityCatalog { storage_location: Option<String> },
    /// The Unity Catalog table, through this Zerobus endpoint (`None`: the one the workspace's location implies).
    Zerobus { endpoint: Option<String> },
}

/// The Databricks side of `serve`: which experiment to link, and where rows go.
#[derive(Debug, Clone)]
pub(crate) struct DatabricksConfig {
    /// `MLFLOW_EXPERIMENT_NAME`: link this experiment to the trace tables at start-up.
    pub(crate) experiment: Option<String>,
    /// `MLFLOW_TRACING_SQL_WAREHOUSE_ID`: the warehouse the trace location API is given.
    pub(crate) sql_warehouse_id: Option<String>,
    pub(crate) sink: DatabricksSink,
    pub(crate) catalog: String,
    pub(crate) schema: String,
    pub(crate) table_prefix: String,
    /// `--insecure-databricks-http`: a plain `http://` workspace or Zerobus endpoint is allowed (test servers).
    pub(crate) insecure_http: bool,
}

/// Why start-up against Databricks failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Api(#[from] DatabricksError),
    #[error(transparent)]
    Link(#[from] mlflow::LinkError),
    #[error("Unity Catalog table {table}: {reason}")]
    Table { table: String, reason: String },
    #[error("Unity Catalog table {table}: does not exist; {advice}")]
    Missing { table: String, advice: &'static str },
    #[error(transparent)]
    Open(#[from] Box<CommitError>),
    #[error(transparent)]
    Zerobus(#[from] zerobus::ZerobusTableError),
}

/// Where Databricks start-up says rows go.
pub(crate) enum Destination {
    /// The Unity Catalog table, written directly with vended credentials.
    UnityCatalog(Box<Table>),
    /// The Unity Catalog table, through a Zerobus stream.
    Zerobus(Box<zerobus::ZerobusTable>),
}

/// Link the experiment (if configured); then, for each of `signals` (in that order), for the Unity Catalog sink,
/// resolve its table (or create it as the signal's contract in `layout`, the spans table at
/// `--uc-storage-location` and the others beside it) and open it through its vended credentials, and for the
/// Zerobus sink, open a stream into it. Tables are named `<catalog>.<schema>.<prefix>_otel_spans` (`_otel_logs`),
/// or as the MLflow link answers. An existing table is written in its own layout (`layout`, the `--layout` asked
/// for if any, must agree with it). A signal whose table is missing and cannot be made stops start-up if it is
/// `required` (its flag beside it); otherwise it is left out of the answer, with a warning. `None` when rows go to
/// `--table`.
pub(crate) async fn start(
    ws: Arc<Workspace>,
    config: &DatabricksConfig,
    signals: &[(Signal, bool)],
    layout: Option<Layout>,
) -> Result<Option<Vec<Destination>>, StartError> {
    let (catalog, schema, prefix) = (&config.catalog, &config.schema, &config.table_prefix);
    let default_name = |signal| {
        let suffix = Contract::of(signal, layout.unwrap_or_default()).name_suffix;
        format!("{catalog}.{schema}.{prefix}_{suffix}")
    };
    let mut names: Vec<(Signal, String)> = signals.iter().map(|&(s, _)| (s, default_name(s))).collect();
    if let Some(name) = &config.experiment {
        let experiment = mlflow::get_or_create_experiment(&ws, name).await?;
        let location =
            mlflow::Location { catalog, schema, prefix, sql_warehouse_id: config.sql_warehouse_id.as_deref() };
        let tables = mlflow::link_trace_tables(&ws, &experiment, &location).await?;
        tracing::info!(
            experiment = name,
            experiment_id = experiment.id,
            location = tables.location,
            spans_table = tables.spans_table,
            logs_table = tables.logs_table,
            metrics_table = tables.metrics_table,
            api = tables.api,
            "MLflow experiment linked to its trace tables"
        );
        for (signal, table) in &mut names {
            *table = match signal {
                Signal::Traces => tables.spans_table.clone(),
                Signal::Logs => tables.logs_table.clone(),
            };
        }
    }
    // How each table is reached: the sink, with what it needs resolved once for all of them.
    enum Via<'a> {
        Zerobus(String),
        UnityCatalog { spans_location: Option<&'a str> },
    }
    let via = match &config.sink {
        DatabricksSink::Table => return Ok(None),
        DatabricksSink::Zerobus { endpoint: Some(endpoint) } => Via::Zerobus(endpoint.clone()),
        DatabricksSink::Zerobus { endpoint: None } => Via::Zerobus(zerobus::derive_endpoint(&ws).await?),
        DatabricksSink::UnityCatalog { storage_location } => {
            Via::UnityCatalog { spans_location: storage_location.as_deref() }
        }
    };
    let mut destinations = Vec::new();
    for ((signal, table), &(_, required)) in names.into_iter().zip(signals) {
        let opened = match &via {
            Via::Zerobus(endpoint) => open_zerobus(&ws, endpoint, &table, signal, layout).await,
            Via::UnityCatalog { spans_location } => {
                let location = spans_location.map(|l| location_of(l, signal)).transpose();
                let location = location.map_err(|reason| StartError::Table { table: table.clone(), reason })?;
                open_unity_catalog(&ws, location.as_deref(), &table, signal, layout).await
            }
        };
        match opened {
            Ok(destination) => destinations.push(destination),
            Err(StartError::Missing { table, advice }) if !required => tracing::warn!(
                table,
                signal = signal.name(),
                "the {} table does not exist ({advice}): {} are not taken (answered 404); --signals makes this an \
                 error",
                signal.name(),
                signal.rows()
            ),
            Err(e) => return Err(e),
        }
    }
    Ok(Some(destinations))
}

/// Where the table of `signal` is created when missing: `--uc-storage-location` for spans, beside it for the
/// others (as `--table`'s neighbours are named).
fn location_of(spans_location: &str, signal: Signal) -> Result<String, String> {
    if signal == Signal::Traces {
        return Ok(spans_location.to_owned());
    }
    let url = Url::parse(spans_location).map_err(|e| format!("--uc-storage-location {spans_location:?}: {e}"))?;
    let beside = table::beside_spans(&url, signal);
    let beside = beside.ok_or_else(|| format!("--uc-storage-location {spans_location:?} names no folder"))?;
    Ok(beside.as_str().trim_end_matches('/').to_owned())
}

/// A Zerobus stream into the existing Unity Catalog `table` of `signal`.
async fn open_zerobus(
    ws: &Arc<Workspace>,
    endpoint: &str,
    table: &str,
    signal: Signal,
    layout: Option<Layout>,
) -> Result<Destination, StartError> {
    let refused = |reason: String| StartError::Table { table: table.to_owned(), reason };
    let info = unity::get_table(ws, table).await?.ok_or_else(|| StartError::Missing {
        table: table.to_owned(),
        advice: "MLflow creates it when the experiment is linked (set MLFLOW_EXPERIMENT_NAME)",
    })?;
    // The table decides what is written (Databricks creates these tables, never otel-delta).
    let contract = unity::table_contract(&info, signal, layout).map_err(refused)?;
    let sink = zerobus::ZerobusTable::connect(ws, endpoint, table, &info.columns, contract).await?;
    tracing::info!(table, endpoint, layout = contract.layout.name(), "ingesting through Zerobus");
    Ok(Destination::Zerobus(Box::new(sink)))
}

/// The Unity Catalog `table` of `signal`, written directly through its vended credentials; created as an
/// EXTERNAL table at `storage_location` when missing and given.
async fn open_unity_catalog(
    ws: &Arc<Workspace>,
    storage_location: Option<&str>,
    table: &str,
    signal: Signal,
    layout: Option<Layout>,
) -> Result<Destination, StartError> {
    let refused = |reason: String| StartError::Table { table: table.to_owned(), reason };
    // An existing table is written in its own layout; a missing one is created in the one asked for. Everything
    // the catalog says is checked before credentials are asked for.
    let (info, contract) = match unity::get_table(ws, table).await? {
        Some(info) => {
            let contract = unity::table_contract(&info, signal, layout).map_err(refused)?;
            (info, contract)
        }
        None => match storage_location {
            Some(location) => {
                let contract = Contract::of(signal, layout.unwrap_or_default());
                (unity::create_external_table(ws, table, location, contract).await?, contract)
            }
            None => {
                return Err(StartError::Missing {
                    table: table.to_owned(),
                    advice: "create it, or set --uc-storage-location to have it created as an EXTERNAL Delta table \
                             there",
                })
            }
        },
    };
    unity::refuse_unwritable(&info).map_err(|reason| refused(format!("cannot be written by otel-delta: {reason}")))?;
    let location = info.storage_location.as_deref().unwrap_or_default();
    let mut url = Url::parse(location).map_err(|e| refused(format!("storage location {location:?}: {e}")))?;
    if !url.path().ends_with('/') {
        url.set_path(&format!("{}/", url.path()));
    }
    // Asked here (and handed to the store, which renews them), so that a workspace that vends no write
    // credentials for the table stops start-up with advice (a managed table's are read-only: Zerobus is the way
    // into it) instead of an error chain later.
    let first = unity::temporary_credentials(ws, &info.table_id).await.map_err(|e| {
        let refusal = match (e.status(), info.table_type.as_str()) {
            (Some(400..=499), "MANAGED") => format!(
                "is a MANAGED table and Unity Catalog vends no write credentials for it ({e}): use --sink zerobus, \
                 or give --uc-storage-location with another table prefix (UC_TABLE_PREFIX_NAME) for an EXTERNAL \
                 table"
            ),
            (Some(400..=499), _) => format!(
                "Unity Catalog vends no write credentials for it ({e}): the metastore needs external data access \
                 enabled and the caller EXTERNAL USE SCHEMA on its schema"
            ),
            _ => return StartError::from(e),
        };
        refused(refusal)
    })?;
    let store = unity::object_store(ws.clone(), &info.table_id, &url, &first).map_err(refused)?;
    tracing::info!(table, location = %url, "writing the Unity Catalog table directly");
    let opened = Table::open_or_create_on(&url, store, Wanted::exactly(contract))
        .await
        .map_err(|e| StartError::Open(Box::new(e)))?;
    Ok(Destination::UnityCatalog(Box::new(opened)))
}

/// Why a Databricks call failed.
#[derive(Debug, thiserror::Error)]
pub enum DatabricksError {
    #[error("{call}: HTTP {status} {code}: {message}")]
    Api { call: String, status: u16, code: String, message: String },
    #[error("{call}: {reason}")]
    Transport { call: String, reason: String },
    #[error("{call}: still failing after {attempts} attempts over {elapsed:?}; last: {last}")]
    GaveUp { call: String, attempts: u32, elapsed: Duration, last: String },
    #[error("OAuth token from {url}: {reason}")]
    Token { url: String, reason: String },
    #[error("Databricks configuration: {0}")]
    Config(String),
    #[error(
        "Databricks configuration: MLFLOW_EXPERIMENT_NAME, --sink unity-catalog and --sink zerobus need \
         DATABRICKS_HOST (and a token)"
    )]
    NoHost,
    #[error("{call}: unexpected answer: {reason}")]
    Answer { call: String, reason: String },
}

impl DatabricksError {
    /// The API's `error_code` (e.g. `RESOURCE_DOES_NOT_EXIST`), if the workspace answered with one.
    pub(crate) fn code(&self) -> Option<&str> {
        match self {
            DatabricksError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            DatabricksError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Not found: by status or by one of the codes the APIs use for it.
    pub(crate) fn is_not_found(&self) -> bool {
        self.status() == Some(404)
            || matches!(self.code(), Some("RESOURCE_DOES_NOT_EXIST" | "NOT_FOUND" | "TABLE_DOES_NOT_EXIST"))
    }

    /// Already exists: the APIs use both codes (the docs say clients should check for both).
    pub(crate) fn is_already_exists(&self) -> bool {
        matches!(self.code(), Some("RESOURCE_ALREADY_EXISTS" | "ALREADY_EXISTS" | "RESOURCE_CONFLICT"))
    }
}

/// How long and how often calls are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Give up once this much time has passed since the first attempt (the SDKs' default: 300 s).
    pub total: Duration,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Longest pause between two attempts.
    pub max_pause: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            total: Duration::from_secs(300),
            request_timeout: Duration::from_secs(60),
            max_pause: Duration::from_secs(60),
        }
    }
}

/// A Databricks workspace: its host and how to authenticate to it.
pub struct Workspace {
    host: Url,
    http: reqwest::Client,
    auth: Auth,
    retry: RetryPolicy,
    /// The workspace id, as its answers give it (`x-databricks-org-id`).
    org_id: std::sync::OnceLock<String>,
}

impl Workspace {
    /// `host` as `DATABRICKS_HOST` gives it: `https://` is assumed when no scheme is given (Databricks Apps provide
    /// the bare host name); a trailing `/` is dropped. `http://` is taken too (test servers): [`Workspace::from_env`]
    /// is where the configured host is held to `https://`.
    pub fn new(host: &str, auth: Auth, retry: RetryPolicy) -> Result<Self, DatabricksError> {
        let host = normalize_host(host)?;
        let http = reqwest::Client::builder()
            .timeout(retry.request_timeout)
            .user_agent(concat!("otel-delta/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DatabricksError::Config(format!("HTTP client: {e}")))?;
        Ok(Workspace { host, http, auth, retry, org_id: Default::default() })
    }

    /// From the standard environment: `DATABRICKS_HOST`, and `DATABRICKS_TOKEN` or `DATABRICKS_CLIENT_ID` +
    /// `DATABRICKS_CLIENT_SECRET` (see [`Auth::from_env`]). `None` when `DATABRICKS_HOST` is unset. The host must be
    /// `https://` unless `insecure_http` (`--insecure-databricks-http`, for local test servers).
    pub(crate) fn from_env(
        env: impl Fn(&str) -> Option<String>,
        insecure_http: bool,
    ) -> Result<Option<Self>, DatabricksError> {
        let Some(host) = env("DATABRICKS_HOST").filter(|h| !h.trim().is_empty()) else { return Ok(None) };
        let auth = Auth::from_env(&env)?;
        let workspace = Workspace::new(&host, auth, RetryPolicy::default())?;
        if workspace.host.scheme() != "https" && !insecure_http {
            return Err(DatabricksError::Config(format!(
                "DATABRICKS_HOST {:?} is not https://: its token would travel unencrypted \
                 (--insecure-databricks-http allows it, for a local test server only)",
                workspace.host.as_str()
            )));
        }
        Ok(Some(workspace))
    }

    pub fn host(&self) -> &Url {
        &self.host
    }

    /// The workspace's numeric id: from its answers so far (the `x-databricks-org-id` header), else from a host
    /// name that carries it (Azure `adb-<id>.<n>.azuredatabricks.net`, GCP `<id>.<n>.gcp.databricks.com`).
    pub fn workspace_id(&self) -> Option<String> {
        if let Some(id) = self.org_id.get() {
            return Some(id.clone());
        }
        let host = self.host.host_str()?;
        let first = host.split('.').next()?;
        let id = if host.ends_with(".azuredatabricks.net") {
            first.strip_prefix("adb-")?
        } else if host.ends_with(".gcp.databricks.com") {
            first
        } else {
            return None;
        };
        is_workspace_id(id).then(|| id.to_owned())
    }

    /// The credentials (the Zerobus sink authenticates its stream with them).
    pub(crate) fn credentials(&self) -> &Auth {
        &self.auth
    }

    /// Which credentials are used (for the start-up log; never the secret).
    pub(crate) fn auth_kind(&self) -> &'static str {
        self.auth.kind()
    }

    /// Call `method path` with an optional JSON body and query; returns the JSON answer (`{}` when empty).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, DatabricksError> {
        let call = format!("{method} {path}");
        let mut url = self.host.clone();
        url.set_path(path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let started = Instant::now();
        let mut attempts = 0u32;
        let mut reauthenticated = false;
        loop {
            attempts += 1;
            let token = self.auth.header(&self.http, &self.host).await?;
            let mut request = self.http.request(method.clone(), url.clone()).header("authorization", token);
            if let Some(body) = body {
                request = request.header("content-type", "application/json").body(body.to_string());
            }
            let (pause, last) = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    if let Some(id) = response.headers().get("x-databricks-org-id").and_then(|v| v.to_str().ok()) {
                        if is_workspace_id(id) {
                            let _ = self.org_id.set(id.to_owned());
                        }
                    }
                    let text = response.text().await.unwrap_or_default();
                    if status.is_success() {
                        return parse_json(&call, &text);
                    }
                    let error = api_error(&call, status, &text);
                    if status == StatusCode::UNAUTHORIZED && self.auth.refreshable() && !reauthenticated {
                        // A token revoked or expired early: fetch a new one once, at once.
                        reauthenticated = true;
                        self.auth.invalidate().await;
                        continue;
                    }
                    if status != StatusCode::TOO_MANY_REQUESTS && status != StatusCode::SERVICE_UNAVAILABLE {
                        return Err(error);
                    }
                    (Duration::from_secs(retry_after.unwrap_or(1)), error.to_string())
                }
                Err(e) if e.is_connect() || e.is_timeout() => {
                    (Duration::from_secs(u64::from(attempts.min(10))), format!("{e}"))
                }
                Err(e) => return Err(DatabricksError::Transport { call, reason: e.to_string() }),
            };
            let pause = pause.min(self.retry.max_pause) + jitter();
            if started.elapsed() + pause > self.retry.total {
                return Err(DatabricksError::GaveUp { call, attempts, elapsed: started.elapsed(), last });
            }
            tracing::warn!(call, attempt = attempts, pause_ms = pause.as_millis() as u64, error = last, "retrying");
            tokio::time::sleep(pause).await;
        }
    }
}

/// A workspace id: digits only.
fn is_workspace_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())
}

fn normalize_host(host: &str) -> Result<Url, DatabricksError> {
    let host = host.trim().trim_end_matches('/');
    let with_scheme = if host.contains("://") { host.to_owned() } else { format!("https://{host}") };
    let url =
        Url::parse(&with_scheme).map_err(|e| DatabricksError::Config(format!("DATABRICKS_HOST {host:?}: {e}")))?;
    if url.host_str().is_none() || !matches!(url.scheme(), "https" | "http") {
        return Err(DatabricksError::Config(format!("DATABRICKS_HOST {host:?} is not an http(s) host")));
    }
    Ok(url)
}

fn parse_json(call: &str, text: &str) -> Result<Value, DatabricksError> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_str(text).map_err(|e| DatabricksError::Answer { call: call.to_owned(), reason: e.to_string() })
}

/// `{"error_code": ..., "message": ...}`, the error body of every Databricks REST API.
fn api_error(call: &str, status: StatusCode, text: &str) -> DatabricksError {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let field = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
    DatabricksError::Api {
        call: call.to_owned(),
        status: status.as_u16(),
        code: field("error_code").unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_uppercase()),
        message: field("message").unwrap_or_else(|| text.chars().take(300).collect()),
    }
}

/// Up to 250 ms, so many collectors retrying the same limit do not retry in step.
fn jitter() -> Duration {
    Duration::from_millis(u64::from(uuid::Uuid::new_v4().as_bytes()[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_normalized_as_the_sdks_do() {
        assert_eq!(normalize_host("adb-1.azuredatabricks.net").unwrap().as_str(), "https://adb-1.azuredatabricks.net/");
        assert_eq!(
            normalize_host("https://x.cloud.databricks.com/").unwrap().as_str(),
            "https://x.cloud.databricks.com/"
        );
        assert_eq!(normalize_host("http://127.0.0.1:8080").unwrap().as_str(), "http://127.0.0.1:8080/");
        assert!(normalize_host("ftp://x").is_err());
    }

    #[test]
    fn the_workspace_id_comes_from_azure_and_gcp_host_names() {
        let id =
            |host: &str| Workspace::new(host, Auth::Pat("t".into()), RetryPolicy::default()).unwrap().workspace_id();
        assert_eq!(id("adb-1234567890123456.7.azuredatabricks.net").as_deref(), Some("1234567890123456"));
        assert_eq!(id("https://1234567890123456.0.gcp.databricks.com").as_deref(), Some("1234567890123456"));
        assert_eq!(id("dbc-a1b2c3d4-e5f6.cloud.databricks.com"), None, "AWS hosts do not carry it");
        assert_eq!(id("adb-x1.2.azuredatabricks.net"), None);
    }

    #[test]
    fn error_bodies_give_code_and_message() {
        let e =
            api_error("GET /x", StatusCode::NOT_FOUND, r#"{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"no"}"#);
        assert!(e.is_not_found());
        assert_eq!(e.code(), Some("RESOURCE_DOES_NOT_EXIST"));
        let e = api_error("POST /y", StatusCode::BAD_GATEWAY, "<html>bad gateway</html>");
        assert_eq!(e.code(), Some("BAD GATEWAY"));
        assert!(e.to_string().contains("<html>bad gateway</html>"));
    }
}
