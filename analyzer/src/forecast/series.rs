//! The forecasting loop of one series, shared by the live `forecasts` table and `meridian
//! forecast`: keep the recent history; fit ([`Fit::run`]) at each origin the caller chooses; each
//! horizon publishes the method with the best recent record ([`Selector`]) and 80%/95% intervals
//! from its own out-of-sample errors ([`Calibrator`]) — until enough of those are known, from the
//! naive forecast's errors over the history at the same horizon; when the actual of a forecast
//! arrives, both learn from it.
//!
//! Times are integers on any clock: nanoseconds live, point indices offline.
//!
//! ```
//! use meridian_analyzer::forecast::series::SeriesForecaster;
//! let mut f = SeriesForecaster::new(1, 200);
//! for t in 0..40 {
//!     f.observe(t, 100.0 + (t % 4) as f64, 2016);
//! }
//! let fit = f.fit(&[1], 0, 1).expect("enough history");
//! let done = fit.run();
//! assert_eq!(done.points[0].target, 40);
//! f.fitted(&fit, &done);
//! ```

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::baseline::{carried_forward, seasonal_naive};
use super::calibrate::Calibrator;
use super::model::{point_forecast, MIN_HISTORY};
use super::select::{Selector, METHODS};
use crate::derive::quantile;

/// Errors of a forecast's method record kept per horizon (the selector's window).
const SELECT_KEEP: usize = 50;

/// A forecast made and not yet checked against its actual.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    target: i64,
    horizon: usize,
    /// The model's, naive and seasonal-naive forecasts.
    candidates: [f64; 3],
    /// The forecast published (the chosen method's).
    published: f64,
}

/// The forecasting state of one series.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeriesForecaster {
    /// Recent (time, value), newest last.
    history: VecDeque<(i64, f64)>,
    last_fit: Option<i64>,
    selector: Selector,
    calibrator: Calibrator,
    pending: VecDeque<Pending>,
}

/// What one fit needs, copied out of the state so fitting can run without holding it.
#[derive(Clone, Debug)]
pub struct Fit {
    /// The newest time fitted on.
    pub origin: i64,
    values: Vec<f64>,
    /// Points ahead, per horizon.
    steps: Vec<usize>,
    /// Season length in points, if usable.
    period: Option<usize>,
    /// Chosen method per horizon.
    chosen: Vec<usize>,
    /// Interval half-widths per horizon (80%, 95%), from own errors.
    calibrated: Vec<Option<(f64, f64)>>,
    /// Time between points.
    step: i64,
}

/// One published forecast.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// The time forecast.
    pub target: i64,
    /// Points ahead.
    pub steps: usize,
    /// The published forecast (the chosen method's).
    pub forecast: f64,
    /// The model's forecast (naive where the model failed).
    pub model: f64,
    /// The naive forecast (the last value).
    pub naive: f64,
    /// The seasonal-naive forecast (naive without a season).
    pub seasonal_naive: f64,
    /// 80% interval.
    pub interval_80: Option<(f64, f64)>,
    /// 95% interval.
    pub interval_95: Option<(f64, f64)>,
    /// `model`, `naive` or `seasonal_naive`.
    pub method: &'static str,
    /// `calibrated` (own errors) or `naive_errors` (the naive forecast's, until enough).
    pub interval_source: &'static str,
}

/// The outcome of a [`Fit`].
#[derive(Clone, Debug)]
pub struct Fitted {
    /// One per horizon.
    pub points: Vec<Point>,
    /// Whether the model fitted (else the baselines stood in).
    pub used_model: bool,
}

impl SeriesForecaster {
    /// A series with `horizons` horizons, keeping `keep_errors` errors per horizon for intervals.
    pub fn new(horizons: usize, keep_errors: usize) -> Self {
        Self {
            history: VecDeque::new(),
            last_fit: None,
            selector: Selector::new(horizons, SELECT_KEEP),
            calibrator: Calibrator::new(horizons, keep_errors),
            pending: VecDeque::new(),
        }
    }

    /// Adds the value at `time` (times increasing), keeping the newest `keep` points, and scores
    /// the pending forecasts for `time`; forecasts for earlier times are dropped unscored.
    pub fn observe(&mut self, time: i64, value: f64, keep: usize) {
        self.history.push_back((time, value));
        while self.history.len() > keep.max(MIN_HISTORY) {
            self.history.pop_front();
        }
        while self.pending.front().is_some_and(|p| p.target <= time) {
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            if p.target == time && value.is_finite() {
                self.selector.record(p.horizon + 1, value, p.candidates);
                self.calibrator.record(p.horizon + 1, value, p.published);
            }
        }
    }

    /// The newest time observed.
    pub fn newest(&self) -> Option<i64> {
        self.history.back().map(|(t, _)| *t)
    }

    /// Forecasts waiting for their actual.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The origin of the last fit.
    pub fn last_fit(&self) -> Option<i64> {
        self.last_fit
    }

    /// A fit of the history at `steps` points ahead (one per horizon), `step` apart in time, with
    /// a season of `season` points when the history holds two of them; `None` below
    /// [`MIN_HISTORY`] points.
    pub fn fit(&self, steps: &[usize], season: usize, step: i64) -> Option<Fit> {
        let origin = self.newest()?;
        let values: Vec<f64> = self.history.iter().map(|(_, v)| *v).collect();
        let values = carried_forward(&values)?;
        if values.len() < MIN_HISTORY {
            return None;
        }
        let period = (season >= 2 && values.len() >= 2 * season).then_some(season);
        let horizons = 1..=steps.len();
        Some(Fit {
            origin,
            values,
            steps: steps.to_vec(),
            period,
            chosen: horizons.clone().map(|h| self.selector.best(h)).collect(),
            calibrated: horizons
                .map(|h| {
                    let c = &self.calibrator;
                    c.half_width(h, 0.8).zip(c.half_width(h, 0.95))
                })
                .collect(),
            step: step.max(1),
        })
    }

    /// Records a finished fit's forecasts as pending, to be scored when their time comes.
    pub fn fitted(&mut self, fit: &Fit, done: &Fitted) {
        self.last_fit = Some(fit.origin);
        for (h, point) in done.points.iter().enumerate() {
            self.pending.push_back(Pending {
                target: point.target,
                horizon: h,
                candidates: [point.model, point.naive, point.seasonal_naive],
                published: point.forecast,
            });
        }
        self.pending.make_contiguous().sort_by_key(|p| p.target);
    }
}

impl Fit {
    /// Fits and forecasts (CPU-bound: run it off the async threads).
    pub fn run(&self) -> Fitted {
        let longest = self.steps.iter().copied().max().unwrap_or(1);
        let model = point_forecast(&self.values, self.period, longest).ok();
        let last = self.values[self.values.len() - 1];
        let points = self
            .steps
            .iter()
            .enumerate()
            .map(|(h, &steps)| {
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
                let chosen = self.chosen[h].min(2);
                let forecast = [modelled, naive, seasonal][chosen];
                let (widths, source) = match self.calibrated[h] {
                    Some(w) => (Some(w), "calibrated"),
                    None => (naive_widths(&self.values, steps), "naive_errors"),
                };
                // Rates and latencies are not negative.
                let interval = |w: f64| ((forecast - w).max(0.0), forecast + w);
                Point {
                    target: self.origin + steps as i64 * self.step,
                    steps,
                    forecast,
                    model: modelled,
                    naive,
                    seasonal_naive: seasonal,
                    interval_80: widths.map(|w| interval(w.0)),
                    interval_95: widths.map(|w| interval(w.1)),
                    method: METHODS[chosen],
                    interval_source: source,
                }
            })
            .collect();
        Fitted {
            points,
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

    /// Scenario: a forecast one point ahead, then its actual arrives.
    /// Guarantees: the forecast is pending until then and scored at its own time only.
    #[test]
    fn a_forecast_is_scored_when_its_actual_arrives() {
        let mut f = SeriesForecaster::new(1, 200);
        for t in 0..30 {
            f.observe(t, 10.0, 100);
        }
        let fit = f.fit(&[1], 0, 1).unwrap();
        let done = fit.run();
        assert_eq!(done.points[0].target, 30);
        f.fitted(&fit, &done);
        assert_eq!(f.pending.len(), 1);
        f.observe(30, 10.0, 100);
        assert!(f.pending.is_empty());
    }
}
