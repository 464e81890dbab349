//! Rate limits of the OTLP receivers, per token: a gateway over its rate gets HTTP 429 with
//! Retry-After and gRPC UNAVAILABLE with RetryInfo, another gateway is unaffected, and exactly
//! the requests answered 200 are stored.

mod common;

use std::time::Duration;

use common::{span, traces, Meridian};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use tonic_types::StatusExt;

const FAST: &str = "fast-0123456789abcdef";
const SLOW: &str = "slow-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_over_its_rate_is_told_to_retry_and_others_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        String::from("[collector.otlp.rate_limit]\nitems_per_second = 100\nburst = \"2s\"\n");
    for (name, secret) in [("fast", FAST), ("slow", SLOW)] {
        let file = dir.path().join(format!("{name}.token"));
        std::fs::write(&file, secret).unwrap();
        config.push_str(&format!(
            "[[auth.tokens]]\nname = \"{name}\"\ntoken_file = \"{}\"\nscopes = [\"ingest\", \"read\"]\n",
            file.display()
        ));
    }
    let path = dir.path().join("meridian.toml");
    std::fs::write(&path, config).unwrap();
    let meridian = Meridian::start(
        "standalone",
        dir.path(),
        &["--config", path.to_str().unwrap()],
    );
    let http = meridian.http_url();
    let client = reqwest::Client::new();
    let post = |token: &'static str, service: &'static str| {
        let body = traces(service, (0..50).map(|i| span("GET /", i)).collect()).encode_to_vec();
        client
            .post(format!("{http}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .bearer_auth(token)
            .body(body)
            .send()
    };
    // The bucket holds 200 items (2 s at 100/s): four requests of 50 pass, then the sender
    // waits. Sent back to back, well within the half second a fifth request would need.
    let mut accepted = 0;
    let mut limited = None;
    for _ in 0..8 {
        let response = post(FAST, "fast").await.unwrap();
        match response.status().as_u16() {
            200 => accepted += 1,
            429 => {
                limited = Some(response);
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let limited = limited.expect("the fast sender was never limited");
    assert!(
        (4..=5).contains(&accepted),
        "{accepted} requests passed first"
    );
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    let status = tonic_types::Status::decode(limited.bytes().await.unwrap()).unwrap();
    assert_eq!(status.code, tonic::Code::Unavailable as i32);
    // The other gateway has its own bucket.
    assert_eq!(post(SLOW, "slow").await.unwrap().status(), 200);

    // gRPC: UNAVAILABLE with RetryInfo.
    let mut grpc = TraceServiceClient::connect(meridian.grpc_url())
        .await
        .unwrap();
    let mut request = tonic::Request::new(traces("fast", vec![span("GET /", 99)]));
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {FAST}").parse().unwrap());
    let e = grpc.export(request).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e}");
    let wait = e
        .get_error_details()
        .retry_info()
        .and_then(|r| r.retry_delay);
    assert!(wait.is_some_and(|w| w > Duration::ZERO), "{wait:?}");

    // Exactly what was answered 200 is stored.
    let query =
        |service: &str| format!("SELECT count(*) AS n FROM spans WHERE service_name = '{service}'");
    let count = |service: &'static str| {
        let (client, api, q) = (client.clone(), meridian.api, query(service));
        async move {
            let body: serde_json::Value = client
                .post(format!("http://{api}/api/v1/sql"))
                .bearer_auth(SLOW)
                .json(&serde_json::json!({ "query": q }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["rows"][0]["n"].as_i64().unwrap()
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while count("fast").await < accepted * 50 || count("slow").await < 50 {
        assert!(
            std::time::Instant::now() < deadline,
            "not all accepted spans were stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count("fast").await, accepted * 50);
    assert_eq!(count("slow").await, 50);
    let limited_total = common::metric_sum(
        meridian.api,
        None,
        "meridian_collector_rate_limited_requests_total",
    )
    .await;
    assert_eq!(limited_total, 2.0);
    meridian.terminate();
}
