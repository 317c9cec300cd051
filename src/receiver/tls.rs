//! TLS on the OTLP listeners (`--tls-cert`, `--tls-key`, `--tls-client-ca`).
//!
//! Contract:
//! - With `--tls-cert` and `--tls-key` (PEM: the certificate chain, leaf first, and its private key in PKCS#8,
//!   PKCS#1 or SEC1), every OTLP listener (HTTP and gRPC; not `--metrics-addr`) speaks only TLS (1.2 and 1.3),
//!   offering ALPN `h2` and `http/1.1`, so gRPC, HTTP/2 and HTTP/1.1 all work over it. A plain-text client is
//!   refused in the handshake.
//! - With `--tls-client-ca` (a PEM bundle) too, a client must present a certificate signed by one of its
//!   certificates (mTLS), or its handshake is refused.
//! - The files are read at start-up, where a missing, unreadable or invalid one (or a key that does not go with
//!   the certificate) stops start-up with an error naming the file. They are checked again every
//!   [`RELOAD_EVERY`] (modification time and length of each): after a change, new connections get the new
//!   configuration, connections already open keep theirs. A change that leaves the files unusable keeps the
//!   configuration in force and logs a warning once (until the files change again).
//! - The crypto is rustls's ring provider, handed to the configuration: nothing depends on a process-wide default
//!   provider.
//! - The handshake runs in the connection's own task (never in the accept loop), bounded by `--header-timeout`; a
//!   failed handshake is logged at debug level only.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

/// How often the certificate, key and client CA files are checked for a change.
pub(crate) const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// The ALPN protocols offered, in order of preference.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why the TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("reading the {what} {path}: {source}")]
    Read { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("the {what} {path} is not valid PEM: {detail}")]
    Pem { what: &'static str, path: PathBuf, detail: String },
    #[error("the {what} {path} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)")]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("the TLS key {0} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey(PathBuf),
    #[error("the client CA bundle {path} cannot be used: {detail}")]
    ClientCa { path: PathBuf, detail: String },
    #[error("the TLS certificate {cert} and key {key} cannot be used together: {source}")]
    CertAndKey { cert: PathBuf, key: PathBuf, source: rustls::Error },
    #[error("the TLS provider (ring) refuses the default protocol versions: {0}")]
    Provider(rustls::Error),
}

impl TlsError {
    /// The flag naming the file at fault.
    pub(crate) fn flag(&self) -> &'static str {
        match self {
            TlsError::Read { what, .. } | TlsError::Pem { what, .. } | TlsError::NoCertificate { what, .. } => {
                match *what {
                    CLIENT_CA => "--tls-client-ca",
                    KEY => "--tls-key",
                    _ => "--tls-cert",
                }
            }
            TlsError::NoKey(_) | TlsError::CertAndKey { .. } => "--tls-key",
            TlsError::ClientCa { .. } => "--tls-client-ca",
            TlsError::Provider(_) => "--tls-cert",
        }
    }
}

/// What each file is called in errors.
const CERT: &str = "TLS certificate";
const KEY: &str = "TLS key";
const CLIENT_CA: &str = "client CA bundle";

/// Where the PEM files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    /// Set: clients must present a certificate this bundle signed.
    pub(crate) client_ca: Option<PathBuf>,
}

impl TlsFiles {
    fn paths(&self) -> impl Iterator<Item = &Path> {
        [self.cert.as_path(), self.key.as_path()].into_iter().chain(self.client_ca.as_deref())
    }
}

/// (modified, length) of each file, in [`TlsFiles::paths`] order; `None` where it cannot be read.
type Stamps = Vec<Option<(SystemTime, u64)>>;

/// The listeners' TLS configuration, kept current with its files.
pub(crate) struct Tls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
    /// What the files looked like when last read (successfully or not).
    seen: RwLock<Stamps>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish_non_exhaustive()
    }
}

impl Tls {
    /// Read the files; any of them unusable is an error.
    pub(crate) fn load(files: TlsFiles) -> Result<Tls, TlsError> {
        let seen = stamps(&files);
        let config = server_config(&files)?;
        Ok(Tls { files, current: RwLock::new(Arc::new(config)), seen: RwLock::new(seen) })
    }

    /// Say at start-up what is served.
    pub(crate) fn log_start(&self) {
        let client_ca = self.files.client_ca.as_ref().map(|p| p.display().to_string());
        tracing::info!(cert = %self.files.cert.display(), client_ca, "TLS on the OTLP listeners");
    }

    /// What accepts the next connection: the configuration in force now.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        // Poisoned only if a thread panicked while swapping in a configuration, which then is whole either way.
        let config = self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        TlsAcceptor::from(config.clone())
    }

    /// Read the files again if any of them changed since they were last read.
    pub(crate) fn reload_if_changed(&self) {
        let now = stamps(&self.files);
        if self.seen.read().is_ok_and(|seen| *seen == now) {
            return;
        }
        if let Ok(mut seen) = self.seen.write() {
            // Whatever comes of it, these files are not tried (nor warned about) again until they change again.
            *seen = now;
        }
        match server_config(&self.files) {
            Ok(config) => {
                if let Ok(mut current) = self.current.write() {
                    *current = Arc::new(config);
                }
                tracing::info!(cert = %self.files.cert.display(), "TLS files reloaded: new connections use them");
            }
            Err(e) => tracing::warn!(
                error = %e,
                "the TLS files changed but cannot be used: the configuration read before stays in force"
            ),
        }
    }
}

fn stamps(files: &TlsFiles) -> Stamps {
    files
        .paths()
        .map(|path| std::fs::metadata(path).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len())))
        .collect()
}

/// The server configuration the files give.
fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let certs = certificates(CERT, &files.cert)?;
    let key = private_key(&files.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert_and_key = |source| TlsError::CertAndKey { cert: files.cert.clone(), key: files.key.clone(), source };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Provider)?;
    let builder = match &files.client_ca {
        Some(path) => {
            let client_ca = |detail: String| TlsError::ClientCa { path: path.clone(), detail };
            let mut roots = RootCertStore::empty();
            for cert in certificates(CLIENT_CA, path)? {
                roots.add(cert).map_err(|e| client_ca(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| client_ca(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(cert_and_key)?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Every certificate of a PEM file; at least one.
fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read { what, path: path.to_owned(), source })?;
    let certs = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>().map_err(|e| TlsError::Pem {
        what,
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what, path: path.to_owned() });
    }
    Ok(certs)
}

/// The first private key of a PEM file.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let what = KEY;
    let pem = std::fs::read(path).map_err(|source| TlsError::Read { what, path: path.to_owned(), source })?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey(path.to_owned()),
        e => TlsError::Pem { what, path: path.to_owned(), detail: e.to_string() },
    })
}

/// A connection's byte stream: plain TCP or TLS over it.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA-less self-signed certificate for `localhost` and its key, as PEM.
    fn self_signed() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn files(dir: &Path, cert: &str, key: &str, client_ca: Option<&str>) -> TlsFiles {
        TlsFiles {
            cert: write(dir, "cert.pem", cert),
            key: write(dir, "key.pem", key),
            client_ca: client_ca.map(|ca| write(dir, "ca.pem", ca)),
        }
    }

    /// `new`, padded with newlines (which PEM ignores) to be longer than `old`.
    fn longer(new: &str, old: &str) -> String {
        let mut text = new.to_owned();
        while text.len() <= old.len() {
            text.push('\n');
        }
        text
    }

    #[test]
    fn a_certificate_and_its_key_load_with_both_alpn_protocols() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed();
        let tls = Tls::load(files(dir.path(), &cert, &key, Some(&cert))).unwrap();
        let config = tls.current.read().unwrap().clone();
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        let _ = tls.acceptor();
    }

    #[test]
    fn unusable_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed();
        let (other_cert, _) = self_signed();
        let cases: [(&str, &str, Option<&str>, &str); 6] = [
            ("not pem at all", &key, None, "cert.pem holds no PEM certificate"),
            (&cert, "no key here", None, "key.pem holds no PEM private key"),
            (&key, &key, None, "cert.pem holds no PEM certificate"),
            (&other_cert, &key, None, "cannot be used together"),
            (&cert, &key, Some("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"), "ca.pem"),
            (&cert, &key, Some(""), "ca.pem holds no PEM certificate"),
        ];
        for (cert, key, ca, expected) in cases {
            let error = Tls::load(files(dir.path(), cert, key, ca)).unwrap_err().to_string();
            assert!(error.contains(expected), "{error} (expected {expected:?})");
        }
        let missing =
            TlsFiles { cert: dir.path().join("missing.pem"), key: write(dir.path(), "key.pem", &key), client_ca: None };
        let error = Tls::load(missing).unwrap_err().to_string();
        assert!(error.contains("reading the TLS certificate") && error.contains("missing.pem"), "{error}");
    }

    #[test]
    fn changed_files_are_read_again_and_unusable_ones_keep_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed();
        let tls = Tls::load(files(dir.path(), &cert, &key, None)).unwrap();
        let first = tls.current.read().unwrap().clone();
        tls.reload_if_changed();
        assert!(Arc::ptr_eq(&first, &tls.current.read().unwrap()), "unchanged files: nothing reloaded");

        // A certificate that does not go with the key: kept as before. (Each new file is longer than the old one: a
        // change within the file system's timestamp granularity still shows.)
        let (new_cert, new_key) = self_signed();
        std::fs::write(&tls.files.cert, longer(&new_cert, &cert)).unwrap();
        tls.reload_if_changed();
        assert!(Arc::ptr_eq(&first, &tls.current.read().unwrap()), "a mismatched pair keeps the old one");

        // Its key follows: the new pair is in force.
        std::fs::write(&tls.files.key, longer(&new_key, &key)).unwrap();
        tls.reload_if_changed();
        let second = tls.current.read().unwrap().clone();
        assert!(!Arc::ptr_eq(&first, &second), "the new pair is in force");

        // Removed files keep it too.
        std::fs::remove_file(&tls.files.key).unwrap();
        tls.reload_if_changed();
        assert!(Arc::ptr_eq(&second, &tls.current.read().unwrap()));
    }
}
