//! The collector's configuration (`[collector]`): one table per stage it runs.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::buffer::BufferConfig;
use crate::forward::ForwardConfig;
use crate::otlp::OtlpConfig;
use crate::probe::ProbeConfig;
use crate::self_metrics::SelfMetricsConfig;
use crate::sink::network::NetworkSinkConfig;
use crate::tls::ServerTlsConfig;
use crate::wire::Encoding;

/// Configuration of one regional collector (`[collector]` in the TOML file).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// Region stamped on every row (the `region` column).
    pub region: String,
    /// Health and metrics API of a collector that forwards to a remote analyzer (`meridian
    /// collector`); in standalone mode the analyzer's API serves them.
    pub http_addr: SocketAddr,
    /// TLS on that API (`[collector.tls]`; off by default).
    pub tls: ServerTlsConfig,
    /// Rows the queue between receivers and sink holds before receivers answer with backpressure.
    pub queue_capacity_rows: usize,
    /// The OTLP receivers.
    pub otlp: OtlpConfig,
    /// Batching and retry of forwarding.
    pub forward: ForwardConfig,
    /// Where accepted batches wait for the sink: memory, or the durable disk buffer.
    pub buffer: BufferConfig,
    /// The analyzer a remote collector forwards to over HTTP when Kafka is not configured.
    pub network: NetworkSinkConfig,
    /// Endpoints this collector health-checks (`[[collector.probes]]`); give every regional
    /// collector the same list, so each endpoint is checked from every region.
    pub probes: Vec<ProbeConfig>,
    /// How often the collector reports its own metrics to the center (`[collector.self_metrics]`).
    pub self_metrics: SelfMetricsConfig,
    /// How batches are encoded for Kafka, the network sink and the disk buffer: `columnar`
    /// (encoding 2, ~5× smaller) or `arrow-ipc` (encoding 1, for an analyzer from before
    /// encoding 2; upgrade the analyzer first, then the collectors).
    pub wire_encoding: Encoding,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            region: "local".into(),
            http_addr: SocketAddr::from(([0, 0, 0, 0], 4381)),
            tls: ServerTlsConfig::default(),
            queue_capacity_rows: 262_144,
            otlp: OtlpConfig::default(),
            forward: ForwardConfig::default(),
            buffer: BufferConfig::default(),
            network: NetworkSinkConfig::default(),
            probes: Vec::new(),
            self_metrics: SelfMetricsConfig::default(),
            wire_encoding: Encoding::default(),
        }
    }
}
