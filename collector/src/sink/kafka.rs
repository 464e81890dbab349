//! Kafka sink: produces each batch as one message (or several, when it is larger than
//! `max_message_bytes`) to its signal's topic, idempotently with `acks=all`; a batch counts as
//! delivered only when every part's delivery report is back.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use super::{BuildSinkError, Sink, SinkError};
use crate::ipc;
use crate::kafka::{
    KafkaConfig, HEADER_COLLECTOR, HEADER_PART, HEADER_REGION, HEADER_SCHEMA_VERSION,
    HEADER_SEQUENCE,
};
use crate::schema::SCHEMA_VERSION;
use crate::signal::SignalBatch;

/// Room left in a message for headers and framing.
const MESSAGE_OVERHEAD: usize = 4096;

/// Produces batches to Kafka.
pub struct KafkaSink {
    producer: FutureProducer,
    config: KafkaConfig,
    region: Arc<str>,
}

impl KafkaSink {
    /// Creates the producer (it connects lazily); `region` goes in every message's headers.
    pub fn new(config: &KafkaConfig, region: &str) -> Result<Self, BuildSinkError> {
        let defaults = [
            ("acks", "all".to_owned()),
            ("enable.idempotence", "true".to_owned()),
            // Payloads are zstd-compressed Arrow already.
            ("compression.type", "none".to_owned()),
            ("linger.ms", "5".to_owned()),
            // A message not acknowledged in time is retried by the forwarder, from disk.
            ("message.timeout.ms", "30000".to_owned()),
            (
                "message.max.bytes",
                (config.max_message_bytes + MESSAGE_OVERHEAD).to_string(),
            ),
        ];
        let producer: FutureProducer = config
            .client_config(&defaults, &config.producer)
            .create()
            .map_err(BuildSinkError::KafkaProducer)?;
        Ok(Self {
            producer,
            config: config.clone(),
            region: region.into(),
        })
    }

    async fn produce(&self, batch: SignalBatch) -> Result<(), SinkError> {
        let topic = self.config.topics.of(batch.signal);
        let parts = message_parts(&batch, self.config.max_message_bytes)?;
        let (collector, sequence) = batch
            .id
            .as_ref()
            .map(|id| (id.collector.to_string(), id.sequence.to_string()))
            .unwrap_or_default();
        let version = SCHEMA_VERSION.to_string();
        let count = parts.len();
        let deliveries = parts
            .iter()
            .enumerate()
            .map(|(i, payload)| {
                let part = format!("{i}/{count}");
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: HEADER_SCHEMA_VERSION,
                        value: Some(&version),
                    })
                    .insert(Header {
                        key: HEADER_REGION,
                        value: Some(self.region.as_ref()),
                    })
                    .insert(Header {
                        key: HEADER_COLLECTOR,
                        value: Some(&collector),
                    })
                    .insert(Header {
                        key: HEADER_SEQUENCE,
                        value: Some(&sequence),
                    })
                    .insert(Header {
                        key: HEADER_PART,
                        value: Some(&part),
                    });
                let record = FutureRecord::to(topic)
                    .key(collector.as_str())
                    .payload(payload.as_ref())
                    .headers(headers);
                self.producer.send(record, Timeout::Never)
            })
            .collect::<Vec<_>>();
        for result in futures::future::join_all(deliveries).await {
            if let Err((e, _)) = result {
                return Err(classify(topic, e));
            }
        }
        Ok(())
    }
}

/// The payloads of the messages a batch is produced as: its IPC stream when it fits in `limit`
/// bytes, else the rows split by halving into streams that each fit (a single larger row goes
/// alone). Only batches that bypassed the disk buffer's splitting are ever split here.
fn message_parts(batch: &SignalBatch, limit: usize) -> Result<Vec<bytes::Bytes>, SinkError> {
    let whole = batch
        .ipc()
        .map_err(|e| SinkError::Refused(format!("encoding Arrow IPC: {e}")))?;
    if whole.len() <= limit {
        return Ok(vec![whole]);
    }
    let batches = if batch.batches.is_empty() {
        ipc::decode(&whole).map_err(|e| SinkError::Refused(format!("decoding Arrow IPC: {e}")))?
    } else {
        batch.batches.clone()
    };
    let rows = arrow::compute::concat_batches(&batch.signal.schema(), &batches)
        .map_err(|e| SinkError::Refused(format!("joining batches: {e}")))?;
    Ok(ipc::encode_bounded(&rows, limit)
        .map_err(|e| SinkError::Refused(format!("encoding Arrow IPC: {e}")))?
        .into_iter()
        .map(|(_, b)| b.into())
        .collect())
}

/// Every produce error is retried from the buffer: none of them makes the batch invalid, and a
/// message too large for the broker needs a configuration fix, not a dropped batch.
fn classify(topic: &str, e: KafkaError) -> SinkError {
    if e.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge) {
        tracing::error!(topic, "the broker refused a message as too large: lower kafka.max_message_bytes below the broker's message.max.bytes");
    }
    SinkError::Unavailable(format!("producing to {topic}: {e}"))
}

impl Sink for KafkaSink {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn needs_batches(&self) -> bool {
        false
    }

    fn max_in_flight(&self) -> usize {
        // A partition keeps the order, and the analyzer recognises repeats in any order.
        32
    }

    fn max_batch_bytes(&self) -> usize {
        self.config.max_message_bytes
    }

    fn deliver(&self, batch: SignalBatch) -> BoxFuture<'_, Result<(), SinkError>> {
        self.produce(batch).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::span_batch;

    /// Scenario: a batch of 2,000 spans against a 64 KiB message limit, decoded or only encoded.
    /// Guarantees: every part fits the limit, and the parts hold all the rows in order.
    #[test]
    fn batches_over_the_message_limit_split_into_parts_that_fit() {
        let batch = span_batch(2_000, 0);
        let whole = batch.ipc().unwrap();
        let limit = 64 << 10;
        assert!(whole.len() > limit, "the fixture must need splitting");
        let encoded_only = SignalBatch::from_batches(batch.signal, Vec::new()).with_encoded(whole);
        for input in [&batch, &encoded_only] {
            let parts = message_parts(input, limit).unwrap();
            assert!(parts.len() > 1);
            assert!(parts.iter().all(|p| p.len() <= limit));
            let rows: Vec<_> = parts.iter().flat_map(|p| ipc::decode(p).unwrap()).collect();
            let joined = arrow::compute::concat_batches(&batch.signal.schema(), &rows).unwrap();
            assert_eq!(joined, batch.batches[0]);
        }
    }

    /// Scenario: a batch under the limit.
    /// Guarantees: it goes as one message, its own encoded stream unchanged.
    #[test]
    fn batches_under_the_limit_go_whole() {
        let batch = span_batch(10, 0);
        let parts = message_parts(&batch, 1 << 20).unwrap();
        assert_eq!(parts, vec![batch.ipc().unwrap()]);
    }
}
