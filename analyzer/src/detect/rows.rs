//! Anomalies as rows of the `anomalies` table.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, RecordBatch, StringBuilder, TimestampNanosecondBuilder,
};
use arrow::error::ArrowError;

use super::live::Anomaly;

/// The `anomalies` table's rows for `anomalies`, found at `detected_at_ns`.
pub fn batch(anomalies: &[Anomaly], detected_at_ns: i64) -> Result<RecordBatch, ArrowError> {
    let n = anomalies.len();
    let ts = || TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC");
    let (mut time, mut detected) = (ts(), ts());
    let mut region = StringBuilder::new();
    let mut service = StringBuilder::new();
    let mut route = StringBuilder::new();
    let mut metric = StringBuilder::new();
    let mut value = Float64Builder::with_capacity(n);
    let mut score = Float64Builder::with_capacity(n);
    let mut expected = Float64Builder::with_capacity(n);
    let mut lower = Float64Builder::with_capacity(n);
    let mut upper = Float64Builder::with_capacity(n);
    let mut severity = StringBuilder::new();
    let mut detector = StringBuilder::new();
    let finite = |v: f64| v.is_finite().then_some(v);
    for a in anomalies {
        time.append_value(a.start_ns);
        detected.append_value(detected_at_ns);
        region.append_value(&a.key.region);
        service.append_value(&a.key.service);
        route.append_value(&a.key.route);
        metric.append_value(a.metric.name());
        value.append_value(a.value);
        score.append_value(a.score);
        expected.append_option(finite(a.expected));
        lower.append_option(finite(a.lower));
        upper.append_option(finite(a.upper));
        severity.append_value(a.severity);
        detector.append_value(a.detector);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(time.finish()),
        Arc::new(detected.finish()),
        Arc::new(region.finish()),
        Arc::new(service.finish()),
        Arc::new(route.finish()),
        Arc::new(metric.finish()),
        Arc::new(value.finish()),
        Arc::new(score.finish()),
        Arc::new(expected.finish()),
        Arc::new(lower.finish()),
        Arc::new(upper.finish()),
        Arc::new(severity.finish()),
        Arc::new(detector.finish()),
    ];
    RecordBatch::try_new(crate::schema::anomalies(), columns)
}
