//! Object stores: the real binary writing its table to an S3 server (moto) and to Azurite, both on loopback,
//! started by `tests/stores/start.sh`, whose `tests/stores/env.sh` gives the endpoints and credentials.
//!
//! Without `OTEL_DELTA_TEST_S3` (or `OTEL_DELTA_TEST_AZURE`) these tests say so on stderr and pass, unless
//! `OTEL_DELTA_REQUIRE_STORES=1` (CI), where a missing store is a failure. Every test writes a table of its own
//! under a fresh prefix, and reads it back independently of the collector (delta-rs for the file list, the
//! Parquet reader for the rows, every byte fetched through the table's object store).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use object_store::ObjectStoreExt as _;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message as _;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use url::Url;

use crate::http::request;
use crate::support::read_rows_at;

const BIN: &str = env!("CARGO_BIN_EXE_otel-delta");
const PROTOBUF: &str = "application/x-protobuf";
/// Longest any single step may take before the test fails instead of hanging (start-up, a request, a drain).
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------------------
// Which stores are there

/// The value of `var` when the store is configured; `None` (with a note on stderr) to skip the test, or a panic
/// when `OTEL_DELTA_REQUIRE_STORES=1`.
fn configured(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var("OTEL_DELTA_REQUIRE_STORES").as_deref() == Ok("1") => panic!(
            "{var} is unset but OTEL_DELTA_REQUIRE_STORES=1: run `bash tests/stores/start.sh` and \
             `source tests/stores/env.sh` before `cargo test`"
        ),
        _ => {
            eprintln!(
                "skipped: {var} is unset (run `bash tests/stores/start.sh; source tests/stores/env.sh` for the \
                 object store tests)"
            );
            None
        }
    }
}

/// Where test tables go: `$var` itself when it is a URL of `scheme`, else `<scheme>://otel-delta-test`.
fn base_url(var: &str, scheme: &str) -> Option<String> {
    let value = configured(var)?;
    let base = if value.starts_with(&format!("{scheme}://")) {
        value.trim_end_matches('/').to_owned()
    } else {
        format!("{scheme}://otel-delta-test")
    };
    static REGISTER: Once = Once::new();
    REGISTER.call_once(otel_delta::register_object_stores);
    Some(base)
}

/// A fresh table URL under the S3 bucket, or `None` to skip.
pub fn s3_table(name: &str) -> Option<Url> {
    let base = base_url("OTEL_DELTA_TEST_S3", "s3")?;
    Some(Url::parse(&format!("{base}/{name}-{}", uuid::Uuid::new_v4())).unwrap())
}

/// A fresh table URL under the Azurite container, or `None` to skip.
fn azure_table(name: &str) -> Option<Url> {
    let base = base_url("OTEL_DELTA_TEST_AZURE", "az")?;
    Some(Url::parse(&format!("{base}/{name}-{}", uuid::Uuid::new_v4())).unwrap())
}

/// The S3 endpoint of the environment (moto), as `host:port`.
fn s3_endpoint() -> SocketAddr {
    let endpoint = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT", "AWS_ENDPOINT_URL_S3"]
        .iter()
        .find_map(|k| std::env::var(k).ok())
        .expect("the S3 environment names an endpoint (AWS_ENDPOINT_URL)");
    let url = Url::parse(&endpoint).unwrap();
    let host = url.host_str().unwrap().trim_start_matches('[').trim_end_matches(']');
    let host = if host == "localhost" { "127.0.0.1" } else { host };
    SocketAddr::new(host.parse().expect("a loopback endpoint"), url.port_or_known_default().unwrap())
}

// ---------------------------------------------------------------------------------------------------------
// The binary

/// `otel-delta serve` as a child process. Killed (SIGKILL) if dropped while running, so a failing test leaves
/// nothing behind; [`Serve::stop`] is the SIGTERM path.
pub struct Serve {
    child: Option<Child>,
    pub traces_url: String,
    table_line: String,
    logs: Arc<Mutex<String>>,
}

impl Serve {
    /// Start serving `table` with the tests' defaults (loopback port 0, no gRPC, 200 ms flush) and `extra` flags,
    /// `env` added to the environment; returns once the binary printed its OTLP/HTTP address.
    async fn start(table: &Url, extra: &[&str], env: &[(&str, String)]) -> Serve {
        let mut args = vec!["--table", table.as_str()];
        if !extra.contains(&"--flush-interval") {
            args.extend_from_slice(&["--flush-interval", "200ms"]);
        }
        args.extend_from_slice(extra);
        Serve::start_with(&args, env).await
    }

    /// `otel-delta serve` on loopback port 0 without gRPC, with `args` and `env` added.
    pub async fn start_with(extra: &[&str], env: &[(&str, String)]) -> Serve {
        let mut args = vec!["serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "off"];
        args.extend_from_slice(extra);
        Serve::spawn(&args, env).await
    }

    /// `otel-delta <args>` exactly (`args` starts with `serve`).
    pub async fn spawn(args: &[&str], env: &[(&str, String)]) -> Serve {
        let mut command = Command::new(BIN);
        command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // Plain log lines in failure messages; metrics on a port of their own (never the default 8888, which
        // another test's collector would hold). `env` and the flags in `args` may override it.
        command.env("NO_COLOR", "1").env("OTEL_DELTA_METRICS_ADDR", "127.0.0.1:0");
        // The fake workspaces and Zerobus servers speak plain HTTP.
        command.env("OTEL_DELTA_INSECURE_DATABRICKS_HTTP", "true");
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("the otel-delta binary starts");
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let stderr_thread = std::thread::spawn({
            let logs = logs.clone();
            move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let mut logs = logs.lock().unwrap();
                    logs.push_str(&line);
                    logs.push('\n');
                }
            }
        });
        let stdout = child.stdout.take().unwrap();
        let first_lines = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stdout).lines();
            let table_line = lines.next().and_then(Result::ok);
            let http_line = lines.next().and_then(Result::ok);
            (table_line, http_line, lines)
        });
        let mut serve = Serve { child: Some(child), traces_url: String::new(), table_line: String::new(), logs };
        let (table_line, http_line, rest) = match tokio::time::timeout(STEP_TIMEOUT, first_lines).await {
            Ok(lines) => lines.unwrap(),
            Err(_) => panic!("otel-delta {args:?} printed no address in {STEP_TIMEOUT:?}:\n{}", serve.logs()),
        };
        let (Some(table_line), Some(http_line)) = (table_line, http_line) else {
            // Start-up failed: the process is ending, collect its exit status and what it said.
            let status = serve.child.as_mut().unwrap().wait();
            let _ = stderr_thread.join();
            panic!("otel-delta {args:?} did not start ({status:?}):\n{}", serve.logs());
        };
        assert!(table_line.starts_with("otel-delta: table "), "{table_line}");
        serve.table_line = table_line;
        let url = http_line.rsplit(' ').next().unwrap().to_owned();
        assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/v1/traces"), "{http_line}");
        serve.traces_url = url;
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn({
            let logs = serve.logs.clone();
            move || {
                for line in rest.map_while(Result::ok) {
                    let mut logs = logs.lock().unwrap();
                    logs.push_str("stdout: ");
                    logs.push_str(&line);
                    logs.push('\n');
                }
            }
        });
        serve
    }

    /// `GET /metrics` of the binary, at the address it printed (`otel-delta: metrics on <url>`, after its OTLP
    /// addresses: copied into the logs as it comes).
    pub async fn metrics(&self) -> String {
        let started = std::time::Instant::now();
        let url = loop {
            let logs = self.logs.lock().unwrap().clone();
            let printed =
                logs.lines().find_map(|l| l.strip_prefix("stdout: otel-delta: metrics on ").map(str::to_owned));
            if let Some(url) = printed {
                break url;
            }
            assert!(started.elapsed() < STEP_TIMEOUT, "no metrics address printed:\n{}", self.logs());
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        reqwest::get(url).await.unwrap().text().await.unwrap()
    }

    /// The binary's first line: `otel-delta: table <url>`.
    pub fn table_line(&self) -> &str {
        &self.table_line
    }

    /// The last lines the binary wrote to stderr (and stdout after its address), for failure messages.
    pub fn logs(&self) -> String {
        let logs = self.logs.lock().unwrap();
        let lines: Vec<&str> = logs.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Everything the binary wrote to stderr, still filling while it runs and complete once it exited.
    pub fn log_buffer(&self) -> Arc<Mutex<String>> {
        self.logs.clone()
    }

    /// The first warning and error lines the binary logged (a few), to explain refusals.
    fn warnings(&self) -> String {
        let logs = self.logs.lock().unwrap();
        let lines: Vec<&str> =
            logs.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).take(10).collect();
        lines.join("\n")
    }

    /// SIGTERM, then wait for the drain: the process must exit 0.
    pub async fn stop(self) {
        let logs = self.logs.clone();
        let status = self.terminate().await;
        assert!(status.success(), "otel-delta exited with {status} after SIGTERM:\n{}", logs.lock().unwrap());
    }

    /// SIGTERM, then its exit status (killed, and the test failed, if it does not exit within `STEP_TIMEOUT`).
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let pid = child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let wait = tokio::task::spawn_blocking(move || {
            let status = child.wait();
            (status, child)
        });
        match tokio::time::timeout(STEP_TIMEOUT, wait).await {
            Ok(done) => done.unwrap().0.unwrap(),
            Err(_) => {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
                panic!("otel-delta did not exit within {STEP_TIMEOUT:?} of SIGTERM:\n{}", self.logs());
            }
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                eprintln!("--- otel-delta output ({}) ---\n{}", self.traces_url, self.logs());
            }
        }
    }
}

/// Run `otel-delta <args>` to completion (bounded); returns (success, stdout, stderr).
async fn run_bin(args: Vec<String>) -> (bool, String, String) {
    let child = Command::new(BIN)
        .args(&args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the otel-delta binary starts");
    let pid = child.id().to_string();
    let limit = STEP_TIMEOUT * 2;
    match tokio::time::timeout(limit, tokio::task::spawn_blocking(move || child.wait_with_output())).await {
        Ok(output) => {
            let output = output.unwrap().unwrap();
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            (output.status.success(), text(&output.stdout), text(&output.stderr))
        }
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("otel-delta {args:?} did not finish in {limit:?}");
        }
    }
}

/// The binary's own result lines (`otel-delta: ...`), without the log lines around them.
fn summary(stdout: &str) -> String {
    stdout.lines().filter(|l| l.starts_with("otel-delta:")).collect::<Vec<_>>().join("\n")
}

// ---------------------------------------------------------------------------------------------------------
// Clients

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(STEP_TIMEOUT).build().unwrap()
}

/// One export; the status and Retry-After of the answer. A 200 must be a full success.
async fn export(client: &reqwest::Client, url: &str, body: Bytes) -> (StatusCode, Option<String>) {
    let response = client
        .post(url)
        .header("content-type", PROTOBUF)
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: no answer: {e}"));
    let status = response.status();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.bytes().await.unwrap();
    if status == StatusCode::OK {
        let body = ExportTraceServiceResponse::decode(bytes).unwrap();
        assert_eq!(body.partial_success, None, "every span of these requests is valid");
    }
    (status, retry_after)
}

/// Send `requests` at once; each must be acknowledged. Returns their span keys.
async fn export_all_ok(c: &Serve, requests: &[ExportTraceServiceRequest]) -> Vec<String> {
    let client = client();
    let answers = futures::future::join_all(requests.iter().map(|r| {
        let (client, url) = (client.clone(), c.traces_url.clone());
        let body = Bytes::from(r.encode_to_vec());
        async move { export(&client, &url, body).await.0 }
    }))
    .await;
    let mut acked = Vec::new();
    for (request, status) in requests.iter().zip(answers) {
        assert_eq!(status, StatusCode::OK, "{}", c.logs());
        acked.extend(span_keys(request));
    }
    acked
}

/// Export until a 200, retrying 503s (with Retry-After) up to `tries` times; any other status fails the test.
/// Returns whether the request was acknowledged.
async fn export_retrying(client: &reqwest::Client, url: &str, body: Bytes, tries: usize) -> bool {
    for _ in 0..tries {
        match export(client, url, body.clone()).await {
            (StatusCode::OK, _) => return true,
            (StatusCode::SERVICE_UNAVAILABLE, retry_after) => {
                assert!(retry_after.is_some(), "a 503 carries Retry-After");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            (status, _) => panic!("POST {url}: unexpected {status}"),
        }
    }
    false
}

/// The row key (`trace_id` + `span_id`, lowercase hex, as the table stores them) of every span of `request`.
pub fn span_keys(request: &ExportTraceServiceRequest) -> Vec<String> {
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| format!("{}{}", hex(&s.trace_id), hex(&s.span_id)))
        .collect()
}

/// `n` spans from [`request`], each with an attribute of `text_len` bytes of random (incompressible-ish) text.
fn large_request(seed: u64, n: usize, text_len: usize) -> ExportTraceServiceRequest {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut req = request(seed, n);
    for span in &mut req.resource_spans[0].scope_spans[0].spans {
        let text: String = (0..text_len)
            .map(|_| {
                // xorshift64*
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                ALPHABET[(state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 58) as usize] as char
            })
            .collect();
        span.attributes[0].value.as_mut().unwrap().value = Some(any_value::Value::StringValue(text));
    }
    req
}

// ---------------------------------------------------------------------------------------------------------
// The table, read back

/// Every row key of the table must be one of `acked`, each exactly once, and every acked one present.
pub fn assert_exactly_once(rows: &[Value], acked: &[String]) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for row in rows {
        let key = format!("{}{}", row["trace_id"].as_str().unwrap(), row["span_id"].as_str().unwrap());
        *seen.entry(key).or_default() += 1;
    }
    let acked_set: HashSet<&String> = acked.iter().collect();
    assert_eq!(acked_set.len(), acked.len(), "the test sent each span id once");
    let duplicated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).map(|(k, n)| format!("{k} x{n}")).collect();
    let missing: Vec<_> = acked.iter().filter(|k| !seen.contains_key(*k)).collect();
    let unexpected: Vec<_> = seen.keys().filter(|k| !acked_set.contains(k)).collect();
    assert!(
        duplicated.is_empty() && missing.is_empty() && unexpected.is_empty() && rows.len() == acked.len(),
        "{} rows for {} acknowledged spans: {} duplicated (e.g. {:?}), {} missing (e.g. {:?}), {} never \
         acknowledged (e.g. {:?})",
        rows.len(),
        acked.len(),
        duplicated.len(),
        &duplicated[..duplicated.len().min(3)],
        missing.len(),
        &missing[..missing.len().min(3)],
        unexpected.len(),
        &unexpected[..unexpected.len().min(3)],
    );
}

async fn open(url: &Url) -> deltalake::DeltaTable {
    deltalake::open_table_with_storage_options(url.clone(), HashMap::new())
        .await
        .unwrap_or_else(|e| panic!("opening {url}: {e}"))
}

/// The active files of the table's latest version: (path under the table root, size).
async fn active_files(url: &Url) -> Vec<(object_store::path::Path, i64)> {
    let table = open(url).await;
    table.snapshot().unwrap().log_data().into_iter().map(|f| (f.object_store_path(), f.size())).collect()
}

/// The versions of the commit files in `_delta_log/`, sorted.
async fn log_versions(url: &Url) -> Vec<u64> {
    let table = open(url).await;
    let store = table.log_store().object_store(None);
    let mut listing = store.list(Some(&object_store::path::Path::from("_delta_log")));
    let mut versions = Vec::new();
    while let Some(meta) = listing.next().await {
        let meta = meta.unwrap();
        let name = meta.location.filename().unwrap().to_owned();
        if let Some(v) = name.strip_suffix(".json").and_then(|v| v.parse::<u64>().ok()) {
            versions.push(v);
        }
    }
    versions.sort_unstable();
    versions
}

/// Each commit's actions, by version.
pub async fn log_entries(url: &Url) -> Vec<(u64, Vec<Value>)> {
    let table = open(url).await;
    let store = table.log_store().object_store(None);
    let mut entries = Vec::new();
    for v in log_versions(url).await {
        let path = object_store::path::Path::from(format!("_delta_log/{v:020}.json"));
        let bytes = store.get(&path).await.unwrap().bytes().await.unwrap();
        let actions = std::str::from_utf8(&bytes)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        entries.push((v, actions));
    }
    entries
}

/// The log holds versions 0..=N with no gap, N being the version readers see. Returns N.
pub async fn assert_log_contiguous(url: &Url) -> u64 {
    let versions = log_versions(url).await;
    let last = *versions.last().expect("the table has commits");
    assert_eq!(versions, (0..=last).collect::<Vec<_>>(), "commit versions have no gap");
    assert_eq!(open(url).await.version(), Some(last));
    last
}

// ---------------------------------------------------------------------------------------------------------
// A TCP proxy that can stall

/// Forwards TCP between the collector and the S3 server. While stalled it stops forwarding client → server
/// bytes (connections stay open, answers already on their way still arrive); bytes held by a stall are never
/// delivered: once passing again, such a connection is closed, so the server never completes a request its
/// client gave up on.
struct StallProxy {
    addr: SocketAddr,
    stalled: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl StallProxy {
    async fn start(upstream: SocketAddr) -> StallProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stalled, _) = watch::channel(false);
        let task = tokio::spawn({
            let stalled = stalled.clone();
            async move {
                // Connection tasks live in the set: aborting the accept loop ends them all.
                let mut connections = tokio::task::JoinSet::new();
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((client, _)) = accepted else { continue };
                            connections.spawn(relay(client, upstream, stalled.subscribe()));
                        }
                        Some(_) = connections.join_next(), if !connections.is_empty() => {}
                    }
                }
            }
        });
        StallProxy { addr, stalled, task }
    }

    /// The collector's environment with every S3 endpoint variable the tests' environment sets naming the
    /// proxy instead (`AWS_ENDPOINT_URL` when none is set).
    fn endpoint_env(&self) -> Vec<(&'static str, String)> {
        let mut env: Vec<(&str, String)> = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT", "AWS_ENDPOINT_URL_S3"]
            .into_iter()
            .filter(|k| std::env::var_os(k).is_some())
            .map(|k| (k, self.url()))
            .collect();
        if env.is_empty() {
            env.push(("AWS_ENDPOINT_URL", self.url()));
        }
        env
    }

    fn stall(&self, on: bool) {
        self.stalled.send_replace(on);
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr, mut stalled: watch::Receiver<bool>) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let down = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    // true: the client finished sending; false: drop the connection.
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = server_write.shutdown().await;
                    return true;
                }
                Ok(n) => n,
            };
            if *stalled.borrow_and_update() {
                let _ = stalled.wait_for(|s| !*s).await;
                return false;
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                return false;
            }
        }
    };
    tokio::pin!(down);
    tokio::select! {
        finished = up => if finished { down.await },
        () = &mut down => {}
    }
}

// ---------------------------------------------------------------------------------------------------------
// The tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_table_round_trip_with_multipart_files() {
    let Some(table) = s3_table("round-trip") else { return };
    let part_size = 5 * 1024 * 1024;
    let c = Serve::start(&table, &["--upload-part-size", "5MiB"], &[]).await;
    // One request of ~9.4 MiB of random text (a file of well over 5 MiB even compressed: 6 bits of entropy a
    // byte), and smaller ones beside it, ~12 MiB of OTLP in all.
    let mut requests = vec![large_request(1, 24, 400 * 1024)];
    requests.extend((0..8).map(|i| large_request(10 + i, 10, 32 * 1024)));
    let acked = export_all_ok(&c, &requests).await;
    c.stop().await;

    let rows = read_rows_at(&table, HashMap::new()).await;
    assert_exactly_once(&rows, &acked);
    // The big request made a file larger than a part: uploaded in parts (S3 gives a multipart upload's object
    // an ETag ending in -<number of parts>).
    let files = active_files(&table).await;
    let (big, size) = files.iter().max_by_key(|(_, size)| *size).unwrap().clone();
    assert!(size > part_size, "largest file {big} is {size} bytes, not over the 5 MiB part size");
    let store = open(&table).await.log_store().object_store(None);
    let head = store.head(&big).await.unwrap();
    assert_eq!(head.size, size as u64);
    let etag = head.e_tag.unwrap_or_default();
    assert!(etag.trim_matches('"').contains('-'), "{big} ({size} bytes) has ETag {etag}: not a multipart upload");
    assert_log_contiguous(&table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_collectors_append_to_one_s3_table() {
    let Some(table) = s3_table("three-writers") else { return };
    // Started together: they race to create the table, too.
    let (a, b, c) =
        tokio::join!(Serve::start(&table, &[], &[]), Serve::start(&table, &[], &[]), Serve::start(&table, &[], &[]));
    let collectors = [a, b, c];
    // Losing the race is expected: the losers open the winner's table without an ERROR line.
    for c in &collectors {
        assert!(!c.logs().contains("ERROR"), "a collector logged an error at start-up:\n{}", c.logs());
    }
    let lost = collectors.iter().filter(|c| c.logs().contains("created the table first")).count();
    eprintln!("three collectors: {lost} lost the race to create the table");
    let (senders_per_collector, requests_per_sender, spans, tries) = (4u64, 10u64, 50usize, 10);
    let client = client();
    let mut tasks = Vec::new();
    for (n, c) in collectors.iter().enumerate() {
        for sender in 0..senders_per_collector {
            let (client, url) = (client.clone(), c.traces_url.clone());
            tasks.push(tokio::spawn(async move {
                let (mut acked, mut given_up) = (Vec::new(), 0);
                for i in 0..requests_per_sender {
                    let request = request(100_000 + n as u64 * 10_000 + sender * 100 + i, spans);
                    if export_retrying(&client, &url, Bytes::from(request.encode_to_vec()), tries).await {
                        acked.extend(span_keys(&request));
                    } else {
                        // Refused `tries` times in a row: this collector is not recovering, stop loading it.
                        given_up += 1;
                        break;
                    }
                }
                (n, acked, given_up)
            }));
        }
    }
    let (mut acked, mut given_up) = (Vec::new(), [0u64; 3]);
    for task in tasks {
        let (n, keys, g) = task.await.unwrap();
        acked.extend(keys);
        given_up[n] += g;
    }
    let stuck: Vec<String> = collectors
        .iter()
        .enumerate()
        .filter(|(n, _)| given_up[*n] > 0)
        .map(|(n, c)| {
            format!("collector {n}: 503 {tries} times in a row for {} request(s):\n{}", given_up[n], c.warnings())
        })
        .collect();
    for c in collectors {
        c.stop().await;
    }
    eprintln!("three collectors: {} spans acknowledged; requests given up per collector: {given_up:?}", acked.len());
    for s in &stuck {
        eprintln!("{s}");
    }

    // One table: only version 0 creates it (a start-up race must not commit a second CREATE TABLE).
    let created: Vec<u64> = log_entries(&table)
        .await
        .into_iter()
        .filter(|(_, actions)| actions.iter().any(|a| a.get("metaData").is_some() || a.get("protocol").is_some()))
        .map(|(v, _)| v)
        .collect();
    assert_eq!(created, [0], "versions carrying metaData/protocol actions (the table was created more than once)");
    let rows = read_rows_at(&table, HashMap::new()).await;
    assert_exactly_once(&rows, &acked);
    let last = assert_log_contiguous(&table).await;
    eprintln!("three collectors: {} rows in {} commits", rows.len(), last + 1);
    // Concurrent appends conflict only on the version number: a collector that keeps refusing is stuck.
    assert!(stuck.is_empty(), "{}", stuck.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_stall_is_answered_503_then_recovers() {
    let Some(table) = s3_table("stall") else { return };
    let proxy = StallProxy::start(s3_endpoint()).await;
    let env = proxy.endpoint_env();
    let extra = ["--upload-timeout", "3s", "--storage-option", "timeout=2s", "--storage-option", "max_retries=1"];
    let c = Serve::start(&table, &extra, &env).await;
    let client = client();
    let mut acked = Vec::new();

    let first = request(1, 5);
    assert_eq!(export(&client, &c.traces_url, Bytes::from(first.encode_to_vec())).await.0, StatusCode::OK);
    acked.extend(span_keys(&first));

    proxy.stall(true);
    let stalled: Vec<_> = (0..3).map(|i| request(10 + i, 5)).collect();
    let started = Instant::now();
    let answers = futures::future::join_all(stalled.iter().map(|r| {
        let (client, url) = (client.clone(), c.traces_url.clone());
        let body = Bytes::from(r.encode_to_vec());
        async move { export(&client, &url, body).await }
    }))
    .await;
    eprintln!("stall: answers {answers:?} after {:?}", started.elapsed());
    for (status, retry_after) in &answers {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "a stalled upload is refused:\n{}", c.logs());
        assert!(retry_after.is_some(), "the 503 carries Retry-After");
    }

    proxy.stall(false);
    // New spans, then the refused ones again (as an exporter retries): all stored. A 503 while connections
    // broken by the stall are replaced is retried, a bounded number of times.
    let fresh = request(20, 5);
    for r in std::iter::once(&fresh).chain(&stalled) {
        let ok = export_retrying(&client, &c.traces_url, Bytes::from(r.encode_to_vec()), 10).await;
        assert!(ok, "after the stall the collector stores again:\n{}", c.logs());
        acked.extend(span_keys(r));
    }
    c.stop().await;

    // Read from the S3 server directly, not through the proxy: none of the refused attempts left rows.
    let rows = read_rows_at(&table, HashMap::new()).await;
    assert_exactly_once(&rows, &acked);
    assert_log_contiguous(&table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_stalled_store_ends_within_the_shutdown_timeout() {
    let Some(table) = s3_table("shutdown-stall") else { return };
    let proxy = StallProxy::start(s3_endpoint()).await;
    let env = proxy.endpoint_env();
    // The store timeouts alone would hold a stalled upload for minutes; the shutdown timeout is 3 s.
    let extra = ["--upload-timeout", "300s", "--storage-option", "timeout=300s", "--shutdown-timeout", "3s"];
    let c = Serve::start(&table, &extra, &env).await;
    let client = client();
    let first = request(1, 5);
    assert_eq!(export(&client, &c.traces_url, Bytes::from(first.encode_to_vec())).await.0, StatusCode::OK);

    proxy.stall(true);
    let waiting: Vec<_> = (0..3)
        .map(|i| {
            let (client, url) = (client.clone(), c.traces_url.clone());
            let body = Bytes::from(request(10 + i, 5).encode_to_vec());
            tokio::spawn(async move { export(&client, &url, body).await.0 })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", c.child.as_ref().unwrap().id())).unwrap();
    let peak = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or_default().to_owned();
    eprintln!("SIGTERM with a stalled store: collector {peak}");
    let logs = c.logs.clone();
    let started = Instant::now();
    let status = c.terminate().await;
    let took = started.elapsed();
    let logs = logs.lock().unwrap().clone();
    eprintln!("SIGTERM with a stalled store: exit {status} after {took:?}");
    // Not a timing assertion: without the shutdown timeout the process waits on the store far past this.
    assert!(took < Duration::from_secs(30), "exited only after {took:?}:\n{logs}");
    assert!(!status.success(), "accepted spans were not stored: the exit says so ({status})");
    assert!(logs.contains("shutdown took longer than 3s"), "{logs}");
    for answer in waiting {
        assert_eq!(answer.await.unwrap(), StatusCode::SERVICE_UNAVAILABLE, "answered, not dropped:\n{logs}");
    }
    proxy.stall(false);
    let rows = read_rows_at(&table, HashMap::new()).await;
    assert_exactly_once(&rows, &span_keys(&first));
    assert_log_contiguous(&table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_while_appending_keeps_every_row() {
    let Some(table) = s3_table("optimize") else { return };
    let c = Serve::start(&table, &["--flush-interval", "100ms"], &[]).await;
    let client = client();
    let mut acked = Vec::new();
    // Sequential requests: each waits for its commit, so each is a small file of its own.
    for i in 0..30 {
        let request = request(1_000 + i, 20);
        assert!(export_retrying(&client, &c.traces_url, Bytes::from(request.encode_to_vec()), 10).await);
        acked.extend(span_keys(&request));
    }
    let files_before = active_files(&table).await.len();
    assert!(files_before >= 10, "{files_before} files from 30 sequential requests");

    // Keep appending while two compactions run at once.
    let appender = tokio::spawn({
        let (client, url) = (client.clone(), c.traces_url.clone());
        async move {
            let mut acked = Vec::new();
            for i in 0..30 {
                let request = request(2_000 + i, 20);
                if export_retrying(&client, &url, Bytes::from(request.encode_to_vec()), 10).await {
                    acked.extend(span_keys(&request));
                }
            }
            acked
        }
    });
    let optimize = || run_bin(vec!["optimize".into(), "--table".into(), table.to_string()]);
    let (first, second) = tokio::join!(optimize(), optimize());
    for (ok, stdout, stderr) in [&first, &second] {
        eprintln!("concurrent optimize: success {ok}: {}", summary(stdout));
        assert!(!stderr.contains("panicked") && !stdout.contains("panicked"), "optimize panicked:\n{stdout}{stderr}");
        if !ok {
            eprintln!("its output:\n{stdout}{stderr}");
        }
    }
    assert!(first.0 || second.0, "at least one of two concurrent optimize runs succeeds");
    acked.extend(appender.await.unwrap());

    // Once more with nothing else compacting: must succeed.
    let (ok, stdout, stderr) = optimize().await;
    assert!(ok, "optimize failed:\nstdout: {stdout}\nstderr: {stderr}");
    assert!(!summary(&stdout).is_empty(), "optimize prints a summary line:\n{stdout}");
    eprintln!("optimize: {}", summary(&stdout));
    let files_after = active_files(&table).await.len();
    c.stop().await;
    assert!(files_after < files_before, "{files_after} active files after optimize, {files_before} before");

    let rows = read_rows_at(&table, HashMap::new()).await;
    assert_exactly_once(&rows, &acked);
    assert_log_contiguous(&table).await;
    // Compaction commits rearrange data, they add none: dataChange=false on each of their adds and removes.
    let entries = log_entries(&table).await;
    let mut optimize_commits = 0;
    for (version, actions) in &entries {
        let is_optimize = actions.iter().any(|a| a["commitInfo"]["operation"] == "OPTIMIZE");
        if !is_optimize {
            continue;
        }
        optimize_commits += 1;
        for action in actions {
            for kind in ["add", "remove"] {
                if let Some(file) = action.get(kind) {
                    assert_eq!(file["dataChange"], false, "version {version}: {kind} {file}");
                }
            }
        }
    }
    assert!(optimize_commits >= 1, "an OPTIMIZE commit in the log");
}

/// A long run in miniature: past the checkpoint interval (100 commits), then optimize and vacuum. The table ends
/// with a checkpoint, a bounded number of files, and every row; a fresh reader starts from the checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_run_ends_with_a_checkpoint_and_few_files_after_optimize() {
    let Some(table) = s3_table("long-run") else { return };
    let c = Serve::start(&table, &["--flush-interval", "20ms", "--workers", "1"], &[]).await;
    let client = client();
    let mut acked = Vec::new();
    // Sequential requests: one commit each, so 105 requests take the log past version 99.
    for i in 0..105 {
        let request = request(5_000 + i, 3);
        assert!(export_retrying(&client, &c.traces_url, Bytes::from(request.encode_to_vec()), 10).await);
        acked.extend(span_keys(&request));
    }
    c.stop().await;
    let last = assert_log_contiguous(&table).await;
    assert!(last >= 100, "{last} commits");
    // The checkpoint is written after the ack, in the background: wait for it (bounded).
    let store = open(&table).await.log_store().object_store(None);
    let hint = object_store::path::Path::from("_delta_log/_last_checkpoint");
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.head(&hint).await.is_err() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bytes = store.get(&hint).await.expect("a checkpoint was written").bytes().await.unwrap();
    let hint: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(hint["version"], 99, "{hint}");

    let files_before = active_files(&table).await.len();
    let (ok, stdout, stderr) = run_bin(vec!["optimize".into(), "--table".into(), table.to_string()]).await;
    assert!(ok, "optimize failed:\nstdout: {stdout}\nstderr: {stderr}");
    let files_after = active_files(&table).await.len();
    assert!(files_before >= 50 && files_after == 1, "{files_before} files before optimize, {files_after} after");
    // The default retention keeps the replaced files (they are minutes old); vacuum still runs cleanly.
    let (ok, stdout, stderr) = run_bin(vec!["vacuum".into(), "--table".into(), table.to_string()]).await;
    assert!(ok && stdout.contains("deleted 0 file(s)"), "vacuum:\nstdout: {stdout}\nstderr: {stderr}");
    assert_exactly_once(&read_rows_at(&table, HashMap::new()).await, &acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_table_round_trip() {
    let Some(table) = azure_table("round-trip") else { return };
    let c = Serve::start(&table, &[], &[]).await;
    let requests: Vec<_> = (0..8).map(|i| large_request(i, 20, 2048)).collect();
    let mut acked = export_all_ok(&c, &requests).await;
    // Reopened by a second collector: appends after the first one's commits.
    c.stop().await;
    let c = Serve::start(&table, &[], &[]).await;
    let more = request(100, 7);
    assert_eq!(export(&client(), &c.traces_url, Bytes::from(more.encode_to_vec())).await.0, StatusCode::OK);
    acked.extend(span_keys(&more));
    c.stop().await;

    let rows = read_rows_at(&table, HashMap::new()).await;
    assert_exactly_once(&rows, &acked);
    assert_log_contiguous(&table).await;
}
