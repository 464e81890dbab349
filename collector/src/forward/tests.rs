//! The forwarders against a capture sink, in paused tokio time: backoff, refusals, the
//! shutdown grace period, coalescing, and the disk drain's order.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ForwardConfig;
use crate::queue;
use crate::signal::SignalBatch;
use crate::telemetry::CollectorMetrics;
use crate::testing::{metrics, span_batch, CaptureSink, Reply};

fn config() -> ForwardConfig {
    ForwardConfig {
        // Every batch is delivered on its own, as soon as it is queued.
        batch_max_rows: 1,
        ..ForwardConfig::default()
    }
}

/// Queues `batches`, closes the queue and runs the memory forwarder into `sink` until it has
/// delivered (or given up on) all of them; returns its metrics.
async fn forward_all(sink: &CaptureSink, batches: Vec<SignalBatch>) -> CollectorMetrics {
    let m = metrics();
    let (tx, rx) = queue::bounded(1000, m.clone());
    for batch in batches {
        tx.try_send(batch).unwrap();
    }
    drop(tx);
    let sink = Arc::new(sink.clone());
    super::memory::run(config(), rx, sink, m.clone(), CancellationToken::new()).await;
    m
}

/// Scenario: the sink is unavailable three times, then takes the batch.
/// Guarantees: retries wait 100, 200, 400 ms (doubling from `retry_initial_backoff`), the
/// batch is delivered once, and `sink_up` is back to 1.
#[tokio::test(start_paused = true)]
async fn an_unavailable_sink_is_retried_with_doubling_backoff() {
    let sink = CaptureSink::scripted([Reply::Unavailable, Reply::Unavailable, Reply::Unavailable]);
    let m = forward_all(&sink, vec![span_batch(5, 0)]).await;
    let at: Vec<Instant> = sink.attempts().iter().map(|(t, _)| *t).collect();
    let waits: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        waits,
        [100, 200, 400].map(Duration::from_millis).to_vec(),
        "backoff between attempts"
    );
    assert_eq!(sink.delivered_rows(), 5);
    assert_eq!(m.sink_up.get(), 1);
    assert_eq!(m.forward_errors.with_label_values(&["capture"]).get(), 3);
    assert_eq!(m.forwarded_rows.with_label_values(&["traces"]).get(), 5);
}

/// Scenario: the sink refuses the first batch for good and takes the second.
/// Guarantees: a refused batch is not retried and is counted as lost; the next is delivered.
#[tokio::test(start_paused = true)]
async fn a_refused_batch_is_lost_and_counted_and_the_next_goes_through() {
    let sink = CaptureSink::scripted([Reply::Refused]);
    let m = forward_all(&sink, vec![span_batch(3, 0), span_batch(4, 10)]).await;
    assert_eq!(sink.attempts().len(), 2, "no retry of the refused batch");
    assert_eq!(sink.delivered_rows(), 4);
    assert_eq!(m.lost_rows.with_label_values(&["traces"]).get(), 3);
    assert_eq!(
        m.queue_rows.get(),
        0,
        "the refused batch's room was given back"
    );
}

/// Scenario: the sink never answers OK; shutdown starts while a batch is being retried.
/// Guarantees: the forwarder keeps retrying for `shutdown_grace` after shutdown, then gives
/// the rows up (counted as lost) instead of hanging.
#[tokio::test(start_paused = true)]
async fn shutdown_gives_up_on_an_unreachable_sink_after_the_grace_period() {
    let sink = CaptureSink::scripted(std::iter::repeat_n(Reply::Unavailable, 1000));
    let m = metrics();
    let (tx, rx) = queue::bounded(1000, m.clone());
    tx.try_send(span_batch(2, 0)).unwrap();
    drop(tx);
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(super::memory::run(
        config(),
        rx,
        Arc::new(sink.clone()),
        m.clone(),
        shutdown.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stopping = Instant::now();
    shutdown.cancel();
    run.await.unwrap();
    let waited = stopping.elapsed();
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_secs(11),
        "gave up {waited:?} after shutdown; the grace period is 10 s"
    );
    assert_eq!(sink.delivered_rows(), 0);
    assert_eq!(m.lost_rows.with_label_values(&["traces"]).get(), 2);
    assert_eq!(m.sink_up.get(), 0);
}

/// Scenario: three small batches arrive within `batch_timeout`, below `batch_max_rows`.
/// Guarantees: they travel as one delivery, sent once the timeout since the first passed.
#[tokio::test(start_paused = true)]
async fn small_batches_are_coalesced_until_the_batch_timeout() {
    let sink = CaptureSink::scripted([]);
    let m = metrics();
    let (tx, rx) = queue::bounded(1000, m.clone());
    let run = tokio::spawn(super::memory::run(
        ForwardConfig::default(),
        rx,
        Arc::new(sink.clone()),
        m.clone(),
        CancellationToken::new(),
    ));
    let start = Instant::now();
    for i in 0..3 {
        tx.try_send(span_batch(2, i * 10)).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let attempts = sink.attempts();
    assert_eq!(attempts.len(), 1, "one delivery for the three batches");
    assert_eq!(attempts[0].1, 6);
    let sent_after = attempts[0].0 - start;
    assert!(
        sent_after >= Duration::from_millis(200) && sent_after < Duration::from_millis(400),
        "sent {sent_after:?} after the first batch; batch_timeout is 200 ms"
    );
    drop(tx);
    run.await.unwrap();
}

/// Scenario: batches go through the disk buffer to a sink that fails twice.
/// Guarantees: every row is delivered once, in the order accepted, and the buffer records
/// them as delivered.
#[tokio::test(start_paused = true)]
async fn the_disk_drain_delivers_in_order_after_failures() {
    let dir = tempfile::tempdir().unwrap();
    let m = metrics();
    let buffer = crate::buffer::BufferConfig::default()
        .build(dir.path(), m.clone())
        .unwrap();
    let (tx, rx) = queue::bounded(1000, m.clone());
    let spool = tokio::spawn(crate::buffer::spool::run(
        Arc::clone(&buffer),
        rx,
        usize::MAX,
        crate::wire::Encoding::Columnar,
    ));
    let sink = CaptureSink::scripted([Reply::Unavailable, Reply::Unavailable]);
    let shutdown = CancellationToken::new();
    let drain = tokio::spawn(super::disk::run(
        config(),
        Arc::clone(&buffer),
        Arc::new(sink.clone()),
        m.clone(),
        shutdown.clone(),
    ));
    for i in 0..3 {
        let done = tx.try_send_durable(span_batch(4, i * 100)).unwrap();
        done.await.unwrap().unwrap();
    }
    drop(tx);
    spool.await.unwrap();
    while sink.delivered_rows() < 12 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    drain.await.unwrap();
    let sequences: Vec<u64> = sink
        .delivered()
        .iter()
        .map(|b| b.id.as_ref().unwrap().sequence)
        .collect();
    assert_eq!(sequences, [1, 2, 3]);
    assert_eq!(buffer.delivered(), buffer.written());
}
