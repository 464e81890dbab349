//! Test support shared by the crate's unit tests: a capture [`Sink`](crate::sink::Sink) that
//! records what it is given and answers from a script, batches of spans, and proptest strategies.

pub mod capture;
pub mod strategies;

use prometheus::Registry;

use crate::convert::traces_to_arrow;
use crate::otlp::builders::{kv, span, traces};
use crate::signal::{Signal, SignalBatch};
use crate::telemetry::CollectorMetrics;

pub use capture::{CaptureSink, Reply};

/// A batch of `rows` spans (region `test`), their span ids starting after `first`.
pub fn span_batch(rows: usize, first: u64) -> SignalBatch {
    let spans = (first..first + rows as u64)
        .map(|n| {
            let mut s = span("GET /api/orders", n);
            s.attributes = vec![kv("http.route", "/api/orders")];
            s
        })
        .collect();
    let converted = traces_to_arrow(&traces("gateway", spans), "test").expect("convertible spans");
    SignalBatch::new(Signal::Traces, converted.batch)
}

/// Fresh collector metrics in their own registry.
pub fn metrics() -> CollectorMetrics {
    CollectorMetrics::new(&Registry::new()).expect("metrics register once")
}
