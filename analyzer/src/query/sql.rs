//! The read-only SQL engine: a DataFusion session with the store's tables registered.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use meridian_collector::Signal;

use crate::error::QueryError;
use crate::store::Store;
use crate::telemetry::AnalyzerMetrics;

/// Runs SQL against `spans`, `metrics` and `logs`; refuses anything that is not a query.
pub struct QueryEngine {
    ctx: SessionContext,
    metrics: AnalyzerMetrics,
}

/// The result of a query: its schema (also for zero rows) and batches.
pub struct QueryResult {
    /// Output schema.
    pub schema: SchemaRef,
    /// Output rows.
    pub batches: Vec<RecordBatch>,
}

impl QueryEngine {
    /// An engine over the store's tables.
    pub fn new(store: &Store, metrics: AnalyzerMetrics) -> Result<Self, QueryError> {
        let config = SessionConfig::new().with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        for signal in Signal::ALL {
            ctx.register_table(signal.table(), store.table(signal))
                .map_err(|e| QueryError::Execution(e.to_string()))?;
        }
        Ok(Self { ctx, metrics })
    }

    /// Plans and runs one read-only statement.
    ///
    /// DDL (`CREATE`, `DROP`), DML (`INSERT`, `COPY`) and statements (`SET`) are refused with
    /// [`QueryError::Invalid`], as are unknown tables, columns and functions.
    pub async fn query(&self, sql: &str) -> Result<QueryResult, QueryError> {
        let started = Instant::now();
        let result = self.run(sql).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(QueryError::Invalid(_)) => "invalid",
            Err(QueryError::Execution(_)) => "failed",
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
        let batches = frame.collect().await.map_err(classify)?;
        Ok(QueryResult { schema, batches })
    }
}

/// Errors the user can fix are `Invalid`; the rest are failures of the engine.
fn classify(e: DataFusionError) -> QueryError {
    let message = e.to_string();
    match e.find_root() {
        DataFusionError::Plan(_)
        | DataFusionError::SQL(..)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_)
        | DataFusionError::Configuration(_) => QueryError::Invalid(message),
        _ => QueryError::Execution(message),
    }
}
