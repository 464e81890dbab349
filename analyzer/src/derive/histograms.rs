//! Requests from gateway request-duration histograms (OTel semantic conventions, Traefik,
//! Envoy): cumulative points become deltas per stream, keyed by region, service and route, at
//! the point's time. They count every request where spans may be sampled.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{TimestampNanosecondType, UInt64Type};
use serde::{Deserialize, Serialize};

use super::columns::{self, MissingColumn};
use super::key::SeriesKey;

/// A histogram metric that measures gateway request durations (`[[analyzer.derive.histograms]]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistogramSource {
    /// The metric's name; a leading or trailing `*` matches any prefix or suffix.
    pub name: String,
    /// Attribute naming the route; without it, the metric's name is the route.
    #[serde(default)]
    pub route_attribute: Option<String>,
    /// Attribute holding the HTTP status code, so errors can be counted.
    #[serde(default)]
    pub status_attribute: Option<String>,
}

impl HistogramSource {
    /// The defaults: OTel's `http.server.request.duration`, Traefik's service histogram and
    /// Envoy's downstream request time.
    pub fn defaults() -> Vec<HistogramSource> {
        let source = |name: &str, route: Option<&str>, status: Option<&str>| HistogramSource {
            name: name.to_owned(),
            route_attribute: route.map(str::to_owned),
            status_attribute: status.map(str::to_owned),
        };
        vec![
            source(
                "http.server.request.duration",
                Some("http.route"),
                Some("http.response.status_code"),
            ),
            source(
                "traefik_service_request_duration_seconds",
                Some("service"),
                Some("code"),
            ),
            source("*downstream_rq_time", None, None),
        ]
    }

    fn matches(&self, name: &str) -> bool {
        if let Some(suffix) = self.name.strip_prefix('*') {
            name.ends_with(suffix)
        } else if let Some(prefix) = self.name.strip_suffix('*') {
            name.starts_with(prefix)
        } else {
            name == self.name
        }
    }
}

/// Requests counted by one histogram point (a delta).
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramRequests {
    /// Its series.
    pub key: SeriesKey,
    /// The point's time, ns since the epoch.
    pub time_ns: i64,
    /// Requests in the delta.
    pub count: u64,
    /// Whether they failed, if the point carries a status code.
    pub error: Option<bool>,
    /// Upper bucket bounds, ms.
    pub bounds_ms: Vec<f64>,
    /// Bucket counts of the delta.
    pub buckets: Vec<u64>,
}

/// The last cumulative value of each stream, to turn cumulative points into deltas.
#[derive(Debug, Default)]
pub struct Cumulative {
    last: HashMap<u64, (i64, u64, Vec<u64>)>,
}

/// A stream's first cumulative point counts as a delta when its start is at most this old (the
/// gateway or the stream began just now); an older one only sets the baseline, since its
/// counts span a time the current intervals do not cover (an analyzer restarted under
/// long-running gateways).
const FRESH_STREAM_NS: i64 = 60_000_000_000;

impl Cumulative {
    /// The delta since the stream's last point; for its first point, the whole count if the
    /// stream is fresh, else `None` (a baseline). A new start time or a smaller count is a
    /// reset: the point counts from zero.
    fn delta(
        &mut self,
        stream: u64,
        (start_ns, time_ns): (i64, i64),
        count: u64,
        buckets: &[u64],
    ) -> Option<(u64, Vec<u64>)> {
        let previous = self
            .last
            .insert(stream, (start_ns, count, buckets.to_vec()));
        let Some((prev_start, prev_count, prev_buckets)) = previous else {
            return (time_ns - start_ns <= FRESH_STREAM_NS).then(|| (count, buckets.to_vec()));
        };
        if prev_start != start_ns || count < prev_count || prev_buckets.len() != buckets.len() {
            return Some((count, buckets.to_vec()));
        }
        let deltas = buckets
            .iter()
            .zip(&prev_buckets)
            .map(|(now, before)| now.saturating_sub(*before))
            .collect();
        Some((count - prev_count, deltas))
    }

    /// Streams tracked.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether no stream is tracked.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

/// Milliseconds per unit of a duration metric (`s`, `ms`, `us`, `ns`; a name ending in
/// `_seconds` means seconds; otherwise ms, Envoy's unit).
fn ms_per_unit(unit: &str, name: &str) -> f64 {
    match unit {
        "s" => 1e3,
        "ms" => 1.0,
        "us" | "µs" => 1e-3,
        "ns" => 1e-6,
        _ if name.ends_with("_seconds") => 1e3,
        _ => 1.0,
    }
}

/// The requests in a `metrics` batch: histogram points of the `sources`.
pub fn requests(
    batch: &RecordBatch,
    sources: &[HistogramSource],
    cumulative: &mut Cumulative,
) -> Result<Vec<HistogramRequests>, MissingColumn> {
    let name = columns::strings(batch, "name")?;
    let kind = columns::strings(batch, "kind")?;
    let unit = columns::strings(batch, "unit")?;
    let temporality = columns::strings(batch, "temporality")?;
    let region = columns::strings(batch, "region")?;
    let service = columns::strings(batch, "service_name")?;
    let time = columns::primitive::<TimestampNanosecondType>(batch, "time")?;
    let start = columns::primitive::<TimestampNanosecondType>(batch, "start_time")?;
    let count = columns::primitive::<UInt64Type>(batch, "count")?;
    let attributes = columns::maps(batch, "attributes")?;
    let mut out = Vec::new();
    for row in 0..batch.num_rows() {
        if kind.value(row) != "histogram" || count.is_null(row) {
            continue;
        }
        let metric = name.value(row);
        let Some(source) = sources.iter().find(|s| s.matches(metric)) else {
            continue;
        };
        let (Some(bounds), Some(buckets)) = (
            columns::f64_list(batch, "explicit_bounds", row),
            columns::u64_list(batch, "bucket_counts", row),
        ) else {
            continue;
        };
        let service = if service.is_valid(row) {
            service.value(row)
        } else {
            ""
        };
        let delta = if temporality.is_valid(row) && temporality.value(row) == "cumulative" {
            let mut hasher = DefaultHasher::new();
            (region.value(row), service, metric).hash(&mut hasher);
            columns::map_entries(attributes, row).hash(&mut hasher);
            let stream = hasher.finish();
            let span = (start.value(row), time.value(row));
            match cumulative.delta(stream, span, count.value(row), &buckets) {
                Some(delta) => delta,
                None => continue,
            }
        } else {
            (count.value(row), buckets)
        };
        if delta.0 == 0 {
            continue;
        }
        let route = source
            .route_attribute
            .as_deref()
            .and_then(|a| columns::map_get(attributes, row, a))
            .unwrap_or_else(|| metric.to_owned());
        let error = source
            .status_attribute
            .as_deref()
            .and_then(|a| columns::map_get(attributes, row, a))
            .map(|code| code.trim().parse::<u16>().is_ok_and(|c| c >= 500));
        let scale = ms_per_unit(unit.value(row), metric);
        out.push(HistogramRequests {
            key: SeriesKey {
                region: region.value(row).to_owned(),
                service: service.to_owned(),
                route,
            },
            time_ns: time.value(row),
            count: delta.0,
            error,
            bounds_ms: bounds.iter().map(|b| b * scale).collect(),
            buckets: delta.1,
        });
    }
    Ok(out)
}
