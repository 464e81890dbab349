//! What the routing engine judges a region by, per service: the probes of its endpoints,
//! sustained anomalies of its error ratio or p99 latency, and whether its traffic died while
//! its peers' did not. Counted per closed RED interval, so "sustained" means N consecutive
//! intervals.
//!
//! A failover must not rest on noise, nor on a detector's refractory period (which damps the
//! scores of an incident's later points): an interval counts as bad when its errors are
//! significantly above the region's usual ratio — judged by their counts, with the Wilson
//! interval's lower bound at z = 3.7 (one-sided p ≈ 10⁻⁴), never by the ratio of a small
//! interval — or its p99 is `latency_factor` times its usual one. A run of bad intervals fails
//! the region over once it is `sustained_intervals` long and the detectors raised a critical
//! anomaly on it; without a critical one, the region is only degraded.

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
    /// Consecutive bad intervals (errors significantly high, or p99 high).
    anomalous: u32,
    /// Consecutive intervals with next to no traffic while peers had theirs.
    dead: u32,
    /// Usual request rate (slow moving average, outside dead intervals).
    baseline_rate: f64,
    /// The newest interval's rate.
    last_rate: f64,
    /// The newest anomaly: (metric, value, expected, detector, severity).
    last_anomaly: Option<(String, f64, f64, String, String)>,
    /// Whether a critical anomaly was raised during the current run of bad intervals.
    critical_in_run: bool,
    /// Decayed sums of errors and requests outside bad intervals: the usual error ratio.
    errors: f64,
    requests: f64,
    /// Usual p99 (ms), outside bad intervals.
    baseline_p99: f64,
    /// Healthy intervals seen (the baselines are trusted after `WARMUP`).
    seen: u32,
    /// The newest bad interval's figures: (error ratio, usual ratio, p99, usual p99).
    last_bad: Option<(f64, f64, f64, f64)>,
}

/// The signals of every (service, region), kept across restarts.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Signals {
    #[serde(with = "crate::pairs")]
    runs: BTreeMap<(String, String), Runs>,
    /// Regions seen per service.
    regions: BTreeMap<String, BTreeSet<String>>,
}

/// Weight of the newest interval in the usual rate and p99.
const BASELINE_ALPHA: f64 = 1.0 / 60.0;
/// Decay of the error counts per interval (about an hour of 10 s intervals).
const COUNT_DECAY: f64 = 1.0 - 1.0 / 360.0;
/// Healthy intervals before the baselines are trusted.
const WARMUP: u32 = 30;
/// z of the Wilson bound an error ratio must clear (one-sided p ≈ 10⁻⁴).
const ERROR_Z: f64 = 3.7;

/// Lower bound of the Wilson score interval of `k` successes in `n` trials at `z`.
///
/// ```
/// # use meridian_analyzer::recommend::signals::wilson_lower;
/// assert!(wilson_lower(5, 113, 3.7) < 0.01, "5 of 113 is weak evidence of a 1% ratio");
/// assert!(wilson_lower(30, 120, 3.7) > 0.1, "30 of 120 is strong evidence of a 10% one");
/// ```
pub fn wilson_lower(k: u64, n: u64, z: f64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - spread) / (1.0 + z2 / n)).max(0.0)
}

/// One interval of one (service, region), summed over its routes.
#[derive(Default)]
struct Interval {
    rate: f64,
    requests: u64,
    errors: u64,
    /// Request-weighted p99 over routes with enough requests: (sum of p99 × n, n).
    p99: (f64, f64),
}

impl Signals {
    /// Counts the intervals closed in `points` with the `anomalies` found in them.
    pub fn update(&mut self, config: &RoutingConfig, points: &[RedPoint], anomalies: &[Anomaly]) {
        let mut intervals: BTreeMap<i64, BTreeMap<(String, String), Interval>> = BTreeMap::new();
        for p in points {
            self.regions
                .entry(p.key.service.clone())
                .or_default()
                .insert(p.key.region.clone());
            let i = intervals
                .entry(p.start_ns)
                .or_default()
                .entry((p.key.service.clone(), p.key.region.clone()))
                .or_default();
            i.rate += p.red.count as f64 / p.interval_s.max(1e-9);
            i.requests += p.red.count;
            i.errors += p.red.errors;
            if let Some([_, _, p99]) = p.red.latency_ms.filter(|_| p.red.count >= 10) {
                i.p99.0 += p99 * p.red.count as f64;
                i.p99.1 += p.red.count as f64;
            }
        }
        let empty = Interval::default();
        for (start, figures) in intervals {
            let services: BTreeSet<&String> = figures.keys().map(|(s, _)| s).collect();
            for service in services {
                let Some(regions) = self.regions.get(service) else {
                    continue;
                };
                // A region missing from an interval its peers closed had no traffic in it.
                let of = |region: &String| {
                    figures
                        .get(&(service.clone(), region.clone()))
                        .unwrap_or(&empty)
                };
                let ratios: Vec<(String, f64, f64)> = regions
                    .iter()
                    .map(|r| {
                        let base = self
                            .runs
                            .get(&(service.clone(), r.clone()))
                            .map_or(0.0, |x| x.baseline_rate);
                        (r.clone(), of(r).rate, base)
                    })
                    .collect();
                for (region, rate, base) in &ratios {
                    let figures = of(region);
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
                    let usual_ratio = (runs.errors + 1.0) / (runs.requests + 2.0);
                    let ratio = figures.errors as f64 / (figures.requests.max(1)) as f64;
                    let bad_errors = runs.seen >= WARMUP
                        && figures.errors >= 3
                        && wilson_lower(figures.errors, figures.requests, ERROR_Z)
                            > 2.0 * usual_ratio;
                    let p99 = (figures.p99.1 > 0.0).then(|| figures.p99.0 / figures.p99.1);
                    let bad_latency = runs.seen >= WARMUP
                        && p99.is_some_and(|v| {
                            runs.baseline_p99 > 0.0 && v > config.latency_factor * runs.baseline_p99
                        });
                    let bad = bad_errors || bad_latency;
                    if bad {
                        runs.anomalous += 1;
                        runs.last_bad = Some((
                            ratio,
                            usual_ratio,
                            p99.unwrap_or(f64::NAN),
                            runs.baseline_p99,
                        ));
                    } else {
                        runs.anomalous = 0;
                        runs.critical_in_run = false;
                        runs.seen = runs.seen.saturating_add(1);
                        runs.errors = runs.errors * COUNT_DECAY + figures.errors as f64;
                        runs.requests = runs.requests * COUNT_DECAY + figures.requests as f64;
                        if let Some(v) = p99 {
                            runs.baseline_p99 = if runs.baseline_p99 == 0.0 {
                                v
                            } else {
                                runs.baseline_p99 + BASELINE_ALPHA * (v - runs.baseline_p99)
                            };
                        }
                    }
                    if bad && hits.iter().any(|a| a.severity == "critical") {
                        runs.critical_in_run = true;
                    }
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
                reason: format!(
                    "{region} {service}: endpoint {name} unhealthy, {}",
                    e.summary
                ),
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
            runs.last_anomaly
                .as_ref()
                .map(|(metric, value, expected, detector, severity)| {
                    serde_json::json!({
                        "metric": metric, "value": value, "expected": expected,
                        "detector": detector, "severity": severity,
                    })
                })
        };
        let describe = |intervals: u32| {
            let mut parts = Vec::new();
            if let Some((ratio, usual, p99, usual_p99)) = runs.last_bad {
                if ratio > 2.0 * usual {
                    parts.push(format!(
                        "error ratio {} vs {} usual",
                        amount("error_ratio", ratio),
                        amount("error_ratio", usual)
                    ));
                }
                if p99.is_finite() && p99 > config.latency_factor * usual_p99 {
                    parts.push(format!("p99 {p99:.0} ms vs {usual_p99:.0} expected"));
                }
            }
            let detected = match &runs.last_anomaly {
                Some((metric, _, _, detector, severity)) => {
                    format!(", {severity} {} anomaly by {detector}", label(metric))
                }
                None => String::new(),
            };
            format!(
                "{region} {service}: {} for {intervals} intervals{detected}",
                if parts.is_empty() {
                    "anomalous".to_owned()
                } else {
                    parts.join(", ")
                }
            )
        };
        if runs.critical_in_run && runs.anomalous >= n {
            return Condition::Failed(Finding {
                reason: describe(runs.anomalous),
                evidence: serde_json::json!({
                    "anomaly": anomaly_evidence(), "intervals": runs.anomalous, "figures": runs.last_bad.map(|(r, u, p, up)| serde_json::json!({
                        "error_ratio": r, "usual_error_ratio": u, "latency_p99_ms": p, "usual_latency_p99_ms": up,
                    })),
                }),
                from_probes: false,
            });
        }
        let heard =
            health.is_empty() || health.hears_from(region, now_ns, config.heard_within_ns());
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
