//! What the routing engine judges a region by, per service: the probes of its endpoints,
//! sustained anomalies of its error ratio or p99 latency, and whether its traffic died while
//! its peers' did not. Counted per closed RED interval, so "sustained" means N consecutive
//! intervals.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::routing::RoutingConfig;
use crate::derive::{Metric, RedPoint};
use crate::detect::Anomaly;
use crate::health::HealthTracker;

/// The service name of region-wide routing (probes without a service).
pub const ALL_SERVICES: &str = "*";

/// How a region looks for one service.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    /// Nothing wrong.
    Good,
    /// Worse than normal, not failed: a partial shift.
    Degraded(Finding),
    /// Failed: fail over.
    Failed(Finding),
}

/// Why a region is degraded or failed.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// One sentence.
    pub reason: String,
    /// The evidence, as JSON.
    pub evidence: serde_json::Value,
    /// Whether probes found it (else anomalies or traffic): probes are never fleet-wide noise.
    pub from_probes: bool,
}

/// The running counts of one (service, region).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Runs {
    /// Consecutive intervals with a critical error-ratio or p99 anomaly.
    critical: u32,
    /// Consecutive intervals with any such anomaly.
    anomalous: u32,
    /// Consecutive intervals with next to no traffic while peers had theirs.
    dead: u32,
    /// Usual request rate (slow moving average, outside dead intervals).
    baseline_rate: f64,
    /// The newest interval's rate.
    last_rate: f64,
    /// The newest anomaly: (metric, value, expected, detector, severity).
    last_anomaly: Option<(String, f64, f64, String, String)>,
}

/// The signals of every (service, region), kept across restarts.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Signals {
    #[serde(with = "crate::pairs")]
    runs: BTreeMap<(String, String), Runs>,
    /// Regions seen per service.
    regions: BTreeMap<String, BTreeSet<String>>,
}

/// Weight of the newest interval in the usual rate.
const BASELINE_ALPHA: f64 = 1.0 / 60.0;

impl Signals {
    /// Counts the intervals closed in `points` with the `anomalies` found in them.
    pub fn update(&mut self, config: &RoutingConfig, points: &[RedPoint], anomalies: &[Anomaly]) {
        let mut intervals: BTreeMap<i64, BTreeMap<(String, String), f64>> = BTreeMap::new();
        for p in points {
            self.regions
                .entry(p.key.service.clone())
                .or_default()
                .insert(p.key.region.clone());
            *intervals
                .entry(p.start_ns)
                .or_default()
                .entry((p.key.service.clone(), p.key.region.clone()))
                .or_default() += p.red.count as f64 / p.interval_s.max(1e-9);
        }
        for (start, rates) in intervals {
            let services: BTreeSet<&String> = rates.keys().map(|(s, _)| s).collect();
            for service in services {
                let Some(regions) = self.regions.get(service) else {
                    continue;
                };
                // A region missing from an interval its peers closed had no traffic in it.
                let rate_of = |region: &String| {
                    rates
                        .get(&(service.clone(), region.clone()))
                        .copied()
                        .unwrap_or(0.0)
                };
                let ratios: Vec<(String, f64, f64)> = regions
                    .iter()
                    .map(|r| {
                        let base = self
                            .runs
                            .get(&(service.clone(), r.clone()))
                            .map_or(0.0, |x| x.baseline_rate);
                        (r.clone(), rate_of(r), base)
                    })
                    .collect();
                for (region, rate, base) in &ratios {
                    let peers: Vec<f64> = ratios
                        .iter()
                        .filter(|(r, _, b)| r != region && *b > 0.0)
                        .map(|(_, rate, b)| rate / b)
                        .collect();
                    let peers_normal = !peers.is_empty() && median(peers) >= 0.5;
                    let dead = *base >= config.min_baseline_rate
                        && rate / base < config.dead_traffic_ratio
                        && peers_normal;
                    let hits: Vec<&Anomaly> = anomalies
                        .iter()
                        .filter(|a| {
                            a.start_ns == start
                                && &a.key.service == service
                                && &a.key.region == region
                                && matches!(a.metric, Metric::ErrorRatio | Metric::LatencyP99Ms)
                        })
                        .collect();
                    let runs = self
                        .runs
                        .entry((service.clone(), region.clone()))
                        .or_default();
                    runs.last_rate = *rate;
                    runs.dead = if dead { runs.dead + 1 } else { 0 };
                    if !dead {
                        runs.baseline_rate = if runs.baseline_rate == 0.0 {
                            *rate
                        } else {
                            runs.baseline_rate + BASELINE_ALPHA * (rate - runs.baseline_rate)
                        };
                    }
                    let critical = hits.iter().any(|a| a.severity == "critical");
                    runs.critical = if critical { runs.critical + 1 } else { 0 };
                    runs.anomalous = if hits.is_empty() { 0 } else { runs.anomalous + 1 };
                    if let Some(worst) = hits.iter().max_by(|a, b| a.score.total_cmp(&b.score)) {
                        runs.last_anomaly = Some((
                            worst.metric.name().to_owned(),
                            worst.value,
                            worst.expected,
                            worst.detector.to_owned(),
                            worst.severity.to_owned(),
                        ));
                    }
                }
            }
        }
    }

    /// Services with RED series, each with its regions.
    pub fn services(&self) -> &BTreeMap<String, BTreeSet<String>> {
        &self.regions
    }

    /// How `region` looks for `service` now: probes first (any endpoint of the region for the
    /// service, or for the whole region, that is unhealthy), then sustained anomalies, then
    /// dead traffic — the latter only while the region's collector is heard from (no data is
    /// not bad data), or when no probes run at all.
    pub fn condition(
        &self,
        config: &RoutingConfig,
        health: &HealthTracker,
        service: &str,
        region: &str,
        now_ns: i64,
    ) -> Condition {
        let failing: Vec<(&str, &crate::health::Endpoint)> = health
            .endpoints()
            .filter(|(_, e)| {
                e.region == region
                    && !e.healthy
                    && match &e.service {
                        None => true,
                        Some(s) => s == service,
                    }
            })
            .collect();
        if let Some((name, e)) = failing.first() {
            return Condition::Failed(Finding {
                reason: format!("{region} {service}: endpoint {name} unhealthy, {}", e.summary),
                evidence: serde_json::json!({
                    "probes": failing.iter().map(|(n, e)| serde_json::json!({
                        "endpoint": n,
                        "healthy_vantages": e.healthy_vantages,
                        "vantages": e.vantages,
                        "since_ns": e.since_ns,
                        "summary": e.summary,
                    })).collect::<Vec<_>>(),
                }),
                from_probes: true,
            });
        }
        if service == ALL_SERVICES {
            return Condition::Good;
        }
        let Some(runs) = self.runs.get(&(service.to_owned(), region.to_owned())) else {
            return Condition::Good;
        };
        let n = config.sustained_intervals.max(1);
        let anomaly_evidence = || {
            runs.last_anomaly.as_ref().map(|(metric, value, expected, detector, severity)| {
                serde_json::json!({
                    "metric": metric, "value": value, "expected": expected,
                    "detector": detector, "severity": severity,
                })
            })
        };
        let describe = |intervals: u32| match &runs.last_anomaly {
            Some((metric, value, expected, _, severity)) => format!(
                "{region} {service}: {} {} vs {} expected, {severity} for {intervals} intervals",
                label(metric),
                amount(metric, *value),
                amount(metric, *expected),
            ),
            None => format!("{region} {service}: anomalous for {intervals} intervals"),
        };
        if runs.critical >= n {
            return Condition::Failed(Finding {
                reason: describe(runs.critical),
                evidence: serde_json::json!({ "anomaly": anomaly_evidence(), "intervals": runs.critical }),
                from_probes: false,
            });
        }
        let heard = health.is_empty() || health.hears_from(region, now_ns, config.heard_within_ns());
        if runs.dead >= n && heard {
            return Condition::Failed(Finding {
                reason: format!(
                    "{region} {service}: traffic {:.1} req/s vs {:.1} usual for {} intervals while its peers are normal",
                    runs.last_rate, runs.baseline_rate, runs.dead
                ),
                evidence: serde_json::json!({
                    "request_rate": runs.last_rate, "usual": runs.baseline_rate, "intervals": runs.dead,
                }),
                from_probes: false,
            });
        }
        if runs.anomalous >= n {
            return Condition::Degraded(Finding {
                reason: describe(runs.anomalous),
                evidence: serde_json::json!({ "anomaly": anomaly_evidence(), "intervals": runs.anomalous }),
                from_probes: false,
            });
        }
        Condition::Good
    }
}

/// "p99", "error ratio".
fn label(metric: &str) -> &str {
    match metric {
        "error_ratio" => "error ratio",
        "latency_p99_ms" => "p99",
        m => m,
    }
}

/// "870 ms", "4.4%", "12.0 req/s".
fn amount(metric: &str, value: f64) -> String {
    match metric {
        "error_ratio" => format!("{:.1}%", value * 100.0),
        "request_rate" => format!("{value:.1} req/s"),
        _ => format!("{value:.0} ms"),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
