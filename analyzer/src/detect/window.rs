//! A sliding window of the last `n` values kept sorted, for rolling quantiles in O(n) memory
//! and O(log n + n/8) per update (a binary search plus a short memmove).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// The last `capacity` values, in arrival order and sorted.
///
/// ```
/// # use meridian_analyzer::detect::window::SortedWindow;
/// let mut w = SortedWindow::new(3);
/// for v in [5.0, 1.0, 3.0, 9.0] {
///     w.push(v);
/// }
/// assert_eq!(w.len(), 3); // 5.0 fell out
/// assert_eq!(w.quantile(0.5), 3.0);
/// assert_eq!(w.quantile(1.0), 9.0);
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SortedWindow {
    capacity: usize,
    arrivals: VecDeque<f64>,
    sorted: Vec<f64>,
}

impl SortedWindow {
    /// An empty window holding at most `capacity` values (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            arrivals: VecDeque::with_capacity(capacity),
            sorted: Vec::with_capacity(capacity),
        }
    }

    /// Adds a value, dropping the oldest when full. Non-finite values are ignored.
    pub fn push(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        if self.arrivals.len() == self.capacity {
            if let Some(old) = self.arrivals.pop_front() {
                self.arrivals.push_back(value);
                self.replace(old, value);
                return;
            }
        }
        self.arrivals.push_back(value);
        let at = self.sorted.partition_point(|v| v.total_cmp(&value).is_le());
        self.sorted.insert(at, value);
    }

    /// Puts `new` in the place of `old` (one of the sorted values), moving only the values
    /// between their two places: what removing one and inserting the other would give, with a
    /// third of the copying (this runs for every point of every series).
    fn replace(&mut self, old: f64, new: f64) {
        // A regular series' sampling steps, a flat metric: the same value leaves and enters,
        // and the search below would shift every value equal to it by one place and back.
        if old.total_cmp(&new).is_eq() {
            return;
        }
        let s = &mut self.sorted;
        let from = s.partition_point(|v| v.total_cmp(&old).is_lt());
        if from >= s.len() {
            return;
        }
        // Where `new` goes among the values other than the one at `from`.
        let to = s.partition_point(|v| v.total_cmp(&new).is_le());
        if to > from {
            s.copy_within(from + 1..to, from);
            s[to - 1] = new;
        } else {
            s.copy_within(to..from, to + 1);
            s[to] = new;
        }
    }

    /// Values held.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether no value is held.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The `p` quantile (0 ≤ p ≤ 1), linearly interpolated; 0 when empty.
    pub fn quantile(&self, p: f64) -> f64 {
        let n = self.sorted.len();
        if n == 0 {
            return 0.0;
        }
        let k = p.clamp(0.0, 1.0) * (n - 1) as f64;
        let lo = k.floor() as usize;
        let hi = (lo + 1).min(n - 1);
        self.sorted[lo] + (self.sorted[hi] - self.sorted[lo]) * (k - lo as f64)
    }

    /// The most recent value pushed `ago` pushes before the last one (0 = the last).
    pub fn recent(&self, ago: usize) -> Option<f64> {
        let n = self.arrivals.len();
        (ago < n).then(|| self.arrivals[n - 1 - ago])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scenario: 20,000 pushes of values with many repeats (and a NaN) through windows of
    /// several capacities.
    /// Guarantees: the sorted values are always those of the last `capacity` arrivals, sorted —
    /// what removing the oldest and inserting the newest gives.
    #[test]
    fn stays_the_sorted_last_values() {
        for capacity in [1, 2, 7, 100] {
            let mut w = SortedWindow::new(capacity);
            let mut state = 12345u64;
            for i in 0..20_000u64 {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let v = if i == 500 {
                    f64::NAN
                } else {
                    ((state >> 33) % 50) as f64 - 25.0
                };
                w.push(v);
                let mut expected: Vec<f64> = w.arrivals.iter().copied().collect();
                expected.sort_by(f64::total_cmp);
                assert_eq!(w.sorted, expected, "capacity {capacity}, push {i}");
            }
        }
    }
}
