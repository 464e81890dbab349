//! The collector rules on real reports: gauges as `meridian collector` reports them
//! (`self_metrics::request` over a Prometheus registry), stored, and judged by SQL.

use std::time::Duration;

use meridian_analyzer::alert::collectors;
use meridian_analyzer::alert::config::BuiltinConfig;
use meridian_analyzer::AnalyzerConfig;
use meridian_collector::otlp::ExportRequest;
use meridian_collector::self_metrics::{now_ns, request, COLLECTOR_PREFIXES, COLLECTOR_SERVICE};
use meridian_collector::telemetry::CollectorMetrics;
use meridian_collector::{Signal, SignalBatch};

/// One report of a collector whose gauges are set by `set`, `ago` seconds ago.
fn report(region: &str, instance: &str, ago: u64, set: impl Fn(&CollectorMetrics)) -> SignalBatch {
    let registry = prometheus::Registry::new();
    let metrics = CollectorMetrics::new(&registry).unwrap();
    metrics.queue_capacity_rows.set(1000);
    set(&metrics);
    let at = now_ns() - ago * 1_000_000_000;
    let req = request(
        &registry.gather(),
        &COLLECTOR_PREFIXES,
        COLLECTOR_SERVICE,
        instance,
        at - 1,
        at,
    );
    SignalBatch::new(Signal::Metrics, req.to_arrow(region).unwrap().batch)
}

/// Scenario: four collectors' reports — `ok` healthy, `full` with its disk buffer 90% full,
/// `late` delivering a 10-minute-old backlog with its sink down, `gone` last heard 5 minutes
/// ago (each reported earlier too, with healthy gauges).
/// Guarantees: exactly one instance per rule, for the right collector, with the right value;
/// the healthy one is in none; the silent one's stale gauges are not judged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_collector_rule_fires_for_its_collector_only() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = AnalyzerConfig::default()
        .build(dir.path(), &prometheus::Registry::new())
        .await
        .unwrap();
    let store = analyzer.store();
    for (region, instance) in [("eu", "ok"), ("eu", "full"), ("us", "late"), ("eu", "gone")] {
        store.insert(report(region, instance, 600, |_| {})).unwrap();
    }
    store
        .insert(report("eu", "ok", 5, |m| m.buffer_max_bytes.set(1000)))
        .unwrap();
    store
        .insert(report("eu", "full", 5, |m| {
            m.buffer_max_bytes.set(1000);
            m.buffer_bytes.set(900);
        }))
        .unwrap();
    store
        .insert(report("us", "late", 5, |m| {
            m.sink_up.set(0);
            m.buffer_oldest_age_seconds.set(600.0);
        }))
        .unwrap();
    store
        .insert(report("eu", "gone", 300, |m| {
            m.buffer_max_bytes.set(1000);
            m.buffer_bytes.set(999);
        }))
        .unwrap();

    let config = BuiltinConfig::default();
    let evaluated = collectors::evaluate(&analyzer.engine(), &config, now_ns() as i64)
        .await
        .unwrap();
    let by_rule = |rule: &str| {
        let e = evaluated.iter().find(|e| e.rule == rule).unwrap();
        e.instances
            .iter()
            .map(|i| {
                (
                    i.labels["region"].clone(),
                    i.labels["instance"].clone(),
                    i.value,
                )
            })
            .collect::<Vec<_>>()
    };
    let silent = by_rule("MeridianCollectorSilent");
    assert_eq!(silent.len(), 1, "{silent:?}");
    assert_eq!((silent[0].0.as_str(), silent[0].1.as_str()), ("eu", "gone"));
    assert!((299.0..320.0).contains(&silent[0].2), "{silent:?}");
    assert_eq!(
        by_rule("MeridianCollectorBufferFilling"),
        vec![("eu".to_owned(), "full".to_owned(), 0.9)]
    );
    assert_eq!(
        by_rule("MeridianCollectorBehind"),
        vec![("us".to_owned(), "late".to_owned(), 600.0)]
    );
    let behind = &evaluated
        .iter()
        .find(|e| e.rule == "MeridianCollectorBehind")
        .unwrap();
    assert_eq!(behind.timing.for_, Duration::from_secs(60));
    let summary = &behind.instances[0].annotations["summary"];
    assert!(
        summary.contains("deliveries to the center fail"),
        "{summary}"
    );
}
