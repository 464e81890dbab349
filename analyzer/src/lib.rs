//! Meridian's central analyzer: stores the collectors' Arrow batches (memory, then Parquet) and
//! answers SQL over them.
//!
//! Data flow: [`ingest`] (from collectors over HTTP) or [`consume`] (from Kafka) → [`store`] →
//! [`derive`] (RED series) → [`detect`] (anomalies) and [`forecast`] → [`recommend`] (routing
//! and capacity, with endpoint [`health`] from the collectors' probes), run by the [`pipeline`];
//! [`query`] answers SQL over all of it (HTTP and the PostgreSQL protocol); [`console`] is the
//! page people look at without Grafana.

#![warn(missing_docs)]

pub mod alert;
pub mod analyzer;
pub mod config;
pub mod console;
pub mod consume;
pub mod derive;
pub mod detect;
pub mod error;
pub mod forecast;
pub mod health;
pub mod ingest;
mod pairs;
pub mod pipeline;
pub mod query;
pub mod recommend;
pub mod schema;
pub mod store;
pub mod telemetry;
pub mod webhook;

pub use analyzer::{Analyzer, RunningAnalyzer};
pub use config::AnalyzerConfig;
pub use error::{AnalyzerError, ConsumeError, QueryError, StoreError};
