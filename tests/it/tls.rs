//! TLS on the OTLP listeners (`--tls-cert`, `--tls-key`, `--tls-client-ca`), with certificates made here: OTLP/HTTP
//! protobuf over HTTPS (HTTP/2 by ALPN and HTTP/1.1) and gRPC over TLS land rows; plain HTTP to the TLS port is
//! refused; with a client CA, only clients with a certificate it signed get through; replaced certificate files
//! are served to new connections while connections already open keep working.

use std::path::{Path, PathBuf};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message as _;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use reqwest::StatusCode;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::http::request;
use crate::support::{read_rows, Collector};

/// A certificate authority: its certificate (PEM) and what signs with it.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { pem, issuer: Issuer::new(params, key) }
    }

    /// A leaf certificate for `names` signed by this CA, and its key, as PEM.
    fn sign(&self, names: &[&str]) -> (String, String) {
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let key = KeyPair::generate().unwrap();
        (params.signed_by(&key, &self.issuer).unwrap().pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A server certificate for localhost and 127.0.0.1 signed by `ca`, written as `server.pem` / `server.key`.
fn server_files(dir: &Path, ca: &Ca) -> (PathBuf, PathBuf) {
    let (cert, key) = ca.sign(&["localhost", "127.0.0.1"]);
    (write(dir, "server.pem", &cert), write(dir, "server.key", &key))
}

/// An HTTPS client trusting only `ca`, presenting `identity` (certificate and key PEM) if given.
fn https_client(ca: &Ca, identity: Option<&(String, String)>, http1: bool) -> reqwest::Client {
    let mut builder =
        reqwest::Client::builder().tls_certs_only([reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap()]);
    if let Some((cert, key)) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    if http1 {
        builder = builder.http1_only();
    }
    builder.timeout(Duration::from_secs(30)).build().unwrap()
}

/// POST `spans` spans (seed `seed`) as protobuf.
async fn post(client: &reqwest::Client, url: &str, seed: u64, spans: usize) -> reqwest::Result<reqwest::Response> {
    client
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(request(seed, spans).encode_to_vec())
        .send()
        .await
}

/// A gRPC channel over TLS to `addr` (as `localhost`), trusting only `ca`, presenting `identity` if given.
async fn grpc_channel(
    addr: std::net::SocketAddr,
    ca: &Ca,
    identity: Option<&(String, String)>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca.pem)).domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
}

/// The span names of the stopped collector's table.
/// `otel_delta_tls_handshake_failures_total{reason}` once it reached `at_least` (the collector counts a failure in
/// the connection's task, after the client saw it: polled for up to 10 s), or its value then.
async fn handshake_failures(c: &Collector, reason: &str, at_least: u64) -> u64 {
    let line = format!("otel_delta_tls_handshake_failures_total{{reason=\"{reason}\"}} ");
    let mut value = 0;
    for _ in 0..200 {
        let text = c.metrics().await;
        value = text.lines().find_map(|l| l.strip_prefix(&line)).map_or(0, |v| v.parse().unwrap());
        if value >= at_least {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    value
}

async fn names(c: Collector) -> Vec<String> {
    let table = c.stop().await.unwrap();
    let mut names: Vec<String> =
        read_rows(&table).await.iter().filter_map(|r| r["name"].as_str().map(str::to_owned)).collect();
    names.sort();
    names
}

fn expected(seeds: &[u64]) -> Vec<String> {
    let mut names: Vec<String> = seeds.iter().flat_map(|s| [format!("op-{s}-0"), format!("op-{s}-1")]).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_in_both_http_versions_and_grpc_over_tls_land_rows_and_plain_http_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (cert, key) = server_files(dir.path(), &ca);
    let c = Collector::start(&["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]).await;
    let url = format!("https://127.0.0.1:{}/v1/traces", c.addr.port());

    // ALPN picks HTTP/2 for a client offering it; HTTP/1.1 for one that offers only that.
    let response = post(&https_client(&ca, None, false), &url, 1, 2).await.unwrap();
    assert_eq!((response.status(), response.version()), (StatusCode::OK, reqwest::Version::HTTP_2));
    let response = post(&https_client(&ca, None, true), &url, 2, 2).await.unwrap();
    assert_eq!((response.status(), response.version()), (StatusCode::OK, reqwest::Version::HTTP_11));
    let health = https_client(&ca, None, true).get(format!("https://localhost:{}/health", c.addr.port()));
    assert_eq!(health.send().await.unwrap().status(), StatusCode::OK, "the certificate names localhost too");

    let mut client = TraceServiceClient::new(grpc_channel(c.addr, &ca, None).await.unwrap());
    client.export(request(3, 2)).await.unwrap();

    // Plain text to the TLS port, and TLS from a client that does not trust the certificate: refused, nothing
    // written.
    let plain = post(&reqwest::Client::new(), &url.replace("https", "http"), 4, 2).await;
    assert!(plain.is_err(), "plain HTTP to a TLS listener: {plain:?}");
    let untrusted = post(&https_client(&Ca::new("other CA"), None, false), &url, 5, 2).await;
    assert!(untrusted.is_err(), "a certificate the client does not trust: {untrusted:?}");
    // The refused handshakes did not stop the listener.
    assert_eq!(post(&https_client(&ca, None, false), &url, 6, 2).await.unwrap().status(), StatusCode::OK);
    assert_eq!(handshake_failures(&c, "failed", 2).await, 2, "both refused handshakes are counted");

    assert_eq!(names(c).await, expected(&[1, 2, 3, 6]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_client_ca_only_clients_with_a_certificate_it_signed_get_through() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("server CA");
    let (cert, key) = server_files(dir.path(), &ca);
    let client_ca = Ca::new("client CA");
    let client_ca_file = write(dir.path(), "clients.pem", &client_ca.pem);
    let c = Collector::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--tls-client-ca",
        client_ca_file.to_str().unwrap(),
    ])
    .await;
    let url = format!("https://127.0.0.1:{}/v1/traces", c.addr.port());
    let good = client_ca.sign(&["collector-client"]);
    // Signed by a CA the collector does not name, though the client trusts the server.
    let rogue = ca.sign(&["collector-client"]);

    for (identity, http1) in [(None, false), (None, true), (Some(&rogue), false)] {
        let refused = post(&https_client(&ca, identity, http1), &url, 1, 2).await;
        assert!(refused.is_err(), "client certificate {:?}: {refused:?}", identity.map(|_| "rogue"));
    }
    let refused = async {
        let mut client = TraceServiceClient::new(grpc_channel(c.addr, &ca, None).await?);
        client.export(request(2, 2)).await.map_err(|e| e.to_string().into())
    };
    let refused: Result<_, Box<dyn std::error::Error>> = refused.await;
    assert!(refused.is_err(), "gRPC without a client certificate");

    for (seed, http1) in [(3, false), (4, true)] {
        let response = post(&https_client(&ca, Some(&good), http1), &url, seed, 2).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let mut client = TraceServiceClient::new(grpc_channel(c.addr, &ca, Some(&good)).await.unwrap());
    client.export(request(5, 2)).await.unwrap();

    assert_eq!(names(c).await, expected(&[3, 4, 5]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_certificate_files_are_served_to_new_connections_while_open_ones_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = Ca::new("old CA");
    let (cert, key) = server_files(dir.path(), &old_ca);
    let c = Collector::start(&["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]).await;
    let url = format!("https://127.0.0.1:{}/v1/traces", c.addr.port());

    // One HTTP/2 connection, trusting only the old CA, open before the change.
    let mut open = TraceServiceClient::new(grpc_channel(c.addr, &old_ca, None).await.unwrap());
    open.export(request(1, 2)).await.unwrap();

    // A certificate of another CA replaces the files; within a few of the one-second checks, new connections get
    // it (a fresh client each time: a new connection).
    let new_ca = Ca::new("new CA");
    let (new_cert, new_key) = new_ca.sign(&["localhost", "127.0.0.1"]);
    std::fs::write(&key, new_key).unwrap();
    std::fs::write(&cert, new_cert).unwrap();
    let mut served_new = false;
    for _ in 0..100 {
        if post(&https_client(&new_ca, None, false), &url, 0, 0).await.is_ok() {
            served_new = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served_new, "the new certificate was not served within 10 s");
    let old = post(&https_client(&old_ca, None, false), &url, 2, 2).await;
    assert!(old.is_err(), "a new connection gets the new certificate only: {old:?}");
    assert_eq!(post(&https_client(&new_ca, None, true), &url, 3, 2).await.unwrap().status(), StatusCode::OK);

    // The connection opened before still works (a new one, trusting only the old CA, would be refused).
    open.export(request(4, 2)).await.unwrap();

    assert_eq!(names(c).await, expected(&[1, 3, 4]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_silent_in_the_handshake_neither_holds_up_others_nor_outstays_the_header_timeout() {
    use tokio::io::AsyncReadExt as _;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (cert, key) = server_files(dir.path(), &ca);
    let c = Collector::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--header-timeout",
        // Long enough for the export below to be committed on a loaded machine while the silent one waits.
        "10s",
    ])
    .await;
    let url = format!("https://127.0.0.1:{}/v1/traces", c.addr.port());

    // Connected, and never a byte of a ClientHello: others are accepted and served meanwhile, while it is still
    // open (were handshakes in the accept loop, this export would wait for the silent one to time out).
    let mut silent = tokio::net::TcpStream::connect(c.addr).await.unwrap();
    assert_eq!(post(&https_client(&ca, None, true), &url, 1, 2).await.unwrap().status(), StatusCode::OK);
    let mut buf = [0u8; 16];
    let still_open = silent.try_read(&mut buf);
    assert!(
        matches!(&still_open, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the silent connection was closed before the export was served: {still_open:?}"
    );
    // The collector closes it once the header timeout has passed (bounded wait: 45 s).
    let read = tokio::time::timeout(Duration::from_secs(45), silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the silent connection was not closed: {read:?}");
    assert_eq!(handshake_failures(&c, "timed_out", 1).await, 1);

    assert_eq!(names(c).await, expected(&[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_tls_on_both_listeners_prints_https_and_refuses_half_a_configuration() {
    use std::io::{BufRead as _, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (cert, key) = server_files(dir.path(), &ca);
    let bin = env!("CARGO_BIN_EXE_otel-delta");
    let serve = ["serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--metrics-addr", "off"];
    let table = dir.path().join("spans");

    // Half a configuration, or a file that is not what it should be: one line on stderr naming it, exit 1.
    let not_pem = write(dir.path(), "not.pem", "hello");
    let cases = [
        (vec!["--tls-cert", cert.to_str().unwrap()], "--tls-cert needs --tls-key".to_owned()),
        (vec!["--tls-client-ca", cert.to_str().unwrap()], "--tls-client-ca needs --tls-cert".to_owned()),
        (
            vec!["--tls-cert", cert.to_str().unwrap(), "--tls-key", not_pem.to_str().unwrap()],
            format!("--tls-key the TLS key {} holds no PEM private key", not_pem.display()),
        ),
    ];
    for (flags, expected) in cases {
        let output = Command::new(bin).args(serve).arg("--table").arg(&table).args(&flags).output().unwrap();
        assert!(!output.status.success(), "{flags:?} started");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&expected) && stderr.trim_end().lines().count() == 1, "{flags:?}: {stderr}");
    }

    let mut child = Command::new(bin)
        .args(serve)
        .arg("--table")
        .arg(&table)
        .args(["--flush-interval", "200ms"])
        .env("OTEL_DELTA_TLS_CERT", &cert)
        .env("OTEL_DELTA_TLS_KEY", &key)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let _table_line = lines.next().unwrap().unwrap();
    let http_line = lines.next().unwrap().unwrap();
    let url = http_line.rsplit(' ').next().unwrap().to_owned();
    assert!(url.starts_with("https://127.0.0.1:") && url.ends_with("/v1/traces"), "{http_line}");
    let grpc_line = lines.next().unwrap().unwrap();
    let grpc_url = grpc_line.rsplit(' ').next().unwrap().to_owned();
    assert!(grpc_url.starts_with("https://127.0.0.1:"), "{grpc_line}");

    assert_eq!(post(&https_client(&ca, None, false), &url, 1, 2).await.unwrap().status(), StatusCode::OK);
    let grpc_addr = grpc_url.trim_start_matches("https://").parse().unwrap();
    let mut client = TraceServiceClient::new(grpc_channel(grpc_addr, &ca, None).await.unwrap());
    client.export(request(2, 2)).await.unwrap();
    let plain = post(&reqwest::Client::new(), &grpc_url.replace("https", "http"), 3, 2).await;
    assert!(plain.is_err(), "plain HTTP to the gRPC listener: {plain:?}");

    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    let mut names: Vec<String> =
        read_rows(&table).await.iter().filter_map(|r| r["name"].as_str().map(str::to_owned)).collect();
    names.sort();
    assert_eq!(names, expected(&[1, 2]));
}
