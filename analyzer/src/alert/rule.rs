//! User rules over SQL: each row of the query is an alert instance; its string columns become
//! labels, its `value` column the value, as a Prometheus rule's series and sample.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type};

use super::config::SqlRuleConfig;
use super::state::{Instance, Labels};
use crate::error::QueryError;
use crate::query::sql::QueryEngine;

/// Fills `{{ name }}` with the label `name` and `{{ value }}` with the value (Prometheus's
/// `{{ $labels.name }}` and `{{ $value }}` work too); unknown names become empty.
///
/// ```
/// # use meridian_analyzer::alert::rule::fill;
/// let labels = [("region".to_owned(), "eu-west-1".to_owned())].into();
/// assert_eq!(fill("{{ region }} at {{ $value }}", &labels, 0.25), "eu-west-1 at 0.25");
/// assert_eq!(fill("{{$labels.region}}", &labels, 0.0), "eu-west-1");
/// ```
pub fn fill(template: &str, labels: &Labels, value: f64) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = rest[start + 2..start + end].trim();
        let name = name.strip_prefix("$labels.").unwrap_or(name);
        if name == "value" || name == "$value" {
            out.push_str(&format_value(value));
        } else if let Some(v) = labels.get(name) {
            out.push_str(v);
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

/// A value as people read it: whole numbers from 100 up, two decimals from 1, four below; no
/// trailing zeros.
///
/// ```
/// # use meridian_analyzer::alert::rule::format_value;
/// assert_eq!(format_value(864.245), "864");
/// assert_eq!(format_value(26.1), "26.1");
/// assert_eq!(format_value(0.04412), "0.0441");
/// ```
pub fn format_value(value: f64) -> String {
    let decimals = match value.abs() {
        v if v >= 100.0 => 0,
        v if v >= 1.0 => 2,
        _ => 4,
    };
    let s = format!("{value:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// Runs the rule's query and turns its rows into instances.
pub async fn evaluate(
    engine: &QueryEngine,
    rule: &SqlRuleConfig,
) -> Result<Vec<Instance>, QueryError> {
    let result = engine.query(&rule.sql).await?;
    let mut instances = Vec::new();
    for batch in &result.batches {
        let schema = batch.schema();
        let mut labels: Vec<(String, arrow::array::ArrayRef)> = Vec::new();
        let mut value = None;
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            if field.name() == "value" {
                value = arrow::compute::cast(column, &DataType::Float64).ok();
            } else if matches!(
                field.data_type(),
                DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::Dictionary(_, _)
            ) {
                if let Ok(text) = arrow::compute::cast(column, &DataType::Utf8) {
                    labels.push((field.name().clone(), text));
                }
            }
        }
        for row in 0..batch.num_rows() {
            let mut set: Labels = rule.labels.clone();
            for (name, column) in &labels {
                let text = column.as_string::<i32>();
                if !text.is_null(row) {
                    set.insert(name.clone(), text.value(row).to_owned());
                }
            }
            set.insert("alertname".into(), rule.name.clone());
            let v = value
                .as_ref()
                .map(|c| c.as_primitive::<Float64Type>())
                .filter(|c| !c.is_null(row))
                .map_or(f64::NAN, |c| c.value(row));
            let annotations: BTreeMap<String, String> = rule
                .annotations
                .iter()
                .map(|(k, t)| (k.clone(), fill(t, &set, v)))
                .collect();
            instances.push(Instance {
                labels: set,
                annotations,
                value: v,
                evidence: serde_json::json!({ "sql": rule.sql }),
            });
        }
    }
    Ok(instances)
}
