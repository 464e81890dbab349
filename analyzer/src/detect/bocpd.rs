//! The run-length posterior of Bayesian online changepoint detection (Adams & MacKay 2007) for
//! a Gaussian of unknown mean and precision under a Normal-Gamma prior: the recursion of the
//! `changepoint` crate's `BocpdTruncated` (the same hypotheses, the same visiting order, cut-offs
//! and truncation, so its results are kept), with the predictive computed in closed form.
//!
//! Why not the crate's step: it rebuilds two posteriors and takes four logarithms and two
//! log-gamma functions per hypothesis and point, and a series holds 60–240 hypotheses. Here the
//! terms that depend only on a hypothesis' number of observations come from a table shared by
//! every series, and the logarithm of the scale computed for the predictive is the one the
//! posterior keeps after observing the value: one `ln` and one `exp` per hypothesis.

use std::collections::VecDeque;
use std::sync::OnceLock;

/// The prior's location, precision scale, rate and shape (rv's `NormalGamma(m, r, s, v)`).
const PRIOR_M: f64 = 0.0;
const PRIOR_R: f64 = 1.0;
const PRIOR_S: f64 = 1.0;
const PRIOR_V: f64 = 1.0;
/// Once the run lengths visited (longest first) hold all but this much mass, the shorter ones
/// are not updated this step (the crate's `cdf_threshold`).
const VISITED_MASS: f64 = 1e-3;
/// The longest run lengths whose mass sums to at most this are dropped (`cutoff_threshold`).
const TAIL_MASS: f64 = 1e-6;
/// Observation counts whose predictive constants are tabulated; beyond, they are computed.
const TABLED: usize = 1024;

/// The posterior of one run-length hypothesis. Its number of observations is its place among
/// the hypotheses (the newest, first, has seen none when a value arrives), so it is not kept.
#[derive(Clone, Copy, Debug)]
struct Posterior {
    /// Location.
    m: f64,
    /// Rate (rv's `s`).
    s: f64,
    /// `ln s`.
    ln_s: f64,
}

const PRIOR: Posterior = Posterior {
    m: PRIOR_M,
    s: PRIOR_S,
    ln_s: 0.0, // ln(PRIOR_S)
};

impl Posterior {
    /// `ln` of the posterior predictive density of `y` (a Student-t), then `y` added: the
    /// logarithm of the rate after `y` is both the predictive's and the new posterior's.
    fn predict_and_observe(&mut self, terms: &Terms, y: f64) -> f64 {
        let d = y - self.m;
        let s_next = self.s + terms.shrink * d * d;
        let ln_s_next = s_next.ln();
        let ln_p = terms.constant + terms.half_v * self.ln_s - (terms.half_v + 0.5) * ln_s_next;
        self.m += d * terms.step;
        self.s = s_next;
        self.ln_s = ln_s_next;
        ln_p
    }

    /// Adds `y` (a hypothesis whose predictive was not needed).
    fn observe(&mut self, terms: &Terms, y: f64) {
        let d = y - self.m;
        self.s += terms.shrink * d * d;
        self.ln_s = self.s.ln();
        self.m += d * terms.step;
    }
}

/// What the predictive and the update need that depends only on the number of observations.
#[derive(Clone, Copy, Debug)]
struct Terms {
    /// The terms of `ln p(y)` without the rate: those of the normalising constants
    /// `ln Z(r, v)` of the posterior after and before `y`, and `-½ ln 2π`.
    constant: f64,
    /// `v / 2`.
    half_v: f64,
    /// `r / (r + 1)`: how much of the squared surprise the rate takes.
    shrink: f64,
    /// `1 / (r + 1)`: how far the location moves towards a new value.
    step: f64,
}

/// The [`Terms`] of posteriors of 0, 1, 2, … observations, tabulated once for all series.
fn table() -> &'static [Terms] {
    static TABLE: OnceLock<Vec<Terms>> = OnceLock::new();
    TABLE.get_or_init(|| (0..TABLED as u32).map(compute_terms).collect())
}

/// The [`Terms`] of a posterior of `n` observations.
fn terms(table: &[Terms], n: usize) -> Terms {
    match table.get(n) {
        Some(t) => *t,
        None => compute_terms(u32::try_from(n).unwrap_or(u32::MAX)),
    }
}

fn compute_terms(n: u32) -> Terms {
    use changepoint::rv::misc::ln_gammafn;
    use std::f64::consts::{LN_2, PI};
    let n = f64::from(n);
    let (r, v) = (PRIOR_R + n, PRIOR_V + n);
    // ln Z(r, s, v) = (v + 1)/2 ln 2 + ½ ln π − ½ ln r − v/2 ln s + ln Γ(v/2); the s terms are
    // the caller's.
    let constant = -0.5 * (2.0 * PI).ln() + 0.5 * LN_2 - 0.5 * ((r + 1.0) / r).ln()
        + ln_gammafn(0.5 * (v + 1.0))
        - ln_gammafn(0.5 * v);
    Terms {
        constant,
        half_v: 0.5 * v,
        shrink: r / (r + 1.0),
        step: 1.0 / (r + 1.0),
    }
}

/// The run-length distribution of one series, stepped one value at a time.
///
/// ```
/// # use meridian_analyzer::detect::bocpd::RunLengths;
/// let mut run = RunLengths::new(100.0);
/// for i in 0..50 {
///     run.step(if i % 2 == 0 { 0.1 } else { -0.1 });
/// }
/// // Stable: most mass on a long run. Then a jump: mass moves to short runs.
/// assert!(run.step(0.0)[..5].iter().sum::<f64>() < 0.1);
/// let short = (0..3).map(|_| run.step(6.0)[..5].iter().sum::<f64>()).last();
/// assert!(short.unwrap() > 0.5);
/// ```
#[derive(Clone, Debug)]
pub struct RunLengths {
    /// The probability of a change per point.
    hazard: f64,
    /// `probabilities[i]`: the probability that the current run has length `i`.
    probabilities: Vec<f64>,
    /// One posterior per hypothesis, the newest first.
    posteriors: VecDeque<Posterior>,
}

impl RunLengths {
    /// Expecting a change every `lambda` points.
    pub fn new(lambda: f64) -> Self {
        Self {
            hazard: lambda.recip(),
            probabilities: Vec::new(),
            posteriors: VecDeque::new(),
        }
    }

    /// Adds `y`; returns the run-length distribution (index = run length, sums to one).
    pub fn step(&mut self, y: f64) -> &[f64] {
        self.posteriors.push_front(PRIOR);
        let table = table();
        // Hypotheses below this one have not taken `y` yet.
        let mut unobserved = self.posteriors.len();
        if self.probabilities.is_empty() {
            // The first value is by definition a changepoint.
            self.probabilities.push(1.0);
        } else {
            unobserved = self.grow(table, y);
        }
        for (n, posterior) in self.posteriors.iter_mut().enumerate().take(unobserved) {
            posterior.observe(&terms(table, n), y);
        }
        &self.probabilities
    }

    /// Moves each hypothesis' mass one run length on (or to a new run), weighted by how well
    /// it predicted `y`, then normalises and drops the negligible longest runs. The
    /// hypotheses it visits take `y` as they predict it; returns how many (from the newest)
    /// it did not reach.
    fn grow(&mut self, table: &[Terms], y: f64) -> usize {
        let h = self.hazard;
        let r = &mut self.probabilities;
        r.push(0.0);
        let (mut changed, mut total, mut seen) = (0.0, 0.0, 0.0);
        let last = r.len() - 1;
        // The longest run's posterior predicts nothing this step.
        self.posteriors[last].observe(&terms(table, last), y);
        let mut unobserved = 0;
        for i in (0..last).rev() {
            let terms = terms(table, i);
            if r[i] == 0.0 {
                r[i + 1] = 0.0;
                self.posteriors[i].observe(&terms, y);
                continue;
            }
            let pp = self.posteriors[i].predict_and_observe(&terms, y).exp();
            seen += r[i];
            r[i + 1] = r[i] * pp * (1.0 - h);
            changed += r[i] * pp * h;
            total += r[i + 1];
            if 1.0 - seen < VISITED_MASS {
                unobserved = i;
                break;
            }
        }
        total += changed;
        r[0] = changed;
        // The longest runs whose mass (after normalising by `total`) is at most TAIL_MASS go;
        // the crate keeps one more than the run that crosses it.
        let limit = TAIL_MASS * total;
        let mut tail = 0.0;
        let crossing = r.iter().rev().position(|p| {
            tail += p;
            tail > limit
        });
        if let Some(k) = crossing {
            let keep = (r.len() + 1 - k).min(r.len());
            r.truncate(keep);
            self.posteriors.truncate(keep);
        }
        let kept: f64 = r.iter().sum();
        for p in r.iter_mut() {
            *p /= kept;
        }
        unobserved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use changepoint::rv::dist::{Gaussian, NormalGamma};
    use changepoint::{BocpdLike, BocpdTruncated};
    use proptest::prelude::*;

    fn compare(values: &[f64], lambda: f64) {
        let mut reference: BocpdTruncated<f64, Gaussian, NormalGamma> = BocpdTruncated::new(
            lambda,
            NormalGamma::new_unchecked(PRIOR_M, PRIOR_R, PRIOR_S, PRIOR_V),
        );
        let mut ours = RunLengths::new(lambda);
        for (t, y) in values.iter().enumerate() {
            let expected = reference.step(y);
            let got = ours.step(*y);
            assert_eq!(got.len(), expected.len(), "hypotheses at {t}");
            for (i, (a, b)) in got.iter().zip(expected).enumerate() {
                assert!((a - b).abs() <= 1e-9, "run length {i} at {t}: {a} vs {b}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// The same distribution as the crate's recursion, step for step, on clipped
        /// standardised values with shifts (what the detector feeds it).
        #[test]
        fn matches_the_changepoint_crate(
            segments in prop::collection::vec((-3.0f64..3.0, 0.05f64..1.5, 1usize..120), 1..6),
            noise in prop::collection::vec(-1.0f64..1.0, 400),
            lambda in 2.0f64..400.0,
        ) {
            let values: Vec<f64> = segments
                .iter()
                .flat_map(|(level, spread, len)| (0..*len).map(move |i| (*level, *spread, i)))
                .zip(noise.iter().cycle())
                .map(|((level, spread, _), e)| (level + spread * e).clamp(-3.0, 3.0))
                .collect();
            compare(&values, lambda);
        }
    }

    #[test]
    fn matches_on_constant_and_alternating_series() {
        compare(&[0.0; 300], 250.0);
        let alternating: Vec<f64> = (0..300)
            .map(|i| if i % 2 == 0 { 3.0 } else { -3.0 })
            .collect();
        compare(&alternating, 250.0);
    }
}
