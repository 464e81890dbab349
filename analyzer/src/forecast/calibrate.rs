//! Prediction intervals from the forecaster's own recent out-of-sample errors (split conformal
//! prediction): the interval at level L around a forecast `h` steps ahead is ± the L-quantile
//! of the absolute errors of recent forecasts `h` steps ahead. Model-based intervals assume the
//! model is right and undercover (augurs' MSTL gives about 0.76 for a nominal 0.95 on
//! nyc_taxi); these are right by construction when errors are exchangeable, and adapt when the
//! series gets noisier.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Errors needed at a horizon step before an interval is given.
pub const MIN_ERRORS: usize = 20;

/// Recent absolute errors per horizon step.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Calibrator {
    keep: usize,
    errors: Vec<VecDeque<f64>>,
}

impl Calibrator {
    /// Keeps the last `keep` errors per step, for steps 1..=`horizon`.
    pub fn new(horizon: usize, keep: usize) -> Self {
        Self {
            keep: keep.max(MIN_ERRORS),
            errors: vec![VecDeque::new(); horizon],
        }
    }

    /// Records the error of a forecast `step` (1-based) points ahead once its actual is known.
    pub fn record(&mut self, step: usize, actual: f64, forecast: f64) {
        let error = (actual - forecast).abs();
        if let Some(errors) = step.checked_sub(1).and_then(|i| self.errors.get_mut(i)) {
            if error.is_finite() {
                errors.push_back(error);
                if errors.len() > self.keep {
                    errors.pop_front();
                }
            }
        }
    }

    /// Half-width of the interval at `level` for a forecast `step` points ahead, once enough
    /// errors are known.
    ///
    /// ```
    /// # use meridian_analyzer::forecast::calibrate::Calibrator;
    /// let mut c = Calibrator::new(1, 100);
    /// for e in 1..=100 {
    ///     c.record(1, e as f64, 0.0);
    /// }
    /// assert_eq!(c.half_width(1, 0.8), Some(81.0)); // 80% of errors are at most this
    /// assert_eq!(c.half_width(2, 0.8), None);
    /// ```
    pub fn half_width(&self, step: usize, level: f64) -> Option<f64> {
        let errors = self.errors.get(step.checked_sub(1)?)?;
        if errors.len() < MIN_ERRORS {
            return None;
        }
        let mut sorted: Vec<f64> = errors.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        // The ⌈(n + 1)·L⌉-th smallest: the finite-sample conformal quantile.
        let rank = (((sorted.len() + 1) as f64 * level).ceil() as usize).clamp(1, sorted.len());
        Some(sorted[rank - 1])
    }
}
