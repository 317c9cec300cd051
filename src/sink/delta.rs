//! The Delta sink: workers write Parquet files streamed to the table's store; the committer awaits their uploads
//! and adds every file sealed meanwhile to the table in one commit (one commit per round, not per request), then
//! answers their requests.

use tokio::sync::mpsc::UnboundedReceiver;

use super::{Omitted, Sealed, Sink, WriteError, Writer};
use crate::ack::{Failure, Requests};
use crate::commit::{Table, UploadedFile};
use crate::encode::{Codec, FileStats};
use crate::health::Readiness;
use crate::self_metrics::{Exporter, SelfMetrics};
use crate::store::{FileDestination, FinishedUpload, StreamedFile, UploadConfig};
use crate::table::Contract;

/// A Delta table, written with these file settings.
pub(crate) struct DeltaSink {
    table: Table,
    codec: Codec,
    upload: UploadConfig,
}

impl DeltaSink {
    pub(crate) fn new(table: Table, codec: Codec, upload: UploadConfig) -> Self {
        DeltaSink { table, codec, upload }
    }

    pub(crate) fn table(&self) -> &Table {
        &self.table
    }
}

/// A sealed data file: its upload (perhaps still completing) and statistics.
pub(crate) struct SealedFile {
    upload: FinishedUpload,
    stats: FileStats,
}

impl Writer for FileDestination {
    type Open = Box<StreamedFile>;
    type Output = SealedFile;

    fn open(&self) -> Result<Self::Open, WriteError> {
        Ok(Box::new(self.create_file()?))
    }

    fn write(&self, open: &mut Self::Open, batch: &arrow::array::RecordBatch) -> Result<Omitted, WriteError> {
        open.write(batch)?;
        Ok(Omitted::default())
    }

    fn seal(&self, open: Self::Open) -> Result<SealedFile, WriteError> {
        let (upload, stats) = open.finish()?;
        Ok(SealedFile { upload, stats })
    }
}

impl Sink for DeltaSink {
    type Writer = FileDestination;

    fn contract(&self) -> &'static Contract {
        self.table.contract()
    }

    fn writer(&self) -> FileDestination {
        FileDestination {
            store: self.table.store().clone(),
            runtime: tokio::runtime::Handle::current(),
            upload: self.upload,
            contract: self.table.contract(),
            codec: self.codec,
            hidden_columns: Vec::new(),
        }
    }

    /// Take every sealed file that is ready, wait for their uploads, commit them in one Delta version, answer
    /// their requests. Files sealed meanwhile wait for the next round.
    async fn deliver(self, mut sealed: UnboundedReceiver<Sealed<SealedFile>>, health: Readiness, metrics: SelfMetrics) {
        let signal = self.contract().signal;
        let mut table = self.table;
        let table_url = table.url().to_string();
        if let Some(version) = table.version() {
            metrics.table_version(&table_url, version);
        }
        while let Some(first) = sealed.recv().await {
            let mut round = vec![first];
            while let Ok(more) = sealed.try_recv() {
                round.push(more);
            }
            let mut uploads = Vec::new();
            let mut held = Vec::new();
            for Sealed { output: SealedFile { upload, stats }, requests } in round {
                held.push((upload.path.clone(), stats, requests));
                uploads.push(upload.wait());
            }
            let results = futures::future::join_all(uploads).await;
            let mut files = Vec::new();
            let mut waiting = Requests::default();
            for ((path, stats, requests), result) in held.into_iter().zip(results) {
                match result {
                    Ok(size) => {
                        files.push(UploadedFile { path, size, stats });
                        waiting.extend(requests);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "data file upload failed");
                        health.failed(&e);
                        metrics.settled(Exporter::Delta, signal, requests.records(), false);
                        requests.fail_all(Failure::new(e));
                    }
                }
            }
            if files.is_empty() {
                continue;
            }
            let started = std::time::Instant::now();
            let committed = table.append(&files).await;
            metrics.commit_took(started.elapsed());
            match committed {
                Ok(version) => {
                    let rows: u64 = files.iter().map(|f| f.stats.num_records).sum();
                    let bytes: u64 = files.iter().map(|f| f.size).sum();
                    let commit_ms = started.elapsed().as_millis() as u64;
                    metrics.committed(&table_url, version, files.len() as u64, bytes);
                    metrics.settled(Exporter::Delta, signal, waiting.records(), true);
                    tracing::debug!(
                        version,
                        files = files.len(),
                        bytes,
                        rows,
                        requests = waiting.len(),
                        commit_ms,
                        "committed"
                    );
                    waiting.succeed_all();
                    health.succeeded();
                    table.checkpoint_if_due(version);
                }
                Err(e) => {
                    tracing::error!(error = %e, "Delta commit failed; answering 503");
                    if table.refuses_writes() {
                        health.refused(&e);
                    } else {
                        health.failed(&e);
                    }
                    metrics.settled(Exporter::Delta, signal, waiting.records(), false);
                    waiting.fail_all(Failure::new(e));
                }
            }
        }
        table.finish().await;
    }
}
