//! `AnyValue` ⇄ OTLP/JSON: the value codec used for request bodies and for attribute values
//! that are not plain strings (arrays, maps, bytes) in the stored attribute maps.

use base64::Engine;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value as AnyKind, AnyValue, ArrayValue, KeyValue, KeyValueList,
};
use serde_json::{json, Value};

use super::{boolean, err, float, get, integer, list, object, string, Result};

/// Decodes an `AnyValue` object.
pub fn decode(v: &Value) -> Result<AnyValue> {
    any_value(v, "value")
}

pub(crate) fn any_value(v: &Value, path: &str) -> Result<AnyValue> {
    let obj = object(v, path)?;
    let value = if let Some(s) = get(obj, "stringValue") {
        Some(AnyKind::StringValue(s.as_str().map_or_else(
            || err(path, "stringValue must be a string"),
            |s| Ok(s.to_owned()),
        )?))
    } else if get(obj, "boolValue").is_some() {
        Some(AnyKind::BoolValue(boolean(obj, "boolValue", path)?))
    } else if get(obj, "intValue").is_some() {
        Some(AnyKind::IntValue(integer(obj, "intValue", path)?))
    } else if let Some(d) = float(obj, "doubleValue", path)? {
        Some(AnyKind::DoubleValue(d))
    } else if let Some(a) = get(obj, "arrayValue") {
        let values = list(object(a, path)?, "values", path, any_value)?;
        Some(AnyKind::ArrayValue(ArrayValue { values }))
    } else if let Some(kv) = get(obj, "kvlistValue") {
        let values = list(object(kv, path)?, "values", path, key_value)?;
        Some(AnyKind::KvlistValue(KeyValueList { values }))
    } else if let Some(b) = get(obj, "bytesValue") {
        let s = b.as_str().unwrap_or_default();
        let engine = base64::engine::general_purpose::STANDARD;
        let bytes = engine
            .decode(s)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s))
            .map_or_else(|_| err(path, "bytesValue must be base64"), Ok)?;
        Some(AnyKind::BytesValue(bytes))
    } else {
        None
    };
    Ok(AnyValue { value })
}

pub(crate) fn key_value(v: &Value, path: &str) -> Result<KeyValue> {
    let obj = object(v, path)?;
    let value = get(obj, "value")
        .map(|v| any_value(v, &format!("{path}.value")))
        .transpose()?;
    Ok(KeyValue {
        key: string(obj, "key", path)?,
        value,
        key_strindex: 0,
    })
}

/// Encodes an `AnyValue` as OTLP/JSON (ints as strings, bytes as base64).
pub fn encode(v: &AnyValue) -> Value {
    match &v.value {
        None => json!({}),
        Some(AnyKind::StringValue(s)) => json!({ "stringValue": s }),
        Some(AnyKind::BoolValue(b)) => json!({ "boolValue": b }),
        Some(AnyKind::IntValue(i)) => json!({ "intValue": i.to_string() }),
        Some(AnyKind::DoubleValue(d)) => match serde_json::Number::from_f64(*d) {
            Some(n) => json!({ "doubleValue": n }),
            None if d.is_nan() => json!({ "doubleValue": "NaN" }),
            None if *d > 0.0 => json!({ "doubleValue": "Infinity" }),
            None => json!({ "doubleValue": "-Infinity" }),
        },
        Some(AnyKind::BytesValue(b)) => {
            json!({ "bytesValue": base64::engine::general_purpose::STANDARD.encode(b) })
        }
        Some(AnyKind::ArrayValue(a)) => {
            json!({ "arrayValue": { "values": a.values.iter().map(encode).collect::<Vec<_>>() } })
        }
        Some(AnyKind::KvlistValue(kv)) => {
            json!({ "kvlistValue": { "values": kv.values.iter().map(|kv| {
            let mut o = json!({ "key": kv.key });
            if let Some(v) = &kv.value {
                o["value"] = encode(v);
            }
            o
        }).collect::<Vec<_>>() } })
        }
        Some(AnyKind::StringValueStrindex(i)) => json!({ "stringValueStrindex": i }),
    }
}
