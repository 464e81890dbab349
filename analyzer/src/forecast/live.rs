//! Live forecasts of the RED series: per series and metric, every `refit`, the point forecast
//! ([`model`](super::model)) or a baseline chosen by its recent record
//! ([`select`](super::select)), at each configured horizon, with 80% and 95% intervals from the
//! forecaster's own out-of-sample errors ([`calibrate`](super::calibrate)) — until enough of
//! those are known, from the naive forecast's errors over the history at the same horizon
//! (wider than the model's as a rule: an honest start, not a tight guess).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::baseline::{carried_forward, seasonal_naive};
use super::calibrate::Calibrator;
use super::model::{point_forecast, MIN_HISTORY};
use super::select::{Selector, METHODS};
use crate::derive::quantile;
use crate::derive::{Metric, RedPoint, SeriesKey};

/// Settings of the live forecasts (`[analyzer.forecast]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForecastConfig {
    /// Forecast the RED series.
    pub enabled: bool,
    /// The figures forecast.
    pub metrics: Vec<Metric>,
    /// How far ahead (`["15m", "30m", "1h"]`).
    #[serde(with = "durations")]
    pub horizons: Vec<Duration>,
    /// How often each series is fitted again.
    #[serde(with = "humantime_serde")]
    pub refit: Duration,
    /// Most recent points a fit uses.
    pub fit_points: usize,
    /// The season (a day for gateway traffic); used when the history holds two of them.
    #[serde(with = "humantime_serde")]
    pub season: Duration,
    /// Out-of-sample errors kept per horizon for the intervals.
    pub keep_errors: usize,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        Self {
            enabled: true,
            metrics: vec![Metric::RequestRate, Metric::LatencyP99Ms],
            horizons: vec![minutes(15), minutes(30), minutes(60)],
            refit: minutes(5),
            fit_points: 2016,
            season: Duration::from_secs(86_400),
            keep_errors: 200,
        }
    }
}

/// A forecast made and not yet checked against its actual.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    target_ns: i64,
    horizon: usize,
    /// The model's, naive and seasonal-naive forecasts.
    candidates: [f64; 3],
    /// The forecast published (the chosen method's).
    published: f64,
}

/// One forecast row.
#[derive(Clone, Debug, PartialEq)]
pub struct Forecast {
    /// The time forecast, ns.
    pub target_ns: i64,
    /// The newest interval the forecast was made from, ns.
    pub made_at_ns: i64,
    /// How far ahead, s.
    pub horizon_s: i64,
    /// The series.
    pub key: SeriesKey,
    /// The figure.
    pub metric: Metric,
    /// Point forecast.
    pub forecast: f64,
    /// 80% interval.
    pub interval_80: Option<(f64, f64)>,
    /// 95% interval.
    pub interval_95: Option<(f64, f64)>,
    /// `model`, `naive` or `seasonal_naive`.
    pub method: &'static str,
    /// `calibrated` (own errors) or `naive_errors` (the naive forecast's, until enough).
    pub interval_source: &'static str,
}

/// The state of one series and metric.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Forecasted {
    /// Recent (interval start, value), newest last.
    history: VecDeque<(i64, f64)>,
    last_fit_ns: Option<i64>,
    selector: Selector,
    calibrator: Calibrator,
    pending: VecDeque<Pending>,
}

/// What one fit needs, copied out so fitting runs without holding the state.
#[derive(Clone, Debug)]
pub struct FitJob {
    key: SeriesKey,
    metric: Metric,
    origin_ns: i64,
    values: Vec<f64>,
    /// Points per horizon.
    steps: Vec<usize>,
    /// Season length in points, if usable.
    period: Option<usize>,
    /// Chosen method per horizon.
    chosen: Vec<usize>,
    /// Interval half-widths per horizon (80%, 95%), from own errors.
    calibrated: Vec<Option<(f64, f64)>>,
    interval_ns: i64,
}

/// Live forecasting state for every RED series (kept across restarts).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LiveForecaster {
    #[serde(with = "crate::pairs")]
    series: BTreeMap<(SeriesKey, Metric), Forecasted>,
}

impl LiveForecaster {
    /// Adds closed RED points (oldest first): extends the histories and scores the pending
    /// forecasts whose time has come.
    pub fn observe(&mut self, config: &ForecastConfig, points: &[RedPoint]) {
        let horizons = config.horizons.len();
        for point in points {
            for &metric in &config.metrics {
                let value = metric.value(point);
                let state = self
                    .series
                    .entry((point.key.clone(), metric))
                    .or_insert_with(|| Forecasted {
                        history: VecDeque::new(),
                        last_fit_ns: None,
                        selector: Selector::new(horizons, 50),
                        calibrator: Calibrator::new(horizons, config.keep_errors),
                        pending: VecDeque::new(),
                    });
                state.history.push_back((point.start_ns, value));
                while state.history.len() > config.fit_points.max(MIN_HISTORY) {
                    state.history.pop_front();
                }
                while state
                    .pending
                    .front()
                    .is_some_and(|p| p.target_ns <= point.start_ns)
                {
                    let Some(p) = state.pending.pop_front() else {
                        break;
                    };
                    if p.target_ns == point.start_ns && value.is_finite() {
                        state.selector.record(p.horizon + 1, value, p.candidates);
                        state.calibrator.record(p.horizon + 1, value, p.published);
                    }
                }
            }
        }
    }

    /// The fits due: series not fitted for `refit` (by their own newest interval) with enough
    /// history.
    pub fn due(&self, config: &ForecastConfig, interval: Duration) -> Vec<FitJob> {
        let interval_ns = interval.as_nanos().max(1) as i64;
        let refit_ns = config.refit.as_nanos() as i64;
        let steps: Vec<usize> = config
            .horizons
            .iter()
            .map(|h| ((h.as_nanos() as i64 / interval_ns).max(1)) as usize)
            .collect();
        let season = (config.season.as_nanos() as i64 / interval_ns) as usize;
        let mut jobs = Vec::new();
        for ((key, metric), state) in &self.series {
            let Some(&(origin_ns, _)) = state.history.back() else {
                continue;
            };
            if state.last_fit_ns.is_some_and(|t| origin_ns - t < refit_ns) {
                continue;
            }
            let values = filled(&state.history);
            if values.len() < MIN_HISTORY {
                continue;
            }
            let period = (season >= 2 && values.len() >= 2 * season).then_some(season);
            let chosen = (1..=steps.len()).map(|h| state.selector.best(h)).collect();
            let calibrated = (1..=steps.len())
                .map(|h| {
                    let c = &state.calibrator;
                    c.half_width(h, 0.8).zip(c.half_width(h, 0.95))
                })
                .collect();
            jobs.push(FitJob {
                key: key.clone(),
                metric: *metric,
                origin_ns,
                values,
                steps: steps.clone(),
                period,
                chosen,
                calibrated,
                interval_ns,
            });
        }
        jobs
    }

    /// Records a finished fit's forecasts as pending (to be scored when their time comes).
    pub fn fitted(&mut self, job: &FitJob, done: &Fitted) {
        let Some(state) = self.series.get_mut(&(job.key.clone(), job.metric)) else {
            return;
        };
        state.last_fit_ns = Some(job.origin_ns);
        for (h, candidates) in done.candidates.iter().enumerate() {
            state.pending.push_back(Pending {
                target_ns: job.origin_ns + job.steps[h] as i64 * job.interval_ns,
                horizon: h,
                candidates: *candidates,
                published: done.forecasts[h].forecast,
            });
        }
        state.pending.make_contiguous().sort_by_key(|p| p.target_ns);
    }
}

/// The outcome of a [`FitJob`].
#[derive(Clone, Debug)]
pub struct Fitted {
    /// Per horizon: model, naive, seasonal naive.
    candidates: Vec<[f64; 3]>,
    /// The published rows, one per horizon.
    pub forecasts: Vec<Forecast>,
    /// Whether the model fitted (else the baselines stood in).
    pub used_model: bool,
}

/// The history's values, gaps carried forward.
fn filled(history: &VecDeque<(i64, f64)>) -> Vec<f64> {
    let values: Vec<f64> = history.iter().map(|(_, v)| *v).collect();
    carried_forward(&values).unwrap_or_default()
}

impl FitJob {
    /// Fits and forecasts (CPU-bound: run it off the async threads).
    pub fn run(&self) -> Fitted {
        let longest = self.steps.iter().copied().max().unwrap_or(1);
        let model = point_forecast(&self.values, self.period, longest).ok();
        let n = self.values.len();
        let last = self.values[n - 1];
        let mut candidates = Vec::new();
        let mut forecasts = Vec::new();
        for (h, &steps) in self.steps.iter().enumerate() {
            let naive = last;
            let seasonal = self
                .period
                .and_then(|p| seasonal_naive(&self.values, p, steps))
                .unwrap_or(naive);
            let modelled = model
                .as_ref()
                .and_then(|m| m.get(steps - 1).copied())
                .filter(|v| v.is_finite())
                .unwrap_or(naive);
            let options = [modelled, naive, seasonal];
            let chosen = self.chosen[h].min(2);
            let forecast = options[chosen];
            let (widths, source) = match self.calibrated[h] {
                Some(w) => (Some(w), "calibrated"),
                None => (naive_widths(&self.values, steps), "naive_errors"),
            };
            // Rates and latencies are not negative.
            let interval = |w: f64| ((forecast - w).max(0.0), forecast + w);
            candidates.push(options);
            forecasts.push(Forecast {
                target_ns: self.origin_ns + steps as i64 * self.interval_ns,
                made_at_ns: self.origin_ns,
                horizon_s: steps as i64 * self.interval_ns / 1_000_000_000,
                key: self.key.clone(),
                metric: self.metric,
                forecast,
                interval_80: widths.map(|w| interval(w.0)),
                interval_95: widths.map(|w| interval(w.1)),
                method: METHODS[chosen],
                interval_source: source,
            });
        }
        Fitted {
            candidates,
            forecasts,
            used_model: model.is_some(),
        }
    }
}

/// 80% and 95% quantiles of the naive forecast's absolute errors `steps` ahead over `values`;
/// with too short a history for that horizon, those of the longest lag it allows, widened by
/// √(steps / lag) as a random walk's errors grow.
fn naive_widths(values: &[f64], steps: usize) -> Option<(f64, f64)> {
    const MIN_ERRORS: usize = 10;
    let lag = steps.min(values.len().checked_sub(MIN_ERRORS)?).max(1);
    let mut errors: Vec<f64> = values
        .windows(lag + 1)
        .map(|w| (w[lag] - w[0]).abs())
        .collect();
    if errors.len() < MIN_ERRORS {
        return None;
    }
    errors.sort_by(f64::total_cmp);
    let widen = (steps as f64 / lag as f64).sqrt();
    Some((
        quantile::exact(&errors, 0.8)? * widen,
        quantile::exact(&errors, 0.95)? * widen,
    ))
}

/// Serde for a list of durations written as humantime strings (`"15m"`).
mod durations {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(list: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            list.iter()
                .map(|d| humantime::format_duration(*d).to_string()),
        )
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|text| humantime::parse_duration(text).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_widths_stretch_past_the_history() {
        let line: Vec<f64> = (0..100).map(|i| i as f64).collect();
        assert_eq!(naive_widths(&line, 5), Some((5.0, 5.0)));
        // 90 is the longest lag 100 points allow (10 errors); 360 is 4× as far: twice as wide.
        assert_eq!(naive_widths(&line, 360), Some((180.0, 180.0)));
        assert_eq!(naive_widths(&line[..5], 1), None);
    }

    fn point(start_s: i64, count: u64) -> RedPoint {
        RedPoint {
            start_ns: start_s * 1_000_000_000,
            key: SeriesKey {
                region: "eu".into(),
                service: "gw".into(),
                route: "/a".into(),
            },
            interval_s: 10.0,
            red: crate::derive::window::Red {
                count,
                errors: 0,
                latency_ms: Some([10.0, 20.0, 30.0]),
                count_source: "spans",
                latency_source: Some("spans"),
            },
        }
    }

    #[test]
    fn forecasts_are_made_on_schedule_and_scored_when_due() {
        let config = ForecastConfig {
            horizons: vec![Duration::from_secs(20)],
            refit: Duration::from_secs(60),
            ..ForecastConfig::default()
        };
        let interval = Duration::from_secs(10);
        let mut f = LiveForecaster::default();
        let points: Vec<RedPoint> = (0..30)
            .map(|i| point(i * 10, 100 + (i % 3) as u64))
            .collect();
        f.observe(&config, &points);
        let jobs = f.due(&config, interval);
        assert_eq!(jobs.len(), 2, "rate and p99");
        for job in &jobs {
            let done = job.run();
            let row = &done.forecasts[0];
            assert_eq!(row.horizon_s, 20);
            assert_eq!(row.target_ns, 310 * 1_000_000_000);
            let (lo, hi) = row.interval_95.unwrap();
            assert!(lo <= row.forecast && row.forecast <= hi);
            f.fitted(job, &done);
        }
        // Fitted at 290 s: not due again until 350 s.
        f.observe(&config, &[point(300, 100)]);
        assert!(f.due(&config, interval).is_empty());
        f.observe(&config, &[point(310, 101)]);
        let state = &f.series[&(points[0].key.clone(), Metric::RequestRate)];
        assert!(
            state.pending.is_empty(),
            "the forecast for 310 s was scored"
        );
        f.observe(
            &config,
            &(32..36).map(|i| point(i * 10, 100)).collect::<Vec<_>>(),
        );
        assert_eq!(f.due(&config, interval).len(), 2);
    }
}
