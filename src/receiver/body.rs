//! Request bodies: read with a size limit, decompressed with the same limit, streaming, so a small body that
//! inflates past the limit is refused after at most `limit` bytes of output (a decompression bomb costs at most
//! the limit), never buffered whole.

use std::io::Read;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;

use super::response::ReceiveError;
use crate::ack::{ExportError, Permit};

/// Why a body could not be read or decompressed.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request exceeds the limit of {limit} bytes (after decompression)")]
    TooLarge { limit: u64 },
    #[error("reading the request body: {0}")]
    Bad(String),
    #[error("the request body did not arrive within {0:?}")]
    Timeout(std::time::Duration),
    #[error("the collector is at capacity; retry later")]
    Overloaded,
}

impl From<BodyError> for ReceiveError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge { limit } => ReceiveError::TooLarge { limit },
            BodyError::Bad(reason) => ReceiveError::BadBody(reason),
            BodyError::Timeout(after) => ReceiveError::BodyTimeout(after),
            BodyError::Overloaded => ReceiveError::Export(ExportError::Overloaded),
        }
    }
}

/// `Content-Encoding` (and `grpc-encoding`) values the receiver accepts: those the OpenTelemetry Collector
/// accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    /// zlib-wrapped deflate (RFC 1950), as HTTP's `deflate` is; raw deflate is accepted too.
    Deflate,
    Zstd,
    /// Snappy framing format, or a raw snappy block.
    Snappy,
    /// LZ4 frame format.
    Lz4,
}

impl Encoding {
    pub(crate) fn from_header(value: Option<&str>) -> Result<Self, ReceiveError> {
        let Some(value) = value else { return Ok(Encoding::Identity) };
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => Ok(Encoding::Identity),
            "gzip" | "x-gzip" => Ok(Encoding::Gzip),
            "deflate" | "zlib" => Ok(Encoding::Deflate),
            "zstd" => Ok(Encoding::Zstd),
            "snappy" | "x-snappy-framed" => Ok(Encoding::Snappy),
            "lz4" => Ok(Encoding::Lz4),
            other => Err(ReceiveError::UnsupportedEncoding(other.to_owned())),
        }
    }
}

/// Read the whole body, at most `limit` bytes, within `timeout`, each chunk charged to `permit` as it arrives
/// (beyond what the permit already holds): an overloaded collector stops reading at once.
pub(crate) async fn read_limited(
    body: Incoming,
    limit: u64,
    timeout: std::time::Duration,
    permit: &mut Permit,
) -> Result<Bytes, BodyError> {
    let read = async {
        let mut body = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut received = 0u64;
        let reserved = permit.bytes();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| match e.is::<http_body_util::LengthLimitError>() {
                true => BodyError::TooLarge { limit },
                false => BodyError::Bad(e.to_string()),
            })?;
            let Ok(data) = frame.into_data() else { continue };
            received += data.len() as u64;
            if received > reserved && !permit.try_resize(received) {
                return Err(BodyError::Overloaded);
            }
            chunks.push(data);
        }
        Ok(match chunks.len() {
            1 => chunks.swap_remove(0),
            _ => Bytes::from(chunks.concat()),
        })
    };
    tokio::time::timeout(timeout, read).await.unwrap_or(Err(BodyError::Timeout(timeout)))
}

/// [`decompress`] on a blocking thread (never on the runtime's), its output charged to `permit` instead of the
/// compressed bytes.
pub(crate) async fn decompress_charged(
    encoding: Encoding,
    body: Bytes,
    limit: u64,
    permit: &mut Permit,
) -> Result<Bytes, BodyError> {
    if encoding == Encoding::Identity {
        return decompress(encoding, body, limit);
    }
    // Room for the output while the input is still held: a bomb stops at `limit` bytes either way.
    let out = tokio::task::spawn_blocking(move || decompress(encoding, body, limit))
        .await
        .map_err(|e| BodyError::Bad(format!("decompression stopped: {e}")))??;
    if !permit.try_resize(out.len() as u64) {
        return Err(BodyError::Overloaded);
    }
    Ok(out)
}

/// Undo `encoding`, producing at most `limit` bytes.
pub fn decompress(encoding: Encoding, body: Bytes, limit: u64) -> Result<Bytes, BodyError> {
    let input = &body[..];
    match encoding {
        Encoding::Identity if body.len() as u64 > limit => Err(BodyError::TooLarge { limit }),
        Encoding::Identity => Ok(body),
        Encoding::Gzip => inflate(flate2::read::MultiGzDecoder::new(input), limit, "gzip"),
        Encoding::Deflate => {
            // A zlib header's first two bytes, read big-endian, are a multiple of 31 with method 8 (deflate).
            let zlib =
                input.len() >= 2 && input[0] & 0x0f == 8 && (u16::from(input[0]) << 8 | u16::from(input[1])) % 31 == 0;
            if zlib {
                inflate(flate2::read::ZlibDecoder::new(input), limit, "deflate")
            } else {
                inflate(flate2::read::DeflateDecoder::new(input), limit, "deflate")
            }
        }
        Encoding::Zstd => {
            let decoder =
                zstd::stream::read::Decoder::with_buffer(input).map_err(|e| BodyError::Bad(format!("zstd: {e}")))?;
            inflate(decoder, limit, "zstd")
        }
        Encoding::Snappy => {
            const FRAME_MAGIC: &[u8] = b"\xff\x06\x00\x00sNaPpY";
            if input.starts_with(FRAME_MAGIC) {
                inflate(snap::read::FrameDecoder::new(input), limit, "snappy")
            } else {
                let len = snap::raw::decompress_len(input).map_err(|e| BodyError::Bad(format!("snappy: {e}")))?;
                if len as u64 > limit {
                    return Err(BodyError::TooLarge { limit });
                }
                let out = snap::raw::Decoder::new()
                    .decompress_vec(input)
                    .map_err(|e| BodyError::Bad(format!("snappy: {e}")))?;
                Ok(Bytes::from(out))
            }
        }
        Encoding::Lz4 => inflate(lz4_flex::frame::FrameDecoder::new(input), limit, "lz4"),
    }
}

/// Read a decompressing reader to its end or one byte past `limit`, whichever comes first.
fn inflate(reader: impl Read, limit: u64, name: &str) -> Result<Bytes, BodyError> {
    let mut out = Vec::new();
    // One byte past the limit tells "exactly at the limit" from "over it".
    reader.take(limit.saturating_add(1)).read_to_end(&mut out).map_err(|e| BodyError::Bad(format!("{name}: {e}")))?;
    if out.len() as u64 > limit {
        return Err(BodyError::TooLarge { limit });
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn compress(encoding: Encoding, data: &[u8]) -> Bytes {
        let out = match encoding {
            Encoding::Identity => data.to_vec(),
            Encoding::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Encoding::Deflate => {
                let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Encoding::Zstd => zstd::stream::encode_all(data, 3).unwrap(),
            Encoding::Snappy => {
                let mut e = snap::write::FrameEncoder::new(Vec::new());
                e.write_all(data).unwrap();
                e.into_inner().unwrap()
            }
            Encoding::Lz4 => {
                let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
        };
        Bytes::from(out)
    }

    const ALL: [Encoding; 6] =
        [Encoding::Identity, Encoding::Gzip, Encoding::Deflate, Encoding::Zstd, Encoding::Snappy, Encoding::Lz4];

    #[test]
    fn every_encoding_round_trips_within_the_limit() {
        let data = b"hello otlp hello otlp hello otlp".repeat(100);
        for encoding in ALL {
            let out = decompress(encoding, compress(encoding, &data), data.len() as u64).unwrap();
            assert_eq!(&out[..], &data[..], "{encoding:?}");
        }
    }

    #[test]
    fn a_bomb_stops_at_the_limit_in_every_encoding() {
        let zeros = vec![0u8; 8 << 20];
        for encoding in ALL {
            let body = compress(encoding, &zeros);
            let result = decompress(encoding, body, 1 << 20);
            assert!(matches!(result, Err(BodyError::TooLarge { .. })), "{encoding:?}: {result:?}");
        }
    }

    #[test]
    fn raw_deflate_and_raw_snappy_are_accepted() {
        let data = b"raw formats".repeat(10);
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&data).unwrap();
        assert_eq!(&decompress(Encoding::Deflate, Bytes::from(e.finish().unwrap()), 1000).unwrap()[..], &data[..]);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(&decompress(Encoding::Snappy, Bytes::from(raw), 1000).unwrap()[..], &data[..]);
    }

    #[test]
    fn corrupt_bodies_are_bad_requests() {
        for encoding in [Encoding::Gzip, Encoding::Deflate, Encoding::Zstd, Encoding::Snappy, Encoding::Lz4] {
            let result = decompress(encoding, Bytes::from_static(b"definitely not compressed"), 1000);
            assert!(matches!(result, Err(BodyError::Bad(_))), "{encoding:?}: {result:?}");
        }
    }

    #[test]
    fn encodings_are_parsed_leniently() {
        assert_eq!(Encoding::from_header(Some(" GZIP ")).unwrap(), Encoding::Gzip);
        assert_eq!(Encoding::from_header(Some("identity")).unwrap(), Encoding::Identity);
        assert_eq!(Encoding::from_header(Some("zstd")).unwrap(), Encoding::Zstd);
        assert!(Encoding::from_header(Some("br")).is_err());
    }
}
