//! `[agent]`: which analyzer to follow, which gateway to drive and how, and the scaling hook.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use meridian_collector::auth::SecretSource;
use meridian_collector::tls::ClientTlsConfig;
use serde::{Deserialize, Serialize};

use crate::error::AgentError;
use crate::gateway::TargetSpec;

/// The agent's settings (`[agent]` in the TOML file).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Name the agent reports under (`POST /api/v1/agents/{id}/status`); default: the host name.
    pub id: String,
    /// Base URL of the analyzer's HTTP API.
    pub analyzer: String,
    /// A file holding the token sent to an analyzer that requires one (scopes `read` and
    /// `ingest`); re-read for every request, so it can be rotated in place.
    pub token_file: Option<PathBuf>,
    /// Or an environment variable holding it.
    pub token_env: Option<String>,
    /// What an `https://` analyzer is verified with, and the client certificate it may ask
    /// for (`[agent.tls]`).
    pub tls: ClientTlsConfig,
    /// Where the agent serves `/healthz`, `/readyz` and `/metrics`.
    pub listen: SocketAddr,
    /// Full reconcile period: the whole routing is fetched and applied at least this often,
    /// whatever the event stream said.
    #[serde(with = "humantime_serde")]
    pub resync: Duration,
    /// Timeout of each request to the analyzer.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Print what would change instead of changing it.
    pub dry_run: bool,
    /// Drive an Envoy through file-based EDS.
    pub envoy: Option<EnvoyConfig>,
    /// Drive a Traefik through its file provider.
    pub traefik: Option<TraefikConfig>,
    /// The hook scaling recommendations go to.
    pub scaling: ScalingConfig,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            id: String::new(),
            analyzer: "http://127.0.0.1:4380".into(),
            token_file: None,
            token_env: None,
            tls: ClientTlsConfig::default(),
            listen: SocketAddr::from(([127, 0, 0, 1], 4390)),
            resync: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            dry_run: false,
            envoy: None,
            traefik: None,
            scaling: ScalingConfig::default(),
        }
    }
}

/// An Envoy whose clusters take their endpoints from files the agent writes (`[agent.envoy]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnvoyConfig {
    /// Envoy's admin address (`http://127.0.0.1:9901`): when set, every update is confirmed
    /// by the cluster's `update_success` counter, and a rejection (`update_rejected`) is an
    /// error.
    pub admin: Option<String>,
    /// How long to wait for Envoy to confirm an update.
    #[serde(with = "humantime_serde")]
    pub confirm_timeout: Duration,
    /// The clusters the agent writes.
    pub clusters: Vec<EnvoyCluster>,
}

/// One EDS cluster: a locality per region.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvoyCluster {
    /// The cluster's name in Envoy (`cluster_name` of the `ClusterLoadAssignment`).
    pub name: String,
    /// The Meridian service whose weights it follows (`*`: the region-wide weights).
    #[serde(default = "all_services")]
    pub service: String,
    /// The file the cluster's `eds_config.path_config_source.path` names; written beside it and
    /// renamed into place (Envoy only reloads on a move).
    pub eds_path: PathBuf,
    /// Region → its endpoints (`host:port`).
    pub regions: BTreeMap<String, Vec<String>>,
}

/// A Traefik whose weighted services the agent writes (`[agent.traefik]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraefikConfig {
    /// The dynamic configuration file the agent owns, in a directory Traefik's file provider
    /// watches (`--providers.file.directory`); other files there define the region services.
    pub file: PathBuf,
    /// Traefik's API (`http://127.0.0.1:8080`): when set, every update is confirmed by reading
    /// the service back.
    pub api: Option<String>,
    /// How long to wait for Traefik to show an update (its file provider throttles by 2 s).
    #[serde(with = "humantime_serde")]
    pub confirm_timeout: Duration,
    /// The weighted services the agent writes.
    pub services: Vec<TraefikService>,
}

/// One weighted round-robin service: a child service per region.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraefikService {
    /// The weighted service's name (routers name it `<name>@file`).
    pub name: String,
    /// The Meridian service whose weights it follows (`*`: the region-wide weights).
    #[serde(default = "all_services")]
    pub service: String,
    /// Region → the Traefik service serving it (e.g. `eu-west-1@file`).
    pub regions: BTreeMap<String, String>,
}

/// Where `scale_out` / `scale_in` recommendations go (`[agent.scaling]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScalingConfig {
    /// Run the hook; without it the agent only logs what it would scale (forecast-only).
    pub apply_scaling: bool,
    /// The command and its arguments; the recommendation arrives as JSON on stdin and in
    /// `MERIDIAN_*` variables; exit code 0 means done.
    pub command: Vec<String>,
    /// Regions this agent scales (empty: every region).
    pub regions: Vec<String>,
    /// How long the hook may run before it is killed and counted as failed.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for ScalingConfig {
    fn default() -> Self {
        Self {
            apply_scaling: false,
            command: Vec::new(),
            regions: Vec::new(),
            timeout: Duration::from_secs(60),
        }
    }
}

impl Default for EnvoyConfig {
    fn default() -> Self {
        Self {
            admin: None,
            confirm_timeout: Duration::from_secs(5),
            clusters: Vec::new(),
        }
    }
}

impl Default for TraefikConfig {
    fn default() -> Self {
        Self {
            file: PathBuf::from("meridian.yaml"),
            api: None,
            confirm_timeout: Duration::from_secs(10),
            services: Vec::new(),
        }
    }
}

fn all_services() -> String {
    "*".into()
}

impl Default for EnvoyCluster {
    fn default() -> Self {
        Self {
            name: String::new(),
            service: all_services(),
            eds_path: PathBuf::new(),
            regions: BTreeMap::new(),
        }
    }
}

impl AgentConfig {
    /// Checks the settings a running agent relies on: one gateway, each target with regions,
    /// endpoints as `host:port`, names unique, the analyzer URL usable.
    /// Where the token sent to the analyzer comes from, if one is configured.
    pub fn token(&self) -> Option<SecretSource> {
        let source = SecretSource {
            token_file: self.token_file.clone(),
            token_env: self.token_env.clone(),
        };
        source.is_set().then_some(source)
    }

    /// Checks the configuration before anything starts.
    pub fn validate(&self) -> Result<(), AgentError> {
        let bad = |m: String| Err(AgentError::Config(m));
        if !self.analyzer.starts_with("http://") && !self.analyzer.starts_with("https://") {
            return bad(format!(
                "analyzer `{}` must be an http:// or https:// URL",
                self.analyzer
            ));
        }
        if self.resync.is_zero() {
            return bad("resync must be above 0".into());
        }
        if let Some(token) = self.token() {
            token
                .read()
                .map_err(|e| AgentError::Config(format!("the analyzer token: {e}")))?;
        }
        let targets = match (&self.envoy, &self.traefik) {
            (Some(_), Some(_)) => {
                return bad("configure [agent.envoy] or [agent.traefik], not both".into())
            }
            (None, None) => {
                return bad("no gateway: configure [agent.envoy] or [agent.traefik]".into())
            }
            (Some(e), None) => {
                for c in &e.clusters {
                    if c.eds_path.file_name().is_none() {
                        return bad(format!("cluster `{}`: eds_path must name a file", c.name));
                    }
                    for (region, endpoints) in &c.regions {
                        if endpoints.is_empty() {
                            return bad(format!(
                                "cluster `{}`, region `{region}`: no endpoints",
                                c.name
                            ));
                        }
                        for e in endpoints {
                            if crate::gateway::envoy::host_port(e).is_none() {
                                return bad(format!(
                                    "cluster `{}`, region `{region}`: endpoint `{e}` is not host:port",
                                    c.name
                                ));
                            }
                        }
                    }
                }
                e.clusters.iter().map(|c| c.spec()).collect::<Vec<_>>()
            }
            (None, Some(t)) => {
                if t.file.file_name().is_none() {
                    return bad("traefik file must name a file".into());
                }
                t.services.iter().map(|s| s.spec()).collect()
            }
        };
        if targets.is_empty() {
            return bad("the gateway has no clusters or services to drive".into());
        }
        let mut names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return bad(format!("`{}` is configured twice", w[0]));
        }
        for t in &targets {
            if t.name.is_empty() {
                return bad("a cluster or service has no name".into());
            }
            if t.regions.len() < 2 {
                return bad(format!(
                    "`{}` needs at least two regions to move traffic between",
                    t.name
                ));
            }
        }
        if self.scaling.apply_scaling && self.scaling.command.is_empty() {
            return bad("[agent.scaling] apply_scaling needs a command".into());
        }
        Ok(())
    }
}

impl EnvoyCluster {
    /// What the agent computes weights for.
    pub fn spec(&self) -> TargetSpec {
        TargetSpec {
            name: self.name.clone(),
            service: self.service.clone(),
            regions: self.regions.keys().cloned().collect(),
        }
    }
}

impl TraefikService {
    /// What the agent computes weights for.
    pub fn spec(&self) -> TargetSpec {
        TargetSpec {
            name: self.name.clone(),
            service: self.service.clone(),
            regions: self.regions.keys().cloned().collect(),
        }
    }
}
