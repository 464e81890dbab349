//! The analyzer's configuration, and opening and serving an analyzer from it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use meridian_collector::kafka::KafkaConfig;
use meridian_collector::sink::Sink;
use prometheus::Registry;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::consume::KafkaIngest;
use crate::derive::RedConfig;
use crate::detect::{AnomalyConfig, DetectConfig};
use crate::error::AnalyzerError;
use crate::forecast::live::ForecastConfig;
use crate::ingest::{self, StoreSink};
use crate::pipeline::{Pipeline, PipelineConfig};
use crate::query::{self, PgConfig, PgServer, QueryConfig, QueryEngine};
use crate::store::{Store, StoreConfig};
use crate::telemetry::AnalyzerMetrics;

/// Configuration of the analyzer (`[analyzer]` in the TOML file).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyzerConfig {
    /// The HTTP API: SQL, ingest from collectors, `/healthz`, `/readyz`, `/metrics`.
    pub http_addr: SocketAddr,
    /// Flushing and limits of the store.
    pub store: StoreConfig,
    /// Limits of SQL queries.
    pub query: QueryConfig,
    /// The PostgreSQL wire endpoint.
    pub postgres: PgConfig,
    /// RED series derived from spans and duration histograms.
    pub red: RedConfig,
    /// The streaming anomaly detectors (one setting for every series, live and offline).
    pub detect: DetectConfig,
    /// Live detection on the RED series.
    pub anomalies: AnomalyConfig,
    /// Live forecasts of the RED series.
    pub forecast: ForecastConfig,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([0, 0, 0, 0], 4380)),
            store: StoreConfig::default(),
            query: QueryConfig::default(),
            postgres: PgConfig::default(),
            red: RedConfig::default(),
            detect: DetectConfig::default(),
            anomalies: AnomalyConfig::default(),
            forecast: ForecastConfig::default(),
        }
    }
}

/// An opened analyzer: the store and the SQL engine over it.
pub struct Analyzer {
    config: AnalyzerConfig,
    store: Arc<Store>,
    engine: Arc<QueryEngine>,
    registry: Registry,
    metrics: AnalyzerMetrics,
    extra_ready: Option<meridian_collector::admin::ReadyCheck>,
    kafka: Option<KafkaConfig>,
    pipeline: Arc<Pipeline>,
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
    pipeline: JoinHandle<()>,
}

impl AnalyzerConfig {
    /// Opens the store (under `data_dir` unless `store.url` names another place); metrics go
    /// to `registry`.
    pub async fn open(
        &self,
        data_dir: &Path,
        registry: &Registry,
    ) -> Result<Analyzer, AnalyzerError> {
        let metrics = AnalyzerMetrics::new(registry)?;
        let store = Store::open(data_dir, self.store.clone(), metrics.clone()).await?;
        let store = Arc::new(store);
        let engine = QueryEngine::new(&store, self.query.clone(), metrics.clone())
            .map_err(|e| AnalyzerError::Store(crate::error::StoreError::Schema(e.to_string())))?;
        let pipeline = Pipeline::start(
            PipelineConfig {
                red: self.red.clone(),
                detect: self.detect.clone(),
                anomalies: self.anomalies.clone(),
                forecast: self.forecast.clone(),
            },
            Arc::clone(&store),
            metrics.clone(),
        )
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
    pub fn ready_check(&self) -> meridian_collector::admin::ReadyCheck {
        let store = Arc::clone(&self.store);
        let extra = self.extra_ready.clone();
        Arc::new(move || {
            store.ready()?;
            extra.as_ref().map_or(Ok(()), |check| check())
        })
    }

    /// Adds a readiness condition (standalone: the in-process collector's).
    pub fn with_ready_check(mut self, check: meridian_collector::admin::ReadyCheck) -> Self {
        self.extra_ready = Some(check);
        self
    }

    /// Also consume batches from Kafka (`serve` starts the consumer).
    pub fn with_kafka(mut self, config: KafkaConfig) -> Self {
        self.kafka = Some(config);
        self
    }

    /// All HTTP routes: SQL, ingest and the operator endpoints.
    pub fn router(&self) -> Router {
        query::http::router(Arc::clone(&self.engine))
            .merge(ingest::router(Arc::clone(&self.store)))
            .merge(meridian_collector::admin::router(
                self.registry.clone(),
                self.ready_check(),
            ))
    }

    /// Binds the HTTP API and starts the flusher.
    pub async fn serve(self) -> Result<RunningAnalyzer, AnalyzerError> {
        let addr = self.config.http_addr;
        let error = |source| AnalyzerError::Bind {
            what: "HTTP API",
            addr,
            source,
        };
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(error)?;
        let http_addr = listener.local_addr().map_err(error)?;
        let stop_http = CancellationToken::new();
        let stop_serving = CancellationToken::new();
        let (pg_addr, pg) = if self.config.postgres.enabled {
            let server = PgServer::bind(&self.config.postgres, Arc::clone(&self.engine)).await?;
            let addr = self.config.postgres.addr;
            let pg_addr = server.local_addr().map_err(|source| AnalyzerError::Bind {
                what: "PostgreSQL endpoint",
                addr,
                source,
            })?;
            tracing::info!(%pg_addr, "analyzer serving SQL over the PostgreSQL protocol");
            (
                Some(pg_addr),
                Some(tokio::spawn(server.run(stop_serving.clone()))),
            )
        } else {
            (None, None)
        };
        let stop_flusher = CancellationToken::new();
        let router = self.router();
        let stop = stop_http.clone();
        let http = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "analyzer HTTP server failed");
            }
        });
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
        })
    }
}

impl RunningAnalyzer {
    /// Stops the HTTP API and the Kafka consumer, flushes every table to Parquet, then commits
    /// the consumed offsets.
    pub async fn shutdown(self) {
        self.stop_http.cancel();
        self.stop_serving.cancel();
        self.stop_consumer.cancel();
        let _ = self.http.await;
        if let Some(pg) = self.pg {
            let _ = pg.await;
        }
        let _ = self.maintenance.await;
        let consumer = match self.consumer {
            Some(task) => task.await.ok(),
            None => None,
        };
        // Last RED points and the analysis state before the last flush.
        self.stop_pipeline.cancel();
        let _ = self.pipeline.await;
        self.stop_flusher.cancel();
        let _ = self.flusher.await;
        if let Some(consumer) = consumer {
            consumer.commit_durable();
        }
    }
}
