//! Forecasts as rows of the `forecasts` table.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder, TimestampNanosecondBuilder,
};
use arrow::error::ArrowError;

use super::live::Forecast;

/// The `forecasts` table's rows for `forecasts`.
pub fn batch(forecasts: &[Forecast]) -> Result<RecordBatch, ArrowError> {
    let n = forecasts.len();
    let ts = || TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC");
    let (mut time, mut made_at) = (ts(), ts());
    let mut horizon = Int64Builder::with_capacity(n);
    let mut region = StringBuilder::new();
    let mut service = StringBuilder::new();
    let mut route = StringBuilder::new();
    let mut metric = StringBuilder::new();
    let mut forecast = Float64Builder::with_capacity(n);
    let mut bounds: [Float64Builder; 4] = std::array::from_fn(|_| Float64Builder::with_capacity(n));
    let mut method = StringBuilder::new();
    let mut source = StringBuilder::new();
    for f in forecasts {
        time.append_value(f.target_ns);
        made_at.append_value(f.made_at_ns);
        horizon.append_value(f.horizon_s);
        region.append_value(&f.key.region);
        service.append_value(&f.key.service);
        route.append_value(&f.key.route);
        metric.append_value(f.metric.name());
        forecast.append_value(f.forecast);
        bounds[0].append_option(f.interval_80.map(|i| i.0));
        bounds[1].append_option(f.interval_80.map(|i| i.1));
        bounds[2].append_option(f.interval_95.map(|i| i.0));
        bounds[3].append_option(f.interval_95.map(|i| i.1));
        method.append_value(f.method);
        source.append_value(f.interval_source);
    }
    let [mut l80, mut u80, mut l95, mut u95] = bounds;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(time.finish()),
        Arc::new(made_at.finish()),
        Arc::new(horizon.finish()),
        Arc::new(region.finish()),
        Arc::new(service.finish()),
        Arc::new(route.finish()),
        Arc::new(metric.finish()),
        Arc::new(forecast.finish()),
        Arc::new(l80.finish()),
        Arc::new(u80.finish()),
        Arc::new(l95.finish()),
        Arc::new(u95.finish()),
        Arc::new(method.finish()),
        Arc::new(source.finish()),
    ];
    RecordBatch::try_new(crate::schema::forecasts(), columns)
}
