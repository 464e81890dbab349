//! The analyzer's store: per table, recent rows in memory and older rows in Parquet files
//! partitioned by hour. Batches come in through [`Store::insert`]; a flusher moves hot rows to
//! Parquet by size and age; [`table::Table`] serves both to DataFusion.
//!
//! Durability: rows are durable once flushed. A flush writes its files, then the table's
//! checkpoint (the [`ledger`]: flush id, Kafka offsets and batch keys it covers), then swaps them
//! in. Rows still in memory are lost if the process is killed (a graceful shutdown flushes them):
//! from Kafka they are consumed again from the checkpoint's offsets and stored once.

mod dataset;
pub mod ledger;
mod lifecycle;
mod objects;
pub mod order;
mod parquet;
mod prune;
pub mod table;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use meridian_collector::SignalBatch;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::error::StoreError;
use crate::telemetry::AnalyzerMetrics;
pub use dataset::Dataset;
use ledger::{LedgerState, Origin};
pub use lifecycle::{CompactionConfig, Maintenance, RetentionConfig};
pub use objects::Objects;
pub use parquet::{StoredFile, HOUR_NS};
use table::Table;

/// The checkpoint object under each table's prefix.
const CHECKPOINT: &str = "_checkpoint.json";

/// What [`Store::insert_from`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The rows were added.
    Stored,
    /// The table already held this batch; nothing was added.
    Repeat,
}

/// Configuration of the store (`[analyzer.store]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Where Parquet files and checkpoints live: unset (the default) keeps them in the data
    /// directory; `s3://bucket/prefix` puts them in an S3-compatible bucket.
    pub url: Option<String>,
    /// Options of the object store at `url`, by object_store's key names (S3: `endpoint`,
    /// `region`, `allow_http`, `access_key_id`, `secret_access_key`, …); the `AWS_*`
    /// environment variables are read too.
    pub url_options: BTreeMap<String, String>,
    /// Flush a table's hot rows to Parquet at least this often.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Flush a table as soon as this many rows are hot.
    pub flush_max_rows: usize,
    /// Refuse new batches (retryable) while this many rows of a table wait to be flushed.
    pub max_hot_rows: usize,
    /// How long each table keeps data.
    pub retention: RetentionConfig,
    /// When small Parquet files are merged.
    pub compaction: CompactionConfig,
    /// How often retention and compaction run.
    #[serde(with = "humantime_serde")]
    pub maintenance_interval: Duration,
    /// How long replaced files stay on disk for queries that already planned with them; keep
    /// it above `analyzer.query.timeout`.
    #[serde(with = "humantime_serde")]
    pub retired_grace: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: None,
            url_options: BTreeMap::new(),
            flush_interval: Duration::from_secs(10),
            flush_max_rows: 500_000,
            max_hot_rows: 4_000_000,
            retention: RetentionConfig::default(),
            compaction: CompactionConfig::default(),
            maintenance_interval: Duration::from_secs(60),
            retired_grace: Duration::from_secs(120),
        }
    }
}

/// The store of all tables.
pub struct Store {
    objects: Arc<Objects>,
    config: StoreConfig,
    tables: BTreeMap<Dataset, Arc<Table>>,
    flush_locks: BTreeMap<Dataset, Mutex<()>>,
    metrics: AnalyzerMetrics,
    flush_wanted: tokio::sync::Notify,
    retired: std::sync::Mutex<lifecycle::Retired>,
    observer: std::sync::OnceLock<Arc<dyn Observer>>,
}

/// Sees every batch stored from collectors, after it is stored (the analysis pipeline's tap).
///
/// Contract: `observe` runs on the inserting thread, once per stored delivery and never for a
/// recognised repeat, so it must be quick (the pipeline only appends to open intervals); one
/// observer per store ([`Store::set_observer`]).
///
/// # Example
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// use arrow::array::RecordBatch;
/// use meridian_analyzer::store::{Dataset, Observer, StoreConfig};
/// use meridian_analyzer::telemetry::AnalyzerMetrics;
/// use meridian_collector::convert::traces_to_arrow;
/// use meridian_collector::otlp::builders::{span, traces};
/// use meridian_collector::{Signal, SignalBatch};
///
/// #[derive(Default)]
/// struct SpanCounter(AtomicUsize);
///
/// impl Observer for SpanCounter {
///     fn observe(&self, dataset: Dataset, batches: &[RecordBatch]) {
///         if dataset == Dataset::Spans {
///             let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
///             self.0.fetch_add(rows, Ordering::Relaxed);
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let dir = tempfile::tempdir().unwrap();
/// let metrics = AnalyzerMetrics::new(&prometheus::Registry::new()).unwrap();
/// let store = StoreConfig::default().build(dir.path(), metrics).await.unwrap();
/// let counter = Arc::new(SpanCounter::default());
/// store.set_observer(counter.clone());
/// let request = traces("gateway", vec![span("GET /", 1)]);
/// let rows = traces_to_arrow(&request, "eu-west-1").unwrap().batch;
/// store.insert(SignalBatch::new(Signal::Traces, rows)).unwrap();
/// assert_eq!(counter.0.load(Ordering::Relaxed), 1);
/// # }
/// ```
pub trait Observer: Send + Sync {
    /// Called with the batches of one delivery to `dataset`, in the table's schema.
    fn observe(&self, dataset: Dataset, batches: &[RecordBatch]);
}

impl StoreConfig {
    /// Opens the store at `url` (default: the directory `data_dir`), finding the Parquet files
    /// already there.
    pub async fn build(
        &self,
        data_dir: &Path,
        metrics: AnalyzerMetrics,
    ) -> Result<Store, StoreError> {
        Store::open(data_dir, self.clone(), metrics).await
    }
}

impl Store {
    async fn open(
        data_dir: &Path,
        config: StoreConfig,
        metrics: AnalyzerMetrics,
    ) -> Result<Self, StoreError> {
        let objects = Arc::new(Objects::open(
            config.url.as_deref(),
            &config.url_options,
            data_dir,
        )?);
        let mut tables = BTreeMap::new();
        let mut flush_locks = BTreeMap::new();
        for signal in Dataset::ALL {
            let root = objects.table_root(signal.table());
            let checkpoint = objects.get(&root.clone().join(CHECKPOINT)).await?;
            let durable = LedgerState::decode(checkpoint.as_deref())?;
            let files =
                parquet::discover(&objects, &root, durable.flush_id, &durable.retired).await?;
            tracing::info!(
                table = signal.table(),
                files = files.len(),
                flush = durable.flush_id,
                location = %objects,
                "opened table"
            );
            metrics
                .files
                .with_label_values(&[signal.table()])
                .set(files.len() as i64);
            let table = Table::new(signal, files, durable, Arc::clone(&objects));
            tables.insert(signal, Arc::new(table));
            flush_locks.insert(signal, Mutex::new(()));
        }
        Ok(Self {
            objects,
            config,
            tables,
            flush_locks,
            metrics,
            flush_wanted: tokio::sync::Notify::new(),
            retired: std::sync::Mutex::new(Vec::new()),
            observer: std::sync::OnceLock::new(),
        })
    }

    /// Where the store's files are.
    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    /// Saves a table's checkpoint (one `put`, so readers see the old or the new one).
    async fn save_checkpoint(
        &self,
        signal: Dataset,
        state: &LedgerState,
    ) -> Result<(), StoreError> {
        let key = self
            .objects
            .table_root(signal.table())
            .clone()
            .join(CHECKPOINT);
        self.objects.put(&key, state.encode()?).await
    }

    /// The table of a dataset.
    pub fn table(&self, signal: impl Into<Dataset>) -> Arc<Table> {
        // Every dataset has a table: `open` creates all of them.
        Arc::clone(&self.tables[&signal.into()])
    }

    /// Adds a delivery's batches to their table's hot buffer, all or none; visible to queries at
    /// once.
    pub fn insert(&self, batch: SignalBatch) -> Result<(), StoreError> {
        self.insert_from(batch, Origin::default()).map(|_| ())
    }

    /// Like [`insert`](Self::insert), unless the table already holds the batch from `origin`
    /// (a redelivery): then nothing is stored and the answer is [`Inserted::Repeat`]. Stored
    /// batches are shown to the [`Observer`], if one is set.
    pub fn insert_from(&self, batch: SignalBatch, origin: Origin) -> Result<Inserted, StoreError> {
        let dataset = Dataset::from(batch.signal);
        let (inserted, normalized) = self.insert_into(dataset, &batch.batches, origin)?;
        if let (Inserted::Stored, Some(observer)) = (inserted, self.observer.get()) {
            observer.observe(dataset, &normalized);
        }
        Ok(inserted)
    }

    /// Adds rows the analyzer derived (RED series, anomalies, forecasts) to their table.
    pub fn insert_derived(
        &self,
        dataset: Dataset,
        batches: Vec<RecordBatch>,
    ) -> Result<(), StoreError> {
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(());
        }
        self.insert_into(dataset, &batches, Origin::default())
            .map(|_| ())
    }

    /// Sets who sees every batch stored from collectors (the analysis pipeline); once.
    pub fn set_observer(&self, observer: Arc<dyn Observer>) {
        if self.observer.set(observer).is_err() {
            tracing::warn!("the store already has an observer; keeping the first");
        }
    }

    fn insert_into(
        &self,
        dataset: Dataset,
        batches: &[RecordBatch],
        origin: Origin,
    ) -> Result<(Inserted, Vec<RecordBatch>), StoreError> {
        let expected = dataset.schema();
        if batches
            .iter()
            .any(|b| b.schema().fields() != expected.fields())
        {
            return Err(StoreError::Schema(format!(
                "batch for `{}` does not have the table's schema (version {})",
                dataset.table(),
                meridian_collector::schema::SCHEMA_VERSION
            )));
        }
        let table = self.table(dataset);
        // Held across check and append: an original and its retry may arrive together.
        let mut ledger = table.lock_ledger();
        if ledger.holds(&origin) {
            self.metrics
                .repeats
                .with_label_values(&[dataset.table()])
                .inc();
            return Ok((Inserted::Repeat, Vec::new()));
        }
        let waiting = table.hot_rows();
        if waiting >= self.config.max_hot_rows {
            return Err(StoreError::Behind(waiting));
        }
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        // Re-wrap with the canonical schema so metadata differences never reach the table.
        let normalized = batches
            .iter()
            .map(|b| RecordBatch::try_new(Arc::clone(&expected), b.columns().to_vec()))
            .collect::<Result<Vec<_>, _>>()?;
        let (hot, appended) = table.append(normalized.clone());
        ledger.record(origin, appended);
        drop(ledger);
        let label = [dataset.table()];
        self.metrics
            .rows_ingested
            .with_label_values(&label)
            .inc_by(rows as u64);
        self.metrics
            .hot_rows
            .with_label_values(&label)
            .set(hot as i64);
        if hot >= self.config.flush_max_rows {
            self.flush_wanted.notify_one();
        }
        Ok((Inserted::Stored, normalized))
    }

    /// Notes that a message from `origin` was consumed without rows to store (unreadable or
    /// empty), so its offset counts as done.
    pub fn skip(&self, signal: impl Into<Dataset>, origin: Origin) {
        let table = self.table(signal);
        let mut ledger = table.lock_ledger();
        if !ledger.holds(&origin) {
            let (_, appended) = table.append(Vec::new());
            ledger.record(origin, appended);
        }
    }

    /// Next Kafka offset per `topic:partition` that is durable in a table (safe to commit).
    pub fn durable_offsets(&self, signal: impl Into<Dataset>) -> BTreeMap<String, i64> {
        self.table(signal).lock_ledger().durable().offsets.clone()
    }

    /// Whether the store takes new batches: no table is at `max_hot_rows`.
    pub fn ready(&self) -> Result<(), String> {
        for (signal, table) in &self.tables {
            let hot = table.hot_rows();
            if hot >= self.config.max_hot_rows {
                return Err(format!(
                    "table `{}` has {hot} rows waiting to be flushed",
                    signal.table()
                ));
            }
        }
        Ok(())
    }

    /// Writes a table's hot rows to Parquet and swaps them for the new files.
    pub async fn flush(&self, signal: impl Into<Dataset>) -> Result<(), StoreError> {
        let signal: Dataset = signal.into();
        let _guard = self.flush_locks[&signal].lock().await;
        let table = self.table(signal);
        let (snapshot, durable, nothing_new) = {
            let ledger = table.lock_ledger();
            let snapshot = table.snapshot();
            let flush_id = ledger.durable().flush_id + 1;
            let durable = ledger.durable_after(snapshot.appended, flush_id);
            let nothing_new =
                snapshot.hot.is_empty() && durable.offsets == ledger.durable().offsets;
            (snapshot, durable, nothing_new)
        };
        if snapshot.appended == 0 || nothing_new {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let count = snapshot.hot.len();
        let rows = snapshot.hot_rows;
        let appended = snapshot.appended;
        let encoded = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            parquet::encode_by_hour(&signal.schema(), &snapshot.hot, signal.sort_key())
        })
        .await
        .map_err(StoreError::task("flush"))??;
        let root = self.objects.table_root(signal.table());
        let mut written = Vec::with_capacity(encoded.len());
        for (hour, bytes) in encoded {
            let file = parquet::put_file(&self.objects, &root, hour, bytes, durable.flush_id);
            written.push(file.await?);
        }
        // The checkpoint commits the flush: files of a flush without one are removed at
        // start-up and their rows consumed again.
        self.save_checkpoint(signal, &durable).await?;
        table.lock_ledger().commit(durable, appended);
        let bytes: u64 = written.iter().map(|f| f.bytes).sum();
        let label = [signal.table()];
        self.metrics
            .rows_flushed
            .with_label_values(&label)
            .inc_by(rows as u64);
        self.metrics
            .bytes_flushed
            .with_label_values(&label)
            .inc_by(bytes);
        self.metrics
            .files_written
            .with_label_values(&label)
            .inc_by(written.len() as u64);
        self.metrics
            .flush_seconds
            .with_label_values(&label)
            .observe(started.elapsed().as_secs_f64());
        table.commit_flush(count, written);
        self.metrics
            .files
            .with_label_values(&label)
            .set(table.snapshot().files.len() as i64);
        self.metrics
            .hot_rows
            .with_label_values(&label)
            .set(table.hot_rows() as i64);
        tracing::debug!(table = signal.table(), rows, bytes, "flushed to parquet");
        Ok(())
    }

    /// Flushes every table.
    pub async fn flush_all(&self) -> Result<(), StoreError> {
        for signal in Dataset::ALL {
            self.flush(signal).await?;
        }
        Ok(())
    }

    /// Flushes on the interval or when a table fills up, until `stop`; then flushes once more.
    pub async fn run_flusher(self: Arc<Self>, stop: CancellationToken) {
        let mut interval = tokio::time::interval(self.config.flush_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = interval.tick() => {}
                _ = self.flush_wanted.notified() => {}
            }
            if let Err(e) = self.flush_all().await {
                tracing::error!(error = %e, "flushing to parquet failed; rows stay in memory and will be retried");
            }
        }
        if let Err(e) = self.flush_all().await {
            tracing::error!(error = %e, "final flush failed: rows still in memory are lost");
        }
    }
}
