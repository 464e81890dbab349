//! The collector's durable disk buffer: every accepted batch is written here before the client
//! is answered, and delivered to the sink from here, in order, after a restart too.
//!
//! - [`segments`]: the append-only log of checksummed records it is built on.
//! - [`record`]: what one record holds (a signal's Arrow IPC batch and its delivery identity).
//! - [`spool`]: the writer, which turns queued batches into records with group commit.
//!
//! Identity: each record carries (collector id, signal, sequence). The collector id is created
//! once and kept in the buffer directory, and sequences continue across restarts, so a record
//! re-sent after a crash is recognised by the analyzer and stored once.

pub mod record;
pub mod segments;
pub mod spool;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::queue::AckError;
use crate::signal::Signal;
use crate::telemetry::CollectorMetrics;
use record::BufferedRecord;
use segments::{SegmentLog, SegmentReader};

/// When the buffer forces written records to stable storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// Before answering the client (one fsync covers every request written together). A request
    /// answered OK survives a crash of the process, the OS or the machine.
    #[default]
    Always,
    /// At most `fsync_interval` after writing. Survives a crash of the process; an OS crash or
    /// power loss can lose the last interval.
    Interval,
    /// Left to the OS. Survives a crash of the process only.
    Never,
}

/// Where accepted batches wait for the sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferKind {
    /// Disk for `meridian collector` (a remote sink), memory for standalone (in-process sink).
    #[default]
    Auto,
    /// The bounded in-memory queue only: lost if the process dies.
    Memory,
    /// The durable disk buffer: clients are answered once their rows are on disk.
    Disk,
}

/// Configuration of the buffer (`[collector.buffer]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferConfig {
    /// Memory or disk.
    pub kind: BufferKind,
    /// Directory of the disk buffer (default: `{data_dir}/buffer`).
    pub dir: Option<PathBuf>,
    /// Bytes the buffer may take on disk; when full, receivers answer with retryable backpressure.
    pub max_bytes: u64,
    /// When written records are fsynced.
    pub fsync: FsyncPolicy,
    /// The longest a record stays unsynced under `fsync = "interval"`.
    #[serde(with = "humantime_serde")]
    pub fsync_interval: Duration,
    /// Size of one segment file; consumed segments are deleted whole.
    pub segment_bytes: u64,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            kind: BufferKind::Auto,
            dir: None,
            max_bytes: 1 << 30,
            fsync: FsyncPolicy::Always,
            fsync_interval: Duration::from_secs(1),
            segment_bytes: 32 << 20,
        }
    }
}

impl BufferConfig {
    /// Opens the disk buffer in `dir`, or in `{data_dir}/buffer` when `dir` is not set,
    /// repairing damage and recovering the collector's identity and sequences.
    pub fn build(
        &self,
        data_dir: &Path,
        metrics: CollectorMetrics,
    ) -> Result<Arc<DiskBuffer>, BufferError> {
        let dir = self.dir.clone().unwrap_or_else(|| data_dir.join("buffer"));
        DiskBuffer::open(&dir, self.clone(), metrics)
    }
}

/// Errors of the disk buffer.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// Reading or writing the buffer's files failed.
    #[error("disk buffer {path}: {source}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The buffer's state file is not readable.
    #[error("disk buffer state {path}: {message}")]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> BufferError + '_ {
    move |source| BufferError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What the buffer remembers besides its records: who it is and how far delivery got.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    collector_id: String,
    /// Number of the first record not yet delivered.
    delivered: u64,
    /// Highest sequence assigned per signal (`traces`, `metrics`, `logs`).
    sequences: std::collections::BTreeMap<String, u64>,
}

const STATE_FILE: &str = "state.json";
const LOG_DIR: &str = "records";

/// The disk buffer, shared by its writer ([`spool`]) and the drain that delivers from it.
pub struct DiskBuffer {
    dir: PathBuf,
    config: BufferConfig,
    log: Mutex<SegmentLog>,
    state: Mutex<State>,
    written: watch::Sender<u64>,
    metrics: CollectorMetrics,
    /// Set when an append was refused for want of room, cleared when delivery frees some:
    /// while set, receivers refuse before reading a request (see [`DiskBuffer::check_room`]).
    full: AtomicBool,
}

impl DiskBuffer {
    /// Opens the buffer in `dir`, repairing damage and recovering identity and sequences.
    fn open(
        dir: &Path,
        config: BufferConfig,
        metrics: CollectorMetrics,
    ) -> Result<Arc<Self>, BufferError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let log_dir = dir.join(LOG_DIR);
        let segment_bytes = config.segment_bytes.min(config.max_bytes / 8).max(4096);
        let (log, recovery) =
            SegmentLog::open(&log_dir, segment_bytes).map_err(io_error(&log_dir))?;
        let state_path = dir.join(STATE_FILE);
        let mut state = match std::fs::read(&state_path) {
            Ok(bytes) => {
                serde_json::from_slice::<State>(&bytes).map_err(|e| BufferError::State {
                    path: state_path.clone(),
                    message: e.to_string(),
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State {
                collector_id: uuid::Uuid::new_v4().simple().to_string(),
                ..State::default()
            },
            Err(e) => return Err(io_error(&state_path)(e)),
        };
        // Sequences continue after the highest one on disk, delivered or not.
        let mut reader = log.reader(log.first_index().max(state.delivered.min(log.next_index())));
        reader_scan(&mut reader, log.next_index(), |record| {
            let entry = state
                .sequences
                .entry(record.signal.as_str().to_owned())
                .or_default();
            *entry = (*entry).max(record.sequence);
        })
        .map_err(io_error(&log_dir))?;
        state.delivered = state.delivered.clamp(log.first_index(), log.next_index());
        metrics.buffer_damaged_bytes.inc_by(recovery.damaged_bytes);
        tracing::info!(
            dir = %dir.display(),
            collector_id = %state.collector_id,
            pending = log.next_index() - state.delivered,
            damaged_bytes = recovery.damaged_bytes,
            "opened the disk buffer"
        );
        let (written, _) = watch::channel(log.next_index());
        let buffer = Arc::new(Self {
            dir: dir.to_path_buf(),
            config,
            log: Mutex::new(log),
            state: Mutex::new(state),
            written,
            metrics,
            full: AtomicBool::new(false),
        });
        buffer.save_state()?;
        buffer.update_gauges();
        Ok(buffer)
    }

    /// The collector's persistent id (the `collector` of every delivered batch).
    pub fn collector_id(&self) -> String {
        self.lock_state().collector_id.clone()
    }

    fn lock_log(&self) -> std::sync::MutexGuard<'_, SegmentLog> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of the first record not yet delivered.
    pub fn delivered(&self) -> u64 {
        self.lock_state().delivered
    }

    /// Watches the number of records written (readers wait on it).
    pub fn watch_written(&self) -> watch::Receiver<u64> {
        self.written.subscribe()
    }

    /// A reader of undelivered records.
    pub fn reader(&self) -> SegmentReader {
        let from = self.delivered();
        self.lock_log().reader(from)
    }

    /// Number of records written so far.
    pub fn written(&self) -> u64 {
        *self.written.borrow()
    }

    /// Records that `index` and everything before it were delivered; frees whole segments.
    pub fn mark_delivered(&self, next: u64, signal: Signal, sequence: u64) {
        let mut state = self.lock_state();
        state.delivered = state.delivered.max(next);
        let entry = state
            .sequences
            .entry(signal.as_str().to_owned())
            .or_default();
        *entry = (*entry).max(sequence);
    }

    /// Persists the delivery position, then deletes segments delivered in full.
    pub fn checkpoint(&self) -> Result<(), BufferError> {
        self.save_state()?;
        let delivered = self.delivered();
        let log_dir = self.dir.join(LOG_DIR);
        let freed = {
            let mut log = self.lock_log();
            let before = log.total_bytes();
            log.remove_before(delivered).map_err(io_error(&log_dir))?;
            log.total_bytes() < before
        };
        if freed {
            self.full.store(false, Ordering::Relaxed);
        }
        self.update_gauges();
        Ok(())
    }

    /// Refuses while the last append found the buffer full and no delivery has freed room
    /// since: under overload a receiver then refuses before reading and decoding a request
    /// that could not be buffered anyway.
    pub fn check_room(&self) -> Result<(), AckError> {
        if self.full.load(Ordering::Relaxed) {
            Err(AckError::Full(self.config.max_bytes))
        } else {
            Ok(())
        }
    }

    /// Records that an append was refused for want of room.
    fn mark_full(&self) {
        self.full.store(true, Ordering::Relaxed);
    }

    fn save_state(&self) -> Result<(), BufferError> {
        let state = self.lock_state().clone();
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(&state).map_err(|e| BufferError::State {
            path: path.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&tmp, bytes).map_err(io_error(&tmp))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io_error(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_error(&path))
    }

    /// Sets the depth gauges (records and bytes waiting).
    pub fn update_gauges(&self) {
        let (written, bytes) = {
            let log = self.lock_log();
            (log.next_index(), log.total_bytes())
        };
        let pending = written.saturating_sub(self.delivered());
        self.metrics.buffer_records.set(pending as i64);
        self.metrics.buffer_bytes.set(bytes as i64);
        if pending == 0 {
            self.metrics.buffer_oldest_age_seconds.set(0.0);
        }
    }

    /// Reads the next record for delivery, off the async threads.
    pub async fn read_next(
        reader: SegmentReader,
        limit: u64,
    ) -> (
        SegmentReader,
        std::io::Result<Option<(u64, BufferedRecord)>>,
    ) {
        let joined = tokio::task::spawn_blocking(move || {
            let mut reader = reader;
            let result = loop {
                match reader.next(limit) {
                    Ok(Some((index, bytes))) => match BufferedRecord::decode(bytes) {
                        Some(record) => break Ok(Some((index, record))),
                        None => {
                            tracing::error!(index, "skipping a buffer record of unknown format");
                            continue;
                        }
                    },
                    Ok(None) => break Ok(None),
                    Err(e) => break Err(e),
                }
            };
            (reader, result)
        })
        .await;
        match joined {
            Ok(done) => done,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// Calls `each` on every decodable record below `limit`.
fn reader_scan(
    reader: &mut SegmentReader,
    limit: u64,
    mut each: impl FnMut(&BufferedRecord),
) -> std::io::Result<()> {
    while let Some((_, bytes)) = reader.next(limit)? {
        if let Some(record) = BufferedRecord::decode(bytes) {
            each(&record);
        }
    }
    Ok(())
}
