//! The Zerobus sink: workers turn each record batch into one protobuf record per row (in the layout the table's
//! Zerobus descriptor gives); the committer queues each sealed batch's records on the Zerobus stream, in sealing
//! order, and answers its requests once Zerobus acknowledges them durable.
//!
//! A record above [`MAX_CALL_BYTES`] fits no ingest call, on any retry: the worker leaves it out of the output
//! and its span is answered rejected (partial success), so it fails neither its batch nor its request's other
//! spans.

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;

use super::{Omitted, RowRefused, Sealed, Sink, WriteError, Writer};
use crate::ack::Failure;
use crate::databricks::zerobus::{ZerobusTable, MAX_CALL_BYTES};
use crate::encode::rows::RowEncoder;
use crate::health::Readiness;
use crate::self_metrics::{Exporter, SelfMetrics};
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

/// Encodes rows as the table's Zerobus records, leaving out any record above `max_record` bytes.
#[derive(Clone)]
pub(crate) struct RecordWriter {
    encoder: Arc<RowEncoder>,
    max_record: usize,
}

impl Writer for RecordWriter {
    type Open = Vec<Vec<u8>>;
    type Output = Vec<Vec<u8>>;

    fn open(&self) -> Result<Self::Open, WriteError> {
        Ok(Vec::new())
    }

    fn write(&self, open: &mut Self::Open, batch: &arrow::array::RecordBatch) -> Result<Omitted, WriteError> {
        let before = open.len();
        self.encoder.encode(batch, open)?;
        let mut omitted = Omitted::default();
        if open[before..].iter().all(|record| record.len() <= self.max_record) {
            return Ok(omitted);
        }
        // The encoder appends one record per row, in order: the batch's row index is the position after `before`.
        let encoded = open.split_off(before);
        for (row, record) in encoded.into_iter().enumerate() {
            if record.len() > self.max_record {
                omitted.push(row, RowRefused::RecordTooLarge { bytes: record.len(), limit: self.max_record });
            } else {
                open.push(record);
            }
        }
        Ok(omitted)
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
        RecordWriter { encoder: self.table.encoder(), max_record: MAX_CALL_BYTES }
    }

    /// Queue each sealed batch's records (in sealing order) and answer its requests once Zerobus acknowledges
    /// them durable; at the end, wait for every acknowledgement, then close the stream.
    async fn deliver(
        self,
        mut sealed: UnboundedReceiver<Sealed<Vec<Vec<u8>>>>,
        health: Readiness,
        metrics: SelfMetrics,
    ) {
        let signal = self.contract().signal;
        let mut table = self.table;
        let mut acks = tokio::task::JoinSet::new();
        while let Some(Sealed { output: records, requests }) = sealed.recv().await {
            match table.send(records).await {
                Ok(durable) => {
                    let (health, metrics) = (health.clone(), metrics.clone());
                    acks.spawn(async move {
                        match durable.await {
                            Ok(()) => {
                                metrics.settled(Exporter::Zerobus, signal, requests.records(), true);
                                requests.succeed_all();
                                health.succeeded();
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "Zerobus did not acknowledge; answering 503");
                                health.failed(&e);
                                metrics.settled(Exporter::Zerobus, signal, requests.records(), false);
                                requests.fail_all(Failure::new(e));
                            }
                        }
                    });
                }
                Err(e) => {
                    tracing::error!(error = %e, "queuing rows on Zerobus failed; answering 503");
                    health.failed(&e);
                    metrics.settled(Exporter::Zerobus, signal, requests.records(), false);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Rows;

    /// A writer for the v1 spans table's Zerobus records, leaving out records above `max_record` bytes.
    fn writer(max_record: usize) -> RecordWriter {
        let columns = crate::databricks::unity::uc_columns(Contract::spans_v1());
        let proto = databricks_zerobus_ingest_sdk::schema::descriptor_from_uc_columns(&columns, "spans").unwrap();
        let descriptor = databricks_zerobus_ingest_sdk::message_descriptor(&proto).unwrap();
        let encoder = RowEncoder::new(&descriptor, Contract::spans_v1().arrow_schema().fields()).unwrap();
        RecordWriter { encoder: Arc::new(encoder), max_record }
    }

    /// Three spans, the middle one named with `long` bytes.
    fn batch(long: usize) -> arrow::array::RecordBatch {
        let spans: Vec<Vec<u8>> = [1, long, 1]
            .iter()
            .enumerate()
            .map(|(i, &name)| {
                let mut span = crate::testing::ProtobufWriter::new();
                span.bytes_field(1, &[1; 16]);
                span.bytes_field(2, &[i as u8 + 1; 8]);
                span.bytes_field(5, "n".repeat(name).as_bytes());
                span.buf
            })
            .collect();
        let mut rows = Rows::new(Contract::spans_v1());
        rows.append_request(&crate::testing::request_of_spans(&spans)).unwrap();
        rows.finish().unwrap()
    }

    #[test]
    fn a_record_above_the_limit_is_left_out_and_reported_and_one_at_it_is_kept() {
        let batch = batch(1000);
        let mut all = Vec::new();
        assert!(writer(usize::MAX).write(&mut all, &batch).unwrap().is_empty());
        let big = all[1].len();
        assert!(big > 1000 && all[0].len() < 200, "{} {}", all[0].len(), big);

        let mut kept = vec![b"earlier".to_vec()];
        let omitted = writer(big - 1).write(&mut kept, &batch).unwrap();
        let mut expected = Omitted::default();
        expected.push(1, RowRefused::RecordTooLarge { bytes: big, limit: big - 1 });
        assert_eq!(omitted, expected, "indexes are the batch's rows, whatever the output held before");
        assert_eq!(kept, [b"earlier".to_vec(), all[0].clone(), all[2].clone()]);

        let mut at_limit = Vec::new();
        assert!(writer(big).write(&mut at_limit, &batch).unwrap().is_empty(), "a record of exactly the limit fits");
        assert_eq!(at_limit, all);
    }
}
