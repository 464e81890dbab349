//! The root configuration: one TOML file of per-stage sections, with defaults for every key,
//! overridden by `MERIDIAN_*` environment variables and command-line flags (see `Cli`).
//! Keys renamed since the last release are still read ([`deprecated`]).

mod deprecated;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use meridian_agent::AgentConfig;
use meridian_analyzer::detect::SeriesConfig;
use meridian_analyzer::AnalyzerConfig;
use meridian_collector::auth::AuthConfig;
use meridian_collector::kafka::KafkaConfig;
use meridian_collector::CollectorConfig;
use serde::{Deserialize, Serialize};

/// Everything a Meridian process can be configured with (`examples/meridian.toml` shows all keys).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeridianConfig {
    /// Where the analyzer keeps its Parquet files (default `./meridian-data`).
    pub data_dir: Option<PathBuf>,
    /// The process's memory limit in bytes: receivers (OTLP, the analyzer's ingest API) refuse
    /// requests with a retryable 503 / UNAVAILABLE before reading them when resident memory plus
    /// what admitted requests may still allocate would pass it. Default: no limit.
    pub max_memory_bytes: Option<u64>,
    /// The regional collector.
    pub collector: CollectorConfig,
    /// The central analyzer.
    pub analyzer: AnalyzerConfig,
    /// Kafka between collectors and analyzers (used when `brokers` is set).
    pub kafka: KafkaConfig,
    /// The gateway agent (`meridian agent`).
    pub agent: AgentConfig,
    /// Tokens every listener but PostgreSQL requires (`[[auth.tokens]]`); none: open.
    pub auth: AuthConfig,
}

/// Overrides given on the command line or in the environment.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Overrides {
    /// TOML configuration file.
    #[arg(long, env = "MERIDIAN_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Directory for stored data.
    #[arg(long, env = "MERIDIAN_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Where the analyzer keeps Parquet files, e.g. `s3://bucket/prefix` [default: the data
    /// directory]; S3 credentials and endpoint come from the `AWS_*` variables or
    /// `[analyzer.store.url_options]`.
    #[arg(long, env = "MERIDIAN_STORE_URL", global = true)]
    pub store_url: Option<String>,
    /// OTLP/gRPC listen address [default: 0.0.0.0:4317].
    #[arg(long, env = "MERIDIAN_OTLP_GRPC_ADDR", global = true)]
    pub otlp_grpc_addr: Option<SocketAddr>,
    /// OTLP/HTTP listen address [default: 0.0.0.0:4318].
    #[arg(long, env = "MERIDIAN_OTLP_HTTP_ADDR", global = true)]
    pub otlp_http_addr: Option<SocketAddr>,
    /// The process's own HTTP API: SQL, health, metrics [default: 0.0.0.0:4380; collector: 4381;
    /// agent: 127.0.0.1:4390].
    #[arg(long, env = "MERIDIAN_HTTP_ADDR", global = true)]
    pub http_addr: Option<SocketAddr>,
    /// The analyzer's PostgreSQL wire endpoint [default: 0.0.0.0:15432].
    #[arg(long, env = "MERIDIAN_PG_ADDR", global = true)]
    pub pg_addr: Option<SocketAddr>,
    /// Region stamped on every row [default: local].
    #[arg(long, env = "MERIDIAN_REGION", global = true)]
    pub region: Option<String>,
    /// Rows the collector queue holds before answering with backpressure.
    #[arg(long, env = "MERIDIAN_QUEUE_CAPACITY_ROWS", global = true)]
    pub queue_capacity_rows: Option<usize>,
    /// How the collector encodes batches for Kafka, a remote analyzer and its disk buffer:
    /// columnar (encoding 2) or arrow-ipc (encoding 1, for analyzers from before 2)
    /// [default: columnar].
    #[arg(long, env = "MERIDIAN_WIRE_ENCODING", global = true)]
    pub wire_encoding: Option<meridian_collector::wire::Encoding>,
    /// Kafka bootstrap servers, HOST:PORT[,...]: collector and analyzer then go through Kafka.
    #[arg(long, env = "MERIDIAN_KAFKA_BROKERS", global = true)]
    pub kafka_brokers: Option<String>,
    /// Bytes the collector's disk buffer may take before receivers answer with backpressure.
    #[arg(long, env = "MERIDIAN_BUFFER_MAX_BYTES", global = true)]
    pub buffer_max_bytes: Option<u64>,
    /// The process's memory limit: requests it has no room for are refused, retryably.
    #[arg(long, env = "MERIDIAN_MAX_MEMORY_BYTES", global = true)]
    pub max_memory_bytes: Option<u64>,
}

impl MeridianConfig {
    /// Reads the file (if any) and applies the overrides.
    pub fn load(overrides: &Overrides) -> anyhow::Result<Self> {
        let mut config = match &overrides.config {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        if let Some(d) = &overrides.data_dir {
            config.data_dir = Some(d.clone());
        }
        if let Some(u) = &overrides.store_url {
            config.analyzer.store.url = Some(u.clone());
        }
        if let Some(a) = overrides.otlp_grpc_addr {
            config.collector.otlp.grpc_addr = a;
        }
        if let Some(a) = overrides.otlp_http_addr {
            config.collector.otlp.http_addr = a;
        }
        if let Some(a) = overrides.pg_addr {
            config.analyzer.postgres.addr = a;
        }
        if let Some(r) = &overrides.region {
            config.collector.region = r.clone();
        }
        if let Some(q) = overrides.queue_capacity_rows {
            config.collector.queue_capacity_rows = q;
        }
        if let Some(e) = overrides.wire_encoding {
            config.collector.wire_encoding = e;
        }
        if let Some(b) = &overrides.kafka_brokers {
            config.kafka.brokers = b.clone();
        }
        if let Some(b) = overrides.buffer_max_bytes {
            config.collector.buffer.max_bytes = b;
        }
        if let Some(m) = overrides.max_memory_bytes {
            config.max_memory_bytes = Some(m);
        }
        Ok(config)
    }

    fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let (config, warnings) =
            Self::from_toml(&text).with_context(|| format!("parsing {}", path.display()))?;
        for warning in warnings {
            tracing::warn!(file = %path.display(), "{warning}");
        }
        Ok(config)
    }

    /// Parses a file's text, moving deprecated keys first; returns the deprecation warnings.
    fn from_toml(text: &str) -> anyhow::Result<(Self, Vec<String>)> {
        let mut root: toml::Table = toml::from_str(text)?;
        let series = toml::Table::try_from(SeriesConfig::default())?;
        let series_keys: Vec<String> = series.keys().cloned().collect();
        let warnings = deprecated::migrate(&mut root, &series_keys);
        Ok((root.try_into()?, warnings))
    }

    /// Where the analyzer's files are, for banners: the store URL or the data directory.
    pub fn storage(&self) -> String {
        match &self.analyzer.store.url {
            Some(url) if !url.is_empty() => url.clone(),
            _ => self.data_dir().display().to_string(),
        }
    }

    /// The data directory, defaulting to `./meridian-data`.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("meridian-data"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/meridian.toml");
        std::fs::read_to_string(path).unwrap()
    }

    /// Scenario: the example configuration shipped in `examples/`.
    /// Guarantees: it uses no deprecated key, and it states exactly the defaults (every key,
    /// every value), as its header claims.
    #[test]
    fn the_example_configuration_is_the_defaults() {
        let (parsed, warnings) = MeridianConfig::from_toml(&example()).unwrap();
        assert_eq!(warnings, Vec::<String>::new());
        let written = toml::Table::try_from(&parsed).unwrap();
        let defaults = toml::Table::try_from(MeridianConfig {
            data_dir: Some("./meridian-data".into()),
            ..MeridianConfig::default()
        })
        .unwrap();
        assert_eq!(written, defaults);
    }

    /// Scenario: the agent examples shipped in `examples/`.
    /// Guarantees: each parses as a Meridian configuration and passes the agent's validation.
    #[test]
    fn the_agent_examples_are_valid() {
        for name in ["agent-envoy.toml", "agent-traefik.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples")
                .join(name);
            let (config, warnings) =
                MeridianConfig::from_toml(&std::fs::read_to_string(path).unwrap()).unwrap();
            assert!(warnings.is_empty(), "{name}: {warnings:?}");
            config
                .agent
                .validate()
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    /// Scenario: every key of the defaults, as the example states them.
    /// Guarantees: the example lists every key (a parsed-but-missing key would fall back to
    /// its default and hide from the comparison above).
    #[test]
    fn the_example_configuration_lists_every_key() {
        fn keys(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
            for (k, v) in table {
                let path = format!("{prefix}{k}");
                match v {
                    toml::Value::Table(t) => keys(&format!("{path}."), t, out),
                    _ => out.push(path),
                }
            }
        }
        let text: toml::Table = toml::from_str(&example()).unwrap();
        let defaults = toml::Table::try_from(MeridianConfig {
            data_dir: Some("./meridian-data".into()),
            ..MeridianConfig::default()
        })
        .unwrap();
        let (mut written, mut expected) = (Vec::new(), Vec::new());
        keys("", &text, &mut written);
        keys("", &defaults, &mut expected);
        // Optional keys with no default (store url, TLS files, buffer dir) are commented out.
        written.sort();
        expected.sort();
        assert_eq!(written, expected);
    }
}
