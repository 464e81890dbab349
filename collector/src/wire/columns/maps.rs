//! String maps (attributes) on the wire: one column per key and, per row, the order of its keys.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, DictionaryArray, MapArray, StringArray, StringBuilder, StructArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::compute::cast;
use arrow::datatypes::{DataType, FieldRef, UInt16Type};
use arrow::error::ArrowError;

use super::strings::wire_strings;
use super::{invalid, KEY};

/// Most distinct keys a map column is pivoted with; past it the map goes as it is.
const MAX_PIVOT_KEYS: usize = 1024;

/// Key columns of a string map: each row's key order (`"0,2,1"`, dictionary-encoded) and one
/// column per key. `None` when the map cannot be pivoted losslessly.
#[allow(clippy::type_complexity)]
pub(super) fn pivot(
    map: &MapArray,
) -> Result<Option<(ArrayRef, Vec<(String, StringArray)>)>, ArrowError> {
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
pub(super) fn unpivot(
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
