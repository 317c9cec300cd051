//! Bearer-token authentication of export requests (`--auth-token-file`).
//!
//! Contract:
//! - An export (OTLP/HTTP or gRPC) is let in only when its `Authorization: Bearer <token>` header (gRPC: the same
//!   metadata) names one of the file's tokens. The check runs on the headers, before any budget is reserved or
//!   any body byte is read; `/health` and `/ready` are not checked.
//! - Tokens are compared in constant time (every configured token is compared, without an early exit), and are
//!   never logged: errors name the file, never a line of it.
//! - The file (one token a line; blank lines and lines starting with `#` are skipped) is read at start-up, where a
//!   file that cannot be read or holds no token stops start-up, and read again within [`RELOAD_EVERY`] of a
//!   change (its modification time or length). A change that leaves it unreadable keeps the tokens in force and
//!   logs why; a change that leaves it without tokens lets nobody in, as the file says.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use subtle::ConstantTimeEq as _;

/// How often the token file is checked for a change.
pub(crate) const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// Why the token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenFileError {
    #[error("reading the token file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the token file {0} holds no token (one a line)")]
    Empty(PathBuf),
}

/// The tokens that let an export in, kept current with their file.
pub(crate) struct Tokens {
    path: PathBuf,
    current: RwLock<Arc<Vec<Vec<u8>>>>,
    /// What the file looked like when last read: (modified, length).
    seen: RwLock<Option<(SystemTime, u64)>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens themselves.
        f.debug_struct("Tokens").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Tokens {
    /// Read the token file; it must hold at least one token.
    pub(crate) fn load(path: &Path) -> Result<Tokens, TokenFileError> {
        let (tokens, seen) = read(path)?;
        if tokens.is_empty() {
            return Err(TokenFileError::Empty(path.to_owned()));
        }
        Ok(Tokens { path: path.to_owned(), current: RwLock::new(Arc::new(tokens)), seen: RwLock::new(seen) })
    }

    /// Whether `authorization` (the header's value) is `Bearer <one of the tokens>`.
    pub(crate) fn allows(&self, authorization: Option<&[u8]>) -> bool {
        let Some(token) = authorization.and_then(bearer) else { return false };
        let tokens = match self.current.read() {
            Ok(tokens) => tokens.clone(),
            Err(_) => return false,
        };
        // Every token is compared, so the time taken does not say which one (or how much of one) matched.
        tokens.iter().fold(subtle::Choice::from(0), |found, t| found | t.as_slice().ct_eq(token)).into()
    }

    /// Read the file again if it changed since it was last read.
    pub(crate) fn reload_if_changed(&self) {
        let stamp =
            std::fs::metadata(&self.path).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        if stamp.is_some() && self.seen.read().is_ok_and(|seen| *seen == stamp) {
            return;
        }
        match read(&self.path) {
            Ok((tokens, seen)) => {
                if tokens.is_empty() {
                    tracing::warn!(path = %self.path.display(), "the token file now holds no token: every export is refused");
                } else {
                    tracing::info!(path = %self.path.display(), tokens = tokens.len(), "token file reloaded");
                }
                if let (Ok(mut current), Ok(mut last)) = (self.current.write(), self.seen.write()) {
                    *current = Arc::new(tokens);
                    *last = seen;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the token file changed but cannot be read: the tokens read before stay in force");
                if let Ok(mut last) = self.seen.write() {
                    *last = stamp;
                }
            }
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value (the scheme is case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// The file's tokens and its (modified, length).
#[allow(clippy::type_complexity)]
fn read(path: &Path) -> Result<(Vec<Vec<u8>>, Option<(SystemTime, u64)>), TokenFileError> {
    let error = |source| TokenFileError::Read { path: path.to_owned(), source };
    let metadata = std::fs::metadata(path).map_err(error)?;
    let text = std::fs::read(path).map_err(error)?;
    let tokens = text
        .split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|line| !line.is_empty() && !line.starts_with(b"#"))
        .map(<[u8]>::to_vec)
        .collect();
    Ok((tokens, Some((metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH), metadata.len()))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn only_a_bearer_header_naming_a_token_is_allowed() {
        let f = file("# clients\nalpha\n\n  beta  \n");
        let tokens = Tokens::load(f.path()).unwrap();
        assert!(tokens.allows(Some(b"Bearer alpha")));
        assert!(tokens.allows(Some(b"bearer beta")));
        for refused in
            [&b"Bearer alph"[..], b"Bearer alphaa", b"Basic alpha", b"Bearer ", b"alpha", b"Bearer # clients"]
        {
            assert!(!tokens.allows(Some(refused)), "{}", String::from_utf8_lossy(refused));
        }
        assert!(!tokens.allows(None));
        assert!(!format!("{tokens:?}").contains("alpha"), "Debug never shows a token");
    }

    #[test]
    fn a_file_without_tokens_or_unreadable_stops_start_up() {
        assert!(matches!(Tokens::load(file("# none\n\n").path()), Err(TokenFileError::Empty(_))));
        let missing = Tokens::load(Path::new("/nonexistent/otel-delta-tokens")).unwrap_err().to_string();
        assert!(missing.contains("/nonexistent/otel-delta-tokens"), "{missing}");
    }

    #[test]
    fn a_changed_file_is_read_again_and_an_unreadable_one_keeps_the_tokens() {
        let f = file("old\n");
        let tokens = Tokens::load(f.path()).unwrap();
        std::fs::write(f.path(), "new-token\n").unwrap();
        tokens.reload_if_changed();
        assert!(tokens.allows(Some(b"Bearer new-token")) && !tokens.allows(Some(b"Bearer old")));
        let path = f.path().to_owned();
        drop(f);
        tokens.reload_if_changed();
        assert!(tokens.allows(Some(b"Bearer new-token")), "a vanished file keeps the tokens in force");
        std::fs::write(&path, "\n").unwrap();
        tokens.reload_if_changed();
        assert!(!tokens.allows(Some(b"Bearer new-token")), "an emptied file lets nobody in");
        let _ = std::fs::remove_file(path);
    }
}
