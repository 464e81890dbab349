//! A running analyzer, assembled from its configuration: the store, the SQL engine over it and
//! the analysis pipeline ([`AnalyzerConfig::build`]), then its servers, flusher, maintenance,
//! Kafka consumer and pipeline tasks ([`Analyzer::start`]).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use meridian_collector::admin::{self, ReadyCheck};
use meridian_collector::auth::http::require;
use meridian_collector::auth::{Auth, Scope};
use meridian_collector::kafka::KafkaConfig;
use meridian_collector::listen::{bind, spawn_https};
use meridian_collector::memory::MemoryLimit;
use meridian_collector::self_metrics::{Reporter, ANALYZER_PREFIXES, ANALYZER_SERVICE};
use meridian_collector::sink::Sink;
use meridian_collector::task::{join, TaskFailed};
use prometheus::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::AnalyzerConfig;
use crate::consume::KafkaIngest;
use crate::error::AnalyzerError;
use crate::ingest::{self, StoreSink};
use crate::pipeline::Pipeline;
use crate::query::{self, QueryEngine};
use crate::store::Store;
use crate::telemetry::AnalyzerMetrics;

/// A built analyzer: the store, the SQL engine and the pipeline, not yet serving.
pub struct Analyzer {
    config: AnalyzerConfig,
    store: Arc<Store>,
    engine: Arc<QueryEngine>,
    registry: Registry,
    metrics: AnalyzerMetrics,
    extra_ready: Option<ReadyCheck>,
    kafka: Option<KafkaConfig>,
    pipeline: Arc<Pipeline>,
    auth: Auth,
    memory: MemoryLimit,
}

/// A serving analyzer.
pub struct RunningAnalyzer {
    /// Bound HTTP address.
    pub http_addr: SocketAddr,
    /// Bound PostgreSQL address, if the endpoint is enabled.
    pub pg_addr: Option<SocketAddr>,
    stop_serving: CancellationToken,
    pg: Option<JoinHandle<()>>,
    maintenance: JoinHandle<()>,
    stop_http: CancellationToken,
    stop_flusher: CancellationToken,
    http: JoinHandle<()>,
    flusher: JoinHandle<()>,
    stop_consumer: CancellationToken,
    consumer: Option<JoinHandle<KafkaIngest>>,
    stop_pipeline: CancellationToken,
    pipeline: JoinHandle<Result<(), TaskFailed>>,
    delivery: JoinHandle<()>,
    alerts: JoinHandle<()>,
    own_metrics: Option<JoinHandle<()>>,
}

impl AnalyzerConfig {
    /// Opens the store (under `data_dir` unless `store.url` names another place), builds the
    /// SQL engine and the pipeline over it; metrics go to `registry`.
    pub async fn build(
        &self,
        data_dir: &Path,
        registry: &Registry,
    ) -> Result<Analyzer, AnalyzerError> {
        let metrics = AnalyzerMetrics::new(registry)?;
        let store = Arc::new(self.store.build(data_dir, metrics.clone()).await?);
        let engine = self
            .query
            .build(&store, metrics.clone())
            .map_err(AnalyzerError::QueryEngine)?;
        let pipeline = self
            .pipeline
            .build(Arc::clone(&store), metrics.clone())
            .await?;
        Ok(Analyzer {
            pipeline,
            config: self.clone(),
            store,
            engine: Arc::new(engine),
            registry: registry.clone(),
            metrics,
            extra_ready: None,
            kafka: None,
            auth: Auth::open(),
            memory: MemoryLimit::unlimited(),
        })
    }
}

impl Analyzer {
    /// The in-process sink feeding this analyzer's store (standalone mode).
    pub fn sink(&self) -> Arc<dyn Sink> {
        Arc::new(StoreSink::new(Arc::clone(&self.store)))
    }

    /// The SQL engine.
    pub fn engine(&self) -> Arc<QueryEngine> {
        Arc::clone(&self.engine)
    }

    /// The analysis pipeline (RED series, anomalies, forecasts).
    pub fn pipeline(&self) -> Arc<Pipeline> {
        Arc::clone(&self.pipeline)
    }

    /// The store.
    pub fn store(&self) -> Arc<Store> {
        Arc::clone(&self.store)
    }

    /// The analyzer's readiness: its store is keeping up; plus `extra` (standalone adds the
    /// collector's).
    pub fn ready_check(&self) -> ReadyCheck {
        let store = Arc::clone(&self.store);
        let extra = self.extra_ready.clone();
        Arc::new(move || {
            store.ready()?;
            extra.as_ref().map_or(Ok(()), |check| check())
        })
    }

    /// Adds a readiness condition (standalone: the in-process collector's).
    pub fn with_ready_check(mut self, check: ReadyCheck) -> Self {
        self.extra_ready = Some(check);
        self
    }

    /// Also consume batches from Kafka (`start` starts the consumer).
    pub fn with_kafka(mut self, config: KafkaConfig) -> Self {
        self.kafka = Some(config);
        self
    }

    /// Requires tokens on the HTTP API (`[auth]`): `read` for SQL and the `GET` endpoints,
    /// `admin` for overrides, `ingest` for collectors and agents' reports.
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Refuses deliveries on `/api/v1/ingest` (503, retried by collectors) that would take the
    /// process past `memory`.
    pub fn with_memory_limit(mut self, memory: MemoryLimit) -> Self {
        self.memory = memory;
        self
    }

    /// All HTTP routes: SQL, ingest, the operator endpoints and the console, each guarded by
    /// the scope it needs. The console's page and assets are open (they hold no data; the page
    /// asks for a `read` token when the API wants one), as are `/healthz` and `/readyz`.
    pub fn router(&self) -> Router {
        let auth = &self.auth;
        require(
            query::http::router(Arc::clone(&self.engine)),
            auth,
            Scope::Read,
            "api",
        )
        .merge(require(
            ingest::router(Arc::clone(&self.store), self.memory.clone()),
            auth,
            Scope::Ingest,
            "api",
        ))
        .merge(crate::recommend::http::router(
            self.pipeline.board(),
            self.metrics.clone(),
            auth,
        ))
        .merge(admin::router(
            self.registry.clone(),
            self.ready_check(),
            auth,
        ))
        .merge(crate::console::router())
    }

    /// Binds the HTTP API and the PostgreSQL endpoint, and starts the flusher, maintenance,
    /// the Kafka consumer (if configured) and the pipeline.
    pub async fn start(self) -> Result<RunningAnalyzer, AnalyzerError> {
        let (listener, http_addr) = bind("HTTP API", self.config.http_addr).await?;
        let stop_http = CancellationToken::new();
        let stop_serving = CancellationToken::new();
        let (pg_addr, pg) = if self.config.postgres.enabled {
            let (addr, task) = self
                .config
                .postgres
                .start(Arc::clone(&self.engine), stop_serving.clone())
                .await?;
            tracing::info!(pg_addr = %addr, "analyzer serving SQL over the PostgreSQL protocol");
            (Some(addr), Some(task))
        } else {
            (None, None)
        };
        let alerting = crate::alert::Alerting::new(
            self.config.alerting.clone(),
            Arc::clone(&self.engine),
            Arc::clone(&self.pipeline),
            Arc::clone(&self.store),
            self.ready_check(),
            self.metrics.clone(),
        );
        self.auth.warn_if_open("analyzer HTTP API", http_addr);
        let alerts_api = require(alerting.router(), &self.auth, Scope::Read, "api");
        let router = self.router().merge(alerts_api);
        let stop_flusher = CancellationToken::new();
        let tls = self.config.tls.acceptor(&stop_http)?;
        let http = spawn_https("analyzer API", listener, router, tls, stop_http.clone());
        let flusher = tokio::spawn(Arc::clone(&self.store).run_flusher(stop_flusher.clone()));
        let maintenance =
            tokio::spawn(Arc::clone(&self.store).run_maintenance(stop_serving.clone()));
        let stop_consumer = CancellationToken::new();
        let consumer = match &self.kafka {
            Some(kafka) => {
                let ingest =
                    KafkaIngest::start(kafka, Arc::clone(&self.store), self.metrics.clone())
                        .await?;
                Some(tokio::spawn(ingest.run(stop_consumer.clone())))
            }
            None => None,
        };
        let stop_pipeline = CancellationToken::new();
        let pipeline = tokio::spawn(Arc::clone(&self.pipeline).run(stop_pipeline.clone()));
        let delivery = tokio::spawn(crate::recommend::deliver::run(
            self.pipeline.board(),
            self.config.pipeline.recommend.delivery.clone(),
            self.kafka.clone(),
            self.metrics.clone(),
            stop_serving.clone(),
        ));
        let alerts = tokio::spawn(alerting.run(stop_serving.clone()));
        let own_metrics = self.own_metrics(stop_serving.clone());
        tracing::info!(%http_addr, "analyzer serving SQL on /api/v1/sql");
        Ok(RunningAnalyzer {
            http_addr,
            pg_addr,
            stop_serving,
            pg,
            maintenance,
            stop_http,
            stop_flusher,
            http,
            flusher,
            stop_consumer,
            consumer,
            stop_pipeline,
            pipeline,
            delivery,
            alerts,
            own_metrics,
        })
    }

    /// Records the analyzer's own metrics in its store (`[analyzer.self_metrics]`), beside the
    /// collectors' reports, for the "Meridian itself" dashboard.
    fn own_metrics(&self, stop: CancellationToken) -> Option<JoinHandle<()>> {
        let config = &self.config.self_metrics;
        if config.interval.is_zero() {
            return None;
        }
        let reporter = Reporter {
            interval: config.interval,
            prefixes: &ANALYZER_PREFIXES,
            service: ANALYZER_SERVICE,
            instance: config.instance_id(),
            region: "center".to_owned(),
        };
        let store = Arc::clone(&self.store);
        let deliver = move |batch| {
            let result = store.insert(batch).map_err(|e| e.to_string());
            std::future::ready(result)
        };
        Some(tokio::spawn(reporter.run(
            self.registry.clone(),
            deliver,
            stop,
        )))
    }
}

impl RunningAnalyzer {
    /// Stops the HTTP API and the Kafka consumer, closes the last RED intervals, flushes every
    /// table to Parquet, then commits the consumed offsets. Every task is joined even when one
    /// panicked; the first panic is returned after the flush.
    pub async fn shutdown(self) -> Result<(), TaskFailed> {
        self.stop_http.cancel();
        self.stop_serving.cancel();
        self.stop_consumer.cancel();
        let mut outcome = join("analyzer API", self.http).await.map(drop);
        if let Some(pg) = self.pg {
            outcome = outcome.and(join("PostgreSQL endpoint", pg).await);
        }
        outcome = outcome.and(join("maintenance", self.maintenance).await);
        outcome = outcome.and(join("recommendation delivery", self.delivery).await);
        outcome = outcome.and(join("alerting", self.alerts).await);
        if let Some(task) = self.own_metrics {
            outcome = outcome.and(join("own metrics", task).await);
        }
        let consumer = match self.consumer {
            Some(task) => match join("Kafka consumer", task).await {
                Ok(consumer) => Some(consumer),
                Err(e) => {
                    outcome = outcome.and(Err(e));
                    None
                }
            },
            None => None,
        };
        // Last RED points and the analysis state before the last flush.
        self.stop_pipeline.cancel();
        outcome = outcome.and(
            join("analysis pipeline", self.pipeline)
                .await
                .and_then(|r| r),
        );
        self.stop_flusher.cancel();
        outcome = outcome.and(join("flusher", self.flusher).await);
        if let Some(consumer) = consumer {
            consumer.commit_durable();
        }
        outcome
    }
}
