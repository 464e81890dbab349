//! The analyzer's own metrics, exposed in Prometheus text format on `/metrics`.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Counters and gauges of the analyzer; cheap to clone.
#[derive(Clone)]
pub struct AnalyzerMetrics {
    /// Rows added to the store, by table.
    pub rows_ingested: IntCounterVec,
    /// Rows written to Parquet, by table.
    pub rows_flushed: IntCounterVec,
    /// Parquet bytes written, by table.
    pub bytes_flushed: IntCounterVec,
    /// Parquet files written, by table.
    pub files_written: IntCounterVec,
    /// Time to flush a table's hot rows to Parquet (encode, write, checkpoint), by table.
    pub flush_seconds: HistogramVec,
    /// Rows in memory waiting to be flushed, by table.
    pub hot_rows: IntGaugeVec,
    /// SQL queries, by outcome (`ok`, `invalid`, `failed`).
    pub queries: IntCounterVec,
    /// SQL query latency in seconds.
    pub query_seconds: HistogramVec,
    /// Deliveries recognised as repeats and not stored again, by table.
    pub repeats: IntCounterVec,
    /// Kafka messages consumed, by topic and outcome (`stored`, `repeat`, `invalid`).
    pub kafka_messages: IntCounterVec,
    /// Consumer lag (messages behind the partition's end), by topic and partition.
    pub kafka_lag: IntGaugeVec,
    /// Parquet files taken out of a table, by table and reason (`compacted`, `expired`).
    pub files_retired: IntCounterVec,
    /// Parquet files in each table.
    pub files: IntGaugeVec,
    /// RED points derived (closed intervals).
    pub red_points: IntCounter,
    /// Requests that arrived after their interval was closed, left out of the RED series.
    pub red_late: IntGauge,
    /// Anomalies found, by severity.
    pub anomalies: IntCounterVec,
    /// Forecast fits, by outcome (`ok`, `fallback` when the model failed and a baseline stood in).
    pub forecast_fits: IntCounterVec,
    /// Series and metrics watched by the detectors.
    pub watched_series: IntGauge,
    /// 1 while a probed endpoint is healthy (vantage points combined), by endpoint, region, service.
    pub probe_endpoint_healthy: IntGaugeVec,
    /// Probe results received, by vantage region and result (`ok`, `fail`).
    pub probe_results: IntCounterVec,
    /// Changes of an endpoint's health, by endpoint and new state (`healthy`, `unhealthy`).
    pub probe_transitions: IntCounterVec,
    /// Recommendations made, by kind.
    pub recommendations: IntCounterVec,
    /// The desired routing weight, by service and region.
    pub routing_weight: IntGaugeVec,
    /// The weight an agent reports it applied, by agent, service and region.
    pub routing_applied_weight: IntGaugeVec,
    /// Version of the desired routing state.
    pub routing_version: IntGauge,
    /// Webhook and Kafka deliveries of recommendations, by channel and outcome.
    pub recommendation_deliveries: IntCounterVec,
    /// Alerts known now, by state (`pending`, `firing`, `resolved`).
    pub alerts: IntGaugeVec,
    /// Notifications sent to Alertmanager and webhooks, by channel and outcome.
    pub alert_notifications: IntCounterVec,
    /// Rule evaluations that failed (bad SQL, a query error), by rule.
    pub alert_rule_errors: IntCounterVec,
}

impl AnalyzerMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let hot_rows = IntGaugeVec::new(
            Opts::new(
                "meridian_analyzer_hot_rows",
                "Rows in memory not yet in Parquet",
            ),
            &["table"],
        )?;
        registry.register(Box::new(hot_rows.clone()))?;
        let query_seconds = HistogramVec::new(
            HistogramOpts::new("meridian_analyzer_query_seconds", "SQL query latency"),
            &["outcome"],
        )?;
        registry.register(Box::new(query_seconds.clone()))?;
        let flush_seconds = HistogramVec::new(
            HistogramOpts::new(
                "meridian_analyzer_flush_seconds",
                "Time to flush a table's hot rows to Parquet",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["table"],
        )?;
        registry.register(Box::new(flush_seconds.clone()))?;
        let kafka_lag = IntGaugeVec::new(
            Opts::new(
                "meridian_analyzer_kafka_consumer_lag",
                "Messages between the consumer's position and the partition's end",
            ),
            &["topic", "partition"],
        )?;
        registry.register(Box::new(kafka_lag.clone()))?;
        let files = IntGaugeVec::new(
            Opts::new(
                "meridian_analyzer_parquet_files",
                "Parquet files in the table",
            ),
            &["table"],
        )?;
        registry.register(Box::new(files.clone()))?;
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let red_late = gauge(
            "meridian_analyzer_red_late_requests",
            "Requests that arrived after their RED interval was closed",
        )?;
        let watched_series = gauge(
            "meridian_analyzer_watched_series",
            "RED series and metrics watched by the detectors",
        )?;
        let gauges =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec, prometheus::Error> {
                let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(g.clone()))?;
                Ok(g)
            };
        Ok(Self {
            probe_endpoint_healthy: gauges(
                "meridian_probe_endpoint_healthy",
                "1 while the endpoint is healthy: more than the quorum of vantage points say so",
                &["endpoint", "region", "service"],
            )?,
            probe_results: counter(
                "meridian_probe_results_total",
                "Probe results received from collectors",
                &["vantage_region", "result"],
            )?,
            probe_transitions: counter(
                "meridian_probe_transitions_total",
                "Changes of an endpoint's health",
                &["endpoint", "to"],
            )?,
            recommendations: counter(
                "meridian_recommendations_total",
                "Routing and capacity recommendations made",
                &["kind"],
            )?,
            routing_weight: gauges(
                "meridian_routing_weight",
                "Desired routing weight (0..255)",
                &["service", "region"],
            )?,
            routing_applied_weight: gauges(
                "meridian_routing_applied_weight",
                "Routing weight an agent reports applied (0..255)",
                &["agent", "service", "region"],
            )?,
            routing_version: gauge(
                "meridian_routing_version",
                "Version of the desired routing state",
            )?,
            recommendation_deliveries: counter(
                "meridian_recommendation_deliveries_total",
                "Deliveries of recommendations to webhooks and Kafka",
                &["channel", "outcome"],
            )?,
            alerts: gauges("meridian_alerts", "Alerts known now, by state", &["state"])?,
            alert_notifications: counter(
                "meridian_alert_notifications_total",
                "Alert notifications to Alertmanager and webhooks",
                &["channel", "outcome"],
            )?,
            alert_rule_errors: counter(
                "meridian_alert_rule_errors_total",
                "Alert rule evaluations that failed",
                &["rule"],
            )?,
            red_late,
            watched_series,
            red_points: {
                let c = IntCounter::new(
                    "meridian_analyzer_red_points_total",
                    "RED points derived (closed intervals)",
                )?;
                registry.register(Box::new(c.clone()))?;
                c
            },
            anomalies: counter(
                "meridian_analyzer_anomalies_total",
                "Anomalies found in the RED series",
                &["severity"],
            )?,
            forecast_fits: counter(
                "meridian_analyzer_forecast_fits_total",
                "Forecast fits",
                &["outcome"],
            )?,
            rows_ingested: counter(
                "meridian_analyzer_ingested_rows_total",
                "Rows added to the store",
                &["table"],
            )?,
            rows_flushed: counter(
                "meridian_analyzer_flushed_rows_total",
                "Rows written to Parquet",
                &["table"],
            )?,
            bytes_flushed: counter(
                "meridian_analyzer_flushed_bytes_total",
                "Parquet bytes written",
                &["table"],
            )?,
            files_written: counter(
                "meridian_analyzer_parquet_files_written_total",
                "Parquet files written",
                &["table"],
            )?,
            hot_rows,
            queries: counter(
                "meridian_analyzer_queries_total",
                "SQL queries",
                &["outcome"],
            )?,
            query_seconds,
            flush_seconds,
            repeats: counter(
                "meridian_analyzer_repeated_batches_total",
                "Deliveries recognised as repeats and not stored again",
                &["table"],
            )?,
            kafka_messages: counter(
                "meridian_analyzer_kafka_messages_total",
                "Kafka messages consumed",
                &["topic", "outcome"],
            )?,
            kafka_lag,
            files_retired: counter(
                "meridian_analyzer_parquet_files_retired_total",
                "Parquet files taken out of a table by compaction or retention",
                &["table", "reason"],
            )?,
            files,
        })
    }
}
