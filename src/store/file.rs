//! A data file written and streamed to the store at once: how every data file is made (by the Delta sink's
//! workers and by compaction). Its name is unique (a UUID: many writers share one table).

use arrow::array::RecordBatch;
use parquet::errors::ParquetError;

use super::{FinishedUpload, Store, Upload, UploadConfig};
use crate::encode::{Codec, FileStats, ParquetFile};
use crate::table::Contract;

/// Where data files go: the table's store, reached through the runtime that runs the uploads.
#[derive(Clone)]
pub(crate) struct FileDestination {
    pub(crate) store: Store,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) upload: UploadConfig,
    pub(crate) contract: &'static Contract,
    pub(crate) codec: Codec,
    /// Columns written after the contract's that the Delta schema does not list (compaction's materialized row
    /// ids); usually none.
    pub(crate) hidden_columns: Vec<arrow::datatypes::FieldRef>,
}

impl FileDestination {
    /// Start a new data file with a unique name.
    pub(crate) fn create_file(&self) -> Result<StreamedFile, ParquetError> {
        let file = ParquetFile::with_hidden_columns(self.contract, self.codec, &self.hidden_columns)?;
        let path = format!("part-00000-{}-c000.{}", uuid::Uuid::new_v4(), self.codec.file_suffix());
        Ok(StreamedFile { file, upload: self.store.begin(&self.runtime, path, self.upload) })
    }
}

/// A Parquet file being written and streamed to the store. Dropped unfinished, its upload is aborted.
pub(crate) struct StreamedFile {
    file: ParquetFile,
    upload: Upload,
}

impl StreamedFile {
    /// Append a batch; the bytes the writer has produced so far go to the store (blocks while it is behind).
    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<(), ParquetError> {
        self.file.write(batch)?;
        if let Some(written) = self.file.take_written(1) {
            self.upload.send(written);
        }
        Ok(())
    }

    /// Write the footer and hand the last bytes over: the upload (to await) and the file's statistics.
    pub(crate) fn finish(self) -> Result<(FinishedUpload, FileStats), ParquetError> {
        let done = self.file.finish()?;
        Ok((self.upload.finish(done.tail), done.stats))
    }
}
