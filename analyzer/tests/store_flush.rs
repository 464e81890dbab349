//! The store under concurrent writes, flushes and queries.

mod common;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use meridian_analyzer::AnalyzerConfig;
use meridian_collector::{Signal, SignalBatch};
use opentelemetry_proto::tonic::trace::v1::Span;

/// `n` valid spans whose start times straddle an hour boundary, so flushes split files by hour.
fn batch(offset: u64, n: u64) -> SignalBatch {
    let hour = 3_600_000_000_000u64;
    let spans = (0..n)
        .map(|i| {
            let k = offset + i + 1;
            let mut trace_id = vec![0u8; 8];
            trace_id.extend_from_slice(&k.to_be_bytes());
            Span {
                trace_id,
                span_id: k.to_be_bytes().to_vec(),
                name: "s".into(),
                start_time_unix_nano: 1_700_000_000_000_000_000 + (k % 2) * hour,
                ..Default::default()
            }
        })
        .collect();
    SignalBatch::new(Signal::Traces, common::spans_batch(spans))
}

/// Scenario: one task inserts 200 batches while another flushes repeatedly and a third counts
/// rows with SQL the whole time.
/// Guarantees: every count is exactly what was inserted before it (never a duplicate from a row
/// that is both hot and flushed, never a gap); after a reopen all rows are there, from Parquet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushing_never_loses_or_duplicates_rows_under_queries() {
    let dir = tempfile::tempdir().unwrap();
    let registry = prometheus::Registry::new();
    let analyzer = AnalyzerConfig::default()
        .build(dir.path(), &registry)
        .await
        .unwrap();
    let store = analyzer.store();
    let engine = analyzer.engine();
    let inserted = Arc::new(std::sync::atomic::AtomicI64::new(0));

    let writer = {
        let (store, inserted) = (Arc::clone(&store), Arc::clone(&inserted));
        tokio::spawn(async move {
            for b in 0..200u64 {
                store.insert(batch(b * 50, 50)).unwrap();
                inserted.fetch_add(50, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_micros(300)).await;
            }
        })
    };
    let flusher = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for _ in 0..40 {
                store.flush(Signal::Traces).await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let mut checks = 0;
    while !writer.is_finished() || !flusher.is_finished() {
        let before = inserted.load(std::sync::atomic::Ordering::SeqCst);
        let result = engine
            .query("SELECT count(*) AS n, count(DISTINCT span_id) AS d FROM spans")
            .await
            .unwrap();
        let after = inserted.load(std::sync::atomic::Ordering::SeqCst);
        let b = &result.batches[0];
        let n = b.column(0).as_primitive::<Int64Type>().value(0);
        let d = b.column(1).as_primitive::<Int64Type>().value(0);
        assert_eq!(n, d, "a row was seen twice");
        assert!(
            n >= before && n <= after,
            "count {n} outside [{before}, {after}]"
        );
        checks += 1;
    }
    writer.await.unwrap();
    flusher.await.unwrap();
    assert!(checks > 5, "the query loop barely ran ({checks})");
    store.flush_all().await.unwrap();
    drop((store, engine, analyzer));

    let reopened = AnalyzerConfig::default()
        .build(dir.path(), &prometheus::Registry::new())
        .await
        .unwrap();
    assert_eq!(
        common::count(&reopened.engine(), "SELECT count(*) AS n FROM spans").await,
        10_000
    );
    assert_eq!(
        reopened.store().table(Signal::Traces).snapshot().hot_rows,
        0
    );
    // Hour pruning: a range inside the first hour sees only its half.
    let first_hour =
        "SELECT count(*) AS n FROM spans WHERE time >= to_timestamp_nanos(1700000000000000000) \
                      AND time < to_timestamp_nanos(1700003600000000000)";
    assert_eq!(common::count(&reopened.engine(), first_hour).await, 5_000);
}
