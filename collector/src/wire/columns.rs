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

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, DictionaryArray, FixedSizeBinaryBuilder, Float64Array,
    Int64Array, ListArray, MapArray, RecordBatch, StringArray, StringBuilder,
    StringDictionaryBuilder, StructArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type, SchemaRef, UInt16Type};
use arrow::error::ArrowError;

/// Metadata key: the storage column a wire column belongs to.
pub const OF: &str = "m.of";
/// Metadata key: the transform (`delta`, `diff`, `pivot`, `layout`; absent: type change only).
pub const TRANSFORM: &str = "m.t";
/// Metadata key: a `delta` column's value before its first row.
pub const BASE: &str = "m.base";
/// Metadata key: a `pivot` column's map key.
pub const KEY: &str = "m.k";

/// Most distinct keys a map column is pivoted with; past it the map goes as it is.
const MAX_PIVOT_KEYS: usize = 1024;

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

/// The wire columns of a storage batch, each with a field saying how it was made.
pub fn to_wire(batch: &RecordBatch) -> Result<Vec<(Field, ArrayRef)>, ArrowError> {
    let schema = batch.schema();
    // Other timestamps are told relative to the first, which must then have a value on every row.
    let time = schema
        .fields()
        .iter()
        .position(|f| matches!(f.data_type(), DataType::Timestamp(..)))
        .filter(|&t| batch.column(t).null_count() == 0);
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        let column = batch.column(i);
        let name = field.name();
        let mut push = |f: Field, c: ArrayRef| {
            fields.push(f);
            columns.push(c);
        };
        match field.data_type() {
            DataType::Timestamp(..) if Some(i) == time => {
                let (base, deltas) = deltas(column)?;
                let narrow = narrow_int(&deltas)?;
                let meta = [(TRANSFORM, "delta".to_owned()), (BASE, base.to_string())];
                push(
                    wire_field(name, name.clone(), narrow.data_type().clone(), &meta),
                    narrow,
                );
            }
            DataType::Timestamp(..) if time.is_some() => {
                let reference = batch.column(time.unwrap_or(i));
                let diff = differences(column, reference)?;
                let narrow = narrow_int(&diff)?;
                let meta = [(TRANSFORM, "diff".to_owned())];
                push(
                    wire_field(name, name.clone(), narrow.data_type().clone(), &meta),
                    narrow,
                );
            }
            DataType::Int32
            | DataType::Int64
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Timestamp(..) => {
                let narrow = narrow_int(column)?;
                push(
                    wire_field(name, name.clone(), narrow.data_type().clone(), &[]),
                    narrow,
                );
            }
            DataType::Float64 if whole_numbers(column.as_primitive::<Float64Type>()) => {
                let narrow = narrow_int(&cast(column, &DataType::Int64)?)?;
                push(
                    wire_field(name, name.clone(), narrow.data_type().clone(), &[]),
                    narrow,
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
                            push(
                                wire_field(
                                    name,
                                    format!("{name}#{k}"),
                                    token.data_type().clone(),
                                    &meta,
                                ),
                                token,
                            );
                        }
                    }
                    None => push(
                        wire_field(name, name.clone(), wire.data_type().clone(), &[]),
                        wire,
                    ),
                }
            }
            DataType::Map(..) => match pivot(column.as_map())? {
                Some((layout, keys)) => {
                    let meta = [(TRANSFORM, "layout".to_owned())];
                    push(
                        wire_field(name, format!("{name}#"), layout.data_type().clone(), &meta),
                        layout,
                    );
                    for (key, values) in keys {
                        let wire = strings_to_wire(&values)?;
                        let meta = [(TRANSFORM, "pivot".to_owned()), (KEY, key.clone())];
                        push(
                            wire_field(
                                name,
                                format!("{name}#{key}"),
                                wire.data_type().clone(),
                                &meta,
                            ),
                            wire,
                        );
                    }
                }
                None => push(
                    wire_field(name, name.clone(), field.data_type().clone(), &[]),
                    Arc::clone(column),
                ),
            },
            DataType::List(item)
                if matches!(
                    item.data_type(),
                    DataType::UInt64 | DataType::Int64 | DataType::Float64
                ) =>
            {
                let wire = list_to_wire(column.as_list::<i32>(), item)?;
                push(
                    wire_field(name, name.clone(), wire.data_type().clone(), &[]),
                    wire,
                );
            }
            other => push(
                wire_field(name, name.clone(), other.clone(), &[]),
                Arc::clone(column),
            ),
        }
    }
    Ok(fields.into_iter().zip(columns).collect())
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
    let time = schema
        .fields()
        .iter()
        .position(|f| matches!(f.data_type(), DataType::Timestamp(..)));
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

/// A list of numbers: fixed-size when every list has one length (histogram buckets), so no
/// offsets travel; integers narrowed.
fn list_to_wire(list: &ListArray, item: &FieldRef) -> Result<ArrayRef, ArrowError> {
    let offsets = list.offsets();
    let lengths = offsets.windows(2).map(|w| w[1] - w[0]);
    let mut width = None;
    let mut fixed = true;
    for (row, len) in lengths.enumerate() {
        if list.is_null(row) {
            fixed &= len == 0;
        } else if *width.get_or_insert(len) != len {
            fixed = false;
        }
    }
    let narrow = |values: &ArrayRef| match values.data_type() {
        DataType::Float64 => Ok(Arc::clone(values)),
        _ => narrow_int(values),
    };
    match width.filter(|&w| fixed && w > 0) {
        Some(width) => {
            // Null lists take `width` null slots.
            let indices: arrow::array::UInt32Array = (0..list.len())
                .flat_map(|row| {
                    let start = offsets[row];
                    let valid = list.is_valid(row);
                    (0..width).map(move |k| valid.then(|| (start + k) as u32))
                })
                .collect();
            let values = narrow(&arrow::compute::take(list.values(), &indices, None)?)?;
            let item = Field::new(item.name(), values.data_type().clone(), true);
            Ok(Arc::new(arrow::array::FixedSizeListArray::try_new(
                Arc::new(item),
                width,
                values,
                list.nulls().cloned(),
            )?))
        }
        None => {
            let values = narrow(list.values())?;
            let item = Field::new(item.name(), values.data_type().clone(), item.is_nullable());
            Ok(Arc::new(ListArray::try_new(
                Arc::new(item),
                offsets.clone(),
                values,
                list.nulls().cloned(),
            )?))
        }
    }
}

/// A fixed-size list back to the storage list of `item`s: null rows become empty lists.
fn unfix(
    fixed: &arrow::array::FixedSizeListArray,
    item: &FieldRef,
) -> Result<ArrayRef, ArrowError> {
    let width = usize::try_from(fixed.value_length()).map_err(|e| invalid(e.to_string()))?;
    let mut offsets = Vec::with_capacity(fixed.len() + 1);
    offsets.push(0i32);
    let mut indices = Vec::with_capacity(fixed.values().len());
    for row in 0..fixed.len() {
        let last = offsets.last().copied().unwrap_or(0);
        if fixed.is_valid(row) {
            let start = row * width;
            indices.extend((start..start + width).map(|i| i as u32));
            let next = i32::try_from(width)
                .ok()
                .and_then(|w| last.checked_add(w))
                .ok_or_else(|| invalid("a list too long".into()))?;
            offsets.push(next);
        } else {
            offsets.push(last);
        }
    }
    let indices = arrow::array::UInt32Array::from(indices);
    let values = cast(
        &arrow::compute::take(fixed.values(), &indices, None)?,
        item.data_type(),
    )?;
    Ok(Arc::new(ListArray::try_new(
        Arc::clone(item),
        OffsetBuffer::new(offsets.into()),
        values,
        fixed.nulls().cloned(),
    )?))
}

fn as_i64(column: &ArrayRef) -> Result<Int64Array, ArrowError> {
    Ok(cast(column, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

/// First value and the differences between neighbours (the first difference is 0).
fn deltas(column: &ArrayRef) -> Result<(i64, ArrayRef), ArrowError> {
    let values = as_i64(column)?;
    let v = values.values();
    let base = v.first().copied().unwrap_or(0);
    let mut previous = base;
    let out: Int64Array = v
        .iter()
        .map(|&x| {
            let d = x.wrapping_sub(previous);
            previous = x;
            d
        })
        .collect();
    Ok((base, Arc::new(out)))
}

fn undo_deltas(base: i64, column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let deltas = as_i64(column)?;
    if deltas.null_count() > 0 {
        return Err(invalid("a delta column has nulls".into()));
    }
    let mut value = base;
    let out: Int64Array = deltas
        .values()
        .iter()
        .map(|&d| {
            value = value.wrapping_add(d);
            value
        })
        .collect();
    Ok(Arc::new(out))
}

/// `op(value, reference)` row by row, nulls kept.
fn row_by_row(
    column: &ArrayRef,
    reference: &ArrayRef,
    op: fn(i64, i64) -> i64,
) -> Result<ArrayRef, ArrowError> {
    let (c, r) = (as_i64(column)?, as_i64(reference)?);
    let out: Int64Array = c
        .iter()
        .zip(r.values().iter())
        .map(|(c, &r)| c.map(|c| op(c, r)))
        .collect();
    Ok(Arc::new(out))
}

/// `column - reference` row by row, nulls kept.
fn differences(column: &ArrayRef, reference: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    row_by_row(column, reference, i64::wrapping_sub)
}

fn undo_differences(column: &ArrayRef, reference: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    row_by_row(column, reference, i64::wrapping_add)
}

/// The column cast to the narrowest integer type holding all its values.
fn narrow_int(column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let (min, max) = match column.data_type() {
        DataType::UInt64 => {
            let values = column.as_primitive::<arrow::datatypes::UInt64Type>();
            match arrow::compute::max(values) {
                Some(max) => (0i128, i128::from(max)),
                None => (0, 0),
            }
        }
        _ => {
            let values = as_i64(column)?;
            match (arrow::compute::min(&values), arrow::compute::max(&values)) {
                (Some(min), Some(max)) => (i128::from(min), i128::from(max)),
                _ => (0, 0),
            }
        }
    };
    let fits = |lo: i128, hi: i128| min >= lo && max <= hi;
    let target = if fits(i128::from(i8::MIN), i128::from(i8::MAX)) {
        DataType::Int8
    } else if fits(0, i128::from(u8::MAX)) {
        DataType::UInt8
    } else if fits(i128::from(i16::MIN), i128::from(i16::MAX)) {
        DataType::Int16
    } else if fits(0, i128::from(u16::MAX)) {
        DataType::UInt16
    } else if fits(i128::from(i32::MIN), i128::from(i32::MAX)) {
        DataType::Int32
    } else if fits(0, i128::from(u32::MAX)) {
        DataType::UInt32
    } else {
        return Ok(Arc::clone(column));
    };
    if &target == column.data_type() {
        return Ok(Arc::clone(column));
    }
    cast(column, &target)
}

/// Whether every value is a whole number a cast to `i64` and back gives back bit for bit
/// (counters exported as doubles); -0.0 is not.
fn whole_numbers(values: &Float64Array) -> bool {
    const EXACT: f64 = (1u64 << 53) as f64;
    values.null_count() < values.len()
        && values
            .iter()
            .flatten()
            .all(|v| v.fract() == 0.0 && v.abs() <= EXACT && !(v == 0.0 && v.is_sign_negative()))
}

/// Whether `s` is an integer as `i64`'s `to_string` writes it (so the string comes back).
fn is_canonical_integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty()
        && digits.len() <= 18
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && s != "-0"
}

fn is_lower_hex(s: &str) -> bool {
    s.len().is_multiple_of(2)
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Ids as bytes, repeated strings as a dictionary, others as they are.
fn strings_to_wire(strings: &StringArray) -> Result<ArrayRef, ArrowError> {
    // Most columns of a gateway batch hold one value (the resource's, the scope's, the method):
    // a comparison per row instead of a hash and a comparison.
    if let Some(only) = single_value(strings) {
        let keys = arrow::array::UInt16Array::from(vec![0u16; strings.len()]);
        let values = Arc::new(StringArray::from(vec![only]));
        return Ok(Arc::new(DictionaryArray::<UInt16Type>::try_new(
            keys, values,
        )?));
    }
    let present = || strings.iter().flatten();
    if strings.null_count() < strings.len() && present().all(is_canonical_integer) {
        let numbers: Int64Array = strings
            .iter()
            .map(|s| s.and_then(|s| s.parse::<i64>().ok()))
            .collect();
        return narrow_int(&(Arc::new(numbers) as ArrayRef));
    }
    let mut lengths = present().map(str::len);
    let first_len = lengths.next();
    if first_len.is_some_and(|n| n > 0) && present().all(is_lower_hex) {
        let mut bytes = [0u8; 64];
        if let Some(n) = first_len.filter(|&n| lengths.all(|m| m == n) && n <= 128) {
            let width = n / 2;
            let mut b = FixedSizeBinaryBuilder::with_capacity(strings.len(), width as i32);
            for s in strings.iter() {
                match s {
                    Some(s) => {
                        hex::decode_to_slice(s, &mut bytes[..width])
                            .map_err(|e| invalid(e.to_string()))?;
                        b.append_value(&bytes[..width])?;
                    }
                    None => b.append_null(),
                }
            }
            return Ok(Arc::new(b.finish()));
        }
        let mut b = BinaryBuilder::with_capacity(strings.len(), strings.value_data().len() / 2);
        for s in strings.iter() {
            match s {
                Some(s) => b.append_value(hex::decode(s).map_err(|e| invalid(e.to_string()))?),
                None => b.append_null(),
            }
        }
        return Ok(Arc::new(b.finish()));
    }
    let mut dictionary = StringDictionaryBuilder::<UInt16Type>::new();
    for s in strings.iter() {
        let appended = match s {
            Some(s) => dictionary.append(s).map(|_| ()),
            None => {
                dictionary.append_null();
                Ok(())
            }
        };
        // Past 65,536 distinct values a dictionary would not pay off anyway.
        if appended.is_err() {
            return Ok(Arc::new(strings.clone()));
        }
    }
    let dictionary = dictionary.finish();
    if dictionary.values().len() * 2 > strings.len().max(1) {
        return Ok(Arc::new(strings.clone()));
    }
    Ok(Arc::new(dictionary))
}

/// Most tokens a text column is split into.
const MAX_TOKENS: usize = 64;

/// Text whose every row has the same number of space-separated tokens (an access log's fixed
/// fields: method, path, status, bytes, durations, ids), as one column per token, each
/// transformed as a string column is (numbers, ids as bytes, dictionaries); a token quoted on
/// every row loses its quotes (`true`). `None` when the rows do not split alike.
fn tokenize(strings: &StringArray) -> Result<Option<Vec<(bool, ArrayRef)>>, ArrowError> {
    let mut columns: Vec<Vec<Option<&str>>> = Vec::new();
    for (row, value) in strings.iter().enumerate() {
        let Some(value) = value else { continue };
        if columns.is_empty() {
            let count = value.split(' ').count();
            if !(2..=MAX_TOKENS).contains(&count) {
                return Ok(None);
            }
            columns = vec![vec![None; strings.len()]; count];
        }
        let mut tokens = value.split(' ');
        for column in columns.iter_mut() {
            match tokens.next() {
                Some(token) => column[row] = Some(token),
                None => return Ok(None),
            }
        }
        if tokens.next().is_some() {
            return Ok(None);
        }
    }
    if columns.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(columns.len());
    for mut column in columns {
        let quoted = column
            .iter()
            .flatten()
            .all(|t| t.len() >= 2 && t.starts_with('"') && t.ends_with('"'));
        if quoted {
            for t in column.iter_mut().flatten() {
                *t = &t[1..t.len() - 1];
            }
        }
        out.push((quoted, strings_to_wire(&StringArray::from(column))?));
    }
    Ok(Some(out))
}

/// Token columns (`parts`) joined back into the text column.
fn untokenize(
    fields: &[FieldRef],
    wire_columns: &[ArrayRef],
    rows: usize,
    parts: &[usize],
) -> Result<ArrayRef, ArrowError> {
    let mut tokens = Vec::with_capacity(parts.len());
    for &p in parts {
        let quoted = fields[p].metadata().get(KEY).is_some_and(|k| k == "q");
        tokens.push((quoted, wire_strings(&wire_columns[p])?));
    }
    let mut out = StringBuilder::new();
    let mut text = String::new();
    for row in 0..rows {
        if tokens[0].1.is_null(row) {
            out.append_null();
            continue;
        }
        text.clear();
        for (k, (quoted, column)) in tokens.iter().enumerate() {
            let column = column.as_string::<i32>();
            if column.is_null(row) {
                return Err(invalid("a token missing from a row".into()));
            }
            if k > 0 {
                text.push(' ');
            }
            if *quoted {
                text.push('"');
            }
            text.push_str(column.value(row));
            if *quoted {
                text.push('"');
            }
        }
        out.append_value(&text);
    }
    Ok(Arc::new(out.finish()))
}

/// A wire column of strings (bytes of hex ids, numbers, a dictionary, text) as text.
fn wire_strings(column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    match column.data_type() {
        DataType::FixedSizeBinary(_) | DataType::Binary => hex_strings(column),
        _ => cast(column, &DataType::Utf8),
    }
}

/// The value of every row, if all hold the same one (and none is null).
fn single_value(strings: &StringArray) -> Option<&str> {
    if strings.is_empty() || strings.null_count() > 0 {
        return None;
    }
    let first = strings.value(0);
    (1..strings.len())
        .all(|i| strings.value(i) == first)
        .then_some(first)
}

/// Bytes back to lowercase hex strings.
fn hex_strings(column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let mut out = StringBuilder::with_capacity(column.len(), column.len() * 32);
    let mut push = |v: Option<&[u8]>| match v {
        Some(v) => out.append_value(hex::encode(v)),
        None => out.append_null(),
    };
    match column.data_type() {
        DataType::FixedSizeBinary(_) => column.as_fixed_size_binary().iter().for_each(&mut push),
        _ => column.as_binary::<i32>().iter().for_each(&mut push),
    }
    Ok(Arc::new(out.finish()))
}

/// Key columns of a string map: each row's key order (`"0,2,1"`, dictionary-encoded) and one
/// column per key. `None` when the map cannot be pivoted losslessly.
#[allow(clippy::type_complexity)]
fn pivot(map: &MapArray) -> Result<Option<(ArrayRef, Vec<(String, StringArray)>)>, ArrowError> {
    if map.null_count() > 0 {
        return Ok(None);
    }
    let (Some(keys), Some(values)) = (
        map.keys().as_string_opt::<i32>(),
        map.values().as_string_opt::<i32>(),
    ) else {
        return Ok(None);
    };
    if values.null_count() > 0 {
        return Ok(None);
    }
    let rows = map.len();
    // Rows of one batch nearly always list the same keys in the same order: each entry's key
    // is looked for first where the previous row had its position, and layouts are compared
    // with the previous row's before they are looked up (no hashing in the common case).
    let mut names: Vec<&str> = Vec::new();
    let mut columns: Vec<Vec<Option<&str>>> = Vec::new();
    let mut layout: Vec<usize> = Vec::new();
    let mut previous: Vec<usize> = Vec::new();
    let mut distinct: Vec<Vec<usize>> = Vec::new();
    let mut seen: HashMap<Vec<usize>, u16> = HashMap::new();
    let mut layout_keys: Vec<u16> = Vec::with_capacity(rows);
    let offsets = map.offsets();
    for row in 0..rows {
        layout.clear();
        let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
        for (position, entry) in (start..end).enumerate() {
            let key = keys.value(entry);
            let guess = previous.get(position).copied().filter(|&k| names[k] == key);
            let k = match guess.or_else(|| names.iter().position(|n| *n == key)) {
                Some(k) => k,
                None => {
                    if names.len() == MAX_PIVOT_KEYS {
                        return Ok(None);
                    }
                    names.push(key);
                    columns.push(vec![None; rows]);
                    names.len() - 1
                }
            };
            if columns[k][row].is_some() {
                return Ok(None);
            }
            columns[k][row] = Some(values.value(entry));
            layout.push(k);
        }
        let same = layout_keys.last().filter(|_| layout == previous).copied();
        let key = match same.or_else(|| seen.get(&layout).copied()) {
            Some(key) => key,
            None => {
                let Ok(key) = u16::try_from(distinct.len()) else {
                    return Ok(None);
                };
                distinct.push(layout.clone());
                seen.insert(layout.clone(), key);
                key
            }
        };
        layout_keys.push(key);
        std::mem::swap(&mut previous, &mut layout);
    }
    let texts: Vec<String> = distinct
        .iter()
        .map(|d| d.iter().map(usize::to_string).collect::<Vec<_>>().join(","))
        .collect();
    let layouts = DictionaryArray::<UInt16Type>::try_new(
        arrow::array::UInt16Array::from(layout_keys),
        Arc::new(StringArray::from(texts)),
    )?;
    let pivoted = names
        .into_iter()
        .zip(columns)
        .map(|(key, values)| (key.to_owned(), StringArray::from(values)))
        .collect();
    Ok(Some((Arc::new(layouts), pivoted)))
}

/// The map column of `field` from its layout column (`parts[0]`) and key columns.
fn unpivot(
    fields: &[FieldRef],
    wire_columns: &[ArrayRef],
    rows: usize,
    parts: &[usize],
    field: &FieldRef,
) -> Result<ArrayRef, ArrowError> {
    let DataType::Map(entries, sorted) = field.data_type() else {
        return Err(invalid(format!("{} is not a map", field.name())));
    };
    let DataType::Struct(entry_fields) = entries.data_type() else {
        return Err(invalid(format!("{} has no entries", field.name())));
    };
    // Each distinct layout is parsed once; rows point at theirs.
    let layout = cast(
        &wire_columns[parts[0]],
        &DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8)),
    )?;
    let layout = layout.as_dictionary::<UInt16Type>();
    let parse = |order: &str| -> Result<Vec<usize>, ArrowError> {
        order
            .split(',')
            .filter(|k| !k.is_empty())
            .map(|k| {
                k.parse()
                    .map_err(|_| invalid(format!("{}: bad layout {order:?}", field.name())))
            })
            .collect()
    };
    let orders = layout
        .values()
        .as_string_opt::<i32>()
        .ok_or_else(|| invalid(format!("{}: layouts are not text", field.name())))?
        .iter()
        .map(|o| parse(o.unwrap_or_default()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut keys = Vec::new();
    let mut values = Vec::new();
    for &p in &parts[1..] {
        let key = fields[p]
            .metadata()
            .get(KEY)
            .ok_or_else(|| invalid(format!("a key column of {} has no key", field.name())))?;
        keys.push(key.as_str());
        values.push(wire_strings(&wire_columns[p])?);
    }
    let values: Vec<&StringArray> = values.iter().map(|v| v.as_string::<i32>()).collect();
    let mut out_keys = StringBuilder::new();
    let mut out_values = StringBuilder::new();
    let mut offsets = Vec::with_capacity(rows + 1);
    offsets.push(0i32);
    let mut count = 0i32;
    for row in 0..rows {
        let order = layout
            .is_valid(row)
            .then(|| orders.get(usize::from(layout.keys().value(row))))
            .flatten()
            .ok_or_else(|| invalid(format!("{} has a row without layout", field.name())))?;
        for &k in order {
            let (Some(key), Some(column)) = (keys.get(k), values.get(k)) else {
                return Err(invalid(format!("{}: layout names key {k}", field.name())));
            };
            if column.is_null(row) {
                return Err(invalid(format!("{}: key {key} has no value", field.name())));
            }
            out_keys.append_value(key);
            out_values.append_value(column.value(row));
            count = count
                .checked_add(1)
                .ok_or_else(|| invalid(format!("{} has too many entries", field.name())))?;
        }
        offsets.push(count);
    }
    let entries_array = StructArray::try_new(
        entry_fields.clone(),
        vec![Arc::new(out_keys.finish()), Arc::new(out_values.finish())],
        None,
    )?;
    Ok(Arc::new(MapArray::try_new(
        Arc::clone(entries),
        OffsetBuffer::new(offsets.into()),
        entries_array,
        None,
        *sorted,
    )?))
}
