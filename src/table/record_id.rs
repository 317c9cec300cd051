//! `record_id` of the v2 layout: unique per row and ordered by the row's time, as a UUIDv7-shaped string
//! (RFC 9562): 48 bits of Unix milliseconds, the version, the microseconds within that millisecond (so ids sort
//! by time to the microsecond), the variant and 62 bits that count up from a random start (RFC 9562 §6.2,
//! "monotonic random"). Counting rather than drawing keeps ids unique within a builder over 2^62 rows, and lets
//! consecutive ids share all but their last digits: the column compresses to a few bytes per row instead of the
//! ~10 that fresh random bits cost.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

/// A generator of record ids, one per row builder.
pub(crate) struct RecordIds {
    /// The 62 low bits of the next id.
    counter: u64,
    text: [u8; 36],
}

impl RecordIds {
    pub(crate) fn new() -> Self {
        // Seeded from the process's random hash keys and a counter: two builders never share a sequence, and two
        // processes (replicas) draw theirs independently.
        static BUILDERS: AtomicU64 = AtomicU64::new(0);
        let counter = RandomState::new().hash_one(BUILDERS.fetch_add(1, Ordering::Relaxed));
        RecordIds { counter, text: *b"00000000-0000-0000-0000-000000000000" }
    }

    /// The id of a row whose time is `micros` since the Unix epoch (negative times count as 0).
    pub(crate) fn next(&mut self, micros: i64) -> &str {
        let micros = micros.max(0) as u64;
        let millis = (micros / 1_000) & 0xffff_ffff_ffff;
        let sub_millis = micros % 1_000;
        let counter = self.counter & 0x3fff_ffff_ffff_ffff;
        self.counter = self.counter.wrapping_add(1);
        let high = (millis << 16) | 0x7000 | sub_millis;
        let low = 0x8000_0000_0000_0000 | counter;
        // 8-4-4-4-12 hex digits; the dashes stay where `new` put them.
        hex(&mut self.text[0..8], high >> 32);
        hex(&mut self.text[9..13], high >> 16);
        hex(&mut self.text[14..18], high);
        hex(&mut self.text[19..23], low >> 48);
        hex(&mut self.text[24..36], low);
        std::str::from_utf8(&self.text).unwrap_or_default()
    }
}

/// The low `out.len()` hex digits of `bits`, most significant first.
fn hex(out: &mut [u8], bits: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let n = out.len();
    for (i, digit) in out.iter_mut().enumerate() {
        *digit = DIGITS[((bits >> ((n - 1 - i) * 4)) & 0xf) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_v7_shaped_unique_and_ordered_by_time() {
        let mut ids = RecordIds::new();
        let t = 1_700_000_000_123_456i64;
        let a = ids.next(t).to_owned();
        let b = ids.next(t + 1).to_owned();
        let c = ids.next(t + 1_000_000).to_owned();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "7", "version 7: {a}");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "RFC variant: {a}");
        assert!(a < b && b < c, "{a} {b} {c}");
        // 1_700_000_000_123 ms = 0x18bcfe5687b, 456 µs = 0x1c8
        assert!(a.starts_with("018bcfe5-687b-71c8-"), "{a}");
        let many: std::collections::HashSet<String> = (0..10_000).map(|_| ids.next(t).to_owned()).collect();
        assert_eq!(many.len(), 10_000);
        assert_ne!(RecordIds::new().next(t), ids.next(t), "builders draw different sequences");
        // The same as the standard formatting of the same 128 bits.
        let id = ids.next(t).to_owned();
        let bits = u128::from_str_radix(&id.replace('-', ""), 16).unwrap();
        let (high, low) = ((bits >> 64) as u64, bits as u64);
        let expected = format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            high >> 32,
            (high >> 16) & 0xffff,
            high & 0xffff,
            low >> 48,
            low & 0xffff_ffff_ffff
        );
        assert_eq!(id, expected);
        assert_eq!(high, (1_700_000_000_123 << 16) | 0x7000 | 456);
    }
}
