//! Numbers on the wire: integers narrowed, timestamps as differences, lists of numbers as
//! fixed-size lists when they all have one length.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray};
use arrow::buffer::OffsetBuffer;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use arrow::error::ArrowError;

use super::invalid;

/// A list of numbers: fixed-size when every list has one length (histogram buckets), so no
/// offsets travel; integers narrowed.
pub(super) fn list_to_wire(list: &ListArray, item: &FieldRef) -> Result<ArrayRef, ArrowError> {
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
pub(super) fn unfix(
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
pub(super) fn deltas(column: &ArrayRef) -> Result<(i64, ArrayRef), ArrowError> {
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

pub(super) fn undo_deltas(base: i64, column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
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
pub(super) fn differences(column: &ArrayRef, reference: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    row_by_row(column, reference, i64::wrapping_sub)
}

pub(super) fn undo_differences(
    column: &ArrayRef,
    reference: &ArrayRef,
) -> Result<ArrayRef, ArrowError> {
    row_by_row(column, reference, i64::wrapping_add)
}

/// The column cast to the narrowest integer type holding all its values.
pub(super) fn narrow_int(column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
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
pub(super) fn whole_numbers(values: &Float64Array) -> bool {
    const EXACT: f64 = (1u64 << 53) as f64;
    values.null_count() < values.len()
        && values
            .iter()
            .flatten()
            .all(|v| v.fract() == 0.0 && v.abs() <= EXACT && !(v == 0.0 && v.is_sign_negative()))
}
