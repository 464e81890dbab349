//! Meridian's central analyzer: stores the collectors' Arrow batches (memory, then Parquet) and
//! answers SQL over them.
//!
//! Data flow: [`ingest`] (from collectors over HTTP) or [`consume`] (from Kafka) → [`store`] →
//! [`query`] (SQL over HTTP).

pub mod config;
pub mod consume;
pub mod detect;
pub mod error;
pub mod forecast;
pub mod ingest;
pub mod query;
pub mod store;
pub mod telemetry;

pub use config::{Analyzer, AnalyzerConfig, RunningAnalyzer};
pub use error::{AnalyzerError, QueryError, StoreError};
