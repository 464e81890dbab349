//! One stored table: an in-memory hot buffer of recent batches plus Parquet files, served to
//! DataFusion as a single table with hour-partition pruning on `time`.

use std::sync::{Arc, Mutex, RwLock};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::MemTable;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::ExecutionPlan;
use meridian_collector::schema::TIME;

use super::dataset::Dataset;
use super::ledger::{Ledger, LedgerState};
use super::objects::Objects;
use super::parquet::{StoredFile, HOUR_NS};
use super::prune::time_range;

/// What a table holds at one instant: queries and flushes each see one consistent snapshot.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Batches not yet in Parquet, oldest first.
    pub hot: Vec<RecordBatch>,
    /// Rows in `hot`.
    pub hot_rows: usize,
    /// Parquet files, oldest first.
    pub files: Vec<StoredFile>,
    /// Appends ever made (a position for the ledger).
    pub appended: u64,
}

/// A table of the store; shared by the writer, the flusher and DataFusion.
#[derive(Debug)]
pub struct Table {
    signal: Dataset,
    state: RwLock<Snapshot>,
    /// What the table holds, for exactly-once ingest; locked around check-and-append.
    pub(super) ledger: Mutex<Ledger>,
    /// Where its files are, to name them to DataFusion.
    objects: Arc<Objects>,
}

impl Table {
    /// A table of `signal` holding the given files and nothing hot, with their ledger.
    pub fn new(
        signal: Dataset,
        files: Vec<StoredFile>,
        durable: LedgerState,
        objects: Arc<Objects>,
    ) -> Self {
        Self {
            objects,
            signal,
            state: RwLock::new(Snapshot {
                files,
                ..Snapshot::default()
            }),
            ledger: Mutex::new(Ledger::new(durable)),
        }
    }

    /// The ledger, locked.
    pub(super) fn lock_ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Which table this is (and so its schema).
    pub fn dataset(&self) -> Dataset {
        self.signal
    }

    /// A consistent copy of what the table holds (batches and file list are cheap to clone).
    pub fn snapshot(&self) -> Snapshot {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Appends batches to the hot buffer in one step; returns the hot row count after them and
    /// the number of appends made so far.
    pub fn append(&self, batches: Vec<RecordBatch>) -> (usize, u64) {
        let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
        s.hot_rows += batches.iter().map(RecordBatch::num_rows).sum::<usize>();
        s.hot.extend(batches);
        s.appended += 1;
        (s.hot_rows, s.appended)
    }

    /// Rows in the hot buffer.
    pub fn hot_rows(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .hot_rows
    }

    /// Replaces the first `flushed` hot batches by the files they were written to, in one step,
    /// so a query sees each row exactly once.
    pub fn commit_flush(&self, flushed: usize, files: Vec<StoredFile>) {
        let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
        let n = flushed.min(s.hot.len());
        let rows: usize = s.hot[..n].iter().map(RecordBatch::num_rows).sum();
        s.hot.drain(..n);
        s.hot_rows -= rows;
        s.files.extend(files);
    }
}

impl Table {
    /// Swaps `old` files for `new` in one step (compaction, retention).
    pub fn replace_files(&self, old: &[StoredFile], new: Vec<StoredFile>) {
        let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
        s.files.retain(|f| !old.iter().any(|o| o.key == f.key));
        s.files.extend(new);
    }
}

#[async_trait]
impl TableProvider for Table {
    fn schema(&self) -> SchemaRef {
        self.signal.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Filters are used to prune partitions and row groups; DataFusion still applies them.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = self.schema();
        let snapshot = self.snapshot();
        let range = time_range(filters, TIME);
        let mut plans: Vec<Arc<dyn ExecutionPlan>> = Vec::new();

        let urls = snapshot
            .files
            .iter()
            .filter(|f| range.overlaps(f.hour_start, f.hour_start + HOUR_NS))
            .map(|f| ListingTableUrl::parse(self.objects.url(&f.key)))
            .collect::<DfResult<Vec<_>>>()?;
        if !urls.is_empty() {
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet");
            let config = ListingTableConfig::new_with_multi_paths(urls)
                .with_listing_options(options)
                .with_schema(Arc::clone(&schema));
            let files = ListingTable::try_new(config)?;
            plans.push(files.scan(state, projection, filters, limit).await?);
        }
        if !snapshot.hot.is_empty() || plans.is_empty() {
            let hot = MemTable::try_new(Arc::clone(&schema), vec![snapshot.hot])?;
            plans.push(hot.scan(state, projection, filters, limit).await?);
        }
        UnionExec::try_new(plans)
    }
}
