//! Where the collector's batches go. A sink takes one batch at a time and says whether it is
//! safely delivered; the forwarder retries retryable failures. Implementations: the analyzer's
//! in-process store (standalone mode, in the analyzer crate), [`network::NetworkSink`] (HTTP to
//! an analyzer) and [`kafka::KafkaSink`].

pub mod kafka;
pub mod network;

use futures::future::BoxFuture;

use crate::signal::SignalBatch;

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The destination is down or overloaded; the same batch may be retried.
    #[error("destination unavailable: {0}")]
    Unavailable(String),
    /// The destination refused the batch for good (a schema mismatch); retrying cannot help.
    #[error("batch refused: {0}")]
    Refused(String),
}

impl SinkError {
    /// Whether the same batch may be delivered later: the forwarder retries these with backoff
    /// and counts the others as lost.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SinkError::Unavailable(_))
    }
}

/// Why a sink could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildSinkError {
    /// librdkafka refused the producer's configuration.
    #[error("creating the Kafka producer: {0}")]
    KafkaProducer(#[source] rdkafka::error::KafkaError),
    /// The network sink's TLS settings are not usable.
    #[error("the analyzer connection's TLS: {0}")]
    Tls(#[source] crate::tls::TlsError),
    /// The network sink's token is configured but cannot be read.
    #[error("the analyzer token: {0}")]
    Token(#[source] crate::auth::SecretError),
}

/// A destination for record batches.
///
/// Contract: `deliver` returns `Ok` only once the destination holds the batch (the forwarder
/// then frees its room in the queue or marks it delivered in the disk buffer);
/// [`SinkError::Unavailable`] means "the same batch may succeed later" and is retried with
/// backoff; [`SinkError::Refused`] means never, and the rows are counted as lost.
///
/// # Example
///
/// A sink that counts rows and keeps nothing, fed by a real conversion:
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// use futures::future::{BoxFuture, FutureExt};
/// use meridian_collector::convert::traces_to_arrow;
/// use meridian_collector::otlp::builders::{span, traces};
/// use meridian_collector::sink::{Sink, SinkError};
/// use meridian_collector::{Signal, SignalBatch};
///
/// #[derive(Default)]
/// struct RowCounter(AtomicUsize);
///
/// impl Sink for RowCounter {
///     fn name(&self) -> &'static str {
///         "row_counter"
///     }
///     fn deliver(&self, batch: SignalBatch) -> BoxFuture<'_, Result<(), SinkError>> {
///         self.0.fetch_add(batch.rows(), Ordering::Relaxed);
///         futures::future::ready(Ok(())).boxed()
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let request = traces("gateway", vec![span("GET /", 1), span("GET /", 2)]);
/// let rows = traces_to_arrow(&request, "eu-west-1").unwrap().batch;
/// let sink = RowCounter::default();
/// sink.deliver(SignalBatch::new(Signal::Traces, rows)).await.unwrap();
/// assert_eq!(sink.0.load(Ordering::Relaxed), 2);
/// # }
/// ```
pub trait Sink: Send + Sync + 'static {
    /// Short name for logs and metrics labels.
    fn name(&self) -> &'static str;

    /// How many deliveries may be in flight at once. More than one only if the destination
    /// keeps them in order (a Kafka partition does; separate HTTP requests do not).
    fn max_in_flight(&self) -> usize {
        1
    }

    /// Largest encoded batch the destination takes; larger batches are split before buffering.
    fn max_batch_bytes(&self) -> usize {
        usize::MAX
    }

    /// Whether a delivery must carry decoded batches. Sinks that send the encoded stream
    /// ([`SignalBatch::ipc`]) say no, and the disk buffer then skips decoding its records.
    fn needs_batches(&self) -> bool {
        true
    }

    /// Delivers one batch; `Ok` means the destination holds it.
    fn deliver(&self, batch: SignalBatch) -> BoxFuture<'_, Result<(), SinkError>>;
}
