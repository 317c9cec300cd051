//! batch: decoded requests → Arrow record batches → sealed Parquet files, on worker threads.
//!
//! Contract: a worker takes whole requests from the shared queue, validates each completely before any of it
//! becomes a row, and puts all of a request's rows in one file. A sealed file travels to the committer with
//! the replies of exactly the requests whose rows it holds; a request is answered by the committer once that
//! file is committed, or here at once if it is invalid or holds no storable span. If encoding fails, every
//! request of the open file is answered "unavailable" (retryable) and the worker starts afresh: nothing is
//! acknowledged that is not in the file.

pub mod columns;
pub mod policy;
pub mod schema;
pub mod values;

use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use tokio::sync::mpsc::UnboundedSender;

use crate::decode;
use crate::encode::{Codec, ParquetFile};
use crate::pipeline::{Accepted, Export, ExportError, Pending, SealedFile};
use columns::SpanColumns;
use policy::{FlushPolicy, OpenFile, Step};

/// One batching worker: owns its column builders and its open file.
pub struct Worker {
    policy: FlushPolicy,
    codec: Codec,
    columns: SpanColumns,
    file: Option<ParquetFile>,
    open: OpenFile,
    pending: Vec<Pending>,
    sealed: UnboundedSender<SealedFile>,
}

impl Worker {
    pub fn new(policy: FlushPolicy, codec: Codec, sealed: UnboundedSender<SealedFile>) -> Self {
        Worker {
            policy,
            codec,
            columns: SpanColumns::new(),
            file: None,
            open: OpenFile::default(),
            pending: Vec::new(),
            sealed,
        }
    }

    /// Serve the queue until every sender is gone, then seal what is open and return. Once `drain` closes
    /// (shutdown), nothing waits any more: the open file is sealed at once, and so is every later request's.
    pub fn run(mut self, queue: Receiver<Export>, drain: Receiver<()>) {
        let mut drain = drain;
        let mut draining = false;
        loop {
            let timeout = match self.open.deadline(&self.policy) {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            crossbeam_channel::select! {
                recv(queue) -> next => match next {
                    Ok(export) => self.take(export),
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
            if draining || self.open.is_due(&self.policy, Instant::now()) {
                self.seal();
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
        let summary = match decode::validate(&body) {
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
        if let Err(e) = self.columns.append_request(&body) {
            // Unreachable for a validated body; if it happens the builders are inconsistent: start afresh.
            tracing::error!(error = %e, "row builder failed on a validated request");
            let _ = reply.send(Err(ExportError::Unavailable(format!("internal decoder error: {e}"))));
            self.discard("internal decoder error");
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

    /// Move the rows built so far into the open Parquet file.
    fn encode_batch(&mut self) -> bool {
        if self.columns.rows() == 0 {
            return true;
        }
        let result = self.columns.finish().map_err(|e| e.to_string()).and_then(|batch| {
            let file = match self.file.take() {
                Some(file) => file,
                None => ParquetFile::new(self.codec).map_err(|e| e.to_string())?,
            };
            let file = self.file.insert(file);
            file.write(&batch).map_err(|e| e.to_string())
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

    /// Finish the open file and hand it to the committer.
    fn seal(&mut self) {
        if self.open.is_empty() || !self.encode_batch() {
            return;
        }
        let Some(file) = self.file.take() else { return };
        match file.finish() {
            Ok(file) => {
                let sealed = SealedFile { file, pending: std::mem::take(&mut self.pending) };
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

    /// Drop the open file and builders; every request in them is answered retryable.
    fn discard(&mut self, reason: &str) {
        for p in self.pending.drain(..) {
            p.fail(reason);
        }
        self.columns = SpanColumns::new();
        self.file = None;
        self.open.reset();
    }
}
