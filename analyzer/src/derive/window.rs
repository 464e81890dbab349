//! What one RED series collects during one interval, from spans and from histograms.

use serde::{Deserialize, Serialize};

use super::quantile;

/// The requests of one series in one interval.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WindowStats {
    /// Server spans seen.
    pub span_count: u64,
    /// Of which failed (HTTP 5xx or span status error).
    pub span_errors: u64,
    /// Their durations, ms.
    pub durations_ms: Vec<f64>,
    /// Requests counted by duration histograms (deltas).
    pub hist_count: u64,
    /// Of which failed, when the histogram carries the status code.
    pub hist_errors: u64,
    /// Whether the histogram counts carry the status code (so its errors can be trusted).
    pub hist_has_status: bool,
    /// Upper bucket bounds (ms) of the merged histogram.
    pub bounds_ms: Vec<f64>,
    /// Merged bucket counts (one more than `bounds_ms`).
    pub buckets: Vec<u64>,
}

/// The RED figures of one series and interval.
#[derive(Clone, Debug, PartialEq)]
pub struct Red {
    /// Requests.
    pub count: u64,
    /// Failed requests.
    pub errors: u64,
    /// Latency p50, p90, p99 (ms), when there were requests with durations.
    pub latency_ms: Option<[f64; 3]>,
    /// Where the counts come from: `spans`, `histogram` or `none`.
    pub count_source: &'static str,
    /// Where the latency comes from: `spans` or `histogram`.
    pub latency_source: Option<&'static str>,
}

impl WindowStats {
    /// Adds one span.
    pub fn add_span(&mut self, duration_ms: f64, error: bool) {
        self.span_count += 1;
        self.span_errors += u64::from(error);
        self.durations_ms.push(duration_ms);
    }

    /// Adds a histogram delta; buckets with other bounds than the first ones seen count but do
    /// not enter the percentiles.
    pub fn add_histogram(
        &mut self,
        count: u64,
        error: Option<bool>,
        bounds_ms: &[f64],
        buckets: &[u64],
    ) {
        self.hist_count += count;
        if let Some(error) = error {
            self.hist_has_status = true;
            if error {
                self.hist_errors += count;
            }
        }
        if buckets.len() != bounds_ms.len() + 1 {
            return;
        }
        if self.buckets.is_empty() {
            self.bounds_ms = bounds_ms.to_vec();
            self.buckets = buckets.to_vec();
        } else if self.bounds_ms == bounds_ms {
            for (sum, add) in self.buckets.iter_mut().zip(buckets) {
                *sum += add;
            }
        }
    }

    /// The figures: counts from the histograms when they carry status codes and saw at least
    /// as many requests as the spans (histograms see every request while spans may be sampled;
    /// fewer means a histogram stream is still missing its first delta), else from spans;
    /// latency exact from spans when there are any (head sampling keeps percentiles unbiased),
    /// else from the buckets.
    pub fn red(&mut self) -> Red {
        let histogram = self.hist_count > 0
            && self.hist_count >= self.span_count
            && (self.hist_has_status || self.span_count == 0);
        let (count, errors, count_source) = if histogram {
            (self.hist_count, self.hist_errors, "histogram")
        } else if self.span_count > 0 {
            (self.span_count, self.span_errors, "spans")
        } else {
            (0, 0, "none")
        };
        let (latency_ms, latency_source) = if !self.durations_ms.is_empty() {
            self.durations_ms.sort_by(f64::total_cmp);
            let q = |p| quantile::exact(&self.durations_ms, p).unwrap_or(f64::NAN);
            (Some([q(0.5), q(0.9), q(0.99)]), Some("spans"))
        } else {
            let q = |p| quantile::from_buckets(&self.bounds_ms, &self.buckets, p);
            match (q(0.5), q(0.9), q(0.99)) {
                (Some(a), Some(b), Some(c)) => (Some([a, b, c]), Some("histogram")),
                _ => (None, None),
            }
        };
        Red {
            count,
            errors,
            latency_ms,
            count_source,
            latency_source,
        }
    }
}
