//! How far a value lies from the recent typical value, in robust units: distance from the
//! rolling median over the rolling interquartile spread (so outliers in the window barely move
//! either).

use serde::{Deserialize, Serialize};

use super::window::SortedWindow;

/// Values needed before a deviation is measured.
const MIN_VALUES: usize = 10;

/// A deviation measured against the recent window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Deviation {
    /// |value − median| / spread; 0 while warming up.
    pub z: f64,
    /// The median the value was compared with.
    pub expected: f64,
    /// The spread (a standard deviation for normal data: IQR / 1.349).
    pub spread: f64,
    /// Whether most of the window holds one value (no interquartile spread), so `spread` is
    /// only a floor and `z` says little beyond "different".
    pub flat: bool,
}

/// Robust standardisation against the last `window` values.
///
/// ```
/// # use meridian_analyzer::detect::robust::RobustDeviation;
/// let mut d = RobustDeviation::new(100);
/// for i in 0..100 {
///     d.update(10.0 + (i % 5) as f64); // 10..14
/// }
/// let spike = d.update(40.0);
/// assert_eq!(spike.expected, 12.0);
/// assert!(spike.z > 10.0);
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RobustDeviation {
    window: SortedWindow,
}

impl RobustDeviation {
    /// Compares with the last `window` values.
    pub fn new(window: usize) -> Self {
        Self {
            window: SortedWindow::new(window),
        }
    }

    /// Measures `value` against the window, then adds it.
    pub fn update(&mut self, value: f64) -> Deviation {
        let w = &self.window;
        let deviation = if w.len() < MIN_VALUES || !value.is_finite() {
            Deviation {
                expected: value,
                ..Deviation::default()
            }
        } else {
            let expected = w.quantile(0.5);
            let iqr = w.quantile(0.75) - w.quantile(0.25);
            let range = w.quantile(1.0) - w.quantile(0.0);
            // A flat window has no spread: fall back to a sliver of its range, then to a
            // relative epsilon, so a change from a constant still scores high but finite.
            let spread = (iqr / 1.349)
                .max(range * 1e-3)
                .max(expected.abs() * 1e-9)
                .max(1e-12);
            Deviation {
                z: (value - expected).abs() / spread,
                expected,
                spread,
                flat: iqr <= 0.0,
            }
        };
        self.window.push(value);
        deviation
    }
}
