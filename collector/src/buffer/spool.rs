//! The disk buffer's writer: takes batches from the queue, writes them as records and answers
//! each waiting receiver once its batch is on disk (per the fsync policy).
//!
//! Group commit: whatever queued while the previous write was in progress is written together
//! — one record per signal, one fsync — so a busy collector makes large records and few fsyncs,
//! and an idle one answers after a single small write.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use tokio::sync::mpsc;

use super::record::BufferedRecord;
use super::{DiskBuffer, FsyncPolicy};
use crate::queue::{AckError, Queued};
use crate::signal::Signal;
use crate::wire::{self, Encoding};

/// Most rows written as one group.
const GROUP_MAX_ROWS: usize = 65_536;

/// Runs the writer until the queue closes. `max_record_bytes` bounds one record (a sink's
/// message size limit); records are written in `encoding`, what the sink sends.
pub async fn run(
    buffer: Arc<DiskBuffer>,
    mut rx: mpsc::UnboundedReceiver<Queued>,
    max_record_bytes: usize,
    encoding: Encoding,
) {
    let mut last_sync = Instant::now();
    let mut unsynced = false;
    loop {
        let interval = buffer.config.fsync_interval;
        let first = if unsynced && buffer.config.fsync == FsyncPolicy::Interval {
            match tokio::time::timeout(interval, rx.recv()).await {
                Ok(item) => item,
                Err(_) => {
                    sync(&buffer).await;
                    unsynced = false;
                    last_sync = Instant::now();
                    continue;
                }
            }
        } else {
            rx.recv().await
        };
        let Some(first) = first else { break };
        let mut group = vec![first];
        let mut rows = group[0].batch.rows();
        while rows < GROUP_MAX_ROWS {
            match rx.try_recv() {
                Ok(item) => {
                    rows += item.batch.rows();
                    group.push(item);
                }
                Err(_) => break,
            }
        }
        let sync_now = match buffer.config.fsync {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval => last_sync.elapsed() >= interval,
            FsyncPolicy::Never => false,
        };
        let outcome = write_group(&buffer, &group, max_record_bytes, encoding, sync_now).await;
        if outcome.is_ok() {
            if sync_now {
                last_sync = Instant::now();
                unsynced = false;
            } else {
                unsynced = true;
            }
        }
        for item in group {
            if let Some(done) = item.done {
                let _ = done.send(outcome.clone());
            }
            buffer
                .metrics
                .queue_rows
                .sub(item.permit.num_permits() as i64);
            drop(item.permit);
        }
    }
    if unsynced {
        sync(&buffer).await;
    }
}

async fn sync(buffer: &Arc<DiskBuffer>) {
    let buffer = Arc::clone(buffer);
    let result = tokio::task::spawn_blocking(move || buffer.lock_log().sync()).await;
    if let Ok(Err(e)) = result {
        tracing::error!(error = %e, "fsync of the disk buffer failed");
    }
}

/// Encodes and appends one group, one record per signal (split to fit `max_record_bytes`).
async fn write_group(
    buffer: &Arc<DiskBuffer>,
    group: &[Queued],
    max_record_bytes: usize,
    encoding: Encoding,
    sync_now: bool,
) -> Result<(), AckError> {
    let mut by_signal: BTreeMap<Signal, Vec<RecordBatch>> = BTreeMap::new();
    for item in group {
        by_signal
            .entry(item.batch.signal)
            .or_default()
            .extend(item.batch.batches.iter().cloned());
    }
    let writer = Arc::clone(buffer);
    let joined = tokio::task::spawn_blocking(move || -> Result<(), AckError> {
        let buffer = writer;
        let mut encoded = Vec::new();
        for (signal, batches) in by_signal {
            let batch = concat_batches(&signal.schema(), &batches)
                .map_err(|e| AckError::Write(e.to_string()))?;
            for (rows, payload) in wire::encode_bounded(encoding, &batch, max_record_bytes)
                .map_err(|e| AckError::Write(e.to_string()))?
            {
                encoded.push((signal, rows, payload));
            }
        }
        let bytes: u64 = encoded.iter().map(|(_, _, b)| b.len() as u64).sum();
        let created_ms = chrono::Utc::now().timestamp_millis();
        let mut log = buffer.lock_log();
        if log.total_bytes() + bytes > buffer.config.max_bytes {
            buffer.mark_full();
            return Err(AckError::Full(buffer.config.max_bytes));
        }
        let mut state = buffer.lock_state();
        for (signal, rows, payload) in encoded {
            let sequence = state
                .sequences
                .entry(signal.as_str().to_owned())
                .or_default();
            *sequence += 1;
            let record = BufferedRecord {
                signal,
                sequence: *sequence,
                rows: u32::try_from(rows).unwrap_or(u32::MAX),
                created_ms,
                encoding,
                payload,
            };
            log.append(&record.encode())
                .map_err(|e| AckError::Write(e.to_string()))?;
        }
        drop(state);
        if sync_now {
            log.sync().map_err(|e| AckError::Write(e.to_string()))?;
        }
        let written = log.next_index();
        drop(log);
        buffer.written.send_replace(written);
        Ok(())
    })
    .await;
    let result = joined.unwrap_or_else(|e| Err(AckError::Write(e.to_string())));
    buffer.update_gauges();
    match &result {
        // Expected under overload, once per refused request: counted, not logged.
        Err(e @ AckError::Full(_)) => {
            tracing::debug!(error = %e, "batch not buffered: buffer full")
        }
        Err(e) => tracing::warn!(error = %e, "batch not buffered; the client is told to retry"),
        Ok(()) => {}
    }
    result
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::buffer::BufferConfig;
    use crate::queue;
    use crate::testing::{metrics, span_batch};

    /// Scenario: five requests are waiting when the writer starts.
    /// Guarantees: group commit — they are written as one record (one fsync), and every waiting
    /// receiver is told its rows are on disk.
    #[tokio::test]
    async fn waiting_batches_are_written_as_one_group() {
        let dir = tempfile::tempdir().unwrap();
        let m = metrics();
        let buffer = BufferConfig::default()
            .build(dir.path(), m.clone())
            .unwrap();
        let (tx, rx) = queue::bounded(10_000, m.clone());
        let acks: Vec<_> = (0..5)
            .map(|i| tx.try_send_durable(span_batch(10, i * 100)).unwrap())
            .collect();
        drop(tx);
        run(Arc::clone(&buffer), rx, usize::MAX, Encoding::Columnar).await;
        for ack in acks {
            ack.await.unwrap().unwrap();
        }
        assert_eq!(buffer.written(), 1, "one record for the five requests");
        assert_eq!(m.queue_rows.get(), 0);
    }

    /// Scenario: the group's encoding is larger than the sink's largest batch.
    /// Guarantees: it is split into several records, each within the limit, holding every row.
    #[tokio::test]
    async fn a_group_larger_than_the_sink_takes_is_split_into_records() {
        let dir = tempfile::tempdir().unwrap();
        let m = metrics();
        let buffer = BufferConfig::default()
            .build(dir.path(), m.clone())
            .unwrap();
        let (tx, rx) = queue::bounded(100_000, m.clone());
        let ack = tx.try_send_durable(span_batch(4_000, 0)).unwrap();
        drop(tx);
        run(Arc::clone(&buffer), rx, 4 << 10, Encoding::Columnar).await;
        ack.await.unwrap().unwrap();
        assert!(
            buffer.written() > 1,
            "split into {} records",
            buffer.written()
        );
        let mut reader = buffer.reader();
        let mut rows = 0;
        for _ in 0..buffer.written() {
            let (r, next) = DiskBuffer::read_next(reader, buffer.written()).await;
            reader = r;
            let (_, record) = next.unwrap().unwrap();
            assert!(record.payload.len() <= 4 << 10);
            rows += record.rows;
        }
        assert_eq!(rows, 4_000);
    }

    /// Scenario: a buffer of 4 KiB is offered more than it holds.
    /// Guarantees: the receiver is told the buffer is full (retryable) and nothing is written.
    #[tokio::test]
    async fn a_full_buffer_refuses_with_a_retryable_error() {
        let dir = tempfile::tempdir().unwrap();
        let m = metrics();
        let config = BufferConfig {
            max_bytes: 4 << 10,
            fsync_interval: Duration::from_millis(10),
            ..BufferConfig::default()
        };
        let buffer = config.build(dir.path(), m.clone()).unwrap();
        let (tx, rx) = queue::bounded(100_000, m.clone());
        let ack = tx.try_send_durable(span_batch(4_000, 0)).unwrap();
        drop(tx);
        run(Arc::clone(&buffer), rx, usize::MAX, Encoding::Columnar).await;
        let refused = ack.await.unwrap().unwrap_err();
        assert!(matches!(refused, AckError::Full(bytes) if bytes == 4 << 10));
        assert_eq!(buffer.written(), 0);
    }
}
