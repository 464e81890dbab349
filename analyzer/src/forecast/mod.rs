//! Forecasts with calibrated intervals: a point forecast from augurs ([`model`]), or the naive or
//! seasonal-naive one when its recent record is better ([`select`]), and intervals from recent
//! out-of-sample errors of what was forecast ([`calibrate`]), run per series by one loop
//! ([`series`]). The live `forecasts` table ([`live`]) and `meridian forecast`'s rolling-origin
//! evaluation both drive that loop.

pub mod baseline;
pub mod calibrate;
pub mod live;
pub mod model;
pub mod rows;
pub mod select;
pub mod series;
