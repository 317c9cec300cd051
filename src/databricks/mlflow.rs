//! The MLflow side: get or create the experiment, then link it to Unity Catalog trace tables so MLflow shows the
//! spans we write.
//!
//! Linking uses the current table-prefix location API (`/api/5.0/mlflow/tracing/locations`, then
//! `/api/5.0/mlflow/experiments/{id}/trace-location:link`) and falls back to the older UC-schema location API
//! (`/api/4.0/mlflow/traces/location`, then `/api/4.0/mlflow/traces/{id}/link-location`) when the workspace does
//! not serve the first (404). An experiment already linked to another location is refused before anything is
//! changed, naming that location and the two ways out: another experiment name, or the catalog, schema and
//! prefix it is already linked to.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{json, Value};

use super::{DatabricksError, Workspace};

/// The experiment tag MLflow sets on an experiment linked to a UC table prefix: `catalog.schema.prefix`.
pub const TRACE_LOCATION_TAG: &str = "mlflow.experiment.databricksTraceDestinationPath";

/// An MLflow experiment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Experiment {
    pub id: String,
    pub name: String,
    pub tags: HashMap<String, String>,
}

/// Where the linked experiment's telemetry lives: the tables the link answer names (each signal's own table, for
/// when otel-delta writes that signal), else the names MLflow gives them by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceTables {
    /// `catalog.schema.prefix` (or `catalog.schema` with the older API).
    pub location: String,
    /// Full names, `catalog.schema.table`.
    pub spans_table: String,
    pub logs_table: String,
    pub metrics_table: String,
    /// Which API linked it: `table-prefix` or `uc-schema`.
    pub api: &'static str,
}

/// The Unity Catalog location an experiment's traces are linked to, and what the location APIs are given.
#[derive(Debug, Clone, Copy)]
pub struct Location<'a> {
    pub catalog: &'a str,
    pub schema: &'a str,
    pub prefix: &'a str,
    /// `sql_warehouse_id` for the UC-schema API, which requires one (the workspace falls back to its default
    /// warehouse without it). The table-prefix API takes none.
    pub sql_warehouse_id: Option<&'a str>,
}

/// Why linking failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Api(#[from] DatabricksError),
    #[error(
        "MLflow experiment {experiment:?} already stores its traces in {existing}, not in {requested}. Either use a \
         different MLflow experiment name (MLFLOW_EXPERIMENT_NAME in app.yaml), or use the existing location: set \
         UC_CATALOG_NAME, UC_SCHEMA_NAME and UC_TABLE_PREFIX_NAME to match {existing}"
    )]
    LinkedElsewhere { experiment: String, existing: String, requested: String },
}

/// Get the experiment by name, creating it if missing (a concurrent creator's experiment is used).
pub async fn get_or_create_experiment(ws: &Workspace, name: &str) -> Result<Experiment, DatabricksError> {
    match get_experiment(ws, name).await {
        Ok(experiment) => return Ok(experiment),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    let created =
        ws.call(Method::POST, "/api/2.0/mlflow/experiments/create", &[], Some(&json!({ "name": name }))).await;
    match created {
        Ok(answer) => {
            let id = string_field(&answer, "experiment_id")
                .ok_or_else(|| answer_error("POST /api/2.0/mlflow/experiments/create", "no experiment_id"))?;
            Ok(Experiment { id, name: name.to_owned(), tags: HashMap::new() })
        }
        Err(e) if e.is_already_exists() => get_experiment(ws, name).await,
        Err(e) => Err(e),
    }
}

async fn get_experiment(ws: &Workspace, name: &str) -> Result<Experiment, DatabricksError> {
    let path = "/api/2.0/mlflow/experiments/get-by-name";
    let answer = ws.call(Method::GET, path, &[("experiment_name", name)], None).await?;
    let experiment = answer.get("experiment").ok_or_else(|| answer_error(path, "no experiment"))?;
    let id = string_field(experiment, "experiment_id").ok_or_else(|| answer_error(path, "no experiment_id"))?;
    let tags = experiment
        .get("tags")
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(|t| Some((string_field(t, "key")?, string_field(t, "value").unwrap_or_default())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Experiment { id, name: name.to_owned(), tags })
}

/// Link `experiment` to the trace tables of `catalog.schema` with `prefix`; returns the spans table to write.
/// Idempotent: an experiment already linked to this very location is accepted as is.
pub async fn link_trace_tables(
    ws: &Workspace,
    experiment: &Experiment,
    asked: &Location<'_>,
) -> Result<TraceTables, LinkError> {
    let Location { catalog, schema, prefix, .. } = *asked;
    let requested = format!("{catalog}.{schema}.{prefix}");
    let elsewhere = |existing: String| LinkError::LinkedElsewhere {
        experiment: experiment.name.clone(),
        existing,
        requested: requested.clone(),
    };
    let linked_here = experiment.tags.get(TRACE_LOCATION_TAG).and_then(|t| same_location(t, catalog, schema, prefix));
    if let Some(tag) = experiment.tags.get(TRACE_LOCATION_TAG) {
        match linked_here {
            // Linked by the UC-schema API to this catalog and schema: its tables are that link's.
            Some(LinkedBy::UcSchema) => return link_uc_schema(ws, experiment, asked).await,
            Some(LinkedBy::TablePrefix) => {}
            None => return Err(elsewhere(tag.clone())),
        }
    }
    let location = json!({ "catalog_name": catalog, "schema_name": schema, "table_prefix": prefix });
    let created = ws
        .call(Method::POST, "/api/5.0/mlflow/tracing/locations", &[], Some(&json!({ "uc_table_prefix": location })))
        .await;
    match created {
        Ok(answer) => {
            // The answer wraps the location (some versions answer it flat); link with what it says.
            let location = answer.get("uc_table_prefix").cloned().unwrap_or(answer);
            let tables = TraceTables::named_in(&location, catalog, schema, &format!("{prefix}_otel"));
            let tables = TraceTables { location: requested.clone(), api: "table-prefix", ..tables };
            let path = format!("/api/5.0/mlflow/experiments/{}/trace-location:link", experiment.id);
            let body = json!({ "experiment_id": experiment.id, "uc_table_prefix": location });
            match ws.call(Method::POST, &path, &[], Some(&body)).await {
                Ok(_) => Ok(tables),
                // A restart: the experiment is linked here already.
                Err(e) if e.is_already_exists() && linked_here == Some(LinkedBy::TablePrefix) => Ok(tables),
                Err(e) if e.is_already_exists() => Err(elsewhere(existing_location(&e))),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) if e.status() == Some(404) => {
            tracing::info!("the table-prefix trace location API is not served here; using the UC schema location API");
            link_uc_schema(ws, experiment, asked).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Which API linked an experiment to the location asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkedBy {
    TablePrefix,
    UcSchema,
}

/// Whether an experiment's trace-location `tag` names the location asked for: `catalog.schema.prefix` (the
/// table-prefix API) or `catalog.schema` (the UC-schema API, which Databricks gives as two parts). Unity Catalog
/// names are case-insensitive and may be quoted with backticks; `None` for any other location.
fn same_location(tag: &str, catalog: &str, schema: &str, prefix: &str) -> Option<LinkedBy> {
    let parts: Vec<String> = tag.trim().split('.').map(|p| p.trim().trim_matches('`').to_lowercase()).collect();
    let asked = [catalog, schema, prefix].map(str::to_lowercase);
    match parts.as_slice() {
        [c, s, p] if [c, s, p] == [&asked[0], &asked[1], &asked[2]] => Some(LinkedBy::TablePrefix),
        [c, s] if [c, s] == [&asked[0], &asked[1]] => Some(LinkedBy::UcSchema),
        _ => None,
    }
}

/// The older API: trace tables for a whole UC schema (no prefix).
async fn link_uc_schema(
    ws: &Workspace,
    experiment: &Experiment,
    asked: &Location<'_>,
) -> Result<TraceTables, LinkError> {
    let Location { catalog, schema, .. } = *asked;
    let requested = format!("{catalog}.{schema}");
    let linked_here = experiment.tags.get(TRACE_LOCATION_TAG).and_then(|t| same_location(t, catalog, schema, ""));
    let location = json!({ "catalog_name": catalog, "schema_name": schema });
    let mut body = json!({ "uc_schema": location });
    if let Some(warehouse) = asked.sql_warehouse_id {
        body["sql_warehouse_id"] = json!(warehouse);
    }
    let answer = match ws.call(Method::POST, "/api/4.0/mlflow/traces/location", &[], Some(&body)).await {
        Ok(answer) => answer.get("uc_schema").cloned().unwrap_or(answer),
        // MLflow itself goes on when the location exists already.
        Err(e) if e.is_already_exists() => Value::Null,
        Err(e) => return Err(e.into()),
    };
    let tables = TraceTables::named_in(&answer, catalog, schema, "mlflow_experiment_trace_otel");
    let tables = TraceTables { location: requested.clone(), api: "uc-schema", ..tables };
    let path = format!("/api/4.0/mlflow/traces/{}/link-location", experiment.id);
    let body = json!({ "experiment_id": experiment.id, "uc_schema": location });
    match ws.call(Method::POST, &path, &[], Some(&body)).await {
        Ok(_) => Ok(tables),
        // A restart: the experiment is linked to this schema already.
        Err(e) if e.is_already_exists() && linked_here == Some(LinkedBy::UcSchema) => Ok(tables),
        Err(e) if e.is_already_exists() => Err(LinkError::LinkedElsewhere {
            experiment: experiment.name.clone(),
            existing: existing_location(&e),
            requested,
        }),
        Err(e) => Err(e.into()),
    }
}

impl TraceTables {
    /// The tables a location answer names (`spans_table_name` or `otel_spans_table_name`, and so on), qualified
    /// with catalog and schema when bare; a table it does not name is `<default_stem>_<signal>`. `location` and
    /// `api` are left empty.
    fn named_in(answer: &Value, catalog: &str, schema: &str, default_stem: &str) -> TraceTables {
        let name = |signal: &str| {
            let name = string_field(answer, &format!("{signal}_table_name"))
                .or_else(|| string_field(answer, &format!("otel_{signal}_table_name")))
                .unwrap_or_else(|| format!("{default_stem}_{signal}"));
            if name.contains('.') {
                name
            } else {
                format!("{catalog}.{schema}.{name}")
            }
        };
        TraceTables {
            location: String::new(),
            spans_table: name("spans"),
            logs_table: name("logs"),
            metrics_table: name("metrics"),
            api: "",
        }
    }
}

/// What an ALREADY_EXISTS answer says about the existing location (its message names it).
fn existing_location(e: &DatabricksError) -> String {
    match e {
        DatabricksError::Api { message, .. } => format!("another location ({message})"),
        other => other.to_string(),
    }
}

fn string_field(value: &Value, name: &str) -> Option<String> {
    value.get(name).and_then(Value::as_str).map(str::to_owned)
}

fn answer_error(call: &str, reason: &str) -> DatabricksError {
    DatabricksError::Answer { call: call.to_owned(), reason: reason.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_names_the_location_asked_for_in_either_api_form() {
        assert_eq!(same_location("main.default.otel", "main", "default", "otel"), Some(LinkedBy::TablePrefix));
        assert_eq!(same_location("Main.`default`.OTEL", "main", "default", "otel"), Some(LinkedBy::TablePrefix));
        assert_eq!(same_location("main.default", "main", "default", "otel"), Some(LinkedBy::UcSchema));
        assert_eq!(same_location("main.traces", "main", "default", "otel"), None);
        assert_eq!(same_location("main.default.other", "main", "default", "otel"), None);
        assert_eq!(same_location("main", "main", "default", "otel"), None);
    }

    #[test]
    fn every_table_name_is_read_in_either_spelling_and_qualified() {
        let answer = json!({
            "spans_table_name": "c.s.p_otel_spans", "otel_logs_table_name": "logs", "metrics_table_name": "x.y.m"
        });
        let tables = TraceTables::named_in(&answer, "c", "s", "p_otel");
        assert_eq!(
            (tables.spans_table.as_str(), tables.logs_table.as_str(), tables.metrics_table.as_str()),
            ("c.s.p_otel_spans", "c.s.logs", "x.y.m")
        );
        let defaults = TraceTables::named_in(&Value::Null, "c", "s", "mlflow_experiment_trace_otel");
        assert_eq!(defaults.spans_table, "c.s.mlflow_experiment_trace_otel_spans");
        assert_eq!(defaults.metrics_table, "c.s.mlflow_experiment_trace_otel_metrics");
    }
}
