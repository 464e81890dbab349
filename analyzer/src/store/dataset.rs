//! The store's tables: what collectors send (the three OTLP signals and probe results), and the
//! tables the analyzer derives from them (RED series, anomalies, forecasts, endpoint health,
//! recommendations).

use std::fmt;

use arrow::datatypes::SchemaRef;
use meridian_collector::{schema, Signal};

use crate::schema as derived;

/// One table of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dataset {
    /// Spans, from collectors.
    Spans,
    /// Metric points, from collectors.
    Metrics,
    /// Log records, from collectors.
    Logs,
    /// Health-check results, from every collector's probes.
    Probes,
    /// RED series per region/service/route and interval, derived from spans and histograms.
    Red,
    /// Anomalous points of the RED series, from the detectors.
    Anomalies,
    /// Forecasts of the RED series, with intervals.
    Forecasts,
    /// Transitions of each probed endpoint's health (vantage points combined).
    Health,
    /// Routing and capacity recommendations, and their state changes.
    Recommendations,
    /// Alerts' changes of state.
    Alerts,
}

impl Dataset {
    /// Every table, in a fixed order.
    pub const ALL: [Dataset; 10] = [
        Dataset::Spans,
        Dataset::Metrics,
        Dataset::Logs,
        Dataset::Probes,
        Dataset::Red,
        Dataset::Anomalies,
        Dataset::Forecasts,
        Dataset::Health,
        Dataset::Recommendations,
        Dataset::Alerts,
    ];

    /// The table's SQL name.
    pub fn table(self) -> &'static str {
        match self {
            Dataset::Spans => "spans",
            Dataset::Metrics => "metrics",
            Dataset::Logs => "logs",
            Dataset::Probes => "probes",
            Dataset::Red => "red",
            Dataset::Anomalies => "anomalies",
            Dataset::Forecasts => "forecasts",
            Dataset::Health => "health",
            Dataset::Recommendations => "recommendations",
            Dataset::Alerts => "alerts",
        }
    }

    /// The table's Arrow schema: the raw tables' from the collector's `schema` module, the
    /// derived tables' from the analyzer's.
    pub fn schema(self) -> SchemaRef {
        match self {
            Dataset::Spans => schema::spans(),
            Dataset::Metrics => schema::metrics(),
            Dataset::Logs => schema::logs(),
            Dataset::Probes => schema::probes(),
            Dataset::Red => derived::red(),
            Dataset::Anomalies => derived::anomalies(),
            Dataset::Forecasts => derived::forecasts(),
            Dataset::Health => derived::health(),
            Dataset::Recommendations => derived::recommendations(),
            Dataset::Alerts => derived::alerts(),
        }
    }

    /// The columns a flush orders each file's rows by: the low-cardinality ones queries filter
    /// and group on, then time (see [`super::order`]). The derived tables are small and
    /// written in arrival order.
    pub fn sort_key(self) -> &'static [&'static str] {
        match self {
            Dataset::Spans => &["kind", "region", "service_name", "http_route", "time"],
            Dataset::Metrics => &["region", "service_name", "name", "time"],
            Dataset::Logs => &["region", "service_name", "time"],
            Dataset::Probes => &["vantage_region", "endpoint", "time"],
            Dataset::Red
            | Dataset::Anomalies
            | Dataset::Forecasts
            | Dataset::Health
            | Dataset::Recommendations
            | Dataset::Alerts => &[],
        }
    }

    /// The signal stored in this table, if collectors send it.
    pub fn signal(self) -> Option<Signal> {
        match self {
            Dataset::Spans => Some(Signal::Traces),
            Dataset::Metrics => Some(Signal::Metrics),
            Dataset::Logs => Some(Signal::Logs),
            Dataset::Probes => Some(Signal::Probes),
            Dataset::Red
            | Dataset::Anomalies
            | Dataset::Forecasts
            | Dataset::Health
            | Dataset::Recommendations
            | Dataset::Alerts => None,
        }
    }
}

impl From<Signal> for Dataset {
    fn from(signal: Signal) -> Self {
        match signal {
            Signal::Traces => Dataset::Spans,
            Signal::Metrics => Dataset::Metrics,
            Signal::Logs => Dataset::Logs,
            Signal::Probes => Dataset::Probes,
        }
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.table())
    }
}
