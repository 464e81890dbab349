//! The read-only SQL engine: a DataFusion session with the store's tables registered, and the
//! limits that keep one query from hurting the others or ingest: a timeout, a memory pool (a
//! query over it fails with a clear error instead of growing the process) and a cap on result
//! rows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use meridian_collector::Signal;
use serde::{Deserialize, Serialize};

use crate::error::QueryError;
use crate::store::Store;
use crate::telemetry::AnalyzerMetrics;

/// Limits of SQL queries (`[analyzer.query]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// A query still running after this long is cancelled.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Memory all running queries may hold together (sorts and joins spill to disk first);
    /// a query that needs more fails with an error saying so.
    pub memory_limit_bytes: usize,
    /// Most rows a result returns; the rest are cut off and the result is marked truncated.
    pub max_result_rows: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            memory_limit_bytes: 2 << 30,
            max_result_rows: 100_000,
        }
    }
}

/// Runs SQL against `spans`, `metrics` and `logs`; refuses anything that is not a query.
pub struct QueryEngine {
    ctx: SessionContext,
    config: QueryConfig,
    metrics: AnalyzerMetrics,
}

/// The result of a query: its schema (also for zero rows) and batches.
pub struct QueryResult {
    /// Output schema.
    pub schema: SchemaRef,
    /// Output rows.
    pub batches: Vec<RecordBatch>,
    /// Whether rows past `max_result_rows` were cut off.
    pub truncated: bool,
}

impl QueryEngine {
    /// An engine over the store's tables, with `config`'s limits.
    pub fn new(
        store: &Store,
        config: QueryConfig,
        metrics: AnalyzerMetrics,
    ) -> Result<Self, QueryError> {
        let session = SessionConfig::new().with_information_schema(true);
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(config.memory_limit_bytes, 1.0)
            .build_arc()
            .map_err(|e| QueryError::Execution(e.to_string()))?;
        let ctx = SessionContext::new_with_config_rt(session, runtime);
        for signal in Signal::ALL {
            ctx.register_table(signal.table(), store.table(signal))
                .map_err(|e| QueryError::Execution(e.to_string()))?;
        }
        Ok(Self {
            ctx,
            config,
            metrics,
        })
    }

    /// Plans and runs one read-only statement.
    ///
    /// DDL (`CREATE`, `DROP`), DML (`INSERT`, `COPY`) and statements (`SET`) are refused with
    /// [`QueryError::Invalid`], as are unknown tables, columns and functions. A query over the
    /// time limit ends with [`QueryError::Timeout`], one over the memory limit with
    /// [`QueryError::TooLarge`]; a result over `max_result_rows` is cut and marked truncated.
    pub async fn query(&self, sql: &str) -> Result<QueryResult, QueryError> {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.config.timeout, self.run(sql)).await {
            Ok(result) => result,
            // Dropping the future cancels the plan's streams and frees their memory.
            Err(_) => Err(QueryError::Timeout(self.config.timeout)),
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(QueryError::Invalid(_)) => "invalid",
            Err(QueryError::Execution(_)) => "failed",
            Err(QueryError::Timeout(_)) => "timeout",
            Err(QueryError::TooLarge(_)) => "too_large",
        };
        self.metrics.queries.with_label_values(&[outcome]).inc();
        self.metrics
            .query_seconds
            .with_label_values(&[outcome])
            .observe(started.elapsed().as_secs_f64());
        result
    }

    async fn run(&self, sql: &str) -> Result<QueryResult, QueryError> {
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let frame = self
            .ctx
            .sql_with_options(sql, options)
            .await
            .map_err(classify)?;
        let schema = Arc::new(frame.schema().as_arrow().clone());
        // One row past the cap tells whether anything was cut, and lets the plan stop early.
        let max = self.config.max_result_rows;
        let frame = frame
            .limit(0, Some(max.saturating_add(1)))
            .map_err(classify)?;
        let mut batches = frame.collect().await.map_err(classify)?;
        let truncated = truncate(&mut batches, max);
        Ok(QueryResult {
            schema,
            batches,
            truncated,
        })
    }
}

/// Keeps the first `max` rows; says whether any were dropped.
fn truncate(batches: &mut Vec<RecordBatch>, max: usize) -> bool {
    let mut kept = 0;
    for (i, batch) in batches.iter_mut().enumerate() {
        if kept + batch.num_rows() > max {
            *batch = batch.slice(0, max - kept);
            batches.truncate(i + 1);
            return true;
        }
        kept += batch.num_rows();
    }
    false
}

/// Errors the user can fix are `Invalid`; the rest are failures of the engine.
fn classify(e: DataFusionError) -> QueryError {
    let message = e.to_string();
    match e.find_root() {
        DataFusionError::ResourcesExhausted(_) => QueryError::TooLarge(message),
        DataFusionError::Plan(_)
        | DataFusionError::SQL(..)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_)
        | DataFusionError::Configuration(_) => QueryError::Invalid(message),
        _ => QueryError::Execution(message),
    }
}
