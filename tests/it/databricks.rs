//! Databricks start-up flows against a local fake workspace that speaks the documented REST shapes (OIDC token,
//! MLflow experiments and trace locations, Unity Catalog tables and temporary credentials): the real client code,
//! and the real binary for the end-to-end Unity Catalog sink (on the moto S3 server, see tests/stores).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, Response};
use otel_delta::testing::databricks::mlflow::{self, LinkError, TRACE_LOCATION_TAG};
use otel_delta::testing::databricks::{unity, zerobus_endpoint, Auth, RetryPolicy, Workspace};
use otel_delta::{Contract, Layout, Signal};
use serde_json::{json, Value};

pub const PAT: &str = "dapi-test-token";
pub const CLIENT: (&str, &str) = ("sp-client", "sp-secret");

/// What the fake workspace holds and how it misbehaves.
#[derive(Default)]
pub struct FakeState {
    /// Requests seen: "METHOD /path".
    pub calls: Vec<String>,
    /// name → (id, tags)
    pub experiments: HashMap<String, (String, HashMap<String, String>)>,
    /// Serve the table-prefix (v5) location API; otherwise 404 as an older workspace would.
    pub table_prefix_api: bool,
    /// full name → TableInfo JSON
    pub tables: HashMap<String, Value>,
    /// OAuth tokens issued, in order; the first `reject_tokens` of them are refused with 401 (revoked early).
    pub tokens: Vec<String>,
    pub reject_tokens: usize,
    pub token_lifetime_s: u64,
    /// Answer the next N calls to a path starting with this with 429 + Retry-After: 1.
    pub throttle: Option<(String, usize)>,
    /// Storage location given to tables created through the API, and vended credentials' lifetime.
    pub credential_lifetime_ms: u64,
    pub vended: usize,
    /// Linking creates the location's spans and logs tables, MANAGED and v2, as MLflow's linking provisions its
    /// tables.
    pub provision_managed: bool,
    /// Sent as `x-databricks-org-id` on every answer, as Databricks does.
    pub org_id: Option<&'static str>,
    /// Answered by `metastore_summary`: (cloud, region); `None` answers 404.
    pub metastore: Option<(&'static str, &'static str)>,
    /// The `sql_warehouse_id` of each UC-schema location request (null when absent).
    pub sql_warehouse_ids: Vec<Value>,
}

pub struct FakeDatabricks {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<FakeState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeDatabricks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeDatabricks {
    pub async fn start(state: FakeState) -> FakeDatabricks {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(state));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(answer(&state, request).await) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        FakeDatabricks { addr, state, task }
    }

    pub fn host(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn workspace(&self, auth: Auth) -> Workspace {
        let retry = RetryPolicy { total: Duration::from_secs(30), ..Default::default() };
        Workspace::new(&self.host(), auth, retry).unwrap()
    }

    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    reply(status, json!({ "error_code": code, "message": message }))
}

/// Record experiment `id`'s trace location, as either link API does; an experiment linked already is refused
/// (ALREADY_EXISTS), unless `relink_same` and it is linked to this very location. With `provision_managed`, the
/// location's spans table `spans_table` and its logs table are created (MANAGED, v2) when missing.
fn link_experiment(
    s: &mut FakeState,
    id: &str,
    location: String,
    relink_same: bool,
    spans_table: String,
) -> Response<Full<Bytes>> {
    if s.provision_managed {
        s.tables.entry(spans_table.clone()).or_insert_with(|| managed_v2_table(&spans_table));
        let logs_table = spans_table.replace("_otel_spans", "_otel_logs");
        let logs = json!({ "full_name": logs_table, "table_id": format!("t-{logs_table}"), "table_type": "MANAGED",
            "data_source_format": "DELTA", "storage_location": format!("s3://databricks-managed/{logs_table}"),
            "columns": unity::columns_json(Contract::logs(Layout::V2)), "properties": { "otel.schemaVersion": "v2" } });
        s.tables.entry(logs_table).or_insert(logs);
    }
    let Some((_, tags)) = s.experiments.values_mut().find(|(eid, _)| eid == id) else {
        return error(404, "RESOURCE_DOES_NOT_EXIST", "no such experiment");
    };
    match tags.get(TRACE_LOCATION_TAG) {
        Some(existing) if !(relink_same && *existing == location) => error(
            409,
            "ALREADY_EXISTS",
            &format!("Experiment {id} is already linked to {existing} and cannot be modified."),
        ),
        _ => {
            tags.insert(TRACE_LOCATION_TAG.to_owned(), location);
            reply(200, json!({}))
        }
    }
}

async fn answer(state: &Mutex<FakeState>, request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let mut response = answer_call(state, request).await;
    if let Some(id) = state.lock().unwrap().org_id {
        response.headers_mut().insert("x-databricks-org-id", id.parse().unwrap());
    }
    response
}

async fn answer_call(state: &Mutex<FakeState>, request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query: HashMap<String, String> = request
        .uri()
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let authorization =
        request.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = state.lock().unwrap();
    s.calls.push(format!("{method} {path}"));

    if path == "/oidc/v1/token" {
        let expected =
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", CLIENT.0, CLIENT.1)));
        let form = String::from_utf8_lossy(&body);
        if authorization != expected || !form.contains("grant_type=client_credentials") || !form.contains("all-apis") {
            return reply(401, json!({ "error": "invalid_client", "error_description": "bad client credentials" }));
        }
        let token = format!("oauth-{}", s.tokens.len());
        s.tokens.push(token.clone());
        let lifetime = if s.token_lifetime_s == 0 { 3600 } else { s.token_lifetime_s };
        return reply(200, json!({ "access_token": token, "token_type": "Bearer", "expires_in": lifetime }));
    }
    let token = authorization.strip_prefix("Bearer ").unwrap_or_default();
    let rejected = s.tokens.iter().take(s.reject_tokens).any(|t| t == token);
    if !(token == PAT || s.tokens.iter().any(|t| t == token)) || rejected {
        return error(401, "UNAUTHENTICATED", "Invalid access token.");
    }
    if let Some((prefix, n)) = s.throttle.as_mut() {
        if path.starts_with(prefix.as_str()) && *n > 0 {
            *n -= 1;
            return Response::builder()
                .status(429)
                .header("retry-after", "1")
                .body(Full::new(Bytes::from(r#"{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"slow down"}"#)))
                .unwrap();
        }
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["api", "2.0", "mlflow", "experiments", "get-by-name"]) => {
            let name = query.get("experiment_name").cloned().unwrap_or_default();
            match s.experiments.get(&name) {
                Some((id, tags)) => {
                    let tags: Vec<Value> = tags.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect();
                    reply(
                        200,
                        json!({ "experiment": { "experiment_id": id, "name": name, "tags": tags,
                        "lifecycle_stage": "active" } }),
                    )
                }
                None => error(404, "RESOURCE_DOES_NOT_EXIST", &format!("Could not find experiment with name {name}")),
            }
        }
        ("POST", ["api", "2.0", "mlflow", "experiments", "create"]) => {
            let name = json["name"].as_str().unwrap_or_default().to_owned();
            if s.experiments.contains_key(&name) {
                return error(400, "RESOURCE_ALREADY_EXISTS", "Experiment already exists.");
            }
            let id = format!("{}", 1000 + s.experiments.len());
            s.experiments.insert(name, (id.clone(), HashMap::new()));
            reply(200, json!({ "experiment_id": id }))
        }
        ("POST", ["api", "5.0", "mlflow", "tracing", "locations"]) if s.table_prefix_api => {
            let l = &json["uc_table_prefix"];
            let (c, sc, p) = (l["catalog_name"].as_str(), l["schema_name"].as_str(), l["table_prefix"].as_str());
            let (Some(c), Some(sc), Some(p)) = (c, sc, p) else {
                return error(400, "INVALID_PARAMETER_VALUE", "uc_table_prefix needs catalog, schema and prefix");
            };
            reply(
                200,
                json!({ "uc_table_prefix": { "catalog_name": c, "schema_name": sc, "table_prefix": p,
                "spans_table_name": format!("{c}.{sc}.{p}_otel_spans"),
                "logs_table_name": format!("{c}.{sc}.{p}_otel_logs") } }),
            )
        }
        ("POST", ["api", "5.0", "mlflow", "experiments", id, link])
            if s.table_prefix_api && *link == "trace-location:link" =>
        {
            let l = &json["uc_table_prefix"];
            let location = format!(
                "{}.{}.{}",
                l["catalog_name"].as_str().unwrap_or_default(),
                l["schema_name"].as_str().unwrap_or_default(),
                l["table_prefix"].as_str().unwrap_or_default()
            );
            let spans_table = format!("{location}_otel_spans");
            link_experiment(&mut s, id, location, true, spans_table)
        }
        ("POST", ["api", "4.0", "mlflow", "traces", "location"]) => {
            s.sql_warehouse_ids.push(json["sql_warehouse_id"].clone());
            let l = &json["uc_schema"];
            reply(
                200,
                json!({ "uc_schema": { "catalog_name": l["catalog_name"], "schema_name": l["schema_name"],
                "otel_spans_table_name": "mlflow_experiment_trace_otel_spans",
                "otel_logs_table_name": "mlflow_experiment_trace_otel_logs" } }),
            )
        }
        ("POST", ["api", "4.0", "mlflow", "traces", id, "link-location"]) => {
            // The experiment's trace location becomes `catalog.schema` (two parts, as Databricks gives a
            // schema-linked experiment's destination); linking a linked experiment again is refused, even to the
            // same place (the strictest reading of the API).
            let l = &json["uc_schema"];
            let location = format!(
                "{}.{}",
                l["catalog_name"].as_str().unwrap_or_default(),
                l["schema_name"].as_str().unwrap_or_default()
            );
            let spans_table = format!("{location}.mlflow_experiment_trace_otel_spans");
            link_experiment(&mut s, id, location, false, spans_table)
        }
        ("GET", ["api", "2.1", "unity-catalog", "metastore_summary"]) => match s.metastore {
            Some((cloud, region)) => reply(
                200,
                json!({ "metastore_id": "m-1", "name": "metastore", "cloud": cloud, "region": region,
                "default_data_access_config_id": "d-1" }),
            ),
            None => error(404, "METASTORE_DOES_NOT_EXIST", "No metastore assigned for the current workspace."),
        },
        ("GET", ["api", "2.1", "unity-catalog", "tables", full_name]) => match s.tables.get(*full_name) {
            Some(table) => reply(200, table.clone()),
            None => error(404, "TABLE_DOES_NOT_EXIST", &format!("Table '{full_name}' does not exist.")),
        },
        ("POST", ["api", "2.1", "unity-catalog", "tables"]) => {
            let full_name = format!(
                "{}.{}.{}",
                json["catalog_name"].as_str().unwrap_or_default(),
                json["schema_name"].as_str().unwrap_or_default(),
                json["name"].as_str().unwrap_or_default()
            );
            if json["table_type"] != "EXTERNAL" || json["data_source_format"] != "DELTA" {
                return error(400, "INVALID_PARAMETER_VALUE", "only EXTERNAL DELTA tables can be created");
            }
            let described = |(i, c): (usize, &Value)| {
                ["name", "type_text", "type_name", "type_json"].iter().all(|k| c[k].is_string()) && c["position"] == i
            };
            if json["columns"].as_array().is_none_or(|c| c.is_empty() || !c.iter().enumerate().all(described)) {
                return error(400, "INVALID_PARAMETER_VALUE", "every column needs its name, types and position");
            }
            let mut table = json.clone();
            table["full_name"] = json!(full_name);
            table["table_id"] = json!(uuid::Uuid::new_v4().to_string());
            s.tables.insert(full_name, table.clone());
            reply(200, table)
        }
        ("POST", ["api", "2.1", "unity-catalog", "temporary-table-credentials"]) => {
            if json["operation"] != "READ_WRITE" {
                return error(400, "INVALID_PARAMETER_VALUE", "operation");
            }
            let Some(table) = s.tables.values().find(|t| t["table_id"] == json["table_id"]).cloned() else {
                return error(404, "TABLE_DOES_NOT_EXIST", "no table with that id");
            };
            // Databricks' credential-vending page: managed tables get read-only credentials at most.
            if table["table_type"] == "MANAGED" {
                return error(403, "PERMISSION_DENIED", "READ_WRITE credentials are not vended for managed tables");
            }
            s.vended += 1;
            let lifetime = if s.credential_lifetime_ms == 0 { 3_600_000 } else { s.credential_lifetime_ms };
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
            reply(
                200,
                json!({
                    "aws_temp_credentials": { "access_key_id": "test", "secret_access_key": "test",
                        "session_token": format!("session-{}", s.vended) },
                    "expiration_time": now + lifetime,
                    "url": table["storage_location"],
                }),
            )
        }
        _ => error(404, "ENDPOINT_NOT_FOUND", &format!("No API found for '{method} {path}'")),
    }
}

pub fn v5() -> FakeState {
    FakeState { table_prefix_api: true, ..Default::default() }
}

/// A spans table as Unity Catalog describes one the workspace made: MANAGED, v2 columns (VARIANT, TIMESTAMP,
/// DATE) and its `otel.schemaVersion`.
pub fn managed_v2_table(full_name: &str) -> Value {
    json!({ "full_name": full_name, "table_id": format!("t-{full_name}"), "table_type": "MANAGED",
        "data_source_format": "DELTA", "storage_location": format!("s3://databricks-managed/{full_name}"),
        "columns": unity::columns_json(Contract::spans_v2()), "properties": { "otel.schemaVersion": "v2" } })
}

/// The location `catalog.schema.prefix`, no SQL warehouse.
fn at<'a>(catalog: &'a str, schema: &'a str, prefix: &'a str) -> mlflow::Location<'a> {
    mlflow::Location { catalog, schema, prefix, sql_warehouse_id: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_experiment_is_created_and_linked_with_the_table_prefix_api() {
    let fake = FakeDatabricks::start(v5()).await;
    let ws = fake.workspace(Auth::Pat(PAT.into()));
    let experiment = mlflow::get_or_create_experiment(&ws, "/Shared/otel").await.unwrap();
    let tables = mlflow::link_trace_tables(&ws, &experiment, &at("main", "default", "otel")).await.unwrap();
    assert_eq!(tables.spans_table, "main.default.otel_otel_spans");
    assert_eq!(tables.api, "table-prefix");
    assert_eq!(
        fake.calls(),
        [
            "GET /api/2.0/mlflow/experiments/get-by-name",
            "POST /api/2.0/mlflow/experiments/create",
            "POST /api/5.0/mlflow/tracing/locations",
            &format!("POST /api/5.0/mlflow/experiments/{}/trace-location:link", experiment.id),
        ]
    );
    // A restart finds the experiment, linked here already: accepted as is.
    let again = mlflow::get_or_create_experiment(&ws, "/Shared/otel").await.unwrap();
    assert_eq!(again.id, experiment.id);
    assert_eq!(again.tags[TRACE_LOCATION_TAG], "main.default.otel");
    assert_eq!(mlflow::link_trace_tables(&ws, &again, &at("main", "default", "otel")).await.unwrap(), tables);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_experiment_linked_elsewhere_is_refused_with_guidance_and_nothing_changes() {
    let mut state = v5();
    let tags = HashMap::from([(TRACE_LOCATION_TAG.to_owned(), "main.prod.agents".to_owned())]);
    state.experiments.insert("/Shared/otel".into(), ("7".into(), tags));
    let fake = FakeDatabricks::start(state).await;
    let ws = fake.workspace(Auth::Pat(PAT.into()));
    let experiment = mlflow::get_or_create_experiment(&ws, "/Shared/otel").await.unwrap();
    let err = mlflow::link_trace_tables(&ws, &experiment, &at("main", "default", "otel")).await.unwrap_err();
    assert!(matches!(err, LinkError::LinkedElsewhere { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("main.prod.agents") && message.contains("main.default.otel"), "{message}");
    assert!(message.contains("different MLflow experiment name"), "{message}");
    assert!(fake.calls().iter().all(|c| !c.starts_with("POST")), "nothing changed: {:?}", fake.calls());

    // Linked elsewhere without the tag we read: the link call's ALREADY_EXISTS gives the same refusal.
    fake.state.lock().unwrap().experiments.get_mut("/Shared/otel").unwrap().1.clear();
    let untagged = mlflow::get_or_create_experiment(&ws, "/Shared/otel").await.unwrap();
    fake.state.lock().unwrap().experiments.get_mut("/Shared/otel").unwrap().1 =
        HashMap::from([(TRACE_LOCATION_TAG.to_owned(), "main.prod.agents".to_owned())]);
    let err = mlflow::link_trace_tables(&ws, &untagged, &at("main", "default", "otel")).await.unwrap_err();
    assert!(err.to_string().contains("already linked to main.prod.agents"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_workspace_is_linked_with_the_uc_schema_api() {
    let fake = FakeDatabricks::start(FakeState::default()).await;
    let ws = fake.workspace(Auth::Pat(PAT.into()));
    let experiment = mlflow::get_or_create_experiment(&ws, "/Shared/otel").await.unwrap();
    let location = mlflow::Location { sql_warehouse_id: Some("wh-1"), ..at("main", "default", "otel") };
    let tables = mlflow::link_trace_tables(&ws, &experiment, &location).await.unwrap();
    assert_eq!(tables.api, "uc-schema");
    assert_eq!(fake.state.lock().unwrap().sql_warehouse_ids, [json!("wh-1")], "the API's required warehouse");
    assert_eq!(tables.spans_table, "main.default.mlflow_experiment_trace_otel_spans");
    assert!(fake.calls().contains(&format!("POST /api/4.0/mlflow/traces/{}/link-location", experiment.id)));
}

/// An experiment linked by the UC-schema API is accepted on restart, on that workspace and after it starts serving
/// the table-prefix API; a different schema is refused naming both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uc_schema_link_is_accepted_on_restart_on_either_api() {
    let fake = FakeDatabricks::start(FakeState::default()).await;
    let ws = fake.workspace(Auth::Pat(PAT.into()));
    let experiment = mlflow::get_or_create_experiment(&ws, "/Shared/otel").await.unwrap();
    let first = mlflow::link_trace_tables(&ws, &experiment, &at("main", "default", "otel")).await.unwrap();
    assert_eq!(first.api, "uc-schema");
    let restarted = mlflow::get_or_create_experiment(&ws, "/Shared/otel").await.unwrap();
    assert_eq!(restarted.tags[TRACE_LOCATION_TAG], "main.default");
    let again = mlflow::link_trace_tables(&ws, &restarted, &at("main", "default", "otel")).await.unwrap();
    assert_eq!(again, first);

    fake.state.lock().unwrap().table_prefix_api = true;
    let calls_before = fake.calls().len();
    let upgraded = mlflow::link_trace_tables(&ws, &restarted, &at("main", "default", "otel")).await.unwrap();
    assert_eq!(upgraded, first, "still the schema link's tables");
    assert!(!fake.calls()[calls_before..].iter().any(|c| c.contains("/api/5.0/")), "{:?}", fake.calls());

    match mlflow::link_trace_tables(&ws, &restarted, &at("main", "other", "otel")).await {
        Err(LinkError::LinkedElsewhere { existing, requested, .. }) => {
            assert_eq!((existing.as_str(), requested.as_str()), ("main.default", "main.other.otel"));
        }
        other => panic!("expected a refusal naming both, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_after_retry_after_and_a_revoked_oauth_token_is_replaced() {
    let mut state = v5();
    state.throttle = Some(("/api/2.0/mlflow/experiments/get-by-name".into(), 2));
    state.reject_tokens = 1;
    let fake = FakeDatabricks::start(state).await;
    let ws = fake.workspace(Auth::oauth(CLIENT.0.into(), CLIENT.1.into()));
    let experiment = mlflow::get_or_create_experiment(&ws, "/Shared/otel").await.unwrap();
    assert_eq!(experiment.name, "/Shared/otel");
    let calls = fake.calls();
    let tokens = calls.iter().filter(|c| *c == "POST /oidc/v1/token").count();
    assert_eq!(tokens, 2, "the first token was refused (401) and replaced: {calls:?}");
    let lookups = calls.iter().filter(|c| c.ends_with("get-by-name")).count();
    assert_eq!(lookups, 4, "401, 429, 429, then the answer: {calls:?}");
    // Wrong client secret: a clear error naming the token endpoint, no retry storm.
    let bad = fake.workspace(Auth::oauth(CLIENT.0.into(), "wrong".into()));
    let err = mlflow::get_or_create_experiment(&bad, "/Shared/otel").await.unwrap_err();
    assert!(err.to_string().contains("/oidc/v1/token") && err.to_string().contains("bad client credentials"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_oauth_tokens_are_refreshed_before_they_expire() {
    let mut state = v5();
    state.token_lifetime_s = 2;
    let fake = FakeDatabricks::start(state).await;
    let ws = fake.workspace(Auth::oauth(CLIENT.0.into(), CLIENT.1.into()));
    mlflow::get_or_create_experiment(&ws, "/Shared/a").await.unwrap();
    mlflow::get_or_create_experiment(&ws, "/Shared/a").await.unwrap();
    assert_eq!(fake.state.lock().unwrap().tokens.len(), 1, "a fresh token is reused");
    // Past half its life, the token is refreshed before use rather than sent to expire in flight.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    mlflow::get_or_create_experiment(&ws, "/Shared/a").await.unwrap();
    assert_eq!(fake.state.lock().unwrap().tokens.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unity_catalog_tables_are_created_when_missing_and_read_in_their_own_layout() {
    let fake = FakeDatabricks::start(v5()).await;
    let ws = fake.workspace(Auth::Pat(PAT.into()));
    assert!(unity::get_table(&ws, "main.default.otel_otel_spans").await.unwrap().is_none());
    let created =
        unity::create_external_table(&ws, "main.default.otel_otel_spans", "s3://bucket/spans", Contract::spans_v1())
            .await
            .unwrap();
    assert_eq!(created.storage_location.as_deref(), Some("s3://bucket/spans"));
    assert_eq!(created.properties["otel.schemaVersion"], "v1");
    assert!(unity::refuse_unwritable(&created).is_ok());
    assert_eq!(unity::table_contract(&created, Signal::Traces, None), Ok(Contract::spans_v1()));
    let fetched = unity::get_table(&ws, "main.default.otel_otel_spans").await.unwrap().unwrap();
    assert_eq!(fetched.table_id, created.table_id);

    // As the workspace creates them: clustered, v2. Taken as v2; --layout v1 refused naming both.
    let mut clustered = fake.state.lock().unwrap().tables["main.default.otel_otel_spans"].clone();
    clustered["properties"]["clusteringColumns"] = json!("[[\"time\"],[\"service_name\"],[\"trace_id\"]]");
    clustered["properties"]["otel.schemaVersion"] = json!("v2");
    clustered["columns"] = json!(unity::columns_json(Contract::spans_v2()));
    fake.state.lock().unwrap().tables.insert("main.default.clustered".into(), clustered);
    let info = unity::get_table(&ws, "main.default.clustered").await.unwrap().unwrap();
    assert!(unity::refuse_unwritable(&info).is_ok());
    assert_eq!(unity::table_contract(&info, Signal::Traces, None), Ok(Contract::spans_v2()));
    let refused = unity::table_contract(&info, Signal::Traces, Some(Layout::V1)).unwrap_err();
    assert!(refused.contains("\"v2\"") && refused.contains("\"v1\""), "{refused}");

    let vended = unity::temporary_credentials(&ws, &created.table_id).await.unwrap();
    assert!(matches!(vended.credential, unity::VendedCredential::Aws { .. }));
    assert!(vended.expires_at > SystemTime::now());
}

/// app.yaml's command and environment (JSON-compatible `command:` line, `- name:` / `value:` pairs).
pub fn app_yaml() -> (Vec<String>, Vec<(String, String)>) {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/app.yaml")).unwrap();
    let command = text.lines().find_map(|l| l.strip_prefix("command:")).expect("a command line");
    let command: Vec<String> = serde_json::from_str(command.trim()).expect("command is a JSON-style list");
    let mut env = Vec::new();
    let mut name = None;
    for line in text.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("- name:") {
            name = Some(n.trim().to_owned());
        } else if let (Some(v), Some(n)) = (line.strip_prefix("value:"), name.take()) {
            env.push((n, v.trim().trim_matches('"').to_owned()));
        }
    }
    (command, env)
}

/// The binary as app.yaml runs it but with `--sink unity-catalog`, with app.yaml's values (only the host pointed at
/// the fake workspace and the secret's token filled in): links the experiment, resolves the Unity Catalog table, writes it on S3 with
/// vended credentials that are renewed while it runs, and every acknowledged span is in the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_yaml_serve_links_the_experiment_and_writes_the_unity_catalog_table() {
    let Some(s3) = crate::stores::s3_table("uc") else { return };
    let (command, yaml_env) = app_yaml();
    assert_eq!(command[0], "./otel-delta");
    let mut state = v5();
    state.credential_lifetime_ms = 3_000;
    let fake = FakeDatabricks::start(state).await;
    let mut env: Vec<(&str, String)> = yaml_env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let names: Vec<&str> = env.iter().map(|(k, _)| *k).collect();
    for required in
        ["DATABRICKS_HOST", "MLFLOW_EXPERIMENT_NAME", "UC_CATALOG_NAME", "UC_SCHEMA_NAME", "UC_TABLE_PREFIX_NAME"]
    {
        assert!(names.contains(&required), "app.yaml sets {required}: {names:?}");
    }
    env.retain(|(k, _)| *k != "DATABRICKS_HOST");
    env.extend([
        ("DATABRICKS_HOST", fake.host()),
        // The secret databricks-token; Databricks Apps also inject the app's own service principal: the PAT wins.
        ("DATABRICKS_TOKEN", PAT.to_owned()),
        ("DATABRICKS_CLIENT_ID", "app-sp".to_owned()),
        ("DATABRICKS_CLIENT_SECRET", "app-sp-secret".to_owned()),
        ("OTEL_DELTA_UC_STORAGE_LOCATION", s3.to_string()),
        ("OTEL_DELTA_FLUSH_INTERVAL", "200ms".to_owned()),
    ]);
    // Loopback only, the port the platform would give (any free one), and the direct-write sink app.yaml's comment
    // names for EXTERNAL tables instead of its default (Zerobus).
    let args: Vec<String> = command[1..]
        .iter()
        .map(|a| {
            a.replace("0.0.0.0", "127.0.0.1").replace("$DATABRICKS_APP_PORT", "0").replace("zerobus", "unity-catalog")
        })
        .collect();
    assert!(args.contains(&"unity-catalog".to_owned()), "app.yaml names a sink: {args:?}");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let c = crate::stores::Serve::spawn(&args, &env).await;
    assert!(c.table_line().contains(s3.as_str().trim_end_matches('/')), "{}", c.table_line());
    let mut acked = Vec::new();
    // Long enough for the 3 s credentials to be renewed at least once while requests keep coming.
    for seed in 0..12u64 {
        let request = crate::http::request(900 + seed, 5);
        let body = prost::Message::encode_to_vec(&request);
        let status = crate::http::post(&c.traces_url, "application/x-protobuf", body).await.status();
        assert_eq!(status, reqwest::StatusCode::OK, "{}", c.logs());
        acked.extend(crate::stores::span_keys(&request));
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // Logs go to the logs table, created beside the spans table's location.
    let logs_url = c.traces_url.replace("/v1/traces", "/v1/logs");
    let body = prost::Message::encode_to_vec(&crate::logs::tagged_logs("uc", 7));
    let status = crate::http::post(&logs_url, "application/x-protobuf", body).await.status();
    assert_eq!(status, reqwest::StatusCode::OK, "{}", c.logs());
    c.stop().await;
    let logs_location = format!("{}_logs/", s3.as_str().trim_end_matches('/'));
    {
        let state = fake.state.lock().unwrap();
        let logs_table = &state.tables["main.default.otel_otel_logs"];
        assert_eq!(logs_table["storage_location"].as_str().map(|l| format!("{l}/")), Some(logs_location.clone()));
    }
    let logs = crate::support::read_rows_at(&url::Url::parse(&logs_location).unwrap(), HashMap::new()).await;
    let mut bodies: Vec<_> = logs.iter().map(|r| r["body"].clone()).collect();
    bodies.sort_by_key(|b| b.to_string());
    assert_eq!(bodies, (0..7).map(|i| serde_json::json!(format!("uc-{i}"))).collect::<Vec<_>>(), "v2 string bodies");
    let spans_table = {
        let state = fake.state.lock().unwrap();
        assert!(state.vended >= 2, "credentials were vended {} time(s)", state.vended);
        let experiment = &state.experiments["/Shared/opentelemetry-traces"];
        assert_eq!(experiment.1[TRACE_LOCATION_TAG], "main.default.otel");
        assert!(state.tokens.is_empty(), "the PAT was used, not the app's service principal");
        state.tables["main.default.otel_otel_spans"].clone()
    };
    assert_eq!(spans_table["storage_location"], s3.as_str());
    let rows = crate::support::read_rows_at(&s3, HashMap::new()).await;
    crate::stores::assert_exactly_once(&rows, &acked);
}

/// A Unity Catalog table as the workspace makes it (EXTERNAL here, on S3): clustered, v2, row tracking. The
/// Unity Catalog sink appends to it in its own layout, through log entries that assign row ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_appends_to_a_clustered_v2_unity_catalog_table_in_its_layout() {
    use object_store::ObjectStoreExt as _;
    let Some(s3) = crate::stores::s3_table("uc-v2") else { return };
    let (entry, _) = crate::support::workspace_made_v2_log(&[]);
    let bucket = object_store::aws::AmazonS3Builder::from_env().with_url(s3.as_str()).build().unwrap();
    let first = format!("{}/_delta_log/{:020}.json", s3.path().trim_matches('/'), 0);
    bucket.put(&object_store::path::Path::from(first), entry.into()).await.unwrap();
    let mut state = v5();
    state.tables.insert("main.default.otel_otel_spans".into(), workspace_table(s3.as_str()));
    let fake = FakeDatabricks::start(state).await;
    let args = ["serve", "--sink", "unity-catalog", "--http-addr", "127.0.0.1:0", "--grpc-addr", "off"];
    let env = [
        ("DATABRICKS_HOST", fake.host()),
        ("DATABRICKS_TOKEN", PAT.to_owned()),
        ("OTEL_DELTA_FLUSH_INTERVAL", "200ms".to_owned()),
    ];
    let c = crate::stores::Serve::spawn(&args, &env).await;
    let mut acked = Vec::new();
    for seed in 0..3u64 {
        let request = crate::http::request(700 + seed, 4);
        let body = prost::Message::encode_to_vec(&request);
        let status = crate::http::post(&c.traces_url, "application/x-protobuf", body).await.status();
        assert_eq!(status, reqwest::StatusCode::OK, "{}", c.logs());
        acked.extend(crate::stores::span_keys(&request));
    }
    // No logs table, and nowhere given to create one: logs (not asked for by --signals) are left out, not fatal.
    let logs_url = c.traces_url.replace("/v1/traces", "/v1/logs");
    let body = prost::Message::encode_to_vec(&crate::logs::tagged_logs("none", 1));
    let status = crate::http::post(&logs_url, "application/x-protobuf", body).await.status();
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    assert!(c.logs().contains("log records are not taken"), "{}", c.logs());
    c.stop().await;
    let rows = crate::support::read_rows_at(&s3, HashMap::new()).await;
    crate::stores::assert_exactly_once(&rows, &acked);
    assert!(rows.iter().all(|r| r["kind"].as_str().is_some_and(|k| k.starts_with("SPAN_KIND_"))), "v2 rows");
    // Row ids continue above the workspace's mark (99), one range per file, in commit order.
    let mut ranges: Vec<(i64, i64)> = Vec::new();
    for (_, actions) in crate::stores::log_entries(&s3).await {
        for add in actions.iter().filter_map(|a| a.get("add")) {
            let stats: Value = serde_json::from_str(add["stats"].as_str().unwrap()).unwrap();
            ranges.push((add["baseRowId"].as_i64().expect("a row id per file"), stats["numRecords"].as_i64().unwrap()));
        }
    }
    ranges.sort_unstable();
    let mut next = 100;
    for (base, rows) in ranges {
        assert_eq!(base, next);
        next += rows;
    }
    assert_eq!(next, 100 + 12);
}

/// The workspace's table as Unity Catalog describes it: EXTERNAL at `location`, clustered, v2 columns.
fn workspace_table(location: &str) -> Value {
    json!({ "full_name": "main.default.otel_otel_spans", "table_id": "t-1", "table_type": "EXTERNAL",
        "data_source_format": "DELTA", "storage_location": location,
        "properties": { "clusteringColumns": "[[\"time\"],[\"service_name\"],[\"trace_id\"]]", "otel.schemaVersion": "v2" },
        "columns": unity::columns_json(Contract::spans_v2()) })
}

/// The workspace's own (MANAGED) table through the Unity Catalog sink: refused at start-up in one line that names
/// the table and the way in (Zerobus), once Unity Catalog declines to vend write credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_managed_table_it_gets_no_write_credentials_for_with_advice() {
    let mut state = v5();
    let mut managed = workspace_table("s3://bucket/managed/t-1");
    managed["table_type"] = json!("MANAGED");
    state.tables.insert("main.default.otel_otel_spans".into(), managed);
    let fake = FakeDatabricks::start(state).await;
    let stderr = crate::support::serve_refused(fake.host(), &["--sink", "unity-catalog"], &[]).await;
    let refusal = stderr.lines().find(|l| l.starts_with("otel-delta:")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(refusal.contains("main.default.otel_otel_spans") && refusal.contains("MANAGED"), "{refusal}");
    assert!(refusal.contains("--sink zerobus"), "{refusal}");
}

/// A --layout the table does not have is refused at start-up, naming both, before credentials are asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_layout_the_unity_catalog_table_does_not_have() {
    let mut state = v5();
    state.tables.insert("main.default.otel_otel_spans".into(), workspace_table("s3://bucket/managed/t-1"));
    let fake = FakeDatabricks::start(state).await;
    let stderr = crate::support::serve_refused(fake.host(), &["--sink", "unity-catalog", "--layout", "v1"], &[]).await;
    assert!(stderr.contains("main.default.otel_otel_spans"), "{stderr}");
    assert!(stderr.contains("\"v2\"") && stderr.contains("\"v1\""), "{stderr}");
    assert_eq!(fake.state.lock().unwrap().vended, 0, "no credentials asked for a table we refuse");
}

/// Without ZEROBUS_ENDPOINT the endpoint follows from what the workspace says: its id (`x-databricks-org-id`) and
/// its metastore's cloud and region; what it does not say is named in the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zerobus_endpoint_is_derived_from_the_workspace() {
    let state = FakeState { org_id: Some("1234567890123456"), metastore: Some(("aws", "us-west-2")), ..v5() };
    let fake = FakeDatabricks::start(state).await;
    let ws = fake.workspace(Auth::oauth(CLIENT.0.into(), CLIENT.1.into()));
    let endpoint = zerobus_endpoint(&ws).await.unwrap();
    assert_eq!(endpoint, "https://1234567890123456.zerobus.us-west-2.cloud.databricks.com");

    fake.state.lock().unwrap().metastore = Some(("azure", "westeurope"));
    let endpoint = zerobus_endpoint(&fake.workspace(Auth::Pat(PAT.into()))).await.unwrap();
    assert_eq!(endpoint, "https://1234567890123456.zerobus.westeurope.azuredatabricks.net");

    fake.state.lock().unwrap().org_id = None;
    let refused = zerobus_endpoint(&fake.workspace(Auth::Pat(PAT.into()))).await.unwrap_err().to_string();
    assert!(refused.contains("x-databricks-org-id") && refused.contains("set ZEROBUS_ENDPOINT"), "{refused}");
}

/// `--sink zerobus` without ZEROBUS_ENDPOINT on a workspace that does not say its metastore's region: refused at
/// start-up in one line that says what to set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_a_zerobus_endpoint_it_cannot_derive_is_refused_in_one_line() {
    let mut state = FakeState { org_id: Some("1234567890123456"), ..v5() };
    state.tables.insert("main.default.otel_otel_spans".into(), managed_v2_table("main.default.otel_otel_spans"));
    let fake = FakeDatabricks::start(state).await;
    let stderr = crate::support::serve_refused(fake.host(), &["--sink", "zerobus"], &[]).await;
    let refusal = stderr.lines().find(|l| l.starts_with("otel-delta:")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(refusal.contains("metastore_summary") && refusal.contains("set ZEROBUS_ENDPOINT"), "{refusal}");
}

/// A plain `http://` workspace is refused at start-up, before any call carries the token, unless
/// `--insecure-databricks-http` says it is a test server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_plain_http_workspace_without_the_insecure_flag() {
    let fake = FakeDatabricks::start(v5()).await;
    let env = [("OTEL_DELTA_INSECURE_DATABRICKS_HTTP", "false")];
    let stderr = crate::support::serve_refused(fake.host(), &["--sink", "unity-catalog"], &env).await;
    let refusal = stderr.lines().find(|l| l.starts_with("otel-delta:")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(refusal.contains("not https://") && refusal.contains("--insecure-databricks-http"), "{refusal}");
    assert!(fake.calls().is_empty(), "no call made: {:?}", fake.calls());
}
