//! Endpoint health from every vantage point's probe results, as Route 53 combines its
//! checkers: an endpoint is healthy while more than `healthy_quorum` (18%) of the vantage
//! points that are still reporting say so (each applied its failure threshold already); a new
//! endpoint is healthy until there is data, and one no vantage point reports on keeps its last
//! state. Every change is a row of the `health` table.

pub mod rows;

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int32Type, TimestampNanosecondType};
use serde::{Deserialize, Serialize};

/// How vantage points are combined (`[analyzer.health]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// An endpoint is healthy while more than this share of reporting vantage points say so
    /// (Route 53: 18%, so a partial network isolation does not mark it down).
    pub healthy_quorum: f64,
    /// A vantage point that has not reported for this many of the probe's intervals no longer
    /// counts (a collector cut off from the analyzer).
    pub stale_after_intervals: f64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            healthy_quorum: 0.18,
            stale_after_intervals: 3.0,
        }
    }
}

/// The newest report of one vantage point on one endpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Report {
    at_ns: i64,
    interval_ns: i64,
    healthy: bool,
    ok: bool,
    status_code: Option<i32>,
    first_byte_ms: Option<f64>,
    error: Option<String>,
}

/// One probed endpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Endpoint {
    /// The region it serves.
    pub region: String,
    /// The service it speaks for; `None` for the whole region.
    pub service: Option<String>,
    /// The combined verdict.
    pub healthy: bool,
    /// Since when (unix ns; 0 for "since it was first seen").
    pub since_ns: i64,
    /// Vantage points saying healthy at the last evaluation.
    pub healthy_vantages: usize,
    /// Vantage points counted at the last evaluation.
    pub vantages: usize,
    /// Why, in a sentence ("probes 3/3 failing: …").
    pub summary: String,
    reports: BTreeMap<String, Report>,
}

/// A change of an endpoint's health.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// When it was decided, unix ns.
    pub time_ns: i64,
    /// The endpoint.
    pub endpoint: String,
    /// Its region.
    pub region: String,
    /// Its service.
    pub service: Option<String>,
    /// The new state.
    pub healthy: bool,
    /// Vantage points saying healthy.
    pub healthy_vantages: usize,
    /// Vantage points counted.
    pub vantages: usize,
    /// The evidence, in a sentence.
    pub reason: String,
}

/// Probe results received from one batch, for metrics.
#[derive(Debug, Default)]
pub struct Received {
    /// (vantage region, ok) of each row.
    pub results: Vec<(String, bool)>,
}

/// The health of every probed endpoint (kept across restarts).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HealthTracker {
    endpoints: BTreeMap<String, Endpoint>,
}

impl HealthTracker {
    /// Takes `probes` rows as stored.
    pub fn observe(&mut self, batches: &[RecordBatch]) -> Received {
        let mut received = Received::default();
        for batch in batches {
            let Some(cols) = Columns::of(batch) else {
                continue;
            };
            for i in 0..batch.num_rows() {
                let vantage = cols.vantage.value(i).to_owned();
                let endpoint = self
                    .endpoints
                    .entry(cols.endpoint.value(i).to_owned())
                    .or_insert_with(|| Endpoint {
                        region: cols.region.value(i).to_owned(),
                        service: (!cols.service.is_null(i))
                            .then(|| cols.service.value(i).to_owned()),
                        healthy: true,
                        since_ns: 0,
                        healthy_vantages: 0,
                        vantages: 0,
                        summary: "no results yet; healthy until there is data".into(),
                        reports: BTreeMap::new(),
                    });
                let at_ns = cols.time.value(i);
                if endpoint
                    .reports
                    .get(&vantage)
                    .is_some_and(|r| r.at_ns > at_ns)
                {
                    continue;
                }
                let ok = cols.ok.value(i);
                received.results.push((vantage.clone(), ok));
                endpoint.reports.insert(
                    vantage,
                    Report {
                        at_ns,
                        interval_ns: (cols.interval.value(i) * 1e9) as i64,
                        healthy: cols.healthy.value(i),
                        ok,
                        status_code: (!cols.status.is_null(i)).then(|| cols.status.value(i)),
                        first_byte_ms: (!cols.first_byte.is_null(i))
                            .then(|| cols.first_byte.value(i)),
                        error: (!cols.error.is_null(i)).then(|| cols.error.value(i).to_owned()),
                    },
                );
            }
        }
        received
    }

    /// Combines the vantage points of every endpoint at `now_ns`; returns the changes.
    ///
    /// ```
    /// use meridian_analyzer::health::{HealthConfig, HealthTracker};
    /// let tracker = HealthTracker::default();
    /// let mut tracker = tracker;
    /// assert!(tracker.evaluate(&HealthConfig::default(), 0).is_empty());
    /// ```
    pub fn evaluate(&mut self, config: &HealthConfig, now_ns: i64) -> Vec<Transition> {
        let mut changes = Vec::new();
        for (name, endpoint) in &mut self.endpoints {
            let fresh: Vec<(&String, &Report)> = endpoint
                .reports
                .iter()
                .filter(|(_, r)| {
                    let stale = (r.interval_ns as f64 * config.stale_after_intervals) as i64;
                    now_ns - r.at_ns <= stale.max(1)
                })
                .collect();
            if fresh.is_empty() {
                // Nobody reports: keep the last verdict (no data is not bad data).
                endpoint.vantages = 0;
                endpoint.healthy_vantages = 0;
                continue;
            }
            let healthy_count = fresh.iter().filter(|(_, r)| r.healthy).count();
            let share = healthy_count as f64 / fresh.len() as f64;
            let healthy = share > config.healthy_quorum;
            endpoint.vantages = fresh.len();
            endpoint.healthy_vantages = healthy_count;
            endpoint.summary = summary(&fresh);
            if healthy != endpoint.healthy {
                endpoint.healthy = healthy;
                endpoint.since_ns = now_ns;
                changes.push(Transition {
                    time_ns: now_ns,
                    endpoint: name.clone(),
                    region: endpoint.region.clone(),
                    service: endpoint.service.clone(),
                    healthy,
                    healthy_vantages: healthy_count,
                    vantages: fresh.len(),
                    reason: endpoint.summary.clone(),
                });
            }
        }
        changes
    }

    /// Every endpoint, by name.
    pub fn endpoints(&self) -> impl Iterator<Item = (&str, &Endpoint)> {
        self.endpoints.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Whether any endpoint is probed at all.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// Whether a collector in `region` reported a probe result within `within_ns` of `now_ns`
    /// (so the region's collector, at least, is alive and delivering).
    pub fn hears_from(&self, region: &str, now_ns: i64, within_ns: i64) -> bool {
        self.endpoints.values().any(|e| {
            e.reports
                .get(region)
                .is_some_and(|r| now_ns - r.at_ns <= within_ns)
        })
    }
}

/// "probes 2/3 failing: us-east-1 status 503; ap-southeast-2 no connection within 4s".
fn summary(fresh: &[(&String, &Report)]) -> String {
    let failing: Vec<String> = fresh
        .iter()
        .filter(|(_, r)| !r.healthy)
        .map(|(v, r)| match &r.error {
            Some(e) => format!("{v} {e}"),
            None => format!("{v} failing"),
        })
        .collect();
    if failing.is_empty() {
        let latency: Vec<f64> = fresh.iter().filter_map(|(_, r)| r.first_byte_ms).collect();
        let worst = latency.iter().copied().fold(f64::NAN, f64::max);
        return if worst.is_finite() {
            format!(
                "probes {}/{} passing, slowest {worst:.0} ms",
                fresh.len(),
                fresh.len()
            )
        } else {
            format!("probes {}/{} passing", fresh.len(), fresh.len())
        };
    }
    let passing_now = fresh.iter().filter(|(_, r)| r.ok).count();
    format!(
        "probes {}/{} failing ({passing_now} passed their last check): {}",
        failing.len(),
        fresh.len(),
        failing.join("; ")
    )
}

/// The columns of a `probes` batch.
struct Columns<'a> {
    time: &'a arrow::array::TimestampNanosecondArray,
    vantage: &'a arrow::array::StringArray,
    endpoint: &'a arrow::array::StringArray,
    region: &'a arrow::array::StringArray,
    service: &'a arrow::array::StringArray,
    ok: &'a arrow::array::BooleanArray,
    healthy: &'a arrow::array::BooleanArray,
    status: &'a arrow::array::Int32Array,
    first_byte: &'a arrow::array::Float64Array,
    error: &'a arrow::array::StringArray,
    interval: &'a arrow::array::Float64Array,
}

impl<'a> Columns<'a> {
    fn of(batch: &'a RecordBatch) -> Option<Self> {
        let col = |name: &str| batch.column_by_name(name);
        Some(Self {
            time: col("time")?.as_primitive_opt::<TimestampNanosecondType>()?,
            vantage: col("vantage_region")?.as_string_opt::<i32>()?,
            endpoint: col("endpoint")?.as_string_opt::<i32>()?,
            region: col("region")?.as_string_opt::<i32>()?,
            service: col("service_name")?.as_string_opt::<i32>()?,
            ok: col("ok")?.as_boolean_opt()?,
            healthy: col("healthy")?.as_boolean_opt()?,
            status: col("status_code")?.as_primitive_opt::<Int32Type>()?,
            first_byte: col("first_byte_ms")?.as_primitive_opt::<Float64Type>()?,
            error: col("error")?.as_string_opt::<i32>()?,
            interval: col("interval_s")?.as_primitive_opt::<Float64Type>()?,
        })
    }
}

#[cfg(test)]
mod tests;
