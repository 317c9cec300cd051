//! The path of one export request, from admission to acknowledgement, and the threads that carry it.
//!
//! ```text
//!  receiver ──submit──▶ [bounded queue] ──▶ batch::Worker × N (threads: validate, build columns, encode)
//!     ▲                                          │ SealedFile (its upload, stats, the replies it holds)
//!     │ reply                                     │ (bytes stream to the store as they are written)
//!     │                                           ▼
//!     └──────────────── committer (tokio task: await the sealed files' uploads, one Delta commit, then reply)
//! ```
//!
//! With the Zerobus sink ([`Sink::Zerobus`]) workers seal protobuf rows instead of files, and the committer
//! queues them on the Zerobus stream and replies once Zerobus acknowledges them as durable.
//!
//! What an acknowledgement means: a request is answered `Ok` only after the Delta commit that adds the file
//! holding all of its rows succeeded (Zerobus sink: after Zerobus acknowledged all of its rows as durable). Every
//! failure after admission is answered [`ExportError::Unavailable`] (retryable); nothing accepted is silently
//! dropped. Admission is bounded twice: by bytes accepted but not
//! yet acknowledged ([`Budget`]) and by queue depth; beyond either, [`Submitter::submit`] refuses at once
//! with [`ExportError::Overloaded`] before any decoding.
//!
//! Shutdown: [`Drain::now`] makes every worker seal at once instead of at the flush interval; once the last
//! [`Submitter`] is gone the workers seal what is left and stop, the committer commits and answers everything, and
//! [`Pipeline::join`] returns.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::TrySendError;
use tokio::sync::{mpsc, oneshot};

use crate::batch::policy::FlushPolicy;
use crate::batch::{Destination, Output, Worker};
use crate::commit::{Table, UploadedFile};
use crate::databricks::zerobus::ZerobusSink;
use crate::decode::{DecodeError, Format, Summary};
use crate::encode::{Codec, FileStats};
use crate::store::{FinishedUpload, UploadConfig};

/// Settings of the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub workers: usize,
    pub codec: Codec,
    pub flush: FlushPolicy,
    pub upload: UploadConfig,
    /// Bytes of request bodies accepted but not yet acknowledged.
    pub max_inflight_bytes: u64,
    /// Requests waiting for a worker.
    pub queue_depth: usize,
    /// Called on a worker thread once it has had nothing to do for a while after sealing a file: lets the binary
    /// hand that thread's freed memory back to the OS (the library does not own the allocator).
    pub on_idle: Option<fn()>,
}

/// A successful export: how many spans were refused alone (partial success).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    pub rejected: u64,
    pub message: Option<String>,
}

impl From<Summary> for Accepted {
    fn from(s: Summary) -> Self {
        Accepted {
            rejected: s.rejected,
            message: s.first_rejection.map(|r| format!("{} span(s) rejected: {r}", s.rejected)),
        }
    }
}

/// Why an export was not acknowledged.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExportError {
    /// The body is not a valid request: the client must not retry.
    #[error("invalid ExportTraceServiceRequest: {0}")]
    Invalid(DecodeError),
    /// Too much accepted data is waiting for its commit: retry later.
    #[error("the collector is at capacity; retry later")]
    Overloaded,
    /// Accepted, but storing failed: retry later.
    #[error("spans could not be stored: {0}")]
    Unavailable(String),
}

pub type Reply = oneshot::Sender<Result<Accepted, ExportError>>;

/// An admitted request on its way to a worker.
pub struct Export {
    pub body: Bytes,
    pub format: Format,
    pub reply: Reply,
    pub permit: Permit,
}

/// A request whose rows are in an open or sealed file, waiting for its commit.
pub struct Pending {
    pub reply: Reply,
    pub accepted: Accepted,
    /// Released when the request is answered.
    pub _permit: Permit,
}

impl Pending {
    pub fn fail(self, reason: &str) {
        let _ = self.reply.send(Err(ExportError::Unavailable(reason.to_owned())));
    }

    fn succeed(self) {
        let _ = self.reply.send(Ok(self.accepted));
    }
}

/// A worker's finished output and the requests it answers.
pub struct Sealed {
    pub output: SealedOutput,
    pub pending: Vec<Pending>,
}

pub enum SealedOutput {
    /// A data file (its upload perhaps still completing).
    File { upload: FinishedUpload, stats: FileStats },
    /// Encoded records (Zerobus sink).
    Rows(Vec<Vec<u8>>),
}

/// Where acknowledged spans go.
pub enum Sink {
    /// Data files committed to a Delta table.
    Delta(Table),
    /// Records streamed through Databricks Zerobus Ingest.
    Zerobus(Box<ZerobusSink>),
}

/// Byte budget for accepted-but-unacknowledged requests.
#[derive(Clone)]
pub struct Budget {
    used: Arc<AtomicU64>,
    limit: u64,
}

/// A share of the [`Budget`], given back on drop.
pub struct Permit {
    used: Arc<AtomicU64>,
    bytes: u64,
}

impl Budget {
    pub fn new(limit: u64) -> Self {
        Budget { used: Arc::new(AtomicU64::new(0)), limit }
    }

    pub fn try_acquire(&self, bytes: u64) -> Option<Permit> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .ok()
            .map(|_| Permit { used: self.used.clone(), bytes })
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// The receiver's handle: admits requests into the pipeline. The pipeline drains and stops once every clone
/// is dropped.
#[derive(Clone)]
pub struct Submitter {
    queue: crossbeam_channel::Sender<Export>,
    budget: Budget,
}

impl Submitter {
    /// Admit `body`, or refuse at once when the pipeline is full. The receiver resolves when it is answered.
    pub fn submit(
        &self,
        body: Bytes,
        format: Format,
    ) -> Result<oneshot::Receiver<Result<Accepted, ExportError>>, ExportError> {
        let permit = self.budget.try_acquire(body.len() as u64).ok_or(ExportError::Overloaded)?;
        let (reply, answer) = oneshot::channel();
        match self.queue.try_send(Export { body, format, reply, permit }) {
            Ok(()) => Ok(answer),
            Err(TrySendError::Full(_)) => Err(ExportError::Overloaded),
            Err(TrySendError::Disconnected(_)) => {
                Err(ExportError::Unavailable("the collector is shutting down".into()))
            }
        }
    }
}

/// Shutdown's first step: dropping it tells every worker to stop waiting for a full or aged file.
pub struct Drain {
    _workers: Vec<crossbeam_channel::Sender<()>>,
}

impl Drain {
    /// Seal and commit everything accepted now, instead of at the flush interval.
    pub fn now(self) {}
}

/// The running workers and committer.
pub struct Pipeline {
    workers: Vec<JoinHandle<()>>,
    committer: tokio::task::JoinHandle<()>,
}

impl Pipeline {
    /// Start `config.workers` worker threads and the committer task (on the current tokio runtime).
    pub fn start(sink: Sink, config: &PipelineConfig) -> std::io::Result<(Submitter, Drain, Pipeline)> {
        let (queue, jobs) = crossbeam_channel::bounded(config.queue_depth.max(1));
        let (sealed_tx, sealed_rx) = mpsc::unbounded_channel();
        let mut workers = Vec::new();
        let mut drains = Vec::new();
        let output = match &sink {
            Sink::Delta(table) => Output::Files {
                destination: Destination {
                    store: table.store().clone(),
                    runtime: tokio::runtime::Handle::current(),
                    upload: config.upload,
                },
                codec: config.codec,
            },
            Sink::Zerobus(zerobus) => Output::Rows(zerobus.encoder()),
        };
        for i in 0..config.workers.max(1) {
            let worker = Worker::new(config.flush, output.clone(), sealed_tx.clone(), config.on_idle);
            let jobs = jobs.clone();
            let (drain_tx, drain_rx) = crossbeam_channel::bounded(0);
            drains.push(drain_tx);
            workers.push(
                std::thread::Builder::new()
                    .name(format!("otel-delta-batch-{i}"))
                    .spawn(move || worker.run(jobs, drain_rx))?,
            );
        }
        drop(sealed_tx);
        let committer = match sink {
            Sink::Delta(table) => tokio::spawn(commit_loop(sealed_rx, table)),
            Sink::Zerobus(zerobus) => tokio::spawn(ingest_loop(sealed_rx, *zerobus)),
        };
        let submitter = Submitter { queue, budget: Budget::new(config.max_inflight_bytes) };
        Ok((submitter, Drain { _workers: drains }, Pipeline { workers, committer }))
    }

    /// Wait until every admitted request is answered: call after the last [`Submitter`] is dropped.
    pub async fn join(self) {
        let workers = self.workers;
        let _ = tokio::task::spawn_blocking(move || {
            for w in workers {
                let _ = w.join();
            }
        })
        .await;
        let _ = self.committer.await;
    }
}

/// Take every sealed file that is ready, wait for their uploads to complete, commit them in one Delta version,
/// answer their requests. Files sealed meanwhile wait for the next round: one commit per round, not per request.
async fn commit_loop(mut sealed: mpsc::UnboundedReceiver<Sealed>, mut table: Table) {
    while let Some(first) = sealed.recv().await {
        let mut round = vec![first];
        while let Ok(more) = sealed.try_recv() {
            round.push(more);
        }
        let mut uploads = Vec::new();
        let mut files_pending = Vec::new();
        for Sealed { output, pending } in round {
            let SealedOutput::File { upload, stats } = output else {
                pending.into_iter().for_each(|p| p.fail("internal error: rows sealed for a Delta table"));
                continue;
            };
            let path = upload.path.clone();
            uploads.push(upload.wait());
            files_pending.push((path, stats, pending));
        }
        let results = futures::future::join_all(uploads).await;
        let mut files = Vec::new();
        let mut waiting = Vec::new();
        for ((path, stats, pending), result) in files_pending.into_iter().zip(results) {
            match result {
                Ok(size) => {
                    files.push(UploadedFile { path, size, stats });
                    waiting.extend(pending);
                }
                Err(e) => {
                    tracing::error!(error = %e, "data file upload failed");
                    let reason = e.to_string();
                    pending.into_iter().for_each(|p| p.fail(&reason));
                }
            }
        }
        if files.is_empty() {
            continue;
        }
        match table.append(&files).await {
            Ok(version) => {
                let rows: u64 = files.iter().map(|f| f.stats.num_records).sum();
                tracing::debug!(version, files = files.len(), rows, requests = waiting.len(), "committed");
                waiting.into_iter().for_each(Pending::succeed);
                table.checkpoint_if_due(version);
            }
            Err(e) => {
                tracing::error!(error = %e, "Delta commit failed; answering 503");
                let reason = e.to_string();
                waiting.into_iter().for_each(|p| p.fail(&reason));
            }
        }
    }
    table.finish().await;
}

/// Queue each sealed batch's rows on the Zerobus stream (in sealing order), and answer its requests once Zerobus
/// acknowledges them durable; at the end, wait for every acknowledgement, then close the stream.
async fn ingest_loop(mut sealed: mpsc::UnboundedReceiver<Sealed>, mut sink: ZerobusSink) {
    let mut acks = tokio::task::JoinSet::new();
    while let Some(Sealed { output, pending }) = sealed.recv().await {
        let SealedOutput::Rows(rows) = output else {
            pending.into_iter().for_each(|p| p.fail("internal error: a file sealed for the Zerobus sink"));
            continue;
        };
        match sink.send(rows).await {
            Ok(durable) => {
                acks.spawn(async move {
                    match durable.await {
                        Ok(()) => pending.into_iter().for_each(Pending::succeed),
                        Err(e) => {
                            tracing::error!(error = %e, "Zerobus did not acknowledge; answering 503");
                            let reason = e.to_string();
                            pending.into_iter().for_each(|p| p.fail(&reason));
                        }
                    }
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "queuing rows on Zerobus failed; answering 503");
                let reason = e.to_string();
                pending.into_iter().for_each(|p| p.fail(&reason));
            }
        }
        // Reap answered batches as we go.
        while acks.try_join_next().is_some() {}
    }
    while acks.join_next().await.is_some() {}
    sink.close().await;
}

/// How long clients are asked to wait before retrying a refused or failed export.
pub fn retry_after(flush_interval: Duration) -> Duration {
    Duration::from_secs(flush_interval.as_secs_f64().ceil().max(1.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_refuses_beyond_its_limit_and_returns_on_drop() {
        let budget = Budget::new(100);
        let a = budget.try_acquire(60).unwrap();
        assert!(budget.try_acquire(41).is_none());
        let b = budget.try_acquire(40).unwrap();
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        drop(b);
        assert_eq!(budget.used(), 0);
        assert!(budget.try_acquire(u64::MAX).is_none());
    }
}
