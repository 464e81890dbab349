//! The capacity rules: the formula at the lead time, N−1 headroom, traffic shifted in, tolerance
//! and the scale-in stabilization window, on a simulated clock.

use super::*;
use crate::derive::SeriesKey;
use crate::recommend::routing::Phase;

const S: i64 = 1_000_000_000;

fn forecast(region: &str, upper_at_15m: f64) -> Vec<Forecast> {
    [(900, upper_at_15m), (1800, upper_at_15m * 1.2)]
        .into_iter()
        .map(|(h, hi)| Forecast {
            target_ns: h * S,
            made_at_ns: 0,
            horizon_s: h,
            key: SeriesKey {
                region: region.into(),
                service: "api".into(),
                route: "/x".into(),
            },
            metric: Metric::RequestRate,
            forecast: hi * 0.8,
            interval_80: None,
            interval_95: Some((0.0, hi)),
            method: "model",
            interval_source: "calibrated",
        })
        .collect()
}

fn config() -> CapacityConfig {
    CapacityConfig {
        capacity_per_instance: 10.0,
        target_utilization: 0.5,
        instances: BTreeMap::from([("eu-west-1".to_owned(), 4)]),
        n_minus_one: false,
        evaluate_every: Duration::from_secs(15),
        ..CapacityConfig::default()
    }
}

/// Scenario: eu-west-1 runs 4 instances of 5 req/s usable each; the 15-minute forecast's 95%
/// upper bound rises to 30 req/s, then falls to 10.
/// Guarantees: scale-out to 6 at once, forecast-only (`apply: false`); no scale-in until the
/// 300 s window holds only lower recommendations; within the tolerance, nothing.
#[test]
fn scale_out_at_once_scale_in_after_the_stabilization_window() {
    let c = config();
    let routing = BTreeMap::new();
    let mut p = CapacityPlanner::default();
    p.observe_forecasts(&forecast("eu-west-1", 20.0));
    assert!(
        p.evaluate(&c, 15 * S, &routing).made.is_empty(),
        "20 req/s needs the 4 running"
    );
    let mut p = CapacityPlanner::default();
    p.observe_forecasts(&forecast("eu-west-1", 30.0));
    let made = p.evaluate(&c, 15 * S, &routing).made;
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].kind, Kind::ScaleOut);
    assert_eq!(made[0].target["instances"], 6);
    assert_eq!(made[0].previous.as_ref().unwrap()["instances"], 4);
    assert!(!made[0].apply, "forecast-only by default");
    assert!(
        made[0]
            .reason
            .contains("forecast 30 req/s (95% upper) in 15m"),
        "{}",
        made[0].reason
    );

    p.observe_forecasts(&forecast("eu-west-1", 10.0));
    for t in (30..=300).step_by(15) {
        assert!(
            p.evaluate(&c, t * S, &routing).made.is_empty(),
            "t={t}: 6 is still in the window"
        );
    }
    let made = p.evaluate(&c, 330 * S, &routing);
    assert_eq!(made.made[0].kind, Kind::ScaleIn);
    assert_eq!(made.made[0].target["instances"], 2);
    assert_eq!(made.retired.len(), 1, "the scale-out is superseded");
}

/// Scenario: three regions forecast 30 req/s each; then eu-west-1 is drained by routing.
/// Guarantees: with N−1 each plans for half the largest other region on top (45 → 9); while
/// eu-west-1 is drained, what it sheds counts in the regions it went to.
#[test]
fn n_minus_one_and_shifted_traffic_are_planned_for() {
    let mut c = config();
    c.n_minus_one = true;
    c.instances.clear();
    let mut p = CapacityPlanner::default();
    for r in ["ap-southeast-2", "eu-west-1", "us-east-1"] {
        p.observe_forecasts(&forecast(r, 30.0));
    }
    let plans = p.plans(&c, &BTreeMap::new());
    let us = &plans[&("us-east-1".to_owned(), "api".to_owned())];
    assert_eq!((us.n_minus_one, us.recommended), (15.0, 9));
    let route = RegionRoute::fixed;
    let routing = BTreeMap::from([(
        "api".to_owned(),
        BTreeMap::from([
            ("ap-southeast-2".to_owned(), route(150, Phase::Normal)),
            ("eu-west-1".to_owned(), route(0, Phase::Drained)),
            ("us-east-1".to_owned(), route(150, Phase::Normal)),
        ]),
    )]);
    let plans = p.plans(&c, &routing);
    let us = &plans[&("us-east-1".to_owned(), "api".to_owned())];
    assert_eq!(us.shifted_in, 15.0);
    let made = p.evaluate(&c, 15 * S, &routing).made;
    assert_eq!(
        made.len(),
        3,
        "no current counts: every region gets its target"
    );
}

/// Scenario: load ramps linearly from 10 to 40 req/s over an hour; every minute a forecast
/// whose 95% upper bound at 15 minutes is the true load then (+10%); 4 instances of 5 req/s
/// usable each (20 req/s).
/// Guarantees: the scale-out comes at least the 15-minute lead time before the load exceeds
/// the running capacity.
#[test]
fn on_a_ramp_scale_out_comes_a_lead_time_before_the_load_exceeds_capacity() {
    let c = config();
    let load = |t: i64| 10.0 + 30.0 * t as f64 / 3600.0;
    let mut p = CapacityPlanner::default();
    let mut recommended_at = None;
    for t in (0..3600).step_by(60) {
        p.observe_forecasts(&forecast("eu-west-1", load(t + 900) * 1.1));
        if !p.evaluate(&c, t * S, &BTreeMap::new()).made.is_empty() && recommended_at.is_none() {
            recommended_at = Some(t);
        }
    }
    let exceeds = (0..3600).find(|t| load(*t) > 20.0).unwrap();
    let lead = exceeds - recommended_at.unwrap();
    assert!(
        lead >= 900,
        "scale-out {lead} s before the load exceeded capacity"
    );
}

/// Scenario: eu-west-1's `/x` has a forecast (95% upper 20 req/s at 15 min); its `/y` serves
/// 12 req/s but has no forecast yet; then `/y` gets one of 4 req/s.
/// Guarantees: until `/y` is forecast its newest rate counts (32 → 7 instances, a scale-out);
/// once forecast, its forecast replaces the rate (24 → 5); a route gone from the newest
/// interval no longer counts.
#[test]
fn a_route_without_a_forecast_counts_at_its_newest_rate() {
    let c = config();
    let red = |start_s: i64, route: &str, count: u64| RedPoint {
        start_ns: start_s * S,
        key: SeriesKey {
            region: "eu-west-1".into(),
            service: "api".into(),
            route: route.into(),
        },
        interval_s: 10.0,
        red: crate::derive::window::Red {
            count,
            errors: 0,
            latency_ms: None,
            count_source: "spans",
            latency_source: None,
        },
    };
    let mut p = CapacityPlanner::default();
    p.observe_forecasts(&forecast("eu-west-1", 20.0));
    p.observe_red(&c, &[red(0, "/x", 200), red(0, "/y", 120)]);
    let key = ("eu-west-1".to_owned(), "api".to_owned());
    let plan = &p.plans(&c, &BTreeMap::new())[&key];
    assert_eq!((plan.load, plan.recommended), (32.0, 7));
    let made = p.evaluate(&c, 15 * S, &BTreeMap::new()).made;
    assert_eq!(made[0].kind, Kind::ScaleOut);

    let mut y = forecast("eu-west-1", 4.0);
    for f in &mut y {
        f.key.route = "/y".into();
    }
    p.observe_forecasts(&y);
    assert_eq!(p.plans(&c, &BTreeMap::new())[&key].load, 24.0);

    let mut p = CapacityPlanner::default();
    p.observe_forecasts(&forecast("eu-west-1", 20.0));
    p.observe_red(&c, &[red(0, "/x", 200), red(0, "/y", 120)]);
    p.observe_red(&c, &[red(10, "/x", 200)]);
    assert_eq!(p.plans(&c, &BTreeMap::new())[&key].load, 20.0, "/y is gone");
}
