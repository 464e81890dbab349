//! Root-cause hints on an injected upstream fault: spans of three routes of one region and
//! service, healthy for five minutes, then one route failing with 503 and slow — on one of the
//! two upstreams that serve it.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use meridian_analyzer::alert::hints;
use meridian_analyzer::AnalyzerConfig;
use meridian_collector::convert::traces_to_arrow;
use meridian_collector::otlp::builders::{kv, span, traces};
use meridian_collector::{Signal, SignalBatch};

/// Server spans of `checkout` for `route` through `upstream` (`peer.service`), `n` of them
/// from `from_s` to `to_s` seconds ago, answering `status` in `ms` milliseconds; ids start at
/// `id`.
fn spans(
    (route, upstream): (&str, &str),
    status: i64,
    ms: u64,
    n: u64,
    (from_s, to_s): (u64, u64),
    id: u64,
) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    (0..n)
        .map(|i| {
            let mut s = span(route, id + i);
            let ago = from_s * 1_000_000_000 - (from_s - to_s) * 1_000_000_000 * i / n;
            s.start_time_unix_nano = now - ago;
            s.end_time_unix_nano = s.start_time_unix_nano + ms * 1_000_000;
            s.attributes = vec![
                kv("http.route", route),
                kv("http.response.status_code", status),
                kv("peer.service", upstream),
            ];
            s
        })
        .collect()
}

/// Scenario: eu-west-1's `checkout` serves /api/orders, /api/cart and /api/users at 20 ms
/// with 200 for five minutes; in the last minute /api/orders answers 503 in 400 ms to most of
/// its requests while the others stay healthy; us-east-1 has the same fault (not asked about).
/// Guarantees: the hint for eu-west-1 names /api/orders with 503 as nearly all of the error
/// rise and /api/orders as nearly all of the extra time, and the upstream orders-v2 (not
/// orders-v1, which serves the same route) for both; the exemplar traces are the failing
/// ones of eu-west-1, and the exemplar SQL returns them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hint_names_the_failing_route() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = AnalyzerConfig::default()
        .build(dir.path(), &prometheus::Registry::new())
        .await
        .unwrap();
    let (store, engine) = (analyzer.store(), analyzer.engine());
    let mut id = 0;
    for (region, base) in [("eu-west-1", 0u64), ("us-east-1", 1_000_000)] {
        let mut all = Vec::new();
        for route in [
            ("/api/orders", "orders-v1"),
            ("/api/orders", "orders-v2"),
            ("/api/cart", "cart"),
            ("/api/users", "users"),
        ] {
            all.extend(spans(route, 200, 20, 300, (360, 70), base + id));
            id += 1000;
            all.extend(spans(route, 200, 20, 10, (50, 5), base + id));
            id += 1000;
        }
        all.extend(spans(
            ("/api/orders", "orders-v2"),
            503,
            400,
            50,
            (50, 5),
            base + id,
        ));
        id += 1000;
        let batch = traces_to_arrow(&traces("checkout", all), region)
            .unwrap()
            .batch;
        store
            .insert(SignalBatch::new(Signal::Traces, batch))
            .unwrap();
    }
    let (evidence, hint) = hints::gather(
        &engine,
        "eu-west-1",
        "checkout",
        60,
        600,
        Vec::new(),
        serde_json::json!([]),
    )
    .await;
    println!("hint: {hint}");
    assert_eq!(
        evidence["top_error"]["http_route"], "/api/orders",
        "{evidence:#}"
    );
    assert_eq!(evidence["top_error"]["status"], "503");
    assert!(evidence["top_error"]["share"].as_f64().unwrap() > 0.99);
    assert_eq!(evidence["top_latency"]["http_route"], "/api/orders");
    assert!(evidence["top_latency"]["share"].as_f64().unwrap() > 0.9);
    assert!(hint.contains("/api/orders 503"), "{hint}");
    assert_eq!(evidence["top_error_upstream"]["upstream"], "orders-v2");
    assert!(evidence["top_error_upstream"]["share"].as_f64().unwrap() > 0.99);
    assert_eq!(evidence["top_latency_upstream"]["upstream"], "orders-v2");
    assert!(hint.contains("upstream orders-v2"), "{hint}");
    let ids = evidence["exemplar_trace_ids"].as_array().unwrap();
    assert_eq!(ids.len(), 5);
    let rows = engine
        .query(evidence["exemplar_sql"].as_str().unwrap())
        .await
        .unwrap();
    let returned: usize = rows.batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(returned, 5);
    let failing = common::count(
        &engine,
        &format!(
            "SELECT count(*) FROM spans WHERE region = 'eu-west-1' AND http_response_status_code = 503 AND trace_id IN ({})",
            ids.iter().map(|i| format!("'{}'", i.as_str().unwrap())).collect::<Vec<_>>().join(", ")
        ),
    )
    .await;
    assert_eq!(failing, 5, "exemplars are the failing traces of the region");
}
