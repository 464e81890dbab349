//! Delivery across processes and restarts: backpressure when the analyzer is unreachable, the
//! network path from a collector to a separate analyzer, and data surviving a restart.

mod common;

use std::time::Duration;

use common::{free_port, post_protobuf, span, traces, wait_for_count, Meridian};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use tonic_types::StatusExt;

/// Scenario: a collector whose analyzer is down, with a 30 kB disk buffer; clients keep sending;
/// then the analyzer starts.
/// Guarantees: once the buffer is full, HTTP answers 503 with Retry-After and a Status body, gRPC
/// answers UNAVAILABLE with RetryInfo; every accepted span reaches the analyzer exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_then_delivery_over_the_network_path() {
    let analyzer_dir = tempfile::tempdir().unwrap();
    let collector_dir = tempfile::tempdir().unwrap();
    let analyzer_addr = format!("127.0.0.1:{}", free_port());
    let forward = format!("http://{analyzer_addr}");
    let collector = Meridian::start(
        "collector",
        collector_dir.path(),
        &[
            "--forward-to",
            &forward,
            "--buffer-max-bytes",
            "8000",
            "--region",
            "eu-west-1",
        ],
    );

    let mut accepted = 0u64;
    let mut http_refused = false;
    for n in 0..50u64 {
        let r = post_protobuf(
            &collector.http_url(),
            "/v1/traces",
            traces("bp", vec![span("s", n)]).encode_to_vec(),
        )
        .await;
        match r.status().as_u16() {
            200 => accepted += 1,
            503 => {
                let retry_after: u64 = r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(retry_after >= 1);
                let status = tonic_types::Status::decode(r.bytes().await.unwrap()).unwrap();
                assert_eq!(status.code, 14);
                http_refused = true;
                break;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(http_refused, "the buffer never filled");
    assert!(accepted >= 1);

    let mut client = TraceServiceClient::connect(collector.grpc_url())
        .await
        .unwrap();
    let err = client
        .export(traces("bp", vec![span("g", 1000)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    let retry = err
        .get_details_retry_info()
        .expect("RetryInfo in the status details");
    assert!(retry.retry_delay.is_some());

    // Operators see it: not ready (the sink fails), refusals counted in /metrics.
    let admin = format!("http://{}", collector.api);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ready = reqwest::get(format!("{admin}/readyz")).await.unwrap();
        // Not ready from the start: the first delivery fails, and the buffer is full.
        assert_eq!(ready.status(), 503);
        if ready.text().await.unwrap().contains("sink is unavailable") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "readyz never reported the failing sink"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused = metrics
        .lines()
        .find(|l| l.starts_with("meridian_collector_refused_requests_total{protocol=\"http_protobuf\",signal=\"traces\"}"))
        .unwrap_or_else(|| panic!("no refusal counter in:\n{metrics}"));
    assert!(!refused.ends_with(" 0"), "{refused}");
    assert!(metrics.contains("meridian_collector_sink_up 0"));

    // The analyzer comes up: the collector's retries deliver everything accepted, once.
    let analyzer = Meridian::start_on("analyzer", analyzer_dir.path(), &analyzer_addr, &[]);
    let q = "SELECT count(*) AS n FROM spans WHERE service_name = 'bp'";
    let n = wait_for_count(analyzer.api, q, accepted as i64, Duration::from_secs(30)).await;
    assert_eq!(n, accepted as i64);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        common::count(analyzer.api, q).await,
        accepted as i64,
        "no duplicates"
    );
    let regions = common::sql(analyzer.api, "SELECT DISTINCT region FROM spans").await;
    assert_eq!(regions, vec![serde_json::json!({"region": "eu-west-1"})]);

    // Ready again once deliveries succeed.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while reqwest::get(format!("{admin}/readyz"))
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(
            std::time::Instant::now() < deadline,
            "collector never became ready again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = reqwest::get(format!("http://{}/readyz", analyzer.api))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    // With room again, new requests succeed and flow through.
    let r = post_protobuf(
        &collector.http_url(),
        "/v1/traces",
        traces("after", vec![span("x", 5000)]).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let q = "SELECT count(*) AS n FROM spans WHERE service_name = 'after'";
    assert_eq!(
        wait_for_count(analyzer.api, q, 1, Duration::from_secs(10)).await,
        1
    );
    collector.terminate();
    analyzer.terminate();
}

/// Scenario: spans sent to standalone, SIGTERM, start again on the same data directory.
/// Guarantees: a clean exit flushes to Parquet, and the restarted process serves every span.
#[tokio::test]
async fn flushed_data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = Meridian::start("standalone", dir.path(), &[]);
    let spans: Vec<_> = (0..100).map(|n| span("r", n)).collect();
    let r = post_protobuf(
        &first.http_url(),
        "/v1/traces",
        traces("restart", spans).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let q = "SELECT count(*) AS n FROM spans WHERE service_name = 'restart'";
    assert_eq!(
        wait_for_count(first.api, q, 100, Duration::from_secs(10)).await,
        100
    );
    first.terminate();

    let parquet = walk(dir.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .count();
    assert!(parquet >= 1, "no parquet file written");

    let second = Meridian::start("standalone", dir.path(), &[]);
    assert_eq!(common::count(second.api, q).await, 100);
    let q = "SELECT count(DISTINCT span_id) AS n FROM spans WHERE service_name = 'restart' AND time > now() - INTERVAL '1 hour'";
    assert_eq!(common::count(second.api, q).await, 100);
}

/// Scenario: standalone with its store in an S3-compatible bucket (moto) through
/// `--store-url` and `[analyzer.store.url_options]`; spans sent, SIGTERM, then a second
/// process on an empty data directory and the same bucket.
/// Guarantees: Parquet files and checkpoints go to the bucket, not the data directory; the
/// second process finds them and serves every span once.
#[tokio::test]
async fn flushed_data_survives_a_restart_on_object_storage() {
    let moto = common::s3::Moto::start();
    moto.bucket("gateway-telemetry");
    let dir = tempfile::tempdir().unwrap();
    let options: String = moto
        .options()
        .iter()
        .map(|(k, v)| format!("{k} = \"{v}\"\n"))
        .collect();
    let config = dir.path().join("meridian.toml");
    std::fs::write(&config, format!("[analyzer.store.url_options]\n{options}")).unwrap();
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--store-url",
        "s3://gateway-telemetry/eu",
    ];
    let first = Meridian::start("standalone", &dir.path().join("one"), &args);
    let spans: Vec<_> = (0..100).map(|n| span("r", n)).collect();
    let r = post_protobuf(
        &first.http_url(),
        "/v1/traces",
        traces("bucket", spans).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let q = "SELECT count(*) AS n FROM spans WHERE service_name = 'bucket'";
    assert_eq!(
        wait_for_count(first.api, q, 100, Duration::from_secs(10)).await,
        100
    );
    first.terminate();
    assert!(
        !walk(dir.path())
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "parquet")),
        "parquet written to the local disk instead of the bucket"
    );

    let objects = meridian_analyzer::store::Objects::open(
        Some("s3://gateway-telemetry/eu"),
        &moto.options(),
        dir.path(),
    )
    .unwrap();
    let listed = objects.list(&objects.table_root("spans")).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|o| o.location.as_ref()).collect();
    assert!(
        names.iter().any(|n| n.ends_with(".parquet"))
            && names.iter().any(|n| n.ends_with("_checkpoint.json")),
        "the bucket holds {names:?}"
    );

    let second = Meridian::start("standalone", &dir.path().join("two"), &args);
    let q = "SELECT count(DISTINCT span_id) AS n, count(*) AS c FROM spans WHERE service_name = 'bucket'";
    let rows = common::sql(second.api, q).await;
    assert_eq!(
        (rows[0]["n"].as_i64(), rows[0]["c"].as_i64()),
        (Some(100), Some(100))
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The active alerts of `rule` on the analyzer's `/api/v1/alerts`.
async fn active_alerts(api: std::net::SocketAddr, rule: &str) -> Vec<serde_json::Value> {
    let body: serde_json::Value = reqwest::get(format!("http://{api}/api/v1/alerts"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["labels"]["alertname"] == rule)
        .cloned()
        .collect()
}

/// Scenario: a `meridian collector` forwarding to a separate `meridian analyzer`, both reporting
/// their own metrics every second; then the collector is SIGKILLed, then started again.
/// Guarantees: the collector's gauges (and the analyzer's) are rows of the `metrics` table with
/// region and instance; nothing alerts while the collector reports; its silence fires
/// `MeridianCollectorSilent` for its region and instance, which resolves once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_collector_pages_from_its_own_reports() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("meridian.toml");
    std::fs::write(
        &config,
        "[collector.self_metrics]\ninterval = \"1s\"\ninstance = \"edge-1\"\n\
         [analyzer.self_metrics]\ninterval = \"1s\"\n\
         [analyzer.alerting]\nevaluate_every = \"1s\"\n\
         [analyzer.alerting.builtin]\ncollector_silent_after = \"6s\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let analyzer = Meridian::start(
        "analyzer",
        &dir.path().join("analyzer"),
        &["--config", config],
    );
    let forward = format!("http://{}", analyzer.api);
    let collector_args = [
        "--config",
        config,
        "--forward-to",
        &forward,
        "--region",
        "eu-west-1",
    ];
    let collector_dir = dir.path().join("collector");
    let collector = Meridian::start("collector", &collector_dir, &collector_args);

    let reports = "SELECT count(*) AS n FROM metrics WHERE service_name = 'meridian-collector' \
                   AND region = 'eu-west-1' AND resource_attributes['service.instance.id'] = 'edge-1' \
                   AND name = 'meridian_collector_sink_up' AND value = 1";
    assert!(wait_for_count(analyzer.api, reports, 3, Duration::from_secs(30)).await >= 3);
    let own = "SELECT count(*) AS n FROM metrics WHERE service_name = 'meridian-analyzer' \
               AND region = 'center' AND name = 'meridian_analyzer_ingested_rows_total'";
    assert!(wait_for_count(analyzer.api, own, 1, Duration::from_secs(30)).await >= 1);
    for rule in [
        "MeridianCollectorSilent",
        "MeridianCollectorBufferFilling",
        "MeridianCollectorBehind",
    ] {
        assert_eq!(
            active_alerts(analyzer.api, rule).await,
            Vec::<serde_json::Value>::new()
        );
    }

    collector.kill9();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let firing = loop {
        let found = active_alerts(analyzer.api, "MeridianCollectorSilent").await;
        if let Some(a) = found.into_iter().find(|a| a["state"] == "firing") {
            break a;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the silent collector never paged"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(firing["labels"]["region"], "eu-west-1");
    assert_eq!(firing["labels"]["instance"], "edge-1");
    assert_eq!(firing["labels"]["severity"], "page");
    let summary = firing["annotations"]["summary"].as_str().unwrap();
    assert!(summary.contains("has not reported"), "{summary}");

    let _collector = Meridian::start("collector", &collector_dir, &collector_args);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !active_alerts(analyzer.api, "MeridianCollectorSilent")
        .await
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the alert did not resolve once the collector reported again"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
