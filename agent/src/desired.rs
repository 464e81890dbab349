//! The analyzer's desired routing as the agent reads it, and the weights it means for each
//! gateway target.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::gateway::{Planned, TargetSpec};

/// The service whose weights hold for every service in a region (region-wide probes).
pub const ALL_SERVICES: &str = "*";
/// The weight of a region Meridian says nothing about (Route 53's usual weight in Meridian).
pub const NORMAL_WEIGHT: u8 = 100;

/// `GET /api/v1/routing`, the parts the agent uses.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Routing {
    /// The routing's version.
    pub version: u64,
    /// Per service, per region.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceRouting>,
}

/// One service's regions.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ServiceRouting {
    /// Per region.
    #[serde(default)]
    pub regions: BTreeMap<String, RegionRouting>,
}

/// One region's desired weight.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RegionRouting {
    /// The weight, 0..255.
    pub weight: u8,
    /// The weight the region has when nothing is wrong (absent for override-only entries).
    #[serde(default)]
    pub normal_weight: Option<u8>,
    /// `normal`, `degraded`, `drained`, `failing_back`, `override`.
    #[serde(default)]
    pub state: String,
    /// Why, in a sentence.
    #[serde(default)]
    pub reason: String,
}

impl Routing {
    /// Share of its normal weight `region` has for `service` (1.0 when not listed), with the
    /// reason when it is not normal.
    fn fraction(&self, service: &str, region: &str) -> (f64, Option<String>) {
        let Some(r) = self
            .services
            .get(service)
            .and_then(|s| s.regions.get(region))
        else {
            return (1.0, None);
        };
        let normal = r.normal_weight.unwrap_or(NORMAL_WEIGHT).max(1);
        let fraction = f64::from(r.weight) / f64::from(normal);
        let reason = (r.state != "normal" || r.weight != normal).then(|| {
            if r.reason.is_empty() {
                format!("{} ({service})", r.state)
            } else {
                r.reason.clone()
            }
        });
        (fraction, reason)
    }

    /// The weights of one target: each region at its service's weight, scaled by the
    /// region-wide (`*`) fraction when the target follows a single service, so a region
    /// drained by its probes is drained for every service.
    ///
    /// ```
    /// # use meridian_agent::desired::Routing;
    /// # use meridian_agent::gateway::TargetSpec;
    /// let routing: Routing = serde_json::from_str(r#"{"version": 7, "services": {
    ///   "*": {"regions": {"eu": {"weight": 0, "normal_weight": 100, "state": "drained", "reason": "probes 3/3 failing"}}},
    ///   "checkout": {"regions": {"us": {"weight": 150, "normal_weight": 100, "state": "normal"}}}}}"#).unwrap();
    /// let spec = TargetSpec { name: "c".into(), service: "checkout".into(), regions: vec!["eu".into(), "us".into()] };
    /// let plan = routing.plan(&spec);
    /// assert_eq!(plan.weights["eu"].weight, 0);
    /// assert_eq!(plan.weights["us"].weight, 150);
    /// assert_eq!(plan.weights["eu"].reason.as_deref(), Some("probes 3/3 failing"));
    /// ```
    pub fn plan(&self, spec: &TargetSpec) -> Planned {
        let weights = spec
            .regions
            .iter()
            .map(|region| {
                let normal = self
                    .services
                    .get(&spec.service)
                    .and_then(|s| s.regions.get(region))
                    .and_then(|r| r.normal_weight)
                    .unwrap_or(NORMAL_WEIGHT);
                let (own, own_reason) = self.fraction(&spec.service, region);
                let (wide, wide_reason) = if spec.service == ALL_SERVICES {
                    (1.0, None)
                } else {
                    self.fraction(ALL_SERVICES, region)
                };
                let weight = (f64::from(normal) * own * wide).round().clamp(0.0, 255.0) as u8;
                let reason = match (wide_reason, own_reason) {
                    (Some(a), Some(b)) => Some(format!("{a}; {b}")),
                    (a, b) => a.or(b),
                };
                (region.clone(), crate::gateway::Weight { weight, reason })
            })
            .collect();
        Planned {
            name: spec.name.clone(),
            service: spec.service.clone(),
            weights,
        }
    }

    /// Whether the routing says anything about the service `spec` follows (or region-wide):
    /// an analyzer that has just started with no state knows nothing yet, which is not the
    /// same as "every region normal".
    pub fn knows(&self, spec: &TargetSpec) -> bool {
        self.services.contains_key(&spec.service) || self.services.contains_key(ALL_SERVICES)
    }

    /// The weights the analyzer asks for, per service, for the services `specs` follow (what
    /// the agent reports as applied).
    pub fn requested(&self, specs: &[TargetSpec]) -> BTreeMap<String, BTreeMap<String, u8>> {
        let mut out: BTreeMap<String, BTreeMap<String, u8>> = BTreeMap::new();
        for spec in specs {
            let mut services = vec![spec.service.as_str()];
            if spec.service != ALL_SERVICES {
                services.push(ALL_SERVICES);
            }
            for service in services {
                if let Some(s) = self.services.get(service) {
                    let entry = out.entry(service.to_owned()).or_default();
                    for region in &spec.regions {
                        if let Some(r) = s.regions.get(region) {
                            entry.insert(region.clone(), r.weight);
                        }
                    }
                }
            }
        }
        out.retain(|_, regions| !regions.is_empty());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(service: &str) -> TargetSpec {
        TargetSpec {
            name: "t".into(),
            service: service.into(),
            regions: vec!["a".into(), "b".into(), "c".into()],
        }
    }

    /// Scenario: a routing that says nothing about the target's service or regions.
    /// Guarantees: every region gets the normal weight, with no reason.
    #[test]
    fn silence_means_normal() {
        let plan = Routing::default().plan(&spec("checkout"));
        assert!(plan
            .weights
            .values()
            .all(|w| w.weight == NORMAL_WEIGHT && w.reason.is_none()));
    }

    /// Scenario: a region degraded to half for the service and half again region-wide.
    /// Guarantees: the fractions multiply (100 × 0.5 × 0.5 = 25) and both reasons are kept.
    #[test]
    fn service_and_region_wide_fractions_multiply() {
        let routing: Routing = serde_json::from_value(serde_json::json!({
            "version": 3,
            "services": {
                "*": {"regions": {"b": {"weight": 50, "normal_weight": 100, "state": "degraded", "reason": "probes"}}},
                "checkout": {"regions": {"b": {"weight": 50, "normal_weight": 100, "state": "degraded", "reason": "p99"}}}
            }
        }))
        .unwrap();
        let plan = routing.plan(&spec("checkout"));
        assert_eq!(plan.weights["b"].weight, 25);
        assert_eq!(plan.weights["b"].reason.as_deref(), Some("probes; p99"));
        assert_eq!(plan.weights["a"].weight, 100);
        let requested = routing.requested(&[spec("checkout")]);
        assert_eq!(requested["*"]["b"], 50);
        assert_eq!(requested["checkout"]["b"], 50);
    }
}
