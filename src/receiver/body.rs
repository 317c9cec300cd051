//! Request bodies: read with a size limit, decompressed with the same limit (a small gzip that inflates past
//! it is refused after at most `limit` bytes of output, never buffered whole).

use std::io::Read as _;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;

use super::response::ReceiveError;

/// `Content-Encoding` values the receiver accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
}

impl Encoding {
    pub fn from_header(value: Option<&str>) -> Result<Self, ReceiveError> {
        match value.map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(Encoding::Identity),
            Some(v) if v.is_empty() || v == "identity" => Ok(Encoding::Identity),
            Some(v) if v == "gzip" || v == "x-gzip" => Ok(Encoding::Gzip),
            Some(v) => Err(ReceiveError::UnsupportedEncoding(v)),
        }
    }
}

/// Read the whole body, at most `limit` bytes.
pub async fn read_limited(body: Incoming, limit: u64) -> Result<Bytes, ReceiveError> {
    match Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ReceiveError::TooLarge { limit }),
        Err(e) => Err(ReceiveError::BadBody(e.to_string())),
    }
}

/// Undo `encoding`, producing at most `limit` bytes.
pub fn decode(encoding: Encoding, body: Bytes, limit: u64) -> Result<Bytes, ReceiveError> {
    match encoding {
        Encoding::Identity => Ok(body),
        Encoding::Gzip => {
            let mut out = Vec::new();
            // One byte past the limit tells "exactly at the limit" from "over it".
            let mut reader = flate2::read::MultiGzDecoder::new(&body[..]).take(limit.saturating_add(1));
            reader.read_to_end(&mut out).map_err(|e| ReceiveError::BadBody(format!("gzip: {e}")))?;
            if out.len() as u64 > limit {
                return Err(ReceiveError::TooLarge { limit });
            }
            Ok(Bytes::from(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn gzip(data: &[u8]) -> Bytes {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(data).unwrap();
        Bytes::from(enc.finish().unwrap())
    }

    #[test]
    fn gzip_round_trips_within_the_limit() {
        let out = decode(Encoding::Gzip, gzip(b"hello"), 5).unwrap();
        assert_eq!(&out[..], b"hello");
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        let bomb = gzip(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 64 << 10);
        assert!(matches!(decode(Encoding::Gzip, bomb, 1 << 20), Err(ReceiveError::TooLarge { .. })));
    }

    #[test]
    fn corrupt_gzip_is_a_bad_body() {
        assert!(matches!(decode(Encoding::Gzip, Bytes::from_static(b"nope"), 10), Err(ReceiveError::BadBody(_))));
    }

    #[test]
    fn encodings_are_parsed_leniently() {
        assert_eq!(Encoding::from_header(Some(" GZIP ")).unwrap(), Encoding::Gzip);
        assert_eq!(Encoding::from_header(Some("identity")).unwrap(), Encoding::Identity);
        assert!(Encoding::from_header(Some("br")).is_err());
    }
}
