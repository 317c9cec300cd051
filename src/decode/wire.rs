//! Protobuf wire format: read in place ([`Reader`]) and written ([`Writer`], for responses and transcoding).
//!
//! Every length-delimited value is returned as a sub-slice of the input, bounded by its own length: a nested
//! message is always decoded by a new [`Reader`] over exactly its bytes, so a malformed inner length can never
//! read past its parent. Lengths are checked before slicing; nothing here panics on any input.

use std::ops::Range;

use super::DecodeError;

/// The four wire types OTLP uses, plus groups (deprecated, skipped when unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// A cursor over one protobuf message.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// Groups nest; an unknown group is skipped with this many levels at most.
const MAX_GROUP_DEPTH: u32 = 32;

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, DecodeError> {
        // Most tags and lengths fit in one byte.
        if let Some(&byte) = self.buf.get(self.pos) {
            if byte < 0x80 {
                self.pos += 1;
                return Ok(u64::from(byte));
            }
        }
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(DecodeError::Truncated);
            };
            self.pos += 1;
            // The tenth byte may only carry the top bit of a u64.
            if i == 9 && byte > 1 {
                return Err(DecodeError::VarintOverflow);
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(DecodeError::VarintOverflow)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(len).ok_or(DecodeError::Truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// The next field of the message, or `None` at its end. Groups of unknown fields are skipped here, since
    /// OTLP defines none.
    pub(crate) fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, DecodeError> {
        Ok(self.next_field_at()?.map(|(field, value, _)| (field, value)))
    }

    /// [`next_field`](Self::next_field), with where the field lies in the message (its tag to the end of its
    /// value), for callers that remember where a repeated field's occurrences are.
    pub(crate) fn next_field_at(&mut self) -> Result<Option<(u32, Value<'a>, Range<usize>)>, DecodeError> {
        loop {
            if self.pos >= self.buf.len() {
                return Ok(None);
            }
            let start = self.pos;
            let key = self.varint()?;
            let field = u32::try_from(key >> 3).map_err(|_| DecodeError::BadFieldNumber)?;
            if field == 0 {
                return Err(DecodeError::BadFieldNumber);
            }
            let value = match key & 7 {
                0 => Value::Varint(self.varint()?),
                1 => Value::Fixed64(u64::from_le_bytes(self.fixed::<8>()?)),
                2 => {
                    let len = usize::try_from(self.varint()?).map_err(|_| DecodeError::Truncated)?;
                    Value::Bytes(self.take(len)?)
                }
                3 => {
                    self.skip_group(field, 1)?;
                    continue;
                }
                5 => Value::Fixed32(u32::from_le_bytes(self.fixed::<4>()?)),
                wire => return Err(DecodeError::BadWireType { field, wire: wire as u8 }),
            };
            return Ok(Some((field, value, start..self.pos)));
        }
    }

    fn skip_group(&mut self, group: u32, depth: u32) -> Result<(), DecodeError> {
        if depth > MAX_GROUP_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        loop {
            if self.pos >= self.buf.len() {
                return Err(DecodeError::Truncated);
            }
            let key = self.varint()?;
            let field = u32::try_from(key >> 3).map_err(|_| DecodeError::BadFieldNumber)?;
            match key & 7 {
                0 => {
                    self.varint()?;
                }
                1 => {
                    self.take(8)?;
                }
                2 => {
                    let len = usize::try_from(self.varint()?).map_err(|_| DecodeError::Truncated)?;
                    self.take(len)?;
                }
                3 => self.skip_group(field, depth + 1)?,
                4 if field == group => return Ok(()),
                5 => {
                    self.take(4)?;
                }
                wire => return Err(DecodeError::BadWireType { field, wire: wire as u8 }),
            }
        }
    }
}

impl<'a> Value<'a> {
    pub(crate) fn bytes(self, field: u32) -> Result<&'a [u8], DecodeError> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err(DecodeError::WrongWireType { field }),
        }
    }

    pub(crate) fn string(self, field: u32) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes(field)?).map_err(|_| DecodeError::InvalidUtf8 { field })
    }

    pub(crate) fn varint(self, field: u32) -> Result<u64, DecodeError> {
        match self {
            Value::Varint(v) => Ok(v),
            _ => Err(DecodeError::WrongWireType { field }),
        }
    }

    /// `uint32` / `int32` / enum fields: protobuf truncates the varint to 32 bits.
    pub(crate) fn varint32(self, field: u32) -> Result<u32, DecodeError> {
        Ok(self.varint(field)? as u32)
    }

    pub(crate) fn fixed64(self, field: u32) -> Result<u64, DecodeError> {
        match self {
            Value::Fixed64(v) => Ok(v),
            _ => Err(DecodeError::WrongWireType { field }),
        }
    }

    pub(crate) fn fixed32(self, field: u32) -> Result<u32, DecodeError> {
        match self {
            Value::Fixed32(v) => Ok(v),
            _ => Err(DecodeError::WrongWireType { field }),
        }
    }
}

/// Appends protobuf fields to a buffer.
#[derive(Debug, Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

/// Bytes reserved for a nested message's length: a padded varint (protobuf parsers accept non-minimal
/// varints), so a child is written in place instead of being built apart and copied.
const NESTED_LEN_BYTES: usize = 5;

impl Writer {
    pub fn new() -> Self {
        Writer::default()
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire));
    }

    pub fn varint_field(&mut self, field: u32, v: u64) {
        self.key(field, 0);
        self.varint(v);
    }

    pub fn fixed64_field(&mut self, field: u32, v: u64) {
        self.key(field, 1);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn fixed32_field(&mut self, field: u32, v: u32) {
        self.key(field, 5);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn bytes_field(&mut self, field: u32, bytes: &[u8]) {
        self.key(field, 2);
        self.varint(bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
    }

    /// A nested message written by `build` in place. Fails if it exceeds 2^35 bytes (not reachable under the
    /// request size limits, but checked rather than wrapped).
    pub fn message_field<E>(&mut self, field: u32, build: impl FnOnce(&mut Writer) -> Result<(), E>) -> Result<(), E>
    where
        E: From<DecodeError>,
    {
        self.key(field, 2);
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x00]);
        build(self)?;
        let mut len = (self.buf.len() - at - NESTED_LEN_BYTES) as u64;
        if len >= 1 << 35 {
            return Err(DecodeError::Truncated.into());
        }
        for i in 0..NESTED_LEN_BYTES {
            let more = if i + 1 < NESTED_LEN_BYTES { 0x80 } else { 0 };
            self.buf[at + i] = (len as u8 & 0x7f) | more;
            len >>= 7;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_wire_type() {
        // field 1 varint 300, field 2 bytes "hi", field 3 fixed64 7, field 4 fixed32 9
        let buf = [0x08, 0xac, 0x02, 0x12, 0x02, b'h', b'i', 0x19, 7, 0, 0, 0, 0, 0, 0, 0, 0x25, 9, 0, 0, 0];
        let mut r = Reader::new(&buf);
        assert_eq!(r.next_field().unwrap(), Some((1, Value::Varint(300))));
        assert_eq!(r.next_field().unwrap(), Some((2, Value::Bytes(b"hi"))));
        assert_eq!(r.next_field().unwrap(), Some((3, Value::Fixed64(7))));
        assert_eq!(r.next_field().unwrap(), Some((4, Value::Fixed32(9))));
        assert_eq!(r.next_field().unwrap(), None);
    }

    #[test]
    fn length_past_end_is_an_error() {
        let mut r = Reader::new(&[0x12, 0x05, b'a']);
        assert_eq!(r.next_field(), Err(DecodeError::Truncated));
        // A huge length must not overflow.
        let mut r = Reader::new(&[0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(r.next_field(), Err(DecodeError::Truncated));
    }

    #[test]
    fn overlong_varint_is_an_error() {
        let mut r = Reader::new(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(r.next_field(), Err(DecodeError::VarintOverflow));
    }

    #[test]
    fn written_fields_read_back() {
        let mut w = Writer::new();
        w.varint_field(1, 300);
        w.message_field::<DecodeError>(2, |child| {
            child.bytes_field(1, b"hi");
            child.fixed64_field(2, 9);
            Ok(())
        })
        .unwrap();
        w.fixed32_field(3, 7);
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.next_field().unwrap(), Some((1, Value::Varint(300))));
        let Some((2, Value::Bytes(child))) = r.next_field().unwrap() else { panic!("nested message") };
        let mut c = Reader::new(child);
        assert_eq!(c.next_field().unwrap(), Some((1, Value::Bytes(b"hi"))));
        assert_eq!(c.next_field().unwrap(), Some((2, Value::Fixed64(9))));
        assert_eq!(c.next_field().unwrap(), None);
        assert_eq!(r.next_field().unwrap(), Some((3, Value::Fixed32(7))));
    }

    #[test]
    fn unknown_groups_are_skipped() {
        // field 5 start group, field 1 varint inside, field 5 end group, then field 2 varint 1
        let buf = [0x2b, 0x08, 0x01, 0x2c, 0x10, 0x01];
        let mut r = Reader::new(&buf);
        assert_eq!(r.next_field().unwrap(), Some((2, Value::Varint(1))));
        assert_eq!(r.next_field().unwrap(), None);
        // An unterminated group is truncated input.
        assert_eq!(Reader::new(&[0x2b, 0x08, 0x01]).next_field(), Err(DecodeError::Truncated));
    }
}
