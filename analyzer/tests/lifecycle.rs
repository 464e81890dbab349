//! Compaction and retention while queries run, and across restarts — on a local directory and
//! on an S3-compatible bucket (moto).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use common::s3::Moto;
use meridian_analyzer::query::QueryEngine;
use meridian_analyzer::store::Objects;
use meridian_analyzer::{Analyzer, AnalyzerConfig};
use meridian_collector::{Signal, SignalBatch};
use opentelemetry_proto::tonic::trace::v1::Span;

const HOUR_NS: u64 = 3_600_000_000_000;

/// `n` spans numbered from `first`, starting `hours_ago` hours before now (plus a few ms each).
fn batch(first: u64, n: u64, hours_ago: u64) -> SignalBatch {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let base = (now - hours_ago * HOUR_NS) / HOUR_NS * HOUR_NS;
    let spans = (first..first + n)
        .map(|k| {
            let mut trace_id = vec![0u8; 8];
            trace_id.extend_from_slice(&(k + 1).to_be_bytes());
            Span {
                trace_id,
                span_id: (k + 1).to_be_bytes().to_vec(),
                name: "s".into(),
                start_time_unix_nano: base + (k % 1000) * 1_000_000,
                ..Default::default()
            }
        })
        .collect();
    SignalBatch::new(Signal::Traces, common::spans_batch(spans))
}

fn config(retention: Duration) -> AnalyzerConfig {
    let mut config = AnalyzerConfig::default();
    config.store.compaction.min_files = 4;
    config.store.retention.spans = retention;
    config.store.retired_grace = Duration::from_millis(200);
    config
}

/// (count, distinct span ids) of `spans`.
async fn counts(engine: &QueryEngine) -> (i64, i64) {
    let result = engine
        .query("SELECT count(*) AS n, count(DISTINCT span_id) AS d FROM spans")
        .await
        .unwrap();
    let b = &result.batches[0];
    (
        b.column(0).as_primitive::<Int64Type>().value(0),
        b.column(1).as_primitive::<Int64Type>().value(0),
    )
}

/// Where a test's store lives: a temp directory, or a bucket on its own moto server.
struct Place {
    dir: tempfile::TempDir,
    s3: Option<(Moto, String)>,
}

impl Place {
    fn local() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            s3: None,
        }
    }

    fn s3() -> Self {
        let moto = Moto::start();
        moto.bucket("meridian");
        Self {
            dir: tempfile::tempdir().unwrap(),
            s3: Some((moto, "s3://meridian/analyzer".into())),
        }
    }

    /// `config` pointed at this place.
    fn at(&self, mut config: AnalyzerConfig) -> AnalyzerConfig {
        if let Some((moto, url)) = &self.s3 {
            config.store.url = Some(url.clone());
            config.store.url_options = moto.options();
        }
        config
    }

    async fn open(&self, config: AnalyzerConfig) -> Analyzer {
        self.at(config)
            .build(self.dir.path(), &prometheus::Registry::new())
            .await
            .unwrap()
    }

    /// Parquet files of the `spans` table in the store.
    async fn files(&self) -> usize {
        let config = self.at(AnalyzerConfig::default()).store;
        let objects =
            Objects::open(config.url.as_deref(), &config.url_options, self.dir.path()).unwrap();
        let listed = objects.list(&objects.table_root("spans")).await.unwrap();
        listed
            .iter()
            .filter(|o| o.location.as_ref().ends_with(".parquet"))
            .count()
    }
}

/// Runs `check` on every count a query loop sees until `stop` (and at least four counts).
fn query_loop(
    engine: Arc<QueryEngine>,
    stop: Arc<AtomicBool>,
    check: impl Fn(i64, i64) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut checks = 0;
        // On a loaded machine a query can take longer than the maintenance it overlaps:
        // stopping waits for a few checks, so the loop has always run (bounded by the test's
        // own timeout).
        while !stop.load(Ordering::SeqCst) || checks < 4 {
            let (n, d) = counts(&engine).await;
            check(n, d);
            checks += 1;
        }
    })
}

/// Scenario: 24 flushes leave 24 small files in two hour partitions; compaction runs (three
/// rounds, with new flushes in between) while a loop counts rows with SQL the whole time;
/// then the analyzer restarts.
/// Guarantees: every count is exactly the rows inserted (never a row missing or seen twice,
/// whichever file list a query planned with); each partition ends as one file; replaced files
/// are deleted after the grace period; after a restart the same rows are there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_never_loses_or_duplicates_rows_under_queries() {
    compaction_under_queries(Place::local()).await;
}

/// As above, with the store in an S3-compatible bucket (moto).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_on_object_storage_never_loses_or_duplicates_rows() {
    compaction_under_queries(Place::s3()).await;
}

async fn compaction_under_queries(place: Place) {
    let analyzer = place.open(config(Duration::ZERO)).await;
    let (store, engine) = (analyzer.store(), analyzer.engine());
    for i in 0..24u64 {
        store.insert(batch(i * 500, 500, i % 2 + 1)).unwrap();
        store.flush(Signal::Traces).await.unwrap();
    }
    assert_eq!(place.files().await, 24);
    let total = 24 * 500;

    let stop = Arc::new(AtomicBool::new(false));
    let queries = query_loop(Arc::clone(&engine), Arc::clone(&stop), move |n, d| {
        assert_eq!((n, d), (total, total), "a query saw rows missing or twice");
    });
    let first = store.maintain().await.unwrap();
    assert_eq!(first.compacted, 24);
    assert_eq!(first.written, 2, "one file per hour partition");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = store.maintain().await.unwrap();
    assert_eq!(second.compacted, 0, "nothing left to merge");
    assert_eq!(
        first.deleted + second.deleted,
        24,
        "replaced files are deleted after the grace period"
    );
    stop.store(true, Ordering::SeqCst);
    queries.await.expect("a count in the query loop was wrong");
    assert_eq!(place.files().await, 2);
    assert_eq!(counts(&engine).await, (total, total));

    drop((store, engine, analyzer));
    let reopened = place.open(config(Duration::ZERO)).await;
    assert_eq!(counts(&reopened.engine()).await, (total, total));
}

/// Scenario: compaction commits, and the process dies before the replaced files are deleted.
/// Guarantees: at the next start the replaced files are deleted (listed as retired in the
/// checkpoint), so no row is counted twice.
#[tokio::test]
async fn a_crash_after_compaction_never_duplicates_rows() {
    crash_after_compaction(Place::local()).await;
}

/// As above, with the store in an S3-compatible bucket (moto).
#[tokio::test]
async fn a_crash_after_compaction_on_object_storage_never_duplicates_rows() {
    crash_after_compaction(Place::s3()).await;
}

async fn crash_after_compaction(place: Place) {
    let mut cfg = config(Duration::ZERO);
    cfg.store.retired_grace = Duration::from_secs(3600);
    let analyzer = place.open(cfg.clone()).await;
    let store = analyzer.store();
    for i in 0..8u64 {
        store.insert(batch(i * 100, 100, 1)).unwrap();
        store.flush(Signal::Traces).await.unwrap();
    }
    assert_eq!(store.maintain().await.unwrap().compacted, 8);
    assert_eq!(
        place.files().await,
        9,
        "old files kept for the grace period"
    );
    drop((store, analyzer)); // a crash: nothing else runs

    let reopened = place.open(cfg).await;
    assert_eq!(place.files().await, 1);
    assert_eq!(counts(&reopened.engine()).await, (800, 800));
}

/// Scenario: a table with a 10-hour TTL holding
/// data 30 h old (expired) and 1 h old (kept); retention runs while a loop counts rows.
/// Guarantees: every count is either everything or exactly the kept rows (an expired
/// partition disappears in one step, never partly); the expired files are deleted after the
/// grace period and stay gone after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_whole_partitions_under_queries() {
    let place = Place::local();
    let ttl = Duration::from_secs(10 * 3600);
    let analyzer = place.open(config(ttl)).await;
    let (store, engine) = (analyzer.store(), analyzer.engine());
    for i in 0..3u64 {
        store.insert(batch(i * 1000, 1000, 30)).unwrap();
        store.insert(batch(10_000 + i * 1000, 1000, 1)).unwrap();
        store.flush(Signal::Traces).await.unwrap();
    }
    let (all, kept) = (6000, 3000);
    assert_eq!(counts(&engine).await, (all, all));

    let stop = Arc::new(AtomicBool::new(false));
    let queries = query_loop(Arc::clone(&engine), Arc::clone(&stop), move |n, d| {
        assert_eq!(n, d, "a row seen twice");
        assert!(n == all || n == kept, "a partition was partly dropped: {n}");
    });
    let first = store.maintain().await.unwrap();
    assert_eq!(first.expired, 3);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(first.deleted + store.maintain().await.unwrap().deleted, 3);
    stop.store(true, Ordering::SeqCst);
    queries.await.expect("a count in the query loop was wrong");
    assert_eq!(counts(&engine).await, (kept, kept));

    assert_eq!(place.files().await, 3);

    drop((store, engine, analyzer));
    let reopened = place.open(config(ttl)).await;
    assert_eq!(counts(&reopened.engine()).await, (kept, kept));
}
