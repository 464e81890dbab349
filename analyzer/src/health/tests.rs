//! The quorum rule, staleness and transitions, on rows built by the collector's own code.

use std::time::Duration;

use meridian_collector::probe::check::Outcome;
use meridian_collector::probe::rows::{batch, ProbeRow};
use meridian_collector::probe::ProbeConfig;

use super::*;

const S: i64 = 1_000_000_000;

fn probe() -> ProbeConfig {
    ProbeConfig {
        name: "api-eu".into(),
        region: "eu-west-1".into(),
        service: None,
        url: "http://api-eu/health".into(),
        interval: Duration::from_secs(10),
        failure_threshold: 3,
        search_string: None,
        connect_timeout: None,
        response_timeout: None,
    }
}

/// One row per (vantage, healthy) at `t` seconds.
fn report(tracker: &mut HealthTracker, t: i64, verdicts: &[(&str, bool)]) {
    let probe = probe();
    let outcomes: Vec<Outcome> = verdicts
        .iter()
        .map(|(_, ok)| Outcome {
            ok: *ok,
            status_code: Some(if *ok { 200 } else { 503 }),
            error: (!ok).then(|| "status 503".to_owned()),
            ..Outcome::default()
        })
        .collect();
    let rows: Vec<ProbeRow<'_>> = verdicts
        .iter()
        .zip(&outcomes)
        .map(|((vantage, healthy), outcome)| ProbeRow {
            time_ns: t * S,
            vantage_region: vantage,
            probe: &probe,
            outcome,
            healthy: *healthy,
        })
        .collect();
    tracker.observe(&[batch(&rows).unwrap()]);
}

/// Scenario: three vantage points; one says unhealthy (a partition), then all three.
/// Guarantees: 2/3 healthy is healthy; 0/3 is unhealthy, with one transition naming the
/// failing vantage points.
#[test]
fn one_partitioned_vantage_point_does_not_mark_an_endpoint_down() {
    let config = HealthConfig::default();
    let mut tracker = HealthTracker::default();
    report(
        &mut tracker,
        0,
        &[
            ("us-east-1", false),
            ("eu-west-1", true),
            ("ap-southeast-2", true),
        ],
    );
    assert!(tracker.evaluate(&config, S).is_empty());
    report(
        &mut tracker,
        10,
        &[
            ("us-east-1", false),
            ("eu-west-1", false),
            ("ap-southeast-2", false),
        ],
    );
    let changes = tracker.evaluate(&config, 11 * S);
    assert_eq!(changes.len(), 1);
    let t = &changes[0];
    assert!(!t.healthy);
    assert_eq!((t.healthy_vantages, t.vantages), (0, 3));
    assert!(t.reason.starts_with("probes 3/3 failing"), "{}", t.reason);
    assert!(t.reason.contains("us-east-1 status 503"));
}

/// Scenario: five vantage points, only one says healthy (20%), then none.
/// Guarantees: more than 18% is healthy; 0% is not; the quorum is configurable.
#[test]
fn more_than_eighteen_percent_healthy_is_healthy() {
    let five = |healthy: usize| -> Vec<(String, bool)> {
        (0..5).map(|i| (format!("r{i}"), i < healthy)).collect()
    };
    let run = |healthy: usize, quorum: f64| -> bool {
        let mut tracker = HealthTracker::default();
        let v = five(healthy);
        let refs: Vec<(&str, bool)> = v.iter().map(|(r, h)| (r.as_str(), *h)).collect();
        report(&mut tracker, 0, &refs);
        let config = HealthConfig {
            healthy_quorum: quorum,
            ..HealthConfig::default()
        };
        tracker.evaluate(&config, S);
        let healthy = tracker.endpoints().next().unwrap().1.healthy;
        healthy
    };
    assert!(run(1, 0.18), "1/5 = 20% > 18%");
    assert!(!run(0, 0.18));
    assert!(!run(1, 0.5), "with a 50% quorum, 1/5 is not enough");
    assert!(run(3, 0.5));
}

/// Scenario: two vantage points say unhealthy, the one that says healthy stops reporting; later
/// every vantage point goes silent.
/// Guarantees: the silent one stops counting after 3 intervals, so the endpoint goes down; with
/// nobody reporting the last verdict stands; a new endpoint is healthy before any data.
#[test]
fn silent_vantage_points_stop_counting_and_silence_keeps_the_last_verdict() {
    let config = HealthConfig::default();
    let mut tracker = HealthTracker::default();
    assert!(tracker.is_empty());
    report(&mut tracker, 0, &[("a", false), ("b", false), ("c", true)]);
    assert!(tracker.evaluate(&config, S).is_empty(), "1/3 healthy");
    report(&mut tracker, 20, &[("a", false), ("b", false)]);
    assert!(
        tracker.evaluate(&config, 25 * S).is_empty(),
        "c still counts at 25 s"
    );
    report(&mut tracker, 31, &[("a", false), ("b", false)]);
    let changes = tracker.evaluate(&config, 31 * S);
    assert_eq!(changes.len(), 1, "c went silent for more than 30 s");
    assert_eq!(changes[0].vantages, 2);
    assert!(tracker.evaluate(&config, 1000 * S).is_empty());
    assert!(!tracker.endpoints().next().unwrap().1.healthy);
    assert!(tracker.hears_from("a", 40 * S, 10 * S));
    assert!(!tracker.hears_from("c", 40 * S, 10 * S));
}
