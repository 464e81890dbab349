//! Streaming anomaly detection: one [`SeriesDetector`] per series, online and causal (a point
//! is scored from the points before it only), with bounded memory and state that serialises.
//! The same code scores the live RED series and `meridian detect`'s files.

pub mod bocpd;
pub mod changepoint;
pub mod live;
pub mod pattern;
pub mod peers;
pub mod profile;
pub mod range;
pub mod rarity;
pub mod robust;
pub mod rows;
pub mod seasonal;
mod series;
pub mod window;

pub use live::{Anomaly, DetectConfig, LiveDetector};
pub use series::{Detector, SeriesConfig, SeriesDetector, Verdict};
