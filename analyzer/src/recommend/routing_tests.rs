//! The routing rules on a simulated clock: failover and redistribution, hysteresis and dwell,
//! fail-open, max_drained, fleet-wide changes, stepped failback and its revert.

use super::*;

const S: i64 = 1_000_000_000;
const REGIONS: [&str; 3] = ["ap-southeast-2", "eu-west-1", "us-east-1"];

fn failed(from_probes: bool) -> Condition {
    Condition::Failed(Finding {
        reason: "eu-west-1 api: probes 3/3 failing".into(),
        evidence: serde_json::json!({}),
        from_probes,
    })
}

fn degraded() -> Condition {
    Condition::Degraded(Finding {
        reason: "eu-west-1 api: p99 400 ms vs 150 ms expected".into(),
        evidence: serde_json::json!({}),
        from_probes: false,
    })
}

/// Conditions for service `api`: `eu` for eu-west-1, good elsewhere unless `others` says.
fn world(eu: Condition, others: Condition) -> BTreeMap<String, BTreeMap<String, Condition>> {
    let regions = REGIONS
        .iter()
        .map(|r| {
            let c = if *r == "eu-west-1" {
                eu.clone()
            } else {
                others.clone()
            };
            (r.to_string(), c)
        })
        .collect();
    BTreeMap::from([("api".to_owned(), regions)])
}

fn weights_of(engine: &RoutingEngine) -> Vec<u8> {
    engine.desired()["api"].values().map(|r| r.weight).collect()
}

fn config() -> RoutingConfig {
    RoutingConfig {
        dwell: Duration::from_secs(30),
        failback_after: Duration::from_secs(300),
        failback_step_hold: Duration::from_secs(60),
        ..RoutingConfig::default()
    }
}

/// Scenario: eu-west-1 fails, recovers, and is watched through its failback on a clock.
/// Guarantees: failover at once to 0 with its share raised elsewhere; no failback before
/// `failback_after` of good health; then 10% → 50% → 100%, each held; the last is resolved.
#[test]
fn failover_then_stepped_failback() {
    let c = config();
    let none = BTreeMap::new();
    let mut e = RoutingEngine::default();
    assert!(e
        .evaluate(&c, 0, &world(Condition::Good, Condition::Good), &none)
        .made
        .is_empty());
    assert_eq!(weights_of(&e), vec![100, 100, 100]);

    let made = e
        .evaluate(&c, S, &world(failed(true), Condition::Good), &none)
        .made;
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].kind, Kind::Failover);
    assert_eq!(made[0].region, "eu-west-1");
    assert_eq!(made[0].state, State::Active);
    assert!(made[0].reason.contains("probes 3/3 failing"));
    assert_eq!(
        weights_of(&e),
        vec![150, 0, 150],
        "its share goes to the others"
    );
    assert_eq!(made[0].target["weights"]["eu-west-1"], 0);
    assert_eq!(
        made[0].previous.as_ref().unwrap()["weights"]["eu-west-1"],
        100
    );

    let good = world(Condition::Good, Condition::Good);
    for t in [2, 60, 200, 300] {
        assert!(e.evaluate(&c, t * S, &good, &none).made.is_empty(), "t={t}");
    }
    assert_eq!(weights_of(&e)[1], 0, "healthy for 298 s: not yet");
    let step1 = e.evaluate(&c, 302 * S, &good, &none);
    assert_eq!(step1.made[0].kind, Kind::Failback);
    assert_eq!(step1.retired.len(), 1, "the failover is superseded");
    assert_eq!(weights_of(&e)[1], 10);
    assert!(
        e.evaluate(&c, 361 * S, &good, &none).made.is_empty(),
        "held 60 s"
    );
    e.evaluate(&c, 362 * S, &good, &none);
    assert_eq!(weights_of(&e)[1], 50);
    let last = e.evaluate(&c, 422 * S, &good, &none).made;
    assert_eq!(weights_of(&e), vec![100, 100, 100]);
    assert_eq!(last[0].state, State::Resolved, "back to normal");
}

/// Scenario: eu-west-1 degrades again in the middle of its failback.
/// Guarantees: straight back to 0, without waiting for the dwell time; the clock of good
/// health starts over.
#[test]
fn a_region_that_degrades_during_failback_goes_back_to_zero_at_once() {
    let c = config();
    let none = BTreeMap::new();
    let mut e = RoutingEngine::default();
    e.evaluate(&c, 0, &world(failed(false), Condition::Good), &none);
    let good = world(Condition::Good, Condition::Good);
    e.evaluate(&c, S, &good, &none);
    e.evaluate(&c, 301 * S, &good, &none);
    assert_eq!(weights_of(&e)[1], 10);
    let made = e
        .evaluate(&c, 302 * S, &world(degraded(), Condition::Good), &none)
        .made;
    assert_eq!(made[0].kind, Kind::Failover);
    assert!(made[0].reason.contains("during failback"));
    assert_eq!(weights_of(&e)[1], 0);
    e.evaluate(&c, 303 * S, &good, &none);
    assert!(
        e.evaluate(&c, 500 * S, &good, &none).made.is_empty(),
        "good for 197 s only"
    );
}

/// Scenario: every region fails at once, with and without one already drained.
/// Guarantees: none is drained (fail open), and a drained one comes back, saying why.
#[test]
fn when_every_region_fails_the_engine_fails_open() {
    let c = config();
    let none = BTreeMap::new();
    let mut e = RoutingEngine::default();
    assert!(e
        .evaluate(&c, 0, &world(failed(true), failed(true)), &none)
        .made
        .is_empty());
    assert_eq!(weights_of(&e), vec![100, 100, 100]);
    e.evaluate(&c, S, &world(failed(true), Condition::Good), &none);
    assert_eq!(weights_of(&e)[1], 0);
    let made = e
        .evaluate(&c, 2 * S, &world(failed(true), failed(true)), &none)
        .made;
    assert_eq!(weights_of(&e), vec![100, 100, 100]);
    assert!(made[0].reason.contains("failing open"));
}

/// Scenario: two of three regions fail by their probes with `max_drained = 1`.
/// Guarantees: the first is drained, the second only shifted partially (50%).
#[test]
fn max_drained_turns_a_second_failover_into_a_partial_shift() {
    let c = config();
    let mut e = RoutingEngine::default();
    let mut w = world(failed(true), Condition::Good);
    w.get_mut("api")
        .unwrap()
        .insert("us-east-1".into(), failed(true));
    let made = e.evaluate(&c, 0, &w, &BTreeMap::new()).made;
    let kinds: Vec<Kind> = made.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, vec![Kind::Failover, Kind::Shift]);
    assert!(made[1].reason.contains("max_drained"));
    assert_eq!(
        weights_of(&e),
        vec![250, 0, 50],
        "ap-southeast-2 takes what both shed"
    );
}

/// Scenario: anomalies (not probes) in two of three regions at once; then the same by probes.
/// Guarantees: a fleet-wide change moves nothing; probe failures are never set aside.
#[test]
fn fleet_wide_anomalies_do_not_move_traffic_but_probes_do() {
    let c = config();
    let mut e = RoutingEngine::default();
    let mut w = world(failed(false), Condition::Good);
    w.get_mut("api")
        .unwrap()
        .insert("us-east-1".into(), degraded());
    assert!(e.evaluate(&c, 0, &w, &BTreeMap::new()).made.is_empty());
    assert_eq!(weights_of(&e), vec![100, 100, 100]);
    let made = e.evaluate(
        &c,
        S,
        &world(failed(true), Condition::Good),
        &BTreeMap::new(),
    );
    assert_eq!(made.made.len(), 1);
}

/// Scenario: a degraded region (partial shift) recovers at once, then after the dwell time.
/// Guarantees: lowering is immediate, raising waits for `dwell`.
#[test]
fn dwell_delays_raising_a_weight_not_lowering_it() {
    let c = config();
    let none = BTreeMap::new();
    let mut e = RoutingEngine::default();
    let made = e
        .evaluate(&c, 0, &world(degraded(), Condition::Good), &none)
        .made;
    assert_eq!(made[0].kind, Kind::Shift);
    assert_eq!(weights_of(&e), vec![125, 50, 125]);
    let good = world(Condition::Good, Condition::Good);
    assert!(e.evaluate(&c, 10 * S, &good, &none).made.is_empty());
    assert!(e.evaluate(&c, 29 * S, &good, &none).made.is_empty());
    assert_eq!(
        e.evaluate(&c, 30 * S, &good, &none).made[0].kind,
        Kind::Failback
    );
    assert_eq!(weights_of(&e), vec![100, 100, 100]);
}

/// Scenario: eu-west-1 fails while us-east-1 has three times the headroom of ap-southeast-2.
/// Guarantees: the shed weight is split 3:1.
#[test]
fn shed_traffic_goes_where_the_headroom_is() {
    let c = config();
    let headroom = BTreeMap::from([
        (("api".to_owned(), "us-east-1".to_owned()), 300.0),
        (("api".to_owned(), "ap-southeast-2".to_owned()), 100.0),
    ]);
    let mut e = RoutingEngine::default();
    e.evaluate(&c, 0, &world(failed(true), Condition::Good), &headroom);
    assert_eq!(weights_of(&e), vec![125, 0, 175]);
}
