//! settings: what every component's command-line section shares (a leaf): value parsers for durations, sizes and
//! listener addresses, and the error a section's validation gives.
//!
//! Each component owns its flags (a `clap::Args` section), their defaults and their validation; `config` only
//! puts the sections together and checks what spans two of them.

use std::net::SocketAddr;
use std::time::Duration;

/// A setting that cannot be used: which flag, and why.
#[derive(Debug, thiserror::Error)]
#[error("{flag} {reason}")]
pub struct InvalidSetting {
    pub(crate) flag: &'static str,
    pub(crate) reason: String,
}

impl InvalidSetting {
    pub(crate) fn new(flag: &'static str, reason: impl Into<String>) -> Self {
        InvalidSetting { flag, reason: reason.into() }
    }
}

/// A duration as `humantime` reads it (`1s`, `500ms`, `2m`, `168h`, `7d`, `1m 30s`), or a plain number of
/// seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(seconds) = s.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(s).map_err(|e| format!("bad duration {s:?} ({e}): use e.g. 1s, 500ms, 2m, 168h"))
}

/// A size as `bytesize` reads it (`128MiB`, `64MB`, `1GiB`, `512KiB`, `1k`, `10 MB`), or a plain number of bytes.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    s.parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|e| format!("bad size {s:?} ({e}): use e.g. 64MiB, 1GiB, 512KiB"))
}

/// A listener address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listen {
    Off,
    At(SocketAddr),
}

impl std::str::FromStr for Listen {
    type Err = std::net::AddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "" | "off" | "none" => Ok(Listen::Off),
            addr => addr.parse().map(Listen::At),
        }
    }
}

impl Listen {
    /// The address, unless `off`.
    pub(crate) fn addr(self) -> Option<SocketAddr> {
        match self {
            Listen::Off => None,
            Listen::At(addr) => Some(addr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("128MiB").unwrap(), 128 << 20);
        assert_eq!(parse_size("10 MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("5MiB").unwrap(), 5 << 20);
        assert_eq!(parse_size("17").unwrap(), 17);
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("168h").unwrap(), Duration::from_secs(7 * 86400));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86400));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
