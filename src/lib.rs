//! otel-delta: OpenTelemetry traces over OTLP into a Delta Lake table, acknowledged only once durable.
//!
//! Data flow, one module per step (all private; what other crates may use is re-exported below):
//!
//! ```text
//!  receiver ─▶ pipeline ─▶ batch (decode, then the contract's row builder) ─▶ sink::Writer ─▶ Sink::deliver
//!  (HTTP, gRPC) (admission)               Delta:   encode (Parquet) ▸ store (upload) ▸ commit (Delta log)
//!                                         Zerobus: encode::rows (records)            ▸ databricks::zerobus
//! ```
//!
//! `ack` holds what a request is owed and settles it; `health` is what `/ready` answers; `self_metrics` what
//! `/metrics` (on `--metrics-addr`) counts; `settings` the parsers every component's flags share and `config`
//! puts those sections together; `serve` puts the collector together; `upkeep` (compaction, vacuum) keeps tables
//! healthy off the ack path; `databricks` talks to a workspace.

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
mod self_metrics;
mod serve;
mod settings;
mod sink;
mod store;
mod table;
mod upkeep;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

// Running the collector (`main`, integration tests, the end-to-end bench).
pub use config::{Config, ConfigError, Maintained, OptimizeArgs, ServeArgs, TableArgs, TableLocation, VacuumArgs};
pub use serve::{serve, Collector, ServeError};
pub use settings::InvalidSetting;
// The binary's log subscriber counts the object store client's retries with it (self-metrics).
pub use store::StoreRetries;

// Table upkeep (`otel-delta optimize` / `vacuum`).
pub use commit::{register_object_stores, CommitError, Table, UploadedFile, Wanted};
pub use upkeep::{optimize, vacuum, OptimizeOptions, OptimizeReport, UpkeepError, VacuumReport};

// Each step on its own, for the stage benches, the fuzz targets and the perf harness.
pub use decode::{to_protobuf, validate, validate_logs, DecodeError, Format, Signal, Summary};
pub use encode::{Codec, EncodedFile, FileStats, ParquetFile};
pub use receiver::{decompress, BodyError, Encoding};
pub use table::{Contract, Layout, Rows};
