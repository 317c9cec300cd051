//! Unity Catalog: resolve a table otel-delta writes (get it, or create it as an EXTERNAL Delta table with our schema), refuse
//! tables we must not write, and reach its storage with temporary READ_WRITE credentials that are vended again
//! before they expire (an object store credential provider asks for new ones when due).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use object_store::aws::{AmazonS3Builder, AwsCredential};
use object_store::azure::{AzureCredential, MicrosoftAzureBuilder};
use object_store::gcp::{GcpCredential, GoogleCloudStorageBuilder};
use object_store::{CredentialProvider, ObjectStore};
use reqwest::Method;
use serde_json::{json, Value};
use url::Url;

pub(crate) use databricks_zerobus_ingest_sdk::schema::UcColumn;

use super::{DatabricksError, Workspace};
use crate::decode::Signal;
use crate::table::{Contract, Layout, LAYOUT_PROPERTY};

/// What Unity Catalog says about a table.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub table_id: String,
    pub table_type: String,
    pub data_source_format: String,
    pub storage_location: Option<String>,
    pub properties: HashMap<String, String>,
    /// Its columns (the Zerobus sink derives its record descriptor from them).
    pub columns: Vec<UcColumn>,
}

/// Get a table; `None` when it does not exist.
pub async fn get_table(ws: &Workspace, full_name: &str) -> Result<Option<TableInfo>, DatabricksError> {
    let path = format!("/api/2.1/unity-catalog/tables/{full_name}");
    match ws.call(Method::GET, &path, &[], None).await {
        Ok(answer) => table_info(&path, &answer).map(Some),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Create `full_name` as an EXTERNAL Delta table at `storage_location` with `contract`'s columns (the only kind
/// of table this API lets external clients create). The Delta log itself is written by the first commit.
pub async fn create_external_table(
    ws: &Workspace,
    full_name: &str,
    storage_location: &str,
    contract: &'static Contract,
) -> Result<TableInfo, DatabricksError> {
    let path = "/api/2.1/unity-catalog/tables";
    let [catalog, schema, name] = split_name(full_name)?;
    let properties: serde_json::Map<String, Value> =
        contract.properties().iter().map(|(k, v)| ((*k).to_owned(), Value::from(*v))).collect();
    let body = json!({
        "name": name, "catalog_name": catalog, "schema_name": schema,
        "table_type": "EXTERNAL", "data_source_format": "DELTA", "storage_location": storage_location,
        "columns": columns_json(contract),
        "properties": properties,
        "comment": contract.comment,
    });
    let answer = ws.call(Method::POST, path, &[], Some(&body)).await?;
    table_info(path, &answer)
}

/// `contract`'s columns as Unity Catalog describes columns (`name`, `type_text`, `type_name`, `type_json`,
/// `position`, `nullable`).
pub fn columns_json(contract: &Contract) -> Vec<Value> {
    contract
        .delta_schema()
        .fields()
        .enumerate()
        .map(|(position, field)| {
            let type_json = serde_json::to_string(field).unwrap_or_default();
            let type_text = spark_type_text(&serde_json::to_value(field.data_type()).unwrap_or_default());
            let type_name = type_text.split('<').next().unwrap_or("string").to_uppercase();
            let type_name = match type_name.as_str() {
                "BIGINT" => "LONG".to_owned(),
                other => other.to_owned(),
            };
            json!({
                "name": field.name(), "type_text": type_text, "type_name": type_name, "type_json": type_json,
                "position": position, "nullable": field.is_nullable(),
            })
        })
        .collect()
}

/// `contract`'s columns, as [`get_table`] would read them from a table Databricks created with them.
#[cfg(test)]
pub(crate) fn uc_columns(contract: &Contract) -> Vec<UcColumn> {
    columns_json(contract).into_iter().filter_map(|c| serde_json::from_value(c).ok()).collect()
}

/// `Err(reason)` for a table this writer cannot append to whatever its Delta log says: not Delta, a view, or no
/// storage location. (Its columns and layout are checked by [`table_contract`], its Delta features when its log is
/// opened.)
pub fn refuse_unwritable(table: &TableInfo) -> Result<(), String> {
    if !table.data_source_format.eq_ignore_ascii_case("DELTA") {
        return Err(format!("its format is {}, not DELTA", table.data_source_format));
    }
    if !matches!(table.table_type.as_str(), "EXTERNAL" | "MANAGED") {
        return Err(format!("it is a {} table", table.table_type));
    }
    if table.storage_location.is_none() {
        return Err("Unity Catalog gives no storage location for it".into());
    }
    Ok(())
}

/// The rows of `signal` an existing table takes: v2 if its `otel.schemaVersion` property says so or, without the property, if
/// it has VARIANT columns (at any depth); v1 otherwise. `Err(reason)` when `asked` (`--layout`) names another
/// layout, worded as the refusal of a local table in another layout, when the property names one otel-delta
/// does not write, or when the table lacks a column of that layout (checked by name here, before credentials are
/// asked for; types when its Delta log or record descriptor is read).
pub fn table_contract(info: &TableInfo, signal: Signal, asked: Option<Layout>) -> Result<&'static Contract, String> {
    let (layout, difference) = layout_of(info)?;
    let contract = match asked {
        Some(asked) if asked != layout => {
            return Err(format!(
                "is not an otel-delta {} table: {difference}, this writer writes {:?} (--layout {}). Leave --layout \
                 unset to write the table in its own layout ({}); it is never altered",
                Contract::of(signal, asked),
                asked.name(),
                asked.name(),
                layout.name()
            ))
        }
        _ => Contract::of(signal, layout),
    };
    if info.columns.is_empty() {
        return Err("Unity Catalog lists no columns for it; otel-delta writes only tables with their columns".into());
    }
    let has = |name: &str| info.columns.iter().any(|c| c.name.eq_ignore_ascii_case(name));
    match contract.delta_schema().fields().find(|f| !has(f.name())) {
        Some(missing) => Err(format!("is not an otel-delta {contract} table: it has no column {}", missing.name())),
        None => Ok(contract),
    }
}

/// The layout a table's property or columns say, and how it says so.
fn layout_of(info: &TableInfo) -> Result<(Layout, String), String> {
    Ok(match info.properties.get(LAYOUT_PROPERTY).map(String::as_str) {
        Some("v1") => (Layout::V1, format!("{LAYOUT_PROPERTY} is \"v1\"")),
        Some("v2") => (Layout::V2, format!("{LAYOUT_PROPERTY} is \"v2\"")),
        Some(other) => {
            return Err(format!(
                "is not an otel-delta table: {LAYOUT_PROPERTY} is {other:?}, this writer writes \"v1\" or \"v2\""
            ))
        }
        None => match info.columns.iter().filter(|c| has_variant(c)).map(|c| c.name.as_str()).collect::<Vec<_>>() {
            variants if variants.is_empty() => (Layout::V1, "it has no VARIANT column".to_owned()),
            variants => (Layout::V2, format!("its columns {variants:?} hold VARIANT")),
        },
    })
}

/// Whether a Unity Catalog column is, or holds, a VARIANT (`type_name`, or a type inside its `type_json`).
fn has_variant(column: &UcColumn) -> bool {
    fn holds(json: &serde_json::Value) -> bool {
        match json {
            serde_json::Value::Object(o) => o.iter().any(|(k, v)| match v {
                serde_json::Value::String(t) => {
                    matches!(k.as_str(), "type" | "elementType" | "keyType" | "valueType") && t == "variant"
                }
                other => holds(other),
            }),
            serde_json::Value::Array(items) => items.iter().any(holds),
            _ => false,
        }
    }
    column.type_name.eq_ignore_ascii_case("VARIANT")
        || serde_json::from_str::<serde_json::Value>(&column.type_json).is_ok_and(|j| holds(&j))
}

/// Temporary credentials for one table's storage.
#[derive(Debug, Clone)]
pub struct Vended {
    pub credential: VendedCredential,
    pub expires_at: SystemTime,
}

#[derive(Debug, Clone)]
pub enum VendedCredential {
    Aws { key_id: String, secret_key: String, token: Option<String> },
    AzureSas(String),
    Gcp(String),
}

/// `POST /api/2.1/unity-catalog/temporary-table-credentials` for READ_WRITE.
pub async fn temporary_credentials(ws: &Workspace, table_id: &str) -> Result<Vended, DatabricksError> {
    let path = "/api/2.1/unity-catalog/temporary-table-credentials";
    let body = json!({ "table_id": table_id, "operation": "READ_WRITE" });
    let answer = ws.call(Method::POST, path, &[], Some(&body)).await?;
    let bad = |reason: &str| DatabricksError::Answer { call: format!("POST {path}"), reason: reason.to_owned() };
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let credential = if let Some(aws) = answer.get("aws_temp_credentials") {
        VendedCredential::Aws {
            key_id: text(aws, "access_key_id").ok_or_else(|| bad("no access_key_id"))?,
            secret_key: text(aws, "secret_access_key").ok_or_else(|| bad("no secret_access_key"))?,
            token: text(aws, "session_token"),
        }
    } else if let Some(sas) = answer.get("azure_user_delegation_sas") {
        VendedCredential::AzureSas(text(sas, "sas_token").ok_or_else(|| bad("no sas_token"))?)
    } else if let Some(gcp) = answer.get("gcp_oauth_token") {
        VendedCredential::Gcp(text(gcp, "oauth_token").ok_or_else(|| bad("no oauth_token"))?)
    } else {
        return Err(bad("no aws_temp_credentials, azure_user_delegation_sas or gcp_oauth_token"));
    };
    let expires_ms = answer.get("expiration_time").and_then(Value::as_u64).ok_or_else(|| bad("no expiration_time"))?;
    Ok(Vended { credential, expires_at: UNIX_EPOCH + Duration::from_millis(expires_ms) })
}

/// The table's object store (rooted at its bucket or container, as Delta expects), authenticated with credentials
/// vended for `table_id` and vended again before they expire. Endpoints and other settings come from the usual
/// AWS_* / AZURE_* / GOOGLE_* environment.
pub(crate) fn object_store(
    ws: Arc<Workspace>,
    table_id: &str,
    location: &Url,
    first: &Vended,
) -> Result<Arc<dyn ObjectStore>, String> {
    let store: Arc<dyn ObjectStore> = match location.scheme() {
        "s3" | "s3a" => Arc::new(
            AmazonS3Builder::from_env()
                .with_url(location.as_str())
                .with_credentials(Arc::new(Vending::new(ws.clone(), table_id.to_owned(), aws_credential, first)))
                .build()
                .map_err(|e| e.to_string())?,
        ),
        "abfss" | "abfs" | "az" | "azure" | "adl" => Arc::new(
            MicrosoftAzureBuilder::from_env()
                .with_url(location.as_str())
                .with_credentials(Arc::new(Vending::new(ws.clone(), table_id.to_owned(), azure_credential, first)))
                .build()
                .map_err(|e| e.to_string())?,
        ),
        "gs" => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_url(location.as_str())
                .with_credentials(Arc::new(Vending::new(ws.clone(), table_id.to_owned(), gcp_credential, first)))
                .build()
                .map_err(|e| e.to_string())?,
        ),
        other => return Err(format!("storage location scheme {other}:// is not supported")),
    };
    Ok(store)
}

fn aws_credential(v: &VendedCredential) -> Option<AwsCredential> {
    match v {
        VendedCredential::Aws { key_id, secret_key, token } => {
            Some(AwsCredential { key_id: key_id.clone(), secret_key: secret_key.clone(), token: token.clone() })
        }
        _ => None,
    }
}

fn azure_credential(v: &VendedCredential) -> Option<AzureCredential> {
    match v {
        VendedCredential::AzureSas(sas) => Some(AzureCredential::SASToken(
            url::form_urlencoded::parse(sas.trim_start_matches('?').as_bytes()).into_owned().collect(),
        )),
        _ => None,
    }
}

fn gcp_credential(v: &VendedCredential) -> Option<GcpCredential> {
    match v {
        VendedCredential::Gcp(token) => Some(GcpCredential { bearer: token.clone() }),
        _ => None,
    }
}

/// Renew vended credentials this long before they expire (or halfway through a shorter life).
const RENEW_AHEAD: Duration = Duration::from_secs(300);

/// An object store credential provider backed by Unity Catalog credential vending.
struct Vending<C> {
    ws: Arc<Workspace>,
    table_id: String,
    convert: fn(&VendedCredential) -> Option<C>,
    current: tokio::sync::Mutex<Option<(Arc<C>, SystemTime)>>,
}

impl<C> Vending<C> {
    /// Starting with the `first` credentials vended (a credential of another cloud is refused when first used).
    fn new(ws: Arc<Workspace>, table_id: String, convert: fn(&VendedCredential) -> Option<C>, first: &Vended) -> Self {
        let current = usable(convert, first).ok();
        Vending { ws, table_id, convert, current: tokio::sync::Mutex::new(current) }
    }
}

/// The credential in `vended` for this cloud, and when to renew it.
fn usable<C>(convert: fn(&VendedCredential) -> Option<C>, vended: &Vended) -> Result<(Arc<C>, SystemTime), String> {
    let credential = convert(&vended.credential)
        .ok_or_else(|| format!("vended credentials for another cloud: {:?}", kind(vended)))?;
    let now = SystemTime::now();
    let life = vended.expires_at.duration_since(now).unwrap_or_default();
    Ok((Arc::new(credential), now + life - RENEW_AHEAD.min(life / 2)))
}

impl<C> std::fmt::Debug for Vending<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UnityCatalogVending({}, table {})", self.ws.host(), self.table_id)
    }
}

#[async_trait::async_trait]
impl<C: Send + Sync + 'static> CredentialProvider for Vending<C> {
    type Credential = C;

    async fn get_credential(&self) -> object_store::Result<Arc<C>> {
        let mut current = self.current.lock().await;
        if let Some((credential, renew_at)) = current.as_ref() {
            if SystemTime::now() < *renew_at {
                return Ok(credential.clone());
            }
        }
        let generic = |message: String| object_store::Error::Generic { store: "UnityCatalog", source: message.into() };
        let vended = temporary_credentials(&self.ws, &self.table_id).await.map_err(|e| generic(e.to_string()))?;
        let (credential, renew_at) = usable(self.convert, &vended).map_err(generic)?;
        let valid_for_s = vended.expires_at.duration_since(SystemTime::now()).unwrap_or_default().as_secs();
        tracing::info!(table_id = self.table_id, valid_for_s, "vended storage credentials");
        *current = Some((credential.clone(), renew_at));
        Ok(credential)
    }
}

fn kind(v: &Vended) -> &'static str {
    match v.credential {
        VendedCredential::Aws { .. } => "AWS",
        VendedCredential::AzureSas(_) => "Azure",
        VendedCredential::Gcp(_) => "GCP",
    }
}

fn table_info(call: &str, answer: &Value) -> Result<TableInfo, DatabricksError> {
    let text = |k: &str| answer.get(k).and_then(Value::as_str).map(str::to_owned);
    let missing = |k: &str| DatabricksError::Answer { call: call.to_owned(), reason: format!("no {k}") };
    Ok(TableInfo {
        table_id: text("table_id").ok_or_else(|| missing("table_id"))?,
        table_type: text("table_type").unwrap_or_default(),
        data_source_format: text("data_source_format").unwrap_or_default(),
        storage_location: text("storage_location"),
        properties: answer
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
            .unwrap_or_default(),
        columns: match answer.get("columns") {
            Some(columns) => serde_json::from_value(columns.clone())
                .map_err(|e| DatabricksError::Answer { call: call.to_owned(), reason: format!("columns: {e}") })?,
            None => Vec::new(),
        },
    })
}

fn split_name(full_name: &str) -> Result<[&str; 3], DatabricksError> {
    let parts: Vec<&str> = full_name.split('.').collect();
    match parts[..] {
        [c, s, t] if !c.is_empty() && !s.is_empty() && !t.is_empty() => Ok([c, s, t]),
        _ => Err(DatabricksError::Config(format!("{full_name:?} is not a catalog.schema.table name"))),
    }
}

/// Spark SQL type text of a Delta type's JSON (`string`, `map<string,string>`, `array<struct<...>>`).
fn spark_type_text(t: &Value) -> String {
    match t {
        Value::String(s) if s == "long" => "bigint".into(),
        Value::String(s) if s == "integer" => "int".into(),
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("map") => format!(
                "map<{},{}>",
                spark_type_text(o.get("keyType").unwrap_or(&Value::Null)),
                spark_type_text(o.get("valueType").unwrap_or(&Value::Null))
            ),
            Some("array") => format!("array<{}>", spark_type_text(o.get("elementType").unwrap_or(&Value::Null))),
            Some("struct") => {
                let fields = o.get("fields").and_then(Value::as_array).cloned().unwrap_or_default();
                let inner: Vec<String> = fields
                    .iter()
                    .map(|f| {
                        let name = f.get("name").and_then(Value::as_str).unwrap_or("");
                        format!("{name}:{}", spark_type_text(f.get("type").unwrap_or(&Value::Null)))
                    })
                    .collect();
                format!("struct<{}>", inner.join(","))
            }
            _ => "string".into(),
        },
        _ => "string".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(properties: &[(&str, &str)]) -> TableInfo {
        TableInfo {
            table_id: "id".into(),
            table_type: "EXTERNAL".into(),
            data_source_format: "DELTA".into(),
            storage_location: Some("s3://b/t".into()),
            properties: properties.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            columns: uc_columns(Contract::spans_v1()),
        }
    }

    #[test]
    fn views_and_tables_without_storage_are_refused_clustered_ones_are_not() {
        assert!(refuse_unwritable(&info(&[("otel.schemaVersion", "v1")])).is_ok());
        assert!(refuse_unwritable(&info(&[("clusteringColumns", "[[\"time\"]]")])).is_ok());
        let mut view = info(&[]);
        view.table_type = "VIEW".into();
        assert!(refuse_unwritable(&view).unwrap_err().contains("VIEW"));
        let mut nowhere = info(&[]);
        nowhere.storage_location = None;
        assert!(refuse_unwritable(&nowhere).is_err());
    }

    fn table(contract: &Contract, properties: &[(&str, &str)]) -> TableInfo {
        TableInfo {
            table_id: "t".into(),
            table_type: "MANAGED".into(),
            data_source_format: "DELTA".into(),
            storage_location: None,
            properties: properties.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            columns: uc_columns(contract),
        }
    }

    #[test]
    fn the_table_decides_the_layout_and_a_contradicting_layout_is_refused_naming_both() {
        let (v1, v2) = (Contract::spans_v1(), Contract::spans_v2());
        // By property, or without it by the VARIANT columns.
        assert_eq!(table_contract(&table(v2, &[(LAYOUT_PROPERTY, "v2")]), Signal::Traces, None), Ok(v2));
        assert_eq!(table_contract(&table(v2, &[]), Signal::Traces, None), Ok(v2));
        assert_eq!(table_contract(&table(v1, &[]), Signal::Traces, None), Ok(v1));
        assert_eq!(table_contract(&table(v1, &[(LAYOUT_PROPERTY, "v1")]), Signal::Traces, Some(Layout::V1)), Ok(v1));
        assert_eq!(table_contract(&table(v2, &[]), Signal::Traces, Some(Layout::V2)), Ok(v2));
        let refused =
            table_contract(&table(v2, &[(LAYOUT_PROPERTY, "v2")]), Signal::Traces, Some(Layout::V1)).unwrap_err();
        assert!(
            refused.starts_with(
                "is not an otel-delta v1 spans table: otel.schemaVersion is \"v2\", this writer writes \"v1\""
            ),
            "{refused}"
        );
        let refused = table_contract(&table(v1, &[]), Signal::Traces, Some(Layout::V2)).unwrap_err();
        assert!(refused.contains("no VARIANT column") && refused.contains("--layout v2"), "{refused}");
        let refused = table_contract(&table(v2, &[]), Signal::Traces, Some(Layout::V1)).unwrap_err();
        assert!(refused.contains("\"attributes\"") && refused.contains("(v2)"), "{refused}");
        assert!(table_contract(&table(v1, &[(LAYOUT_PROPERTY, "v3")]), Signal::Traces, None)
            .unwrap_err()
            .contains("\"v3\""));
        // Only nested VARIANTs (a table whose top-level bags were dropped) still make it v2, which it then lacks a
        // column of.
        let mut nested = table(v2, &[]);
        nested.columns.retain(|c| c.type_name != "VARIANT");
        assert!(nested.columns.iter().any(|c| c.name == "events"));
        assert_eq!(layout_of(&nested).map(|(layout, _)| layout), Ok(Layout::V2));
        let refused = table_contract(&nested, Signal::Traces, None).unwrap_err();
        assert!(refused.ends_with("it has no column attributes"), "{refused}");
        let mut empty = table(v1, &[]);
        empty.columns.clear();
        assert!(table_contract(&empty, Signal::Traces, None).unwrap_err().contains("no columns"));
    }

    #[test]
    fn spark_type_text_of_the_spans_schema() {
        let types: Vec<String> = Contract::spans_v1()
            .delta_schema()
            .fields()
            .map(|f| spark_type_text(&serde_json::to_value(f.data_type()).unwrap()))
            .collect();
        assert_eq!(types[0], "string");
        assert!(types.contains(&"bigint".to_owned()));
        assert!(types.contains(&"map<string,string>".to_owned()));
        assert!(types.iter().any(|t| t.starts_with("array<struct<time_unix_nano:bigint,name:string,")), "{types:?}");
    }
}
