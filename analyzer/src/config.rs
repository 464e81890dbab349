//! The analyzer's configuration (`[analyzer]`): one table per stage it runs.

use meridian_collector::tls::ServerTlsConfig;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use meridian_collector::self_metrics::SelfMetricsConfig;

use crate::alert::AlertingConfig;
use crate::derive::DeriveConfig;
use crate::detect::DetectConfig;
use crate::forecast::live::ForecastConfig;
use crate::health::HealthConfig;
use crate::pipeline::PipelineConfig;
use crate::query::{PgConfig, QueryConfig};
use crate::recommend::RecommendConfig;
use crate::store::StoreConfig;

/// Configuration of the analyzer (`[analyzer]` in the TOML file).
///
/// The file keeps the analysis stages' tables (`[analyzer.derive]`, `[analyzer.detect]`,
/// `[analyzer.forecast]`, `[analyzer.health]`, `[analyzer.recommend]`) directly under `[analyzer]`; in code they are one [`PipelineConfig`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(from = "AnalyzerTable", into = "AnalyzerTable")]
pub struct AnalyzerConfig {
    /// The HTTP API: SQL, ingest from collectors, `/healthz`, `/readyz`, `/metrics`.
    pub http_addr: SocketAddr,
    /// TLS on the HTTP API (`[analyzer.tls]`; off by default).
    pub tls: ServerTlsConfig,
    /// Flushing and limits of the store.
    pub store: StoreConfig,
    /// Limits of SQL queries.
    pub query: QueryConfig,
    /// The PostgreSQL wire endpoint.
    pub postgres: PgConfig,
    /// RED series, live detection and forecasts.
    pub pipeline: PipelineConfig,
    /// Alert rules and notifications (`[analyzer.alerting]`).
    pub alerting: AlertingConfig,
    /// How often the analyzer records its own metrics in the `metrics` table
    /// (`[analyzer.self_metrics]`, service `meridian-analyzer`, region `center`).
    pub self_metrics: SelfMetricsConfig,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([0, 0, 0, 0], 4380)),
            tls: ServerTlsConfig::default(),
            store: StoreConfig::default(),
            query: QueryConfig::default(),
            postgres: PgConfig::default(),
            pipeline: PipelineConfig::default(),
            alerting: AlertingConfig::default(),
            self_metrics: SelfMetricsConfig::default(),
        }
    }
}

/// `[analyzer]` as written in the file.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct AnalyzerTable {
    http_addr: SocketAddr,
    tls: ServerTlsConfig,
    store: StoreConfig,
    query: QueryConfig,
    postgres: PgConfig,
    derive: DeriveConfig,
    detect: DetectConfig,
    forecast: ForecastConfig,
    health: HealthConfig,
    recommend: RecommendConfig,
    alerting: AlertingConfig,
    self_metrics: SelfMetricsConfig,
}

impl Default for AnalyzerTable {
    fn default() -> Self {
        AnalyzerConfig::default().into()
    }
}

impl From<AnalyzerTable> for AnalyzerConfig {
    fn from(t: AnalyzerTable) -> Self {
        Self {
            http_addr: t.http_addr,
            tls: t.tls,
            store: t.store,
            query: t.query,
            postgres: t.postgres,
            pipeline: PipelineConfig {
                derive: t.derive,
                detect: t.detect,
                forecast: t.forecast,
                health: t.health,
                recommend: t.recommend,
            },
            alerting: t.alerting,
            self_metrics: t.self_metrics,
        }
    }
}

impl From<AnalyzerConfig> for AnalyzerTable {
    fn from(c: AnalyzerConfig) -> Self {
        Self {
            http_addr: c.http_addr,
            tls: c.tls,
            store: c.store,
            query: c.query,
            postgres: c.postgres,
            derive: c.pipeline.derive,
            detect: c.pipeline.detect,
            forecast: c.pipeline.forecast,
            health: c.pipeline.health,
            recommend: c.pipeline.recommend,
            alerting: c.alerting,
            self_metrics: c.self_metrics,
        }
    }
}
