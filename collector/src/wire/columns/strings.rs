//! Strings on the wire: one value, numbers, lowercase hex ids as bytes, dictionaries, and text
//! whose rows split alike as a column per token.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, DictionaryArray, FixedSizeBinaryBuilder, Int64Array,
    StringArray, StringBuilder, StringDictionaryBuilder,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, FieldRef, UInt16Type};
use arrow::error::ArrowError;

use super::numbers::narrow_int;
use super::{invalid, KEY};

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
pub(super) fn strings_to_wire(strings: &StringArray) -> Result<ArrayRef, ArrowError> {
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
pub(super) fn tokenize(strings: &StringArray) -> Result<Option<Vec<(bool, ArrayRef)>>, ArrowError> {
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
pub(super) fn untokenize(
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
pub(super) fn wire_strings(column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
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
pub(super) fn hex_strings(column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
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
