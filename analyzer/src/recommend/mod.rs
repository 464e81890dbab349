//! The recommend stage: turns endpoint health, anomalies and forecasts into routing
//! ([`routing`]) and capacity ([`capacity`]) recommendations, publishes them on the
//! [`board`] (HTTP, SSE) and delivers them ([`deliver`]: Kafka, webhooks).

pub mod board;
pub mod capacity;
pub mod deliver;
pub mod http;
pub mod recommendation;
pub mod routing;
pub mod signals;

pub use board::Board;
pub use capacity::CapacityConfig;
pub use deliver::DeliveryConfig;
pub use recommendation::{Kind, Recommendation, State};
pub use routing::{RoutingConfig, RoutingEngine};
pub use signals::{Condition, Signals};

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::derive::RedPoint;
use crate::detect::Anomaly;
use crate::forecast::live::Forecast;
use crate::health::HealthTracker;
use capacity::CapacityPlanner;
use routing::{Changes, RegionRoute};
use signals::ALL_SERVICES;

/// Settings of the recommend stage (`[analyzer.recommend]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecommendConfig {
    /// Failover, shift and failback (`[analyzer.recommend.routing]`).
    pub routing: RoutingConfig,
    /// Scale-out and scale-in (`[analyzer.recommend.capacity]`).
    pub capacity: CapacityConfig,
    /// Kafka and webhooks (`[analyzer.recommend.delivery]`).
    pub delivery: DeliveryConfig,
}

/// The recommend stage's state (kept across restarts).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Recommender {
    signals: Signals,
    routing: RoutingEngine,
    capacity: CapacityPlanner,
}

impl Recommender {
    /// Takes the RED points closed now and the anomalies found in them.
    pub fn observe_intervals(
        &mut self,
        config: &RecommendConfig,
        points: &[RedPoint],
        anomalies: &[Anomaly],
    ) {
        self.signals.update(&config.routing, points, anomalies);
        self.capacity.observe_red(&config.capacity, points);
    }

    /// Takes new forecasts.
    pub fn observe_forecasts(&mut self, rows: &[Forecast]) {
        self.capacity.observe_forecasts(rows);
    }

    /// Takes stored `metrics` rows (for the instances gauge).
    pub fn observe_metrics(&mut self, config: &RecommendConfig, batches: &[RecordBatch]) {
        self.capacity.observe_metrics(&config.capacity, batches);
    }

    /// The desired routing per service and region.
    pub fn desired(&self) -> &BTreeMap<String, BTreeMap<String, RegionRoute>> {
        self.routing.desired()
    }

    /// Judges every (service, region) at `now_ns` and updates routing and capacity.
    pub fn evaluate(
        &mut self,
        config: &RecommendConfig,
        health: &HealthTracker,
        now_ns: i64,
    ) -> Changes {
        let mut services: BTreeMap<String, BTreeSet<String>> = self.signals.services().clone();
        let mut everywhere: BTreeSet<String> = services.values().flatten().cloned().collect();
        for (_, e) in health.endpoints() {
            everywhere.insert(e.region.clone());
            let service = e.service.clone().unwrap_or_else(|| ALL_SERVICES.to_owned());
            services
                .entry(service)
                .or_default()
                .insert(e.region.clone());
        }
        if let Some(all) = services.get_mut(ALL_SERVICES) {
            all.extend(everywhere);
        }
        let conditions: BTreeMap<String, BTreeMap<String, Condition>> = services
            .iter()
            .map(|(service, regions)| {
                let judged = regions
                    .iter()
                    .map(|r| {
                        let c = self
                            .signals
                            .condition(&config.routing, health, service, r, now_ns);
                        (r.clone(), c)
                    })
                    .collect();
                (service.clone(), judged)
            })
            .collect();
        let mut changes = if config.routing.enabled {
            let headroom = self.capacity.headroom(&config.capacity);
            self.routing
                .evaluate(&config.routing, now_ns, &conditions, &headroom)
        } else {
            Changes::default()
        };
        let capacity = self
            .capacity
            .evaluate(&config.capacity, now_ns, self.routing.desired());
        changes.made.extend(capacity.made);
        changes.retired.extend(capacity.retired);
        changes
    }
}
