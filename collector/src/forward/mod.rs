//! Forwarding: moving accepted batches to the sink, retrying while it is unavailable.
//!
//! - [`memory`]: from the in-memory queue, coalescing by rows and time (standalone mode).
//! - [`disk`]: from the disk buffer, in order, with several deliveries in flight when the sink
//!   keeps their order (Kafka); what is not delivered stays on disk for the next start.

pub mod disk;
pub mod memory;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::signal::SignalBatch;
use crate::sink::{Sink, SinkError};
use crate::telemetry::CollectorMetrics;

/// How the forwarder batches and retries.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardConfig {
    /// Send a batch once this many rows of one signal are pending.
    pub batch_max_rows: usize,
    /// Send pending rows at the latest this long after the first of them arrived.
    #[serde(with = "humantime_serde")]
    pub batch_timeout: Duration,
    /// First retry delay after a failed delivery; doubles up to `retry_max_backoff`.
    #[serde(with = "humantime_serde")]
    pub retry_initial_backoff: Duration,
    /// Longest delay between retries.
    #[serde(with = "humantime_serde")]
    pub retry_max_backoff: Duration,
    /// At shutdown, how long to keep retrying an unavailable sink before giving up on the rows.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        Self {
            batch_max_rows: 8192,
            batch_timeout: Duration::from_millis(200),
            retry_initial_backoff: Duration::from_millis(100),
            retry_max_backoff: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// How one delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The sink holds the batch.
    Delivered,
    /// The sink refused the batch for good (logged and counted as lost).
    Refused,
    /// Shutting down, the sink stayed unavailable for the whole grace period.
    Abandoned,
}

/// What retrying a delivery needs.
pub(crate) struct Attempt<'a> {
    pub config: &'a ForwardConfig,
    pub sink: &'a Arc<dyn Sink>,
    pub metrics: &'a CollectorMetrics,
    pub shutdown: &'a CancellationToken,
}

impl Attempt<'_> {
    /// Delivers `batch` (of `rows` rows, for the metrics), retrying with exponential backoff
    /// while the sink is unavailable; after shutdown, for at most the grace period.
    pub async fn deliver(&self, batch: SignalBatch, rows: usize) -> Outcome {
        let (config, sink, metrics) = (self.config, self.sink, self.metrics);
        let signal = batch.signal;
        let mut backoff = config.retry_initial_backoff;
        // Completes one grace period after shutdown starts: then the delivery is given up.
        let give_up = async {
            self.shutdown.cancelled().await;
            tokio::time::sleep(config.shutdown_grace).await;
        };
        tokio::pin!(give_up);
        loop {
            let result = tokio::select! {
                result = sink.deliver(batch.clone()) => result,
                _ = &mut give_up => return Outcome::Abandoned,
            };
            match result {
                Ok(()) => {
                    metrics.sink_up.set(1);
                    metrics
                        .forwarded_rows
                        .with_label_values(&[signal.as_str()])
                        .inc_by(rows as u64);
                    return Outcome::Delivered;
                }
                Err(SinkError::Refused(reason)) => {
                    tracing::error!(%signal, rows, %reason, sink = sink.name(), "sink refused a batch; it is lost");
                    metrics
                        .lost_rows
                        .with_label_values(&[signal.as_str()])
                        .inc_by(rows as u64);
                    return Outcome::Refused;
                }
                Err(SinkError::Unavailable(reason)) => {
                    metrics.sink_up.set(0);
                    metrics
                        .forward_errors
                        .with_label_values(&[sink.name()])
                        .inc();
                    tracing::warn!(%signal, rows, %reason, retry_in = ?backoff, "sink unavailable; will retry");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = &mut give_up => return Outcome::Abandoned,
                    }
                    backoff = (backoff * 2).min(config.retry_max_backoff);
                }
            }
        }
    }
}
