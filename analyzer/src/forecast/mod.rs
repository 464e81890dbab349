//! Forecasts with calibrated intervals: a point forecast from augurs ([`model`]), or the naive or
//! seasonal-naive one when its recent record is better ([`select`]), and intervals from recent
//! out-of-sample errors of what was forecast ([`calibrate`]). `meridian forecast` evaluates them with a
//! rolling origin; the live `forecasts` table will use the same code.

pub mod calibrate;
pub mod model;
pub mod select;
