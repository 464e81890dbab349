//! The protocol-independent half of a receiver: convert a decoded request, queue its rows, and
//! say what was accepted — or that the client must back off.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use tonic::Code;

use super::limit::{RateLimitConfig, RateLimiter, Sender};
use super::request::{Accepted, ExportRequest};
use crate::auth::Denied;
use crate::buffer::DiskBuffer;
use crate::convert::ConvertError;
use crate::memory::{MemoryLimit, Reservation};
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

    /// The listener's name in metrics and logs (`otlp_grpc`, `otlp_http`).
    pub fn listener(self) -> &'static str {
        match self {
            Protocol::Grpc => "otlp_grpc",
            Protocol::HttpProtobuf | Protocol::HttpJson => "otlp_http",
        }
    }
}

/// Why a request was not accepted, whichever protocol it came over; [`IntakeError::status`] is
/// the one table of what each receiver answers.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The body's media type is neither OTLP protobuf nor OTLP JSON, or its content encoding is
    /// not one the receiver decompresses.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body is larger than `max_request_bytes`, before or after decompression.
    #[error("{0}")]
    TooLarge(String),
    /// The body could not be read, decompressed or decoded as the OTLP message it claims to be.
    #[error("{0}")]
    Malformed(String),
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
    /// The sender is over its rate limit; it may retry after `retry_after`.
    #[error("rate limit exceeded; retry in {} ms", retry_after.as_millis())]
    RateLimited {
        /// How long the sender should wait.
        retry_after: Duration,
    },
    /// The request's credentials were missing, wrong, or lack the `ingest` scope.
    #[error("{0}")]
    Denied(#[from] Denied),
}

impl IntakeError {
    /// A body that is not the OTLP protobuf message it was sent as.
    pub fn undecodable(e: prost::DecodeError) -> Self {
        IntakeError::Malformed(format!("invalid OTLP protobuf: {e}"))
    }

    /// The HTTP status and the gRPC code (also the `google.rpc.Status` code of an OTLP/HTTP
    /// error body) this error is answered with, as the OTLP specification's failure tables say:
    /// only `Overloaded` and `RateLimited` (429 / UNAVAILABLE) are retryable; a denied request gets 401/UNAUTHENTICATED or
    /// 403/PERMISSION_DENIED.
    ///
    /// ```
    /// use meridian_collector::otlp::IntakeError;
    /// let e = IntakeError::Malformed("invalid OTLP protobuf".into());
    /// assert_eq!(e.status(), (axum::http::StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument));
    /// ```
    pub fn status(&self) -> (StatusCode, Code) {
        match self {
            IntakeError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, Code::InvalidArgument)
            }
            IntakeError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, Code::ResourceExhausted),
            IntakeError::Malformed(_) => (StatusCode::BAD_REQUEST, Code::InvalidArgument),
            IntakeError::Overloaded { .. } => (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable),
            IntakeError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, Code::Unavailable),
            IntakeError::Convert(_) => (StatusCode::INTERNAL_SERVER_ERROR, Code::Internal),
            IntakeError::Denied(d) if d.unauthenticated() => {
                (StatusCode::UNAUTHORIZED, Code::Unauthenticated)
            }
            IntakeError::Denied(_) => (StatusCode::FORBIDDEN, Code::PermissionDenied),
        }
    }

    /// How long the client should wait before retrying, for the retryable errors.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            IntakeError::Overloaded { retry_after, .. }
            | IntakeError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

/// Converts requests and queues their rows. Cheap to clone; shared by every receiver.
#[derive(Clone)]
pub struct Intake {
    region: Arc<str>,
    queue: QueueSender,
    metrics: CollectorMetrics,
    retry_after: Duration,
    durable: Option<Arc<DiskBuffer>>,
    limiter: RateLimiter,
    memory: MemoryLimit,
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
            durable: None,
            limiter: RateLimiter::new(RateLimitConfig::default()),
            memory: MemoryLimit::unlimited(),
        }
    }

    /// Refuses requests that would take the process past `memory` before they are read.
    pub fn with_memory_limit(self, memory: MemoryLimit) -> Self {
        Self { memory, ..self }
    }

    /// What can be decided before a `signal` request arriving over `protocol` is read: the
    /// disk buffer has room, and `bytes` fit under the memory limit (see [`MemoryLimit`]);
    /// refused as overload, which the client retries. Refusing here costs no decoding.
    pub fn admit(
        &self,
        signal: Signal,
        protocol: Protocol,
        bytes: u64,
    ) -> Result<Reservation, IntakeError> {
        if let Some(buffer) = &self.durable {
            buffer
                .check_room()
                .map_err(|e| self.refused(signal, protocol, e.to_string()))?;
        }
        self.memory
            .reserve(protocol.listener(), bytes)
            .map_err(|e| self.refused(signal, protocol, e.to_string()))
    }

    /// Raises `reservation` to `total` bytes once the request's size is known.
    pub fn grow(
        &self,
        reservation: &mut Reservation,
        signal: Signal,
        protocol: Protocol,
        total: u64,
    ) -> Result<(), IntakeError> {
        reservation
            .grow_to(protocol.listener(), total)
            .map_err(|e| self.refused(signal, protocol, e.to_string()))
    }

    /// Counts a refusal and says how long to wait.
    fn refused(&self, signal: Signal, protocol: Protocol, reason: String) -> IntakeError {
        self.metrics
            .refused
            .with_label_values(&[signal.as_str(), protocol.as_str()])
            .inc();
        IntakeError::Overloaded {
            reason,
            retry_after: self.retry_after,
        }
    }

    /// Refuses senders over `limiter`'s rates before their requests are converted.
    pub fn limited(self, limiter: RateLimiter) -> Self {
        Self { limiter, ..self }
    }

    /// Answers clients only once their rows are in `buffer`, and refuses before reading while
    /// it is full.
    pub fn durable(self, buffer: Arc<DiskBuffer>) -> Self {
        Self {
            durable: Some(buffer),
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

    /// Converts and queues a request from `sender`; the whole request is queued or none of
    /// it is. With a disk buffer, returns once the rows are on disk.
    pub async fn accept<R: ExportRequest>(
        &self,
        request: &R,
        protocol: Protocol,
        sender: &Sender,
    ) -> Result<Accepted, IntakeError> {
        let labels = [R::SIGNAL.as_str(), protocol.as_str()];
        if self.limiter.enabled() {
            let bytes = if self.limiter.limits_bytes() {
                request.encoded_len()
            } else {
                0
            };
            let items = request.items();
            if let Err(retry_after) = self.limiter.admit(sender, items, bytes, Instant::now()) {
                self.metrics.rate_limited.with_label_values(&labels).inc();
                return Err(IntakeError::RateLimited { retry_after });
            }
        }
        let refuse = |reason: String| self.refused(R::SIGNAL, protocol, reason);
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
            self.submit(SignalBatch::new(R::SIGNAL, converted.batch))
                .await
                .map_err(|reason| refuse(reason.to_string()))?;
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

    /// Queues a batch whole, without waiting for room; with a disk buffer, returns once the
    /// rows are on disk. Receivers and the collector's own probes queue through here.
    pub async fn submit(&self, batch: SignalBatch) -> Result<(), Refused> {
        if self.durable.is_some() {
            let done = self
                .queue
                .try_send_durable(batch)
                .map_err(|e| Refused(e.to_string()))?;
            match done.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(Refused(e.to_string())),
                Err(_) => Err(Refused("the collector is shutting down".into())),
            }
        } else {
            self.queue
                .try_send(batch)
                .map_err(|e| Refused(e.to_string()))
        }
    }
}

/// The queue or the disk buffer did not take a batch; the reason is for the client or the log.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);
