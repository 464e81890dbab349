//! The detector of one series. Six views of each point, all causal:
//! - level: distance from the rolling median (robust spread units);
//! - jump: the change from the previous point against the usual changes;
//! - shift: the median of the last `shift_points` against the rolling median (level shifts);
//! - pattern: the last `pattern_points` as a shape, against remembered shapes;
//! - seasonal: distance from the same phase of the previous days (a downsampled profile of
//!   them when a day holds too many points);
//! - range: a value beyond everything the series has shown.
//!
//! Each deviation is scored by its [`Rarity`] against the largest of its kind in the series'
//! history, so one threshold fits quiet and noisy series alike; the strongest view is the
//! point's score. After a firing, weaker scores are damped for a while so one incident is one
//! alert, not hundreds.

use serde::{Deserialize, Serialize};

use super::pattern::PatternNovelty;
use super::range::RangeNovelty;
use super::rarity::Rarity;
use super::robust::{Deviation, RobustDeviation};
use super::seasonal::SeasonalBaseline;
use super::window::SortedWindow;

/// Settings of the streaming detectors (`[analyzer.detect.series]`); one set serves every
/// series, live and offline (`meridian detect`, `meridian evaluate nab`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeriesConfig {
    /// Points the rolling median and spread are taken over.
    pub window: usize,
    /// Points whose largest deviation a new one is compared with.
    pub history: usize,
    /// Steepness of the score around the previous maximum.
    pub power: f64,
    /// Points seen before any score is given.
    pub warmup: usize,
    /// Length of a season (seconds); the seasonal detector runs when a season spans 4 to
    /// `max_season_points` points.
    pub season_secs: f64,
    /// Most points a season may span for the seasonal detector to compare samples; a longer
    /// season (a day at 10 s) is compared through a profile of `profile_bins` slots.
    pub max_season_points: usize,
    /// Slots of the downsampled daily profile (288: 5-minute slots of a day; 0: no profile).
    pub profile_bins: usize,
    /// A value within this many spreads of its daily profile is usual for the time of day:
    /// its level, jump, shift and pattern scores are multiplied by `damping` (0: off).
    pub profile_explains_z: f64,
    /// A score at or above this starts a refractory period...
    pub fire: f64,
    /// ...of this many points, in which weaker scores are multiplied by `damping`.
    pub refractory: usize,
    /// Damping factor in the refractory period.
    pub damping: f64,
    /// A value beyond the series' whole range by more than this fraction of it scores at
    /// least 0.75.
    pub range_tolerance: f64,
    /// Deviation scores are multiplied by this, so that new extremes outrank them.
    pub deviation_weight: f64,
    /// Seasonal deviations seen before they are scored.
    pub seasonal_warmup: usize,
    /// Points of the recent median compared with the window's, for sustained shifts (0: off).
    pub shift_points: usize,
    /// Points in a shape for the pattern detector (0: off).
    pub pattern_points: usize,
    /// Shapes remembered.
    pub pattern_memory: usize,
    /// Every this many points a shape is remembered.
    pub pattern_stride: usize,
}

impl Default for SeriesConfig {
    fn default() -> Self {
        Self {
            window: 100,
            history: 10_000,
            power: 2.0,
            warmup: 100,
            season_secs: 86_400.0,
            max_season_points: 2000,
            profile_bins: 288,
            profile_explains_z: 3.0,
            fire: 0.4,
            refractory: 300,
            damping: 0.5,
            range_tolerance: 0.05,
            deviation_weight: 0.7,
            seasonal_warmup: 300,
            shift_points: 48,
            pattern_points: 12,
            pattern_memory: 125,
            pattern_stride: 16,
        }
    }
}

/// Which detector gave a point its score.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// The value is far from the recent median.
    #[default]
    Level,
    /// The change from the previous value is far from the usual changes.
    Jump,
    /// The value is far from the same time in previous seasons.
    Seasonal,
    /// The value is beyond the series' whole range.
    Range,
    /// The recent values as a group have moved away from the window's median.
    Shift,
    /// The recent shape is unlike any remembered one.
    Pattern,
}

impl Detector {
    /// The name stored in the `anomalies` table.
    pub fn name(self) -> &'static str {
        match self {
            Detector::Level => "level",
            Detector::Jump => "jump",
            Detector::Seasonal => "seasonal",
            Detector::Range => "range",
            Detector::Shift => "shift",
            Detector::Pattern => "pattern",
        }
    }
}

/// What the detector says about one point.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Verdict {
    /// Anomaly score in [0, 1].
    pub score: f64,
    /// The value expected by the detector that scored highest.
    pub expected: f64,
    /// The spread around `expected` (a standard deviation for normal data).
    pub spread: f64,
    /// The detector that scored highest.
    pub detector: Detector,
}

/// The streaming detector of one series: causal, bounded memory, serialisable state.
///
/// ```
/// # use meridian_analyzer::detect::{SeriesConfig, SeriesDetector};
/// let mut d = SeriesDetector::new(&SeriesConfig::default());
/// let mut last = 0.0;
/// for i in 0..2000 {
///     last = d.update(i as f64 * 300.0, 100.0 + ((i * 7919) % 13) as f64).score;
/// }
/// assert!(last < 0.6);
/// assert!(d.update(2000.0 * 300.0, 400.0).score > 0.9);
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeriesDetector {
    config: SeriesConfig,
    previous: Option<f64>,
    level: RobustDeviation,
    jump: RobustDeviation,
    seasonal: SeasonalBaseline,
    level_rarity: Rarity,
    jump_rarity: Rarity,
    seasonal_rarity: Rarity,
    range: RangeNovelty,
    recent: SortedWindow,
    shift_rarity: Rarity,
    pattern: PatternNovelty,
    pattern_rarity: Rarity,
    seen: u64,
    last_fire: Option<u64>,
    fired_level: f64,
}

impl SeriesDetector {
    /// A detector with no history.
    pub fn new(config: &SeriesConfig) -> Self {
        let rarity = || Rarity::new(config.history, config.power, config.warmup);
        Self {
            config: config.clone(),
            previous: None,
            level: RobustDeviation::new(config.window),
            jump: RobustDeviation::new(config.window),
            seasonal: SeasonalBaseline::new(
                config.season_secs,
                config.max_season_points,
                config.profile_bins,
                config.window,
            ),
            level_rarity: rarity(),
            jump_rarity: rarity(),
            seasonal_rarity: Rarity::new(config.history, config.power, config.seasonal_warmup),
            range: RangeNovelty::new(config.range_tolerance, config.warmup),
            recent: SortedWindow::new(config.shift_points),
            shift_rarity: rarity(),
            pattern: PatternNovelty::new(
                config.pattern_points,
                config.pattern_memory,
                config.pattern_stride,
            ),
            pattern_rarity: rarity(),
            seen: 0,
            last_fire: None,
            fired_level: 0.0,
        }
    }

    /// Scores the next point (`time` in seconds, increasing) from the points before it only.
    /// A missing value (NaN, infinite) scores 0 and leaves the state as it was.
    pub fn update(&mut self, time: f64, value: f64) -> Verdict {
        if !value.is_finite() {
            return Verdict::default();
        }
        let level = self.level.update(value);
        let mut best = verdict(self.level_rarity.update(level.z), level, Detector::Level);

        let previous = self.previous.replace(value).unwrap_or(value);
        let jump = self.jump.update(value - previous);
        let expected = Deviation {
            expected: previous + jump.expected,
            ..jump
        };
        let score = self.jump_rarity.update(jump.z);
        stronger(&mut best, verdict(score, expected, Detector::Jump));

        if self.config.shift_points > 0 {
            self.recent.push(value);
            if level.spread > 0.0 {
                let z = (self.recent.quantile(0.5) - level.expected).abs() / level.spread;
                let score = self.shift_rarity.update(z);
                stronger(&mut best, verdict(score, level, Detector::Shift));
            }
        }
        if self.config.pattern_points > 0 && level.spread > 0.0 {
            let shape = (value - level.expected) / level.spread;
            let score = self.pattern_rarity.update(self.pattern.update(shape));
            stronger(&mut best, verdict(score, level, Detector::Pattern));
        }
        if let Some(s) = self.seasonal.update(time, value) {
            let warmed = self.seasonal_rarity.warmed();
            let score = self.seasonal_rarity.update(s.z);
            // The daily shape explains a diurnal ramp that the recent-history views see as a
            // change. Only through the profile: at sample resolution (NAB's 5-minute data) the
            // seasonal view competes with the others as it was scored.
            let explains = self.config.profile_explains_z;
            if explains > 0.0
                && warmed
                && s.spread > 0.0
                && s.z < explains
                && self.seasonal.profiled()
            {
                best.score *= self.config.damping;
            }
            stronger(&mut best, verdict(score, s, Detector::Seasonal));
        }
        // New extremes outrank deviations: they are rare and mean something on any series.
        best.score *= self.config.deviation_weight;
        let novelty = self.range.update(value);
        stronger(&mut best, verdict(novelty, level, Detector::Range));

        self.seen += 1;
        best.score = self.refract(best.score);
        best
    }

    /// One incident, one firing: inside the refractory period only a stronger score than the
    /// one that fired passes undamped (and restarts the period).
    fn refract(&mut self, score: f64) -> f64 {
        let now = self.seen;
        let within = self
            .last_fire
            .is_some_and(|at| now - at <= self.config.refractory as u64);
        if within {
            if score > self.fired_level {
                self.fired_level = score;
                self.last_fire = Some(now);
                score
            } else {
                score * self.config.damping
            }
        } else {
            if score >= self.config.fire {
                self.fired_level = score;
                self.last_fire = Some(now);
            }
            score
        }
    }
}

/// Keeps the candidate if it scores higher.
fn stronger(best: &mut Verdict, candidate: Verdict) {
    if candidate.score > best.score {
        *best = candidate;
    }
}

fn verdict(score: f64, deviation: Deviation, detector: Detector) -> Verdict {
    Verdict {
        score: score.clamp(0.0, 1.0),
        expected: deviation.expected,
        spread: deviation.spread,
        detector,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daily-seasonal series at 5-minute steps with noise, a spike at 3000 and a level
    /// shift from 3500.
    fn series() -> Vec<(f64, f64)> {
        (0..4000)
            .map(|i| {
                let t = i as f64 * 300.0;
                let day = (t / 86_400.0 * std::f64::consts::TAU).sin() * 20.0;
                let noise = ((i * 7919) % 17) as f64 - 8.0;
                let spike = if i == 3000 { 150.0 } else { 0.0 };
                let shift = if i >= 3500 { 60.0 } else { 0.0 };
                (t, 100.0 + day + noise + spike + shift)
            })
            .collect()
    }

    fn scores(detector: &mut SeriesDetector, points: &[(f64, f64)]) -> Vec<f64> {
        points
            .iter()
            .map(|(t, v)| detector.update(*t, *v).score)
            .collect()
    }

    /// Scenario: the same series scored whole, and scored only up to each cut point.
    /// Guarantees: no look-ahead — a point's score never depends on later points.
    #[test]
    fn scores_are_causal() {
        let points = series();
        let whole = scores(&mut SeriesDetector::new(&SeriesConfig::default()), &points);
        for cut in [500, 2999, 3001, 3600] {
            let prefix = scores(
                &mut SeriesDetector::new(&SeriesConfig::default()),
                &points[..cut],
            );
            assert_eq!(prefix, whole[..cut]);
        }
    }

    /// Scenario: a detector's state saved (JSON) mid-series and restored in a new process.
    /// Guarantees: the restored detector scores the rest exactly as an uninterrupted one.
    #[test]
    fn state_survives_a_restart() {
        let points = series();
        let mut uninterrupted = SeriesDetector::new(&SeriesConfig::default());
        let whole = scores(&mut uninterrupted, &points);
        let mut first = SeriesDetector::new(&SeriesConfig::default());
        scores(&mut first, &points[..2500]);
        let saved = serde_json::to_string(&first).unwrap();
        let mut restored: SeriesDetector = serde_json::from_str(&saved).unwrap();
        assert_eq!(scores(&mut restored, &points[2500..]), whole[2500..]);
    }

    /// Scenario: the series above.
    /// Guarantees: the spike, and the shift within half a shift window of its onset (it is
    /// smaller than the spike, so the shift view catches it), score above the default firing
    /// level and above every quiet point; scores stay in [0, 1].
    #[test]
    fn spike_and_shift_stand_out() {
        let points = series();
        let s = scores(&mut SeriesDetector::new(&SeriesConfig::default()), &points);
        assert!(s.iter().all(|x| (0.0..=1.0).contains(x)));
        let fire = SeriesConfig::default().fire;
        assert!(s[3000] >= fire, "spike scored {}", s[3000]);
        let onset = s[3500..3524].iter().cloned().fold(0.0, f64::max);
        assert!(onset >= fire, "shift scored {onset}");
        let quiet = s[1000..2990].iter().cloned().fold(0.0, f64::max);
        assert!(quiet < s[3000].min(onset), "a quiet point scored {quiet}");
    }

    /// Scenario: missing values (NaN) in the middle of a series.
    /// Guarantees: they score 0 and do not disturb the scores after them.
    #[test]
    fn missing_values_are_skipped() {
        let points = series();
        let mut with_gaps = points.clone();
        with_gaps.insert(2000, (599_950.0, f64::NAN));
        let a = scores(&mut SeriesDetector::new(&SeriesConfig::default()), &points);
        let b = scores(
            &mut SeriesDetector::new(&SeriesConfig::default()),
            &with_gaps,
        );
        assert_eq!(b[2000], 0.0);
        assert_eq!(a[2000..], b[2001..]);
    }

    /// A gateway's request rate every 10 s for `days` days: 20 req/s at night, a steep
    /// morning surge to 100 (07:30–08:00), a slow evening decline, counting noise; with
    /// `incident`, daytime traffic at 03:00–03:10 of day 5 (usual values, wrong time).
    fn gateway_rate(days: usize, incident: bool) -> Vec<(f64, f64)> {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut uniform = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..days * 8640)
            .map(|i| {
                let t = i as f64 * 10.0;
                let hour = t % 86_400.0 / 3600.0;
                let mut mean = match hour {
                    h if h < 7.5 => 20.0,
                    h if h < 8.0 => 20.0 + (h - 7.5) * 160.0,
                    h if h < 18.0 => 100.0,
                    h if h < 22.0 => 100.0 - (h - 18.0) * 20.0,
                    _ => 20.0,
                };
                let day = i / 8640;
                if incident && day == 5 && (3.0..3.0 + 10.0 / 60.0).contains(&hour) {
                    mean = 100.0;
                }
                // Counts of a 10 s interval: mean × 10 ± its square root (sum of uniforms).
                let noise: f64 = (0..12).map(|_| uniform()).sum::<f64>() - 6.0;
                (
                    t,
                    (mean * 10.0 + noise * (mean * 10.0).sqrt()).max(0.0) / 10.0,
                )
            })
            .collect()
    }

    /// Points of days 4 on (three days of profile learnt) scoring at least `min`, with the
    /// daily profile on or off.
    fn alarms(points: &[(f64, f64)], profile: bool, min: f64) -> Vec<usize> {
        let config = SeriesConfig {
            profile_bins: if profile { 288 } else { 0 },
            ..SeriesConfig::default()
        };
        let mut detector = SeriesDetector::new(&config);
        let scores = scores(&mut detector, points);
        (4 * 8640..points.len())
            .filter(|&i| scores[i] >= min)
            .collect()
    }

    /// Scenario: seven days of healthy gateway traffic at 10 s with a steep morning surge
    /// (8,640 points a day, beyond `max_season_points`), with and without the daily profile.
    /// Guarantees: with the profile, the surge and decline score lower: no more anomalies
    /// (score ≥ the live default 0.4) over days 4–7 than without it, and less than half as
    /// many points near the threshold (≥ 0.3).
    #[test]
    fn daily_profile_quiets_the_diurnal_surge() {
        let points = gateway_rate(7, false);
        let count = |profile, min| alarms(&points, profile, min).len();
        let (with, without) = (count(true, 0.4), count(false, 0.4));
        let (with_low, without_low) = (count(true, 0.3), count(false, 0.3));
        eprintln!(
            "healthy days 4-7, points scoring >= 0.4: {with} with the profile, {without} \
             without; >= 0.3: {with_low} with, {without_low} without"
        );
        assert!(
            with_low * 2 < without_low,
            "{with_low} with, {without_low} without"
        );
        assert!(with <= without, "{with} with, {without} without");
    }

    /// Scenario: the same traffic with daytime load at 03:00 for 10 minutes on day 5.
    /// Guarantees: the profile still flags it (usual values at the wrong time of day).
    #[test]
    fn daily_profile_flags_the_wrong_time_of_day() {
        let points = gateway_rate(7, true);
        let start = 5 * 8640 + 3 * 360;
        let caught = alarms(&points, true, 0.4)
            .into_iter()
            .any(|i| (start..start + 60).contains(&i));
        assert!(caught);
    }
}
