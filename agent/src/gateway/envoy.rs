//! Envoy through file-based EDS: one `ClusterLoadAssignment` file per cluster, a locality per
//! region weighted by `load_balancing_weight`, renamed into place (Envoy ignores in-place
//! edits). Envoy rejects a weight of 0, so a drained region keeps weight 1 with its endpoints
//! `DRAINING`; the cluster must set `healthy_panic_threshold: {value: 0}` or Envoy sends
//! traffic to drained hosts in panic mode, and `locality_weighted_lb_config` or it ignores
//! locality weights (docs/operations.md shows the cluster).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{file, Gateway, Planned, TargetSpec};
use crate::config::{EnvoyCluster, EnvoyConfig};
use crate::error::AgentError;

const ASSIGNMENT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

/// An Envoy driven through EDS files.
pub struct Envoy {
    config: EnvoyConfig,
    client: reqwest::Client,
    /// Increases with every write, so each file differs from the last (`version_info`).
    writes: u64,
}

impl Envoy {
    /// Drives the clusters of `config`.
    pub fn new(config: EnvoyConfig) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_default();
        Self {
            config,
            client,
            writes: 0,
        }
    }

    /// `(success, rejected)` update counters of a cluster, from the admin API.
    async fn counters(&self, admin: &str, cluster: &str) -> Result<(u64, u64), AgentError> {
        let filter = format!(
            "^cluster\\.{}\\.update_(success|rejected)$",
            regex_escape(cluster)
        );
        let url = format!("{}/stats", admin.trim_end_matches('/'));
        let failed = |message: String| AgentError::Gateway {
            gateway: "envoy",
            message: format!("reading {url}: {message}"),
        };
        let mut query = reqwest::Url::parse(&url).map_err(|e| failed(e.to_string()))?;
        query.query_pairs_mut().append_pair("filter", &filter);
        let text = self
            .client
            .get(query)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| failed(e.to_string()))?
            .text()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let mut counts = (0, 0);
        for line in text.lines() {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim().parse().unwrap_or(0);
            if name.ends_with(".update_success") {
                counts.0 = value;
            } else if name.ends_with(".update_rejected") {
                counts.1 = value;
            }
        }
        Ok(counts)
    }
}

/// `host:port` (IPv6 as `[::1]:port`) split, if it is one.
pub fn host_port(endpoint: &str) -> Option<(&str, u16)> {
    let (host, port) = endpoint.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = port.parse().ok()?;
    (!host.is_empty()).then_some((host, port))
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let meta = "\\.+*?()|[]{}^$".contains(c);
            meta.then_some('\\').into_iter().chain(std::iter::once(c))
        })
        .collect()
}

/// The EDS DiscoveryResponse for one cluster at the planned weights.
///
/// ```
/// # use std::collections::BTreeMap;
/// # use meridian_agent::config::EnvoyCluster;
/// # use meridian_agent::gateway::{envoy::assignment, Planned, Weight};
/// let cluster = EnvoyCluster {
///     name: "global".into(), service: "*".into(), eds_path: "eds.json".into(),
///     regions: BTreeMap::from([("eu".into(), vec!["10.0.0.1:80".into()]), ("us".into(), vec!["10.0.0.2:80".into()])]),
/// };
/// let plan = Planned { name: "global".into(), service: "*".into(), weights: BTreeMap::from([
///     ("eu".into(), Weight { weight: 0, reason: None }), ("us".into(), Weight { weight: 200, reason: None })]) };
/// let eds = assignment(&cluster, &plan, 1);
/// let eu = &eds["resources"][0]["endpoints"][0];
/// assert_eq!(eu["locality"]["region"], "eu");
/// assert_eq!(eu["load_balancing_weight"], 1); // Envoy refuses 0
/// assert_eq!(eu["lb_endpoints"][0]["health_status"], "DRAINING");
/// assert_eq!(eds["resources"][0]["endpoints"][1]["load_balancing_weight"], 200);
/// ```
pub fn assignment(cluster: &EnvoyCluster, plan: &Planned, version: u64) -> Value {
    let localities: Vec<Value> = cluster
        .regions
        .iter()
        .map(|(region, endpoints)| {
            let weight = plan.weights.get(region).map_or(1, |w| w.weight);
            let status = if weight == 0 { "DRAINING" } else { "HEALTHY" };
            let lb_endpoints: Vec<Value> = endpoints
                .iter()
                .filter_map(|e| host_port(e))
                .map(|(host, port)| {
                    json!({
                        "endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}},
                        "health_status": status,
                    })
                })
                .collect();
            json!({
                "locality": {"region": region},
                "load_balancing_weight": u32::from(weight).max(1),
                "lb_endpoints": lb_endpoints,
            })
        })
        .collect();
    json!({
        "version_info": version.to_string(),
        "resources": [{
            "@type": ASSIGNMENT,
            "cluster_name": cluster.name,
            "endpoints": localities,
        }],
    })
}

impl Gateway for Envoy {
    fn kind(&self) -> &'static str {
        "envoy"
    }

    fn targets(&self) -> Vec<TargetSpec> {
        self.config
            .clusters
            .iter()
            .map(EnvoyCluster::spec)
            .collect()
    }

    async fn apply(&mut self, plan: &[Planned]) -> Result<(), AgentError> {
        let admin = self.config.admin.clone();
        let mut before = Vec::new();
        if let Some(admin) = &admin {
            for cluster in &self.config.clusters {
                before.push(self.counters(admin, &cluster.name).await?);
            }
        }
        self.writes += 1;
        for cluster in &self.config.clusters {
            let Some(planned) = plan.iter().find(|p| p.name == cluster.name) else {
                continue;
            };
            let body = assignment(cluster, planned, self.writes);
            let bytes = serde_json::to_vec_pretty(&body).unwrap_or_default();
            file::replace(&cluster.eds_path, &bytes).await?;
        }
        let Some(admin) = admin else {
            return Ok(());
        };
        let deadline = Instant::now() + self.config.confirm_timeout.max(Duration::from_millis(100));
        for (cluster, (success, rejected)) in self.config.clusters.iter().zip(before) {
            loop {
                let (s, r) = self.counters(&admin, &cluster.name).await?;
                if r > rejected {
                    return Err(AgentError::Gateway {
                        gateway: "envoy",
                        message: format!(
                            "cluster `{}` rejected the EDS update (update_rejected {r}); see Envoy's log",
                            cluster.name
                        ),
                    });
                }
                if s > success {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(AgentError::Gateway {
                        gateway: "envoy",
                        message: format!(
                            "cluster `{}` did not load {} within {:?} (is its eds_config path_config_source this file, with watched_directory?)",
                            cluster.name,
                            cluster.eds_path.display(),
                            self.config.confirm_timeout
                        ),
                    });
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }
}
