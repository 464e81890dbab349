//! Live forecasts of the RED series: per series and metric, every `refit`, the loop of
//! [`series`](super::series) at each configured horizon, with 80% and 95% intervals — from the
//! naive forecast's errors until the forecaster's own are known (wider than the model's as a
//! rule: an honest start, not a tight guess).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::series::{Fit, SeriesForecaster};
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

/// What one fit of one series and metric needs.
#[derive(Clone, Debug)]
pub struct FitJob {
    key: SeriesKey,
    metric: Metric,
    fit: Fit,
}

/// The outcome of a [`FitJob`].
#[derive(Clone, Debug)]
pub struct Fitted {
    done: super::series::Fitted,
    /// The published rows, one per horizon.
    pub forecasts: Vec<Forecast>,
}

impl Fitted {
    /// Whether the model fitted (else the baselines stood in).
    pub fn used_model(&self) -> bool {
        self.done.used_model
    }
}

/// Live forecasting state for every RED series (kept across restarts).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LiveForecaster {
    #[serde(with = "crate::pairs")]
    series: BTreeMap<(SeriesKey, Metric), SeriesForecaster>,
}

impl LiveForecaster {
    /// Adds closed RED points (oldest first): extends the histories and scores the pending
    /// forecasts whose time has come.
    pub fn observe(&mut self, config: &ForecastConfig, points: &[RedPoint]) {
        for point in points {
            for &metric in &config.metrics {
                self.series
                    .entry((point.key.clone(), metric))
                    .or_insert_with(|| {
                        SeriesForecaster::new(config.horizons.len(), config.keep_errors)
                    })
                    .observe(point.start_ns, metric.value(point), config.fit_points);
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
        self.series
            .iter()
            .filter(|(_, state)| {
                let (Some(newest), last) = (state.newest(), state.last_fit()) else {
                    return false;
                };
                last.is_none_or(|t| newest - t >= refit_ns)
            })
            .filter_map(|((key, metric), state)| {
                Some(FitJob {
                    key: key.clone(),
                    metric: *metric,
                    fit: state.fit(&steps, season, interval_ns)?,
                })
            })
            .collect()
    }

    /// Records a finished fit's forecasts as pending (to be scored when their time comes).
    pub fn fitted(&mut self, job: &FitJob, done: &Fitted) {
        if let Some(state) = self.series.get_mut(&(job.key.clone(), job.metric)) {
            state.fitted(&job.fit, &done.done);
        }
    }
}

impl FitJob {
    /// Fits and forecasts (CPU-bound: run it off the async threads).
    pub fn run(&self) -> Fitted {
        let done = self.fit.run();
        let made_at_ns = self.fit.origin;
        let forecasts = done
            .points
            .iter()
            .map(|p| Forecast {
                target_ns: p.target,
                made_at_ns,
                horizon_s: (p.target - made_at_ns) / 1_000_000_000,
                key: self.key.clone(),
                metric: self.metric,
                forecast: p.forecast,
                interval_80: p.interval_80,
                interval_95: p.interval_95,
                method: p.method,
                interval_source: p.interval_source,
            })
            .collect();
        Fitted { forecasts, done }
    }
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
        assert!(state.pending() == 0, "the forecast for 310 s was scored");
        f.observe(
            &config,
            &(32..36).map(|i| point(i * 10, 100)).collect::<Vec<_>>(),
        );
        assert_eq!(f.due(&config, interval).len(), 2);
    }
}
