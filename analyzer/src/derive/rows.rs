//! RED points as rows of the `red` table.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder, TimestampNanosecondBuilder,
};
use arrow::error::ArrowError;

use super::metric::Metric;
use super::red::RedPoint;

/// The `red` table's rows for `points`.
pub fn batch(points: &[RedPoint]) -> Result<RecordBatch, ArrowError> {
    let n = points.len();
    let mut time = TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut region = StringBuilder::new();
    let mut service = StringBuilder::new();
    let mut route = StringBuilder::new();
    let mut interval = Float64Builder::with_capacity(n);
    let mut count = Int64Builder::with_capacity(n);
    let mut rate = Float64Builder::with_capacity(n);
    let mut errors = Int64Builder::with_capacity(n);
    let mut ratio = Float64Builder::with_capacity(n);
    let mut p50 = Float64Builder::with_capacity(n);
    let mut p90 = Float64Builder::with_capacity(n);
    let mut p99 = Float64Builder::with_capacity(n);
    let mut count_source = StringBuilder::new();
    let mut latency_source = StringBuilder::new();
    for p in points {
        time.append_value(p.start_ns);
        region.append_value(&p.key.region);
        service.append_value(&p.key.service);
        route.append_value(&p.key.route);
        interval.append_value(p.interval_s);
        count.append_value(p.red.count as i64);
        rate.append_value(Metric::RequestRate.value(p));
        errors.append_value(p.red.errors as i64);
        let error_ratio = Metric::ErrorRatio.value(p);
        ratio.append_option(error_ratio.is_finite().then_some(error_ratio));
        let latency = p.red.latency_ms;
        p50.append_option(latency.map(|l| l[0]));
        p90.append_option(latency.map(|l| l[1]));
        p99.append_option(latency.map(|l| l[2]));
        count_source.append_value(p.red.count_source);
        latency_source.append_option(p.red.latency_source);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(time.finish()),
        Arc::new(region.finish()),
        Arc::new(service.finish()),
        Arc::new(route.finish()),
        Arc::new(interval.finish()),
        Arc::new(count.finish()),
        Arc::new(rate.finish()),
        Arc::new(errors.finish()),
        Arc::new(ratio.finish()),
        Arc::new(p50.finish()),
        Arc::new(p90.finish()),
        Arc::new(p99.finish()),
        Arc::new(count_source.finish()),
        Arc::new(latency_source.finish()),
    ];
    RecordBatch::try_new(crate::schema::red(), columns)
}
