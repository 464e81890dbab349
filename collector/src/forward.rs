//! The forwarder: drains the queue, coalesces small batches per signal (by rows and by time),
//! and delivers them to the sink, retrying with backoff while the sink is unavailable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::queue::Queued;
use crate::signal::{BatchId, Signal, SignalBatch};
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

/// Rows of one signal waiting to be coalesced.
struct Pending {
    items: Vec<Queued>,
    rows: usize,
    since: Instant,
}

/// Runs the forwarder until the queue is closed (all senders dropped), then flushes what is left.
pub async fn run(
    config: ForwardConfig,
    mut rx: mpsc::UnboundedReceiver<Queued>,
    sink: Arc<dyn Sink>,
    metrics: CollectorMetrics,
    shutdown: CancellationToken,
) {
    let mut ctx = Delivery {
        config: &config,
        sink: sink.as_ref(),
        metrics: &metrics,
        shutdown: &shutdown,
        collector: uuid::Uuid::new_v4().simple().to_string().into(),
        sequence: 0,
    };
    let mut pending: BTreeMap<Signal, Pending> = BTreeMap::new();
    let tick = config.batch_timeout.max(Duration::from_millis(10)) / 2;
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            item = rx.recv() => match item {
                Some(item) => {
                    let signal = item.batch.signal;
                    let entry = pending.entry(signal).or_insert_with(|| Pending { items: Vec::new(), rows: 0, since: Instant::now() });
                    if entry.items.is_empty() {
                        entry.since = Instant::now();
                    }
                    entry.rows += item.batch.rows();
                    entry.items.push(item);
                    if entry.rows >= config.batch_max_rows {
                        let items = std::mem::take(&mut entry.items);
                        entry.rows = 0;
                        ctx.deliver(signal, items).await;
                    }
                }
                None => break,
            },
            _ = interval.tick() => {
                for (signal, entry) in pending.iter_mut() {
                    if !entry.items.is_empty() && entry.since.elapsed() >= config.batch_timeout {
                        let items = std::mem::take(&mut entry.items);
                        entry.rows = 0;
                        ctx.deliver(*signal, items).await;
                    }
                }
            }
        }
    }
    for (signal, entry) in pending {
        if !entry.items.is_empty() {
            ctx.deliver(signal, entry.items).await;
        }
    }
}

/// What every delivery needs, and the sequence that identifies each delivered batch.
struct Delivery<'a> {
    config: &'a ForwardConfig,
    sink: &'a dyn Sink,
    metrics: &'a CollectorMetrics,
    shutdown: &'a CancellationToken,
    collector: Arc<str>,
    sequence: u64,
}

impl Delivery<'_> {
    /// Delivers queued batches of one signal as one delivery, retrying until delivered, refused
    /// for good, or (after shutdown) the grace period ends. Frees the queue's room afterwards.
    async fn deliver(&mut self, signal: Signal, items: Vec<Queued>) {
        let (config, sink, metrics, shutdown) =
            (self.config, self.sink, self.metrics, self.shutdown);
        let rows: usize = items.iter().map(|q| q.batch.rows()).sum();
        let held: usize = items.iter().map(|q| q.permit.num_permits()).sum();
        // Queued batches travel together as they are: copying them into one buys nothing here.
        let batches: Vec<_> = items
            .iter()
            .flat_map(|q| q.batch.batches.iter().cloned())
            .collect();
        self.sequence += 1;
        let id = BatchId {
            collector: Arc::clone(&self.collector),
            sequence: self.sequence,
        };
        let mut backoff = config.retry_initial_backoff;
        let mut give_up_at: Option<Instant> = None;
        loop {
            match sink
                .deliver(SignalBatch::from_batches(signal, batches.clone()).with_id(id.clone()))
                .await
            {
                Ok(()) => {
                    metrics.sink_up.set(1);
                    metrics
                        .forwarded_rows
                        .with_label_values(&[signal.as_str()])
                        .inc_by(rows as u64);
                    break;
                }
                Err(SinkError::Refused(reason)) => {
                    tracing::error!(%signal, rows, %reason, sink = sink.name(), "sink refused a batch; it is lost");
                    metrics
                        .lost_rows
                        .with_label_values(&[signal.as_str()])
                        .inc_by(rows as u64);
                    break;
                }
                Err(SinkError::Unavailable(reason)) => {
                    metrics.sink_up.set(0);
                    metrics
                        .forward_errors
                        .with_label_values(&[sink.name()])
                        .inc();
                    tracing::warn!(%signal, rows, %reason, retry_in = ?backoff, "sink unavailable; will retry");
                    if shutdown.is_cancelled() {
                        let deadline = *give_up_at
                            .get_or_insert_with(|| Instant::now() + config.shutdown_grace);
                        if Instant::now() >= deadline {
                            tracing::error!(%signal, rows, "shutting down with the sink unreachable: rows lost");
                            metrics
                                .lost_rows
                                .with_label_values(&[signal.as_str()])
                                .inc_by(rows as u64);
                            break;
                        }
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(config.retry_max_backoff);
                }
            }
        }
        metrics.queue_rows.sub(held as i64);
        drop(items);
    }
}
