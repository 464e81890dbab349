//! The simulated gateways' health endpoints, which every demo collector probes as Route 53
//! would: `GET /healthz` answers 200, or 503 while the region's incident lasts (its upstream
//! fails its deep health check), so probes, health and failover have real data to work on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use meridian_collector::listen::{bind, spawn_http};
use meridian_collector::probe::ProbeConfig;
use tokio_util::sync::CancellationToken;

/// How often each collector checks each endpoint, and the results that flip its verdict: the
/// demo's incidents last tens of seconds, so quicker than Route 53's 30 s × 3.
const INTERVAL: Duration = Duration::from_secs(5);
const FAILURE_THRESHOLD: u32 = 2;

/// One health endpoint per region, served until dropped or stopped.
pub struct HealthEndpoints {
    endpoints: Vec<(String, String, Arc<AtomicBool>)>,
    stop: CancellationToken,
}

impl HealthEndpoints {
    /// Binds one endpoint on a free loopback port for each of `regions`.
    pub async fn start(regions: &[&str]) -> anyhow::Result<Self> {
        let stop = CancellationToken::new();
        let mut endpoints = Vec::new();
        for region in regions {
            let failing = Arc::new(AtomicBool::new(false));
            let (listener, addr) = bind("demo health endpoint", ([127, 0, 0, 1], 0).into())
                .await
                .context("binding a demo health endpoint")?;
            let app = axum::Router::new()
                .route("/healthz", get(healthz))
                .with_state(Arc::clone(&failing));
            spawn_http("demo health endpoint", listener, app, stop.clone());
            let url = format!("http://{addr}/healthz");
            endpoints.push(((*region).to_owned(), url, failing));
        }
        Ok(Self { endpoints, stop })
    }

    /// The probes every collector runs: each region's gateway, region-wide.
    pub fn probes(&self) -> Vec<ProbeConfig> {
        self.endpoints
            .iter()
            .map(|(region, url, _)| ProbeConfig {
                name: format!("{region}-gateway"),
                region: region.clone(),
                service: None,
                url: url.clone(),
                interval: INTERVAL,
                failure_threshold: FAILURE_THRESHOLD,
                search_string: None,
                connect_timeout: None,
                response_timeout: None,
            })
            .collect()
    }

    /// Makes `region`'s endpoint answer 503 (`true`) or 200.
    pub fn set_failing(&self, region: &str, failing: bool) {
        for (r, _, flag) in &self.endpoints {
            if r == region {
                flag.store(failing, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for HealthEndpoints {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn healthz(State(failing): State<Arc<AtomicBool>>) -> (StatusCode, &'static str) {
    if failing.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "upstream unhealthy\n")
    } else {
        (StatusCode::OK, "ok\n")
    }
}
