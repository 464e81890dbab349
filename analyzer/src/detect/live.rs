//! Live detection on the RED series: per series and metric, the [`SeriesDetector`] (the same
//! code as `meridian detect`) and BOCPD [`Changepoints`] on the robust z; per service, route and
//! metric, the regions against each other ([`peers`](super::peers)). Points scoring at least
//! `min_score` become rows of the `anomalies` table.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::changepoint::Changepoints;
use super::peers;
use super::robust::RobustDeviation;
use super::{SeriesConfig, SeriesDetector};
use crate::derive::{Metric, RedPoint, SeriesKey};
use crate::recommend::signals::wilson_lower;

/// Settings of live detection on the RED series (`[analyzer.detect]`), with the streaming
/// detector's own settings in `series` (`[analyzer.detect.series]`, shared with `meridian detect`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Watch the RED series.
    pub enabled: bool,
    /// The figures watched.
    pub metrics: Vec<Metric>,
    /// A point scoring at least this is an anomaly (a row in `anomalies`).
    pub min_score: f64,
    /// An anomaly scoring at least this is `critical`; below, `warning`...
    pub critical_score: f64,
    /// ...once the series has scored that high in this many consecutive intervals (one
    /// interval is never enough for `critical`).
    pub critical_after: u32,
    /// z of the Wilson bound a high error ratio must clear against the series' usual ratio
    /// (judged by the counts, not the ratio); 0 turns the test off.
    pub error_ratio_z: f64,
    /// A request-rate change that at least this share of a route's regions share at once is
    /// load, not a regional fault, and is not reported; 0 turns the rule off.
    pub fleet_share: f64,
    /// Half-width of the expected band, in spreads.
    pub band_spreads: f64,
    /// Points the robust z (for changepoints and peers) is taken over.
    pub scale_window: usize,
    /// Expected points between changepoints (BOCPD's hazard); 0 turns changepoints off.
    pub changepoint_hazard: f64,
    /// Points a segment must have lasted before a change from it is reported.
    pub changepoint_min_run: usize,
    /// MAD units beyond which a region is unlike its peers; 0 turns peers off.
    pub peer_threshold: f64,
    /// Recent points compared across regions.
    pub peer_window: usize,
    /// Fewest requests in an interval for its latency or error ratio to be judged (a p99 or
    /// a ratio of a handful of requests is noise).
    pub min_requests: u64,
    /// Fewest failed requests in an interval for a high error ratio to be an anomaly.
    pub min_errors: u64,
    /// The streaming detector run on each series (`[analyzer.detect.series]`).
    pub series: SeriesConfig,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            metrics: vec![
                Metric::RequestRate,
                Metric::ErrorRatio,
                Metric::LatencyP99Ms,
            ],
            min_score: 0.4,
            critical_score: 0.8,
            critical_after: 2,
            error_ratio_z: 3.7,
            fleet_share: 0.6,
            band_spreads: 3.0,
            scale_window: 360,
            changepoint_hazard: 250.0,
            changepoint_min_run: 30,
            peer_threshold: 5.0,
            peer_window: 30,
            min_requests: 10,
            min_errors: 3,
            series: SeriesConfig::default(),
        }
    }
}

/// One anomalous point.
#[derive(Clone, Debug, PartialEq)]
pub struct Anomaly {
    /// Start of the interval, ns.
    pub start_ns: i64,
    /// The series.
    pub key: SeriesKey,
    /// The figure.
    pub metric: Metric,
    /// Its value.
    pub value: f64,
    /// Anomaly score in [0, 1].
    pub score: f64,
    /// The value expected.
    pub expected: f64,
    /// The expected band.
    pub lower: f64,
    /// The expected band.
    pub upper: f64,
    /// `warning` or `critical`.
    pub severity: &'static str,
    /// Which detector fired (`level`, `jump`, …, `changepoint`, `peers`).
    pub detector: &'static str,
}

/// Whether `point` has enough requests for `metric` to be judged: rates always; latencies
/// with `min_requests`; error ratios with `min_requests` and `min_errors` failed ones.
fn judged(config: &DetectConfig, metric: Metric, point: &RedPoint) -> bool {
    let red = &point.red;
    match metric {
        Metric::RequestRate => true,
        Metric::ErrorRatio => red.count >= config.min_requests && red.errors >= config.min_errors,
        Metric::LatencyP50Ms | Metric::LatencyP90Ms | Metric::LatencyP99Ms => {
            red.count >= config.min_requests
        }
    }
}

/// Robust z of the request rate per (service, route, interval start), by region.
type RateMoves = BTreeMap<(String, String, i64), Vec<(String, f64)>>;

/// Whether `a` is a request-rate change most of its route's regions share in its interval
/// (moving the same way by at least 2 robust z): fleet-wide load, not a regional fault.
fn fleet_wide(config: &DetectConfig, moves: &RateMoves, a: &Anomaly) -> bool {
    if a.metric != Metric::RequestRate {
        return false;
    }
    let Some(regions) = moves.get(&(a.key.service.clone(), a.key.route.clone(), a.start_ns)) else {
        return false;
    };
    let up = a.value >= a.expected;
    let along = regions
        .iter()
        .filter(|(_, z)| if up { *z >= 2.0 } else { *z <= -2.0 })
        .count();
    regions.len() >= 2 && along >= 2 && along as f64 >= config.fleet_share * regions.len() as f64
}

/// Standardised values kept per series (at least `peer_window`), to replay changepoints after
/// a restart.
const REPLAY: usize = 240;

/// The state of one series and metric.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Watched {
    detector: SeriesDetector,
    scale: RobustDeviation,
    /// Recent (interval start, signed robust z), newest last.
    zs: VecDeque<(i64, f64)>,
    /// The newest value.
    last: f64,
    /// Whether the newest value had enough requests to be judged.
    #[serde(default)]
    last_judged: bool,
    /// Consecutive intervals beyond the band (or scoring critical).
    hot: u32,
    /// The strongest score of that run.
    peak: f64,
    /// Decayed sums of failed and all requests: the usual error ratio.
    errors: f64,
    requests: f64,
    /// Rebuilt from `zs` after a restart (BOCPD's state does not serialise).
    #[serde(skip)]
    changepoints: Option<Changepoints>,
}

/// Live detection state for every RED series (kept across restarts).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LiveDetector {
    #[serde(with = "crate::pairs")]
    series: BTreeMap<(SeriesKey, Metric), Watched>,
    /// Per (service, route, metric): intervals already compared across regions.
    #[serde(with = "crate::pairs")]
    peers_done: BTreeMap<(String, String, Metric), i64>,
}

impl LiveDetector {
    /// Series watched.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether no series is watched.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Scores closed RED points (oldest first); returns the anomalies among them.
    pub fn update(&mut self, config: &DetectConfig, points: &[RedPoint]) -> Vec<Anomaly> {
        let mut found = Vec::new();
        let mut touched = Vec::new();
        // Robust z of the request rate per (service, route, interval), by region.
        let mut rate_moves = RateMoves::new();
        for point in points {
            for &metric in &config.metrics {
                let value = metric.value(point);
                let judged = judged(config, metric, point);
                let watched = self
                    .series
                    .entry((point.key.clone(), metric))
                    .or_insert_with(|| Watched {
                        detector: SeriesDetector::new(&config.series),
                        scale: RobustDeviation::new(config.scale_window),
                        zs: VecDeque::new(),
                        last: f64::NAN,
                        last_judged: false,
                        hot: 0,
                        peak: 0.0,
                        errors: 0.0,
                        requests: 0.0,
                        changepoints: None,
                    });
                let time_s = point.start_ns as f64 / 1e9;
                let verdict = watched.detector.update(time_s, value);
                let d = watched.scale.update(value);
                // A flat window (error ratios that are mostly zero) gives no usable z.
                let z = if value.is_finite() && d.spread > 0.0 && !d.flat {
                    (value - d.expected) / d.spread
                } else {
                    f64::NAN
                };
                watched.zs.push_back((point.start_ns, z));
                watched.last = value;
                watched.last_judged = judged;
                if watched.zs.len() > REPLAY.max(config.peer_window) {
                    watched.zs.pop_front();
                }
                // Error ratios are judged by their counts: the interval's errors must be
                // significantly above the series' usual ratio, not merely a high ratio of few.
                let significant = metric != Metric::ErrorRatio
                    || config.error_ratio_z <= 0.0
                    || wilson_lower(point.red.errors, point.red.count, config.error_ratio_z)
                        > (watched.errors + 1.0) / (watched.requests + 2.0);
                if metric == Metric::ErrorRatio {
                    let decay = 1.0 - 1.0 / config.scale_window.max(1) as f64;
                    watched.errors = watched.errors * decay + point.red.errors as f64;
                    watched.requests = watched.requests * decay + point.red.count as f64;
                }
                // A run of intervals beyond the band (the detector's refractory period damps the
                // scores after the first, the deviation stays): critical once it is long enough
                // and its strongest score was critical.
                let beyond = value.is_finite()
                    && metric.worse(value, verdict.expected)
                    && (value - verdict.expected).abs() > config.band_spreads * verdict.spread;
                if judged && significant && (verdict.score >= config.critical_score || beyond) {
                    watched.hot += 1;
                    watched.peak = watched.peak.max(verdict.score);
                } else {
                    watched.hot = 0;
                    watched.peak = 0.0;
                }
                let sustained = watched.hot >= config.critical_after.max(1)
                    && watched.peak >= config.critical_score;
                if metric == Metric::RequestRate && z.is_finite() {
                    rate_moves
                        .entry((
                            point.key.service.clone(),
                            point.key.route.clone(),
                            point.start_ns,
                        ))
                        .or_default()
                        .push((point.key.region.clone(), z));
                }
                let mut anomaly = |score: f64, expected: f64, spread: f64, detector| {
                    if judged
                        && significant
                        && value.is_finite()
                        && score >= config.min_score
                        && metric.worse(value, expected)
                    {
                        found.push(Anomaly {
                            start_ns: point.start_ns,
                            key: point.key.clone(),
                            metric,
                            value,
                            score,
                            expected,
                            lower: expected - config.band_spreads * spread,
                            upper: expected + config.band_spreads * spread,
                            severity: if sustained { "critical" } else { "warning" },
                            detector,
                        });
                    }
                };
                anomaly(
                    verdict.score,
                    verdict.expected,
                    verdict.spread,
                    verdict.detector.name(),
                );
                if config.changepoint_hazard > 0.0 {
                    let cp = watched.changepoints.get_or_insert_with(|| {
                        // After a restart: rebuild from the recent values, minus this one.
                        let mut cp = Changepoints::new(
                            config.changepoint_hazard,
                            config.changepoint_min_run,
                        );
                        let n = watched.zs.len().saturating_sub(1);
                        for (_, z) in watched.zs.iter().take(n) {
                            cp.update(*z);
                        }
                        cp
                    });
                    if let Some(change) = cp.update(z).filter(|_| judged) {
                        anomaly(change.probability, d.expected, d.spread, "changepoint");
                    }
                }
                touched.push((point.key.service.clone(), point.key.route.clone(), metric));
            }
        }
        if config.fleet_share > 0.0 {
            found.retain(|a| !fleet_wide(config, &rate_moves, a));
        }
        if config.peer_threshold > 0.0 {
            touched.sort();
            touched.dedup();
            for group in touched {
                found.extend(self.compare_regions(config, group));
            }
        }
        found
    }

    /// Compares the regions of one service, route and metric at the newest interval all of
    /// them have closed, once per interval.
    fn compare_regions(
        &mut self,
        config: &DetectConfig,
        (service, route, metric): (String, String, Metric),
    ) -> Vec<Anomaly> {
        let members: Vec<(&SeriesKey, &Watched)> = self
            .series
            .iter()
            .filter(|((k, m), _)| *m == metric && k.service == service && k.route == route)
            .map(|((k, _), w)| (k, w))
            .collect();
        let newest = members
            .iter()
            .filter_map(|(_, w)| w.zs.back().map(|(t, _)| *t))
            .max();
        let Some(newest) = newest else {
            return Vec::new();
        };
        // Regions that stopped reporting do not hold the comparison back.
        let recent = |w: &Watched| w.zs.back().is_some_and(|(t, _)| newest - t <= 0);
        let live: Vec<&(&SeriesKey, &Watched)> =
            members.iter().filter(|(_, w)| recent(w)).collect();
        let key = (service, route, metric);
        if live.len() < 3 || self.peers_done.get(&key).is_some_and(|t| *t >= newest) {
            return Vec::new();
        }
        let rows: Vec<Vec<f64>> = live
            .iter()
            .map(|(_, w)| {
                let n = w.zs.len();
                w.zs.iter()
                    .skip(n.saturating_sub(config.peer_window))
                    .map(|(_, z)| *z)
                    .collect()
            })
            .collect();
        let width = rows.iter().map(Vec::len).min().unwrap_or(0);
        let rows: Vec<Vec<f64>> = rows
            .into_iter()
            .map(|r| r[r.len() - width..].to_vec())
            .collect();
        let mut found = Vec::new();
        for outlier in peers::outliers(&rows, config.peer_threshold) {
            let (series, watched) = live[outlier.index];
            let value = watched.last;
            // The peers' typical value: the median of the other regions' values.
            let mut others: Vec<f64> = live
                .iter()
                .filter(|(k, _)| k != series)
                .map(|(_, w)| w.last)
                .filter(|v| v.is_finite())
                .collect();
            others.sort_by(f64::total_cmp);
            let expected = others.get(others.len() / 2).copied().unwrap_or(f64::NAN);
            let (lo, hi) = (
                others.first().copied().unwrap_or(f64::NAN),
                others.last().copied().unwrap_or(f64::NAN),
            );
            let s = outlier.mad_score / config.peer_threshold;
            let score = s * s / (1.0 + s * s);
            if watched.last_judged
                && value.is_finite()
                && score >= config.min_score
                && metric.worse(value, expected)
            {
                found.push(Anomaly {
                    start_ns: newest,
                    key: (*series).clone(),
                    metric,
                    value,
                    score,
                    expected,
                    lower: lo,
                    upper: hi,
                    severity: if score >= config.critical_score
                        && watched.hot >= config.critical_after.max(1)
                    {
                        "critical"
                    } else {
                        "warning"
                    },
                    detector: "peers",
                });
            }
        }
        self.peers_done.insert(key, newest);
        found
    }
}
