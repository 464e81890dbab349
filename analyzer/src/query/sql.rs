//! The read-only SQL engine: a DataFusion session with the store's tables registered, and the
//! limits that keep one query from hurting the others or ingest: a timeout, a memory pool (a
//! query over it fails with a clear error instead of growing the process), a cap on result
//! rows, a cap on concurrent queries, and a thread pool of its own, so a heavy query competes
//! with ingest for CPU through the OS scheduler instead of holding ingest's threads.
//!
//! Both SQL endpoints ([`super::http`], [`super::postgres`]) plan and run through this engine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use futures::stream::{BoxStream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Semaphore};

use crate::error::QueryError;
use crate::store::{Dataset, Store};
use crate::telemetry::AnalyzerMetrics;

/// The catalog (PostgreSQL: database) the tables live in, under schema `public`.
pub const CATALOG: &str = "meridian";

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
    /// Most rows a result returns. Over HTTP the rest are cut off and the result is marked
    /// truncated; PostgreSQL has no such mark, so there the query fails with an error saying so.
    pub max_result_rows: usize,
    /// Queries running at once; more wait (their wait counts against `timeout`).
    pub max_concurrent: usize,
    /// Threads of the query pool, apart from ingest's (0: one per core).
    pub threads: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            memory_limit_bytes: 2 << 30,
            max_result_rows: 100_000,
            max_concurrent: 8,
            threads: 0,
        }
    }
}

/// Runs SQL against `spans`, `metrics` and `logs`; refuses anything that is not a query.
pub struct QueryEngine {
    ctx: SessionContext,
    config: QueryConfig,
    metrics: AnalyzerMetrics,
    pool: QueryPool,
    running: Arc<Semaphore>,
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

/// A running query's batches, produced on the query pool.
pub struct QueryStream {
    /// Output schema.
    pub schema: SchemaRef,
    /// The batches; an error ends the stream.
    pub batches: BoxStream<'static, Result<RecordBatch, QueryError>>,
}

/// The query thread pool; stopped without blocking when the engine is dropped (which may be on
/// an async thread).
struct QueryPool(Option<tokio::runtime::Runtime>);

impl QueryPool {
    fn new(threads: usize) -> Result<Self, QueryError> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            threads
        };
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("meridian-query")
            // I/O for object storage (S3) reads, time for deadlines.
            .enable_all()
            .build()
            .map(|runtime| Self(Some(runtime)))
            .map_err(|e| QueryError::Execution(format!("starting the query threads: {e}")))
    }

    fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.0.as_ref().map(tokio::runtime::Runtime::handle)
    }
}

impl Drop for QueryPool {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The options that make a session read-only.
fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

impl QueryConfig {
    /// The SQL engine over `store`, with these limits; metrics go to `metrics`.
    pub fn build(
        &self,
        store: &Store,
        metrics: AnalyzerMetrics,
    ) -> Result<QueryEngine, QueryError> {
        QueryEngine::new(store, self.clone(), metrics)
    }
}

impl QueryEngine {
    /// An engine over the store's tables, with `config`'s limits.
    fn new(
        store: &Store,
        config: QueryConfig,
        metrics: AnalyzerMetrics,
    ) -> Result<Self, QueryError> {
        // PostgreSQL's information_schema (below) replaces DataFusion's.
        let mut session = SessionConfig::new()
            .with_information_schema(false)
            .with_default_catalog_and_schema(CATALOG, "public");
        // HTTP parses with PostgreSQL's dialect too, so both endpoints read SQL alike.
        session.options_mut().sql_parser.dialect = datafusion::common::config::Dialect::PostgreSQL;

        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(config.memory_limit_bytes, 1.0)
            .build_arc()
            .map_err(|e| QueryError::Execution(e.to_string()))?;
        store.objects().register(&runtime);
        let ctx = SessionContext::new_with_config_rt(session, runtime);
        for signal in Dataset::ALL {
            ctx.register_table(signal.table(), store.table(signal))
                .map_err(|e| QueryError::Execution(e.to_string()))?;
        }
        let catalogs = ctx.state().catalog_list().clone();
        if let Some(catalog) = catalogs.catalog(CATALOG) {
            catalog
                .register_schema(
                    super::information_schema::NAME,
                    Arc::new(super::information_schema::InformationSchema::new(&catalogs)),
                )
                .map_err(|e| QueryError::Execution(e.to_string()))?;
        }
        super::dialect::install(&ctx, CATALOG).map_err(|e| QueryError::Execution(e.to_string()))?;
        Ok(Self {
            ctx,
            pool: QueryPool::new(config.threads)?,
            running: Arc::new(Semaphore::new(config.max_concurrent.max(1))),
            config,
            metrics,
        })
    }

    /// The DataFusion session: tables, `pg_catalog`, functions (for planning only; run plans
    /// with [`QueryEngine::stream`] so the limits apply).
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    /// The configured limits.
    pub fn config(&self) -> &QueryConfig {
        &self.config
    }

    /// Plans and runs one read-only statement.
    ///
    /// DDL (`CREATE`, `DROP`), DML (`INSERT`, `COPY`) and statements (`SET`) are refused with
    /// [`QueryError::Invalid`], as are unknown tables, columns and functions. A query over the
    /// time limit ends with [`QueryError::Timeout`], one over the memory limit with
    /// [`QueryError::TooLarge`]; a result over `max_result_rows` is cut and marked truncated.
    pub async fn query(&self, sql: &str) -> Result<QueryResult, QueryError> {
        let started = Instant::now();
        let sql = super::dialect::rewrite(&self.ctx, sql);
        let plan = match self.plan(&sql).await {
            Ok(plan) => plan,
            Err(e) => {
                record(&self.metrics, e.outcome(), started);
                return Err(e);
            }
        };
        let max = self.config.max_result_rows;
        let mut stream = self.stream(plan, Some(max.saturating_add(1))).await?;
        let mut batches = Vec::new();
        while let Some(batch) = stream.batches.next().await {
            batches.push(batch?);
        }
        let truncated = truncate(&mut batches, max);
        Ok(QueryResult {
            schema: stream.schema,
            batches,
            truncated,
        })
    }

    /// Plans one SQL statement (running it through [`stream`](Self::stream) refuses anything
    /// but a query).
    pub async fn plan(&self, sql: &str) -> Result<LogicalPlan, QueryError> {
        let state = self.ctx.state();
        state.create_logical_plan(sql).await.map_err(classify)
    }

    /// Runs a planned query on the query pool within the limits; at most `limit` rows.
    ///
    /// The timeout covers the wait for a free slot, planning and every batch; when it passes
    /// or the stream is dropped, the query is cancelled and its memory freed.
    pub async fn stream(
        &self,
        plan: LogicalPlan,
        limit: Option<usize>,
    ) -> Result<QueryStream, QueryError> {
        self.stream_within(plan, limit, None).await
    }

    /// As [`stream`](Self::stream), with a shorter timeout if the client asked for one
    /// (PostgreSQL's `SET statement_timeout`); the configured timeout stays the ceiling.
    pub async fn stream_within(
        &self,
        plan: LogicalPlan,
        limit: Option<usize>,
        timeout: Option<Duration>,
    ) -> Result<QueryStream, QueryError> {
        let started = Instant::now();
        let timeout = timeout.map_or(self.config.timeout, |t| t.min(self.config.timeout));
        let deadline = tokio::time::Instant::now() + timeout;
        let checked = read_only().verify_plan(&plan).map_err(classify);
        let result = match checked {
            Ok(()) => self.start(plan, limit, deadline, timeout, started).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            record(&self.metrics, e.outcome(), started);
        }
        result
    }

    async fn start(
        &self,
        plan: LogicalPlan,
        limit: Option<usize>,
        deadline: tokio::time::Instant,
        timeout: Duration,
        started: Instant,
    ) -> Result<QueryStream, QueryError> {
        let permit = tokio::time::timeout_at(deadline, Arc::clone(&self.running).acquire_owned())
            .await
            .map_err(|_| QueryError::Timeout(timeout))?
            .map_err(|_| QueryError::Execution("the query engine is shutting down".into()))?;
        // EXPLAIN [ANALYZE] must stay the plan's root; its output is small anyway.
        let explain = matches!(plan, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_));
        let mut frame = self
            .ctx
            .execute_logical_plan(plan)
            .await
            .map_err(classify)?;
        if let Some(limit) = limit.filter(|_| !explain) {
            frame = frame.limit(0, Some(limit)).map_err(classify)?;
        }
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let Some(pool) = self.pool.handle() else {
            return Err(QueryError::Execution(
                "the query engine is shutting down".into(),
            ));
        };
        // Two batches of slack: the pool runs ahead of a slow client only that far.
        let (tx, rx) = mpsc::channel::<Result<RecordBatch, QueryError>>(2);
        let metrics = self.metrics.clone();
        let task = pool.spawn(async move {
            let _permit = permit;
            let run = async {
                // Plans are executed here so their partitions' tasks spawn on the pool.
                let mut batches = frame.execute_stream().await.map_err(classify)?;
                while let Some(batch) = batches.next().await {
                    let batch = batch.map_err(classify)?;
                    if tx.send(Ok(batch)).await.is_err() {
                        return Ok(()); // the client went away
                    }
                }
                Ok(())
            };
            let outcome = match tokio::time::timeout_at(deadline, run).await {
                Ok(outcome) => outcome,
                Err(_) => Err(QueryError::Timeout(timeout)),
            };
            let label = outcome.as_ref().map_or_else(QueryError::outcome, |()| "ok");
            record(&metrics, label, started);
            if let Err(e) = outcome {
                let _ = tx.send(Err(e)).await;
            }
        });
        let task = AbortOnDrop(Some(task));
        let batches = futures::stream::unfold((rx, task), |(mut rx, mut task)| async move {
            if let Some(item) = rx.recv().await {
                return Some((item, (rx, task)));
            }
            // The channel closed: the end, unless the task died without saying why.
            let handle = task.0.take()?;
            match handle.await {
                Err(e) if e.is_panic() => {
                    tracing::error!(error = %e, "a query panicked");
                    let failed = QueryError::Execution(format!("the query failed: {e}"));
                    Some((Err(failed), (rx, task)))
                }
                _ => None,
            }
        })
        .boxed();
        Ok(QueryStream { schema, batches })
    }
}

/// The query's task; cancelled when its stream is dropped.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// Counts a finished query by outcome (`ok` or [`QueryError::outcome`]).
fn record(metrics: &AnalyzerMetrics, outcome: &str, started: Instant) {
    metrics.queries.with_label_values(&[outcome]).inc();
    metrics
        .query_seconds
        .with_label_values(&[outcome])
        .observe(started.elapsed().as_secs_f64());
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
pub(crate) fn classify(e: DataFusionError) -> QueryError {
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
