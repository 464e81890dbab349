//! OTLP attribute lists ⇄ the pair of Arrow maps that store them (`attributes`, `attribute_types`).
//!
//! A value is rendered as text so SQL can read it directly; values that are not strings also get an
//! entry in the types map, so the original `AnyValue` can be rebuilt exactly.

use std::borrow::Cow;

use arrow::array::{MapBuilder, StringBuilder};
use base64::Engine;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};

use crate::json::any_value;

/// Builder of a `Map<Utf8, Utf8>` column.
pub type StringMapBuilder = MapBuilder<StringBuilder, StringBuilder>;

/// A new, empty map builder with the field names of `schema::string_map_type`.
pub fn map_builder() -> StringMapBuilder {
    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
}

/// A map builder sized for `rows` rows of about `entries` entries each.
pub fn map_builder_with_capacity(rows: usize, entries: usize) -> StringMapBuilder {
    let n = rows * entries;
    let strings = || StringBuilder::with_capacity(n, n * 16);
    MapBuilder::with_capacity(None, strings(), strings(), rows)
}

/// A value's text and, unless it is a string, its type name. Strings are borrowed; other values
/// are written into `scratch` (cleared first), so the hot path allocates nothing.
pub fn text<'a>(
    value: Option<&'a AnyValue>,
    scratch: &'a mut String,
) -> (&'a str, Option<&'static str>) {
    use std::fmt::Write;
    scratch.clear();
    let Some(value) = value else {
        return ("", Some("absent"));
    };
    let kind = match value.value.as_ref() {
        None => "empty",
        Some(Value::StringValue(s)) => return (s, None),
        Some(Value::BoolValue(b)) => {
            scratch.push_str(if *b { "true" } else { "false" });
            "bool"
        }
        Some(Value::IntValue(i)) => {
            let _ = write!(scratch, "{i}");
            "int"
        }
        Some(Value::DoubleValue(d)) => {
            let _ = write!(scratch, "{d:?}");
            "double"
        }
        Some(Value::BytesValue(b)) => {
            base64::engine::general_purpose::STANDARD.encode_string(b, scratch);
            "bytes"
        }
        Some(Value::ArrayValue(_)) => {
            let _ = write!(scratch, "{}", any_value::encode(value));
            "array"
        }
        Some(Value::KvlistValue(_)) => {
            let _ = write!(scratch, "{}", any_value::encode(value));
            "kvlist"
        }
        Some(Value::StringValueStrindex(i)) => {
            let _ = write!(scratch, "{i}");
            "strindex"
        }
    };
    (scratch.as_str(), Some(kind))
}

/// Renders a value as its owned text and, unless it is a string, its type name.
pub fn render(value: Option<&AnyValue>) -> (String, Option<&'static str>) {
    let mut scratch = String::new();
    let (t, kind) = text(value, &mut scratch);
    (t.to_owned(), kind)
}

/// An attribute list rendered once, to be appended to many rows (resource and scope attributes).
#[derive(Default)]
pub struct Rendered(Vec<(String, String, Option<&'static str>)>);

impl Rendered {
    /// Renders every attribute.
    pub fn new(attrs: &[KeyValue]) -> Self {
        Self(
            attrs
                .iter()
                .map(|kv| {
                    let (text, kind) = render(kv.value.as_ref());
                    (kv.key.clone(), text, kind)
                })
                .collect(),
        )
    }

    /// Appends the list as one row of the two map columns.
    pub fn append_to(&self, values: &mut StringMapBuilder, types: &mut StringMapBuilder) {
        for (key, text, kind) in &self.0 {
            values.keys().append_value(key);
            values.values().append_value(text);
            if let Some(kind) = kind {
                types.keys().append_value(key);
                types.values().append_value(kind);
            }
        }
        let _ = values.append(true);
        let _ = types.append(true);
    }
}

/// Appends one attribute list as one row of the two map columns.
pub fn append(values: &mut StringMapBuilder, types: &mut StringMapBuilder, attrs: &[KeyValue]) {
    let mut scratch = String::new();
    for kv in attrs {
        let (text, kind) = text(kv.value.as_ref(), &mut scratch);
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

/// Looks up the first key, among `keys`, present in an attribute list, rendered as text.
pub fn find<'a>(attrs: &'a [KeyValue], keys: &[&str]) -> Option<&'a AnyValue> {
    keys.iter()
        .find_map(|k| attrs.iter().find(|kv| kv.key == *k))
        .and_then(|kv| kv.value.as_ref())
}

/// A value as a string, if it is a string (borrowed) or a number or bool (rendered).
pub fn as_text(value: Option<&AnyValue>) -> Option<Cow<'_, str>> {
    match value?.value.as_ref()? {
        Value::StringValue(s) => Some(Cow::Borrowed(s)),
        Value::IntValue(i) => Some(Cow::Owned(i.to_string())),
        Value::DoubleValue(d) => Some(Cow::Owned(d.to_string())),
        Value::BoolValue(b) => Some(Cow::Owned(b.to_string())),
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
