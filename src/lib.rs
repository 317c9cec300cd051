//! otel-delta: OpenTelemetry traces over OTLP into a Delta Lake table, acknowledged only once durable.
//!
//! Data flow, one module per step (all private; what other crates may use is re-exported below):
//!
//! ```text
//!  receiver → decode → batch (rows: table::Contract's row builder) → encode (Parquet) → store (upload)
//!                          │                                                              → commit (Delta log)
//!                          └─ the sink's Writer ──────────────────────────────▶ sink (Delta table or Zerobus)
//! ```
//!
//! `pipeline` carries a request through them and answers it once `sink` stored its rows (`ack` holds what a
//! request is owed); `table` is the contract of every table written; `serve` puts the collector together;
//! `upkeep` (compaction, vacuum) keeps tables healthy off the ack path; `databricks` talks to a workspace.

mod ack;
mod batch;
mod commit;
mod config;
mod databricks;
mod decode;
mod encode;
mod health;
mod pipeline;
mod receiver;
mod serve;
mod settings;
mod sink;
mod store;
mod table;
mod upkeep;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

// Running the collector (`main`, integration tests, the end-to-end bench).
pub use config::{Config, ConfigError, OptimizeArgs, ServeArgs, TableArgs, TableLocation, VacuumArgs};
pub use serve::{serve, Collector, ServeError};
pub use settings::InvalidSetting;

// Table upkeep (`otel-delta optimize` / `vacuum`).
pub use commit::{register_object_stores, CommitError, Table, UploadedFile};
pub use upkeep::{optimize, vacuum, OptimizeOptions, OptimizeReport, UpkeepError, VacuumReport};

// Each step on its own, for the stage benches, the fuzz targets and the perf harness.
pub use decode::{to_protobuf, validate, DecodeError, Format, Summary};
pub use encode::{Codec, EncodedFile, FileStats, ParquetFile};
pub use receiver::{decompress, BodyError, Encoding};
pub use table::{Contract, SpanColumns};
