//! Traefik through its file provider: the agent owns one dynamic-configuration file holding
//! the weighted round-robin services (`http.services.<name>.weighted.services`, a child per
//! region with its weight; Traefik takes 0). The file is JSON, which Traefik's YAML reader
//! takes as it is. Traefik's API is read-only, so it is only read, to confirm.

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::{file, Gateway, Planned, TargetSpec};
use crate::config::{TraefikConfig, TraefikService};
use crate::error::AgentError;

/// A Traefik driven through a file-provider file.
pub struct Traefik {
    config: TraefikConfig,
    client: reqwest::Client,
}

impl Traefik {
    /// Drives the services of `config`.
    pub fn new(config: TraefikConfig) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_default();
        Self { config, client }
    }

    /// The child weights Traefik reports for `service`, by child name.
    async fn served(&self, api: &str, service: &str) -> Option<Vec<(String, u64)>> {
        let url = format!(
            "{}/api/http/services/{service}@file",
            api.trim_end_matches('/')
        );
        let body: Value = self.client.get(url).send().await.ok()?.json().await.ok()?;
        let children = body["weighted"]["services"].as_array()?;
        Some(
            children
                .iter()
                .map(|c| {
                    let name = bare(c["name"].as_str().unwrap_or_default());
                    (name, c["weight"].as_u64().unwrap_or(1))
                })
                .collect(),
        )
    }
}

/// A service name without its provider (`eu@file` → `eu`): the API may show either.
fn bare(name: &str) -> String {
    name.split('@').next().unwrap_or(name).to_owned()
}

/// The dynamic configuration for every service at the planned weights.
///
/// ```
/// # use std::collections::BTreeMap;
/// # use meridian_agent::config::TraefikService;
/// # use meridian_agent::gateway::{traefik::dynamic, Planned, Weight};
/// let service = TraefikService { name: "global".into(), service: "*".into(),
///     regions: BTreeMap::from([("eu".into(), "eu@file".into()), ("us".into(), "us@file".into())]) };
/// let plan = Planned { name: "global".into(), service: "*".into(), weights: BTreeMap::from([
///     ("eu".into(), Weight { weight: 0, reason: None }), ("us".into(), Weight { weight: 200, reason: None })]) };
/// let config = dynamic(&[service], &[plan]);
/// let children = &config["http"]["services"]["global"]["weighted"]["services"];
/// assert_eq!(children[0]["name"], "eu@file");
/// assert_eq!(children[0]["weight"], 0);
/// assert_eq!(children[1]["weight"], 200);
/// ```
pub fn dynamic(services: &[TraefikService], plan: &[Planned]) -> Value {
    let mut out = Map::new();
    for service in services {
        let planned = plan.iter().find(|p| p.name == service.name);
        let children: Vec<Value> = service
            .regions
            .iter()
            .map(|(region, child)| {
                let weight = planned
                    .and_then(|p| p.weights.get(region))
                    .map_or(crate::desired::NORMAL_WEIGHT, |w| w.weight);
                json!({"name": child, "weight": weight})
            })
            .collect();
        out.insert(
            service.name.clone(),
            json!({"weighted": {"services": children}}),
        );
    }
    json!({"http": {"services": out}})
}

impl Gateway for Traefik {
    fn kind(&self) -> &'static str {
        "traefik"
    }

    fn targets(&self) -> Vec<TargetSpec> {
        self.config
            .services
            .iter()
            .map(TraefikService::spec)
            .collect()
    }

    async fn apply(&mut self, plan: &[Planned]) -> Result<(), AgentError> {
        let body = dynamic(&self.config.services, plan);
        let bytes = serde_json::to_vec_pretty(&body).unwrap_or_default();
        file::replace(&self.config.file, &bytes).await?;
        let Some(api) = self.config.api.clone() else {
            return Ok(());
        };
        let deadline = Instant::now() + self.config.confirm_timeout.max(Duration::from_millis(100));
        for service in &self.config.services {
            let want: Vec<(String, u64)> = body["http"]["services"][&service.name]["weighted"]
                ["services"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .map(|c| {
                            let name = bare(c["name"].as_str().unwrap_or_default());
                            (name, c["weight"].as_u64().unwrap_or(0))
                        })
                        .collect()
                })
                .unwrap_or_default();
            loop {
                if let Some(mut served) = self.served(&api, &service.name).await {
                    served.sort();
                    let mut want = want.clone();
                    want.sort();
                    if served == want {
                        break;
                    }
                }
                if Instant::now() >= deadline {
                    return Err(AgentError::Gateway {
                        gateway: "traefik",
                        message: format!(
                            "service `{}@file` does not show the new weights after {:?} (is {} in the file provider's directory?)",
                            service.name,
                            self.config.confirm_timeout,
                            self.config.file.display()
                        ),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }
}
