//! Typed access to the columns of stored batches the derive stage reads.

use arrow::array::{Array, AsArray, MapArray, PrimitiveArray, RecordBatch};
use arrow::datatypes::{ArrowPrimitiveType, Float64Type, UInt64Type};

/// Why a batch could not be read.
#[derive(Debug, thiserror::Error)]
#[error("column `{0}` is missing or has another type")]
pub struct MissingColumn(pub &'static str);

/// A string column.
pub fn strings<'a>(
    batch: &'a RecordBatch,
    name: &'static str,
) -> Result<&'a arrow::array::StringArray, MissingColumn> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or(MissingColumn(name))
}

/// A primitive column of Arrow type `T` (`TimestampNanosecondType`, `Int64Type`, …).
pub fn primitive<'a, T: ArrowPrimitiveType>(
    batch: &'a RecordBatch,
    name: &'static str,
) -> Result<&'a PrimitiveArray<T>, MissingColumn> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<T>())
        .ok_or(MissingColumn(name))
}

/// A map column.
pub fn maps<'a>(batch: &'a RecordBatch, name: &'static str) -> Result<&'a MapArray, MissingColumn> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_map_opt())
        .ok_or(MissingColumn(name))
}

/// A list column's values at `row`, as f64 (`List<Float64>`).
pub fn f64_list(batch: &RecordBatch, name: &'static str, row: usize) -> Option<Vec<f64>> {
    let list = batch.column_by_name(name)?.as_list_opt::<i32>()?;
    if list.is_null(row) {
        return None;
    }
    let values = list.value(row);
    Some(values.as_primitive_opt::<Float64Type>()?.values().to_vec())
}

/// A list column's values at `row`, as u64 (`List<UInt64>`).
pub fn u64_list(batch: &RecordBatch, name: &'static str, row: usize) -> Option<Vec<u64>> {
    let list = batch.column_by_name(name)?.as_list_opt::<i32>()?;
    if list.is_null(row) {
        return None;
    }
    let values = list.value(row);
    Some(values.as_primitive_opt::<UInt64Type>()?.values().to_vec())
}

/// The value of `key` in a string map at `row`.
pub fn map_get(map: &MapArray, row: usize, key: &str) -> Option<String> {
    if map.is_null(row) {
        return None;
    }
    let entries = map.value(row);
    let keys = entries.column(0).as_string_opt::<i32>()?;
    let values = entries.column(1).as_string_opt::<i32>()?;
    (0..keys.len())
        .find(|&i| keys.value(i) == key)
        .filter(|&i| values.is_valid(i))
        .map(|i| values.value(i).to_owned())
}

/// All entries of a string map at `row`, sorted by key (a stable identity for a stream).
pub fn map_entries(map: &MapArray, row: usize) -> Vec<(String, String)> {
    if map.is_null(row) {
        return Vec::new();
    }
    let entries = map.value(row);
    let (Some(keys), Some(values)) = (
        entries.column(0).as_string_opt::<i32>(),
        entries.column(1).as_string_opt::<i32>(),
    ) else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = (0..keys.len())
        .map(|i| {
            let v = if values.is_valid(i) {
                values.value(i)
            } else {
                ""
            };
            (keys.value(i).to_owned(), v.to_owned())
        })
        .collect();
    out.sort();
    out
}
