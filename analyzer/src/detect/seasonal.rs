//! A seasonal baseline: the value expected now is the median of the values at the same phase of
//! the previous few seasons (± one step, to tolerate jitter); the season's length in points
//! comes from the series' own sampling step, so any interval works.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::robust::{Deviation, RobustDeviation};
use super::window::SortedWindow;

/// Seasons looked back on.
const SEASONS: usize = 3;
/// Time steps the sampling interval is estimated from.
const STEPS: usize = 101;

/// Deviation of each value from its seasonal baseline, standardised robustly.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeasonalBaseline {
    season_secs: f64,
    max_points: usize,
    last_time: Option<f64>,
    steps: SortedWindow,
    values: VecDeque<f64>,
    residuals: RobustDeviation,
}

impl SeasonalBaseline {
    /// A baseline for seasons of `season_secs`, used when a season spans 4..=`max_points`
    /// samples; residuals are standardised over the last `window` of them.
    pub fn new(season_secs: f64, max_points: usize, window: usize) -> Self {
        Self {
            season_secs,
            max_points,
            last_time: None,
            steps: SortedWindow::new(STEPS),
            values: VecDeque::new(),
            residuals: RobustDeviation::new(window),
        }
    }

    /// Points per season at the current sampling step, if seasonality can be used.
    fn period(&self) -> Option<usize> {
        if self.steps.len() < 20 {
            return None;
        }
        let step = self.steps.quantile(0.5);
        if step <= 0.0 {
            return None;
        }
        let period = (self.season_secs / step).round() as usize;
        (4..=self.max_points).contains(&period).then_some(period)
    }

    /// Measures the value at `time` (seconds) against its baseline; `None` while there is not
    /// enough history (or the season does not fit the sampling step).
    pub fn update(&mut self, time: f64, value: f64) -> Option<Deviation> {
        if let Some(last) = self.last_time {
            self.steps.push(time - last);
        }
        self.last_time = Some(time);
        self.values.push_back(value);
        let Some(period) = self.period() else {
            // Keep enough to start once the step is known (20 steps), no more.
            while self.values.len() > 32 && self.steps.len() >= 20 {
                self.values.pop_front();
            }
            return None;
        };
        let keep = SEASONS * period + 2;
        while self.values.len() > keep {
            self.values.pop_front();
        }
        let now = self.values.len() - 1;
        if now < SEASONS * period + 1 {
            return None;
        }
        let mut past = [0.0; SEASONS * 3];
        for (k, season) in (1..=SEASONS).enumerate() {
            for (j, offset) in [-1i64, 0, 1].into_iter().enumerate() {
                let at = (now as i64 - (season * period) as i64 + offset) as usize;
                past[k * 3 + j] = self.values[at];
            }
        }
        past.sort_by(f64::total_cmp);
        let baseline = past[past.len() / 2];
        let mut deviation = self.residuals.update(value - baseline);
        deviation.expected += baseline;
        Some(deviation)
    }
}
