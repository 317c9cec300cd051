//! The path of one export request, from admission to acknowledgement, and the threads that carry it: one lane
//! (queue, workers, committer, table) per signal served.
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
//! Signals: each signal has its own queue, workers and sink (its own table, files and commits), so a flood of one
//! neither fills another's queue nor delays its commits. They share the in-flight budget, split so that none
//! starves another: every signal is guaranteed a floor of the budget, the rest goes to whoever asks first (the
//! rule is [`Budget`]'s).
//!
//! Shutdown: [`Drain::now`] makes every worker seal at once instead of at the flush interval; once the last
//! [`Submitter`] is gone the workers seal what is left and stop, the committer commits and answers everything, and
//! [`Pipeline::join`] returns.

use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::TrySendError;
use tokio::sync::{mpsc, oneshot};

use crate::ack::{Accepted, Budget, ExportError, Failure, Permit, Stopped};
use crate::batch::{self, Export, FlushPolicy, RowLimits, Worker, MAX_BATCH_BYTES};
use crate::decode::{Format, Signal};
use crate::encode::Codec;
use crate::health::Readiness;
use crate::self_metrics::SelfMetrics;
use crate::settings::{parse_duration, parse_size, InvalidSetting};
use crate::sink::{Sink, Target};
use crate::store::{UploadArgs, UploadConfig};

/// Flags of batching and acknowledgement.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Batching")]
pub(crate) struct PipelineArgs {
    /// Longest a request waits for its file to be sealed and committed (e.g. 1s, 500ms).
    #[arg(long, env = "OTEL_DELTA_FLUSH_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    flush_interval: Duration,
    /// Seal a data file once this much OTLP request data went into it (e.g. 128MiB).
    #[arg(long, env = "OTEL_DELTA_TARGET_FILE_SIZE", default_value = "128MiB", value_parser = parse_size)]
    target_file_size: u64,
    /// Parquet compression: zstd[:level], snappy, lz4, gzip[:level], none.
    #[arg(long, env = "OTEL_DELTA_COMPRESSION", default_value = "zstd:1")]
    compression: Codec,
    /// Request bytes accepted but not yet committed; beyond it requests get 503 + Retry-After.
    #[arg(long, env = "OTEL_DELTA_MAX_INFLIGHT_SIZE", default_value = "512MiB", value_parser = parse_size)]
    max_inflight_size: u64,
    /// Batching worker threads (decode, columns, Parquet). Default: one per CPU.
    #[arg(long, env = "OTEL_DELTA_WORKERS")]
    workers: Option<usize>,
    /// Largest the rows of one request may be in memory (its resource and scope values are repeated on each of
    /// its spans); larger requests get 413. At most 1GiB.
    #[arg(long, env = "OTEL_DELTA_MAX_REQUEST_ROWS", default_value = "256MiB", value_parser = parse_size)]
    max_request_rows: u64,
    #[command(flatten)]
    upload: UploadArgs,
}

/// Requests waiting for a worker, beyond which new ones get 503.
const QUEUE_DEPTH: usize = 1024;

/// Largest `--max-request-rows`: with record batches cut at `MAX_BATCH_ROW_BYTES`, no column nears Arrow's 2 GiB.
const MAX_REQUEST_ROWS_LIMIT: u64 = 1 << 30;

impl PipelineArgs {
    pub(crate) fn resolve(&self) -> Result<PipelineConfig, InvalidSetting> {
        if self.flush_interval.is_zero() {
            return Err(InvalidSetting::new("--flush-interval", "must be above zero"));
        }
        if self.target_file_size == 0 {
            return Err(InvalidSetting::new("--target-file-size", "must be above zero"));
        }
        if self.max_request_rows == 0 || self.max_request_rows > MAX_REQUEST_ROWS_LIMIT {
            return Err(InvalidSetting::new("--max-request-rows", "must be between 1 byte and 1GiB"));
        }
        let workers = match self.workers {
            Some(0) => return Err(InvalidSetting::new("--workers", "must be at least 1")),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        Ok(PipelineConfig {
            workers,
            codec: self.compression,
            flush: FlushPolicy {
                target_file_bytes: self.target_file_size,
                max_age: self.flush_interval,
                batch_bytes: MAX_BATCH_BYTES.min(self.target_file_size),
            },
            upload: self.upload.resolve()?,
            max_inflight_bytes: self.max_inflight_size,
            max_request_rows: self.max_request_rows,
            queue_depth: QUEUE_DEPTH,
            on_idle: None,
        })
    }
}

/// Settings of the pipeline.
#[derive(Debug, Clone)]
pub(crate) struct PipelineConfig {
    pub(crate) workers: usize,
    pub(crate) codec: Codec,
    pub(crate) flush: FlushPolicy,
    pub(crate) upload: UploadConfig,
    /// Bytes of request bodies accepted but not yet acknowledged, and of what their rows grew beyond them.
    pub(crate) max_inflight_bytes: u64,
    /// Largest the rows of one request may be.
    pub(crate) max_request_rows: u64,
    /// Requests waiting for a worker.
    pub(crate) queue_depth: usize,
    /// Called on a worker thread once it has had nothing to do for a while after sealing an output: lets the
    /// binary hand that thread's freed memory back to the OS (the library does not own the allocator).
    pub(crate) on_idle: Option<fn()>,
}

/// The receiver's handle: admits requests into the pipeline of their signal. The pipeline drains and stops once
/// every clone is dropped.
#[derive(Clone)]
pub(crate) struct Submitter {
    lanes: Vec<Lane>,
}

/// One signal's way in.
#[derive(Clone)]
struct Lane {
    signal: Signal,
    queue: crossbeam_channel::Sender<Export>,
    budget: Budget,
    health: Readiness,
}

impl Submitter {
    fn lane(&self, signal: Signal) -> Result<&Lane, ExportError> {
        self.lanes.iter().find(|l| l.signal == signal).ok_or(ExportError::SignalOff(signal))
    }

    /// Whether `signal` is served (`--signals`).
    pub(crate) fn takes(&self, signal: Signal) -> bool {
        self.lane(signal).is_ok()
    }

    /// `Err(reason)` while exports of some signal cannot succeed (see [`crate::health`]).
    pub(crate) fn ready(&self) -> Result<(), String> {
        for lane in &self.lanes {
            lane.health.check().map_err(|reason| format!("{}: {reason}", lane.signal.name()))?;
        }
        Ok(())
    }

    /// Reserve `bytes` of `signal`'s share of the in-flight budget for a request about to be read, or refuse at
    /// once.
    pub(crate) fn reserve(&self, signal: Signal, bytes: u64) -> Result<Permit, ExportError> {
        self.lane(signal)?.budget.try_acquire(bytes).ok_or(ExportError::Overloaded)
    }

    /// Admit `body`, holding `permit` (its share of the budget, see [`Submitter::reserve`]), or refuse at once when
    /// its signal's queue is full. The receiver resolves when it is answered.
    pub(crate) fn submit(
        &self,
        signal: Signal,
        body: Bytes,
        format: Format,
        permit: Permit,
    ) -> Result<oneshot::Receiver<Result<Accepted, ExportError>>, ExportError> {
        let (reply, answer) = oneshot::channel();
        match self.lane(signal)?.queue.try_send(Export { body, format, reply, permit }) {
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

/// The running workers and committers of every signal.
pub(crate) struct Pipeline {
    workers: Vec<JoinHandle<()>>,
    committers: Vec<tokio::task::JoinHandle<()>>,
}

impl Pipeline {
    /// Start, for each target (one per signal), `config.workers` worker threads and a committer task (on the current
    /// tokio runtime); `metrics` reads the budget and the queues when scraped, and the sinks count into it.
    pub(crate) fn start(
        targets: Vec<Target>,
        config: &PipelineConfig,
        metrics: &SelfMetrics,
    ) -> std::io::Result<(Submitter, Drain, Pipeline)> {
        let budgets = Budget::shared(config.max_inflight_bytes, targets.len());
        let mut pipeline = Pipeline { workers: Vec::new(), committers: Vec::new() };
        let (mut lanes, mut drains, mut queues) = (Vec::new(), Vec::new(), Vec::new());
        for (target, budget) in targets.into_iter().zip(budgets.iter().cloned()) {
            let (lane, waiting) = match target {
                Target::Delta(sink) => pipeline.start_lane(*sink, budget, config, metrics, &mut drains)?,
                Target::Zerobus(sink) => pipeline.start_lane(*sink, budget, config, metrics, &mut drains)?,
            };
            lanes.push(lane);
            queues.push(waiting);
        }
        if let Some(budget) = budgets.first().cloned() {
            metrics.watch_pipeline(
                budget.limit(),
                move || budget.used(),
                move || queues.iter().map(|q| q.len() as u64).sum(),
                batch::worker_restarts,
            );
        }
        Ok((Submitter { lanes }, Drain { workers: drains }, pipeline))
    }

    /// Start one signal's workers and committer; returns its way in and (for the metrics) its queue's far end.
    fn start_lane<S: Sink>(
        &mut self,
        sink: S,
        budget: Budget,
        config: &PipelineConfig,
        metrics: &SelfMetrics,
        drains: &mut Vec<crossbeam_channel::Sender<()>>,
    ) -> std::io::Result<(Lane, crossbeam_channel::Receiver<Export>)> {
        let signal = sink.contract().signal;
        let (queue, jobs) = crossbeam_channel::bounded(config.queue_depth.max(1));
        let (sealed_tx, sealed_rx) = mpsc::unbounded_channel();
        let limits = RowLimits { max_request_rows: config.max_request_rows, budget: budget.clone() };
        for i in 0..config.workers.max(1) {
            let worker = Worker::new(
                config.flush,
                limits.clone(),
                sink.contract(),
                sink.writer(),
                sealed_tx.clone(),
                config.on_idle,
            );
            let jobs = jobs.clone();
            let (drain_tx, drain_rx) = crossbeam_channel::bounded(1);
            drains.push(drain_tx);
            self.workers.push(
                std::thread::Builder::new()
                    .name(format!("otel-delta-{}-{i}", signal.name()))
                    .spawn(move || worker.run(jobs, drain_rx))?,
            );
        }
        drop(sealed_tx);
        let health = Readiness::default();
        self.committers.push(tokio::spawn(sink.deliver(sealed_rx, health.clone(), metrics.clone())));
        // A receiver, not a sender: holding it does not keep the workers from seeing the queue close.
        Ok((Lane { signal, queue, budget, health }, jobs))
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
        for committer in self.committers {
            let _ = committer.await;
        }
    }
}

impl PipelineConfig {
    /// How long clients are asked to wait before retrying a refused or failed export: a flush interval, at least
    /// a second (`Retry-After` counts whole seconds).
    pub(crate) fn retry_after(&self) -> Duration {
        Duration::from_secs(self.flush.max_age.as_secs_f64().ceil().max(1.0) as u64)
    }
}
