//! The analysis pipeline over a real store: spans in, RED points, anomalies and forecasts out as
//! SQL tables, and the detectors' state across a restart.

mod common;

use std::time::Duration;

use meridian_analyzer::AnalyzerConfig;
use meridian_collector::otlp::builders::kv;
use meridian_collector::{Signal, SignalBatch};
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, Span};
use prometheus::Registry;

const S: i64 = 1_000_000_000;
/// 2026-11-26T00:00:00Z: intervals of the test are far behind the wall clock, so only event
/// time closes them.
const T0: i64 = 1_795_651_200 * S;

/// Ten server spans on `/api/orders` ending in the 10 s interval starting `start_ns`, taking
/// `ms` each; `errors` of them answered 503.
fn interval_of_spans(start_ns: i64, ms: f64, errors: usize, seed: u64) -> Vec<Span> {
    (0..10)
        .map(|i| {
            let end = (start_ns + i * S) as u64 + 500_000_000;
            let jitter = 1.0 + ((seed * 31 + i as u64 * 7) % 11) as f64 / 50.0;
            let status = if (i as usize) < errors { 503 } else { 200 };
            Span {
                trace_id: (seed * 100 + i as u64 + 1).to_be_bytes().repeat(2),
                span_id: (seed * 100 + i as u64 + 1).to_be_bytes().to_vec(),
                name: "GET /api/orders".into(),
                kind: SpanKind::Server as i32,
                start_time_unix_nano: end - (ms * jitter * 1e6) as u64,
                end_time_unix_nano: end,
                attributes: vec![
                    kv("http.route", "/api/orders"),
                    kv("http.response.status_code", status),
                ],
                ..Default::default()
            }
        })
        .collect()
}

fn config() -> AnalyzerConfig {
    let mut config = AnalyzerConfig::default();
    config.postgres.enabled = false;
    config.pipeline.derive.grace = Duration::ZERO;
    config.pipeline.forecast.refit = Duration::from_secs(600);
    config
}

/// Scenario: 200 healthy intervals (10 requests each, ~20 ms), then latency ×8 with half the
/// requests failing; the analyzer is reopened in between, from its saved state.
/// Guarantees: every interval becomes a `red` row with exact count, errors and percentiles;
/// the incident's first interval is an anomaly on latency (critical) and on errors; nothing is an anomaly
/// before it; the detectors continue after the restart (no new warm-up: the incident right
/// after it is caught); forecasts with intervals are stored for rate and p99.
#[tokio::test]
async fn red_points_anomalies_and_forecasts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = |i: i64, ms: f64, errors: usize| {
        SignalBatch::new(
            Signal::Traces,
            common::spans_batch(interval_of_spans(T0 + i * 10 * S, ms, errors, i as u64)),
        )
    };
    {
        let analyzer = config().build(dir.path(), &Registry::new()).await.unwrap();
        let sink = analyzer.sink();
        let pipeline = analyzer.pipeline();
        for i in 0..200 {
            sink.deliver(store(i, 20.0, 0)).await.unwrap();
            pipeline.tick(0).unwrap();
        }
        pipeline.refit().await.unwrap();
        pipeline.save().await.unwrap();
        analyzer.store().flush_all().await.unwrap();
    }
    let analyzer = config().build(dir.path(), &Registry::new()).await.unwrap();
    let (sink, pipeline, engine) = (analyzer.sink(), analyzer.pipeline(), analyzer.engine());
    for i in 200..203 {
        sink.deliver(store(i, 160.0, 5)).await.unwrap();
        pipeline.tick(0).unwrap();
    }
    sink.deliver(store(203, 20.0, 0)).await.unwrap();
    pipeline.tick(0).unwrap();

    let red = common::count(
        &engine,
        "SELECT count(*) FROM red WHERE request_count = 10 AND http_route = '/api/orders' \
         AND latency_p50_ms BETWEEN 20 AND 200",
    )
    .await;
    assert_eq!(red, 203, "one row per closed interval");
    let first_incident = T0 + 200 * 10 * S;
    let quiet = common::count(
        &engine,
        &format!("SELECT count(*) FROM anomalies WHERE CAST(time AS BIGINT) < {first_incident}"),
    )
    .await;
    assert_eq!(quiet, 0, "false alarms before the incident");
    // A p99 eight times its usual is beyond anything seen: critical. The error ratio jumps
    // from a flat zero, which the level view sees (a warning at least).
    for (metric, least) in [("latency_p99_ms", 0.8), ("error_ratio", 0.4)] {
        let found = common::count(
            &engine,
            &format!(
                "SELECT count(*) FROM anomalies WHERE metric = '{metric}' \
                 AND CAST(time AS BIGINT) = {first_incident} AND score >= {least} \
                 AND expected < value AND lower <= expected AND expected <= upper"
            ),
        )
        .await;
        assert!(
            found >= 1,
            "{metric} not flagged in the incident's first interval"
        );
    }
    let forecasts = common::count(
        &engine,
        "SELECT count(*) FROM forecasts WHERE horizon_s IN (900, 1800, 3600) \
         AND lower_95 <= forecast AND forecast <= upper_95 \
         AND metric IN ('request_rate', 'latency_p99_ms')",
    )
    .await;
    assert_eq!(forecasts, 6, "rate and p99 at three horizons");
}
