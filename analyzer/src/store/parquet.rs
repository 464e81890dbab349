//! Writing batches to Parquet files partitioned by table and hour, atomically (temp file, fsync,
//! rename), and finding them again at start-up.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use arrow::array::{Array, BooleanArray, RecordBatch, TimestampNanosecondArray};
use arrow::compute::filter_record_batch;
use chrono::{DateTime, NaiveDate, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::error::StoreError;
use meridian_collector::schema::TIME;

/// Columns whose values are (nearly) unique per row, written without dictionary encoding.
const UNIQUE_COLUMNS: &[&str] = &[
    "trace_id",
    "span_id",
    "parent_span_id",
    "time",
    "end_time",
    "observed_time",
    "duration_ns",
];

/// Nanoseconds in an hour: the partition width.
pub const HOUR_NS: i64 = 3_600_000_000_000;

/// One Parquet file of a table, covering one hour partition.
#[derive(Clone, Debug)]
pub struct StoredFile {
    /// Absolute path.
    pub path: PathBuf,
    /// Start of the hour the file's rows fall in (ns since the epoch).
    pub hour_start: i64,
    /// Size in bytes.
    pub bytes: u64,
}

/// Splits a batch by the hour of its time column: (hour start, rows of that hour).
pub fn split_by_hour(batch: &RecordBatch) -> Result<Vec<(i64, RecordBatch)>, StoreError> {
    let times = batch
        .column_by_name(TIME)
        .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
        .ok_or_else(|| StoreError::Schema("batch has no nanosecond `time` column".into()))?;
    let hours: Vec<i64> = times
        .values()
        .iter()
        .map(|t| t.div_euclid(HOUR_NS) * HOUR_NS)
        .collect();
    let mut distinct: Vec<i64> = hours.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() <= 1 {
        return Ok(distinct.into_iter().map(|h| (h, batch.clone())).collect());
    }
    distinct
        .into_iter()
        .map(|hour| {
            let mask = BooleanArray::from(hours.iter().map(|h| *h == hour).collect::<Vec<_>>());
            Ok((hour, filter_record_batch(batch, &mask)?))
        })
        .collect()
}

/// The directory of one hour partition: `{table_dir}/date=YYYY-MM-DD/hour=HH`.
fn partition_dir(table_dir: &Path, hour_start: i64) -> PathBuf {
    let t = DateTime::<Utc>::from_timestamp_nanos(hour_start);
    table_dir
        .join(format!("date={}", t.format("%Y-%m-%d")))
        .join(format!("hour={}", t.format("%H")))
}

/// How every Parquet file of the store is written: zstd, 64 Ki-row row groups (with min/max
/// statistics, which prune by `time`), no dictionary for per-row unique columns.
fn writer_properties() -> WriterProperties {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_max_row_group_row_count(Some(64 * 1024));
    // Ids are unique per row: a dictionary only costs CPU (interning) and never shrinks them.
    for column in UNIQUE_COLUMNS {
        props = props.set_column_dictionary_enabled(ColumnPath::from(*column), false);
    }
    // "The spans of this trace" is a needle in a haystack: a bloom filter per row group lets a
    // lookup by trace id skip almost every row group (about 1% false positives).
    props = props
        .set_column_bloom_filter_enabled(ColumnPath::from("trace_id"), true)
        .set_column_bloom_filter_fpp(ColumnPath::from("trace_id"), 0.01)
        .set_column_bloom_filter_max_ndv(ColumnPath::from("trace_id"), 64 * 1024);
    props.build()
}

/// A file's final name for flush (or compaction) `id`.
fn file_name(id: u64) -> String {
    format!(
        "{FLUSH_PREFIX}{id:016}-{}.parquet",
        uuid::Uuid::new_v4().simple()
    )
}

/// Writes one hour's rows to a new zstd Parquet file, atomically.
pub fn write_file(
    table_dir: &Path,
    hour_start: i64,
    batch: &RecordBatch,
    flush_id: u64,
) -> Result<StoredFile, StoreError> {
    let dir = partition_dir(table_dir, hour_start);
    fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
    let tmp = dir.join(format!(
        ".flush-{}.parquet.tmp",
        uuid::Uuid::new_v4().simple()
    ));
    let file = File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(writer_properties()))?;
    writer.write(batch)?;
    let file = writer.into_inner()?;
    file.sync_all().map_err(|e| StoreError::io(&tmp, e))?;
    drop(file);
    publish(&tmp, hour_start, flush_id)
}

/// Renames a finished temp file to its final name for flush `id`, durably.
pub fn publish(tmp: &Path, hour_start: i64, id: u64) -> Result<StoredFile, StoreError> {
    let dir = tmp.parent().unwrap_or(Path::new("."));
    let path = dir.join(file_name(id));
    fs::rename(tmp, &path).map_err(|e| StoreError::io(&path, e))?;
    // Make the rename itself durable.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    let bytes = fs::metadata(&path)
        .map_err(|e| StoreError::io(&path, e))?
        .len();
    Ok(StoredFile {
        path,
        hour_start,
        bytes,
    })
}

/// Merges `inputs` (files of one hour partition) into new temp files of about `target_bytes`
/// each, streaming batch by batch (memory stays at a few row groups). Returns the temp paths,
/// to [`publish`] once the merge is committed.
pub fn merge(inputs: &[StoredFile], target_bytes: u64) -> Result<Vec<PathBuf>, StoreError> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let Some(first) = inputs.first() else {
        return Ok(Vec::new());
    };
    let dir = first
        .path
        .parent()
        .ok_or_else(|| StoreError::Schema(format!("{} has no directory", first.path.display())))?
        .to_path_buf();
    let mut outputs = Vec::new();
    let mut writer: Option<(PathBuf, ArrowWriter<File>)> = None;
    for input in inputs {
        let file = File::open(&input.path).map_err(|e| StoreError::io(&input.path, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)?
            .with_batch_size(16 * 1024)
            .build()?;
        for batch in reader {
            let batch = batch?;
            if writer.is_none() {
                let tmp = dir.join(format!(
                    ".compact-{}.parquet.tmp",
                    uuid::Uuid::new_v4().simple()
                ));
                let out = File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
                let w = ArrowWriter::try_new(out, batch.schema(), Some(writer_properties()))?;
                writer = Some((tmp, w));
            }
            if let Some((_, w)) = writer.as_mut() {
                w.write(&batch)?;
                if w.bytes_written() as u64 + w.in_progress_size() as u64 >= target_bytes {
                    if let Some((tmp, w)) = writer.take() {
                        finish(&tmp, w)?;
                        outputs.push(tmp);
                    }
                }
            }
        }
    }
    if let Some((tmp, w)) = writer.take() {
        finish(&tmp, w)?;
        outputs.push(tmp);
    }
    Ok(outputs)
}

fn finish(tmp: &Path, writer: ArrowWriter<File>) -> Result<(), StoreError> {
    let file = writer.into_inner()?;
    file.sync_all().map_err(|e| StoreError::io(tmp, e))
}

/// Prefix of a file name written by flush `n`: `f{n:016}-{uuid}.parquet`.
const FLUSH_PREFIX: &str = "f";

/// The flush that wrote a file, if its name says.
fn flush_of(name: &str) -> Option<u64> {
    name.strip_prefix(FLUSH_PREFIX)?.get(..16)?.parse().ok()
}

/// Finds the Parquet files of a table, deleting what a crash left behind: temp files, files of
/// flushes after `committed` (their rows are consumed again) and `retired` files (replaced by
/// compaction, or expired).
pub fn discover(
    table_dir: &Path,
    committed: u64,
    retired: &std::collections::BTreeSet<String>,
) -> Result<Vec<StoredFile>, StoreError> {
    let mut found = BTreeMap::new();
    if !table_dir.exists() {
        return Ok(Vec::new());
    }
    for date in read_dir(table_dir)? {
        let Some(day) =
            dir_value(&date, "date=").and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok())
        else {
            continue;
        };
        for hour in read_dir(&date)? {
            let Some(h) = dir_value(&hour, "hour=").and_then(|h| h.parse::<u32>().ok()) else {
                continue;
            };
            let Some(start) = day
                .and_hms_opt(h, 0, 0)
                .and_then(|t| t.and_utc().timestamp_nanos_opt())
            else {
                continue;
            };
            for file in read_dir(&hour)? {
                let name = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_owned();
                if name.ends_with(".tmp") {
                    tracing::warn!(path = %file.display(), "removing an incomplete file left by a crash");
                    let _ = fs::remove_file(&file);
                } else if retired.contains(&name) {
                    // Replaced by compaction or expired; its rows are elsewhere or gone by design.
                    let _ = fs::remove_file(&file);
                } else if flush_of(&name).is_some_and(|f| f > committed) {
                    tracing::warn!(path = %file.display(), "removing a file of a flush that did not commit");
                    let _ = fs::remove_file(&file);
                } else if name.ends_with(".parquet") {
                    let bytes = fs::metadata(&file)
                        .map_err(|e| StoreError::io(&file, e))?
                        .len();
                    found.insert(
                        file.clone(),
                        StoredFile {
                            path: file,
                            hour_start: start,
                            bytes,
                        },
                    );
                }
            }
        }
    }
    Ok(found.into_values().collect())
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
        out.push(entry.map_err(|e| StoreError::io(dir, e))?.path());
    }
    out.sort();
    Ok(out)
}

fn dir_value(path: &Path, prefix: &str) -> Option<String> {
    path.file_name()?
        .to_str()?
        .strip_prefix(prefix)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_dirs_are_by_utc_date_and_hour() {
        let t = 1_700_000_000_000_000_000i64; // 2023-11-14T22:13:20Z
        let dir = partition_dir(Path::new("/d/spans"), t.div_euclid(HOUR_NS) * HOUR_NS);
        assert_eq!(dir, Path::new("/d/spans/date=2023-11-14/hour=22"));
    }

    /// Scenario: a crash between writing a flush's files and its checkpoint.
    /// Guarantees: at start-up the files of the uncommitted flush are deleted (their rows are
    /// consumed again), committed and older-named files are kept.
    #[test]
    fn files_of_an_uncommitted_flush_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let hour = dir.path().join("date=2024-01-01/hour=00");
        fs::create_dir_all(&hour).unwrap();
        for name in [
            "f0000000000000001-a.parquet",
            "f0000000000000002-b.parquet",
            "1700000000000-c.parquet",
        ] {
            fs::write(hour.join(name), b"x").unwrap();
        }
        let found = discover(dir.path(), 1, &Default::default()).unwrap();
        let mut names: Vec<_> = found
            .iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec!["1700000000000-c.parquet", "f0000000000000001-a.parquet"]
        );
        assert!(!hour.join("f0000000000000002-b.parquet").exists());
    }
}
