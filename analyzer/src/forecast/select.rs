//! Choosing among forecasters by their recent record: the model, the naive forecast (last
//! value) and the seasonal naive one (same time last season) each keep their recent absolute
//! errors per horizon step, and each step is forecast by the one with the smallest. Series
//! differ — some are random walks, some strongly seasonal — and no single method wins on all.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// The candidate methods, in the order their forecasts are passed.
pub const METHODS: [&str; 3] = ["model", "naive", "seasonal_naive"];

/// Errors known per method and step before the record decides (the model is used before).
const MIN_RECORD: usize = 10;

/// Recent absolute errors per method and step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Selector {
    keep: usize,
    /// [step][method] → recent errors.
    errors: Vec<[VecDeque<f64>; 3]>,
}

impl Selector {
    /// Keeps the last `keep` errors per method, for steps 1..=`horizon`.
    pub fn new(horizon: usize, keep: usize) -> Self {
        Self {
            keep: keep.max(1),
            errors: (0..horizon).map(|_| Default::default()).collect(),
        }
    }

    /// Records the methods' forecasts `step` (1-based) ahead against the actual.
    pub fn record(&mut self, step: usize, actual: f64, forecasts: [f64; 3]) {
        let Some(per_method) = step.checked_sub(1).and_then(|i| self.errors.get_mut(i)) else {
            return;
        };
        for (errors, forecast) in per_method.iter_mut().zip(forecasts) {
            let e = (actual - forecast).abs();
            if e.is_finite() {
                errors.push_back(e);
                if errors.len() > self.keep {
                    errors.pop_front();
                }
            }
        }
    }

    /// The method (index into [`METHODS`]) with the smallest recent mean error at `step`.
    ///
    /// ```
    /// # use meridian_analyzer::forecast::select::Selector;
    /// let mut s = Selector::new(1, 50);
    /// assert_eq!(s.best(1), 0); // no record yet: the model
    /// for _ in 0..20 {
    ///     s.record(1, 10.0, [13.0, 10.5, 12.0]);
    /// }
    /// assert_eq!(s.best(1), 1); // naive has been closest
    /// ```
    pub fn best(&self, step: usize) -> usize {
        let Some(per_method) = step.checked_sub(1).and_then(|i| self.errors.get(i)) else {
            return 0;
        };
        if per_method.iter().any(|e| e.len() < MIN_RECORD) {
            return 0;
        }
        let mean = |e: &VecDeque<f64>| e.iter().sum::<f64>() / e.len() as f64;
        (0..3)
            .min_by(|a, b| mean(&per_method[*a]).total_cmp(&mean(&per_method[*b])))
            .unwrap_or(0)
    }
}
