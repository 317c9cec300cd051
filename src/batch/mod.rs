//! batch: decoded requests → Arrow record batches → sealed Parquet files (or protobuf rows for the Zerobus sink),
//! on worker threads.
//!
//! Contract: a worker takes whole requests from the shared queue, checks each completely as its rows are built
//! (a request found invalid half-way adds no row), and puts all of a request's rows in one file. A sealed file
//! travels to the committer with the replies of exactly the requests whose rows it holds; a request is answered
//! by the committer once that file is committed, or here at once if it is invalid or holds no storable span. If
//! encoding fails, every request of the open file is answered "unavailable" (retryable) and the worker starts
//! afresh: nothing is acknowledged that is not in the file.
//!
//! A file's bytes stream to the store while it is written (see [`crate::store::Upload`]): row groups go up as
//! they are cut, and the worker waits when the store is behind, so memory stays bounded.

pub mod columns;
pub mod policy;
pub mod schema;
pub mod values;

use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use tokio::sync::mpsc::UnboundedSender;

use crate::decode;
use arrow::array::RecordBatch;
use parquet::errors::ParquetError;

use crate::encode::rows::RowEncoder;
use crate::encode::{Codec, FileStats, ParquetFile};
use crate::pipeline::{Accepted, Export, ExportError, Pending, Sealed, SealedOutput};
use crate::store::{FinishedUpload, Store, Upload, UploadConfig};
use columns::SpanColumns;
use policy::{FlushPolicy, OpenFile, Step};

/// Where a worker's files go: the table's store, reached through the runtime that runs the uploads.
#[derive(Clone)]
pub struct Destination {
    pub store: Store,
    pub runtime: tokio::runtime::Handle,
    pub upload: UploadConfig,
}

impl Destination {
    /// Start a new data file with a unique name (a UUID: many writers share one table).
    pub fn create_file(&self, codec: Codec) -> Result<StreamedFile, ParquetError> {
        let file = ParquetFile::new(codec)?;
        let path = format!("part-00000-{}-c000.{}", uuid::Uuid::new_v4(), codec.file_suffix());
        Ok(StreamedFile { file, upload: self.store.begin(&self.runtime, path, self.upload) })
    }
}

/// A Parquet file being written and streamed to the store at once: how every data file is made (by the workers
/// and by compaction). Dropped unfinished, its upload is aborted.
pub struct StreamedFile {
    file: ParquetFile,
    upload: Upload,
}

impl StreamedFile {
    /// Append a batch; the bytes the writer has produced so far go to the store (blocks while it is behind).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ParquetError> {
        self.file.write(batch)?;
        if let Some(written) = self.file.take_written(1) {
            self.upload.send(written);
        }
        Ok(())
    }

    /// Write the footer and hand the last bytes over: the upload (to await) and the file's statistics.
    pub fn finish(self) -> Result<(FinishedUpload, FileStats), ParquetError> {
        let done = self.file.finish()?;
        Ok((self.upload.finish(done.tail), done.stats))
    }
}

/// What a worker makes of its record batches: Parquet data files streamed to the table's store, or one protobuf
/// record per row (the Zerobus sink).
#[derive(Clone)]
pub enum Output {
    Files { destination: Destination, codec: Codec },
    Rows(std::sync::Arc<RowEncoder>),
}

/// The output being filled.
enum Open {
    File(Box<StreamedFile>),
    Rows(Vec<Vec<u8>>),
}

/// One batching worker: owns its column builders and its open output.
pub struct Worker {
    policy: FlushPolicy,
    output: Output,
    columns: SpanColumns,
    file: Option<Open>,
    open: OpenFile,
    pending: Vec<Pending>,
    sealed: UnboundedSender<Sealed>,
    on_idle: Option<fn()>,
}

/// How long a worker waits with nothing open after a seal before calling its idle hook.
const IDLE_AFTER: Duration = Duration::from_secs(2);

impl Worker {
    pub fn new(policy: FlushPolicy, output: Output, sealed: UnboundedSender<Sealed>, on_idle: Option<fn()>) -> Self {
        Worker {
            policy,
            output,
            columns: SpanColumns::new(),
            file: None,
            open: OpenFile::default(),
            pending: Vec::new(),
            sealed,
            on_idle,
        }
    }

    /// Serve the queue until every sender is gone, then seal what is open and return. Once `drain` closes
    /// (shutdown), nothing waits any more: the open file is sealed at once, and so is every later request's.
    pub fn run(mut self, queue: Receiver<Export>, drain: Receiver<()>) {
        let mut drain = drain;
        let mut draining = false;
        // The idle hook runs once per quiet spell: `IDLE_AFTER` after the last work, with no file open.
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
                        self.take(export);
                    }
                    Err(_) => {
                        self.seal();
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
                self.seal();
            }
            if let (Some(hook), true) = (self.on_idle, self.open.is_empty()) {
                if worked {
                    worked = false;
                    idle_hook_due = Some(now + IDLE_AFTER);
                } else if idle_hook_due.is_some_and(|due| now >= due) {
                    idle_hook_due = None;
                    // Builders keep the last batch's room for the next (see `columns`): give it back when quiet.
                    self.columns = SpanColumns::new();
                    hook();
                }
            }
        }
    }

    /// Validate one request and append its rows.
    fn take(&mut self, export: Export) {
        let Export { body, format, reply, permit } = export;
        let body = match decode::to_protobuf(format, body) {
            Ok(body) => body,
            Err(e) => {
                let _ = reply.send(Err(ExportError::Invalid(e)));
                return;
            }
        };
        // Checked while its rows are built: an invalid request adds none (see `SpanColumns::append_request`).
        let summary = match self.columns.append_request(&body) {
            Ok(summary) => summary,
            Err(e) => {
                let _ = reply.send(Err(ExportError::Invalid(e)));
                return;
            }
        };
        let accepted = Accepted::from(summary);
        if summary.accepted == 0 {
            let _ = reply.send(Ok(accepted));
            return;
        }
        self.pending.push(Pending { reply, accepted, _permit: permit });
        match self.open.add(&self.policy, body.len() as u64, Instant::now()) {
            Step::Nothing => {}
            Step::EncodeBatch => {
                self.encode_batch();
            }
            Step::SealFile => self.seal(),
        }
    }

    /// Move the rows built so far into the open output.
    fn encode_batch(&mut self) -> bool {
        if self.columns.rows() == 0 {
            return true;
        }
        let result = self.columns.finish().map_err(|e| e.to_string()).and_then(|batch| {
            let open = match self.file.take() {
                Some(open) => self.file.insert(open),
                None => self.file.insert(match &self.output {
                    Output::Files { destination, codec } => {
                        Open::File(Box::new(destination.create_file(*codec).map_err(|e| e.to_string())?))
                    }
                    Output::Rows(_) => Open::Rows(Vec::new()),
                }),
            };
            match (open, &self.output) {
                (Open::File(file), _) => file.write(&batch).map_err(|e| e.to_string()),
                (Open::Rows(rows), Output::Rows(encoder)) => {
                    encoder.encode(&batch, rows);
                    Ok(())
                }
                (Open::Rows(_), Output::Files { .. }) => Err("rows opened for a file output".to_owned()),
            }
        });
        match result {
            Ok(()) => {
                self.open.batch_encoded();
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "encoding a record batch failed");
                self.discard(&format!("encoding Parquet failed: {e}"));
                false
            }
        }
    }

    /// Finish the open output and hand it to the committer.
    fn seal(&mut self) {
        if self.open.is_empty() || !self.encode_batch() {
            return;
        }
        let finished = match self.file.take() {
            None => return,
            Some(Open::Rows(rows)) => Ok(SealedOutput::Rows(rows)),
            Some(Open::File(file)) => file.finish().map(|(upload, stats)| SealedOutput::File { upload, stats }),
        };
        match finished {
            Ok(output) => {
                let sealed = Sealed { output, pending: std::mem::take(&mut self.pending) };
                if let Err(unsent) = self.sealed.send(sealed) {
                    // The committer is gone (shutting down after a failure): nothing can be acknowledged.
                    for p in unsent.0.pending {
                        p.fail("the committer stopped");
                    }
                }
                self.open.reset();
            }
            Err(e) => {
                tracing::error!(error = %e, "finishing a Parquet file failed");
                self.discard(&format!("encoding Parquet failed: {e}"));
            }
        }
    }

    /// Drop the open file (aborting its upload) and builders; every request in them is answered retryable.
    fn discard(&mut self, reason: &str) {
        for p in self.pending.drain(..) {
            p.fail(reason);
        }
        self.columns = SpanColumns::new();
        self.file = None;
        self.open.reset();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::pipeline::Budget;

    static IDLE_CALLS: AtomicUsize = AtomicUsize::new(0);

    fn count_idle() {
        IDLE_CALLS.fetch_add(1, Ordering::SeqCst);
    }

    /// A one-span request, hand-encoded.
    fn one_span() -> bytes::Bytes {
        let mut span = crate::decode::wire::Writer::new();
        span.bytes_field(1, &[1; 16]);
        span.bytes_field(2, &[2; 8]);
        let mut scope_spans = crate::decode::wire::Writer::new();
        scope_spans.bytes_field(2, &span.buf);
        let mut resource_spans = crate::decode::wire::Writer::new();
        resource_spans.bytes_field(2, &scope_spans.buf);
        let mut request = crate::decode::wire::Writer::new();
        request.bytes_field(1, &resource_spans.buf);
        bytes::Bytes::from(request.buf)
    }

    #[test]
    fn a_worker_seals_by_age_then_calls_its_idle_hook_once() {
        let policy =
            FlushPolicy { target_file_bytes: 1 << 30, max_age: Duration::from_millis(20), batch_bytes: 1 << 20 };
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let memory = std::sync::Arc::new(object_store::memory::InMemory::new());
        let store = Store::new(memory, &url::Url::parse("memory:///t/").unwrap());
        let destination = Destination { store, runtime: runtime.handle().clone(), upload: UploadConfig::default() };
        let (sealed_tx, mut sealed_rx) = tokio::sync::mpsc::unbounded_channel();
        let output = Output::Files { destination, codec: Codec::default() };
        let worker = Worker::new(policy, output, sealed_tx, Some(count_idle));
        let (queue, jobs) = crossbeam_channel::bounded(4);
        let (drain, drain_rx) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::spawn(move || worker.run(jobs, drain_rx));

        let budget = Budget::new(1 << 20);
        let (reply, _answer) = tokio::sync::oneshot::channel();
        let body = one_span();
        let permit = budget.try_acquire(body.len() as u64).unwrap();
        queue.send(Export { body, format: crate::decode::Format::Protobuf, reply, permit }).unwrap();

        // The file is sealed by age and handed over with its one pending request.
        let sealed = sealed_rx.blocking_recv().expect("a sealed file");
        assert_eq!(sealed.pending.len(), 1);
        let SealedOutput::File { upload, stats } = sealed.output else { panic!("a file output makes files") };
        assert_eq!(stats.num_records, 1);
        assert!(runtime.block_on(upload.wait()).unwrap() > 0, "the file reached the store");
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
}
