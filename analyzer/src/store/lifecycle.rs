//! The life of stored files after their flush: compaction merges an hour partition's small
//! files into a few large ones, retention drops partitions older than the table's TTL.
//!
//! Both replace files the same way ([`Store::replace`]): new files are written under temp
//! names, then one checkpoint names the new flush id and lists the old files as retired, then
//! the table swaps the file lists in one step, so a query sees either the old files or the new
//! ones, never both and never neither. Retired files stay in the store for `retired_grace` (queries
//! planned before the swap may still read them) and are deleted after; a crash at any point
//! leaves either the old files (new ones had no checkpoint: deleted at start-up) or the new
//! ones (old ones are listed as retired: deleted at start-up).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use std::sync::Arc;

use super::parquet::{self, Staged, StoredFile, HOUR_NS};
use super::{Dataset, Store};
use crate::error::StoreError;

/// How long each table keeps data (`[analyzer.store.retention]`); `0s` keeps it forever.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Spans (traces).
    #[serde(with = "humantime_serde")]
    pub spans: Duration,
    /// Metric points.
    #[serde(with = "humantime_serde")]
    pub metrics: Duration,
    /// Log records.
    #[serde(with = "humantime_serde")]
    pub logs: Duration,
    /// RED series.
    #[serde(with = "humantime_serde")]
    pub red: Duration,
    /// Anomalies.
    #[serde(with = "humantime_serde")]
    pub anomalies: Duration,
    /// Forecasts (by the time they forecast).
    #[serde(with = "humantime_serde")]
    pub forecasts: Duration,
    /// Probe results.
    #[serde(with = "humantime_serde")]
    pub probes: Duration,
    /// Endpoint health transitions.
    #[serde(with = "humantime_serde")]
    pub health: Duration,
    /// Recommendations.
    #[serde(with = "humantime_serde")]
    pub recommendations: Duration,
    /// Alerts' changes of state.
    #[serde(with = "humantime_serde")]
    pub alerts: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        let days = |d: u64| Duration::from_secs(d * 86_400);
        Self {
            spans: days(7),
            metrics: days(30),
            logs: days(7),
            red: days(90),
            anomalies: days(90),
            forecasts: days(30),
            probes: days(30),
            health: days(90),
            recommendations: days(90),
            alerts: days(90),
        }
    }
}

impl RetentionConfig {
    /// The TTL of a table; `None` keeps its data forever.
    pub fn of(&self, dataset: Dataset) -> Option<Duration> {
        let ttl = match dataset {
            Dataset::Spans => self.spans,
            Dataset::Metrics => self.metrics,
            Dataset::Logs => self.logs,
            Dataset::Red => self.red,
            Dataset::Anomalies => self.anomalies,
            Dataset::Forecasts => self.forecasts,
            Dataset::Probes => self.probes,
            Dataset::Health => self.health,
            Dataset::Recommendations => self.recommendations,
            Dataset::Alerts => self.alerts,
        };
        (!ttl.is_zero()).then_some(ttl)
    }
}

/// When files are merged (`[analyzer.store.compaction]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactionConfig {
    /// Merge an hour partition once it has this many small files.
    pub min_files: usize,
    /// Files at least this large are left alone; merged output is cut at about this size.
    pub target_file_bytes: u64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            min_files: 8,
            target_file_bytes: 128 << 20,
        }
    }
}

/// What one maintenance pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Maintenance {
    /// Files merged away by compaction.
    pub compacted: usize,
    /// Files written by compaction.
    pub written: usize,
    /// Files dropped by retention.
    pub expired: usize,
    /// Retired files deleted from disk.
    pub deleted: usize,
}

/// Retired files waiting out the grace period: (retired at, table, files).
pub(super) type Retired = Vec<(Instant, Dataset, Vec<StoredFile>)>;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

impl Store {
    /// One pass: retention, then compaction, then deleting retired files past their grace.
    pub async fn maintain(&self) -> Result<Maintenance, StoreError> {
        self.maintain_until(&tokio_util::sync::CancellationToken::new())
            .await
    }

    /// [`maintain`](Self::maintain), stopping between tables once `stop` is cancelled, so a
    /// shutdown waits for one table's compaction at most; what is left runs next time.
    async fn maintain_until(
        &self,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Result<Maintenance, StoreError> {
        let mut done = Maintenance::default();
        for signal in Dataset::ALL {
            if stop.is_cancelled() {
                return Ok(done);
            }
            done.expired += self.expire(signal, now_ns()).await?;
            let (merged, written) = self.compact(signal).await?;
            done.compacted += merged;
            done.written += written;
        }
        done.deleted = self.delete_retired(self.config.retired_grace).await;
        Ok(done)
    }

    /// Runs [`maintain`](Self::maintain) every `maintenance_interval` until `stop`.
    pub async fn run_maintenance(
        self: std::sync::Arc<Self>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut interval = tokio::time::interval(self.config.maintenance_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = interval.tick() => {}
            }
            match self.maintain_until(&stop).await {
                Ok(done) if done != Maintenance::default() => {
                    tracing::info!(?done, "store maintenance")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "store maintenance failed; retried next round")
                }
            }
        }
    }

    /// Drops a table's hour partitions that ended more than its TTL before `now` (ns).
    pub async fn expire(&self, signal: Dataset, now: i64) -> Result<usize, StoreError> {
        let Some(ttl) = self.config.retention.of(signal) else {
            return Ok(0);
        };
        let cutoff = now - ttl.as_nanos() as i64;
        let expired: Vec<StoredFile> = self
            .table(signal)
            .snapshot()
            .files
            .into_iter()
            .filter(|f| f.hour_start + HOUR_NS <= cutoff)
            .collect();
        if expired.is_empty() {
            return Ok(0);
        }
        let n = expired.len();
        self.replace(signal, expired, Vec::new(), "expired").await?;
        Ok(n)
    }

    /// Merges each hour partition holding `min_files` or more small files; returns (files
    /// merged, files written).
    pub async fn compact(&self, signal: Dataset) -> Result<(usize, usize), StoreError> {
        let config = &self.config.compaction;
        let mut by_hour: BTreeMap<i64, Vec<StoredFile>> = BTreeMap::new();
        for file in self.table(signal).snapshot().files {
            if file.bytes < config.target_file_bytes {
                by_hour.entry(file.hour_start).or_default().push(file);
            }
        }
        let (mut merged, mut written) = (0, 0);
        for (hour, files) in by_hour {
            if files.len() < config.min_files.max(2) {
                continue;
            }
            let target = config.target_file_bytes;
            let inputs = files.clone();
            let objects = Arc::clone(&self.objects);
            let runtime = tokio::runtime::Handle::current();
            let staged = tokio::task::spawn_blocking(move || {
                parquet::merge(&objects, &runtime, &inputs, signal.sort_key(), target)
            })
            .await
            .map_err(StoreError::task("compaction"))??;
            tracing::debug!(
                table = signal.table(),
                hour,
                files = files.len(),
                "compacting"
            );
            merged += files.len();
            written += staged.len();
            self.replace(signal, files, staged, "compacted").await?;
        }
        Ok((merged, written))
    }

    /// Takes `old` out of a table and puts the staged files `new` in, as one committed step
    /// (see the module docs).
    async fn replace(
        &self,
        signal: Dataset,
        old: Vec<StoredFile>,
        new: Vec<Staged>,
        reason: &str,
    ) -> Result<(), StoreError> {
        // Serialized with flushes: both advance the flush id and save the checkpoint.
        let _guard = self.flush_locks[&signal].lock().await;
        let table = self.table(signal);
        let mut state = table.lock_ledger().durable().clone();
        if !new.is_empty() {
            state.flush_id += 1;
        }
        let id = state.flush_id;
        state
            .retired
            .extend(old.iter().map(|f| f.name().to_owned()));
        let mut files = Vec::with_capacity(new.len());
        for staged in &new {
            files.push(parquet::publish(&self.objects, staged, id).await?);
        }
        self.save_checkpoint(signal, &state).await?;
        table.lock_ledger().commit(state, 0);
        table.replace_files(&old, files);
        let label = [signal.table(), reason];
        self.metrics
            .files_retired
            .with_label_values(&label)
            .inc_by(old.len() as u64);
        self.metrics
            .files
            .with_label_values(&[signal.table()])
            .set(table.snapshot().files.len() as i64);
        self.retired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((Instant::now(), signal, old));
        Ok(())
    }

    /// Deletes retired files retired longer than `grace` ago; returns how many.
    pub async fn delete_retired(&self, grace: Duration) -> usize {
        let due: Retired = {
            let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
            let (due, keep) = retired
                .drain(..)
                .partition(|(at, _, _)| at.elapsed() >= grace);
            *retired = keep;
            due
        };
        let mut deleted = 0;
        for (_, signal, files) in due {
            for file in &files {
                match self.objects.delete(&file.key).await {
                    Ok(true) => deleted += 1,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(key = %file.key, error = %e, "deleting a retired file failed; it is deleted at the next start")
                    }
                }
            }
            let names = files.iter().map(StoredFile::name);
            self.table(signal).lock_ledger().forget_retired(names);
        }
        deleted
    }
}
