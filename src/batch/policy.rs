//! When to cut a record batch and when to seal a file. Pure: the caller passes the clock in, so tests drive
//! time by hand.

use std::time::{Duration, Instant};

/// Limits of one worker's open file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlushPolicy {
    /// Seal the file once this many OTLP request bytes went into it.
    pub(crate) target_file_bytes: u64,
    /// Seal the file once its oldest request waited this long (the ack latency bound).
    pub(crate) max_age: Duration,
    /// Hand the rows built so far to the Parquet encoder once this many request bytes went into them. Keeps
    /// builder memory and string offsets small (far below Arrow's 2 GiB per-array limit).
    pub(crate) batch_bytes: u64,
}

/// Bytes a record batch may take before it is encoded, whatever the configuration. Batches are encoded into the
/// open row group as they are cut, so smaller ones spread the Parquet work over the flush window instead of
/// piling it up at the seal, where every request of the file waits for it (measurements:
/// `docs/design-notes.md#record-batch-size`).
pub(crate) const MAX_BATCH_BYTES: u64 = 16 * 1024 * 1024;

/// Estimated bytes of rows a record batch may hold before it is encoded, however small their requests were
/// (resource and scope values repeat on every span): with one request's rows at most `--max-request-rows` (≤ 1 GiB),
/// no string column nears Arrow's 2 GiB offset limit.
pub(crate) const MAX_BATCH_ROW_BYTES: u64 = 256 * 1024 * 1024;

/// What the worker must do after taking a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Nothing,
    EncodeBatch,
    SealFile,
}

/// Fill state of the open file.
#[derive(Debug, Default, Clone)]
pub(crate) struct OpenFile {
    opened_at: Option<Instant>,
    file_bytes: u64,
    batch_bytes: u64,
}

impl OpenFile {
    /// Count a request of `bytes` taken at `now`; say what the limits ask for.
    pub(crate) fn add(&mut self, policy: &FlushPolicy, bytes: u64, now: Instant) -> Step {
        self.opened_at.get_or_insert(now);
        self.file_bytes += bytes;
        self.batch_bytes += bytes;
        if self.file_bytes >= policy.target_file_bytes || self.is_due(policy, now) {
            Step::SealFile
        } else if self.batch_bytes >= policy.batch_bytes.min(MAX_BATCH_BYTES) {
            Step::EncodeBatch
        } else {
            Step::Nothing
        }
    }

    /// The rows of the current batch went to the encoder.
    pub(crate) fn batch_encoded(&mut self) {
        self.batch_bytes = 0;
    }

    /// The file was sealed (or discarded): start empty.
    pub(crate) fn reset(&mut self) {
        *self = OpenFile::default();
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.opened_at.is_none()
    }

    /// When the open file must be sealed, if anything is in it.
    pub(crate) fn deadline(&self, policy: &FlushPolicy) -> Option<Instant> {
        self.opened_at.map(|t| t + policy.max_age)
    }

    pub(crate) fn is_due(&self, policy: &FlushPolicy, now: Instant) -> bool {
        self.deadline(policy).is_some_and(|d| now >= d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> FlushPolicy {
        FlushPolicy { target_file_bytes: 1000, max_age: Duration::from_secs(1), batch_bytes: 300 }
    }

    #[test]
    fn seals_by_size_and_encodes_by_batch() {
        let (p, t0) = (policy(), Instant::now());
        let mut f = OpenFile::default();
        assert!(f.is_empty() && f.deadline(&p).is_none());
        assert_eq!(f.add(&p, 200, t0), Step::Nothing);
        assert_eq!(f.add(&p, 200, t0), Step::EncodeBatch);
        f.batch_encoded();
        assert_eq!(f.add(&p, 200, t0), Step::Nothing);
        assert_eq!(f.add(&p, 400, t0), Step::SealFile);
        f.reset();
        assert!(f.is_empty());
    }

    #[test]
    fn seals_by_age_of_the_oldest_request() {
        let (p, t0) = (policy(), Instant::now());
        let mut f = OpenFile::default();
        f.add(&p, 1, t0);
        assert_eq!(f.deadline(&p), Some(t0 + Duration::from_secs(1)));
        // A later request does not move the deadline.
        f.add(&p, 1, t0 + Duration::from_millis(900));
        assert!(!f.is_due(&p, t0 + Duration::from_millis(999)));
        assert!(f.is_due(&p, t0 + Duration::from_secs(1)));
        assert_eq!(f.add(&p, 1, t0 + Duration::from_secs(2)), Step::SealFile);
    }

    #[test]
    fn batch_limit_is_capped() {
        let p = FlushPolicy { target_file_bytes: u64::MAX, max_age: Duration::from_secs(60), batch_bytes: u64::MAX };
        let mut f = OpenFile::default();
        assert_eq!(f.add(&p, MAX_BATCH_BYTES, Instant::now()), Step::EncodeBatch);
    }
}
