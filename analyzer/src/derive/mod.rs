//! The derive stage: RED series (rate, errors, duration) per region, service and route at a
//! fixed interval, from server spans ([`spans`]) and gateway request-duration histograms
//! ([`histograms`]), closed by a per-region watermark with a grace period ([`red`]).

pub mod columns;
pub mod histograms;
pub mod key;
pub mod metric;
pub mod quantile;
pub mod red;
pub mod rows;
pub mod spans;
pub mod window;

use std::time::Duration;

use arrow::array::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::store::Dataset;
pub use histograms::HistogramSource;
pub use key::SeriesKey;
pub use metric::Metric;
pub use red::{RedAggregator, RedPoint};

/// Settings of the RED series (`[analyzer.derive]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeriveConfig {
    /// Derive RED series (and so detect and forecast on them).
    pub enabled: bool,
    /// Length of one interval of a series.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// How long after an interval's end (by the latest event time seen in its region) data is
    /// still waited for; later data is counted as late and left out.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// A region that has sent nothing for this long is closed by the wall clock, so a silent
    /// gateway shows zero requests instead of holding its intervals open.
    #[serde(with = "humantime_serde")]
    pub idle_after: Duration,
    /// A series with no requests for this long is forgotten (no more zero points).
    #[serde(with = "humantime_serde")]
    pub series_ttl: Duration,
    /// Span kinds that count as requests (`server`: what a gateway's own spans are).
    pub span_kinds: Vec<String>,
    /// Histogram metrics that count requests and their durations.
    pub histograms: Vec<HistogramSource>,
}

impl Default for DeriveConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(10),
            grace: Duration::from_secs(10),
            idle_after: Duration::from_secs(30),
            series_ttl: Duration::from_secs(3600),
            span_kinds: vec!["server".to_owned()],
            histograms: HistogramSource::defaults(),
        }
    }
}

/// The derive stage's state: open intervals and the histogram streams' last values.
#[derive(Debug, Default)]
pub struct Deriver {
    /// Open intervals and known series (kept across restarts).
    pub red: RedAggregator,
    cumulative: histograms::Cumulative,
}

impl Deriver {
    /// A deriver continuing from `red` (restored state).
    pub fn new(red: RedAggregator) -> Self {
        Self {
            red,
            cumulative: histograms::Cumulative::default(),
        }
    }

    /// Takes the requests out of a stored delivery.
    pub fn observe(&mut self, config: &DeriveConfig, dataset: Dataset, batches: &[RecordBatch]) {
        for batch in batches {
            let result = match dataset {
                Dataset::Spans => spans::requests(batch, &config.span_kinds)
                    .map(|r| self.red.add_spans(config, r)),
                Dataset::Metrics => {
                    histograms::requests(batch, &config.histograms, &mut self.cumulative)
                        .map(|r| self.red.add_histograms(config, r))
                }
                _ => Ok(()),
            };
            if let Err(e) = result {
                tracing::warn!(table = %dataset, error = %e, "cannot derive RED series from a batch");
            }
        }
    }

    /// Closes the intervals the watermarks have passed (see [`RedAggregator::close`]).
    pub fn close(&mut self, config: &DeriveConfig, now_ns: i64) -> Vec<RedPoint> {
        self.red.close(config, now_ns)
    }
}
