//! Cross-region outliers: the same service and route behaving unlike its peers in the other
//! regions. Each region's value is first standardised against its own recent history (signed
//! robust z), so regions with different normal levels compare fairly and a change every region
//! sees at once (a global deploy, a shared dependency) is not one region's outlier; augurs'
//! MAD detector then compares the regions' recent z values.

use augurs::outlier::{MADDetector, OutlierDetector};

/// The cross-region verdict of one region at the newest point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeerOutlier {
    /// Index of the region in the input.
    pub index: usize,
    /// Its MAD score at the newest point (distance from the pooled median in MAD units).
    pub mad_score: f64,
}

/// Regions whose newest value is an outlier among `regions` (each the recent standardised
/// values of one region, aligned, newest last; NaN where missing). Needs three regions.
///
/// ```
/// # use meridian_analyzer::detect::peers::outliers;
/// let calm = |k: usize| (0..30).map(|i| ((i * 7 + k * 3) % 5) as f64 / 5.0 - 0.4).collect::<Vec<_>>();
/// let mut hit = calm(1);
/// *hit.last_mut().unwrap() = 12.0;
/// let found = outliers(&[calm(0), hit, calm(2)], 3.5);
/// assert_eq!(found.len(), 1);
/// assert_eq!(found[0].index, 1);
/// ```
pub fn outliers(regions: &[Vec<f64>], threshold: f64) -> Vec<PeerOutlier> {
    if regions.len() < 3 || regions.iter().any(Vec::is_empty) {
        return Vec::new();
    }
    let rows: Vec<&[f64]> = regions.iter().map(Vec::as_slice).collect();
    let detector = MADDetector::with_threshold(threshold);
    // A pool without spread (all values equal) has no MAD: nobody is an outlier.
    let Ok(processed) = detector.preprocess(&rows) else {
        return Vec::new();
    };
    let Ok(output) = detector.detect(&processed) else {
        return Vec::new();
    };
    output
        .series_results
        .iter()
        .enumerate()
        .filter_map(|(index, series)| {
            let score = *series.scores.last()?;
            (score > threshold).then_some(PeerOutlier {
                index,
                mad_score: score,
            })
        })
        .collect()
}
