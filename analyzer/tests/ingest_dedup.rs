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

/// Scenario: deliveries in wire encoding 2 and encoding 1 (named by their Content-Type), one
/// with no Content-Type (as encoding 1 was sent before there were two), and one with a media
/// type the analyzer does not read.
/// Guarantees: the three readable ones are stored; the other is 415, naming what is read, and
/// stores nothing.
#[tokio::test]
async fn deliveries_say_their_encoding_in_the_content_type() {
    use meridian_collector::wire::{encode, Encoding};
    let dir = tempfile::tempdir().unwrap();
    let analyzer = AnalyzerConfig::default()
        .build(dir.path(), &prometheus::Registry::new())
        .await
        .unwrap();
    let router = analyzer.router();
    let batch = ipc::decode(&body()).unwrap();
    let post = |sequence: u64, content_type: Option<&str>, bytes: Vec<u8>| {
        let mut request = Request::post("/api/v1/ingest/traces")
            .header(COLLECTOR_HEADER, "c2")
            .header(SEQUENCE_HEADER, sequence);
        if let Some(t) = content_type {
            request = request.header("content-type", t);
        }
        request.body(Body::from(bytes)).unwrap()
    };
    let columnar = encode(Encoding::Columnar, &batch).unwrap();
    for (sequence, content_type, bytes, status) in [
        (
            1,
            Some(Encoding::Columnar.content_type()),
            columnar.clone(),
            204,
        ),
        (2, Some(Encoding::ArrowIpc.content_type()), body(), 204),
        (3, None, body(), 204),
        (4, Some("application/x-protobuf"), columnar, 415),
    ] {
        let response = router
            .clone()
            .oneshot(post(sequence, content_type, bytes))
            .await
            .unwrap();
        assert_eq!(response.status(), status, "delivery {sequence}");
        if status == 415 {
            let text = axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .unwrap();
            let text = String::from_utf8_lossy(&text);
            assert!(text.contains(Encoding::Columnar.content_type()), "{text}");
        }
    }
    assert_eq!(
        common::count(&analyzer.engine(), "SELECT count(*) FROM spans").await,
        9
    );
}
