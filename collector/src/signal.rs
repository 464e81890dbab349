//! The unit that flows from the receivers to the sinks: one Arrow record batch of one signal.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::wire::{Encoded, Encoding};

/// What a collector forwards: the three OTLP signals and its own health-probe results, each
/// stored in a table of its own name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// Traces, stored in `spans`.
    Traces,
    /// Metrics, stored in `metrics`.
    Metrics,
    /// Logs, stored in `logs`.
    Logs,
    /// Results of the collector's active health probes, stored in `probes`.
    Probes,
}

impl Signal {
    /// All signals, in a fixed order.
    pub const ALL: [Signal; 4] = [
        Signal::Traces,
        Signal::Metrics,
        Signal::Logs,
        Signal::Probes,
    ];

    /// Name of the table the signal is stored in.
    pub fn table(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
            Signal::Probes => "probes",
        }
    }

    /// Name used in metrics labels, OTLP paths and the ingest endpoint (`traces`, `metrics`,
    /// `logs`, `probes`).
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
            Signal::Probes => "probes",
        }
    }

    /// The Arrow schema of the signal's table.
    pub fn schema(self) -> SchemaRef {
        match self {
            Signal::Traces => crate::schema::spans(),
            Signal::Metrics => crate::schema::metrics(),
            Signal::Logs => crate::schema::logs(),
            Signal::Probes => crate::schema::probes(),
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Signal {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "traces" | "spans" => Ok(Signal::Traces),
            "metrics" => Ok(Signal::Metrics),
            "logs" => Ok(Signal::Logs),
            "probes" => Ok(Signal::Probes),
            other => Err(format!("unknown signal `{other}`")),
        }
    }
}

/// Identity of a forwarded batch: which collector sent it and its place in that collector's
/// sequence. A retried delivery carries the same id, so a receiver can drop the repeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchId {
    /// Id of the collector process (new at every start).
    pub collector: Arc<str>,
    /// Strictly increasing per collector, starting at 1.
    pub sequence: u64,
}

/// Record batches of one signal, delivered and stored together, with where they came from.
#[derive(Clone, Debug)]
pub struct SignalBatch {
    /// Which table the rows belong to.
    pub signal: Signal,
    /// Rows in the signal's schema, in order.
    pub batches: Vec<RecordBatch>,
    /// Set by the forwarder on batches it delivers.
    pub id: Option<BatchId>,
    /// The batches already encoded (read from the disk buffer), so network sinks need not
    /// encode them again.
    pub encoded: Option<Encoded>,
}

impl SignalBatch {
    /// Wraps a batch of the given signal.
    pub fn new(signal: Signal, batch: RecordBatch) -> Self {
        Self::from_batches(signal, vec![batch])
    }

    /// Wraps batches of the given signal, kept together.
    pub fn from_batches(signal: Signal, batches: Vec<RecordBatch>) -> Self {
        Self {
            signal,
            batches,
            id: None,
            encoded: None,
        }
    }

    /// The same batch, with its encoding attached.
    pub fn with_encoded(self, encoded: Encoded) -> Self {
        Self {
            encoded: Some(encoded),
            ..self
        }
    }

    /// The batches as one message: the attached encoding (whichever it is), or a new one in
    /// `encoding`.
    pub fn encoded(&self, encoding: Encoding) -> Result<Encoded, arrow::error::ArrowError> {
        match &self.encoded {
            Some(encoded) => Ok(encoded.clone()),
            None => Ok(Encoded {
                encoding,
                bytes: crate::wire::encode(encoding, &self.batches)?.into(),
            }),
        }
    }

    /// The same batch, identified as `id`.
    pub fn with_id(self, id: BatchId) -> Self {
        Self {
            id: Some(id),
            ..self
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}
