//! Query limits: a timeout, a memory limit and a cap on result rows, each ending in a clear
//! error or a marked result — and the engine keeps serving afterwards.

use std::time::Duration;

use meridian_analyzer::query::{QueryConfig, QueryEngine};
use meridian_analyzer::{AnalyzerConfig, QueryError};

async fn engine(dir: &std::path::Path, query: QueryConfig) -> std::sync::Arc<QueryEngine> {
    let config = AnalyzerConfig {
        query,
        ..AnalyzerConfig::default()
    };
    config
        .build(dir, &prometheus::Registry::new())
        .await
        .unwrap()
        .engine()
}

/// Scenario: a query that would run for minutes, under a 200 ms timeout.
/// Guarantees: it ends promptly with `Timeout`, and the next query runs normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_query_is_cancelled_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(
        dir.path(),
        QueryConfig {
            timeout: Duration::from_millis(200),
            ..QueryConfig::default()
        },
    )
    .await;
    let started = std::time::Instant::now();
    let err = engine
        .query("SELECT sum(value) AS s FROM generate_series(1, 100000000000)")
        .await
        .err()
        .expect("the query must not finish");
    assert!(matches!(err, QueryError::Timeout(_)), "{err}");
    assert!(err.to_string().contains("timeout"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let ok = engine.query("SELECT 1 AS one").await.unwrap();
    assert_eq!(ok.batches[0].num_rows(), 1);
}

/// Scenario: a query that must hold far more than a 1 MiB memory limit at once.
/// Guarantees: it fails with `TooLarge` naming the setting, not an out-of-memory kill; the engine
/// keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_the_memory_limit_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(
        dir.path(),
        QueryConfig {
            memory_limit_bytes: 1 << 20,
            ..QueryConfig::default()
        },
    )
    .await;
    let err = engine
        .query("SELECT array_agg(value) AS all_values FROM generate_series(1, 5000000)")
        .await
        .err()
        .expect("the query must not fit");
    assert!(matches!(err, QueryError::TooLarge(_)), "{err}");
    assert!(err.to_string().contains("memory_limit_bytes"), "{err}");
    let ok = engine.query("SELECT 1 AS one").await.unwrap();
    assert_eq!(ok.batches[0].num_rows(), 1);
}

/// Scenario: a result of 1,000 rows under a 10-row cap, and one of exactly 10 rows.
/// Guarantees: the first returns 10 rows marked truncated; the second is whole and not marked.
#[tokio::test]
async fn results_are_capped_and_marked() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(
        dir.path(),
        QueryConfig {
            max_result_rows: 10,
            ..QueryConfig::default()
        },
    )
    .await;
    let cut = engine
        .query("SELECT value FROM generate_series(1, 1000)")
        .await
        .unwrap();
    let rows: usize = cut.batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!((rows, cut.truncated), (10, true));
    let whole = engine
        .query("SELECT value FROM generate_series(1, 10)")
        .await
        .unwrap();
    let rows: usize = whole.batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!((rows, whole.truncated), (10, false));
}

/// Scenario: the same limits through `POST /api/v1/sql`.
/// Guarantees: a timeout answers 503 and a cut result carries `"truncated": true` and the
/// `x-meridian-truncated: true` header, as docs/operations.md says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_reports_limits() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;
    let dir = tempfile::tempdir().unwrap();
    let config = AnalyzerConfig {
        query: QueryConfig {
            timeout: Duration::from_millis(200),
            max_result_rows: 5,
            ..QueryConfig::default()
        },
        ..AnalyzerConfig::default()
    };
    let router = config
        .build(dir.path(), &prometheus::Registry::new())
        .await
        .unwrap()
        .router();
    let post = |sql: &str| {
        Request::post("/api/v1/sql")
            .header("content-type", "application/json")
            .body(Body::from(serde_json::json!({ "query": sql }).to_string()))
            .unwrap()
    };
    let slow = router
        .clone()
        .oneshot(post(
            "SELECT sum(value) FROM generate_series(1, 100000000000)",
        ))
        .await
        .unwrap();
    assert_eq!(slow.status(), StatusCode::SERVICE_UNAVAILABLE);
    let cut = router
        .oneshot(post("SELECT value FROM generate_series(1, 100)"))
        .await
        .unwrap();
    assert_eq!(cut.status(), StatusCode::OK);
    assert_eq!(cut.headers()["x-meridian-truncated"], "true");
    let body = axum::body::to_bytes(cut.into_body(), usize::MAX)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["truncated"], true);
    assert_eq!(json["rows"].as_array().unwrap().len(), 5);
}
