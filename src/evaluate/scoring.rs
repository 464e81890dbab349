//! The NAB v1.1 scoring rules, exactly as `../shared/nab/README.md` states them: per-row
//! weights from the labelled windows, a threshold swept over the whole corpus per profile, a
//! normalised score, and the event-level view (window hits, false-positive runs).

/// A scoring profile: rewards and costs.
#[derive(Clone, Copy, Debug)]
pub struct Profile {
    /// Name as NAB reports it.
    pub name: &'static str,
    /// Reward of a detected window (at its start).
    pub tp: f64,
    /// Cost of a detection outside windows (far from one).
    pub fp: f64,
    /// Cost of a missed window.
    pub fn_: f64,
}

/// NAB's three profiles.
pub const PROFILES: [Profile; 3] = [
    Profile {
        name: "standard",
        tp: 1.0,
        fp: 0.11,
        fn_: 1.0,
    },
    Profile {
        name: "reward_low_FP_rate",
        tp: 1.0,
        fp: 0.22,
        fn_: 1.0,
    },
    Profile {
        name: "reward_low_FN_rate",
        tp: 1.0,
        fp: 0.11,
        fn_: 2.0,
    },
];

/// One scored file: its labelled windows (inclusive row ranges, in order) and a score per row.
#[derive(Clone, Debug)]
pub struct ScoredFile {
    /// Inclusive `(first, last)` row indices of each window.
    pub windows: Vec<(usize, usize)>,
    /// The detector's score per row.
    pub scores: Vec<f64>,
}

impl ScoredFile {
    /// Rows not scored: `min(floor(0.15 n), 750)`.
    pub fn probation(&self) -> usize {
        ((0.15 * self.scores.len() as f64).floor() as usize).min(750)
    }

    /// Windows that are counted (not wholly in probation).
    fn counted(&self) -> impl Iterator<Item = (usize, (usize, usize))> + '_ {
        let probation = self.probation();
        self.windows
            .iter()
            .copied()
            .enumerate()
            .filter(move |(_, (_, last))| *last >= probation)
    }

    /// Per row: its weight under `profile` and the window it lies in, if any.
    fn weights(&self, profile: &Profile) -> Vec<(f64, Option<usize>)> {
        let mut out = Vec::with_capacity(self.scores.len());
        let mut next = 0;
        let mut previous: Option<(usize, usize)> = None;
        for i in 0..self.scores.len() {
            while next < self.windows.len() && self.windows[next].1 < i {
                previous = Some(self.windows[next]);
                next += 1;
            }
            let inside = self
                .windows
                .get(next)
                .filter(|(first, last)| (*first..=*last).contains(&i));
            out.push(match (inside, previous) {
                (Some(&(first, last)), _) => {
                    let width = (last - first + 1) as f64;
                    let x = -((last - i + 1) as f64) / width;
                    (sigma(x) * profile.tp / sigma(-1.0), Some(next))
                }
                (None, None) => (-profile.fp, None),
                (None, Some((first, last))) => {
                    let width = (last - first + 1) as f64;
                    let x = (last.abs_diff(i) as f64) / (width - 1.0);
                    (sigma(x) * profile.fp, None)
                }
            });
        }
        out
    }
}

/// NAB's scaled sigmoid: `2 / (1 + e^(5x)) − 1`, and −1 beyond x = 3.
fn sigma(x: f64) -> f64 {
    if x > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * x).exp()) - 1.0
    }
}

/// A profile's result over a corpus.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProfileScore {
    /// `100 (S − S_null) / (S_perfect − S_null)`.
    pub normalized: f64,
    /// The raw score S at the chosen threshold.
    pub raw: f64,
    /// The threshold maximising S.
    pub threshold: f64,
}

/// Sweeps every distinct score (highest first) and keeps the threshold maximising the
/// corpus's score under `profile`.
pub fn score(files: &[ScoredFile], profile: &Profile) -> ProfileScore {
    // (score, file, row, weight, window slot)
    let mut rows = Vec::new();
    let mut slots = Vec::new(); // per counted window: (file, earliest detection row)
    let mut weights = Vec::with_capacity(files.len());
    let mut base = 0.0;
    for (f, file) in files.iter().enumerate() {
        let w = file.weights(profile);
        let mut slot_of = vec![None; file.windows.len()];
        for (k, _) in file.counted() {
            slot_of[k] = Some(slots.len());
            slots.push(None::<usize>);
            base -= profile.fn_;
        }
        for (i, (&s, &(weight, window))) in file.scores.iter().zip(&w).enumerate() {
            if i >= file.probation() {
                rows.push((s, f, i, weight, window.map(|k| slot_of[k])));
            }
        }
        weights.push(w);
    }
    let windows = slots.len() as f64;
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut total = base;
    let mut best = (total, rows.first().map_or(0.0, |r| r.0 + 1.0));
    let mut k = 0;
    while k < rows.len() {
        let threshold = rows[k].0;
        while k < rows.len() && rows[k].0 == threshold {
            let (_, f, i, weight, window) = rows[k];
            match window {
                // A window wholly in probation: its rows count for nothing.
                Some(None) => {}
                Some(Some(slot)) => match slots[slot] {
                    None => {
                        total += profile.fn_ + weight;
                        slots[slot] = Some(i);
                    }
                    Some(earliest) if i < earliest => {
                        total += weight - weights[f][earliest].0;
                        slots[slot] = Some(i);
                    }
                    Some(_) => {}
                },
                None => total += weight,
            }
            k += 1;
        }
        if total > best.0 {
            best = (total, threshold);
        }
    }
    let (raw, threshold) = best;
    let null = -profile.fn_ * windows;
    let perfect = profile.tp * windows;
    ProfileScore {
        normalized: if windows > 0.0 {
            100.0 * (raw - null) / (perfect - null)
        } else {
            0.0
        },
        raw,
        threshold,
    }
}

/// The event-level view at a threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Events {
    /// Counted windows holding a detection.
    pub hit: usize,
    /// Counted windows without one.
    pub missed: usize,
    /// Runs of consecutive detections outside windows.
    pub false_positives: usize,
}

impl Events {
    /// hit / (hit + false positives).
    pub fn precision(&self) -> f64 {
        ratio(self.hit, self.hit + self.false_positives)
    }

    /// hit / windows.
    pub fn recall(&self) -> f64 {
        ratio(self.hit, self.hit + self.missed)
    }

    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Window hits and false-positive events at `threshold` (rows in probation ignored).
pub fn events(files: &[ScoredFile], threshold: f64) -> Events {
    let mut events = Events::default();
    for file in files {
        let probation = file.probation();
        let detected = |i: usize| i >= probation && file.scores[i] >= threshold;
        for (_, (first, last)) in file.counted() {
            if (first..=last).any(detected) {
                events.hit += 1;
            } else {
                events.missed += 1;
            }
        }
        let mut in_run = false;
        for i in probation..file.scores.len() {
            let outside = !file.windows.iter().any(|(a, b)| (*a..=*b).contains(&i));
            let fp = detected(i) && outside;
            if fp && !in_run {
                events.false_positives += 1;
            }
            in_run = fp;
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(n: usize, windows: Vec<(usize, usize)>, detections: &[usize]) -> ScoredFile {
        let mut scores = vec![0.0; n];
        for &d in detections {
            scores[d] = 1.0;
        }
        ScoredFile { windows, scores }
    }

    /// Scenario: a window of width 10 detected at its first row, nothing else.
    /// Guarantees: S = A_TP · σ(−1)/σ(−1) = 1 at θ = 1, normalised 100.
    #[test]
    fn a_detection_at_the_start_of_the_window_is_perfect() {
        let f = file(100, vec![(50, 59)], &[50]);
        let s = score(&[f], &PROFILES[0]);
        assert!((s.raw - 1.0).abs() < 1e-12);
        assert!((s.normalized - 100.0).abs() < 1e-9);
        assert_eq!(s.threshold, 1.0);
    }

    /// Scenario: one detection before any window (a false positive) and a missed window.
    /// Guarantees: the best threshold detects nothing: S = −A_FN, normalised 0; the event view
    /// at θ = 1 counts the miss and the false positive.
    #[test]
    fn false_positives_only_lower_the_score() {
        let f = file(100, vec![(80, 89)], &[30]);
        let s = score(std::slice::from_ref(&f), &PROFILES[0]);
        assert_eq!(s.raw, -1.0);
        assert_eq!(s.normalized, 0.0);
        let e = events(&[f], 1.0);
        assert_eq!((e.hit, e.missed, e.false_positives), (0, 1, 1));
    }

    /// Scenario: detections in the probation period (first 15%) and a window wholly in it.
    /// Guarantees: both are ignored.
    #[test]
    fn probation_is_not_scored() {
        let f = file(100, vec![(2, 5), (50, 59)], &[3, 10, 55]);
        assert_eq!(f.probation(), 15);
        let s = score(&[f], &PROFILES[0]);
        let late = sigma(-(59.0 - 55.0 + 1.0) / 10.0) / sigma(-1.0);
        assert!((s.raw - late).abs() < 1e-12);
    }

    /// Scenario: a detection just after a window, and one far after it.
    /// Guarantees: the near one costs almost nothing, the far one the full A_FP.
    #[test]
    fn false_positives_right_after_a_window_cost_little() {
        let f = file(1000, vec![(200, 299)], &[]);
        let w = f.weights(&PROFILES[0]);
        assert!(w[300].0 > -0.01);
        assert!((w[900].0 + 0.11).abs() < 1e-9);
        assert!((w[100].0 + 0.11).abs() < 1e-12);
    }
}
