//! otel-delta-load: drive a running collector with OTLP/HTTP protobuf for a bounded time, then print one JSON
//! line (spans/s, MB/s, ack latency percentiles, errors, the collector's peak RSS) and, given the table, check
//! that it holds exactly the acknowledged spans. The `logs` profile sends log records instead (to /v1/logs; its
//! counts are log records, under the same names).
//!
//! ```text
//! otel-delta-load --profile small --connections 8 --duration 20 --pool-mib 256 \
//!     --endpoint http://127.0.0.1:4318/v1/traces --collector-pid PID --table PATH
//! ```
//! The request pool is generated before the clock starts (distinct ids, times and text in every request; see
//! workload.rs) and cycled; with a pool larger than a data file, no file holds the same text twice.

mod workload;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use clap::Parser;

#[derive(Parser)]
#[command(name = "otel-delta-load", about = "Load generator for otel-delta (OTLP/HTTP protobuf)")]
struct Args {
    /// Default: http://127.0.0.1:4318/v1/traces, or /v1/logs for the logs profile.
    #[arg(long)]
    endpoint: Option<String>,
    /// small, large, mixed (spans) or logs (see perf/workload.rs).
    #[arg(long, default_value = "small")]
    profile: String,
    /// Concurrent connections, each with one request in flight.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// MiB of distinct requests to generate before the clock starts.
    #[arg(long, default_value_t = 256)]
    pool_mib: usize,
    /// gzip the request bodies (Content-Encoding: gzip).
    #[arg(long)]
    gzip: bool,
    /// Collector process, for its peak RSS (VmHWM) from /proc.
    #[arg(long)]
    collector_pid: Option<u32>,
    /// The collector's table: after the load, check it holds exactly the acknowledged spans (the table must
    /// have been empty before).
    #[arg(long)]
    table: Option<std::path::PathBuf>,
    /// Seed of the workload generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Offer this many requests per second (open loop: request k is due at k / rate, latency counts from when it
    /// was due, so a stalled collector cannot hide its queueing); default: as fast as the connections allow.
    #[arg(long)]
    rate: Option<f64>,
    /// PEM certificate to trust for an https:// endpoint (the collector's CA or self-signed certificate).
    #[arg(long)]
    ca_cert: Option<std::path::PathBuf>,
    /// Send `Authorization: Bearer <token>` with every request (a collector with --auth-token-file).
    #[arg(long)]
    bearer_token: Option<String>,
    /// HTTP/1.1 only: over TLS, ALPN would otherwise pick HTTP/2 and multiplex every request on one connection.
    #[arg(long)]
    http1_only: bool,
    /// HTTP/2 without TLS (h2c, as gRPC clients speak it): every request on one connection.
    #[arg(long, conflicts_with = "http1_only")]
    http2_prior_knowledge: bool,
}

struct Outcome {
    latencies_us: Vec<u64>,
    spans: u64,
    bytes: u64,
    errors: BTreeMap<String, u64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let profile = workload::Profile::parse(&args.profile).context("--profile must be small, large, mixed or logs")?;
    let endpoint = args.endpoint.clone().unwrap_or_else(|| format!("http://127.0.0.1:4318{}", profile.path()));
    let pool = generate(profile, args.pool_mib << 20, args.seed, args.gzip)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let cpu_before = process_cpu_seconds();
    let started = Instant::now();
    let outcome = runtime.block_on(drive(&args, &endpoint, Arc::new(pool)))?;
    let elapsed = started.elapsed().as_secs_f64();
    let load_cpu = process_cpu_seconds() - cpu_before;
    let mut lat = outcome.latencies_us;
    lat.sort_unstable();
    let pct =
        |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0);
    let table_rows = match &args.table {
        Some(path) => Some(runtime.block_on(count_rows(path))?),
        None => None,
    };
    let (files, file_bytes) = data_files(args.table.as_deref());
    let rss = args.collector_pid.and_then(|pid| proc_status_kib(pid, "VmHWM")).map(|kib| kib / 1024);
    let line = serde_json::json!({
        "profile": profile.name(),
        "gzip": args.gzip,
        "connections": args.connections,
        "offered_rate": args.rate,
        "requests_per_s": ((lat.len() as f64 / elapsed) * 10.0).round() / 10.0,
        "seconds": (elapsed * 100.0).round() / 100.0,
        "requests_ok": lat.len(),
        "spans_ok": outcome.spans,
        "spans_per_s": (outcome.spans as f64 / elapsed).round(),
        "mb_per_s": ((outcome.bytes as f64 / elapsed / 1e6) * 10.0).round() / 10.0,
        "p50_ms": pct(0.50) as f64 / 1000.0,
        "p99_ms": pct(0.99) as f64 / 1000.0,
        "errors": outcome.errors,
        "collector_peak_rss_mib": rss,
        "loadgen_cpu_s": (load_cpu * 100.0).round() / 100.0,
        "table_rows": table_rows,
        "table_files": table_rows.map(|_| files),
        "mean_file_mib": table_rows.filter(|_| files > 0).map(|_| {
            ((file_bytes as f64 / files as f64 / (1 << 20) as f64) * 10.0).round() / 10.0
        }),
        "verified": table_rows.map(|rows| rows == outcome.spans),
    });
    println!("{line}");
    std::io::stdout().flush()?;
    if table_rows.is_some_and(|rows| rows != outcome.spans) {
        bail!("the table holds {table_rows:?} rows, {} spans were acknowledged", outcome.spans);
    }
    Ok(())
}

/// Rows in the table's current version, from each data file's Parquet footer.
async fn count_rows(path: &std::path::Path) -> anyhow::Result<u64> {
    let url =
        url::Url::from_directory_path(std::fs::canonicalize(path)?).map_err(|()| anyhow::anyhow!("bad table path"))?;
    let table = deltalake::open_table(url).await?;
    let mut rows = 0;
    for uri in table.get_file_uris()? {
        let file = match url::Url::parse(&uri) {
            Ok(u) => u.to_file_path().map_err(|()| anyhow::anyhow!("not a local file: {uri}"))?,
            Err(_) => std::path::PathBuf::from(&uri),
        };
        let reader = parquet::file::serialized_reader::SerializedFileReader::new(std::fs::File::open(file)?)?;
        rows += parquet::file::reader::FileReader::metadata(&reader).file_metadata().num_rows() as u64;
    }
    Ok(rows)
}

/// Data files in the table folder and their total size in bytes.
fn data_files(path: Option<&std::path::Path>) -> (usize, u64) {
    let files: Vec<u64> = path
        .and_then(|p| std::fs::read_dir(p).ok())
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
                .map(|e| e.metadata().map_or(0, |m| m.len()))
                .collect()
        })
        .unwrap_or_default();
    (files.len(), files.iter().sum())
}

/// Pre-encoded request bodies (uncompressed size, body to send, spans).
fn generate(profile: workload::Profile, bytes: usize, seed: u64, gzip: bool) -> anyhow::Result<Vec<(u64, Bytes, u64)>> {
    let mut pool = Vec::new();
    let mut total = 0;
    let mut g = seed;
    while total < bytes {
        for r in workload::pool(profile, 16, g) {
            total += r.body.len();
            let raw_len = r.body.len() as u64;
            let body = if gzip {
                let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(&r.body)?;
                Bytes::from(enc.finish()?)
            } else {
                Bytes::from(r.body)
            };
            pool.push((raw_len, body, r.spans as u64));
        }
        g += 1;
    }
    Ok(pool)
}

async fn drive(args: &Args, endpoint: &str, pool: Arc<Vec<(u64, Bytes, u64)>>) -> anyhow::Result<Outcome> {
    let mut client = reqwest::Client::builder().pool_max_idle_per_host(args.connections);
    if let Some(path) = &args.ca_cert {
        let pem = std::fs::read(path).with_context(|| format!("--ca-cert {}", path.display()))?;
        client = client.tls_certs_only([reqwest::Certificate::from_pem(&pem)?]);
    }
    if let Some(token) = &args.bearer_token {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse()?);
        client = client.default_headers(headers);
    }
    if args.http1_only {
        client = client.http1_only();
    }
    if args.http2_prior_knowledge {
        client = client.http2_prior_knowledge();
    }
    let client = client.build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.duration);
    let rate = args.rate.filter(|r| *r > 0.0);
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let (client, pool, next, url, gzip) =
            (client.clone(), pool.clone(), next.clone(), endpoint.to_owned(), args.gzip);
        tasks.push(tokio::spawn(async move {
            let mut out = Outcome { latencies_us: Vec::new(), spans: 0, bytes: 0, errors: BTreeMap::new() };
            while Instant::now() < deadline {
                let ticket = next.fetch_add(1, Ordering::Relaxed);
                let (raw_len, body, spans) = &pool[ticket % pool.len()];
                // Open loop: wait for the request's due time; latency counts from then.
                let sent = match rate {
                    Some(rate) => {
                        let due = start + Duration::from_secs_f64(ticket as f64 / rate);
                        if due >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => Instant::now(),
                };
                let mut request = client.post(&url).header("content-type", "application/x-protobuf").body(body.clone());
                if gzip {
                    request = request.header("content-encoding", "gzip");
                }
                match request.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        out.latencies_us.push(sent.elapsed().as_micros() as u64);
                        out.spans += spans;
                        out.bytes += raw_len;
                    }
                    Ok(r) => {
                        *out.errors.entry(r.status().as_u16().to_string()).or_default() += 1;
                        // Honour Retry-After briefly, as a real exporter backs off.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => {
                        *out.errors.entry(if e.is_connect() { "connect" } else { "io" }.into()).or_default() += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            out
        }));
    }
    let mut total = Outcome { latencies_us: Vec::new(), spans: 0, bytes: 0, errors: BTreeMap::new() };
    for t in tasks {
        let o = t.await?;
        total.latencies_us.extend(o.latencies_us);
        total.spans += o.spans;
        total.bytes += o.bytes;
        for (k, v) in o.errors {
            *total.errors.entry(k).or_default() += v;
        }
    }
    if total.latencies_us.is_empty() && !total.errors.is_empty() {
        bail!("no request succeeded: {:?}", total.errors);
    }
    Ok(total)
}

fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU seconds of this process (Linux /proc, 100 ticks per second).
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
