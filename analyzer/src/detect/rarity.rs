//! Turns a series' deviations into comparable scores in [0, 1]: a deviation is scored by how it
//! compares with the largest deviation of the same kind in the series' recent history, so the
//! same threshold means the same thing on a quiet series and a noisy one.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Scores a deviation `z` as `1 − 1/(1 + (z / m)^k)`, `m` the largest of the last `history`
/// deviations: 0.5 at the previous maximum, near 1 far above it.
///
/// ```
/// # use meridian_analyzer::detect::rarity::Rarity;
/// let mut r = Rarity::new(1000, 2.0, 0);
/// r.update(2.0);
/// assert_eq!(r.update(2.0), 0.5);
/// assert!(r.update(8.0) > 0.9);
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rarity {
    history: u64,
    power: f64,
    warmup: u64,
    seen: u64,
    /// (index, deviation), deviations decreasing: the sliding maximum.
    maxima: VecDeque<(u64, f64)>,
}

impl Rarity {
    /// Compares with the last `history` deviations, once `warmup` have been seen.
    pub fn new(history: usize, power: f64, warmup: usize) -> Self {
        Self {
            history: history.max(1) as u64,
            power,
            warmup: warmup as u64,
            seen: 0,
            maxima: VecDeque::new(),
        }
    }

    /// Whether scores are given (the warm-up is over).
    pub fn warmed(&self) -> bool {
        self.seen > self.warmup
    }

    /// Scores `z`, then remembers it.
    pub fn update(&mut self, z: f64) -> f64 {
        let z = if z.is_finite() { z.max(0.0) } else { 0.0 };
        self.seen += 1;
        let score = match self.maxima.front() {
            Some(&(_, max)) if self.seen > self.warmup => {
                let ratio = z / max.max(1e-12);
                // The default power, 2, without a call to `pow` (five of these per point).
                let powered = if self.power == 2.0 {
                    ratio * ratio
                } else {
                    ratio.powf(self.power)
                };
                1.0 - 1.0 / (1.0 + powered)
            }
            _ => 0.0,
        };
        while self.maxima.back().is_some_and(|&(_, m)| m <= z) {
            self.maxima.pop_back();
        }
        self.maxima.push_back((self.seen, z));
        while self
            .maxima
            .front()
            .is_some_and(|&(i, _)| i + self.history <= self.seen)
        {
            self.maxima.pop_front();
        }
        score
    }
}
