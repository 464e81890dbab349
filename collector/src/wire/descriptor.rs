//! The descriptor that travels in place of an Arrow IPC schema message: per wire column, the
//! storage column it belongs to, its transform, its type as a short code, its argument (a map
//! key, a base) and, for a column with one value on every row, that value — such a column does
//! not travel at all. The IPC schema of the columns that do is rebuilt from it on arrival.
//!
//! Why not the schema message itself: for the storage schema's ~60 columns it is 7 KB, 2 KB
//! compressed, 20 bytes per span of a 100-span batch; a column with one value (the region, the
//! resource's attributes, an export's timestamp) costs more as an IPC column than its rows do.
//!
//! An entry is a JSON array `[storage column index, transform, type code, argument, constant]`;
//! the constant is `null` for a column that travels, `[]` for one null on every row.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, DictionaryArray, Float64Array,
    Int64Array, RecordBatch, StringArray, UInt16Array,
};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Field, FieldRef, Float64Type, Int64Type, Schema, SchemaRef, UInt16Type,
};
use arrow::error::ArrowError;
use serde_json::Value;

use super::columns::{BASE, KEY, OF, TRANSFORM};

/// Most rows a decoder makes a constant column of: a damaged row count must not allocate
/// without bound.
const MAX_ROWS: usize = 1 << 24;

#[derive(serde::Serialize, serde::Deserialize)]
struct Entry(usize, String, String, Option<String>, Value);

fn invalid(message: String) -> ArrowError {
    ArrowError::InvalidArgumentError(format!("wire descriptor: {message}"))
}

/// The type code of a wire column of type `t` made from a storage column of type `storage`.
fn type_code(t: &DataType, storage: &DataType) -> Result<String, ArrowError> {
    if t == storage {
        return Ok("=".into());
    }
    Ok(match t {
        DataType::Int8 => "i8".into(),
        DataType::Int16 => "i16".into(),
        DataType::Int32 => "i32".into(),
        DataType::Int64 => "i64".into(),
        DataType::UInt8 => "u8".into(),
        DataType::UInt16 => "u16".into(),
        DataType::UInt32 => "u32".into(),
        DataType::UInt64 => "u64".into(),
        DataType::Boolean => "bool".into(),
        DataType::Utf8 => "s".into(),
        DataType::Binary => "b".into(),
        DataType::FixedSizeBinary(n) => format!("x{n}"),
        DataType::Dictionary(k, v) if **k == DataType::UInt16 && **v == DataType::Utf8 => {
            "d".into()
        }
        DataType::List(item) => match storage {
            DataType::List(s) => format!("l{}", type_code(item.data_type(), s.data_type())?),
            _ => return Err(invalid(format!("a list made from {storage}"))),
        },
        DataType::FixedSizeList(item, n) => match storage {
            DataType::List(s) => format!("f{n}:{}", type_code(item.data_type(), s.data_type())?),
            _ => return Err(invalid(format!("a fixed-size list made from {storage}"))),
        },
        other => return Err(invalid(format!("no code for {other}"))),
    })
}

fn parse_type(code: &str, storage: &DataType) -> Result<DataType, ArrowError> {
    Ok(match code {
        "=" => storage.clone(),
        "i8" => DataType::Int8,
        "i16" => DataType::Int16,
        "i32" => DataType::Int32,
        "i64" => DataType::Int64,
        "u8" => DataType::UInt8,
        "u16" => DataType::UInt16,
        "u32" => DataType::UInt32,
        "u64" => DataType::UInt64,
        "bool" => DataType::Boolean,
        "s" => DataType::Utf8,
        "b" => DataType::Binary,
        "d" => DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8)),
        list if list.starts_with('l') => match storage {
            DataType::List(s) => {
                let item = parse_type(&list[1..], s.data_type())?;
                if item.is_nested() {
                    return Err(invalid("a list of lists".into()));
                }
                DataType::List(Arc::new(Field::new(s.name(), item, s.is_nullable())))
            }
            _ => return Err(invalid(format!("{code} for {storage}"))),
        },
        fixed if fixed.starts_with('f') => match (storage, fixed[1..].split_once(':')) {
            (DataType::List(s), Some((n, item))) => {
                let n: i32 = n.parse().map_err(|_| invalid(format!("type {code}")))?;
                let item = parse_type(item, s.data_type())?;
                if !(1..=1 << 16).contains(&n) || item.is_nested() {
                    return Err(invalid(format!("type {code}")));
                }
                DataType::FixedSizeList(Arc::new(Field::new(s.name(), item, true)), n)
            }
            _ => return Err(invalid(format!("{code} for {storage}"))),
        },
        fixed if fixed.starts_with('x') => match fixed[1..].parse::<i32>() {
            Ok(n) if (1..=1024).contains(&n) => DataType::FixedSizeBinary(n),
            _ => return Err(invalid(format!("type {code}"))),
        },
        other => return Err(invalid(format!("type {other}"))),
    })
}

/// The value every row of `column` holds, as a descriptor constant, if it has one.
fn constant(column: &ArrayRef) -> Option<Value> {
    if column.is_empty() {
        return None;
    }
    if column.null_count() == column.len() {
        return Some(Value::Array(Vec::new()));
    }
    if column.null_count() > 0 {
        return None;
    }
    match column.data_type() {
        DataType::Dictionary(..) => {
            let values = column.as_dictionary_opt::<UInt16Type>()?.values();
            let values = values.as_string_opt::<i32>()?;
            (values.len() == 1 && values.null_count() == 0)
                .then(|| Value::String(values.value(0).to_owned()))
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => {
            let values = cast(column, &DataType::Int64).ok()?;
            let values = values.as_primitive::<Int64Type>().values();
            let first = values[0];
            values.iter().all(|&v| v == first).then(|| first.into())
        }
        DataType::Float64 => {
            let values = column.as_primitive::<Float64Type>().values();
            let first = values[0];
            let same = values.iter().all(|v| v.to_bits() == first.to_bits());
            // JSON has no NaN or infinity; such a column travels.
            (same && first.is_finite())
                .then(|| serde_json::Number::from_f64(first).map(Value::Number))?
        }
        DataType::Boolean => {
            let ones = column.as_boolean().true_count();
            (ones == 0 || ones == column.len()).then_some(Value::Bool(ones > 0))
        }
        _ => None,
    }
}

/// The name a travelling column goes by in the IPC batch (the same on both sides).
fn travelling_name(k: usize) -> String {
    format!("c{k}")
}

/// Describes the wire columns of a batch of `storage`: the descriptor, and the fields and
/// columns of the IPC batch that travels with it (the columns that are not constant).
pub fn describe(
    storage: &Schema,
    wire: Vec<(Field, ArrayRef)>,
) -> Result<(String, Vec<Field>, Vec<ArrayRef>), ArrowError> {
    let mut entries = Vec::with_capacity(wire.len());
    let (mut fields, mut columns) = (Vec::new(), Vec::new());
    for (field, column) in wire {
        let meta = field.metadata();
        let of = meta
            .get(OF)
            .and_then(|of| storage.index_of(of).ok())
            .ok_or_else(|| invalid(format!("{} is of no storage column", field.name())))?;
        let transform = meta.get(TRANSFORM).cloned().unwrap_or_default();
        let arg = meta.get(KEY).or_else(|| meta.get(BASE)).cloned();
        let code = type_code(column.data_type(), storage.field(of).data_type())?;
        let value = constant(&column);
        if value.is_none() {
            fields.push(Field::new(
                travelling_name(fields.len()),
                column.data_type().clone(),
                true,
            ));
            columns.push(column);
        }
        entries.push(Entry(
            of,
            transform,
            code,
            arg,
            value.unwrap_or(Value::Null),
        ));
    }
    let json = serde_json::to_string(&entries).map_err(|e| invalid(e.to_string()))?;
    Ok((json, fields, columns))
}

/// A descriptor read back: the schema of the IPC batch that travels with it, and how to put
/// the constant columns back.
pub struct Plan {
    entries: Vec<Entry>,
    storage: SchemaRef,
    /// Schema of the travelling IPC batch.
    pub schema: SchemaRef,
}

impl Plan {
    /// Reads a descriptor for a batch of `storage`.
    pub fn parse(json: &[u8], storage: &SchemaRef) -> Result<Self, ArrowError> {
        let entries: Vec<Entry> =
            serde_json::from_slice(json).map_err(|e| invalid(e.to_string()))?;
        let mut fields = Vec::new();
        for e in &entries {
            let of = storage
                .fields()
                .get(e.0)
                .ok_or_else(|| invalid(format!("storage column {}", e.0)))?;
            let t = parse_type(&e.2, of.data_type())?;
            if e.4.is_null() {
                fields.push(Field::new(travelling_name(fields.len()), t, true));
            }
        }
        Ok(Plan {
            entries,
            storage: Arc::clone(storage),
            schema: Arc::new(Schema::new(fields)),
        })
    }

    /// Every wire column of `batch` (one decoded IPC batch), constants put back, each with the
    /// field [`super::columns::from_wire`] reads.
    pub fn restore(
        &self,
        batch: &RecordBatch,
    ) -> Result<(Vec<FieldRef>, Vec<ArrayRef>), ArrowError> {
        let rows = batch.num_rows();
        if rows > MAX_ROWS {
            return Err(invalid(format!("{rows} rows")));
        }
        let mut travelling = batch.columns().iter();
        let (mut fields, mut columns) = (Vec::new(), Vec::new());
        for Entry(of, transform, code, arg, value) in &self.entries {
            let storage = self.storage.field(*of);
            let t = parse_type(code, storage.data_type())?;
            let column: ArrayRef = match value {
                Value::Null => Arc::clone(
                    travelling
                        .next()
                        .ok_or_else(|| invalid("fewer columns than entries".into()))?,
                ),
                Value::Array(a) if a.is_empty() => new_null_array(&t, rows),
                Value::String(s) => Arc::new(DictionaryArray::<UInt16Type>::try_new(
                    UInt16Array::from(vec![0u16; rows]),
                    Arc::new(StringArray::from(vec![s.as_str()])),
                )?),
                Value::Number(n) if t == DataType::Float64 => {
                    let n = n.as_f64().ok_or_else(|| invalid(format!("constant {n}")))?;
                    Arc::new(Float64Array::from(vec![n; rows]))
                }
                Value::Number(n) => {
                    let n = n.as_i64().ok_or_else(|| invalid(format!("constant {n}")))?;
                    cast(&(Arc::new(Int64Array::from(vec![n; rows])) as ArrayRef), &t)?
                }
                Value::Bool(b) => Arc::new(BooleanArray::from(vec![*b; rows])),
                other => return Err(invalid(format!("constant {other}"))),
            };
            if column.data_type() != &t {
                return Err(invalid(format!("{} is not {code}", storage.name())));
            }
            let mut meta = HashMap::from([(OF.to_owned(), storage.name().clone())]);
            if !transform.is_empty() {
                meta.insert(TRANSFORM.to_owned(), transform.clone());
            }
            if let Some(arg) = arg {
                let key = if transform == "delta" { BASE } else { KEY };
                meta.insert(key.to_owned(), arg.clone());
            }
            let name = format!("{}#{}", storage.name(), fields.len());
            fields.push(Arc::new(Field::new(name, t, true).with_metadata(meta)));
            columns.push(column);
        }
        Ok((fields, columns))
    }
}
