//! The columnar wire encoding's per-column transforms: a batch in the storage schema becomes a
//! *wire batch* whose columns compress well, and back, losslessly.
//!
//! | storage column | wire column(s) |
//! |---|---|
//! | the first timestamp (`time`) | differences from the previous row, base in the metadata, narrowed |
//! | other timestamps | difference from `time` on the same row, narrowed |
//! | other integers, and doubles that are all whole numbers | the narrowest integer type that holds every value |
//! | lowercase hex strings (ids) | their bytes, fixed-size binary when all are one length |
//! | other strings | dictionary-encoded when at most half the rows are distinct; else, when every row has the same number of space-separated tokens (access logs), one column per token, each transformed as a string column |
//! | `Map<Utf8, Utf8>` (attributes) | one string column per key (transformed as above) and a dictionary-encoded column of each row's key order |
//! | lists of numbers (histogram buckets and bounds) | fixed-size lists when all have one length, integers narrowed |
//! | anything else | as it is |
//!
//! Which transform a wire column carries is in its field metadata, so the decoder needs only
//! the storage schema. A transform that would not be lossless for a column (a map with a null
//! value or a key twice in one row, ids in upper case) leaves that column as it is.

mod maps;
mod numbers;
mod strings;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Schema, SchemaRef};
use arrow::error::ArrowError;

use maps::{pivot, unpivot};
use numbers::{
    deltas, differences, list_to_wire, narrow_int, undo_deltas, undo_differences, unfix,
    whole_numbers,
};
use strings::{hex_strings, strings_to_wire, tokenize, untokenize};

/// Metadata key: the storage column a wire column belongs to.
pub const OF: &str = "m.of";
/// Metadata key: the transform (`delta`, `diff`, `pivot`, `layout`; absent: type change only).
pub const TRANSFORM: &str = "m.t";
/// Metadata key: a `delta` column's value before its first row.
pub const BASE: &str = "m.base";
/// Metadata key: a `pivot` column's map key.
pub const KEY: &str = "m.k";

fn invalid(message: String) -> ArrowError {
    ArrowError::InvalidArgumentError(format!("columnar wire batch: {message}"))
}

fn wire_field(of: &str, name: String, data_type: DataType, meta: &[(&str, String)]) -> Field {
    let mut metadata: HashMap<String, String> = meta
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    metadata.insert(OF.to_owned(), of.to_owned());
    Field::new(name, data_type, true).with_metadata(metadata)
}

/// The first timestamp column: the one the others are told relative to.
fn first_timestamp(schema: &Schema) -> Option<usize> {
    schema
        .fields()
        .iter()
        .position(|f| matches!(f.data_type(), DataType::Timestamp(..)))
}

/// The wire columns of a storage batch, each with a field saying how it was made.
pub fn to_wire(batch: &RecordBatch) -> Result<Vec<(Field, ArrayRef)>, ArrowError> {
    let schema = batch.schema();
    // Other timestamps are told relative to the first, which must then have a value on every row.
    let time = first_timestamp(&schema).filter(|&t| batch.column(t).null_count() == 0);
    let mut out = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        let column = batch.column(i);
        let name = field.name();
        let mut push = |wire_name: String, c: ArrayRef, meta: &[(&str, String)]| {
            out.push((wire_field(name, wire_name, c.data_type().clone(), meta), c));
        };
        match field.data_type() {
            DataType::Timestamp(..) if Some(i) == time => {
                let (base, deltas) = deltas(column)?;
                let meta = [(TRANSFORM, "delta".to_owned()), (BASE, base.to_string())];
                push(name.clone(), narrow_int(&deltas)?, &meta);
            }
            DataType::Timestamp(..) if time.is_some() => {
                let diff = differences(column, batch.column(time.unwrap_or(i)))?;
                push(
                    name.clone(),
                    narrow_int(&diff)?,
                    &[(TRANSFORM, "diff".to_owned())],
                );
            }
            DataType::Int32
            | DataType::Int64
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Timestamp(..) => push(name.clone(), narrow_int(column)?, &[]),
            DataType::Float64 if whole_numbers(column.as_primitive::<Float64Type>()) => {
                push(
                    name.clone(),
                    narrow_int(&cast(column, &DataType::Int64)?)?,
                    &[],
                );
            }
            DataType::Utf8 => {
                let strings = column.as_string::<i32>();
                let wire = strings_to_wire(strings)?;
                let tokens = match wire.data_type() {
                    DataType::Utf8 => tokenize(strings)?,
                    _ => None,
                };
                match tokens {
                    Some(tokens) => {
                        for (k, (quoted, token)) in tokens.into_iter().enumerate() {
                            let meta = [
                                (TRANSFORM, "tok".to_owned()),
                                (KEY, if quoted { "q" } else { "" }.to_owned()),
                            ];
                            push(format!("{name}#{k}"), token, &meta);
                        }
                    }
                    None => push(name.clone(), wire, &[]),
                }
            }
            DataType::Map(..) => match pivot(column.as_map())? {
                Some((layout, keys)) => {
                    push(
                        format!("{name}#"),
                        layout,
                        &[(TRANSFORM, "layout".to_owned())],
                    );
                    for (key, values) in keys {
                        let meta = [(TRANSFORM, "pivot".to_owned()), (KEY, key.clone())];
                        push(format!("{name}#{key}"), strings_to_wire(&values)?, &meta);
                    }
                }
                None => push(name.clone(), Arc::clone(column), &[]),
            },
            DataType::List(item)
                if matches!(
                    item.data_type(),
                    DataType::UInt64 | DataType::Int64 | DataType::Float64
                ) =>
            {
                push(
                    name.clone(),
                    list_to_wire(column.as_list::<i32>(), item)?,
                    &[],
                );
            }
            _ => push(name.clone(), Arc::clone(column), &[]),
        }
    }
    Ok(out)
}

/// Rebuilds the storage batch of `schema` from its wire columns, `rows` rows each.
pub fn from_wire(
    fields: &[FieldRef],
    wire_columns: &[ArrayRef],
    rows: usize,
    schema: &SchemaRef,
) -> Result<RecordBatch, ArrowError> {
    let mut by_column: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, f) in fields.iter().enumerate() {
        let of = f
            .metadata()
            .get(OF)
            .ok_or_else(|| invalid(format!("column {} names no storage column", f.name())))?;
        by_column.entry(of.as_str()).or_default().push(i);
    }
    let time = first_timestamp(schema);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let parts = by_column
            .get(field.name().as_str())
            .ok_or_else(|| invalid(format!("no column for {}", field.name())))?;
        let first = parts[0];
        let meta = fields[first].metadata();
        let column = &wire_columns[first];
        let rebuilt = match meta.get(TRANSFORM).map(String::as_str) {
            Some("delta") => {
                let base = meta
                    .get(BASE)
                    .and_then(|b| b.parse::<i64>().ok())
                    .ok_or_else(|| invalid(format!("{} has no base", field.name())))?;
                cast(&undo_deltas(base, column)?, field.data_type())?
            }
            Some("diff") => {
                let reference = columns
                    .get(time.unwrap_or(usize::MAX))
                    .filter(|_| time.is_some_and(|t| t < i))
                    .ok_or_else(|| {
                        invalid(format!("{} has no time to differ from", field.name()))
                    })?;
                cast(&undo_differences(column, reference)?, field.data_type())?
            }
            Some("layout") => unpivot(fields, wire_columns, rows, parts, field)?,
            Some("tok") => untokenize(fields, wire_columns, rows, parts)?,
            Some(other) => return Err(invalid(format!("unknown transform {other}"))),
            None => match (column.data_type(), field.data_type()) {
                (DataType::FixedSizeBinary(_) | DataType::Binary, DataType::Utf8) => {
                    hex_strings(column)?
                }
                (DataType::FixedSizeList(..), DataType::List(item)) => {
                    unfix(column.as_fixed_size_list(), item)?
                }
                _ => cast(column, field.data_type())?,
            },
        };
        if rebuilt.len() != rows || rebuilt.data_type() != field.data_type() {
            return Err(invalid(format!("{} did not rebuild", field.name())));
        }
        if !field.is_nullable() && rebuilt.null_count() > 0 {
            return Err(invalid(format!("{} has nulls", field.name())));
        }
        columns.push(rebuilt);
    }
    RecordBatch::try_new(Arc::clone(schema), columns)
}
