//! The analyzer's ingest endpoint recognises a retried delivery of a batch it already stored.

mod common;

use axum::body::Body;
use axum::http::Request;
use meridian_analyzer::AnalyzerConfig;
use meridian_collector::ipc;
use meridian_collector::sink::network::{COLLECTOR_HEADER, SEQUENCE_HEADER};
use opentelemetry_proto::tonic::trace::v1::Span;
use tower::ServiceExt;

fn body() -> Vec<u8> {
    let spans = (1..=3u8)
        .map(|k| Span {
            trace_id: vec![k; 16],
            span_id: vec![k; 8],
            name: "s".into(),
            ..Default::default()
        })
        .collect();
    ipc::encode(&[common::spans_batch(spans)]).unwrap()
}

/// Scenario: the same batch (collector id, sequence) delivered twice, then an older sequence,
/// then the next sequence.
/// Guarantees: 204 each time; the repeat and the older one are not stored again.
#[tokio::test]
async fn retried_batches_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = AnalyzerConfig::default()
        .build(dir.path(), &prometheus::Registry::new())
        .await
        .unwrap();
    let router = analyzer.router();
    let post = |sequence: u64| {
        Request::post("/api/v1/ingest/traces")
            .header("content-type", ipc::CONTENT_TYPE)
            .header(COLLECTOR_HEADER, "c1")
            .header(SEQUENCE_HEADER, sequence)
            .body(Body::from(body()))
            .unwrap()
    };
    for sequence in [1, 1, 2, 1, 3] {
        let response = router.clone().oneshot(post(sequence)).await.unwrap();
        assert_eq!(response.status(), 204);
    }
    assert_eq!(
        common::count(&analyzer.engine(), "SELECT count(*) FROM spans").await,
        9,
        "sequences 1, 2, 3 once each"
    );
}
