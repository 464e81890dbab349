//! Probe results as rows of the `probes` table.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, RecordBatch, StringBuilder,
    TimestampNanosecondBuilder,
};
use arrow::error::ArrowError;

use super::check::Outcome;
use super::config::ProbeConfig;

/// One check's row: the outcome and the vantage point's verdict after it.
pub struct ProbeRow<'a> {
    /// When the check started, unix ns.
    pub time_ns: i64,
    /// The collector's region.
    pub vantage_region: &'a str,
    /// The probe.
    pub probe: &'a ProbeConfig,
    /// What the check found.
    pub outcome: &'a Outcome,
    /// This vantage point's verdict after the check (threshold applied).
    pub healthy: bool,
}

/// The `probes` rows for `rows`.
pub fn batch(rows: &[ProbeRow<'_>]) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut time = TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC");
    let (mut vantage, mut endpoint, mut region) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let (mut service, mut url, mut error) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let (mut ok, mut healthy) = (BooleanBuilder::new(), BooleanBuilder::new());
    let (mut status, mut threshold) = (Int32Builder::new(), Int32Builder::new());
    let (mut connect, mut first_byte, mut interval) = (
        Float64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
    );
    for row in rows {
        time.append_value(row.time_ns);
        vantage.append_value(row.vantage_region);
        endpoint.append_value(&row.probe.name);
        region.append_value(&row.probe.region);
        service.append_option(row.probe.service.as_deref());
        url.append_value(&row.probe.url);
        ok.append_value(row.outcome.ok);
        healthy.append_value(row.healthy);
        status.append_option(row.outcome.status_code.map(i32::from));
        connect.append_option(row.outcome.connect_ms);
        first_byte.append_option(row.outcome.first_byte_ms);
        error.append_option(row.outcome.error.as_deref());
        interval.append_value(row.probe.interval.as_secs_f64());
        threshold.append_value(row.probe.failure_threshold as i32);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(time.finish()),
        Arc::new(vantage.finish()),
        Arc::new(endpoint.finish()),
        Arc::new(region.finish()),
        Arc::new(service.finish()),
        Arc::new(url.finish()),
        Arc::new(ok.finish()),
        Arc::new(healthy.finish()),
        Arc::new(status.finish()),
        Arc::new(connect.finish()),
        Arc::new(first_byte.finish()),
        Arc::new(error.finish()),
        Arc::new(interval.finish()),
        Arc::new(threshold.finish()),
    ];
    RecordBatch::try_new(crate::schema::probes(), columns)
}
