//! batch: admitted requests → Arrow record batches (the table contract's row builder) → the sink's output (a
//! Parquet file streamed to the store, or Zerobus records), on worker threads.
//!
//! Contract: a worker takes whole requests from the shared queue, checks each completely as its rows are built
//! (a request found invalid half-way adds no row), and puts all of a request's rows in one output. A sealed
//! output travels to the sink's committer with exactly the requests whose rows it holds ([`Requests`]); a request
//! is answered by the sink once that output is stored, or here at once if it is invalid or holds no storable
//! span. If writing fails, every request of the open output is answered "unavailable" (retryable) and the worker
//! starts afresh: nothing is acknowledged that is not in the output.
//!
//! Outputs are cut by [`FlushPolicy`]: record batches by bytes, outputs by bytes or by the age of their oldest
//! request. A file's bytes stream to the store while it is written (see [`crate::store`]), and the worker waits
//! when the store is behind, so memory stays bounded.

mod policy;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::error::ArrowError;
use bytes::Bytes;
use crossbeam_channel::Receiver;
use tokio::sync::mpsc::UnboundedSender;

use crate::ack::{Accepted, Budget, ExportError, Failure, Pending, Permit, Reply, Requests, Stopped};
use crate::decode::{self, DecodeError, Format};
use crate::sink::{Sealed, WriteError, Writer};
use crate::table::{Contract, RowBuilder};
use policy::{OpenFile, Step};

pub(crate) use policy::{FlushPolicy, MAX_BATCH_BYTES, MAX_BATCH_ROW_BYTES};

/// Rows up to this many times a request's own bytes are covered by the budget share it was admitted with; what a
/// request becomes beyond it (resource and scope values repeated on many spans) is charged to the budget too.
const COVERED_EXPANSION: u64 = 4;

/// Worker panics caught since start (each answered its requests 503 and restarted the worker afresh).
static WORKER_RESTARTS: AtomicU64 = AtomicU64::new(0);

/// An admitted request on its way to a worker.
pub(crate) struct Export {
    pub(crate) body: Bytes,
    pub(crate) format: Format,
    pub(crate) reply: Reply,
    pub(crate) permit: Permit,
}

/// Why a worker lost its open output.
#[derive(Debug, thiserror::Error)]
enum BatchError {
    #[error("building a record batch")]
    Rows(#[source] ArrowError),
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// What one request may become, and the budget its growth is charged to.
#[derive(Clone)]
pub(crate) struct RowLimits {
    /// Largest the rows of one request may be; beyond it the request gets 413.
    pub(crate) max_request_rows: u64,
    pub(crate) budget: Budget,
}

/// One batching worker: owns its row builder and its open output.
pub(crate) struct Worker<W: Writer> {
    policy: FlushPolicy,
    limits: RowLimits,
    contract: &'static Contract,
    writer: W,
    rows: Box<dyn RowBuilder>,
    output: Option<W::Open>,
    open: OpenFile,
    requests: Requests,
    sealed: UnboundedSender<Sealed<W::Output>>,
    on_idle: Option<fn()>,
}

/// How long a worker waits with nothing open after a seal before calling its idle hook.
const IDLE_AFTER: Duration = Duration::from_secs(2);

impl<W: Writer> Worker<W> {
    pub(crate) fn new(
        policy: FlushPolicy,
        limits: RowLimits,
        contract: &'static Contract,
        writer: W,
        sealed: UnboundedSender<Sealed<W::Output>>,
        on_idle: Option<fn()>,
    ) -> Self {
        Worker {
            policy,
            limits,
            contract,
            writer,
            rows: contract.row_builder(),
            output: None,
            open: OpenFile::default(),
            requests: Requests::default(),
            sealed,
            on_idle,
        }
    }

    /// Serve the queue until every sender is gone, then seal what is open and return. Once `drain` signals or
    /// closes (shutdown), nothing waits any more: the open output is sealed at once, and so is every later
    /// request's.
    pub(crate) fn run(mut self, queue: Receiver<Export>, drain: Receiver<()>) {
        let mut drain = drain;
        let mut draining = false;
        // The idle hook runs once per quiet spell: `IDLE_AFTER` after the last work, with no output open.
        let mut worked = false;
        let mut idle_hook_due: Option<Instant> = None;
        loop {
            let timeout = match (self.open.deadline(&self.policy), idle_hook_due) {
                (Some(deadline), _) => deadline.saturating_duration_since(Instant::now()),
                (None, Some(due)) => due.saturating_duration_since(Instant::now()),
                (None, None) => Duration::from_secs(3600),
            };
            crossbeam_channel::select! {
                recv(queue) -> next => match next {
                    Ok(export) => {
                        worked = true;
                        idle_hook_due = None;
                        self.guarded(|w| w.take(export));
                    }
                    Err(_) => {
                        self.guarded(Self::seal);
                        return;
                    }
                },
                recv(drain) -> _ => {
                    draining = true;
                    drain = crossbeam_channel::never();
                }
                default(timeout) => {}
            }
            let now = Instant::now();
            if draining || self.open.is_due(&self.policy, now) {
                self.guarded(Self::seal);
            }
            if let (Some(hook), true) = (self.on_idle, self.open.is_empty()) {
                if worked {
                    worked = false;
                    idle_hook_due = Some(now + IDLE_AFTER);
                } else if idle_hook_due.is_some_and(|due| now >= due) {
                    idle_hook_due = None;
                    // Row builders keep the last batch's room for the next: give it back when quiet.
                    self.rows = self.contract.row_builder();
                    hook();
                }
            }
        }
    }

    /// Run `step`; if it panics (a bug: no input should make it), answer every request of the open output 503,
    /// start afresh and go on serving, as a restarted worker would.
    fn guarded(&mut self, step: impl FnOnce(&mut Self)) {
        if std::panic::catch_unwind(AssertUnwindSafe(|| step(self))).is_err() {
            let restarts = WORKER_RESTARTS.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::error!(restarts, "a batch worker panicked; its requests get 503 and it starts afresh");
            self.discard(Failure::new(Stopped::WorkerPanicked));
        }
    }

    /// Validate one request and append its rows.
    fn take(&mut self, export: Export) {
        let Export { body, format, reply, mut permit } = export;
        let body = match decode::to_protobuf(format, body) {
            Ok(body) => body,
            Err(e) => {
                let _ = reply.send(Err(ExportError::Invalid(e)));
                return;
            }
        };
        // What the request may become: its own share covers a few times its bytes; beyond that it needs budget,
        // and never more than the per-request limit.
        let covered = (body.len() as u64).saturating_mul(COVERED_EXPANSION);
        let room = self.limits.budget.available().saturating_add(covered);
        let limit = self.limits.max_request_rows.min(room);
        // Checked while its rows are built: an invalid request adds none (see `RowBuilder::append_request`).
        let (summary, bytes) = match self.rows.append_request(&body, limit) {
            Ok(appended) => appended,
            Err(DecodeError::RowsTooLarge { .. }) if limit < self.limits.max_request_rows => {
                // It would fit an idle collector: retryable.
                let _ = reply.send(Err(ExportError::Overloaded));
                return;
            }
            Err(e) => {
                let _ = reply.send(Err(ExportError::Invalid(e)));
                return;
            }
        };
        permit.grow(bytes.saturating_sub(covered));
        let accepted = Accepted::from(summary);
        if summary.accepted == 0 {
            let _ = reply.send(Ok(accepted));
            return;
        }
        self.requests.push(Pending::new(reply, accepted, permit));
        match self.open.add(&self.policy, body.len() as u64, Instant::now()) {
            // Rows far larger than their requests: cut the batch well before a column nears Arrow's 2 GiB.
            Step::Nothing if self.rows.bytes() >= MAX_BATCH_ROW_BYTES => {
                self.encode_batch();
            }
            Step::Nothing => {}
            Step::EncodeBatch => {
                self.encode_batch();
            }
            Step::SealFile => self.seal(),
        }
    }

    /// Move the rows built so far into the open output (opened on the first batch).
    fn encode_batch(&mut self) -> bool {
        if self.rows.rows() == 0 {
            return true;
        }
        match self.write_batch() {
            Ok(()) => {
                self.open.batch_encoded();
                true
            }
            Err(e) => {
                let reason = Failure::new(e);
                tracing::error!(error = %reason, "writing a record batch failed");
                self.discard(reason);
                false
            }
        }
    }

    fn write_batch(&mut self) -> Result<(), BatchError> {
        let batch = self.rows.finish().map_err(BatchError::Rows)?;
        let output = match self.output.take() {
            Some(open) => self.output.insert(open),
            None => self.output.insert(self.writer.open()?),
        };
        Ok(self.writer.write(output, &batch)?)
    }

    /// Finish the open output and hand it to the committer.
    fn seal(&mut self) {
        if self.open.is_empty() || !self.encode_batch() {
            return;
        }
        let Some(open) = self.output.take() else { return };
        match self.writer.seal(open) {
            Ok(output) => {
                let sealed = Sealed { output, requests: self.requests.take() };
                if let Err(unsent) = self.sealed.send(sealed) {
                    // The committer is gone (shutting down after a failure): nothing can be acknowledged.
                    unsent.0.requests.fail_all(Failure::new(Stopped::CommitterGone));
                }
                self.open.reset();
            }
            Err(e) => {
                let reason = Failure::new(e);
                tracing::error!(error = %reason, "finishing an output failed");
                self.discard(reason);
            }
        }
    }

    /// Drop the open output (aborting its upload) and rows; every request in them is answered retryable.
    fn discard(&mut self, reason: Failure) {
        self.requests.take().fail_all(reason);
        self.rows = self.contract.row_builder();
        self.output = None;
        self.open.reset();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::ack::Budget;

    static IDLE_CALLS: AtomicUsize = AtomicUsize::new(0);

    fn count_idle() {
        IDLE_CALLS.fetch_add(1, Ordering::SeqCst);
    }

    /// Outputs that count their rows.
    #[derive(Clone)]
    struct RowCount;

    impl Writer for RowCount {
        type Open = usize;
        type Output = usize;

        fn open(&self) -> Result<usize, WriteError> {
            Ok(0)
        }

        fn write(&self, open: &mut usize, batch: &arrow::array::RecordBatch) -> Result<(), WriteError> {
            *open += batch.num_rows();
            Ok(())
        }

        fn seal(&self, open: usize) -> Result<usize, WriteError> {
            Ok(open)
        }
    }

    #[test]
    fn a_worker_seals_by_age_then_calls_its_idle_hook_once() {
        let policy =
            FlushPolicy { target_file_bytes: 1 << 30, max_age: Duration::from_millis(20), batch_bytes: 1 << 20 };
        let (sealed_tx, mut sealed_rx) = tokio::sync::mpsc::unbounded_channel();
        let limits = RowLimits { max_request_rows: 1 << 30, budget: Budget::new(1 << 20) };
        let worker = Worker::new(policy, limits, Contract::spans_v1(), RowCount, sealed_tx, Some(count_idle));
        let (queue, jobs) = crossbeam_channel::bounded(4);
        let (drain, drain_rx) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::spawn(move || worker.run(jobs, drain_rx));

        let budget = Budget::new(1 << 20);
        let (reply, _answer) = tokio::sync::oneshot::channel();
        let body = crate::testing::one_span_request();
        let permit = budget.try_acquire(body.len() as u64).unwrap();
        queue.send(Export { body, format: Format::Protobuf, reply, permit }).unwrap();

        // The output is sealed by age and handed over with its one pending request.
        let sealed = sealed_rx.blocking_recv().expect("a sealed output");
        assert_eq!(sealed.requests.len(), 1);
        assert_eq!(sealed.output, 1, "one row");
        sealed.requests.succeed_all();
        // Then, once quiet, the idle hook runs (waited for, not timed), and only once.
        let deadline = Instant::now() + Duration::from_secs(60);
        while IDLE_CALLS.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(IDLE_CALLS.load(Ordering::SeqCst), 1);
        std::thread::sleep(IDLE_AFTER + Duration::from_millis(500));
        assert_eq!(IDLE_CALLS.load(Ordering::SeqCst), 1, "one call per quiet spell");

        drop((queue, drain));
        thread.join().unwrap();
    }

    /// Outputs whose first write panics (a stand-in for any bug on a worker).
    #[derive(Clone)]
    struct PanicsOnce(std::sync::Arc<std::sync::atomic::AtomicBool>);

    impl Writer for PanicsOnce {
        type Open = usize;
        type Output = usize;

        fn open(&self) -> Result<usize, WriteError> {
            Ok(0)
        }

        fn write(&self, open: &mut usize, batch: &arrow::array::RecordBatch) -> Result<(), WriteError> {
            if !self.0.swap(true, Ordering::SeqCst) {
                panic!("a bug");
            }
            *open += batch.num_rows();
            Ok(())
        }

        fn seal(&self, open: usize) -> Result<usize, WriteError> {
            Ok(open)
        }
    }

    #[test]
    fn a_worker_that_panics_answers_its_requests_503_and_serves_the_next() {
        let policy =
            FlushPolicy { target_file_bytes: 1 << 30, max_age: Duration::from_millis(20), batch_bytes: 1 << 20 };
        let (sealed_tx, mut sealed_rx) = tokio::sync::mpsc::unbounded_channel();
        let budget = Budget::new(1 << 20);
        let limits = RowLimits { max_request_rows: 1 << 30, budget: budget.clone() };
        let writer = PanicsOnce(Default::default());
        let worker = Worker::new(policy, limits, Contract::spans_v1(), writer, sealed_tx, None);
        let (queue, jobs) = crossbeam_channel::bounded(4);
        let (_drain, drain_rx) = crossbeam_channel::bounded::<()>(1);
        let thread = std::thread::spawn(move || worker.run(jobs, drain_rx));
        let send = |queue: &crossbeam_channel::Sender<Export>| {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let body = crate::testing::one_span_request();
            let permit = budget.try_acquire(body.len() as u64).unwrap();
            queue.send(Export { body, format: Format::Protobuf, reply, permit }).unwrap();
            answer
        };

        let first = send(&queue);
        match first.blocking_recv().expect("answered") {
            Err(ExportError::Unavailable(reason)) => assert!(reason.to_string().contains("worker"), "{reason}"),
            other => panic!("the request of a panicked worker must get 503: {other:?}"),
        }
        let _second = send(&queue);
        let sealed = sealed_rx.blocking_recv().expect("the worker serves on");
        assert_eq!((sealed.output, sealed.requests.len()), (1, 1));
        sealed.requests.succeed_all();
        assert!(WORKER_RESTARTS.load(Ordering::Relaxed) >= 1);
        drop(queue);
        thread.join().unwrap();
    }
}
