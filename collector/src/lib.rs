//! Meridian's regional collector: receives OTLP (gRPC and HTTP), stamps the region, converts to
//! Arrow record batches in the shared [`schema`], and forwards them through a [`sink::Sink`].
//!
//! Data flow: [`otlp`] (receive) → [`convert`] → [`queue`] → [`buffer`] (disk, optional) →
//! [`forward`] → [`sink`] (in-process, HTTP or Kafka); beside the receivers, [`probe`] checks
//! the configured endpoints and queues its results the same way.

#![warn(missing_docs)]

pub mod admin;
pub mod auth;
pub mod buffer;
pub mod collector;
pub mod config;
pub mod convert;
pub mod error;
pub mod forward;
pub mod ipc;
pub mod json;
pub mod kafka;
pub mod listen;
pub mod memory;
pub mod otlp;
pub mod probe;
pub mod queue;
pub mod schema;
pub mod self_metrics;
pub mod signal;
pub mod sink;
pub mod task;
pub mod telemetry;
pub mod tls;
pub mod wire;

#[cfg(test)]
mod testing;

pub use collector::{Destination, RunningCollector};
pub use config::CollectorConfig;
pub use error::CollectorError;
pub use signal::{Signal, SignalBatch};
