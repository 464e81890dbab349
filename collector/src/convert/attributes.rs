//! OTLP attribute lists ⇄ the pair of Arrow maps that store them (`attributes`, `attribute_types`).
//!
//! A value is rendered as text so SQL can read it directly; values that are not strings also get an
//! entry in the types map, so the original `AnyValue` can be rebuilt exactly.

use arrow::array::{Array, MapArray, MapBuilder, StringArray, StringBuilder};
use base64::Engine;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};

use crate::convert::ConvertError;
use crate::otlp::json;

/// Builder of a `Map<Utf8, Utf8>` column.
pub type StringMapBuilder = MapBuilder<StringBuilder, StringBuilder>;

/// A new, empty map builder with the field names of `schema::string_map_type`.
pub fn map_builder() -> StringMapBuilder {
    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
}

/// Renders a value as its text and, unless it is a string, its type name.
pub fn render(value: Option<&AnyValue>) -> (String, Option<&'static str>) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some(value) = value else {
        return (String::new(), Some("absent"));
    };
    match value.value.as_ref() {
        None => (String::new(), Some("empty")),
        Some(Value::StringValue(s)) => (s.clone(), None),
        Some(Value::BoolValue(b)) => (b.to_string(), Some("bool")),
        Some(Value::IntValue(i)) => (i.to_string(), Some("int")),
        Some(Value::DoubleValue(d)) => (format!("{d:?}"), Some("double")),
        Some(Value::BytesValue(b)) => (b64.encode(b), Some("bytes")),
        Some(v @ (Value::ArrayValue(_) | Value::KvlistValue(_))) => {
            let any = AnyValue {
                value: Some(v.clone()),
            };
            let kind = if matches!(v, Value::ArrayValue(_)) {
                "array"
            } else {
                "kvlist"
            };
            (json::encode_any_value(&any).to_string(), Some(kind))
        }
        Some(Value::StringValueStrindex(i)) => (i.to_string(), Some("strindex")),
    }
}

/// Rebuilds a value from its text and type name (the inverse of [`render`]).
pub fn parse(text: &str, kind: Option<&str>) -> Result<Option<AnyValue>, ConvertError> {
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
            return json::decode_any_value(&v)
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

/// Appends one attribute list as one row of the two map columns.
pub fn append(values: &mut StringMapBuilder, types: &mut StringMapBuilder, attrs: &[KeyValue]) {
    for kv in attrs {
        let (text, kind) = render(kv.value.as_ref());
        values.keys().append_value(&kv.key);
        values.values().append_value(text);
        if let Some(kind) = kind {
            types.keys().append_value(&kv.key);
            types.values().append_value(kind);
        }
    }
    // Appending a map row cannot fail for non-null maps built from the same builder.
    let _ = values.append(true);
    let _ = types.append(true);
}

/// Reads row `row` of the two map columns back into an attribute list.
pub fn read(
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

/// Looks up the first key, among `keys`, present in an attribute list, rendered as text.
pub fn find<'a>(attrs: &'a [KeyValue], keys: &[&str]) -> Option<&'a AnyValue> {
    keys.iter()
        .find_map(|k| attrs.iter().find(|kv| kv.key == *k))
        .and_then(|kv| kv.value.as_ref())
}

/// A value as a string, if it is a string (or renders to one, for numbers and bools).
pub fn as_text(value: Option<&AnyValue>) -> Option<String> {
    match value?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::DoubleValue(d) => Some(d.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A value as an integer, if it is one or a string holding one.
pub fn as_int(value: Option<&AnyValue>) -> Option<i64> {
    match value?.value.as_ref()? {
        Value::IntValue(i) => Some(*i),
        Value::StringValue(s) => s.parse().ok(),
        Value::DoubleValue(d) if d.fract() == 0.0 => Some(*d as i64),
        _ => None,
    }
}
