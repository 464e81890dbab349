//! Latency percentiles: exact from span durations, interpolated from histogram buckets.

/// The `q`-quantile of sorted values (linear between closest ranks, as NumPy's default).
///
/// ```
/// # use meridian_analyzer::derive::quantile::exact;
/// assert_eq!(exact(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5), Some(3.0));
/// assert_eq!(exact(&[10.0, 20.0], 0.9), Some(19.0));
/// assert_eq!(exact(&[], 0.5), None);
/// ```
pub fn exact(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = q.clamp(0.0, 1.0) * last as f64;
    let below = rank.floor() as usize;
    let above = rank.ceil() as usize;
    let (lo, hi) = (sorted[below], sorted[above.min(last)]);
    Some(lo + (hi - lo) * (rank - below as f64))
}

/// The `q`-quantile of a histogram with upper `bounds` and per-bucket `counts` (one more than
/// bounds: the last bucket is open), interpolated linearly inside the bucket that holds it, as
/// Prometheus' `histogram_quantile` does. The first bucket starts at 0 (durations are not
/// negative); a quantile in the open bucket is its lower bound.
///
/// ```
/// # use meridian_analyzer::derive::quantile::from_buckets;
/// // 100 requests: 50 under 10 ms, 40 in 10–50 ms, 10 in 50–100 ms.
/// let bounds = [10.0, 50.0, 100.0];
/// let counts = [50, 40, 10, 0];
/// assert_eq!(from_buckets(&bounds, &counts, 0.5), Some(10.0));
/// assert_eq!(from_buckets(&bounds, &counts, 0.7), Some(30.0));
/// assert_eq!(from_buckets(&bounds, &counts, 0.99), Some(95.0));
/// ```
pub fn from_buckets(bounds: &[f64], counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 || counts.len() != bounds.len() + 1 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut below = 0u64;
    for (i, &count) in counts.iter().enumerate() {
        if count > 0 && (below + count) as f64 >= rank {
            let lower = if i == 0 { 0.0 } else { bounds[i - 1] };
            let Some(&upper) = bounds.get(i) else {
                return Some(lower);
            };
            let within = (rank - below as f64) / count as f64;
            return Some(lower + (upper - lower) * within);
        }
        below += count;
    }
    bounds.last().copied()
}
