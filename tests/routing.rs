//! The feedback loop across processes: three regional collectors (`meridian collector`, over
//! the network sink) probe one endpoint per region (real HTTP servers here), one collector cut
//! off from one endpoint; the analyzer (`meridian analyzer`) combines the vantage points and
//! publishes routing weights on `GET /api/v1/routing`.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::get;
use common::{free_port, sql, Meridian};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const REGIONS: [&str; 3] = ["ap-southeast-2", "eu-west-1", "us-east-1"];

/// A health endpoint answering `ok` while `up`, 503 otherwise.
async fn endpoint(up: Arc<AtomicBool>, stop: CancellationToken) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/health",
        get(move || {
            let up = up.load(Ordering::Relaxed);
            async move {
                if up {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "down")
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
    addr
}

async fn routing(api: SocketAddr) -> Value {
    reqwest::get(format!("http://{api}/api/v1/routing"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn weight(state: &Value, region: &str) -> Option<u64> {
    state["services"]["*"]["regions"][region]["weight"].as_u64()
}

/// Polls the routing until `check` holds; returns the state and when it held.
async fn until(
    api: SocketAddr,
    timeout: Duration,
    mut check: impl FnMut(&Value) -> bool,
) -> (Value, Instant) {
    let start = Instant::now();
    loop {
        let state = routing(api).await;
        if check(&state) {
            return (state, Instant::now());
        }
        assert!(start.elapsed() < timeout, "timed out; routing is {state:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Scenario: three collectors probe three endpoints every second (threshold 2); the
/// us-east-1 collector cannot reach the ap-southeast-2 endpoint (a partition); then the
/// eu-west-1 endpoint goes down, and comes back.
/// Guarantees: the partition alone moves nothing (2 of 3 vantage points say healthy); the
/// outage puts eu-west-1 at 0 and raises the others, within threshold × interval plus a few
/// seconds; after recovery eu-west-1 comes back in steps (10, 50, then 100) and no step comes
/// before `failback_after`; `health` and `recommendations` rows are queryable; overrides win
/// and an override turning every region off is refused with 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_outage_fails_over_and_back_in_steps() {
    let stop = CancellationToken::new();
    let mut ups = Vec::new();
    let mut addrs = Vec::new();
    for _ in REGIONS {
        let up = Arc::new(AtomicBool::new(true));
        addrs.push(endpoint(Arc::clone(&up), stop.clone()).await);
        ups.push(up);
    }
    let dead = free_port();
    let analyzer_dir = tempfile::tempdir().unwrap();
    let analyzer_config = analyzer_dir.path().join("meridian.toml");
    std::fs::write(
        &analyzer_config,
        r#"
[analyzer.recommend.routing]
dwell = "1s"
failback_after = "4s"
failback_step_hold = "2s"
"#,
    )
    .unwrap();
    let analyzer_addr = format!("127.0.0.1:{}", free_port());
    let analyzer = Meridian::start_on(
        "analyzer",
        analyzer_dir.path(),
        &analyzer_addr,
        &["--config", analyzer_config.to_str().unwrap()],
    );
    let api = analyzer.api;
    let mut collectors = Vec::new();
    let mut dirs = Vec::new();
    for vantage in REGIONS {
        let dir = tempfile::tempdir().unwrap();
        let mut probes = String::new();
        for (region, addr) in REGIONS.iter().zip(&addrs) {
            let url = if vantage == "us-east-1" && *region == "ap-southeast-2" {
                format!("http://127.0.0.1:{dead}/health")
            } else {
                format!("http://{addr}/health")
            };
            probes.push_str(&format!(
                "[[collector.probes]]\nname = \"api-{region}\"\nregion = \"{region}\"\nurl = \"{url}\"\ninterval = \"1s\"\nfailure_threshold = 2\nsearch_string = \"ok\"\n\n"
            ));
        }
        let config = dir.path().join("meridian.toml");
        std::fs::write(
            &config,
            format!("[collector.forward]\nbatch_timeout = \"50ms\"\n\n{probes}"),
        )
        .unwrap();
        collectors.push(Meridian::start(
            "collector",
            dir.path(),
            &[
                "--config",
                config.to_str().unwrap(),
                "--region",
                vantage,
                "--forward-to",
                &format!("http://{analyzer_addr}"),
            ],
        ));
        dirs.push(dir);
    }

    let (state, _) = until(api, Duration::from_secs(30), |s| {
        REGIONS.iter().all(|r| weight(s, r) == Some(100))
    })
    .await;
    assert_eq!(
        state["services"]["*"]["regions"]["ap-southeast-2"]["state"],
        "normal"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let state = routing(api).await;
    assert!(
        REGIONS.iter().all(|r| weight(&state, r) == Some(100)),
        "one partitioned vantage point moves nothing: {state:#}"
    );

    ups[1].store(false, Ordering::Relaxed);
    let down_at = Instant::now();
    let (state, failed_at) = until(api, Duration::from_secs(30), |s| {
        weight(s, "eu-west-1") == Some(0)
    })
    .await;
    let detection = failed_at - down_at;
    println!(
        "failover {:.1} s after the endpoint went down",
        detection.as_secs_f64()
    );
    assert!(detection < Duration::from_secs(15), "{detection:?}");
    assert_eq!(weight(&state, "us-east-1"), Some(150));
    assert_eq!(weight(&state, "ap-southeast-2"), Some(150));
    let reason = state["services"]["*"]["regions"]["eu-west-1"]["reason"]
        .as_str()
        .unwrap();
    assert!(reason.contains("probes 3/3 failing"), "{reason}");

    let refused = reqwest::Client::new()
        .post(format!("http://{api}/api/v1/routing/overrides"))
        .json(&serde_json::json!({"service": "*", "region": "us-east-1", "weight": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 200, "two regions still on");
    let all_off = reqwest::Client::new()
        .post(format!("http://{api}/api/v1/routing/overrides"))
        .json(&serde_json::json!({"service": "*", "region": "ap-southeast-2", "weight": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(all_off.status(), 409, "every region off is refused");
    let removed = reqwest::Client::new()
        .delete(format!("http://{api}/api/v1/routing/overrides/*/us-east-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 200);

    ups[1].store(true, Ordering::Relaxed);
    let up_at = Instant::now();
    let mut seen = Vec::new();
    let (_, back_at) = until(api, Duration::from_secs(60), |s| {
        let w = weight(s, "eu-west-1").unwrap_or(0);
        if seen.last() != Some(&w) {
            seen.push(w);
        }
        w == 100
    })
    .await;
    seen.push(100);
    seen.dedup();
    assert_eq!(seen, vec![0, 10, 50, 100], "stepped failback");
    assert!(
        back_at - up_at >= Duration::from_secs(4 + 2 + 2),
        "held steps"
    );

    let health = sql(api, "SELECT endpoint, healthy FROM health ORDER BY time").await;
    assert!(health
        .iter()
        .any(|r| r["endpoint"] == "api-eu-west-1" && r["healthy"] == false));
    let kinds = sql(
        api,
        "SELECT kind FROM recommendations WHERE region = 'eu-west-1' AND state <> 'superseded' ORDER BY time",
    )
    .await;
    let kinds: Vec<&str> = kinds.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"failover"));
    assert_eq!(kinds.last(), Some(&"failback"));
    let probes = sql(
        api,
        "SELECT count(DISTINCT vantage_region) AS n FROM probes",
    )
    .await;
    assert_eq!(probes[0]["n"], 3);

    for c in collectors {
        c.terminate();
    }
    analyzer.terminate();
    stop.cancel();
}
