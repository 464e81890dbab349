//! The closed loop with real gateways: three regions (an upstream behind a real Envoy exporting
//! OTLP to its regional collector, which probes every region), the analyzer, and a real Envoy as
//! the global entry point with the regions as weighted localities, driven by `meridian agent`.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::fleet::{self, shares, start_envoy, start_regions, until_async, Traffic, REGIONS};
use common::{reserved_port as free_port, Meridian};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

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
fn applied(state: &Value, region: &str) -> (Option<u64>, bool) {
    let agent = state["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["id"] == "edge-envoy"));
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

fn start_agent(dir: &std::path::Path, config: &std::path::Path, listen: &str) -> Meridian {
    Meridian::start_on(
        "agent",
        dir,
        listen,
        &["--config", config.to_str().unwrap()],
    )
}

/// Scenario: steady traffic through the global Envoy; eu-west-1's upstream starts answering
/// 503 (its health check too); later the agent and then the analyzer are killed with SIGKILL
/// while eu-west-1 is drained, the agent restarts while the analyzer is still down, the
/// analyzer restarts; eu-west-1 recovers.
/// Guarantees: the analyzer recommends the failover, the agent applies it to Envoy (EDS,
/// `DRAINING`), and eu-west-1's share of requests (counted at the upstreams) falls below 1%
/// within 15 s of onset at 1 s × 2 probes; with agent and analyzer dead the gateway keeps
/// serving on the last weights; a restarted agent with no analyzer changes nothing and
/// converges once the analyzer is back; recovery brings eu-west-1 back in the analyzer's
/// steps (10 → 50 → 100) as applied by the agent, and the shares return to about a third each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_entry_point_follows_failover_and_failback() {
    let stop = CancellationToken::new();
    let dir = tempfile::tempdir().unwrap();
    let analyzer_dir = dir.path().join("analyzer");
    std::fs::create_dir_all(&analyzer_dir).unwrap();
    let analyzer_addr = format!("127.0.0.1:{}", free_port());
    let analyzer = start_analyzer(&analyzer_dir, &analyzer_addr);
    let api = analyzer.api;
    let regions = start_regions(dir.path(), &analyzer_addr, "1s", &stop).await;

    // The global Envoy, its EDS file seeded with every region at the normal weight.
    let eds_dir = dir.path().join("eds");
    std::fs::create_dir_all(&eds_dir).unwrap();
    let eds_path = eds_dir.join("global.json");
    let mut cluster_regions = String::new();
    for r in &regions {
        cluster_regions.push_str(&format!("\"{}\" = [\"{}\"]\n", r.name, r.gateway));
    }
    let agent_config = dir.path().join("agent.toml");
    let admin = free_port();
    std::fs::write(
        &agent_config,
        format!(
            "[agent]\nid = \"edge-envoy\"\nanalyzer = \"http://{analyzer_addr}\"\nresync = \"2s\"\ntimeout = \"1s\"\n\n\
             [agent.envoy]\nadmin = \"http://127.0.0.1:{admin}\"\n\n\
             [[agent.envoy.clusters]]\nname = \"global\"\nservice = \"*\"\neds_path = \"{}\"\n\
             [agent.envoy.clusters.regions]\n{cluster_regions}",
            eds_path.display()
        ),
    )
    .unwrap();
    let seed: meridian_agent::AgentConfig =
        toml::from_str::<toml::Table>(&std::fs::read_to_string(&agent_config).unwrap()).unwrap()
            ["agent"]
            .clone()
            .try_into()
            .unwrap();
    let cluster = &seed.envoy.as_ref().unwrap().clusters[0];
    let normal = meridian_agent::desired::Routing::default().plan(&cluster.spec());
    std::fs::write(
        &eds_path,
        serde_json::to_vec(&meridian_agent::gateway::envoy::assignment(
            cluster, &normal, 0,
        ))
        .unwrap(),
    )
    .unwrap();
    let entry_port = free_port();
    let envoy_config = include_str!("fixtures/envoy-global.yaml")
        .replace("@ADMIN_PORT@", &admin.to_string())
        .replace("@LISTEN_PORT@", &entry_port.to_string())
        .replace("@EDS_PATH@", eds_path.to_str().unwrap())
        .replace("@EDS_DIR@", eds_dir.to_str().unwrap());
    let envoy_path = dir.path().join("envoy-global.yaml");
    std::fs::write(&envoy_path, envoy_config).unwrap();
    let _entry = start_envoy(&envoy_path);
    let agent_listen = format!("127.0.0.1:{}", free_port());
    let agent = start_agent(dir.path(), &agent_config, &agent_listen);

    let entry = format!("http://127.0.0.1:{entry_port}");
    let client = reqwest::Client::new();
    until_async("the entry point to answer", Duration::from_secs(30), || {
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
    until_async(
        "routing for every region, applied by the agent",
        Duration::from_secs(40),
        || async {
            routing(api).await.is_some_and(|s| {
                REGIONS
                    .iter()
                    .all(|r| desired(&s, r) == Some(100) && applied(&s, r).0 == Some(100))
                    && applied(&s, "eu-west-1").1
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
            onset.elapsed() < Duration::from_secs(40),
            "no failover: {:?}",
            routing(api).await
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Some(s) = routing(api).await {
            if recommended.is_none() && desired(&s, "eu-west-1") == Some(0) {
                recommended = Some(onset.elapsed());
            }
            if applied_at.is_none() && applied(&s, "eu-west-1").0 == Some(0) {
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
        "envoy loop: onset → recommendation {:.1} s, → applied by the agent {:.1} s, → eu-west-1 below 1% of requests {:.1} s; {failed} of {total} requests failed ({:.1}%)",
        recommended.as_secs_f64(),
        applied_at.unwrap().as_secs_f64(),
        below.unwrap().as_secs_f64(),
        100.0 * failed as f64 / total.max(1) as f64,
    );
    assert!(below.unwrap() < Duration::from_secs(15), "{below:?}");
    let eds = std::fs::read_to_string(&eds_path).unwrap();
    assert!(eds.contains("DRAINING"), "{eds}");

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
        "envoy apply latency: mean {:.1} ms over {} updates (write → update_success)",
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
    let written = std::fs::read(&eds_path).unwrap();
    let agent = start_agent(dir.path(), &agent_config, &agent_listen);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        std::fs::read(&eds_path).unwrap(),
        written,
        "no change without the analyzer"
    );
    let ready = reqwest::get(format!("http://{agent_listen}/readyz"))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let analyzer = start_analyzer(&analyzer_dir, &analyzer_addr);
    until_async(
        "the agent to converge after the restarts",
        Duration::from_secs(30),
        || async {
            routing(api).await.is_some_and(|s| {
                desired(&s, "eu-west-1") == Some(0) && applied(&s, "eu-west-1") == (Some(0), true)
            })
        },
    )
    .await;
    let s = shares(&regions, Duration::from_secs(2)).await;
    assert!(s[EU] < 0.01, "{s:?}");

    // Recovery: stepped failback, as applied by the agent.
    regions[EU].upstream.failing.store(false, Ordering::Relaxed);
    let recovery = Instant::now();
    let mut steps = vec![0];
    loop {
        assert!(
            recovery.elapsed() < Duration::from_secs(60),
            "no failback: {steps:?}"
        );
        if let Some(s) = routing(api).await {
            let w = applied(&s, "eu-west-1").0.unwrap_or(0);
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
        "envoy failback applied in steps {steps:?}, {:.1} s after recovery",
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
