//! The routing engine: a desired weight (0..255, as Route 53 weighted records) per service and
//! region, from each region's [`Condition`], under ARC's safety rules.
//!
//! - **Failover**: a failed region goes to 0; its share goes to the normal regions in
//!   proportion to their headroom. At most `max_drained` regions are at 0 at once (another
//!   failed region is shifted partially instead).
//! - **Shift**: a degraded region keeps `degraded_weight` of its normal weight.
//! - **Fail open**: when every region of a service is failed, none is drained — draining all
//!   is an outage, and Route 53 would treat them all as healthy anyway.
//! - **Fleet-wide**: when more than half the regions look bad by anomalies alone, the cause is
//!   shared (load, a common dependency) and moving traffic cannot help; they are not moved.
//! - **Dwell**: a region's weight is raised at most once per `dwell`; lowering is never delayed.
//! - **Failback**: only after `failback_after` of good health, in `failback_steps` held for
//!   `failback_step_hold` each; a region that degrades during failback goes back to 0 at once.
//!
//! Time is passed in (`now_ns`), so the rules are tested on a simulated clock.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::recommendation::{new_id, Kind, Recommendation, State};
use super::signals::{Condition, Finding};

/// Settings of the routing engine (`[analyzer.recommend.routing]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// Recommend routing changes.
    pub enabled: bool,
    /// Consecutive bad RED intervals (significant errors, high p99, or dead traffic) before a
    /// region fails over (with a critical anomaly among them) or is degraded (without).
    pub sustained_intervals: u32,
    /// Most regions of a service at weight 0 at once.
    pub max_drained: usize,
    /// Least time between a change of a region's weight and raising it again.
    #[serde(with = "humantime_serde")]
    pub dwell: Duration,
    /// Share of its normal weight a degraded region keeps (a partial shift).
    pub degraded_weight: f64,
    /// Good health a drained region needs before failback starts.
    #[serde(with = "humantime_serde")]
    pub failback_after: Duration,
    /// Shares of the normal weight a region returns through, the last being all of it.
    pub failback_steps: Vec<f64>,
    /// How long each failback step is held.
    #[serde(with = "humantime_serde")]
    pub failback_step_hold: Duration,
    /// A region's weight when all is well, unless `weights` names it.
    pub normal_weight: u8,
    /// Normal weights of particular regions.
    pub weights: BTreeMap<String, u8>,
    /// A region whose request rate falls under this share of its usual rate, while its peers
    /// keep theirs, has a dead gateway.
    pub dead_traffic_ratio: f64,
    /// Usual rate (req/s) below which dead traffic is not judged (too little to tell).
    pub min_baseline_rate: f64,
    /// An interval whose p99 is this many times the usual one is bad.
    pub latency_factor: f64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            sustained_intervals: 3,
            max_drained: 1,
            dwell: Duration::from_secs(60),
            degraded_weight: 0.5,
            failback_after: Duration::from_secs(300),
            failback_steps: vec![0.1, 0.5, 1.0],
            failback_step_hold: Duration::from_secs(60),
            normal_weight: 100,
            weights: BTreeMap::new(),
            dead_traffic_ratio: 0.05,
            min_baseline_rate: 1.0,
            latency_factor: 2.0,
        }
    }
}

impl RoutingConfig {
    /// How recently a region's collector must have reported for its silence to be trusted
    /// as dead traffic (three of Route 53's default 30 s intervals).
    pub fn heard_within_ns(&self) -> i64 {
        90_000_000_000
    }

    fn normal(&self, region: &str) -> u8 {
        self.weights
            .get(region)
            .copied()
            .unwrap_or(self.normal_weight)
    }
}

/// Where a region is in its routing lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Its normal weight (plus what others shed to it).
    Normal,
    /// Part of its normal weight.
    Degraded,
    /// Weight 0.
    Drained,
    /// Returning, at a step of `failback_steps`.
    FailingBack,
}

/// The desired routing of one region for one service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegionRoute {
    /// Lifecycle phase.
    pub phase: Phase,
    /// Failback step (index into `failback_steps`) while failing back.
    pub step: usize,
    /// Desired weight.
    pub weight: u8,
    /// Normal weight.
    pub normal: u8,
    /// When the phase last changed, unix ns.
    pub since_ns: i64,
    /// Since when it has looked good while drained or degraded.
    pub good_since_ns: Option<i64>,
    /// Why it is where it is.
    pub reason: String,
    /// The active recommendation that put it there.
    pub recommendation: Option<String>,
}

#[cfg(test)]
impl RegionRoute {
    /// A route at `weight` in `phase` (normal weight 100), for tests.
    pub(crate) fn fixed(weight: u8, phase: Phase) -> Self {
        Self {
            phase,
            step: 0,
            weight,
            normal: 100,
            since_ns: 0,
            good_since_ns: None,
            reason: String::new(),
            recommendation: None,
        }
    }
}

/// What one evaluation changed: new recommendations, and older ones that changed state.
#[derive(Debug, Default)]
pub struct Changes {
    /// Recommendations made now (active, or resolved when a region is back to normal).
    pub made: Vec<Recommendation>,
    /// (id, new state) of recommendations replaced or no longer needed.
    pub retired: Vec<(String, State)>,
}

/// Desired routing of every service (kept across restarts).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RoutingEngine {
    services: BTreeMap<String, BTreeMap<String, RegionRoute>>,
}

type Weights = BTreeMap<String, u8>;

impl RoutingEngine {
    /// The desired routing, per service and region.
    pub fn desired(&self) -> &BTreeMap<String, BTreeMap<String, RegionRoute>> {
        &self.services
    }

    /// Re-evaluates every service from its regions' conditions at `now_ns`; `headroom` (by
    /// service and region, in req/s) decides where shed traffic goes (equal shares without it).
    pub fn evaluate(
        &mut self,
        config: &RoutingConfig,
        now_ns: i64,
        conditions: &BTreeMap<String, BTreeMap<String, Condition>>,
        headroom: &BTreeMap<(String, String), f64>,
    ) -> Changes {
        let mut changes = Changes::default();
        for (service, regions) in conditions {
            let routes = self.services.entry(service.clone()).or_default();
            for region in regions.keys() {
                routes.entry(region.clone()).or_insert_with(|| RegionRoute {
                    phase: Phase::Normal,
                    step: 0,
                    weight: config.normal(region),
                    normal: config.normal(region),
                    since_ns: now_ns,
                    good_since_ns: None,
                    reason: "normal".into(),
                    recommendation: None,
                });
            }
            let before = weights(routes);
            let conditions = guard(regions);
            let mut moved: Vec<(String, Kind, String, serde_json::Value)> = Vec::new();
            let all_failed = !conditions.is_empty()
                && conditions
                    .values()
                    .all(|(c, _)| matches!(c, Condition::Failed(_)));
            for (region, (condition, note)) in &conditions {
                let drained_elsewhere = routes
                    .iter()
                    .filter(|(r, x)| *r != region && x.phase == Phase::Drained)
                    .count();
                let Some(route) = routes.get_mut(region) else {
                    continue;
                };
                let step = step(
                    config,
                    route,
                    condition,
                    note.as_deref(),
                    all_failed,
                    drained_elsewhere < config.max_drained,
                    now_ns,
                );
                if let Some((phase, step_index, kind, reason, evidence)) = step {
                    route.phase = phase;
                    route.step = step_index;
                    route.since_ns = now_ns;
                    route.reason = reason.clone();
                    if phase == Phase::Drained || phase == Phase::Degraded {
                        route.good_since_ns = None;
                    }
                    moved.push((region.clone(), kind, reason, evidence));
                }
            }
            assign_weights(config, service, routes, headroom);
            let after = weights(routes);
            for (region, kind, reason, evidence) in moved {
                let Some(route) = routes.get_mut(&region) else {
                    continue;
                };
                if let Some(old) = route.recommendation.take() {
                    changes.retired.push((old, State::Superseded));
                }
                let back = route.phase == Phase::Normal;
                let rec = Recommendation {
                    id: new_id(),
                    time_ns: now_ns,
                    kind,
                    region: region.clone(),
                    service: service.clone(),
                    target: serde_json::json!({ "weights": after }),
                    previous: Some(serde_json::json!({ "weights": before })),
                    reason,
                    evidence,
                    state: if back { State::Resolved } else { State::Active },
                    expires_at_ns: None,
                    apply: true,
                };
                if !back {
                    route.recommendation = Some(rec.id.clone());
                }
                changes.made.push(rec);
            }
        }
        changes
    }
}

/// The conditions after the fleet-wide rule, each with a note when it was set aside.
fn guard(regions: &BTreeMap<String, Condition>) -> BTreeMap<String, (Condition, Option<String>)> {
    let by_anomalies = regions
        .values()
        .filter(|c| match c {
            Condition::Failed(f) | Condition::Degraded(f) => !f.from_probes,
            Condition::Good => false,
        })
        .count();
    let fleet_wide = regions.len() >= 2 && by_anomalies * 2 > regions.len();
    regions
        .iter()
        .map(|(region, c)| {
            let set_aside = fleet_wide
                && matches!(c, Condition::Failed(f) | Condition::Degraded(f) if !f.from_probes);
            let entry = if set_aside {
                (
                    Condition::Good,
                    Some(format!(
                        "{by_anomalies} of {} regions are anomalous at once: a fleet-wide change, not moved",
                        regions.len()
                    )),
                )
            } else {
                (c.clone(), None)
            };
            (region.clone(), entry)
        })
        .collect()
}

type Step = (Phase, usize, Kind, String, serde_json::Value);

/// The next phase of one region, if it changes now.
fn step(
    config: &RoutingConfig,
    route: &mut RegionRoute,
    condition: &Condition,
    note: Option<&str>,
    all_failed: bool,
    may_drain: bool,
    now_ns: i64,
) -> Option<Step> {
    let held = |d: Duration| now_ns - route.since_ns >= d.as_nanos() as i64;
    let last_step = config.failback_steps.len().saturating_sub(1);
    let evidence = |f: &Finding| f.evidence.clone();
    if all_failed {
        route.good_since_ns = None;
        return (route.phase != Phase::Normal).then(|| {
            (
                Phase::Normal,
                0,
                Kind::Failback,
                "every region looks unhealthy: failing open (all at normal weight) rather than draining all".to_owned(),
                serde_json::json!({ "fail_open": true }),
            )
        });
    }
    match (condition, route.phase) {
        (Condition::Failed(f), Phase::Normal | Phase::Degraded | Phase::FailingBack) => {
            if may_drain {
                let reason = if route.phase == Phase::FailingBack {
                    format!("{} (during failback: back to 0)", f.reason)
                } else {
                    f.reason.clone()
                };
                Some((Phase::Drained, 0, Kind::Failover, reason, evidence(f)))
            } else if route.phase != Phase::Degraded {
                Some((
                    Phase::Degraded,
                    0,
                    Kind::Shift,
                    format!(
                        "{}; {} region(s) already drained (max_drained), shifting partially",
                        f.reason, config.max_drained
                    ),
                    evidence(f),
                ))
            } else {
                None
            }
        }
        (Condition::Degraded(f), Phase::Normal) => Some((
            Phase::Degraded,
            0,
            Kind::Shift,
            f.reason.clone(),
            evidence(f),
        )),
        (Condition::Degraded(f), Phase::FailingBack) => Some(if may_drain {
            (
                Phase::Drained,
                0,
                Kind::Failover,
                format!("{} (during failback: back to 0)", f.reason),
                evidence(f),
            )
        } else {
            (
                Phase::Degraded,
                0,
                Kind::Shift,
                f.reason.clone(),
                evidence(f),
            )
        }),
        (Condition::Failed(_) | Condition::Degraded(_), Phase::Drained)
        | (Condition::Degraded(_), Phase::Degraded) => {
            route.good_since_ns = None;
            None
        }
        (Condition::Good, Phase::Drained) => {
            let since = *route.good_since_ns.get_or_insert(now_ns);
            let good_for = now_ns - since >= config.failback_after.as_nanos() as i64;
            (good_for && held(config.dwell)).then(|| {
                let (phase, step) = if last_step == 0 {
                    (Phase::Normal, 0)
                } else {
                    (Phase::FailingBack, 0)
                };
                (
                    phase,
                    step,
                    Kind::Failback,
                    failback_reason(config, step, phase, since, now_ns, note),
                    serde_json::json!({ "good_since_ns": since, "step": step }),
                )
            })
        }
        (Condition::Good, Phase::FailingBack) => {
            (held(config.failback_step_hold.max(config.dwell))).then(|| {
                let next = route.step + 1;
                let (phase, step) = if next >= last_step {
                    (Phase::Normal, 0)
                } else {
                    (Phase::FailingBack, next)
                };
                let since = route.good_since_ns.unwrap_or(route.since_ns);
                (
                    phase,
                    step,
                    Kind::Failback,
                    failback_reason(config, step, phase, since, now_ns, note),
                    serde_json::json!({ "good_since_ns": since, "step": next }),
                )
            })
        }
        (Condition::Good, Phase::Degraded) => {
            let since = *route.good_since_ns.get_or_insert(now_ns);
            held(config.dwell).then(|| {
                (
                    Phase::Normal,
                    0,
                    Kind::Failback,
                    match note {
                        Some(n) => format!("back to normal weight: {n}"),
                        None => format!(
                            "back to normal weight: good for {}s",
                            (now_ns - since) / 1_000_000_000
                        ),
                    },
                    serde_json::json!({ "good_since_ns": since }),
                )
            })
        }
        (Condition::Good, Phase::Normal) => None,
    }
}

fn failback_reason(
    config: &RoutingConfig,
    step: usize,
    phase: Phase,
    since: i64,
    now_ns: i64,
    note: Option<&str>,
) -> String {
    let good = (now_ns - since) / 1_000_000_000;
    let share = if phase == Phase::Normal {
        100.0
    } else {
        config.failback_steps.get(step).copied().unwrap_or(1.0) * 100.0
    };
    let base = format!("failback to {share:.0}% of normal weight: healthy for {good}s");
    match note {
        Some(n) => format!("{base} ({n})"),
        None => base,
    }
}

fn weights(routes: &BTreeMap<String, RegionRoute>) -> Weights {
    routes.iter().map(|(r, x)| (r.clone(), x.weight)).collect()
}

/// Sets each region's weight from its phase, and gives what the others shed to the normal
/// regions in proportion to their headroom.
fn assign_weights(
    config: &RoutingConfig,
    service: &str,
    routes: &mut BTreeMap<String, RegionRoute>,
    headroom: &BTreeMap<(String, String), f64>,
) {
    let share = |normal: u8, s: f64| ((normal as f64 * s).round() as u8).max(1);
    let mut shed = 0.0;
    for route in routes.values_mut() {
        route.weight = match route.phase {
            Phase::Normal => route.normal,
            Phase::Degraded => share(route.normal, config.degraded_weight),
            Phase::Drained => 0,
            Phase::FailingBack => share(
                route.normal,
                config
                    .failback_steps
                    .get(route.step)
                    .copied()
                    .unwrap_or(1.0),
            ),
        };
        shed += f64::from(route.normal.saturating_sub(route.weight));
    }
    let receivers: Vec<(String, f64)> = routes
        .iter()
        .filter(|(_, x)| x.phase == Phase::Normal)
        .map(|(r, _)| {
            let room = headroom
                .get(&(service.to_owned(), r.clone()))
                .copied()
                .unwrap_or(1.0);
            (r.clone(), room.max(0.0))
        })
        .collect();
    let total: f64 = receivers.iter().map(|(_, h)| h).sum();
    for (region, room) in &receivers {
        let part = if total > 0.0 {
            room / total
        } else {
            1.0 / receivers.len() as f64
        };
        if let Some(route) = routes.get_mut(region) {
            let raised = f64::from(route.normal) + shed * part;
            route.weight = raised.round().clamp(1.0, 255.0) as u8;
        }
    }
}

#[cfg(test)]
#[path = "routing_tests.rs"]
mod tests;
