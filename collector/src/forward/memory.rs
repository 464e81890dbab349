//! Forwarding without a disk buffer (standalone mode): drains the in-memory queue, coalesces
//! small batches per signal (by rows and by time) and delivers them, retrying while the sink is
//! unavailable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Attempt, ForwardConfig, Outcome};
use crate::queue::Queued;
use crate::signal::{BatchId, Signal, SignalBatch};
use crate::sink::Sink;
use crate::telemetry::CollectorMetrics;

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
        sink: &sink,
        metrics: &metrics,
        shutdown: &shutdown,
        collector: uuid::Uuid::new_v4().simple().to_string().into(),
        sequences: BTreeMap::new(),
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
    sink: &'a Arc<dyn Sink>,
    metrics: &'a CollectorMetrics,
    shutdown: &'a CancellationToken,
    collector: Arc<str>,
    sequences: BTreeMap<Signal, u64>,
}

impl Delivery<'_> {
    /// Delivers queued batches of one signal as one delivery, retrying until delivered, refused
    /// for good, or (after shutdown) the grace period ends. Frees the queue's room afterwards.
    async fn deliver(&mut self, signal: Signal, items: Vec<Queued>) {
        let rows: usize = items.iter().map(|q| q.batch.rows()).sum();
        let held: usize = items.iter().map(|q| q.permit.num_permits()).sum();
        // Queued batches travel together as they are: copying them into one buys nothing here.
        let batches: Vec<_> = items
            .iter()
            .flat_map(|q| q.batch.batches.iter().cloned())
            .collect();
        let sequence = self.sequences.entry(signal).or_default();
        *sequence += 1;
        let id = BatchId {
            collector: Arc::clone(&self.collector),
            sequence: *sequence,
        };
        let batch = SignalBatch::from_batches(signal, batches).with_id(id);
        let attempt = Attempt {
            config: self.config,
            sink: self.sink,
            metrics: self.metrics,
            shutdown: self.shutdown,
        };
        if attempt.deliver(batch, rows).await == Outcome::Abandoned {
            tracing::error!(%signal, rows, "shutting down with the sink unreachable: rows lost");
            self.metrics
                .lost_rows
                .with_label_values(&[signal.as_str()])
                .inc_by(rows as u64);
        }
        self.metrics.queue_rows.sub(held as i64);
        drop(items);
    }
}
