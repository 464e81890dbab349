//! The point forecast: MSTL (one daily season, when the sampling step allows it) with an
//! automatically selected non-seasonal ETS model for the trend, from the augurs crates; plain
//! AutoETS when there is no usable season or not two seasons of history yet.

use augurs::ets::AutoETS;
use augurs::mstl::MSTLModel;
use augurs::{Fit, Predict};

/// Why a forecast could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ForecastError {
    /// Too little history.
    #[error("{0} points are too few to forecast from (need {1})")]
    TooShort(usize, usize),
    /// The model failed to fit or predict.
    #[error("forecast model: {0}")]
    Model(String),
}

/// Fewest points a forecast is made from.
pub const MIN_HISTORY: usize = 16;

/// Forecasts the next `horizon` points of `history` (evenly spaced, oldest first, no NaN);
/// `period` is the season length in points, if the series has a usable one.
///
/// ```
/// # use meridian_analyzer::forecast::model::point_forecast;
/// let history: Vec<f64> = (0..96).map(|i| 10.0 + (i % 24) as f64).collect();
/// let next = point_forecast(&history, Some(24), 3).unwrap();
/// assert_eq!(next.len(), 3);
/// assert!((next[0] - 10.0).abs() < 2.0); // the season starts again
/// ```
pub fn point_forecast(
    history: &[f64],
    period: Option<usize>,
    horizon: usize,
) -> Result<Vec<f64>, ForecastError> {
    if history.len() < MIN_HISTORY {
        return Err(ForecastError::TooShort(history.len(), MIN_HISTORY));
    }
    let model = |e: &dyn std::fmt::Display| ForecastError::Model(e.to_string());
    let forecast = match period.filter(|p| *p >= 2 && history.len() >= 2 * p) {
        Some(p) => {
            let trend = AutoETS::non_seasonal().into_trend_model();
            let fitted = MSTLModel::new(vec![p], trend)
                .fit(history)
                .map_err(|e| model(&e))?;
            fitted.predict(horizon, None).map_err(|e| model(&e))?
        }
        None => {
            let fitted = AutoETS::non_seasonal()
                .fit(history)
                .map_err(|e| model(&e))?;
            fitted.predict(horizon, None).map_err(|e| model(&e))?
        }
    };
    Ok(forecast.point)
}
