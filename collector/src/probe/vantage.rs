//! One vantage point's verdict on one endpoint: Route 53's `FailureThreshold`, the same number
//! of consecutive results in both directions (symmetric hysteresis). A new endpoint counts as
//! healthy until the results say otherwise.

/// The verdict of this collector on one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    threshold: u32,
    healthy: bool,
    /// Consecutive results disagreeing with `healthy`.
    against: u32,
}

impl Verdict {
    /// A healthy verdict that flips after `threshold` consecutive disagreeing results.
    pub fn new(threshold: u32) -> Self {
        Self {
            threshold: threshold.max(1),
            healthy: true,
            against: 0,
        }
    }

    /// Takes one result; returns whether the verdict flipped.
    ///
    /// ```
    /// use meridian_collector::probe::Verdict;
    /// let mut v = Verdict::new(3);
    /// assert!(!v.observe(false) && !v.observe(false));
    /// assert!(v.observe(false) && !v.healthy());
    /// assert!(!v.observe(true) && !v.observe(false), "a pass between failures resets the count");
    /// ```
    pub fn observe(&mut self, ok: bool) -> bool {
        if ok == self.healthy {
            self.against = 0;
            return false;
        }
        self.against += 1;
        if self.against >= self.threshold {
            self.healthy = ok;
            self.against = 0;
            return true;
        }
        false
    }

    /// Whether this vantage point says the endpoint is healthy.
    pub fn healthy(&self) -> bool {
        self.healthy
    }
}
