//! Delivering from the disk buffer: records go to the sink in order, up to the sink's
//! `max_in_flight` at a time, and are marked delivered in order as the sink confirms them.
//! The delivery position is saved every second and at shutdown; records delivered after the last
//! save are sent again after a crash, under the same identity, and the analyzer drops the repeats.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesOrdered, StreamExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Attempt, ForwardConfig, Outcome};
use crate::buffer::record::BufferedRecord;
use crate::buffer::DiskBuffer;
use crate::signal::{BatchId, Signal, SignalBatch};
use crate::sink::Sink;
use crate::telemetry::CollectorMetrics;
use crate::wire::{self, Encoded};

/// How often the delivery position is saved.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// A record being delivered.
struct InFlight {
    index: u64,
    signal: Signal,
    sequence: u64,
    created_ms: i64,
}

/// Delivers buffered records until `shutdown`; then keeps going until the buffer is empty or
/// the grace period ends (what is left stays on disk).
pub async fn run(
    config: ForwardConfig,
    buffer: Arc<DiskBuffer>,
    sink: Arc<dyn Sink>,
    metrics: CollectorMetrics,
    shutdown: CancellationToken,
) {
    let collector: Arc<str> = buffer.collector_id().into();
    let max_in_flight = sink.max_in_flight().max(1);
    let mut reader = Some(buffer.reader());
    let mut written = buffer.watch_written();
    let mut pending = FuturesOrdered::new();
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let mut last_checkpoint = Instant::now();
    let mut stop_at: Option<Instant> = None;
    loop {
        // Keep the sink busy: read ahead up to its in-flight limit.
        while pending.len() < max_in_flight {
            let Some(r) = reader.take() else { break };
            let limit = buffer.written();
            if r.position() >= limit {
                reader = Some(r);
                break;
            }
            let (r, next) = DiskBuffer::read_next(r, limit).await;
            reader = Some(r);
            let (index, record) = match next {
                Ok(Some(found)) => found,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "reading the disk buffer failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            };
            let (signal, sequence, rows, created_ms) = (
                record.signal,
                record.sequence,
                record.rows,
                record.created_ms,
            );
            let Some(batch) = for_sink(record, &collector, sink.needs_batches()) else {
                metrics
                    .lost_rows
                    .with_label_values(&[signal.as_str()])
                    .inc_by(u64::from(rows));
                buffer.mark_delivered(index + 1, signal, sequence);
                continue;
            };
            in_flight.push_back(InFlight {
                index,
                signal,
                sequence,
                created_ms,
            });
            let (config, sink, metrics, shutdown) = (
                config.clone(),
                Arc::clone(&sink),
                metrics.clone(),
                shutdown.clone(),
            );
            pending.push_back(async move {
                let attempt = Attempt {
                    config: &config,
                    sink: &sink,
                    metrics: &metrics,
                    shutdown: &shutdown,
                };
                attempt.deliver(batch, rows as usize).await
            });
        }
        let age = in_flight.front().map_or(0.0, |f| {
            (chrono::Utc::now().timestamp_millis() - f.created_ms).max(0) as f64 / 1000.0
        });
        metrics.buffer_oldest_age_seconds.set(age);

        if shutdown.is_cancelled() {
            let caught_up = pending.is_empty()
                && reader
                    .as_ref()
                    .is_some_and(|r| r.position() >= buffer.written());
            let deadline = *stop_at.get_or_insert_with(|| Instant::now() + config.shutdown_grace);
            if caught_up || Instant::now() >= deadline {
                break;
            }
        }
        tokio::select! {
            Some(outcome) = pending.next(), if !pending.is_empty() => {
                let Some(done) = in_flight.pop_front() else { continue };
                if outcome == Outcome::Abandoned {
                    // Shutting down with the sink away: the rest stays on disk for next time.
                    break;
                }
                buffer.mark_delivered(done.index + 1, done.signal, done.sequence);
            }
            changed = written.changed() => {
                if changed.is_err() && pending.is_empty() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            _ = shutdown.cancelled(), if !shutdown.is_cancelled() => {}
            _ = tokio::time::sleep(CHECKPOINT_EVERY) => {}
        }
        if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            last_checkpoint = Instant::now();
            if let Err(e) = buffer.checkpoint() {
                tracing::error!(error = %e, "saving the disk buffer's position failed");
            }
        }
    }
    if let Err(e) = buffer.checkpoint() {
        tracing::error!(error = %e, "saving the disk buffer's position failed");
    }
}

/// The record as a batch for the sink, with its encoded form attached; decoded only for sinks
/// that need the batches (those sending the message as it is skip the work). `None` (logged)
/// if it cannot be read.
fn for_sink(record: BufferedRecord, collector: &Arc<str>, decode: bool) -> Option<SignalBatch> {
    let batches = if decode {
        match wire::decode(record.encoding, &record.signal.schema(), &record.payload) {
            Ok(batches) => batches,
            Err(e) => {
                tracing::error!(error = %e, sequence = record.sequence, "a buffered record is unreadable; skipping it");
                return None;
            }
        }
    } else {
        Vec::new()
    };
    Some(
        SignalBatch::from_batches(record.signal, batches)
            .with_id(BatchId {
                collector: Arc::clone(collector),
                sequence: record.sequence,
            })
            .with_encoded(Encoded {
                encoding: record.encoding,
                bytes: record.payload.into(),
            }),
    )
}
