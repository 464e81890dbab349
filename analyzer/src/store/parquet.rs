//! Writing batches to Parquet files partitioned by table and hour, each in one step, merging
//! them, and finding them again at start-up.

use std::collections::BTreeMap;
use std::sync::Arc;

use object_store::path::Path;

use arrow::array::{Array, BooleanArray, RecordBatch, TimestampNanosecondArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Schema, SchemaRef};
use chrono::{DateTime, NaiveDate, Utc};
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::{Compression, Encoding, Type as PhysicalType, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::objects::Objects;
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

/// Random identifiers: min/max statistics never prune by them.
const RANDOM_ID_COLUMNS: &[&str] = &["trace_id", "span_id", "parent_span_id"];

/// Timestamp columns, written as bit-packed differences.
const TIME_COLUMNS: &[&str] = &["time", "end_time", "start_time", "observed_time"];

/// Nanoseconds in an hour: the partition width.
pub const HOUR_NS: i64 = 3_600_000_000_000;

/// One Parquet file of a table, covering one hour partition.
#[derive(Clone, Debug)]
pub struct StoredFile {
    /// The object's key in the store's [`Objects`].
    pub key: Path,
    /// Start of the hour the file's rows fall in (ns since the epoch).
    pub hour_start: i64,
    /// Size in bytes.
    pub bytes: u64,
}

impl StoredFile {
    /// The file's name (last part of its key), as checkpoints list retired files.
    pub fn name(&self) -> &str {
        self.key.filename().unwrap_or_default()
    }
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

/// The prefix of one hour partition: `{table}/date=YYYY-MM-DD/hour=HH`.
fn partition(table: &Path, hour_start: i64) -> Path {
    let t = DateTime::<Utc>::from_timestamp_nanos(hour_start);
    table
        .clone()
        .join(format!("date={}", t.format("%Y-%m-%d")))
        .join(format!("hour={}", t.format("%H")))
}

/// How every Parquet file of the store is written: zstd, 64 Ki-row row groups (with min/max
/// statistics, which prune by `time`), no dictionary for per-row unique columns, and no
/// statistics where no query can prune by them (see [`no_statistics`]); `sort_key`: the
/// table's ([`super::dataset::Dataset::sort_key`]).
fn writer_properties(schema: &Schema, sort_key: &[&str]) -> WriterProperties {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_max_row_group_row_count(Some(64 * 1024));
    // Ids are unique per row: a dictionary only costs CPU (interning) and never shrinks them.
    for column in UNIQUE_COLUMNS {
        props = props.set_column_dictionary_enabled(ColumnPath::from(*column), false);
    }
    for column in no_statistics(schema, sort_key) {
        props = props.set_column_statistics_enabled(column, EnabledStatistics::None);
    }
    // Within a sorted run ([`super::order`]) timestamps rise by little: differences bit-packed
    // take a fraction of the eight bytes plain values take before zstd.
    for column in TIME_COLUMNS {
        props = props.set_column_encoding(ColumnPath::from(*column), Encoding::DELTA_BINARY_PACKED);
    }
    // "The spans of this trace" is a needle in a haystack: a bloom filter per row group lets a
    // lookup by trace id skip almost every row group (about 1% false positives).
    props = props
        .set_column_bloom_filter_enabled(ColumnPath::from("trace_id"), true)
        .set_column_bloom_filter_fpp(ColumnPath::from("trace_id"), 0.01)
        .set_column_bloom_filter_max_ndv(ColumnPath::from("trace_id"), 64 * 1024);
    props.build()
}

/// The string columns written without min/max statistics. A byte-array minimum and maximum
/// costs two comparisons per value (with every top-level string column keeping them, ~10% of
/// the ingest profile, `memcmp` under the Parquet encoder), so they are kept only where a
/// page's range is narrow enough to prune: a table sorted at flush keeps them for its sort
/// key's strings alone (the columns queries and dashboards filter on; the others' pages hold
/// nearly their whole range), a table written in arrival order (the small derived ones) for
/// every top-level string. Never for strings nested in a map, list or struct (attributes,
/// events, links), nor for the random ids (the trace id's bloom filter serves lookups).
fn no_statistics(schema: &Schema, sort_key: &[&str]) -> Vec<ColumnPath> {
    let Ok(descriptor) = ArrowSchemaConverter::new().convert(schema) else {
        return Vec::new();
    };
    descriptor
        .columns()
        .iter()
        .filter(|c| c.physical_type() == PhysicalType::BYTE_ARRAY)
        .map(|c| c.path().clone())
        .filter(|path| {
            let name = path.string();
            path.parts().len() > 1
                || RANDOM_ID_COLUMNS.contains(&name.as_str())
                || (!sort_key.is_empty() && !sort_key.contains(&name.as_str()))
        })
        .collect()
}

/// A file's final name for flush (or compaction) `id`.
fn file_name(id: u64) -> String {
    format!(
        "{FLUSH_PREFIX}{id:016}-{}.parquet",
        uuid::Uuid::new_v4().simple()
    )
}

/// Encodes `batches` (all of `schema`) as one zstd Parquet file per hour partition, in hour
/// order, each hour's rows ordered by `sort_key` ([`super::order`]; CPU work: run it off the
/// async runtime). Besides the hot rows a flush holds only the sort key's columns, the
/// permutation and one row group being written: never a second copy of the hot rows.
pub fn encode_by_hour(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    sort_key: &[&str],
) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
    let mut hours: BTreeMap<i64, Vec<RecordBatch>> = BTreeMap::new();
    for batch in batches.iter().filter(|b| b.num_rows() > 0) {
        for (hour, rows) in split_by_hour(batch)? {
            hours.entry(hour).or_default().push(rows);
        }
    }
    hours
        .into_iter()
        .map(|(hour, rows)| {
            let mut writer = ArrowWriter::try_new(
                Vec::new(),
                Arc::clone(schema),
                Some(writer_properties(schema, sort_key)),
            )?;
            super::order::write_sorted(schema, &rows, sort_key, |chunk| Ok(writer.write(chunk)?))?;
            Ok((hour, writer.into_inner()?))
        })
        .collect()
}

/// Stores one hour's encoded rows as a file of flush `flush_id`, in one step.
pub async fn put_file(
    objects: &Objects,
    table: &Path,
    hour_start: i64,
    encoded: Vec<u8>,
    flush_id: u64,
) -> Result<StoredFile, StoreError> {
    let key = partition(table, hour_start).join(file_name(flush_id));
    let bytes = encoded.len() as u64;
    objects.put(&key, encoded).await?;
    Ok(StoredFile {
        key,
        hour_start,
        bytes,
    })
}

/// A finished compaction output under a temp name, to [`publish`] once committed.
#[derive(Clone, Debug)]
pub struct Staged {
    /// The temp key.
    pub key: Path,
    /// The hour partition.
    pub hour_start: i64,
    /// Size in bytes.
    pub bytes: u64,
}

/// Renames a staged file to its final name for flush (or compaction) `id`.
pub async fn publish(
    objects: &Objects,
    staged: &Staged,
    id: u64,
) -> Result<StoredFile, StoreError> {
    let key = partition_of(&staged.key).join(file_name(id));
    objects.rename(&staged.key, &key).await?;
    Ok(StoredFile {
        key,
        hour_start: staged.hour_start,
        bytes: staged.bytes,
    })
}

/// The partition prefix a key lies in (the key without its file name).
fn partition_of(key: &Path) -> Path {
    let parts: Vec<_> = key.parts().collect();
    Path::from_iter(parts[..parts.len().saturating_sub(1)].iter().cloned())
}

/// Merges `inputs` (files of one hour partition of a table sorted by `sort_key`) into new
/// staged files of about `target_bytes` each, batch by batch: memory stays at one input file
/// plus one output.
/// Blocking: run it on a blocking thread; `runtime` drives the object store's I/O.
pub fn merge(
    objects: &Objects,
    runtime: &tokio::runtime::Handle,
    inputs: &[StoredFile],
    sort_key: &[&str],
    target_bytes: u64,
) -> Result<Vec<Staged>, StoreError> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let Some(first) = inputs.first() else {
        return Ok(Vec::new());
    };
    let dir = partition_of(&first.key);
    let hour_start = first.hour_start;
    let stage = |writer: ArrowWriter<Vec<u8>>| -> Result<Staged, StoreError> {
        let encoded = writer.into_inner()?;
        let key = dir.clone().join(format!(
            ".compact-{}.parquet.tmp",
            uuid::Uuid::new_v4().simple()
        ));
        let bytes = encoded.len() as u64;
        runtime.block_on(objects.put(&key, encoded))?;
        Ok(Staged {
            key,
            hour_start,
            bytes,
        })
    };
    let mut outputs = Vec::new();
    let mut writer: Option<ArrowWriter<Vec<u8>>> = None;
    for input in inputs {
        let Some(bytes) = runtime.block_on(objects.get(&input.key))? else {
            return Err(StoreError::Vanished(input.key.to_string()));
        };
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?
            .with_batch_size(16 * 1024)
            .build()?;
        for batch in reader {
            let batch = batch?;
            let w = match writer.as_mut() {
                Some(w) => w,
                None => writer.insert(ArrowWriter::try_new(
                    Vec::new(),
                    batch.schema(),
                    Some(writer_properties(&batch.schema(), sort_key)),
                )?),
            };
            w.write(&batch)?;
            if w.bytes_written() as u64 + w.in_progress_size() as u64 >= target_bytes {
                if let Some(w) = writer.take() {
                    outputs.push(stage(w)?);
                }
            }
        }
    }
    if let Some(w) = writer.take() {
        outputs.push(stage(w)?);
    }
    Ok(outputs)
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
pub async fn discover(
    objects: &Objects,
    table: &Path,
    committed: u64,
    retired: &std::collections::BTreeSet<String>,
) -> Result<Vec<StoredFile>, StoreError> {
    let mut found = BTreeMap::new();
    for object in objects.list(table).await? {
        let Some(rest) = object.location.prefix_match(table) else {
            continue;
        };
        let parts: Vec<String> = rest.map(|p| p.as_ref().to_owned()).collect();
        let [date, hour, name] = parts.as_slice() else {
            continue;
        };
        let Some(start) = hour_start(date, hour) else {
            continue;
        };
        let key = object.location;
        if name.ends_with(".tmp") {
            tracing::warn!(%key, "removing an incomplete file left by a crash");
            objects.delete(&key).await?;
        } else if retired.contains(name) {
            // Replaced by compaction or expired; its rows are elsewhere or gone by design.
            objects.delete(&key).await?;
        } else if flush_of(name).is_some_and(|f| f > committed) {
            tracing::warn!(%key, "removing a file of a flush that did not commit");
            objects.delete(&key).await?;
        } else if name.ends_with(".parquet") {
            found.insert(
                key.clone(),
                StoredFile {
                    key,
                    hour_start: start,
                    bytes: object.size,
                },
            );
        }
    }
    Ok(found.into_values().collect())
}

/// The start (ns) of the hour partition named by `date=YYYY-MM-DD` and `hour=HH`.
fn hour_start(date: &str, hour: &str) -> Option<i64> {
    let day = NaiveDate::parse_from_str(date.strip_prefix("date=")?, "%Y-%m-%d").ok()?;
    let h = hour.strip_prefix("hour=")?.parse::<u32>().ok()?;
    day.and_hms_opt(h, 0, 0)?.and_utc().timestamp_nanos_opt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::dataset::Dataset;

    #[test]
    fn partitions_are_by_utc_date_and_hour() {
        let t = 1_700_000_000_000_000_000i64; // 2023-11-14T22:13:20Z
        let key = partition(&Path::from("d/spans"), t.div_euclid(HOUR_NS) * HOUR_NS);
        assert_eq!(key.as_ref(), "d/spans/date=2023-11-14/hour=22");
        assert_eq!(
            hour_start("date=2023-11-14", "hour=22"),
            Some(t.div_euclid(HOUR_NS) * HOUR_NS)
        );
        assert_eq!(partition_of(&key.clone().join("f.parquet")), key);
    }

    /// Scenario: a crash between writing a flush's files and its checkpoint.
    /// Guarantees: at start-up the files of the uncommitted flush are deleted (their rows are
    /// consumed again), committed and older-named files are kept.
    #[tokio::test]
    async fn files_of_an_uncommitted_flush_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let hour = dir.path().join("spans/date=2024-01-01/hour=00");
        std::fs::create_dir_all(&hour).unwrap();
        for name in [
            "f0000000000000001-a.parquet",
            "f0000000000000002-b.parquet",
            "1700000000000-c.parquet",
            ".compact-d.parquet.tmp",
        ] {
            std::fs::write(hour.join(name), b"x").unwrap();
        }
        let objects = Objects::open(None, &Default::default(), dir.path()).unwrap();
        let found = discover(
            &objects,
            &objects.table_root("spans"),
            1,
            &Default::default(),
        )
        .await
        .unwrap();
        let mut names: Vec<_> = found.iter().map(|f| f.name().to_owned()).collect();
        names.sort();
        assert_eq!(
            names,
            vec!["1700000000000-c.parquet", "f0000000000000001-a.parquet"]
        );
        assert!(!hour.join("f0000000000000002-b.parquet").exists());
        assert!(!hour.join(".compact-d.parquet.tmp").exists());
    }

    /// Guarantees: filter columns keep min/max statistics (so row groups and pages prune by
    /// them); strings nested in maps and the random ids are written without.
    #[test]
    fn statistics_only_where_a_filter_can_prune() {
        let schema = meridian_collector::schema::spans();
        let sort_key = Dataset::Spans.sort_key();
        let skipped: Vec<String> = no_statistics(&schema, sort_key)
            .iter()
            .map(|p| p.string())
            .collect();
        for id in RANDOM_ID_COLUMNS {
            assert!(skipped.contains(&(*id).to_owned()), "{id}: {skipped:?}");
        }
        assert!(
            skipped.iter().any(|p| p.starts_with("attributes.")),
            "the attribute map's keys and values: {skipped:?}"
        );
        for unsorted in ["url_path", "name", "status_message", "peer_service"] {
            assert!(
                skipped.iter().any(|p| p == unsorted),
                "{unsorted}: {skipped:?}"
            );
        }
        for kept in [
            "kind",
            "region",
            "service_name",
            "http_route",
            "time",
            "duration_ns",
        ] {
            assert!(
                !skipped.iter().any(|p| p == kept),
                "{kept} must keep statistics"
            );
        }
        let props = writer_properties(&schema, sort_key);
        let route = ColumnPath::from("http_route");
        assert_ne!(props.statistics_enabled(&route), EnabledStatistics::None);
        let trace = ColumnPath::from("trace_id");
        assert_eq!(props.statistics_enabled(&trace), EnabledStatistics::None);
        // A table written in arrival order keeps them on every top-level string.
        let red = Dataset::Red.schema();
        let skipped = no_statistics(&red, Dataset::Red.sort_key());
        assert!(skipped.iter().all(|p| p.parts().len() > 1), "{skipped:?}");
    }
}
