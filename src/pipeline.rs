//! The path of one export request, from admission to acknowledgement, and the threads that carry it.
//!
//! ```text
//!  receiver ──submit──▶ [bounded queue] ──▶ batch::Worker × N (threads: build rows, write the sink's output)
//!     ▲                                          │ Sealed (the output, and the Requests whose rows it holds)
//!     │ reply                                     │ (a file's bytes stream to the store as they are written)
//!     │                                           ▼
//!     └──────────────── committer (tokio task, Sink::deliver: store the outputs, then settle their Requests)
//! ```
//!
//! What workers make of the rows and how the committer stores them is the sink's ([`crate::sink`]): Parquet files
//! and Delta commits, or Zerobus records and their durable acks. The pipeline is generic over it.
//!
//! What an acknowledgement means: a request is answered `Ok` only after the Delta commit that adds the file
//! holding all of its rows succeeded (Zerobus sink: after Zerobus acknowledged all of its rows as durable). Every
//! failure after admission is answered [`ExportError::Unavailable`] (retryable); nothing accepted is silently
//! dropped. Admission is bounded twice: by bytes accepted but not yet acknowledged ([`Budget`]) and by queue
//! depth; beyond either, [`Submitter::submit`] refuses at once with [`ExportError::Overloaded`] before any
//! decoding.
//!
//! Shutdown: [`Drain::now`] makes every worker seal at once instead of at the flush interval; once the last
//! [`Submitter`] is gone the workers seal what is left and stop, the committer commits and answers everything, and
//! [`Pipeline::join`] returns.

use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::TrySendError;
use tokio::sync::{mpsc, oneshot};

use crate::ack::{Accepted, Budget, ExportError, Failure, Stopped};
use crate::batch::{Export, FlushPolicy, Worker};
use crate::decode::Format;
use crate::encode::Codec;
use crate::sink::{Sink, Target};
use crate::store::UploadConfig;

/// Settings of the pipeline.
#[derive(Debug, Clone)]
pub(crate) struct PipelineConfig {
    pub(crate) workers: usize,
    pub(crate) codec: Codec,
    pub(crate) flush: FlushPolicy,
    pub(crate) upload: UploadConfig,
    /// Bytes of request bodies accepted but not yet acknowledged.
    pub(crate) max_inflight_bytes: u64,
    /// Requests waiting for a worker.
    pub(crate) queue_depth: usize,
    /// Called on a worker thread once it has had nothing to do for a while after sealing an output: lets the
    /// binary hand that thread's freed memory back to the OS (the library does not own the allocator).
    pub(crate) on_idle: Option<fn()>,
}

/// The receiver's handle: admits requests into the pipeline. The pipeline drains and stops once every clone
/// is dropped.
#[derive(Clone)]
pub(crate) struct Submitter {
    queue: crossbeam_channel::Sender<Export>,
    budget: Budget,
}

impl Submitter {
    /// Admit `body`, or refuse at once when the pipeline is full. The receiver resolves when it is answered.
    pub(crate) fn submit(
        &self,
        body: Bytes,
        format: Format,
    ) -> Result<oneshot::Receiver<Result<Accepted, ExportError>>, ExportError> {
        let permit = self.budget.try_acquire(body.len() as u64).ok_or(ExportError::Overloaded)?;
        let (reply, answer) = oneshot::channel();
        match self.queue.try_send(Export { body, format, reply, permit }) {
            Ok(()) => Ok(answer),
            Err(TrySendError::Full(_)) => Err(ExportError::Overloaded),
            Err(TrySendError::Disconnected(_)) => Err(ExportError::Unavailable(Failure::new(Stopped::ShuttingDown))),
        }
    }
}

/// Shutdown's first step, held by whoever decides when to stop. [`Drain::now`] tells every worker to seal what
/// it holds at once instead of waiting for a full or aged output (dropping it unused does the same).
pub(crate) struct Drain {
    workers: Vec<crossbeam_channel::Sender<()>>,
}

impl Drain {
    /// Seal and store everything accepted now, instead of at the flush interval.
    pub(crate) fn now(self) {
        for worker in &self.workers {
            // Room for one signal each: a worker that already stopped has nothing to seal.
            let _ = worker.try_send(());
        }
    }
}

/// The running workers and committer.
pub(crate) struct Pipeline {
    workers: Vec<JoinHandle<()>>,
    committer: tokio::task::JoinHandle<()>,
}

impl Pipeline {
    /// Start `config.workers` worker threads and the committer task (on the current tokio runtime) for `target`.
    pub(crate) fn start(target: Target, config: &PipelineConfig) -> std::io::Result<(Submitter, Drain, Pipeline)> {
        match target {
            Target::Delta(sink) => Pipeline::start_with(*sink, config),
            Target::Zerobus(sink) => Pipeline::start_with(*sink, config),
        }
    }

    fn start_with<S: Sink>(sink: S, config: &PipelineConfig) -> std::io::Result<(Submitter, Drain, Pipeline)> {
        let (queue, jobs) = crossbeam_channel::bounded(config.queue_depth.max(1));
        let (sealed_tx, sealed_rx) = mpsc::unbounded_channel();
        let mut workers = Vec::new();
        let mut drains = Vec::new();
        for i in 0..config.workers.max(1) {
            let worker = Worker::new(config.flush, sink.contract(), sink.writer(), sealed_tx.clone(), config.on_idle);
            let jobs = jobs.clone();
            let (drain_tx, drain_rx) = crossbeam_channel::bounded(1);
            drains.push(drain_tx);
            workers.push(
                std::thread::Builder::new()
                    .name(format!("otel-delta-batch-{i}"))
                    .spawn(move || worker.run(jobs, drain_rx))?,
            );
        }
        drop(sealed_tx);
        let committer = tokio::spawn(sink.deliver(sealed_rx));
        let submitter = Submitter { queue, budget: Budget::new(config.max_inflight_bytes) };
        Ok((submitter, Drain { workers: drains }, Pipeline { workers, committer }))
    }

    /// Wait until every admitted request is answered: call after the last [`Submitter`] is dropped.
    pub(crate) async fn join(self) {
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

/// How long clients are asked to wait before retrying a refused or failed export.
pub(crate) fn retry_after(flush_interval: Duration) -> Duration {
    Duration::from_secs(flush_interval.as_secs_f64().ceil().max(1.0) as u64)
}
