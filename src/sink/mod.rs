//! sink: where sealed rows go. One [`Sink`] per destination, each pairing what the batch workers make of record
//! batches (its [`Writer`]) with how the committer task stores that and settles the requests it holds
//! ([`Sink::deliver`]):
//!
//! ```text
//!                 worker threads (Writer)                      committer task (Sink::deliver)
//!  DeltaSink      Parquet file streamed to the table's store   await uploads → one Delta commit per round
//!  ZerobusSink    one protobuf record per row                  queue on the Zerobus stream → await its ack
//! ```
//!
//! The pipeline is generic over the sink, so a worker's output can only reach the sink that made its writer:
//! a mismatch does not compile. [`Target`] is the one run-time choice (from the configuration), made once at
//! start-up.
//!
//! Contract of every sink: [`Sink::deliver`] settles each [`Sealed`] it receives exactly once, `succeed_all`
//! only after the output is durable in the destination (committed, or acknowledged durable by Zerobus), and
//! returns only after the channel closed and every output it received is settled. A [`Writer`] may leave out a
//! row its destination can never take (a Zerobus record above one ingest call); it reports it ([`Omitted`]) and
//! the worker answers that span rejected (partial success), so it neither fails nor is retried with its batch.

mod delta;
mod zerobus;

use std::future::Future;

use arrow::array::RecordBatch;
use parquet::errors::ParquetError;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::ack::Requests;
use crate::health::Readiness;
use crate::self_metrics::SelfMetrics;
use crate::table::Contract;

pub(crate) use delta::DeltaSink;
pub(crate) use zerobus::ZerobusSink;

/// Why a worker could not write its output.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    #[error("encoding Parquet")]
    Parquet(#[from] ParquetError),
    #[error("encoding Zerobus records")]
    Records(#[from] crate::encode::rows::RowEncodeError),
}

/// Why a writer left a row out of its output: the destination could never take it, on any retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RowRefused {
    #[error("a span's Zerobus record is {bytes} bytes, above the {limit} bytes of one ingest call")]
    RecordTooLarge { bytes: usize, limit: usize },
}

/// The rows of one record batch a writer left out of its output: index in the batch (ascending), and why. Empty,
/// without allocating, for a writer that keeps every row (Delta).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Omitted(Vec<(usize, RowRefused)>);

impl Omitted {
    pub(crate) fn push(&mut self, row: usize, why: RowRefused) {
        self.0.push((row, why));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl IntoIterator for Omitted {
    type Item = (usize, RowRefused);
    type IntoIter = std::vec::IntoIter<(usize, RowRefused)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// The worker side of a sink: turns record batches into one output, batch by batch.
pub(crate) trait Writer: Clone + Send + 'static {
    /// An output being filled.
    type Open: Send;
    /// A finished output, on its way to [`Sink::deliver`].
    type Output: Send + 'static;

    fn open(&self) -> Result<Self::Open, WriteError>;
    /// Add `batch`'s rows to `open`, except those the destination can never take: returned, for the worker to
    /// answer as rejected.
    fn write(&self, open: &mut Self::Open, batch: &RecordBatch) -> Result<Omitted, WriteError>;
    fn seal(&self, open: Self::Open) -> Result<Self::Output, WriteError>;
}

/// A worker's finished output and the requests whose rows it holds.
pub(crate) struct Sealed<O> {
    pub(crate) output: O,
    pub(crate) requests: Requests,
}

/// A destination for sealed rows.
pub(crate) trait Sink: Send + Sized + 'static {
    type Writer: Writer;

    /// The table whose rows this sink takes.
    fn contract(&self) -> &'static Contract;

    /// A writer for one worker thread. Called on the runtime that will run the sink.
    fn writer(&self) -> Self::Writer;

    /// Store every sealed output in order and settle its requests, reporting each delivery to `health` and
    /// counting what it settled (and commits) in `metrics`; return once `sealed` is closed and drained.
    fn deliver(
        self,
        sealed: UnboundedReceiver<Sealed<<Self::Writer as Writer>::Output>>,
        health: Readiness,
        metrics: SelfMetrics,
    ) -> impl Future<Output = ()> + Send;
}

/// The sink the configuration chose.
pub(crate) enum Target {
    Delta(Box<DeltaSink>),
    Zerobus(Box<ZerobusSink>),
}

impl Target {
    /// The signal whose rows it takes.
    pub(crate) fn signal(&self) -> crate::decode::Signal {
        match self {
            Target::Delta(sink) => sink.contract().signal,
            Target::Zerobus(sink) => sink.contract().signal,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Delta(sink) => write!(f, "table {}", sink.table().url()),
            Target::Zerobus(sink) => write!(f, "table {} through Zerobus at {}", sink.table(), sink.endpoint()),
        }
    }
}
