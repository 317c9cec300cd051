//! Hostile and broken clients against the real binary: slow headers, stalled bodies, too many connections, a
//! request whose commit cannot come in time. Each ends within the configured limits while other clients are
//! served. Bounded: every wait below has a deadline far above the configured timeouts (they are not timing
//! assertions; a deadline only stops a hung test).

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::http::request;

/// A request of `spans` spans under one resource whose one attribute is a string of `value_bytes` bytes: small
/// on the wire (gzip), large once the value is repeated on every row.
fn amplifying(spans: usize, value_bytes: usize) -> Vec<u8> {
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    let mut request = request(9, spans);
    request.resource_spans[0].resource = Some(Resource {
        attributes: vec![KeyValue {
            key: "big".into(),
            value: Some(AnyValue { value: Some(any_value::Value::StringValue("x".repeat(value_bytes))) }),
            ..Default::default()
        }],
        ..Default::default()
    });
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &request.encode_to_vec()).unwrap();
    gz.finish().unwrap()
}

/// The collector's peak resident memory (`VmHWM`), MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

/// The binary serving a local table with `extra` flags; killed on drop.
struct Binary {
    child: Child,
    addr: String,
    _dir: Option<tempfile::TempDir>,
}

impl Binary {
    /// On a fresh table in a temporary folder.
    fn start(extra: &[&str]) -> Binary {
        let dir = tempfile::tempdir().unwrap();
        let mut binary = Binary::start_at(&dir.path().join("spans"), extra);
        binary._dir = Some(dir);
        binary
    }

    /// On the table at `table` (created if missing).
    fn start_at(table: &std::path::Path, extra: &[&str]) -> Binary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_otel-delta"))
            // No metrics line on stdout: this test stops reading it after the address.
            .args(["serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "off", "--metrics-addr", "off", "--table"])
            .arg(table)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let _table = lines.next().unwrap().unwrap();
        let http_line = lines.next().unwrap().unwrap();
        let url = http_line.rsplit(' ').next().unwrap();
        let addr = url.trim_start_matches("http://").trim_end_matches("/v1/traces").to_owned();
        Binary { child, addr, _dir: None }
    }

    fn url(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    async fn export(&self, seed: u64) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.url())
            .header("content-type", "application/x-protobuf")
            .body(request(seed, 3).encode_to_vec())
            .send()
            .await
            .unwrap()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Read until the server closes the connection (or `deadline` passes); what it sent before closing.
async fn read_until_closed(stream: &mut TcpStream, deadline: Instant) -> Option<String> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&received).into_owned()),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_stalled_bodies_are_cut_off_while_other_clients_are_served() {
    let collector = Binary::start(&["--header-timeout", "1s", "--body-timeout", "1s", "--flush-interval", "200ms"]);
    let mut slow_headers = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(&collector.addr).await.unwrap();
        stream.write_all(b"POST /v1/tra").await.unwrap();
        slow_headers.push(stream);
    }
    let mut stalled_bodies = Vec::new();
    for _ in 0..10 {
        let mut stream = TcpStream::connect(&collector.addr).await.unwrap();
        let head = "POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\n\
                    content-length: 33554432\r\n\r\n";
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&vec![0u8; 1 << 20]).await.unwrap();
        stalled_bodies.push(stream);
    }
    // Meanwhile a well-behaved client is served.
    assert_eq!(collector.export(1).await.status(), reqwest::StatusCode::OK);

    let deadline = Instant::now() + Duration::from_secs(30);
    for stream in &mut slow_headers {
        assert!(read_until_closed(stream, deadline).await.is_some(), "a connection with slow headers stayed open");
    }
    for stream in &mut stalled_bodies {
        let answer = read_until_closed(stream, deadline).await.expect("a connection with a stalled body stayed open");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    assert_eq!(collector.export(2).await.status(), reqwest::StatusCode::OK, "still serving");
    eprintln!("slow headers and stalled bodies: collector peak RSS {} MiB", peak_rss_mib(collector.child.id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_closed_at_once() {
    let collector = Binary::start(&["--max-connections", "4"]);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(&collector.addr).await.unwrap());
    }
    let mut extra = TcpStream::connect(&collector.addr).await.unwrap();
    // Refused without waiting for any timeout (the header timeout is 30 s by default).
    let deadline = Instant::now() + Duration::from_secs(10);
    assert!(read_until_closed(&mut extra, deadline).await.is_some(), "the fifth connection was kept");
    drop(held);
    // Once the held connections are gone, clients are served again (their slots return as the server sees them
    // close).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = reqwest::Client::new()
            .post(collector.url())
            .header("content-type", "application/x-protobuf")
            .body(request(3, 1).encode_to_vec())
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "never served again after the held connections closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("connection limit: collector peak RSS {} MiB", peak_rss_mib(collector.child.id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_not_committed_within_its_deadline_gets_503() {
    // Files are sealed only after 60 s: no request can be committed within its 1 s deadline.
    let collector = Binary::start(&["--request-timeout", "1s", "--flush-interval", "60s"]);
    let response = collector.export(4).await;
    assert_eq!(response.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let status = crate::http::rpc_status(response).await;
    assert!(status.message.contains("deadline"), "{}", status.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_amplify_are_refused_413_within_bounded_memory_and_the_collector_serves_on() {
    // One worker: before, one such request killed it and every later request got 503.
    let collector = Binary::start(&["--workers", "1", "--flush-interval", "200ms"]);
    let client = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        client
            .post(collector.url())
            .header("content-type", "application/x-protobuf")
            .header("content-encoding", "gzip")
            .body(body)
            .send()
    };
    // 1 MiB repeated on 2,200 spans (~2.2 GiB of rows from ~80 KB on the wire), then 256 KiB on 4,000 (~1 GiB).
    for (spans, value) in [(2_200, 1 << 20), (4_000, 256 << 10), (2_200, 1 << 20)] {
        let response = post(amplifying(spans, value)).await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::PAYLOAD_TOO_LARGE);
        let status = crate::http::rpc_status(response).await;
        assert!(status.message.contains("rows would take more than"), "{}", status.message);
    }
    // A request that amplifies within the limit (128 KiB on 1,800 spans: ~225 MiB of rows in the file) is stored,
    // its resource value held once in memory, not once per span.
    assert_eq!(post(amplifying(1_800, 128 << 10)).await.unwrap().status(), reqwest::StatusCode::OK);
    assert_eq!(collector.export(5).await.status(), reqwest::StatusCode::OK, "normal requests still served");
    let peak = peak_rss_mib(collector.child.id());
    eprintln!("collector peak RSS: {peak} MiB");
    assert!(peak < 512, "peak RSS {peak} MiB: refused requests must not be built, nor repeated values copied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_beyond_the_budget_is_refused_before_it_is_read() {
    let collector = Binary::start(&["--max-inflight-size", "64MiB", "--max-request-size", "64MiB"]);
    let head = |length: u64| {
        format!(
            "POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\ncontent-length: \
             {length}\r\n\r\n"
        )
    };
    // One client reserves 40 MiB of the 64 by declaring it, sends a little and stalls (16 MiB of the rest are the
    // logs' floor, out of the traces' reach).
    let mut holder = TcpStream::connect(&collector.addr).await.unwrap();
    holder.write_all(head(40 << 20).as_bytes()).await.unwrap();
    holder.write_all(&[0u8; 1024]).await.unwrap();
    // Its headers reach the collector (which then reserves) long before this ends, even on a busy machine.
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Another declares 40 MiB too: refused with 503 at once, before any of its body is sent or read.
    let mut refused = TcpStream::connect(&collector.addr).await.unwrap();
    refused.write_all(head(40 << 20).as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 512];
    let deadline = Duration::from_secs(10);
    let n = tokio::time::timeout(deadline, refused.read(&mut answer)).await.expect("answered at once").unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after"), "{answer}");
    // What is left of the budget still serves ordinary requests.
    assert_eq!(collector.export(6).await.status(), reqwest::StatusCode::OK);
    eprintln!("body beyond the budget: collector peak RSS {} MiB", peak_rss_mib(collector.child.id()));
    drop(holder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_span() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("spans");
    let mut acked: Vec<String> = Vec::new();
    let mut seed = 1_000u64;
    let mut peak = 0;
    // Killed at different moments of the flush cycle (200 ms): mid-batch, mid-upload, mid-commit, by chance.
    for kill_after_ms in [350u64, 900, 1_450] {
        let mut collector = Binary::start_at(&table, &["--flush-interval", "200ms"]);
        let url = collector.url();
        let clients: Vec<_> = (0..8)
            .map(|client| {
                let url = url.clone();
                let first = seed + client * 1_000;
                tokio::spawn(async move {
                    let http = reqwest::Client::new();
                    let mut acked = Vec::new();
                    // Bounded: at most 1,000 requests per client, and the collector dies long before.
                    for s in first..first + 1_000 {
                        let request = request(s, 20);
                        let sent = http
                            .post(&url)
                            .header("content-type", "application/x-protobuf")
                            .body(request.encode_to_vec())
                            .send()
                            .await;
                        match sent {
                            Ok(r) if r.status().is_success() => acked.extend(crate::stores::span_keys(&request)),
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                    acked
                })
            })
            .collect();
        seed += 10_000;
        tokio::time::sleep(Duration::from_millis(kill_after_ms)).await;
        peak = peak.max(peak_rss_mib(collector.child.id()));
        collector.child.kill().unwrap();
        collector.child.wait().unwrap();
        for client in clients {
            acked.extend(client.await.unwrap());
        }
    }
    assert!(!acked.is_empty(), "some requests were acknowledged before each kill");
    let rows = crate::support::read_rows(&table).await;
    let stored: std::collections::HashSet<String> =
        rows.iter().map(|r| format!("{}{}", r["trace_id"].as_str().unwrap(), r["span_id"].as_str().unwrap())).collect();
    let missing = acked.iter().filter(|k| !stored.contains(*k)).count();
    assert_eq!(missing, 0, "{missing} of {} acknowledged spans are not in the table", acked.len());
    crate::stores::assert_log_contiguous(&crate::support::table_url(&table)).await;
    eprintln!("kill -9 x3: {} acknowledged spans, {} rows, none missing; peak RSS {peak} MiB", acked.len(), rows.len());
}
