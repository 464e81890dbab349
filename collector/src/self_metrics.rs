//! The collector's own metrics, reported to the center: every `interval` the collector reads
//! its metrics registry and queues the values as OTLP metrics of service `meridian-collector`,
//! so they land in the `metrics` table beside the gateways' own. The analyzer alerts on a
//! region's buffer filling or its sink failing from them (a collector that stops reporting is
//! itself a signal), and dashboards show every region's collector without scraping each one.
//!
//! [`request`] is the one conversion from Prometheus metric families to OTLP; the analyzer
//! records its own metrics with it too.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prometheus::proto::{MetricFamily, MetricType};
use prometheus::Registry;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::otlp::builders::kv;
use crate::otlp::{ExportRequest, Intake};
use crate::signal::{Signal, SignalBatch};

/// `service.name` of the collectors' own metrics.
pub const COLLECTOR_SERVICE: &str = "meridian-collector";

/// The metric families a collector reports: its own and its probes'. In the standalone binary
/// the registry is shared with the analyzer, whose metrics it records itself.
pub const COLLECTOR_PREFIXES: [&str; 5] = [
    "meridian_collector_",
    "meridian_probe_checks_",
    "meridian_probe_vantage_",
    "meridian_probe_latency_",
    "meridian_probe_results_dropped_",
];

/// `service.name` of the analyzer's own metrics.
pub const ANALYZER_SERVICE: &str = "meridian-analyzer";

/// The analyzer's metric families (the rest of a standalone process's registry).
pub const ANALYZER_PREFIXES: [&str; 7] = [
    "meridian_analyzer_",
    "meridian_alert",
    "meridian_recommendation",
    "meridian_routing_",
    "meridian_probe_endpoint_",
    "meridian_probe_results_total",
    "meridian_probe_transitions_",
];

/// `[collector.self_metrics]`: how often the collector reports its own metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelfMetricsConfig {
    /// Report every this often; `0s` turns reporting off. The analyzer calls a collector
    /// silent after several missed reports.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// `service.instance.id` of the reports; empty means the host name.
    pub instance: String,
}

impl Default for SelfMetricsConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            instance: String::new(),
        }
    }
}

impl SelfMetricsConfig {
    /// The instance id: the configured one, else the host name, else `collector`.
    pub fn instance_id(&self) -> String {
        if !self.instance.is_empty() {
            return self.instance.clone();
        }
        std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
                    .filter(|h| !h.is_empty())
            })
            .unwrap_or_else(|| "collector".to_owned())
    }
}

/// The families whose name starts with one of `prefixes`, as one OTLP request of `service`
/// (`service.instance.id` = `instance`) at `now_ns`. Counters become cumulative monotonic sums
/// starting at `start_ns`, gauges gauges, histograms explicit-bucket histograms (Prometheus'
/// cumulative buckets made per-bucket); summaries and untyped families are skipped.
///
/// ```
/// let registry = prometheus::Registry::new();
/// let up = prometheus::IntGauge::new("meridian_collector_sink_up", "up").unwrap();
/// registry.register(Box::new(up.clone())).unwrap();
/// up.set(1);
/// let request = meridian_collector::self_metrics::request(
///     &registry.gather(), &["meridian_collector_"], "meridian-collector", "edge-1", 0, 1_000,
/// );
/// let metric = &request.resource_metrics[0].scope_metrics[0].metrics[0];
/// assert_eq!(metric.name, "meridian_collector_sink_up");
/// ```
pub fn request(
    families: &[MetricFamily],
    prefixes: &[&str],
    service: &str,
    instance: &str,
    start_ns: u64,
    now_ns: u64,
) -> ExportMetricsServiceRequest {
    let metrics = families
        .iter()
        .filter(|f| prefixes.iter().any(|p| f.name().starts_with(p)))
        .filter_map(|f| convert(f, start_ns, now_ns))
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", service),
                    kv("service.instance.id", instance),
                    kv("service.version", env!("CARGO_PKG_VERSION")),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "meridian".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn convert(family: &MetricFamily, start_ns: u64, now_ns: u64) -> Option<Metric> {
    let labels = |m: &prometheus::proto::Metric| -> Vec<KeyValue> {
        m.get_label()
            .iter()
            .map(|l| kv(l.name(), l.value()))
            .collect()
    };
    let number = |m: &prometheus::proto::Metric, v: f64, start: u64| NumberDataPoint {
        attributes: labels(m),
        start_time_unix_nano: start,
        time_unix_nano: now_ns,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    };
    let data = match family.get_field_type() {
        MetricType::COUNTER => metric::Data::Sum(Sum {
            data_points: family
                .get_metric()
                .iter()
                .map(|m| number(m, m.get_counter().get_value(), start_ns))
                .collect(),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        }),
        MetricType::GAUGE => metric::Data::Gauge(Gauge {
            data_points: family
                .get_metric()
                .iter()
                .map(|m| number(m, m.get_gauge().get_value(), 0))
                .collect(),
        }),
        MetricType::HISTOGRAM => metric::Data::Histogram(Histogram {
            data_points: family
                .get_metric()
                .iter()
                .map(|m| {
                    let h = m.get_histogram();
                    let mut counts = Vec::with_capacity(h.get_bucket().len() + 1);
                    let mut below = 0;
                    for b in h.get_bucket() {
                        counts.push(b.cumulative_count().saturating_sub(below));
                        below = b.cumulative_count();
                    }
                    counts.push(h.get_sample_count().saturating_sub(below));
                    HistogramDataPoint {
                        attributes: labels(m),
                        start_time_unix_nano: start_ns,
                        time_unix_nano: now_ns,
                        count: h.get_sample_count(),
                        sum: Some(h.get_sample_sum()),
                        bucket_counts: counts,
                        explicit_bounds: h.get_bucket().iter().map(|b| b.upper_bound()).collect(),
                        ..Default::default()
                    }
                })
                .collect(),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        }),
        _ => return None,
    };
    Some(Metric {
        name: family.name().to_owned(),
        description: family.help().to_owned(),
        unit: String::new(),
        metadata: Vec::new(),
        data: Some(data),
    })
}

/// Unix nanoseconds now.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// One process's reporter: which families, under which service, instance and region.
#[derive(Clone, Debug)]
pub struct Reporter {
    /// How often.
    pub interval: Duration,
    /// Families whose name starts with one of these.
    pub prefixes: &'static [&'static str],
    /// `service.name`.
    pub service: &'static str,
    /// `service.instance.id`.
    pub instance: String,
    /// The `region` column.
    pub region: String,
}

impl Reporter {
    /// A collector's reporter (none when the interval is zero).
    pub fn collector(config: &SelfMetricsConfig, region: &str) -> Option<Self> {
        (!config.interval.is_zero()).then(|| Self {
            interval: config.interval,
            prefixes: &COLLECTOR_PREFIXES,
            service: COLLECTOR_SERVICE,
            instance: config.instance_id(),
            region: region.to_owned(),
        })
    }

    /// Every interval until `stop`, hands `registry`'s families to `deliver` as a metrics batch.
    /// A batch `deliver` refuses is dropped: the next report carries the same gauges, and a
    /// full queue is no place to wait.
    pub async fn run<F, Fut>(self, registry: Registry, mut deliver: F, stop: CancellationToken)
    where
        F: FnMut(SignalBatch) -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let started = now_ns();
        // The first report after one interval: at start-up every gauge is still zero.
        let first = tokio::time::Instant::now() + self.interval;
        let mut ticker = tokio::time::interval_at(first, self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let request = request(
                &registry.gather(),
                self.prefixes,
                self.service,
                &self.instance,
                started,
                now_ns(),
            );
            let batch = match request.to_arrow(&self.region) {
                Ok(converted) => converted.batch,
                Err(e) => {
                    tracing::error!(service = self.service, error = %e, "converting own metrics failed");
                    continue;
                }
            };
            if let Err(reason) = deliver(SignalBatch::new(Signal::Metrics, batch)).await {
                tracing::debug!(service = self.service, %reason, "own metrics not recorded");
            }
        }
    }
}

/// Starts the collector's reporting task (none when the interval is zero), queueing into
/// `intake` until `stop`.
pub fn start(
    config: &SelfMetricsConfig,
    region: &str,
    registry: Registry,
    intake: Intake,
    stop: CancellationToken,
) -> Option<(&'static str, JoinHandle<()>)> {
    let reporter = Reporter::collector(config, region)?;
    let deliver = move |batch| {
        let intake = intake.clone();
        async move { intake.submit(batch).await.map_err(|e| e.to_string()) }
    };
    Some((
        "self metrics",
        tokio::spawn(reporter.run(registry, deliver, stop)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{HistogramOpts, IntCounterVec, Opts};

    #[test]
    fn counters_gauges_and_histograms_become_otlp_points() {
        let registry = Registry::new();
        let c = IntCounterVec::new(
            Opts::new("meridian_collector_refused_total", "refused"),
            &["signal"],
        )
        .unwrap();
        registry.register(Box::new(c.clone())).unwrap();
        c.with_label_values(&["traces"]).inc_by(3);
        let h = prometheus::Histogram::with_opts(
            HistogramOpts::new("meridian_probe_latency_seconds", "latency").buckets(vec![0.1, 1.0]),
        )
        .unwrap();
        registry.register(Box::new(h.clone())).unwrap();
        for v in [0.05, 0.5, 0.7, 5.0] {
            h.observe(v);
        }
        let other = prometheus::IntGauge::new("meridian_analyzer_rows", "not ours").unwrap();
        registry.register(Box::new(other)).unwrap();

        let req = request(&registry.gather(), &COLLECTOR_PREFIXES, "s", "i", 10, 20);
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        assert_eq!(
            metrics.len(),
            2,
            "the analyzer's family is not the collector's"
        );
        let by_name = |n: &str| metrics.iter().find(|m| m.name == n).unwrap();
        match &by_name("meridian_collector_refused_total").data {
            Some(metric::Data::Sum(s)) => {
                assert!(s.is_monotonic);
                let p = &s.data_points[0];
                assert_eq!(p.value, Some(number_data_point::Value::AsDouble(3.0)));
                assert_eq!((p.start_time_unix_nano, p.time_unix_nano), (10, 20));
                assert_eq!(p.attributes[0].key, "signal");
            }
            other => panic!("not a sum: {other:?}"),
        }
        match &by_name("meridian_probe_latency_seconds").data {
            Some(metric::Data::Histogram(hist)) => {
                let p = &hist.data_points[0];
                assert_eq!(p.explicit_bounds, vec![0.1, 1.0]);
                assert_eq!(p.bucket_counts, vec![1, 2, 1]);
                assert_eq!(p.count, 4);
            }
            other => panic!("not a histogram: {other:?}"),
        }
        // The request converts into metrics rows like any gateway's.
        let converted = req.to_arrow("eu").unwrap();
        assert_eq!(converted.batch.num_rows(), 2);
        assert_eq!(converted.rejected, 0);
    }
}
