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
use crate::kafka::{
    KafkaConfig, HEADER_COLLECTOR, HEADER_PART, HEADER_REGION, HEADER_SCHEMA_VERSION,
    HEADER_SEQUENCE,
};
use crate::schema::SCHEMA_VERSION;
use crate::signal::SignalBatch;
use crate::wire::{self, Encoded, Encoding, KAFKA_HEADER};

/// Room left in a message for headers and framing.
const MESSAGE_OVERHEAD: usize = 4096;

/// Produces batches to Kafka.
pub struct KafkaSink {
    producer: FutureProducer,
    config: KafkaConfig,
    region: Arc<str>,
    encoding: Encoding,
}

impl KafkaSink {
    /// Creates the producer (it connects lazily); `region` goes in every message's headers,
    /// batches not yet encoded are encoded in `encoding`.
    pub fn new(
        config: &KafkaConfig,
        region: &str,
        encoding: Encoding,
    ) -> Result<Self, BuildSinkError> {
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
            encoding,
        })
    }

    async fn produce(&self, batch: SignalBatch) -> Result<(), SinkError> {
        let topic = self.config.topics.of(batch.signal);
        let (encoding, parts) =
            message_parts(&batch, self.encoding, self.config.max_message_bytes)?;
        let encoding = encoding.code().to_string();
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
                    })
                    .insert(Header {
                        key: KAFKA_HEADER,
                        value: Some(&encoding),
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

/// The payloads of the messages a batch is produced as, and their encoding: its message when
/// it fits in `limit` bytes, else the rows split by halving into messages that each fit (a
/// single larger row goes alone). Only batches that bypassed the disk buffer's splitting are
/// ever split here.
fn message_parts(
    batch: &SignalBatch,
    encoding: Encoding,
    limit: usize,
) -> Result<(Encoding, Vec<bytes::Bytes>), SinkError> {
    let Encoded { encoding, bytes } = batch
        .encoded(encoding)
        .map_err(|e| SinkError::Refused(format!("encoding the batch: {e}")))?;
    if bytes.len() <= limit {
        return Ok((encoding, vec![bytes]));
    }
    let schema = batch.signal.schema();
    let batches = if batch.batches.is_empty() {
        wire::decode(encoding, &schema, &bytes)
            .map_err(|e| SinkError::Refused(format!("decoding the batch: {e}")))?
    } else {
        batch.batches.clone()
    };
    let rows = arrow::compute::concat_batches(&schema, &batches)
        .map_err(|e| SinkError::Refused(format!("joining batches: {e}")))?;
    let parts = wire::encode_bounded(encoding, &rows, limit)
        .map_err(|e| SinkError::Refused(format!("encoding the batch: {e}")))?
        .into_iter()
        .map(|(_, b)| b.into())
        .collect();
    Ok((encoding, parts))
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

    /// Scenario: a batch of 8,000 spans against a 16 KiB message limit, decoded or only
    /// encoded, in either encoding.
    /// Guarantees: every part fits the limit, is in the batch's encoding, and the parts hold
    /// all the rows in order.
    #[test]
    fn batches_over_the_message_limit_split_into_parts_that_fit() {
        let batch = span_batch(8_000, 0);
        let schema = batch.signal.schema();
        let limit = 16 << 10;
        for encoding in [Encoding::ArrowIpc, Encoding::Columnar] {
            let whole = batch.encoded(encoding).unwrap();
            assert!(whole.bytes.len() > limit, "the fixture must need splitting");
            let encoded_only =
                SignalBatch::from_batches(batch.signal, Vec::new()).with_encoded(whole);
            for input in [&batch, &encoded_only] {
                let (got, parts) = message_parts(input, encoding, limit).unwrap();
                assert_eq!(got, encoding);
                assert!(parts.len() > 1);
                assert!(parts.iter().all(|p| p.len() <= limit));
                let rows: Vec<_> = parts
                    .iter()
                    .flat_map(|p| wire::decode(encoding, &schema, p).unwrap())
                    .collect();
                let joined = arrow::compute::concat_batches(&schema, &rows).unwrap();
                assert_eq!(joined, batch.batches[0]);
            }
        }
    }

    /// Scenario: a batch under the limit, and one read from the disk buffer in encoding 1 by a
    /// sink set to encoding 2.
    /// Guarantees: each goes as one message, its own encoded bytes unchanged, in the encoding
    /// they are in.
    #[test]
    fn batches_under_the_limit_go_whole() {
        let batch = span_batch(10, 0);
        let (encoding, parts) = message_parts(&batch, Encoding::Columnar, 1 << 20).unwrap();
        assert_eq!(encoding, Encoding::Columnar);
        assert_eq!(
            parts,
            vec![batch.encoded(Encoding::Columnar).unwrap().bytes]
        );
        let old = batch.encoded(Encoding::ArrowIpc).unwrap();
        let from_disk =
            SignalBatch::from_batches(batch.signal, Vec::new()).with_encoded(old.clone());
        let (encoding, parts) = message_parts(&from_disk, Encoding::Columnar, 1 << 20).unwrap();
        assert_eq!((encoding, parts), (Encoding::ArrowIpc, vec![old.bytes]));
    }
}
