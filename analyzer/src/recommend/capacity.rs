//! Capacity recommendations per region and service:
//! `recommended = ceil(load / (capacity_per_instance × target_utilization))`, where `load` is
//! the request-rate forecast's 95% upper bound at the provisioning lead time, plus the traffic
//! routing is shifting into the region or would shift if the largest other region failed (N−1).
//! Scale-out is recommended at once; scale-in only after the HPA's stabilization window (the
//! highest recommendation in the window wins) and outside its tolerance. Forecast-only mode
//! (recommend, never apply) is the default, as AWS predictive scaling.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type};
use serde::{Deserialize, Serialize};

use super::recommendation::{new_id, Kind, Recommendation, State};
use super::routing::RegionRoute;
use crate::derive::{Metric, RedPoint};
use crate::forecast::live::Forecast;

/// Whether capacity recommendations are for people or for agents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScalingMode {
    /// Recommend only (`apply: false`).
    ForecastOnly,
    /// Agents may apply scale-outs and scale-ins.
    ForecastAndScale,
}

/// Settings of capacity recommendations (`[analyzer.recommend.capacity]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CapacityConfig {
    /// Recommend capacity.
    pub enabled: bool,
    /// `forecast_only` (default) or `forecast_and_scale`.
    pub mode: ScalingMode,
    /// How long new capacity takes to be ready: the forecast is read this far ahead.
    #[serde(with = "humantime_serde")]
    pub provisioning_lead_time: Duration,
    /// Requests per second one instance serves; 0 learns it from the highest rate per
    /// instance seen with p99 under `acceptable_p99_ms`.
    pub capacity_per_instance: f64,
    /// Share of an instance's capacity to plan for.
    pub target_utilization: f64,
    /// The p99 (ms) under which a rate counts as served well, for learning the capacity.
    pub acceptable_p99_ms: f64,
    /// Current instances by `region` or `region/service`, when no gauge reports them.
    pub instances: BTreeMap<String, u32>,
    /// A gauge in `metrics` holding the current instances (e.g.
    /// `kube_deployment_status_replicas_available`); its `service`/`deployment` attribute, or
    /// its service name, names the service.
    pub instances_metric: String,
    /// Fewest instances recommended.
    pub min_instances: u32,
    /// Most instances recommended.
    pub max_instances: u32,
    /// No change within this ratio of the current count (HPA: 0.1).
    pub tolerance: f64,
    /// Scale-in only to the highest recommendation of this window (HPA: 300 s).
    #[serde(with = "humantime_serde")]
    pub scale_in_stabilization: Duration,
    /// Plan for the loss of the largest other region.
    pub n_minus_one: bool,
    /// How often capacity is re-evaluated (HPA: 15 s).
    #[serde(with = "humantime_serde")]
    pub evaluate_every: Duration,
}

impl Default for CapacityConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            mode: ScalingMode::ForecastOnly,
            provisioning_lead_time: Duration::from_secs(15 * 60),
            capacity_per_instance: 0.0,
            target_utilization: 0.7,
            acceptable_p99_ms: 500.0,
            instances: BTreeMap::new(),
            instances_metric: String::new(),
            min_instances: 1,
            max_instances: 1000,
            tolerance: 0.1,
            scale_in_stabilization: Duration::from_secs(300),
            n_minus_one: true,
            evaluate_every: Duration::from_secs(15),
        }
    }
}

type Key = (String, String);

/// One route's newest request-rate forecast: (horizon s, point, 95% upper).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Path {
    made_at_ns: i64,
    points: Vec<(i64, f64, Option<f64>)>,
}

/// Capacity state per (region, service), kept across restarts.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CapacityPlanner {
    #[serde(with = "crate::pairs")]
    forecasts: BTreeMap<(String, String, String), Path>,
    #[serde(with = "crate::pairs")]
    gauges: BTreeMap<Key, f64>,
    #[serde(with = "crate::pairs")]
    learned: BTreeMap<Key, f64>,
    /// The newest interval's rate of each route (their sum: the service's current rate).
    #[serde(default, with = "crate::pairs")]
    route_rates: BTreeMap<Key, (i64, BTreeMap<String, f64>)>,
    #[serde(with = "crate::pairs")]
    window: BTreeMap<Key, VecDeque<(i64, u32)>>,
    #[serde(with = "crate::pairs")]
    published: BTreeMap<Key, (u32, Option<String>)>,
    last_run_ns: i64,
}

/// One (region, service)'s plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Forecast load at the lead time (95% upper), req/s.
    pub load: f64,
    /// Traffic shifted in now by routing, req/s.
    pub shifted_in: f64,
    /// Traffic that would come if the largest other region failed, req/s.
    pub n_minus_one: f64,
    /// The horizon the load was read at, s.
    pub horizon_s: i64,
    /// Instances needed.
    pub recommended: u32,
    /// Instances running, when known.
    pub current: Option<u32>,
    /// Capacity per instance used, req/s.
    pub capacity: f64,
}

impl CapacityPlanner {
    /// Keeps the newest request-rate forecasts.
    pub fn observe_forecasts(&mut self, rows: &[Forecast]) {
        let mut fresh: BTreeMap<(String, String, String), Path> = BTreeMap::new();
        for f in rows.iter().filter(|f| f.metric == Metric::RequestRate) {
            let key = (
                f.key.region.clone(),
                f.key.service.clone(),
                f.key.route.clone(),
            );
            let path = fresh.entry(key).or_default();
            path.made_at_ns = f.made_at_ns;
            path.points
                .push((f.horizon_s, f.forecast, f.interval_95.map(|(_, hi)| hi)));
        }
        for (key, mut path) in fresh {
            path.points.sort_by_key(|p| p.0);
            self.forecasts.insert(key, path);
        }
    }

    /// Keeps the newest rate per route and learns the capacity per instance.
    pub fn observe_red(&mut self, config: &CapacityConfig, points: &[RedPoint]) {
        // Per interval and (region, service): the rate and the worst p99.
        let mut intervals: BTreeMap<(i64, Key), (f64, f64)> = BTreeMap::new();
        for p in points {
            let key = (p.key.region.clone(), p.key.service.clone());
            let rate = p.red.count as f64 / p.interval_s.max(1e-9);
            let newest = self.route_rates.entry(key.clone()).or_default();
            if p.start_ns > newest.0 {
                *newest = (p.start_ns, BTreeMap::new());
            }
            if p.start_ns == newest.0 {
                *newest.1.entry(p.key.route.clone()).or_default() += rate;
            }
            let e = intervals.entry((p.start_ns, key)).or_default();
            e.0 += rate;
            if let Some([_, _, p99]) = p.red.latency_ms {
                e.1 = e.1.max(p99);
            }
        }
        for ((_, key), (rate, p99)) in intervals {
            if let Some(n) = self.current(config, &key.0, &key.1) {
                if n > 0 && p99 <= config.acceptable_p99_ms {
                    let learned = self.learned.entry(key).or_default();
                    *learned = learned.max(rate / n as f64);
                }
            }
        }
    }

    /// Reads the instances gauge from stored `metrics` rows.
    pub fn observe_metrics(&mut self, config: &CapacityConfig, batches: &[RecordBatch]) {
        if config.instances_metric.is_empty() {
            return;
        }
        for batch in batches {
            let col = |n: &str| batch.column_by_name(n);
            let (Some(name), Some(region), Some(service)) = (
                col("name").and_then(|c| c.as_string_opt::<i32>()),
                col("region").and_then(|c| c.as_string_opt::<i32>()),
                col("service_name").and_then(|c| c.as_string_opt::<i32>()),
            ) else {
                continue;
            };
            let value = col("value").and_then(|c| c.as_primitive_opt::<Float64Type>());
            let value_int = col("value_int").and_then(|c| c.as_primitive_opt::<Int64Type>());
            let attributes = col("attributes").and_then(|c| c.as_map_opt());
            for i in 0..batch.num_rows() {
                if name.value(i) != config.instances_metric {
                    continue;
                }
                let v = match (value, value_int) {
                    (Some(v), _) if !v.is_null(i) => v.value(i),
                    (_, Some(v)) if !v.is_null(i) => v.value(i) as f64,
                    _ => continue,
                };
                let named = attributes.and_then(|m| {
                    let entry = m.value(i);
                    let keys = entry.column(0).as_string_opt::<i32>()?;
                    let values = entry.column(1).as_string_opt::<i32>()?;
                    (0..entry.len())
                        .find(|j| matches!(keys.value(*j), "service" | "deployment"))
                        .map(|j| values.value(j).to_owned())
                });
                let service = named.unwrap_or_else(|| {
                    if service.is_null(i) {
                        super::signals::ALL_SERVICES.to_owned()
                    } else {
                        service.value(i).to_owned()
                    }
                });
                self.gauges.insert((region.value(i).to_owned(), service), v);
            }
        }
    }

    /// Instances running in `region` for `service`: the gauge, else the configuration.
    fn current(&self, config: &CapacityConfig, region: &str, service: &str) -> Option<u32> {
        let key = (region.to_owned(), service.to_owned());
        self.gauges
            .get(&key)
            .or_else(|| self.gauges.get(&(region.to_owned(), "*".to_owned())))
            .map(|v| v.round().max(0.0) as u32)
            .or_else(|| {
                config
                    .instances
                    .get(&format!("{region}/{service}"))
                    .copied()
            })
            .or_else(|| config.instances.get(region).copied())
    }

    fn capacity(&self, config: &CapacityConfig, key: &Key) -> Option<f64> {
        if config.capacity_per_instance > 0.0 {
            return Some(config.capacity_per_instance);
        }
        self.learned.get(key).copied().filter(|c| *c > 0.0)
    }

    /// Forecast load (95% upper, summed over routes) of every (region, service) with a
    /// forecast at the lead time, with the horizon used. A route with traffic but no forecast
    /// yet (new, or its fit still queued) counts at its newest rate, so a service is never
    /// planned on part of its routes.
    fn loads(&self, config: &CapacityConfig) -> BTreeMap<Key, (f64, i64)> {
        let lead = config.provisioning_lead_time.as_secs() as i64;
        let mut totals: BTreeMap<Key, (f64, i64)> = BTreeMap::new();
        for ((region, service, _), path) in &self.forecasts {
            let point = path
                .points
                .iter()
                .find(|p| p.0 >= lead)
                .or(path.points.last());
            if let Some((h, f, hi)) = point {
                let t = totals
                    .entry((region.clone(), service.clone()))
                    .or_insert((0.0, *h));
                t.0 += hi.unwrap_or(*f).max(0.0);
                t.1 = t.1.max(*h);
            }
        }
        for ((region, service), total) in totals.iter_mut() {
            let Some((_, routes)) = self.route_rates.get(&(region.clone(), service.clone())) else {
                continue;
            };
            total.0 += routes
                .iter()
                .filter(|(route, _)| {
                    !self.forecasts.contains_key(&(
                        region.clone(),
                        service.clone(),
                        (*route).clone(),
                    ))
                })
                .map(|(_, rate)| rate)
                .sum::<f64>();
        }
        totals
    }

    /// Plans every (region, service) that has a forecast, given the desired `routing`.
    pub fn plans(
        &self,
        config: &CapacityConfig,
        routing: &BTreeMap<String, BTreeMap<String, RegionRoute>>,
    ) -> BTreeMap<Key, Plan> {
        let mut loads: BTreeMap<String, BTreeMap<String, (f64, i64)>> = BTreeMap::new();
        for ((region, service), l) in self.loads(config) {
            loads.entry(service).or_default().insert(region, l);
        }
        let mut plans = BTreeMap::new();
        for (service, regions) in &loads {
            let routes = routing.get(service);
            let normal = |r: &str| {
                routes
                    .and_then(|x| x.get(r))
                    .map_or(100.0, |x| f64::from(x.normal.max(1)))
            };
            let weight = |r: &str| {
                routes
                    .and_then(|x| x.get(r))
                    .map_or(normal(r), |x| f64::from(x.weight))
            };
            let shed: f64 = regions
                .iter()
                .map(|(r, (l, _))| l * (1.0 - weight(r) / normal(r)).max(0.0))
                .sum();
            let raised: f64 = regions
                .keys()
                .map(|r| (weight(r) - normal(r)).max(0.0))
                .sum();
            for (region, (load, horizon)) in regions {
                let key = (region.clone(), service.clone());
                let Some(capacity) = self.capacity(config, &key) else {
                    continue;
                };
                let shifted_in = if raised > 0.0 {
                    shed * (weight(region) - normal(region)).max(0.0) / raised
                } else {
                    0.0
                };
                let n_minus_one = if config.n_minus_one {
                    regions
                        .iter()
                        .filter(|(r, _)| *r != region)
                        .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0))
                        .map_or(0.0, |(largest, (l, _))| {
                            let rest: f64 = regions
                                .keys()
                                .filter(|r| *r != largest)
                                .map(|r| normal(r))
                                .sum();
                            l * normal(region) / rest.max(1.0)
                        })
                } else {
                    0.0
                };
                let needed = load + shifted_in.max(n_minus_one);
                let per = (capacity * config.target_utilization).max(1e-9);
                let recommended = ((needed / per).ceil() as u32).clamp(
                    config.min_instances,
                    config.max_instances.max(config.min_instances),
                );
                plans.insert(
                    key.clone(),
                    Plan {
                        load: *load,
                        shifted_in,
                        n_minus_one,
                        horizon_s: *horizon,
                        recommended,
                        current: self.current(config, region, service),
                        capacity,
                    },
                );
            }
        }
        plans
    }

    /// Spare req/s per (service, region) at the lead time, for where routing sheds traffic.
    pub fn headroom(&self, config: &CapacityConfig) -> BTreeMap<Key, f64> {
        let loads = self.loads(config);
        let mut out = BTreeMap::new();
        for (key, (_, routes)) in &self.route_rates {
            let (region, service) = key;
            let (Some(capacity), Some(n)) = (
                self.capacity(config, key),
                self.current(config, region, service),
            ) else {
                continue;
            };
            let load = loads
                .get(key)
                .map_or_else(|| routes.values().sum(), |(l, _)| *l);
            let room = capacity * config.target_utilization * f64::from(n) - load;
            out.insert((service.clone(), region.clone()), room);
        }
        out
    }

    /// Re-evaluates every `evaluate_every`; returns the recommendations made and retired.
    pub fn evaluate(
        &mut self,
        config: &CapacityConfig,
        now_ns: i64,
        routing: &BTreeMap<String, BTreeMap<String, RegionRoute>>,
    ) -> super::routing::Changes {
        let mut changes = super::routing::Changes::default();
        if !config.enabled || now_ns - self.last_run_ns < config.evaluate_every.as_nanos() as i64 {
            return changes;
        }
        self.last_run_ns = now_ns;
        let window_ns = config.scale_in_stabilization.as_nanos() as i64;
        for (key, plan) in self.plans(config, routing) {
            let window = self.window.entry(key.clone()).or_default();
            window.push_back((now_ns, plan.recommended));
            while window.front().is_some_and(|(t, _)| now_ns - t > window_ns) {
                window.pop_front();
            }
            let stabilized = window
                .iter()
                .map(|(_, n)| *n)
                .max()
                .unwrap_or(plan.recommended);
            let full = window
                .front()
                .is_some_and(|(t, _)| now_ns - t >= window_ns - 1);
            let last = self.published.get(&key).map(|(n, _)| *n);
            let reference = plan.current.or(last);
            let tol = config.tolerance;
            let (kind, target) = match reference {
                None => (Kind::ScaleOut, plan.recommended),
                Some(c) if f64::from(plan.recommended) > f64::from(c) * (1.0 + tol) => {
                    (Kind::ScaleOut, plan.recommended)
                }
                Some(c) if full && f64::from(stabilized) < f64::from(c) * (1.0 - tol) => {
                    (Kind::ScaleIn, stabilized)
                }
                Some(_) => continue,
            };
            if last == Some(target) {
                continue;
            }
            let (region, service) = key.clone();
            let reason = format!(
                "{region} {service}: forecast {:.0} req/s (95% upper) in {}m{} needs {target} instances at {:.0} req/s × {:.0}%{}",
                plan.load,
                plan.horizon_s / 60,
                if plan.shifted_in.max(plan.n_minus_one) > 0.0 {
                    format!(
                        " + {:.0} req/s {}",
                        plan.shifted_in.max(plan.n_minus_one),
                        if plan.shifted_in >= plan.n_minus_one {
                            "shifted in by failover"
                        } else {
                            "if the largest other region fails"
                        }
                    )
                } else {
                    String::new()
                },
                plan.capacity,
                config.target_utilization * 100.0,
                match plan.current {
                    Some(c) => format!("; {c} running"),
                    None => "; current count unknown".to_owned(),
                },
            );
            if let Some((_, Some(old))) = self.published.get(&key) {
                changes.retired.push((old.clone(), State::Superseded));
            }
            let rec = Recommendation {
                id: new_id(),
                time_ns: now_ns,
                kind,
                region,
                service,
                target: serde_json::json!({ "instances": target }),
                previous: reference.map(|c| serde_json::json!({ "instances": c })),
                reason,
                evidence: serde_json::json!({
                    "forecast_upper_95_rps": plan.load,
                    "horizon_s": plan.horizon_s,
                    "shifted_in_rps": plan.shifted_in,
                    "n_minus_one_rps": plan.n_minus_one,
                    "capacity_per_instance": plan.capacity,
                    "target_utilization": config.target_utilization,
                    "current_instances": plan.current,
                }),
                state: State::Active,
                expires_at_ns: Some(now_ns + 2 * config.provisioning_lead_time.as_nanos() as i64),
                apply: config.mode == ScalingMode::ForecastAndScale,
            };
            self.published.insert(key, (target, Some(rec.id.clone())));
            changes.made.push(rec);
        }
        changes
    }
}

#[cfg(test)]
#[path = "capacity_tests.rs"]
mod tests;
