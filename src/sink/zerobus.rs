//! The Zerobus sink: workers turn each record batch into one protobuf record per row (in the layout the table's
//! Zerobus descriptor gives); the committer queues each sealed batch's records on the Zerobus stream, in sealing
//! order, and answers its requests once Zerobus acknowledges them durable.

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;

use super::{Sealed, Sink, WriteError, Writer};
use crate::ack::Failure;
use crate::databricks::zerobus::ZerobusTable;
use crate::encode::rows::RowEncoder;
use crate::health::Readiness;
use crate::table::Contract;

/// A table reached through a Zerobus stream.
pub(crate) struct ZerobusSink {
    table: ZerobusTable,
}

impl ZerobusSink {
    pub(crate) fn new(table: ZerobusTable) -> Self {
        ZerobusSink { table }
    }

    pub(crate) fn table(&self) -> &str {
        self.table.table()
    }

    pub(crate) fn endpoint(&self) -> &str {
        self.table.endpoint()
    }
}

/// Encodes rows as the table's Zerobus records.
#[derive(Clone)]
pub(crate) struct RecordWriter(Arc<RowEncoder>);

impl Writer for RecordWriter {
    type Open = Vec<Vec<u8>>;
    type Output = Vec<Vec<u8>>;

    fn open(&self) -> Result<Self::Open, WriteError> {
        Ok(Vec::new())
    }

    fn write(&self, open: &mut Self::Open, batch: &arrow::array::RecordBatch) -> Result<(), WriteError> {
        self.0.encode(batch, open)?;
        Ok(())
    }

    fn seal(&self, open: Self::Open) -> Result<Self::Output, WriteError> {
        Ok(open)
    }
}

impl Sink for ZerobusSink {
    type Writer = RecordWriter;

    fn contract(&self) -> &'static Contract {
        self.table.contract()
    }

    fn writer(&self) -> RecordWriter {
        RecordWriter(self.table.encoder())
    }

    /// Queue each sealed batch's records (in sealing order) and answer its requests once Zerobus acknowledges
    /// them durable; at the end, wait for every acknowledgement, then close the stream.
    async fn deliver(self, mut sealed: UnboundedReceiver<Sealed<Vec<Vec<u8>>>>, health: Readiness) {
        let mut table = self.table;
        let mut acks = tokio::task::JoinSet::new();
        while let Some(Sealed { output: records, requests }) = sealed.recv().await {
            match table.send(records).await {
                Ok(durable) => {
                    let health = health.clone();
                    acks.spawn(async move {
                        match durable.await {
                            Ok(()) => {
                                requests.succeed_all();
                                health.succeeded();
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "Zerobus did not acknowledge; answering 503");
                                health.failed(&e);
                                requests.fail_all(Failure::new(e));
                            }
                        }
                    });
                }
                Err(e) => {
                    tracing::error!(error = %e, "queuing rows on Zerobus failed; answering 503");
                    health.failed(&e);
                    requests.fail_all(Failure::new(e));
                }
            }
            // Reap answered batches as we go.
            while acks.try_join_next().is_some() {}
        }
        while acks.join_next().await.is_some() {}
        table.close().await;
    }
}
