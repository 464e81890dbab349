//! Arrow → OTLP: rebuilds the Export request a batch was made from, the inverse of the
//! `*_to_arrow` converters. Rebuilding groups consecutive rows with the same resource and scope,
//! so a request round-trips exactly as long as it has no empty resource or scope entries and no
//! two adjacent identical resources. Only the round-trip tests use it today, so it is compiled
//! for tests only; a replay feature would make it public.

mod logs;
mod metrics;
mod traces;

pub use logs::logs_from_arrow;
pub use metrics::metrics_from_arrow;
pub use traces::traces_from_arrow;

use arrow::array::{Array, ArrayRef, MapArray, RecordBatch, StringArray, UInt32Array};
use base64::Engine;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::ConvertError;
use crate::json::any_value;

/// Decodes a hex id column value back to bytes (null → empty).
pub(super) fn read_hex(col: &StringArray, row: usize) -> Result<Vec<u8>, ConvertError> {
    if col.is_null(row) {
        return Ok(Vec::new());
    }
    hex::decode(col.value(row)).map_err(|e| ConvertError::Column(format!("bad hex id: {e}")))
}

/// Downcasts a batch column by name.
pub(super) fn column<'a, T: 'static>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a T, ConvertError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| ConvertError::Column(format!("column `{name}` is missing or mistyped")))
}

/// Downcasts an array (a struct child) to a concrete type.
pub(super) fn downcast<T: Clone + 'static>(
    array: &ArrayRef,
    name: &str,
) -> Result<T, ConvertError> {
    array
        .as_any()
        .downcast_ref::<T>()
        .cloned()
        .ok_or_else(|| ConvertError::Column(format!("field `{name}` is mistyped")))
}

/// The inverse of [`enum_name`](super::traces::enum_name).
pub(super) fn enum_value(names: &[&str], name: &str) -> Result<i32, ConvertError> {
    names
        .iter()
        .position(|n| *n == name)
        .map(|i| i as i32)
        .or_else(|| name.parse().ok())
        .ok_or_else(|| ConvertError::Column(format!("unknown enum value `{name}`")))
}

/// Rebuilds a value from its text and type name (the inverse of the writer's rendering).
pub(super) fn parse(text: &str, kind: Option<&str>) -> Result<Option<AnyValue>, ConvertError> {
    let bad = |what: &str| ConvertError::Column(format!("attribute value `{text}` is not {what}"));
    let value = match kind {
        None => Value::StringValue(text.to_owned()),
        Some("absent") => return Ok(None),
        Some("empty") => return Ok(Some(AnyValue { value: None })),
        Some("bool") => Value::BoolValue(text.parse().map_err(|_| bad("a bool"))?),
        Some("int") => Value::IntValue(text.parse().map_err(|_| bad("an int"))?),
        Some("double") => Value::DoubleValue(text.parse().map_err(|_| bad("a double"))?),
        Some("strindex") => Value::StringValueStrindex(text.parse().map_err(|_| bad("an index"))?),
        Some("bytes") => Value::BytesValue(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| bad("base64"))?,
        ),
        Some("array") | Some("kvlist") => {
            let v: serde_json::Value = serde_json::from_str(text).map_err(|_| bad("JSON"))?;
            return any_value::decode(&v)
                .map(Some)
                .map_err(|e| ConvertError::Column(e.to_string()));
        }
        Some(other) => {
            return Err(ConvertError::Column(format!(
                "unknown attribute type `{other}`"
            )))
        }
    };
    Ok(Some(AnyValue { value: Some(value) }))
}

/// Reads row `row` of the two map columns back into an attribute list.
pub(super) fn read(
    values: &MapArray,
    types: &MapArray,
    row: usize,
) -> Result<Vec<KeyValue>, ConvertError> {
    let (keys, texts) = map_entries(values, row)?;
    let (type_keys, type_names) = map_entries(types, row)?;
    let mut out = Vec::with_capacity(keys.len());
    for i in 0..keys.len() {
        let key = keys.value(i);
        let kind = (0..type_keys.len())
            .find(|&j| type_keys.value(j) == key)
            .map(|j| type_names.value(j));
        let text = if texts.is_null(i) { "" } else { texts.value(i) };
        out.push(KeyValue {
            key: key.to_owned(),
            value: parse(text, kind)?,
            key_strindex: 0,
        });
    }
    Ok(out)
}

/// The key and value arrays of one map row.
fn map_entries(map: &MapArray, row: usize) -> Result<(StringArray, StringArray), ConvertError> {
    let entries = map.value(row);
    let col = |i: usize| {
        entries
            .column(i)
            .as_any()
            .downcast_ref::<StringArray>()
            .cloned()
            .ok_or_else(|| ConvertError::Column("attribute map is not Map<Utf8, Utf8>".into()))
    };
    Ok((col(0)?, col(1)?))
}

/// Where a row came from: its resource and scope with their schema URLs.
#[derive(Clone, Debug, PartialEq)]
pub struct Context {
    /// The resource (absent in the request → default).
    pub resource: Resource,
    /// The `ResourceX.schema_url`.
    pub resource_schema_url: String,
    /// The instrumentation scope (absent → default).
    pub scope: InstrumentationScope,
    /// The `ScopeX.schema_url`.
    pub scope_schema_url: String,
}

/// Reads the resource and scope columns of a batch back.
pub struct ContextReader<'a> {
    res_attrs: &'a MapArray,
    res_types: &'a MapArray,
    res_dropped: &'a UInt32Array,
    res_schema: &'a StringArray,
    scope_name: &'a StringArray,
    scope_version: &'a StringArray,
    scope_attrs: &'a MapArray,
    scope_types: &'a MapArray,
    scope_dropped: &'a UInt32Array,
    scope_schema: &'a StringArray,
}

impl<'a> ContextReader<'a> {
    /// Finds the context columns in a batch.
    pub fn new(batch: &'a RecordBatch) -> Result<Self, ConvertError> {
        Ok(Self {
            res_attrs: column(batch, "resource_attributes")?,
            res_types: column(batch, "resource_attribute_types")?,
            res_dropped: column(batch, "resource_dropped_attributes_count")?,
            res_schema: column(batch, "resource_schema_url")?,
            scope_name: column(batch, "scope_name")?,
            scope_version: column(batch, "scope_version")?,
            scope_attrs: column(batch, "scope_attributes")?,
            scope_types: column(batch, "scope_attribute_types")?,
            scope_dropped: column(batch, "scope_dropped_attributes_count")?,
            scope_schema: column(batch, "scope_schema_url")?,
        })
    }

    /// The context of one row.
    pub fn read(&self, row: usize) -> Result<Context, ConvertError> {
        Ok(Context {
            resource: Resource {
                attributes: read(self.res_attrs, self.res_types, row)?,
                dropped_attributes_count: self.res_dropped.value(row),
                entity_refs: Vec::new(),
            },
            resource_schema_url: self.res_schema.value(row).to_owned(),
            scope: InstrumentationScope {
                name: self.scope_name.value(row).to_owned(),
                version: self.scope_version.value(row).to_owned(),
                attributes: read(self.scope_attrs, self.scope_types, row)?,
                dropped_attributes_count: self.scope_dropped.value(row),
            },
            scope_schema_url: self.scope_schema.value(row).to_owned(),
        })
    }
}

/// Groups consecutive rows by context: yields (context, row range) runs in order.
fn runs(
    reader: &ContextReader<'_>,
    rows: usize,
) -> Result<Vec<(Context, std::ops::Range<usize>)>, ConvertError> {
    let mut out: Vec<(Context, std::ops::Range<usize>)> = Vec::new();
    for row in 0..rows {
        let ctx = reader.read(row)?;
        match out.last_mut() {
            Some((last, range)) if *last == ctx => range.end = row + 1,
            _ => out.push((ctx, row..row + 1)),
        }
    }
    Ok(out)
}

/// Items of one scope, with the scope and its schema URL.
pub type ScopeGroup<T> = (InstrumentationScope, String, Vec<T>);

/// Items regrouped under their resource, the inverse of flattening a request into rows.
pub struct ResourceGroup<T> {
    /// The resource.
    pub resource: Resource,
    /// The resource's schema URL.
    pub schema_url: String,
    /// The scopes under it, in row order.
    pub scopes: Vec<ScopeGroup<T>>,
}

/// Regroups a batch's rows by resource and scope, turning each run of rows into items with `items`.
pub fn regroup<T>(
    batch: &RecordBatch,
    mut items: impl FnMut(std::ops::Range<usize>) -> Result<Vec<T>, ConvertError>,
) -> Result<Vec<ResourceGroup<T>>, ConvertError> {
    let reader = ContextReader::new(batch)?;
    let mut out: Vec<ResourceGroup<T>> = Vec::new();
    for (ctx, range) in runs(&reader, batch.num_rows())? {
        let scope = (ctx.scope, ctx.scope_schema_url, items(range)?);
        match out.last_mut() {
            Some(last)
                if last.resource == ctx.resource && last.schema_url == ctx.resource_schema_url =>
            {
                last.scopes.push(scope)
            }
            _ => out.push(ResourceGroup {
                resource: ctx.resource,
                schema_url: ctx.resource_schema_url,
                scopes: vec![scope],
            }),
        }
    }
    Ok(out)
}
