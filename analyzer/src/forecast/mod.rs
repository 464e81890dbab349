//! Forecasts with calibrated intervals: a point forecast from augurs ([`model`]), or the naive or
//! seasonal-naive one when its recent record is better ([`select`]), and intervals from recent
//! out-of-sample errors of what was forecast ([`calibrate`]). `meridian forecast` evaluates them with a
//! rolling origin; the live `forecasts` table ([`live`]) uses the same code.

pub mod baseline;
pub mod calibrate;
pub mod live;
pub mod model;
pub mod rows;
pub mod select;
