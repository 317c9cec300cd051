//! Integration tests: real clients (the OpenTelemetry SDK's OTLP exporter, raw HTTP) against the collector,
//! results read back from the Delta table.

mod auth;
mod conformance;
mod databricks;
mod hostile;
mod http;
mod logs;
mod logs_reference;
mod reference;
mod sdk;
mod self_metrics;
mod shutdown;
mod stores;
mod support;
mod table;
mod tls;
mod upkeep;
mod zerobus;
