//! Consuming from Kafka: Meridian's own topics (Arrow IPC batches from collectors) and,
//! optionally, the OpenTelemetry Collector Kafka exporter's `otlp_proto` topics.
//!
//! Exactly-once effect in the store: a message is stored together with its position (see
//! [`crate::store::ledger`]); offsets are committed to Kafka only once the rows are in Parquet;
//! a message at or below a stored position, or with a (collector, sequence, part) already stored,
//! is acknowledged without being stored again.
//!
//! Partitions: by default the analyzer reads all of them (`kafka.assignment = "all"`) and uses the
//! group only to store offsets; `"group"` shares them among analyzers.
//!
//! - [`message`]: turning one message of either format into a batch and its origin.

pub mod message;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use meridian_collector::kafka::{Assignment, KafkaConfig};
use prometheus::IntGaugeVec;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{ClientContext, Message, Offset, Statistics, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::error::ConsumeError;
use crate::store::{Inserted, Store};
use crate::telemetry::AnalyzerMetrics;
use message::Decoded;

/// How often durable offsets are committed to Kafka.
const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// Reports consumer lag from librdkafka's statistics.
struct LagContext {
    lag: IntGaugeVec,
}

impl ClientContext for LagContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in statistics.topics {
            for (partition, p) in t.partitions {
                if partition >= 0 && p.consumer_lag >= 0 {
                    self.lag
                        .with_label_values(&[&topic, &partition.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for LagContext {}

/// Every partition of `topics`, each starting at the group's committed offset (or the earliest).
fn all_partitions(
    consumer: &StreamConsumer<LagContext>,
    topics: &[&str],
) -> Result<TopicPartitionList, ConsumeError> {
    let mut list = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(30))
            .map_err(|e| ConsumeError(format!("reading the partitions of {topic}: {e}")))?;
        for t in metadata.topics() {
            for p in t.partitions() {
                list.add_partition_offset(t.name(), p.id(), Offset::Stored)
                    .map_err(|e| ConsumeError(e.to_string()))?;
            }
        }
    }
    Ok(list)
}

/// A Kafka consumer feeding the store.
pub struct KafkaIngest {
    consumer: StreamConsumer<LagContext>,
    config: KafkaConfig,
    store: Arc<Store>,
    metrics: AnalyzerMetrics,
}

impl KafkaIngest {
    /// Creates the consumer and takes its partitions — all of them, or the group's share —
    /// creating missing topics if configured.
    pub(crate) async fn start(
        config: &KafkaConfig,
        store: Arc<Store>,
        metrics: AnalyzerMetrics,
    ) -> Result<Self, ConsumeError> {
        let mut topics: Vec<&str> = meridian_collector::Signal::ALL
            .iter()
            .map(|s| config.topics.of(*s))
            .collect();
        if config.otlp_topics.enabled {
            let o = &config.otlp_topics;
            topics.extend([o.spans.as_str(), o.metrics.as_str(), o.logs.as_str()]);
        }
        config.ensure_topics(&topics).await.map_err(ConsumeError)?;
        let defaults = [
            ("group.id", config.group_id.clone()),
            // Offsets are committed by hand, and only for rows already in Parquet.
            ("enable.auto.commit", "false".to_owned()),
            ("auto.offset.reset", "earliest".to_owned()),
            ("statistics.interval.ms", "5000".to_owned()),
            // Freshness: a broker that does not answer a fetch as soon as data arrives (tansu)
            // holds it this long; Kafka answers at once either way.
            ("fetch.wait.max.ms", "100".to_owned()),
            (
                "fetch.message.max.bytes",
                (config.max_message_bytes + 65536).to_string(),
            ),
        ];
        let consumer: StreamConsumer<LagContext> = config
            .client_config(&defaults, &config.consumer)
            .create_with_context(LagContext {
                lag: metrics.kafka_lag.clone(),
            })
            .map_err(|e| ConsumeError(e.to_string()))?;
        match config.assignment {
            Assignment::Group => consumer
                .subscribe(&topics)
                .map_err(|e| ConsumeError(e.to_string()))?,
            Assignment::All => {
                let all = all_partitions(&consumer, &topics)?;
                consumer
                    .assign(&all)
                    .map_err(|e| ConsumeError(e.to_string()))?;
            }
        }
        tracing::info!(brokers = %config.brokers, ?topics, group = %config.group_id, "consuming from Kafka");
        Ok(Self {
            consumer,
            config: config.clone(),
            store,
            metrics,
        })
    }

    /// Consumes until `stop`, committing durable offsets as flushes make them durable; returns
    /// the consumer for a last [`commit_durable`](Self::commit_durable) after the final flush.
    pub async fn run(self, stop: CancellationToken) -> Self {
        let mut commit = tokio::time::interval(COMMIT_EVERY);
        commit.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut committed: BTreeMap<(String, i32), i64> = BTreeMap::new();
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = commit.tick() => self.commit(&mut committed),
                received = self.consumer.recv() => match received {
                    Ok(message) => self.handle(&message, &stop).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "Kafka consumer error; continuing");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
            }
        }
        self
    }

    /// Commits every durable offset now (synchronously), e.g. after the final flush.
    pub fn commit_durable(&self) {
        let mut list = TopicPartitionList::new();
        if let Ok(assignment) = self.consumer.assignment() {
            for element in assignment.elements() {
                let (topic, partition) = (element.topic(), element.partition());
                let next = message::signal_of(&self.config, topic).and_then(|signal| {
                    self.store
                        .durable_offsets(signal)
                        .get(&format!("{topic}:{partition}"))
                        .copied()
                });
                if let Some(next) = next {
                    let _ = list.add_partition_offset(topic, partition, Offset::Offset(next));
                }
            }
        }
        if list.count() > 0 {
            if let Err(e) = self.consumer.commit(&list, CommitMode::Sync) {
                tracing::warn!(error = %e, "final commit of Kafka offsets failed; the next start skips the stored messages by their offsets");
            }
        }
    }

    /// Stores one message, waiting while the store is behind.
    async fn handle(&self, message: &BorrowedMessage<'_>, stop: &CancellationToken) {
        let topic = message.topic().to_owned();
        let decoded = message::decode(&self.config, message);
        let outcome = match decoded {
            Decoded::Batch {
                batch,
                origin,
                signal,
            } => loop {
                match self.store.insert_from(batch.clone(), origin.clone()) {
                    Ok(Inserted::Stored) => break "stored",
                    Ok(Inserted::Repeat) => break "repeat",
                    Err(e) if e.is_retryable() => {
                        // Backpressure: stop consuming until the flusher catches up.
                        tracing::debug!(error = %e, "store behind; pausing consumption");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                            _ = stop.cancelled() => return,
                        }
                    }
                    Err(e) => {
                        tracing::error!(%topic, offset = message.offset(), error = %e, "message not storable; skipping it");
                        self.store.skip(signal, origin);
                        break "invalid";
                    }
                }
            },
            Decoded::Invalid {
                signal,
                origin,
                reason,
            } => {
                tracing::error!(%topic, partition = message.partition(), offset = message.offset(), %reason, "invalid message; skipping it");
                self.store.skip(signal, origin);
                "invalid"
            }
            Decoded::Foreign => "foreign",
        };
        self.metrics
            .kafka_messages
            .with_label_values(&[&topic, outcome])
            .inc();
    }

    /// Commits, for the partitions this consumer owns, the offsets whose rows are in Parquet.
    fn commit(&self, committed: &mut BTreeMap<(String, i32), i64>) {
        let Ok(assignment) = self.consumer.assignment() else {
            return;
        };
        let mut list = TopicPartitionList::new();
        for element in assignment.elements() {
            let (topic, partition) = (element.topic(), element.partition());
            let Some(signal) = message::signal_of(&self.config, topic) else {
                continue;
            };
            let key = format!("{topic}:{partition}");
            let Some(next) = self.store.durable_offsets(signal).get(&key).copied() else {
                continue;
            };
            let slot = committed.entry((topic.to_owned(), partition)).or_default();
            if next > *slot
                && list
                    .add_partition_offset(topic, partition, Offset::Offset(next))
                    .is_ok()
            {
                *slot = next;
            }
        }
        if list.count() > 0 {
            if let Err(e) = self.consumer.commit(&list, CommitMode::Async) {
                tracing::warn!(error = %e, "committing Kafka offsets failed; will retry");
                committed.clear();
            }
        }
    }
}
