//! The figures of a RED series that are watched and forecast, by their column names.

use serde::{Deserialize, Serialize};

use super::red::RedPoint;

/// One figure of a RED point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Requests per second.
    RequestRate,
    /// Failed share of the requests.
    ErrorRatio,
    /// Median latency, ms.
    LatencyP50Ms,
    /// 90th percentile latency, ms.
    LatencyP90Ms,
    /// 99th percentile latency, ms.
    LatencyP99Ms,
}

impl Metric {
    /// The column name in `red`, also stored in `anomalies.metric` and `forecasts.metric`.
    pub fn name(self) -> &'static str {
        match self {
            Metric::RequestRate => "request_rate",
            Metric::ErrorRatio => "error_ratio",
            Metric::LatencyP50Ms => "latency_p50_ms",
            Metric::LatencyP90Ms => "latency_p90_ms",
            Metric::LatencyP99Ms => "latency_p99_ms",
        }
    }

    /// Whether `value` away from `expected` is a change for the worse: any change of traffic
    /// (a drop can mean an outage upstream of the gateway), but only more errors or more
    /// latency — faster and cleaner is not an incident.
    ///
    /// ```
    /// # use meridian_analyzer::derive::Metric;
    /// assert!(Metric::RequestRate.worse(0.0, 40.0));
    /// assert!(Metric::LatencyP99Ms.worse(900.0, 150.0));
    /// assert!(!Metric::LatencyP99Ms.worse(60.0, 150.0));
    /// ```
    pub fn worse(self, value: f64, expected: f64) -> bool {
        match self {
            Metric::RequestRate => true,
            _ => value >= expected || expected.is_nan(),
        }
    }

    /// The value at `point`; NaN when it has none (no requests).
    pub fn value(self, point: &RedPoint) -> f64 {
        let red = &point.red;
        let latency = |i: usize| red.latency_ms.map_or(f64::NAN, |l| l[i]);
        match self {
            Metric::RequestRate => red.count as f64 / point.interval_s.max(f64::MIN_POSITIVE),
            Metric::ErrorRatio if red.count > 0 => red.errors as f64 / red.count as f64,
            Metric::ErrorRatio => f64::NAN,
            Metric::LatencyP50Ms => latency(0),
            Metric::LatencyP90Ms => latency(1),
            Metric::LatencyP99Ms => latency(2),
        }
    }
}
