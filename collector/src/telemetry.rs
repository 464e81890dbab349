//! The collector's own metrics, exposed in Prometheus text format on `/metrics`.

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Counters and gauges of the collector; cheap to clone.
#[derive(Clone)]
pub struct CollectorMetrics {
    /// Items (spans, data points, log records) accepted, by signal and protocol.
    pub received: IntCounterVec,
    /// Items rejected as invalid (partial success), by signal and protocol.
    pub rejected: IntCounterVec,
    /// Requests refused because the queue, the disk buffer or the memory limit was full, by
    /// signal and protocol.
    pub refused: IntCounterVec,
    /// Requests that could not be decoded, by signal and protocol.
    pub malformed: IntCounterVec,
    /// Requests refused because their sender was over its rate limit, by signal and protocol.
    pub rate_limited: IntCounterVec,
    /// Rows waiting in the queue for the sink.
    pub queue_rows: IntGauge,
    /// 1 while the last delivery to the sink succeeded (or none was tried), 0 while it fails.
    pub sink_up: IntGauge,
    /// Rows delivered to the sink, by signal.
    pub forwarded_rows: IntCounterVec,
    /// Failed delivery attempts (retried), by sink.
    pub forward_errors: IntCounterVec,
    /// Rows given up on at shutdown because the sink stayed unreachable, by signal.
    pub lost_rows: IntCounterVec,
    /// Records in the disk buffer not yet delivered.
    pub buffer_records: IntGauge,
    /// Bytes the disk buffer takes on disk.
    pub buffer_bytes: IntGauge,
    /// The disk buffer's limit in bytes (0 without a disk buffer), so its fill is a ratio.
    pub buffer_max_bytes: IntGauge,
    /// Rows the queue holds before receivers answer with backpressure.
    pub queue_capacity_rows: IntGauge,
    /// Age of the oldest record being delivered from the disk buffer, in seconds.
    pub buffer_oldest_age_seconds: Gauge,
    /// Bytes of damaged records skipped when opening the disk buffer.
    pub buffer_damaged_bytes: IntCounter,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: T,
) -> Result<T, prometheus::Error> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

impl CollectorMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let sp = &["signal", "protocol"];
        let queue_rows = IntGauge::new(
            "meridian_collector_queue_rows",
            "Rows waiting in the forwarding queue",
        )?;
        registry.register(Box::new(queue_rows.clone()))?;
        let sink_up = IntGauge::new(
            "meridian_collector_sink_up",
            "1 while deliveries to the sink succeed",
        )?;
        sink_up.set(1);
        registry.register(Box::new(sink_up.clone()))?;
        Ok(Self {
            received: counter(
                registry,
                "meridian_collector_received_items_total",
                "OTLP items accepted",
                sp,
            )?,
            rejected: counter(
                registry,
                "meridian_collector_rejected_items_total",
                "OTLP items rejected as invalid",
                sp,
            )?,
            refused: counter(
                registry,
                "meridian_collector_refused_requests_total",
                "Requests refused with backpressure",
                sp,
            )?,
            malformed: counter(
                registry,
                "meridian_collector_malformed_requests_total",
                "Requests that could not be decoded",
                sp,
            )?,
            rate_limited: counter(
                registry,
                "meridian_collector_rate_limited_requests_total",
                "Requests refused because their sender was over its rate limit",
                sp,
            )?,
            queue_rows,
            sink_up,
            forwarded_rows: counter(
                registry,
                "meridian_collector_forwarded_rows_total",
                "Rows delivered to the sink",
                &["signal"],
            )?,
            forward_errors: counter(
                registry,
                "meridian_collector_forward_errors_total",
                "Failed delivery attempts",
                &["sink"],
            )?,
            lost_rows: counter(
                registry,
                "meridian_collector_lost_rows_total",
                "Rows dropped: refused by the sink, unreadable, or abandoned at shutdown",
                &["signal"],
            )?,
            buffer_records: register(
                registry,
                IntGauge::new(
                    "meridian_collector_buffer_records",
                    "Records in the disk buffer not yet delivered",
                )?,
            )?,
            buffer_bytes: register(
                registry,
                IntGauge::new(
                    "meridian_collector_buffer_bytes",
                    "Bytes the disk buffer takes on disk",
                )?,
            )?,
            buffer_max_bytes: register(
                registry,
                IntGauge::new(
                    "meridian_collector_buffer_max_bytes",
                    "The disk buffer's size limit (0 without a disk buffer)",
                )?,
            )?,
            queue_capacity_rows: register(
                registry,
                IntGauge::new(
                    "meridian_collector_queue_capacity_rows",
                    "Rows the forwarding queue holds before backpressure",
                )?,
            )?,
            buffer_oldest_age_seconds: register(
                registry,
                Gauge::new(
                    "meridian_collector_buffer_oldest_age_seconds",
                    "Age of the oldest undelivered record in the disk buffer",
                )?,
            )?,
            buffer_damaged_bytes: register(
                registry,
                IntCounter::new(
                    "meridian_collector_buffer_damaged_bytes_total",
                    "Bytes of damaged buffer records skipped at start-up",
                )?,
            )?,
        })
    }
}

/// Renders every metric in a registry as Prometheus text.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    let encoder = prometheus::TextEncoder::new();
    if let Err(e) = encoder.encode_utf8(&registry.gather(), &mut out) {
        tracing::warn!(error = %e, "encoding metrics");
    }
    out
}
