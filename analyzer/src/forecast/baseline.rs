//! The two baselines every forecast is measured against and may fall back to, and the gap
//! filling both forecasters use.

/// `values` with each missing value (NaN, infinite) replaced by the last known one before it;
/// leading missing values take the first known one. `None` when no value is known.
///
/// ```
/// # use meridian_analyzer::forecast::baseline::carried_forward;
/// let v = carried_forward(&[f64::NAN, 2.0, f64::NAN, 5.0]).unwrap();
/// assert_eq!(v, vec![2.0, 2.0, 2.0, 5.0]);
/// assert_eq!(carried_forward(&[f64::NAN]), None);
/// ```
pub fn carried_forward(values: &[f64]) -> Option<Vec<f64>> {
    let mut last = values.iter().copied().find(|v| v.is_finite())?;
    Some(
        values
            .iter()
            .map(|v| {
                if v.is_finite() {
                    last = *v;
                }
                last
            })
            .collect(),
    )
}

/// The seasonal-naive forecast `step` points after the end of `history`: the value a whole
/// number of seasons (`period` points) before the target. `None` if the history is too short.
///
/// ```
/// # use meridian_analyzer::forecast::baseline::seasonal_naive;
/// let history = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // period 3: the next is like index 3 (4.0)
/// assert_eq!(seasonal_naive(&history, 3, 1), Some(4.0));
/// assert_eq!(seasonal_naive(&history, 3, 5), Some(5.0)); // two seasons on
/// assert_eq!(seasonal_naive(&history, 9, 1), None);
/// ```
pub fn seasonal_naive(history: &[f64], period: usize, step: usize) -> Option<f64> {
    let period = period.max(1);
    let target = history.len() - 1 + step;
    let index = target.checked_sub(period * step.div_ceil(period))?;
    history.get(index).copied()
}
