//! `record_id` of the v2 layout: unique per row and ordered by the row's time, as a UUIDv7-shaped string
//! (RFC 9562): 48 bits of Unix milliseconds, the version, the microseconds within that millisecond (so ids sort
//! by time to the microsecond), the variant and 62 random bits.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

/// A generator of record ids, one per row builder.
pub(crate) struct RecordIds {
    state: u64,
    text: String,
}

impl RecordIds {
    pub(crate) fn new() -> Self {
        // Seeded from the process's random hash keys and a counter: two builders never share a sequence, and two
        // processes (replicas) draw theirs independently.
        static BUILDERS: AtomicU64 = AtomicU64::new(0);
        let state = RandomState::new().hash_one(BUILDERS.fetch_add(1, Ordering::Relaxed));
        RecordIds { state, text: String::with_capacity(36) }
    }

    /// The id of a row whose time is `micros` since the Unix epoch (negative times count as 0).
    pub(crate) fn next(&mut self, micros: i64) -> &str {
        let micros = micros.max(0) as u64;
        let millis = (micros / 1_000) & 0xffff_ffff_ffff;
        let sub_millis = micros % 1_000;
        let random = self.random() & 0x3fff_ffff_ffff_ffff;
        let high = (millis << 16) | 0x7000 | sub_millis;
        let low = 0x8000_0000_0000_0000 | random;
        let hex = format_args!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            high >> 32,
            (high >> 16) & 0xffff,
            high & 0xffff,
            low >> 48,
            low & 0xffff_ffff_ffff
        );
        self.text.clear();
        std::fmt::Write::write_fmt(&mut self.text, hex).unwrap_or_default();
        &self.text
    }

    /// splitmix64: fast, and every output distinct over the generator's period.
    fn random(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
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
    }
}
