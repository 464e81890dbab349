//! A downsampled seasonal profile: when a season holds more samples than are worth keeping (a
//! day at 10 s is 8,640 points), the seasonal baseline keeps the mean of each of `bins` slots
//! of the past seasons instead, so the live detectors know the daily shape in bounded memory
//! (`SEASONS × bins` numbers per series).

use serde::{Deserialize, Serialize};

/// Seasons looked back on (as the sample-level baseline).
const SEASONS: i64 = 3;
/// Seasons with data needed before the profile gives a baseline: one past day could hold
/// yesterday's incident, two outvote it.
const MIN_SEASONS: usize = 2;

/// The mean of each bin of the last few seasons, addressed by absolute bin number.
///
/// ```
/// # use meridian_analyzer::detect::profile::SeasonProfile;
/// // A "day" of 100 s in 10 bins, sampled every second: the value is the phase's tenth.
/// let mut p = SeasonProfile::default();
/// for t in 0..300 {
///     p.update(t as f64, (t % 100 / 10) as f64, 100.0, 10);
/// }
/// // At t = 355 (bin 5 of the day) the previous days said 5.
/// assert_eq!(p.update(355.0, 9.0, 100.0, 10), Some(5.0));
/// ```
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SeasonProfile {
    /// Completed bins: `(absolute bin number, mean)`, in a ring of `SEASONS × bins + 2` slots.
    slots: Vec<(i64, f64)>,
    /// The bin being filled: number, sum, count.
    open: Option<(i64, f64, u32)>,
}

impl SeasonProfile {
    /// Adds the value at `time` (seconds) and returns the baseline for it: the median of the
    /// same bin (± one, to tolerate phase jitter) in the previous seasons, from the bins
    /// completed before this one. `None` until two seasons are known around this phase.
    pub fn update(&mut self, time: f64, value: f64, season_secs: f64, bins: usize) -> Option<f64> {
        if bins == 0 || season_secs <= 0.0 {
            return None;
        }
        let len = SEASONS as usize * bins + 2;
        if self.slots.len() != len {
            // First use, or the bin count changed: start over rather than misread the ring.
            self.slots = vec![(i64::MIN, 0.0); len];
            self.open = None;
        }
        let bin_secs = season_secs / bins as f64;
        let bin = (time / bin_secs).floor() as i64;
        match &mut self.open {
            Some((open, sum, count)) if *open == bin => {
                *sum += value;
                *count += 1;
            }
            open => {
                if let Some((done, sum, count)) = open.take() {
                    self.slots[done.rem_euclid(len as i64) as usize] = (done, sum / count as f64);
                }
                *open = Some((bin, value, 1));
            }
        }
        self.baseline(bin, bins as i64, len as i64)
    }

    /// The median of the bins `bin − k × bins ± 1`, k in 1..=SEASONS, that hold data.
    fn baseline(&self, bin: i64, bins: i64, len: i64) -> Option<f64> {
        let mut past = [0.0; 3 * SEASONS as usize];
        let mut found = 0;
        let mut seasons = 0;
        for season in 1..=SEASONS {
            let mut any = false;
            for offset in -1..=1 {
                let at = bin - season * bins + offset;
                let (held, mean) = self.slots[at.rem_euclid(len) as usize];
                if held == at {
                    past[found] = mean;
                    found += 1;
                    any = true;
                }
            }
            seasons += usize::from(any);
        }
        if seasons < MIN_SEASONS {
            return None;
        }
        let past = &mut past[..found];
        past.sort_by(f64::total_cmp);
        Some(if found % 2 == 1 {
            past[found / 2]
        } else {
            (past[found / 2 - 1] + past[found / 2]) / 2.0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scenario: a day of 1,000 s in 10 bins; a gap of a whole day in the data.
    /// Guarantees: bins from before the gap are still found (by their absolute number), and a
    /// single remembered season is not enough.
    #[test]
    fn gaps_and_too_little_history() {
        let mut p = SeasonProfile::default();
        for t in (0..1000).step_by(10) {
            p.update(t as f64, 1.0, 1000.0, 10);
        }
        // Day 1 missing; in the middle of day 2 only day 0 is in reach.
        assert_eq!(p.update(2550.0, 2.0, 1000.0, 10), None);
        for t in (2560..3000).step_by(10) {
            p.update(t as f64, 2.0, 1000.0, 10);
        }
        // Day 3: days 2 and 0 → median of {1,1,1,2,2,2} = 1.5.
        assert_eq!(p.update(3650.0, 0.0, 1000.0, 10), Some(1.5));
    }

    /// Scenario: the profile's state saved as JSON and restored.
    /// Guarantees: the restored profile answers as the original.
    #[test]
    fn state_round_trips() {
        let mut p = SeasonProfile::default();
        for t in 0..250 {
            p.update(t as f64, (t % 100) as f64, 100.0, 10);
        }
        let mut restored: SeasonProfile =
            serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(
            restored.update(255.0, 0.0, 100.0, 10),
            p.update(255.0, 0.0, 100.0, 10)
        );
    }
}
