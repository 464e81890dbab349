//! Probes against real HTTP servers on 127.0.0.1: healthy, killed, slow, wrong body, failing
//! status, compressed body, TCP; and a collector whose probe flips after the threshold.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, BooleanArray};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus::Registry;
use tokio_util::sync::CancellationToken;

use super::check;
use super::config::ProbeConfig;
use crate::collector::Destination;
use crate::config::CollectorConfig;
use crate::signal::Signal;
use crate::testing::CaptureSink;

/// Serves `router` on 127.0.0.1:0 until the returned token is cancelled.
async fn serve(router: Router) -> (SocketAddr, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let until = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(until.cancelled_owned())
            .await
            .unwrap();
    });
    (addr, stop)
}

fn gzip(text: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

fn endpoints() -> Router {
    Router::new()
        .route("/ok", get(|| async { "status: ok" }))
        .route("/wrong", get(|| async { "status: degraded" }))
        .route(
            "/late-string",
            get(|| async { format!("{}ok", " ".repeat(6000)) }),
        )
        .route(
            "/gzip",
            get(|| async {
                (
                    [(header::CONTENT_ENCODING, "gzip")],
                    gzip(&format!("{}ok", "x".repeat(4000))),
                )
            }),
        )
        .route(
            "/down",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response() }),
        )
        .route(
            "/moved",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/ok")]).into_response() }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "ok"
            }),
        )
}

fn probe(url: String, search: Option<&str>) -> ProbeConfig {
    ProbeConfig {
        name: "p".into(),
        region: "eu-west-1".into(),
        service: None,
        url,
        interval: Duration::from_secs(1),
        failure_threshold: 2,
        search_string: search.map(str::to_owned),
        connect_timeout: None,
        response_timeout: Some(Duration::from_millis(500)),
    }
}

async fn check_once(probe: &ProbeConfig) -> check::Outcome {
    check::run(probe, &probe.target().unwrap()).await
}

/// Scenario: one check of each kind of endpoint a real server can present.
/// Guarantees: Route 53's rules — 2xx/3xx pass, other statuses fail with the status named;
/// the search string must be in the first 5,120 (decompressed) bytes; a server slower than the
/// response timeout, and a port nobody listens on, fail with a reason; latency is measured.
#[tokio::test]
async fn each_check_follows_route53_rules_against_a_real_server() {
    let (addr, _stop) = serve(endpoints()).await;
    let url = |path: &str| format!("http://{addr}{path}");

    let ok = check_once(&probe(url("/ok"), Some("ok"))).await;
    assert!(ok.ok, "{ok:?}");
    assert_eq!(ok.status_code, Some(200));
    assert!(ok.connect_ms.unwrap() <= ok.first_byte_ms.unwrap());

    let wrong = check_once(&probe(url("/wrong"), Some("ok"))).await;
    assert!(!wrong.ok);
    assert_eq!(wrong.status_code, Some(200));
    assert!(wrong.error.unwrap().contains("not in the first 5120 bytes"));

    let late = check_once(&probe(url("/late-string"), Some("ok"))).await;
    assert!(!late.ok, "the string is past byte 5120");

    let gz = check_once(&probe(url("/gzip"), Some("ok"))).await;
    assert!(gz.ok, "gzip bodies are decompressed first: {gz:?}");

    let down = check_once(&probe(url("/down"), None)).await;
    assert_eq!((down.ok, down.status_code), (false, Some(503)));
    assert_eq!(down.error.as_deref(), Some("status 503"));

    assert!(
        check_once(&probe(url("/moved"), None)).await.ok,
        "3xx passes"
    );

    let slow = check_once(&probe(url("/slow"), None)).await;
    assert!(!slow.ok);
    assert!(
        slow.error.unwrap().contains("no response within"),
        "slow server"
    );

    let tcp = check_once(&probe(format!("tcp://{addr}"), None)).await;
    assert!(tcp.ok && tcp.connect_ms.is_some(), "{tcp:?}");

    let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = gone.local_addr().unwrap();
    drop(gone);
    let refused = check_once(&probe(format!("http://{dead}/ok"), None)).await;
    assert!(!refused.ok);
    assert!(
        refused.error.unwrap().contains("connecting to"),
        "killed server"
    );
}

/// Scenario: a collector probes a live server every second with a threshold of 2, then the
/// server is killed.
/// Guarantees: every result becomes a `probes` row in the sink; the vantage verdict stays
/// healthy on the first failure and flips on the second (symmetric hysteresis).
#[tokio::test]
async fn a_collector_reports_results_and_flips_after_the_threshold() {
    let (addr, stop_server) = serve(endpoints()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = CollectorConfig {
        region: "us-east-1".into(),
        ..CollectorConfig::default()
    };
    config.otlp.grpc_addr = "127.0.0.1:0".parse().unwrap();
    config.otlp.http_addr = "127.0.0.1:0".parse().unwrap();
    config.forward.batch_timeout = Duration::from_millis(10);
    config.probes = vec![probe(format!("http://{addr}/ok"), Some("ok"))];
    let sink = CaptureSink::scripted([]);
    let registry = Registry::new();
    let running = config
        .start(
            Destination::InProcess(Arc::new(sink.clone())),
            dir.path(),
            &registry,
            &crate::auth::Auth::open(),
            &crate::memory::MemoryLimit::unlimited(),
        )
        .await
        .unwrap();
    let rows = |sink: &CaptureSink| -> Vec<(bool, bool)> {
        sink.delivered()
            .iter()
            .filter(|b| b.signal == Signal::Probes)
            .flat_map(|b| b.batches.clone())
            .flat_map(|b| {
                let col = |name: &str| -> BooleanArray {
                    b.column_by_name(name).unwrap().as_boolean().clone()
                };
                let (ok, healthy) = (col("ok"), col("healthy"));
                (0..b.num_rows())
                    .map(|i| (ok.value(i), healthy.value(i)))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    for _ in 0..50 {
        if rows(&sink).len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rows(&sink).iter().all(|r| *r == (true, true)));
    stop_server.cancel();
    let before = rows(&sink).len();
    for _ in 0..60 {
        if rows(&sink).len() >= before + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after: Vec<_> = rows(&sink).into_iter().skip(before).collect();
    assert_eq!(after[0], (false, true), "one failure does not flip");
    assert_eq!(after[1], (false, false), "the second does");
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    assert!(text.contains("meridian_probe_checks_total{probe=\"p\",result=\"fail\"}"));
    assert!(text.contains("meridian_probe_vantage_healthy{probe=\"p\"} 0"));
    running.shutdown().await.unwrap();
}
