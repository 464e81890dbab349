//! The Kafka contract shared by the collector (producer) and the analyzer (consumer): settings,
//! topic names and the headers every Meridian message carries.
//!
//! A message is one batch of one signal in the shared schema, in a wire encoding
//! ([`crate::wire`]) named by its `meridian.encoding` header (absent: encoding 1). Its key is the collector id, so all batches of one collector go to one partition in
//! the order they were produced; the analyzer recognises a repeat by (collector, sequence, part).

use std::collections::BTreeMap;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};

use crate::signal::Signal;

/// Header: the schema version of the batch (decimal).
pub const HEADER_SCHEMA_VERSION: &str = "meridian.schema_version";
/// Header: the region of the collector that produced the batch.
pub const HEADER_REGION: &str = "meridian.region";
/// Header: the id of the collector that produced the batch.
pub const HEADER_COLLECTOR: &str = "meridian.collector_id";
/// Header: the batch's sequence number within (collector, signal), decimal.
pub const HEADER_SEQUENCE: &str = "meridian.sequence";
/// Header: `i/n` when a batch too large for one message was split into `n` parts.
pub const HEADER_PART: &str = "meridian.part";

/// Topic names, one per signal.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topics {
    /// Topic of span batches.
    pub spans: String,
    /// Topic of metric batches.
    pub metrics: String,
    /// Topic of log batches.
    pub logs: String,
    /// Topic of health-probe results.
    pub probes: String,
}

impl Topics {
    /// The topic of a signal.
    pub fn of(&self, signal: Signal) -> &str {
        match signal {
            Signal::Traces => &self.spans,
            Signal::Metrics => &self.metrics,
            Signal::Logs => &self.logs,
            Signal::Probes => &self.probes,
        }
    }

    /// The signal of a topic, if it is one of these.
    pub fn signal(&self, topic: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| self.of(*s) == topic)
    }
}

impl Default for Topics {
    fn default() -> Self {
        Self {
            spans: "meridian.spans".into(),
            metrics: "meridian.metrics".into(),
            logs: "meridian.logs".into(),
            probes: "meridian.probes".into(),
        }
    }
}

/// Kafka settings (`[kafka]`), used by `meridian collector` to produce and by
/// `meridian analyzer` to consume when `brokers` is set.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port...]`; empty means Kafka is not used.
    pub brokers: String,
    /// Meridian's topics.
    pub topics: Topics,
    /// Largest message produced, in bytes; larger batches are split. Keep it at or below the
    /// broker's `message.max.bytes` (1 MB by default).
    pub max_message_bytes: usize,
    /// Extra librdkafka properties for both sides (`security.protocol`, `sasl.*`, `ssl.*`, ...);
    /// they override Meridian's own settings.
    pub properties: BTreeMap<String, String>,
    /// Extra librdkafka properties for the producer only.
    pub producer: BTreeMap<String, String>,
    /// Extra librdkafka properties for the consumer only.
    pub consumer: BTreeMap<String, String>,
    /// Consumer group of the analyzers (where offsets are committed).
    pub group_id: String,
    /// How an analyzer gets partitions: `all` (it reads every partition, the group only stores
    /// offsets) or `group` (analyzers of the group share them, rebalanced by the broker).
    pub assignment: Assignment,
    /// Also consume the OpenTelemetry Collector Kafka exporter's topics (`otlp_proto`).
    pub otlp_topics: OtlpTopics,
    /// Create missing topics at start-up.
    pub create_topics: bool,
    /// Partitions of created topics: the most analyzers that can share one topic's load.
    pub partitions: i32,
    /// Replication factor of created topics (-1: the broker's default).
    pub replication_factor: i32,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: String::new(),
            topics: Topics::default(),
            max_message_bytes: 1_000_000,
            properties: BTreeMap::new(),
            producer: BTreeMap::new(),
            consumer: BTreeMap::new(),
            group_id: "meridian-analyzer".into(),
            assignment: Assignment::All,
            otlp_topics: OtlpTopics::default(),
            create_topics: true,
            partitions: 3,
            replication_factor: -1,
        }
    }
}

/// How an analyzer gets its partitions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assignment {
    /// Every partition of every topic; no group membership, so nothing waits for a rebalance.
    /// The one-analyzer deployment (the default).
    #[default]
    All,
    /// Shared by the group's members (Kafka's group protocol). A revoked partition is not
    /// flushed first yet, so a rebalance can duplicate the old owner's in-memory rows.
    Group,
}

/// Topics written by the OpenTelemetry Collector's Kafka exporter with `encoding: otlp_proto`
/// (each message one serialized `Export*ServiceRequest`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpTopics {
    /// Whether the analyzer consumes them.
    pub enabled: bool,
    /// Traces topic (the exporter's default `otlp_spans`).
    pub spans: String,
    /// Metrics topic (default `otlp_metrics`).
    pub metrics: String,
    /// Logs topic (default `otlp_logs`).
    pub logs: String,
    /// Region stamped on their rows (the exporter sends none).
    pub region: String,
}

impl Default for OtlpTopics {
    fn default() -> Self {
        Self {
            enabled: false,
            spans: "otlp_spans".into(),
            metrics: "otlp_metrics".into(),
            logs: "otlp_logs".into(),
            region: "unknown".into(),
        }
    }
}

impl OtlpTopics {
    /// The signal of a topic, if it is one of these.
    pub fn signal(&self, topic: &str) -> Option<Signal> {
        [
            (Signal::Traces, &self.spans),
            (Signal::Metrics, &self.metrics),
            (Signal::Logs, &self.logs),
        ]
        .into_iter()
        .find(|(_, t)| t.as_str() == topic)
        .map(|(s, _)| s)
    }
}

impl KafkaConfig {
    /// Whether Kafka is configured.
    pub fn enabled(&self) -> bool {
        !self.brokers.trim().is_empty()
    }

    /// A librdkafka configuration: `defaults`, then the common and the role's properties.
    pub fn client_config(
        &self,
        defaults: &[(&str, String)],
        role: &BTreeMap<String, String>,
    ) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (k, v) in defaults {
            config.set(*k, v);
        }
        for (k, v) in self.properties.iter().chain(role) {
            config.set(k, v);
        }
        config
    }
}

impl KafkaConfig {
    /// Creates those of `topics` that do not exist yet (when `create_topics` is on).
    pub async fn ensure_topics(&self, topics: &[&str]) -> Result<(), String> {
        if !self.create_topics || topics.is_empty() {
            return Ok(());
        }
        let admin: AdminClient<DefaultClientContext> = self
            .client_config(&[], &BTreeMap::new())
            .create()
            .map_err(|e| format!("creating the Kafka admin client: {e}"))?;
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| {
                NewTopic::new(
                    t,
                    self.partitions,
                    TopicReplication::Fixed(self.replication_factor),
                )
            })
            .collect();
        let options =
            AdminOptions::new().operation_timeout(Some(std::time::Duration::from_secs(30)));
        let results = admin
            .create_topics(&new, &options)
            .await
            .map_err(|e| format!("creating topics {topics:?}: {e}"))?;
        for result in results {
            match result {
                Ok(topic) => {
                    tracing::info!(%topic, partitions = self.partitions, "created Kafka topic")
                }
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(format!("creating topic {topic}: {code}")),
            }
        }
        Ok(())
    }
}
