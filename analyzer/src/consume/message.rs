//! One Kafka message as a batch for the store: Meridian's format (a wire encoding plus identity
//! headers) or the OpenTelemetry Collector exporter's `otlp_proto` (an Export request).

use meridian_collector::kafka::{
    KafkaConfig, HEADER_COLLECTOR, HEADER_PART, HEADER_SCHEMA_VERSION, HEADER_SEQUENCE,
};
use meridian_collector::otlp::ExportRequest;
use meridian_collector::schema::SCHEMA_VERSION;
use meridian_collector::wire::{self, Encoding, KAFKA_HEADER};
use meridian_collector::{Signal, SignalBatch};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::Message;

use crate::store::ledger::{BatchKey, KafkaPosition, Origin};

/// What a message holds.
pub enum Decoded {
    /// Rows for a table.
    Batch {
        /// The rows.
        batch: SignalBatch,
        /// Where they came from.
        origin: Origin,
        /// Their table.
        signal: Signal,
    },
    /// A message of a known topic that cannot be read; skipped.
    Invalid {
        /// The topic's table.
        signal: Signal,
        /// Where it came from.
        origin: Origin,
        /// Why it cannot be read.
        reason: String,
    },
    /// A topic this consumer does not know.
    Foreign,
}

/// The table a topic feeds, if it is one of the configured topics.
pub fn signal_of(config: &KafkaConfig, topic: &str) -> Option<Signal> {
    config.topics.signal(topic).or_else(|| {
        config
            .otlp_topics
            .enabled
            .then(|| config.otlp_topics.signal(topic))
            .flatten()
    })
}

/// Decodes a message of one of the configured topics.
pub fn decode(config: &KafkaConfig, message: &BorrowedMessage<'_>) -> Decoded {
    let position = KafkaPosition {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
    };
    let payload = message.payload().unwrap_or_default();
    let header = |name: &str| -> Option<String> {
        let headers = message.headers()?;
        headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_owned)
    };
    if let Some(signal) = config.topics.signal(message.topic()) {
        let batch = parse_key(
            header(HEADER_COLLECTOR),
            header(HEADER_SEQUENCE),
            header(HEADER_PART),
        );
        let origin = Origin {
            kafka: Some(position),
            batch,
        };
        let version = header(HEADER_SCHEMA_VERSION);
        return meridian(signal, payload, version, header(KAFKA_HEADER), origin);
    }
    if let Some(signal) = signal_of(config, message.topic()) {
        let origin = Origin {
            kafka: Some(position),
            batch: None,
        };
        let region = &config.otlp_topics.region;
        let converted = match signal {
            Signal::Traces => otlp::<ExportTraceServiceRequest>(payload, region),
            Signal::Metrics => otlp::<ExportMetricsServiceRequest>(payload, region),
            Signal::Logs => otlp::<ExportLogsServiceRequest>(payload, region),
            // `OtlpTopics` has no probes topic: probe results are Meridian's own.
            Signal::Probes => Err("probe results do not come as OTLP".to_owned()),
        };
        return match converted {
            Ok(batch) => Decoded::Batch {
                batch,
                origin,
                signal,
            },
            Err(reason) => Decoded::Invalid {
                signal,
                origin,
                reason,
            },
        };
    }
    Decoded::Foreign
}

/// The batch identity from the headers, when the producer set it.
fn parse_key(
    collector: Option<String>,
    sequence: Option<String>,
    part: Option<String>,
) -> Option<BatchKey> {
    let collector = collector.filter(|c| !c.is_empty())?;
    let sequence = sequence?.parse().ok()?;
    let part = part
        .as_deref()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    Some(BatchKey {
        collector,
        sequence,
        part,
    })
}

fn meridian(
    signal: Signal,
    payload: &[u8],
    version: Option<String>,
    encoding: Option<String>,
    origin: Origin,
) -> Decoded {
    let invalid = |reason: String| Decoded::Invalid {
        signal,
        origin: origin.clone(),
        reason,
    };
    if version.as_deref() != Some(SCHEMA_VERSION.to_string().as_str()) {
        return invalid(format!(
            "schema version {version:?}, this analyzer reads {SCHEMA_VERSION}"
        ));
    }
    let encoding = match Encoding::from_header(encoding.as_deref()) {
        Ok(encoding) => encoding,
        Err(e) => return invalid(e),
    };
    match wire::decode(encoding, &signal.schema(), payload) {
        Ok(batches) => Decoded::Batch {
            batch: SignalBatch::from_batches(signal, batches),
            origin,
            signal,
        },
        Err(e) => invalid(format!(
            "invalid message (wire encoding {}): {e}",
            encoding.code()
        )),
    }
}

fn otlp<R: ExportRequest>(payload: &[u8], region: &str) -> Result<SignalBatch, String> {
    let request = R::decode(payload).map_err(|e| format!("invalid OTLP protobuf: {e}"))?;
    let converted = request
        .to_arrow(region)
        .map_err(|e| format!("converting OTLP: {e}"))?;
    if converted.rejected > 0 {
        tracing::warn!(
            rejected = converted.rejected,
            reason = %converted.error_message,
            "items of an OTLP message rejected"
        );
    }
    Ok(SignalBatch::new(R::SIGNAL, converted.batch))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scenario: identity headers as the Kafka sink writes them, and partial ones.
    /// Guarantees: a full identity is read; without a collector id there is none.
    #[test]
    fn reads_the_batch_identity() {
        let key = parse_key(Some("c1".into()), Some("42".into()), Some("1/3".into())).unwrap();
        assert_eq!(
            (key.collector.as_str(), key.sequence, key.part),
            ("c1", 42, 1)
        );
        assert!(parse_key(Some(String::new()), Some("1".into()), None).is_none());
        assert!(parse_key(Some("c".into()), None, None).is_none());
    }
}
