//! The store's tables: the three OTLP signals as collectors send them, and the tables the
//! analyzer derives from them (RED series, anomalies, forecasts).

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
    /// RED series per region/service/route and interval, derived from spans and histograms.
    Red,
    /// Anomalous points of the RED series, from the detectors.
    Anomalies,
    /// Forecasts of the RED series, with intervals.
    Forecasts,
}

impl Dataset {
    /// Every table, in a fixed order.
    pub const ALL: [Dataset; 6] = [
        Dataset::Spans,
        Dataset::Metrics,
        Dataset::Logs,
        Dataset::Red,
        Dataset::Anomalies,
        Dataset::Forecasts,
    ];

    /// The table's SQL name.
    pub fn table(self) -> &'static str {
        match self {
            Dataset::Spans => "spans",
            Dataset::Metrics => "metrics",
            Dataset::Logs => "logs",
            Dataset::Red => "red",
            Dataset::Anomalies => "anomalies",
            Dataset::Forecasts => "forecasts",
        }
    }

    /// The table's Arrow schema: the raw tables' from the collector's `schema` module, the
    /// derived tables' from the analyzer's.
    pub fn schema(self) -> SchemaRef {
        match self {
            Dataset::Spans => schema::spans(),
            Dataset::Metrics => schema::metrics(),
            Dataset::Logs => schema::logs(),
            Dataset::Red => derived::red(),
            Dataset::Anomalies => derived::anomalies(),
            Dataset::Forecasts => derived::forecasts(),
        }
    }

    /// The OTLP signal stored in this table, if collectors send it.
    pub fn signal(self) -> Option<Signal> {
        match self {
            Dataset::Spans => Some(Signal::Traces),
            Dataset::Metrics => Some(Signal::Metrics),
            Dataset::Logs => Some(Signal::Logs),
            Dataset::Red | Dataset::Anomalies | Dataset::Forecasts => None,
        }
    }
}

impl From<Signal> for Dataset {
    fn from(signal: Signal) -> Self {
        match signal {
            Signal::Traces => Dataset::Spans,
            Signal::Metrics => Dataset::Metrics,
            Signal::Logs => Dataset::Logs,
        }
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.table())
    }
}
