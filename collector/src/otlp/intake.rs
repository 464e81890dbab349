//! The protocol-independent half of a receiver: convert a decoded request, queue its rows, and
//! say what was accepted — or that the client must back off.

use std::sync::Arc;
use std::time::Duration;

use super::request::ExportRequest;
use crate::convert::ConvertError;
use crate::queue::QueueSender;
use crate::signal::{Signal, SignalBatch};
use crate::telemetry::CollectorMetrics;

/// The protocol a request arrived over, for metrics labels.
#[derive(Clone, Copy, Debug)]
pub enum Protocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with a protobuf body.
    HttpProtobuf,
    /// OTLP/HTTP with a JSON body.
    HttpJson,
}

impl Protocol {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http_protobuf",
            Protocol::HttpJson => "http_json",
        }
    }
}

/// What happened to an accepted request: how many items were rejected as invalid, and why.
#[derive(Debug, Default)]
pub struct Accepted {
    /// Items rejected (the rest are queued).
    pub rejected: i64,
    /// Why the first rejected item was rejected.
    pub error_message: String,
}

/// Why a request was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The queue or the disk buffer is full; the client should retry after `retry_after`.
    #[error("{reason}")]
    Overloaded {
        /// Why, for the client.
        reason: String,
        /// How long the client should wait.
        retry_after: Duration,
    },
    /// Conversion failed: a bug, never the client's fault.
    #[error("converting the request: {0}")]
    Convert(#[from] ConvertError),
}

/// Converts requests and queues their rows. Cheap to clone; shared by every receiver.
#[derive(Clone)]
pub struct Intake {
    region: Arc<str>,
    queue: QueueSender,
    metrics: CollectorMetrics,
    retry_after: Duration,
    durable: bool,
}

impl Intake {
    /// An intake stamping `region` and queueing into `queue`.
    pub fn new(
        region: &str,
        queue: QueueSender,
        metrics: CollectorMetrics,
        retry_after: Duration,
    ) -> Self {
        Self {
            region: region.into(),
            queue,
            metrics,
            retry_after,
            durable: false,
        }
    }

    /// Answers clients only once their rows are in the disk buffer.
    pub fn durable(self) -> Self {
        Self {
            durable: true,
            ..self
        }
    }

    /// Counts a request that could not be decoded.
    pub fn malformed(&self, signal: Signal, protocol: Protocol) {
        self.metrics
            .malformed
            .with_label_values(&[signal.as_str(), protocol.as_str()])
            .inc();
    }

    /// Converts and queues a request; the whole request is queued or none of it is. With a
    /// disk buffer, returns once the rows are on disk.
    pub async fn accept<R: ExportRequest>(
        &self,
        request: &R,
        protocol: Protocol,
    ) -> Result<Accepted, IntakeError> {
        let labels = [R::SIGNAL.as_str(), protocol.as_str()];
        let refuse = |reason: String| {
            self.metrics.refused.with_label_values(&labels).inc();
            IntakeError::Overloaded {
                reason,
                retry_after: self.retry_after,
            }
        };
        // Under overload, do not spend CPU converting a request only to refuse it.
        let items = request.items();
        if items > 0 {
            self.queue
                .check_room(items)
                .map_err(|e| refuse(e.to_string()))?;
        }
        let converted = request.to_arrow(&self.region)?;
        let rows = converted.batch.num_rows();
        if rows > 0 {
            let batch = SignalBatch::new(R::SIGNAL, converted.batch);
            if self.durable {
                let done = self
                    .queue
                    .try_send_durable(batch)
                    .map_err(|e| refuse(e.to_string()))?;
                match done.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(refuse(e.to_string())),
                    Err(_) => return Err(refuse("the collector is shutting down".into())),
                }
            } else {
                self.queue
                    .try_send(batch)
                    .map_err(|e| refuse(e.to_string()))?;
            }
        }
        self.metrics
            .received
            .with_label_values(&labels)
            .inc_by(rows as u64);
        if converted.rejected > 0 {
            self.metrics
                .rejected
                .with_label_values(&labels)
                .inc_by(converted.rejected as u64);
        }
        Ok(Accepted {
            rejected: converted.rejected,
            error_message: converted.error_message,
        })
    }
}
