//! batch: admitted requests → Arrow record batches (the table contract's row builder) → the sink's output (a
//! Parquet file streamed to the store, or Zerobus records), on worker threads.
//!
//! Contract: a worker takes whole requests from the shared queue, checks each completely as its rows are built
//! (a request found invalid half-way adds no row), and puts all of a request's rows in one output. A sealed
//! output travels to the sink's committer with exactly the requests whose rows it holds ([`Requests`]); a request
//! is answered by the sink once that output is stored, or here at once if it is invalid or holds no storable
//! span. If writing fails, every request of the open output is answered "unavailable" (retryable) and the worker
//! starts afresh: nothing is acknowledged that is not in the output. A row the sink's writer leaves out (one its
//! destination can never take, see [`Omitted`]) is counted as rejected in its own request's answer (partial
//! success); the rest of the output is unaffected.
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
use crate::sink::{Omitted, Sealed, WriteError, Writer};
use crate::table::{Contract, RowBuilder};
use policy::{OpenFile, Step};

pub(crate) use policy::{FlushPolicy, MAX_BATCH_BYTES, MAX_BATCH_ROW_BYTES};

/// Rows up to this many times a request's own bytes are covered by the budget share it was admitted with; what a
/// request becomes beyond it (resource and scope values repeated on many spans) is charged to the budget too.
const COVERED_EXPANSION: u64 = 4;

/// Worker panics caught since start (each answered its requests 503 and restarted the worker afresh).
static WORKER_RESTARTS: AtomicU64 = AtomicU64::new(0);

/// Worker panics caught since the process started (every collector in it).
pub(crate) fn worker_restarts() -> u64 {
    WORKER_RESTARTS.load(Ordering::Relaxed)
}

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
    #[error("row {row} of a record batch belongs to no request (a bug)")]
    UnownedRow { row: usize },
}

/// Which request each row of the record batch being built came from. A request's rows are appended together and
/// in order, and its [`Pending`] is pushed with them, so the row counts of the requests pushed since the last
/// record batch map a row index to its request: they are the last [`len`](Self::len) of the worker's requests.
#[derive(Debug, Default)]
struct RowOwners {
    /// Per request, in order: the end (exclusive) of its rows in the record batch.
    ends: Vec<usize>,
}

impl RowOwners {
    /// The next request added `rows` rows.
    fn push(&mut self, rows: usize) {
        let start = self.ends.last().copied().unwrap_or(0);
        self.ends.push(start + rows);
    }

    /// The position, among these requests, of the one whose rows include `row`.
    fn owner(&self, row: usize) -> Option<usize> {
        let position = self.ends.partition_point(|&end| end <= row);
        (position < self.ends.len()).then_some(position)
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    /// A record batch was written (or dropped): the next one starts with the next request.
    fn clear(&mut self) {
        self.ends.clear();
    }
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
    /// The requests of `rows`, for the rows the writer leaves out.
    owners: RowOwners,
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
            owners: RowOwners::default(),
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
        let body = match decode::to_protobuf(self.contract.signal, format, body) {
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
        let rows_before = self.rows.rows();
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
        if summary.accepted == 0 {
            let _ = reply.send(Ok(Accepted::decoded(self.contract.signal, summary)));
            return;
        }
        self.requests.push(Pending::new(reply, self.contract.signal, &summary, permit));
        self.owners.push(self.rows.rows().saturating_sub(rows_before));
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
            self.owners.clear();
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
        let omitted = self.writer.write(output, &batch)?;
        let counted = self.reject(omitted);
        self.owners.clear();
        counted
    }

    /// Count each row the writer left out as rejected in the answer of the request it came from (one call per
    /// request, naming its first reason). A row that maps to no request is a bug: the batch fails (503), since
    /// that row would otherwise be dropped unanswered for.
    fn reject(&mut self, omitted: Omitted) -> Result<(), BatchError> {
        if omitted.is_empty() {
            return Ok(());
        }
        let first = self.requests.len().checked_sub(self.owners.len());
        // (request index, rows left out, the first one's reason), consecutive rows of one request merged.
        let mut counts: Vec<(usize, u64, String)> = Vec::new();
        for (row, why) in omitted {
            let request = first
                .zip(self.owners.owner(row))
                .map(|(first, position)| first + position)
                .filter(|&request| request < self.requests.len())
                .ok_or(BatchError::UnownedRow { row })?;
            match counts.last_mut() {
                Some((last, n, _)) if *last == request => *n += 1,
                _ => counts.push((request, 1, why.to_string())),
            }
        }
        for (request, n, reason) in counts {
            // In range: checked above.
            if let Some(pending) = self.requests.get_mut(request) {
                tracing::debug!(records = n, reason, "records left out of the output: answered rejected");
                pending.reject(n, reason);
            }
        }
        Ok(())
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
        self.owners.clear();
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

    #[test]
    fn a_worker_seals_by_age_then_calls_its_idle_hook_once() {
        let policy =
            FlushPolicy { target_file_bytes: 1 << 30, max_age: Duration::from_millis(20), batch_bytes: 1 << 20 };
        let (sealed_tx, mut sealed_rx) = tokio::sync::mpsc::unbounded_channel();
        let limits = RowLimits { max_request_rows: 1 << 30, budget: Budget::new(1 << 20) };
        let worker =
            Worker::new(policy, limits, Contract::spans_v1(), LeavesOut(Vec::new()), sealed_tx, Some(count_idle));
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

        fn write(&self, open: &mut usize, batch: &arrow::array::RecordBatch) -> Result<Omitted, WriteError> {
            if !self.0.swap(true, Ordering::SeqCst) {
                panic!("a bug");
            }
            *open += batch.num_rows();
            Ok(Omitted::default())
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

    #[test]
    fn row_owners_map_rows_to_the_requests_that_added_them() {
        let mut owners = RowOwners::default();
        assert_eq!(owners.owner(0), None);
        for rows in [2, 1, 3] {
            owners.push(rows);
        }
        let mapped: Vec<_> = (0..7).map(|row| owners.owner(row)).collect();
        assert_eq!(mapped, [Some(0), Some(0), Some(1), Some(2), Some(2), Some(2), None]);
        owners.clear();
        assert_eq!((owners.len(), owners.owner(0)), (0, None));
    }

    /// Outputs that count the rows they keep, leaving out the rows at these indexes of every record batch.
    #[derive(Clone)]
    struct LeavesOut(Vec<usize>);

    impl Writer for LeavesOut {
        type Open = usize;
        type Output = usize;

        fn open(&self) -> Result<usize, WriteError> {
            Ok(0)
        }

        fn write(&self, open: &mut usize, batch: &arrow::array::RecordBatch) -> Result<Omitted, WriteError> {
            let mut omitted = Omitted::default();
            for row in 0..batch.num_rows() {
                if self.0.contains(&row) {
                    omitted.push(row, crate::sink::RowRefused::RecordTooLarge { bytes: 100 + row, limit: 100 });
                } else {
                    *open += 1;
                }
            }
            Ok(omitted)
        }

        fn seal(&self, open: usize) -> Result<usize, WriteError> {
            Ok(open)
        }
    }

    /// A worker driven step by step (no thread, no timing: `take`, `encode_batch` and `seal` called by hand),
    /// whose writer leaves out the rows at `leave_out`; and where its sealed outputs go.
    fn stepped(leave_out: &[usize]) -> (Worker<LeavesOut>, tokio::sync::mpsc::UnboundedReceiver<Sealed<usize>>) {
        let policy =
            FlushPolicy { target_file_bytes: 1 << 30, max_age: Duration::from_secs(3600), batch_bytes: 1 << 30 };
        let (sealed_tx, sealed_rx) = tokio::sync::mpsc::unbounded_channel();
        let limits = RowLimits { max_request_rows: 1 << 30, budget: Budget::new(1 << 20) };
        let writer = LeavesOut(leave_out.to_vec());
        (Worker::new(policy, limits, Contract::spans_v1(), writer, sealed_tx, None), sealed_rx)
    }

    type Answer = tokio::sync::oneshot::Receiver<Result<Accepted, ExportError>>;

    /// Give `worker` a request of `spans` spans (ids from `seed`).
    fn take_spans(worker: &mut Worker<LeavesOut>, seed: u8, spans: u8) -> Answer {
        let spans: Vec<_> = (0..spans).map(|i| crate::testing::span(&[seed; 16], &[i + 1; 8])).collect();
        let body = Bytes::from(crate::testing::request_of_spans(&spans));
        let (reply, answer) = tokio::sync::oneshot::channel();
        let permit = worker.limits.budget.try_acquire(body.len() as u64).unwrap();
        worker.take(Export { body, format: Format::Protobuf, reply, permit });
        answer
    }

    fn rejected(answer: &mut Answer) -> Accepted {
        match answer.try_recv() {
            Ok(Ok(accepted)) => accepted,
            other => panic!("not answered OK: {other:?}"),
        }
    }

    #[test]
    fn a_left_out_row_is_rejected_in_its_own_request_only() {
        // Rows 0..2 are the first request's, 2..5 the second's: row 3 is the second's.
        let (mut worker, mut sealed) = stepped(&[3]);
        let mut first = take_spans(&mut worker, 1, 2);
        let mut second = take_spans(&mut worker, 2, 3);
        worker.seal();
        let out = sealed.try_recv().expect("sealed");
        assert_eq!((out.output, out.requests.len()), (4, 2), "the left-out row is not in the output");
        out.requests.succeed_all();
        assert_eq!(
            rejected(&mut first),
            Accepted { records: 2, ..Accepted::default() },
            "the first request is untouched"
        );
        let second = rejected(&mut second);
        assert_eq!((second.records, second.rejected), (2, 1));
        let message = second.message.unwrap_or_default();
        assert!(
            message.starts_with("1 span(s) rejected: a span's Zerobus record is 103 bytes, above the 100"),
            "{message}"
        );
    }

    #[test]
    fn rows_left_out_of_later_record_batches_map_to_those_batches_requests() {
        // Row 0 of every record batch is left out. Batch 1: requests A (1 span) and B (2); batch 2: C (2), D (1),
        // all in one output.
        let (mut worker, mut sealed) = stepped(&[0]);
        let mut a = take_spans(&mut worker, 1, 1);
        let mut b = take_spans(&mut worker, 2, 2);
        assert!(worker.encode_batch());
        let mut c = take_spans(&mut worker, 3, 2);
        let mut d = take_spans(&mut worker, 4, 1);
        worker.seal();
        let out = sealed.try_recv().expect("one output");
        assert_eq!((out.output, out.requests.len()), (4, 4));
        out.requests.succeed_all();
        let counts: Vec<u64> = [&mut a, &mut b, &mut c, &mut d].into_iter().map(|x| rejected(x).rejected).collect();
        assert_eq!(counts, [1, 0, 1, 0]);
        // A request whose every span is left out is still answered OK, all of them rejected; the next output's
        // rows map from its own first request.
        let (mut worker, mut sealed) = stepped(&[0, 1]);
        let mut all = take_spans(&mut worker, 5, 2);
        worker.seal();
        let mut next = take_spans(&mut worker, 6, 3);
        worker.seal();
        for expected in [0, 1] {
            let out = sealed.try_recv().expect("an output");
            assert_eq!(out.output, expected);
            out.requests.succeed_all();
        }
        assert_eq!(rejected(&mut all).rejected, 2);
        assert_eq!(rejected(&mut next).rejected, 2);
    }
}
