//! encode: record batches → one compressed Parquet file in memory, with the per-file statistics Delta readers
//! use to skip files (numRecords, minValues, maxValues, nullCount).
//!
//! Contract: the bytes taken with [`ParquetFile::take_written`] followed by the tail [`ParquetFile::finish`]
//! returns form a complete Parquet file (footer written) holding exactly the rows written, and the stats bound
//! every value of the indexed columns. Bytes can be taken (and uploaded) while the file is still being written:
//! a row group reaches the sink once its encoded pages reach [`ROW_GROUP_BYTES`] (large files stream in
//! row groups; most files are one row group and go up when sealed).
//!
//! Layout for lookups: the table contract names the columns with bloom filters, without dictionaries and without
//! min/max statistics ([`crate::table::ParquetTuning`]); rows keep their arrival order, which is close to
//! start-time order, so a file's time range is narrow and time-range queries skip most files.

pub(crate) mod rows;
mod stats;

use arrow::array::RecordBatch;
use bytes::Bytes;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

pub use stats::FileStats;

use crate::table::{Contract, ParquetTuning};

/// Parquet compression codec of the data files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Snappy,
    Lz4,
    Gzip(u32),
    Zstd(i32),
}

impl Default for Codec {
    fn default() -> Self {
        Codec::Zstd(1)
    }
}

impl std::str::FromStr for Codec {
    type Err = String;

    /// `none`, `snappy`, `lz4`, `gzip[:level]`, `zstd[:level]`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, level) = match s.split_once(':') {
            Some((n, l)) => (n, Some(l.parse::<i32>().map_err(|_| format!("bad compression level in {s:?}"))?)),
            None => (s, None),
        };
        let codec = match (name.to_ascii_lowercase().as_str(), level) {
            ("none" | "uncompressed", None) => Codec::None,
            ("snappy", None) => Codec::Snappy,
            ("lz4", None) => Codec::Lz4,
            ("gzip", l) => Codec::Gzip(l.unwrap_or(6) as u32),
            ("zstd", l) => Codec::Zstd(l.unwrap_or(1)),
            _ => return Err(format!("unknown compression {s:?}: use none, snappy, lz4, gzip[:level] or zstd[:level]")),
        };
        codec.to_parquet().map_err(|e| e.to_string())?;
        Ok(codec)
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Codec::None => write!(f, "none"),
            Codec::Snappy => write!(f, "snappy"),
            Codec::Lz4 => write!(f, "lz4"),
            Codec::Gzip(l) => write!(f, "gzip:{l}"),
            Codec::Zstd(l) => write!(f, "zstd:{l}"),
        }
    }
}

impl Codec {
    fn to_parquet(self) -> Result<Compression, ParquetError> {
        Ok(match self {
            Codec::None => Compression::UNCOMPRESSED,
            Codec::Snappy => Compression::SNAPPY,
            Codec::Lz4 => Compression::LZ4_RAW,
            Codec::Gzip(l) => Compression::GZIP(GzipLevel::try_new(l)?),
            Codec::Zstd(l) => Compression::ZSTD(ZstdLevel::try_new(l)?),
        })
    }

    /// The name Spark and delta-rs put in data file names (`part-….zstd.parquet`).
    pub(crate) fn file_suffix(self) -> &'static str {
        match self {
            Codec::None => "parquet",
            Codec::Snappy => "snappy.parquet",
            Codec::Lz4 => "lz4.parquet",
            Codec::Gzip(_) => "gz.parquet",
            Codec::Zstd(_) => "zstd.parquet",
        }
    }
}

/// Row groups are cut when their encoded size in memory reaches this: it bounds the pages a file holds in memory
/// before they can be streamed to the store. Large, so most files are one row group (why:
/// `docs/design-notes.md#row-groups`).
pub(crate) const ROW_GROUP_BYTES: usize = 128 * 1024 * 1024;

fn writer_properties(tuning: &ParquetTuning, codec: Codec) -> Result<WriterProperties, ParquetError> {
    let path = |p: &str| ColumnPath::new(p.split('.').map(str::to_owned).collect());
    let mut props =
        WriterProperties::builder().set_compression(codec.to_parquet()?).set_max_row_group_bytes(Some(ROW_GROUP_BYTES));
    for column in tuning.no_dictionary() {
        props = props.set_column_dictionary_enabled(path(column), false);
    }
    for column in tuning.no_statistics() {
        props = props.set_column_statistics_enabled(path(column), EnabledStatistics::None);
    }
    for &(column, ndv, fpp) in tuning.bloom_filters {
        props = props
            .set_column_bloom_filter_enabled(path(column), true)
            .set_column_bloom_filter_max_ndv(path(column), ndv)
            .set_column_bloom_filter_fpp(path(column), fpp);
    }
    Ok(props.build())
}

/// A Parquet file being written in memory.
pub struct ParquetFile {
    writer: ArrowWriter<Vec<u8>>,
    stats: FileStats,
}

/// The end of a finished file.
pub struct EncodedFile {
    /// The bytes not taken before with [`ParquetFile::take_written`] (for a small file, all of it).
    pub tail: Bytes,
    pub stats: FileStats,
}

impl ParquetFile {
    /// An empty file of `contract`'s table, compressed with `codec`.
    pub fn new(contract: &'static Contract, codec: Codec) -> Result<Self, ParquetError> {
        ParquetFile::with_hidden_columns(contract, codec, &[])
    }

    /// An empty file of `contract`'s table with `hidden` columns after the table's (columns the Delta schema does
    /// not list, such as materialized row ids), compressed with `codec`.
    pub(crate) fn with_hidden_columns(
        contract: &'static Contract,
        codec: Codec,
        hidden: &[arrow::datatypes::FieldRef],
    ) -> Result<Self, ParquetError> {
        let properties = writer_properties(&contract.parquet, codec)?;
        // No embedded Arrow schema: readers take each column's type from Parquet and the Delta schema, as for a
        // file Spark wrote; our builders' in-memory choices (`Utf8View` for repeated values) stay ours.
        let options = ArrowWriterOptions::new().with_properties(properties).with_skip_arrow_metadata(true);
        let schema = contract.arrow_schema();
        let schema = match hidden {
            [] => schema,
            _ => {
                let fields = schema.fields().iter().chain(hidden).cloned().collect::<Vec<_>>();
                std::sync::Arc::new(arrow::datatypes::Schema::new(fields))
            }
        };
        let writer = ArrowWriter::try_new_with_options(Vec::new(), schema, options)?;
        Ok(ParquetFile { writer, stats: FileStats::new(&contract.file_stats) })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ParquetError> {
        self.stats.update(batch);
        self.writer.write(batch)
    }

    /// The bytes written to the file so far and not yet taken, once there are at least `min` of them.
    pub fn take_written(&mut self, min: usize) -> Option<Bytes> {
        // The writer counts its own offsets: draining what it already wrote does not disturb them.
        let written = self.writer.inner_mut();
        (written.len() >= min).then(|| Bytes::from(std::mem::take(written)))
    }

    pub fn finish(self) -> Result<EncodedFile, ParquetError> {
        let tail = self.writer.into_inner()?;
        Ok(EncodedFile { tail: Bytes::from(tail), stats: self.stats })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::FileReader as _;
    use parquet::file::serialized_reader::SerializedFileReader;

    #[test]
    fn tuned_columns_exist_in_the_file_schema() {
        // A misspelt path would silently tune nothing: every one must name a leaf of the written file.
        for contract in crate::table::CONTRACTS {
            let file = ParquetFile::new(contract, Codec::default()).unwrap();
            let bytes = file.finish().unwrap().tail;
            let reader = SerializedFileReader::new(bytes).unwrap();
            let schema = reader.metadata().file_metadata().schema_descr_ptr();
            let leaves: Vec<String> = schema.columns().iter().map(|c| c.path().string()).collect();
            let tuning = &contract.parquet;
            let blooms = tuning.bloom_filters.iter().map(|&(c, _, _)| c);
            for column in tuning.no_dictionary().chain(tuning.no_statistics()).chain(blooms) {
                assert!(leaves.iter().any(|l| l == column), "{contract}: {column} is not among {leaves:?}");
            }
        }
    }

    /// A request of `n` spans with distinct trace ids, hand-encoded.
    fn request(n: u8) -> Vec<u8> {
        let spans: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                let mut span = crate::decode::wire::Writer::new();
                span.bytes_field(1, &[i; 16]);
                span.bytes_field(2, &[i; 8]);
                // A name of 4 KiB of poorly compressible text, so a row group outgrows the writer's 8 KiB buffer.
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(i);
                let name: String = (0..4096)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        char::from(b'a' + (x % 26) as u8)
                    })
                    .collect();
                span.bytes_field(5, name.as_bytes());
                span.buf
            })
            .collect();
        crate::testing::request_of_spans(&spans)
    }

    #[test]
    fn streamed_bytes_and_tail_form_one_file_whose_trace_ids_have_a_bloom_filter() {
        use parquet::file::serialized_reader::ReadOptionsBuilder;
        let mut columns = crate::table::Rows::new(crate::table::Contract::spans_v1());
        let mut file = ParquetFile::new(Contract::spans_v1(), Codec::default()).unwrap();
        let mut bytes = Vec::new();
        for round in 0..3u8 {
            columns.append_request(&request(10 + round)).unwrap();
            file.write(&columns.finish().unwrap()).unwrap();
            // Force a row group out, as a full one would be: its bytes can be taken (and uploaded) at once.
            file.writer.flush().unwrap();
            bytes.extend_from_slice(&file.take_written(1).expect("a flushed row group"));
        }
        let done = file.finish().unwrap();
        bytes.extend_from_slice(&done.tail);
        assert_eq!(done.stats.num_records, 10 + 11 + 12);

        let options = ReadOptionsBuilder::new().with_reader_properties(
            parquet::file::properties::ReaderProperties::builder().set_read_bloom_filter(true).build(),
        );
        let reader = SerializedFileReader::new_with_options(Bytes::from(bytes), options.build()).unwrap();
        assert_eq!(reader.metadata().num_row_groups(), 3);
        let row_group = reader.get_row_group(2).unwrap();
        let bloom = row_group.get_column_bloom_filter(0).expect("trace_id has a bloom filter");
        let present = "0b".repeat(16);
        assert!(bloom.check(&present.as_str()));
        let absent = "ff".repeat(16);
        assert!(!bloom.check(&absent.as_str()), "a 1% filter with 12 values has no false positive for this id");
    }
}
