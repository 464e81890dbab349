//! Novelty of the value itself: a value beyond everything the series has ever shown, by more
//! than a tolerance of that range, is anomalous however noisy the series is (a new maximum of
//! latency, traffic falling below its all-time low).

use serde::{Deserialize, Serialize};

/// The range the series has shown so far.
///
/// ```
/// # use meridian_analyzer::detect::range::RangeNovelty;
/// let mut r = RangeNovelty::new(0.05, 2);
/// for v in [10.0, 20.0, 15.0] {
///     r.update(v);
/// }
/// assert_eq!(r.update(20.4), 0.0); // within 5% of the range
/// assert!(r.update(30.0) >= 0.75);
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RangeNovelty {
    tolerance: f64,
    warmup: u64,
    seen: u64,
    low: f64,
    high: f64,
}

impl RangeNovelty {
    /// Scores values beyond the range by more than `tolerance` × its width, once `warmup`
    /// values have been seen.
    pub fn new(tolerance: f64, warmup: usize) -> Self {
        Self {
            tolerance,
            warmup: warmup as u64,
            seen: 0,
            low: f64::INFINITY,
            high: f64::NEG_INFINITY,
        }
    }

    /// 0 inside the range (plus tolerance); from 0.75 towards 1 beyond it, by how far.
    pub fn update(&mut self, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        self.seen += 1;
        let width = self.high - self.low;
        let mut score = 0.0;
        if self.seen > self.warmup && width > 0.0 {
            let excess = (value - self.high).max(self.low - value) / width;
            if excess > self.tolerance {
                score = (0.75 + excess).min(1.0);
            }
        }
        self.low = self.low.min(value);
        self.high = self.high.max(value);
        score
    }
}
