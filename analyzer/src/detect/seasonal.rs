//! A seasonal baseline: the value expected now is the median of the values at the same phase of
//! the previous few seasons (± one step, to tolerate jitter); the season's length in points
//! comes from the series' own sampling step, so any interval works. A season longer than
//! `max_points` samples (a day at 10 s) is kept as a downsampled [`SeasonProfile`] instead.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::profile::SeasonProfile;
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
    #[serde(default = "default_bins")]
    bins: usize,
    #[serde(default)]
    profile: SeasonProfile,
    last_time: Option<f64>,
    steps: SortedWindow,
    values: VecDeque<f64>,
    residuals: RobustDeviation,
}

/// Bins of a state saved before profiles existed (the default of `profile_bins`).
fn default_bins() -> usize {
    288
}

/// How the season is followed at the current sampling step.
enum Season {
    /// The step is not known yet.
    Unknown,
    /// A season is shorter than 4 samples: no seasonal view.
    Off,
    /// Sample by sample, over this many points per season.
    Samples(usize),
    /// Through the downsampled profile.
    Profile,
}

impl SeasonalBaseline {
    /// A baseline for seasons of `season_secs`: sample by sample when a season spans
    /// 4..=`max_points` samples, through a profile of `bins` slots when it spans more (0: no
    /// profile); residuals are standardised over the last `window` of them.
    pub fn new(season_secs: f64, max_points: usize, bins: usize, window: usize) -> Self {
        Self {
            season_secs,
            max_points,
            bins,
            profile: SeasonProfile::default(),
            last_time: None,
            steps: SortedWindow::new(STEPS),
            values: VecDeque::new(),
            residuals: RobustDeviation::new(window),
        }
    }

    /// How the season can be followed at the current sampling step.
    fn season(&self) -> Season {
        if self.steps.len() < 20 {
            return Season::Unknown;
        }
        let step = self.steps.quantile(0.5);
        if step <= 0.0 {
            return Season::Unknown;
        }
        let period = (self.season_secs / step).round() as usize;
        if period < 4 {
            Season::Off
        } else if period <= self.max_points {
            Season::Samples(period)
        } else if self.bins > 0 {
            Season::Profile
        } else {
            Season::Off
        }
    }

    /// Whether the season is followed through the downsampled profile at the current step.
    pub fn profiled(&self) -> bool {
        matches!(self.season(), Season::Profile)
    }

    /// Measures the value at `time` (seconds) against its baseline; `None` while there is not
    /// enough history (or the season does not fit the sampling step).
    pub fn update(&mut self, time: f64, value: f64) -> Option<Deviation> {
        if let Some(last) = self.last_time {
            self.steps.push(time - last);
        }
        self.last_time = Some(time);
        let period = match self.season() {
            Season::Samples(period) => period,
            Season::Profile => {
                self.values.clear();
                let baseline = self
                    .profile
                    .update(time, value, self.season_secs, self.bins)?;
                let mut deviation = self.residuals.update(value - baseline);
                deviation.expected += baseline;
                return Some(deviation);
            }
            season => {
                if matches!(season, Season::Unknown) {
                    self.profile
                        .update(time, value, self.season_secs, self.bins);
                }
                // Keep enough to start once the step is known (20 steps), no more.
                self.values.push_back(value);
                while self.values.len() > 32 {
                    self.values.pop_front();
                }
                return None;
            }
        };
        self.values.push_back(value);
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
