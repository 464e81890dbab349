//! OTLP/JSON field readers shared by the request decoder ([`crate::otlp::json`]) and the
//! attribute codec ([`any_value`]): lowerCamelCase or snake_case keys, 64-bit integers as numbers
//! or decimal strings, enums as numbers or names, ids as hex; each error names the field's path.

pub mod any_value;

use serde_json::{Map, Value};

/// A JSON document that is not valid OTLP/JSON, with the path of the offending field.
#[derive(Debug, thiserror::Error)]
#[error("invalid OTLP/JSON at `{path}`: {reason}")]
pub struct JsonError {
    path: String,
    reason: String,
}

/// The result of a reader.
pub(crate) type Result<T> = std::result::Result<T, JsonError>;

pub(crate) fn err<T>(path: &str, reason: impl Into<String>) -> Result<T> {
    Err(JsonError {
        path: path.to_owned(),
        reason: reason.into(),
    })
}

/// A JSON object's field by its lowerCamelCase name, or its snake_case proto name; null = absent.
pub(crate) fn get<'a>(obj: &'a Map<String, Value>, camel: &str) -> Option<&'a Value> {
    let found = obj.get(camel).or_else(|| {
        let snake = camel.chars().fold(String::new(), |mut s, c| {
            if c.is_ascii_uppercase() {
                s.push('_');
                s.push(c.to_ascii_lowercase());
            } else {
                s.push(c);
            }
            s
        });
        obj.get(&snake)
    });
    found.filter(|v| !v.is_null())
}

pub(crate) fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    v.as_object()
        .map_or_else(|| err(path, "expected an object"), Ok)
}

/// The elements of an array field (absent → empty), each decoded by `f`.
pub(crate) fn list<T>(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
    f: impl Fn(&Value, &str) -> Result<T>,
) -> Result<Vec<T>> {
    match get(obj, key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| f(v, &format!("{path}.{key}[{i}]")))
            .collect(),
        Some(_) => err(&format!("{path}.{key}"), "expected an array"),
    }
}

pub(crate) fn string(obj: &Map<String, Value>, key: &str, path: &str) -> Result<String> {
    match get(obj, key) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => err(&format!("{path}.{key}"), "expected a string"),
    }
}

/// An integer field given as a JSON number or a decimal string (absent → 0).
pub(crate) fn integer<T: TryFrom<i128>>(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<T> {
    match get(obj, key) {
        None => T::try_from(0).map_or_else(|_| err(path, "unreachable"), Ok),
        Some(v) => integer_value(v, &format!("{path}.{key}")),
    }
}

pub(crate) fn integer_value<T: TryFrom<i128>>(v: &Value, path: &str) -> Result<T> {
    let wide: Option<i128> = match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i128)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match wide.map(T::try_from) {
        Some(Ok(v)) => Ok(v),
        Some(Err(_)) => err(path, "integer out of range"),
        None => err(path, "expected an integer (number or decimal string)"),
    }
}

pub(crate) fn float_value(v: &Value, path: &str) -> Result<f64> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .map_or_else(|| err(path, "expected a number"), Ok),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other
                .parse()
                .map_or_else(|_| err(path, "expected a number"), Ok),
        },
        _ => err(path, "expected a number"),
    }
}

pub(crate) fn float(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<f64>> {
    get(obj, key)
        .map(|v| float_value(v, &format!("{path}.{key}")))
        .transpose()
}

pub(crate) fn boolean(obj: &Map<String, Value>, key: &str, path: &str) -> Result<bool> {
    match get(obj, key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => err(&format!("{path}.{key}"), "expected a boolean"),
    }
}

/// An enum given as its number or its name (e.g. `SPAN_KIND_SERVER`, matched on `names`).
pub(crate) fn enumeration(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
    names: &[&str],
) -> Result<i32> {
    match get(obj, key) {
        None => Ok(0),
        Some(Value::String(s)) if s.parse::<i32>().is_err() => names
            .iter()
            .position(|n| n == s)
            .map(|i| i as i32)
            .map_or_else(
                || {
                    err(
                        &format!("{path}.{key}"),
                        format!("unknown enum value `{s}`"),
                    )
                },
                Ok,
            ),
        Some(v) => integer_value(v, &format!("{path}.{key}")),
    }
}

/// A trace or span id: hex in OTLP/JSON (wrong lengths are left for the converter to reject).
pub(crate) fn id(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Vec<u8>> {
    match get(obj, key) {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => {
            hex::decode(s).map_or_else(|_| err(&format!("{path}.{key}"), "expected a hex id"), Ok)
        }
        Some(_) => err(&format!("{path}.{key}"), "expected a hex string"),
    }
}

pub(crate) fn parse(body: &[u8]) -> Result<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(body).map_err(|e| JsonError {
        path: "$".into(),
        reason: e.to_string(),
    })
}
