//! Level shifts and changepoints by Bayesian online changepoint detection (BOCPD, Adams &
//! MacKay 2007; the recursion of the `changepoint` crate augurs-changepoint wraps, stepped
//! online by [`super::bocpd::RunLengths`]). It is fed values standardised by a robust rolling
//! median and spread ([`super::robust::RobustDeviation`]), clipped so one outlier does not start a new segment (a
//! Gaussian model would) while a sustained shift does.

use super::bocpd::RunLengths;

/// Standardised values are clipped to ± this before they reach BOCPD.
const CLIP: f64 = 3.0;
/// Run lengths shorter than this count as "a new segment just started".
const SHORT_RUN: usize = 8;
/// BOCPD keeps one hypothesis per possible run length, so on a stable series its work per
/// point grows without end; past this many the detector is rebuilt from the last `KEEP`
/// values (a run of `KEEP` is as "stable" as a longer one for what is reported here).
const MAX_RUN_LENGTHS: usize = 240;
/// Values kept to rebuild from.
const KEEP: usize = 60;

/// A changepoint found at the current point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Change {
    /// Posterior probability that a new segment started within the last few points.
    pub probability: f64,
}

/// Online changepoint detection for one series.
///
/// ```
/// # use meridian_analyzer::detect::changepoint::Changepoints;
/// let mut c = Changepoints::new(250.0, 30);
/// // Standardised noise (spread about 1), as the robust z gives.
/// let noise = |i: usize| ((i * 7919) % 11) as f64 / 5.0 * 1.7 - 1.7;
/// let mut found = Vec::new();
/// for i in 0..300 {
///     // Standardised values: an outlier at 150, a shift by 2.5 spreads at 200.
///     let z = if i == 150 { 9.0 } else if i < 200 { 0.0 } else { 2.5 } + noise(i);
///     if c.update(z).is_some() {
///         found.push(i);
///     }
/// }
/// assert!(found.iter().any(|i| (200..210).contains(i)), "{found:?}");
/// assert!(found.iter().all(|i| *i >= 200), "{found:?}");
/// // Bounded work: a long stable series does not grow the hypotheses without end.
/// for i in 0..3000 {
///     c.update(noise(i));
/// }
/// assert!(c.run_lengths() <= 240);
/// ```
#[derive(Debug, Clone)]
pub struct Changepoints {
    bocpd: RunLengths,
    hazard: f64,
    /// Run lengths held after the last step.
    held: usize,
    /// The last `KEEP` clipped values.
    recent: std::collections::VecDeque<f64>,
    /// The most probable run length after each of the last points.
    map_run: usize,
    /// Points in the current stable run before it (a change needs a stable past).
    min_run: usize,
    /// Whether the current new segment was already reported.
    reported: bool,
}

impl Changepoints {
    /// A detector expecting a change every `hazard` points, reporting one only after a run
    /// of at least `min_run` points.
    pub fn new(hazard: f64, min_run: usize) -> Self {
        let hazard = hazard.max(2.0);
        Self {
            bocpd: RunLengths::new(hazard),
            hazard,
            held: 0,
            recent: std::collections::VecDeque::with_capacity(KEEP),
            map_run: 0,
            min_run,
            reported: false,
        }
    }

    /// Hypotheses (run lengths) held after the last value; bounded by the rebuilds.
    pub fn run_lengths(&self) -> usize {
        self.held
    }

    /// Adds the next standardised value (signed robust z); `Some` when a new segment has just
    /// started after a stable one.
    pub fn update(&mut self, z: f64) -> Option<Change> {
        if !z.is_finite() {
            return None;
        }
        let z = z.clamp(-CLIP, CLIP);
        if self.recent.len() == KEEP {
            self.recent.pop_front();
        }
        self.recent.push_back(z);
        let run_lengths = self.bocpd.step(z);
        self.held = run_lengths.len();
        let map_run = run_lengths
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        let short: f64 = run_lengths.iter().take(SHORT_RUN).sum();
        if self.held > MAX_RUN_LENGTHS {
            self.bocpd = RunLengths::new(self.hazard);
            for v in &self.recent {
                self.held = self.bocpd.step(*v).len();
            }
        }
        let was_stable = self.map_run >= self.min_run;
        self.map_run = map_run;
        if map_run >= SHORT_RUN {
            self.reported = false;
            return None;
        }
        if was_stable && !self.reported && short >= 0.5 {
            self.reported = true;
            return Some(Change {
                probability: short.min(1.0),
            });
        }
        None
    }
}
