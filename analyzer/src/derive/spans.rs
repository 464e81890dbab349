//! Requests from server spans: one per span of a configured kind, keyed by region, service and
//! route, at the span's end time.

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type, TimestampNanosecondType};

use super::columns::{self, MissingColumn};
use super::key::SeriesKey;

/// One request seen as a span.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanRequest {
    /// Its series.
    pub key: SeriesKey,
    /// When it ended, ns since the epoch.
    pub end_ns: i64,
    /// How long it took, ms.
    pub duration_ms: f64,
    /// HTTP 5xx, or span status error.
    pub error: bool,
}

/// The requests in a `spans` batch: spans whose kind is in `kinds`.
pub fn requests(batch: &RecordBatch, kinds: &[String]) -> Result<Vec<SpanRequest>, MissingColumn> {
    let kind = columns::strings(batch, "kind")?;
    let region = columns::strings(batch, "region")?;
    let service = columns::strings(batch, "service_name")?;
    let route = columns::strings(batch, "http_route")?;
    let name = columns::strings(batch, "name")?;
    let status = columns::strings(batch, "status_code")?;
    let http_status = columns::primitive::<Int32Type>(batch, "http_response_status_code")?;
    let end = columns::primitive::<TimestampNanosecondType>(batch, "end_time")?;
    let duration = columns::primitive::<Int64Type>(batch, "duration_ns")?;
    let mut out = Vec::new();
    for row in 0..batch.num_rows() {
        if !kinds.iter().any(|k| k == kind.value(row)) {
            continue;
        }
        let route = if route.is_valid(row) && !route.value(row).is_empty() {
            route.value(row)
        } else {
            name.value(row)
        };
        let service = if service.is_valid(row) {
            service.value(row)
        } else {
            ""
        };
        let error = status.value(row) == "error"
            || (http_status.is_valid(row) && http_status.value(row) >= 500);
        out.push(SpanRequest {
            key: SeriesKey {
                region: region.value(row).to_owned(),
                service: service.to_owned(),
                route: route.to_owned(),
            },
            end_ns: end.value(row),
            duration_ms: duration.value(row) as f64 / 1e6,
            error,
        });
    }
    Ok(out)
}
