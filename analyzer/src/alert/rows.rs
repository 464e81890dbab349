//! The `alerts` table: one row per change of state (pending, firing, resolved).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, RecordBatch, StringBuilder, TimestampNanosecondBuilder,
};
use arrow::error::ArrowError;

use super::state::Transition;

/// The rows for `changes`.
pub fn batch(changes: &[Transition]) -> Result<RecordBatch, ArrowError> {
    let ts = || TimestampNanosecondBuilder::new().with_timezone("UTC");
    let (mut time, mut starts, mut ends) = (ts(), ts(), ts());
    let mut text: Vec<StringBuilder> = (0..8).map(|_| StringBuilder::new()).collect();
    let mut value = Float64Builder::new();
    for t in changes {
        let a = &t.alert;
        let labels = &a.instance.labels;
        time.append_value(t.at_ns);
        text[0].append_value(&a.rule);
        text[1].append_value(a.phase.as_str());
        text[2].append_option(labels.get("region"));
        text[3].append_option(labels.get("service_name"));
        text[4].append_value(serde_json::to_string(labels).unwrap_or_default());
        text[5].append_value(serde_json::to_string(&a.instance.annotations).unwrap_or_default());
        value.append_option(a.instance.value.is_finite().then_some(a.instance.value));
        starts.append_value(a.active_at_ns);
        ends.append_option(a.resolved_at_ns);
        text[6].append_value(&a.fingerprint);
        text[7].append_value(a.instance.evidence.to_string());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(time.finish()),
        Arc::new(text[0].finish()),
        Arc::new(text[1].finish()),
        Arc::new(text[2].finish()),
        Arc::new(text[3].finish()),
        Arc::new(text[4].finish()),
        Arc::new(text[5].finish()),
        Arc::new(value.finish()),
        Arc::new(starts.finish()),
        Arc::new(ends.finish()),
        Arc::new(text[6].finish()),
        Arc::new(text[7].finish()),
    ];
    RecordBatch::try_new(crate::schema::alerts(), columns)
}
