//! Zerobus: rows go to a Unity Catalog table through Databricks Zerobus Ingest (a gRPC stream per collector, the
//! official SDK), for tables Databricks manages itself (MLflow's managed trace tables), where Unity Catalog vends
//! no write credentials.
//!
//! Contract: [`ZerobusTable::send`] queues one sealed batch's rows on the stream and returns a future that resolves
//! `Ok` only once Zerobus has acknowledged every one of those records as durable (its acks are cumulative: the
//! offset of the batch's last ingest call covers all of them). A dropped connection is recovered by the SDK, which
//! replays the records not yet acknowledged; a stream that fails for good answers its waiting batches with an
//! error (the pipeline answers 503: the client retries, so a record can arrive twice, never be lost once acked)
//! and the next batch opens a new stream. No record it is given exceeds [`MAX_CALL_BYTES`]: the workers leave such
//! a record out and answer its span rejected (it could never be sent), so nothing here fails for one.
//!
//! Authentication: a personal access token is sent as the stream's bearer token (the Databricks App's
//! `databricks-token` secret, as the Python app this replaces sent it); a service principal gets the SDK's own
//! table-scoped OAuth token.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use databricks_zerobus_ingest_sdk::schema::{descriptor_from_uc_columns, UcColumn};
use databricks_zerobus_ingest_sdk::{
    message_descriptor, HeadersProvider, SecureTlsConfig, TlsConfig, ZerobusError, ZerobusResult, ZerobusSdk,
    ZerobusStream,
};
use prost_types::DescriptorProto;

use super::{Auth, Workspace};
use crate::encode::rows::RowEncoder;
use crate::table::Contract;

/// Records per ingest call stay under this many bytes: Zerobus refuses calls above 10 MiB. Also the largest record
/// sent: the sink's writer leaves out larger ones (see [`crate::sink`]), so that [`split`] never meets one.
pub(crate) const MAX_CALL_BYTES: usize = 8 << 20;

/// Why the Zerobus sink could not start or send.
#[derive(Debug, thiserror::Error)]
pub enum ZerobusTableError {
    #[error("Zerobus table {table}: {reason}")]
    Table { table: String, reason: String },
    #[error("Zerobus endpoint {endpoint}: {source}")]
    Connect { endpoint: String, source: Box<ZerobusError> },
    #[error("Zerobus: {0}")]
    Stream(#[from] Box<ZerobusError>),
    /// Never expected: the workers leave such records out (see [`MAX_CALL_BYTES`]).
    #[error("a single span's record is {0} bytes, above the {MAX_CALL_BYTES} bytes of one Zerobus ingest call")]
    RecordTooLarge(usize),
    #[error(
        "--sink zerobus: the Zerobus endpoint cannot be derived ({0}): set ZEROBUS_ENDPOINT to \
         https://<workspace-id>.zerobus.<region>.cloud.databricks.com (Azure: …azuredatabricks.net, GCP: \
         …gcp.databricks.com)"
    )]
    NoEndpoint(String),
}

/// A personal access token as Zerobus headers (the SDK's OAuth provider covers service principals).
struct PatHeaders {
    token: String,
    table: String,
}

#[async_trait]
impl HeadersProvider for PatHeaders {
    async fn get_headers(&self) -> ZerobusResult<HashMap<&'static str, String>> {
        Ok(HashMap::from([
            ("authorization", format!("Bearer {}", self.token)),
            ("x-databricks-zerobus-table-name", self.table.clone()),
        ]))
    }
}

/// Plain HTTP/2 for an `http://` endpoint (a local proxy or test server); TLS otherwise.
struct PlainText;

impl TlsConfig for PlainText {
    fn configure_endpoint(&self, endpoint: tonic::transport::Endpoint) -> ZerobusResult<tonic::transport::Endpoint> {
        Ok(endpoint)
    }
}

/// Stream settings that do not change between streams.
#[derive(Clone)]
enum Credentials {
    Pat(Arc<PatHeaders>),
    OAuth { client_id: String, client_secret: String },
}

/// One Zerobus stream into one table, reopened when it fails.
pub(crate) struct ZerobusTable {
    contract: &'static Contract,
    sdk: ZerobusSdk,
    endpoint: String,
    table: String,
    descriptor: DescriptorProto,
    credentials: Credentials,
    encoder: Arc<RowEncoder>,
    stream: Option<Arc<ZerobusStream>>,
}

impl ZerobusTable {
    /// Derive the record descriptor from the table's Unity Catalog columns, check that it can hold every column
    /// we write, and open the first stream (so bad credentials or a missing table stop start-up).
    pub(crate) async fn connect(
        ws: &Workspace,
        endpoint: &str,
        table: &str,
        columns: &[UcColumn],
        contract: &'static Contract,
    ) -> Result<ZerobusTable, ZerobusTableError> {
        let refused = |reason: String| ZerobusTableError::Table { table: table.to_owned(), reason };
        let descriptor = descriptor_from_uc_columns(columns, contract.name_suffix)
            .map_err(|e| refused(format!("deriving the record descriptor: {e}")))?;
        let resolved = message_descriptor(&descriptor).map_err(|e| refused(format!("record descriptor: {e}")))?;
        let encoder = RowEncoder::new(&resolved, contract.arrow_schema().fields())
            .map_err(|e| refused(format!("cannot hold the {contract} rows: {e}")))?;
        let tls: Arc<dyn TlsConfig> =
            if endpoint.starts_with("http://") { Arc::new(PlainText) } else { Arc::new(SecureTlsConfig::new()) };
        let connect_error =
            |e: ZerobusError| ZerobusTableError::Connect { endpoint: endpoint.to_owned(), source: e.into() };
        let sdk = ZerobusSdk::builder()
            .endpoint(endpoint)
            .unity_catalog_url(ws.host().as_str().trim_end_matches('/'))
            .tls_config(tls)
            .application_name(concat!("otel-delta/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(connect_error)?;
        let credentials = match ws.credentials() {
            Auth::Pat(token) => {
                Credentials::Pat(Arc::new(PatHeaders { token: token.clone(), table: table.to_owned() }))
            }
            Auth::OAuth(m2m) => {
                let (client_id, client_secret) = m2m.client();
                Credentials::OAuth { client_id: client_id.to_owned(), client_secret: client_secret.to_owned() }
            }
        };
        let mut sink = ZerobusTable {
            contract,
            sdk,
            endpoint: endpoint.to_owned(),
            table: table.to_owned(),
            descriptor,
            credentials,
            encoder: Arc::new(encoder),
            stream: None,
        };
        sink.stream().await.map_err(|e| match e {
            ZerobusTableError::Stream(source) => ZerobusTableError::Connect { endpoint: endpoint.to_owned(), source },
            other => other,
        })?;
        Ok(sink)
    }

    /// The table's rows.
    pub(crate) fn contract(&self) -> &'static Contract {
        self.contract
    }

    /// How the pipeline's workers turn record batches into this table's records.
    pub(crate) fn encoder(&self) -> Arc<RowEncoder> {
        self.encoder.clone()
    }

    pub(crate) fn table(&self) -> &str {
        &self.table
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The open stream, or a new one if there is none or it has failed.
    async fn stream(&mut self) -> Result<Arc<ZerobusStream>, ZerobusTableError> {
        if let Some(stream) = self.stream.as_ref().filter(|s| !s.is_closed()) {
            return Ok(stream.clone());
        }
        let builder = self.sdk.stream_builder().table(self.table.clone());
        let builder = match &self.credentials {
            Credentials::Pat(headers) => builder.headers_provider(headers.clone()),
            Credentials::OAuth { client_id, client_secret } => builder.oauth(client_id.clone(), client_secret.clone()),
        };
        let stream = builder
            .compiled_proto(self.descriptor.clone())
            .max_ingest_payload_bytes(MAX_CALL_BYTES + (1 << 20))
            .build()
            .await
            .map_err(Box::new)?;
        tracing::info!(table = self.table, endpoint = self.endpoint, "Zerobus stream open");
        let stream = Arc::new(stream);
        self.stream = Some(stream.clone());
        Ok(stream)
    }

    /// Queue `rows`; the returned future resolves once Zerobus has made all of them durable. A stream found
    /// failed is replaced, and the rows are queued on the new one.
    pub(crate) async fn send(
        &mut self,
        rows: Vec<Vec<u8>>,
    ) -> Result<impl Future<Output = Result<(), ZerobusTableError>> + Send + 'static, ZerobusTableError> {
        let calls = split(rows)?;
        if calls.is_empty() {
            // Every row of the batch was left out by its worker: nothing to queue or wait for, whatever the
            // stream's state.
            return Ok(durable(None));
        }
        let mut retried = false;
        loop {
            let stream = self.stream().await?;
            match queue(&stream, &calls).await {
                Ok(last) => return Ok(durable(last.map(|offset| (stream, offset)))),
                Err(e) if !retried => {
                    tracing::warn!(error = %e, table = self.table, "Zerobus stream failed; opening a new one");
                    self.stream = None;
                    retried = true;
                }
                Err(e) => return Err(ZerobusTableError::Stream(Box::new(e))),
            }
        }
    }

    /// Wait for every queued record's acknowledgement and close the stream (at shutdown, after the last send).
    pub(crate) async fn close(mut self) {
        if let Some(stream) = self.stream.take() {
            match Arc::try_unwrap(stream) {
                Ok(mut stream) => {
                    if let Err(e) = stream.close().await {
                        tracing::warn!(error = %e, "closing the Zerobus stream");
                    }
                }
                Err(shared) => {
                    // Someone still waits on it: let them, then drop.
                    let _ = shared.flush().await;
                }
            }
        }
    }
}

/// The workspace's Zerobus endpoint, `https://<workspace-id>.zerobus.<region>.<cloud's domain>`, from what the
/// workspace says: the cloud and region of its metastore (`metastore_summary`) and its id (see
/// [`Workspace::workspace_id`]). [`ZerobusTableError::NoEndpoint`] names what it did not say.
pub async fn derive_endpoint(ws: &Workspace) -> Result<String, ZerobusTableError> {
    let summary = ws
        .call(reqwest::Method::GET, "/api/2.1/unity-catalog/metastore_summary", &[], None)
        .await
        .map_err(|e| ZerobusTableError::NoEndpoint(e.to_string()))?;
    let field = |name: &str| summary.get(name).and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
    let workspace_id = ws.workspace_id().ok_or_else(|| {
        ZerobusTableError::NoEndpoint("the workspace's answers carry no x-databricks-org-id".to_owned())
    })?;
    let endpoint = endpoint_for(&workspace_id, &field("cloud"), &field("region"))?;
    tracing::info!(endpoint, "Zerobus endpoint derived from the workspace (ZEROBUS_ENDPOINT overrides it)");
    Ok(endpoint)
}

/// The Zerobus endpoint of workspace `id` in `region` of `cloud` (`aws`, `azure` or `gcp`, as Unity Catalog
/// names them).
fn endpoint_for(id: &str, cloud: &str, region: &str) -> Result<String, ZerobusTableError> {
    let domain = match cloud.to_ascii_lowercase().as_str() {
        "aws" => "cloud.databricks.com",
        "azure" => "azuredatabricks.net",
        "gcp" => "gcp.databricks.com",
        other => return Err(ZerobusTableError::NoEndpoint(format!("the metastore's cloud is {other:?}"))),
    };
    let region = region.to_ascii_lowercase();
    if region.is_empty() || !region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(ZerobusTableError::NoEndpoint(format!("the metastore's region is {region:?}")));
    }
    Ok(format!("https://{id}.zerobus.{region}.{domain}"))
}

/// Resolves once `stream` has acknowledged `offset` (and so every record before it) as durable; at once if
/// nothing was queued.
async fn durable(queued: Option<(Arc<ZerobusStream>, i64)>) -> Result<(), ZerobusTableError> {
    if let Some((stream, offset)) = queued {
        stream.wait_for_offset(offset).await.map_err(Box::new)?;
    }
    Ok(())
}

/// Group rows into ingest calls of at most [`MAX_CALL_BYTES`]. A larger row is an error, not a panic: the workers
/// leave such rows out, so it would be a bug.
fn split(rows: Vec<Vec<u8>>) -> Result<Vec<Vec<Vec<u8>>>, ZerobusTableError> {
    let mut calls = Vec::new();
    let mut call = Vec::new();
    let mut bytes = 0;
    for row in rows {
        if row.len() > MAX_CALL_BYTES {
            return Err(ZerobusTableError::RecordTooLarge(row.len()));
        }
        if bytes + row.len() > MAX_CALL_BYTES && !call.is_empty() {
            calls.push(std::mem::take(&mut call));
            bytes = 0;
        }
        bytes += row.len();
        call.push(row);
    }
    if !call.is_empty() {
        calls.push(call);
    }
    Ok(calls)
}

/// Queue every call; the offset of the last one.
async fn queue(stream: &ZerobusStream, calls: &[Vec<Vec<u8>>]) -> Result<Option<i64>, ZerobusError> {
    let mut last = None;
    for call in calls {
        if let Some(offset) = stream.ingest_records_offset(call.iter().cloned()).await? {
            last = Some(offset);
        }
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_each_clouds_pattern() {
        let ok = |cloud, region| endpoint_for("1234567890123456", cloud, region).unwrap();
        assert_eq!(ok("aws", "us-west-2"), "https://1234567890123456.zerobus.us-west-2.cloud.databricks.com");
        assert_eq!(ok("AZURE", "westeurope"), "https://1234567890123456.zerobus.westeurope.azuredatabricks.net");
        assert_eq!(ok("gcp", "us-central1"), "https://1234567890123456.zerobus.us-central1.gcp.databricks.com");
        let refused = endpoint_for("1", "", "us-west-2").unwrap_err().to_string();
        assert!(refused.contains("cloud is \"\"") && refused.contains("set ZEROBUS_ENDPOINT"), "{refused}");
        assert!(endpoint_for("1", "aws", "").is_err());
        assert!(endpoint_for("1", "aws", "us west/2").is_err());
    }

    #[test]
    fn rows_are_split_into_calls_under_the_limit() {
        let rows = vec![vec![0u8; MAX_CALL_BYTES / 2]; 5];
        let calls = split(rows).unwrap();
        assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        assert!(matches!(split(vec![vec![0; MAX_CALL_BYTES + 1]]), Err(ZerobusTableError::RecordTooLarge(_))));
        assert!(split(Vec::new()).unwrap().is_empty());
    }
}
