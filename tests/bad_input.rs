//! The bad-input matrix, against one `meridian standalone`: every kind of hostile or broken
//! request not already covered by `tests/conformance.rs` gets its protocol's proper error (or
//! is stored, where the input is legal), and afterwards the process still serves and every
//! span accepted before is still there.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{count, post_protobuf, span, traces, wait_for_count, Meridian};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValueKind;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue};
use prost::Message;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// An AnyValue nested `depth` arrays deep.
fn nested(depth: usize) -> AnyValue {
    let mut value = AnyValue {
        value: Some(AnyValueKind::StringValue("leaf".into())),
    };
    for _ in 0..depth {
        value = AnyValue {
            value: Some(AnyValueKind::ArrayValue(ArrayValue {
                values: vec![value],
            })),
        };
    }
    value
}

fn with_attribute(service: &str, key: &str, value: AnyValue) -> Vec<u8> {
    let mut s = span("GET /", 1);
    s.attributes.push(KeyValue {
        key: key.into(),
        value: Some(value),
        ..KeyValue::default()
    });
    traces(service, vec![s]).encode_to_vec()
}

async fn status_of(response: reqwest::Response) -> (u16, i32) {
    let http = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    let code = tonic_types::Status::decode(body).map_or(-1, |s| s.code);
    (http, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_proper_errors_and_the_process_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("meridian.toml");
    // A small query memory budget, so the memory-hungry query fails fast instead of swapping.
    std::fs::write(&config, "[analyzer.query]\nmemory_limit_bytes = 67108864\n").unwrap();
    let m = Meridian::start(
        "standalone",
        dir.path(),
        &["--config", config.to_str().unwrap()],
    );
    let base = m.http_url();
    let client = reqwest::Client::new();

    // Accepted before anything bad arrives; must survive all of it.
    let before = traces("before", (0..20).map(|i| span("GET /", i)).collect()).encode_to_vec();
    assert_eq!(
        post_protobuf(&base, "/v1/traces", before).await.status(),
        200
    );
    let q = "SELECT count(*) AS n FROM spans WHERE service_name = 'before'";
    assert_eq!(
        wait_for_count(m.api, q, 20, Duration::from_secs(20)).await,
        20
    );

    // Truncated protobuf: 400 INVALID_ARGUMENT.
    let whole = traces("truncated", vec![span("GET /", 1)]).encode_to_vec();
    let r = post_protobuf(&base, "/v1/traces", whole[..whole.len() / 2].to_vec()).await;
    assert_eq!(status_of(r).await, (400, 3));

    // Nesting deeper than the decoder's recursion limit: 400 over protobuf and JSON.
    let deep = with_attribute("deep", "deep", nested(500));
    let r = post_protobuf(&base, "/v1/traces", deep).await;
    assert_eq!(status_of(r).await, (400, 3));
    let mut json = String::from(r#"{"stringValue":"leaf"}"#);
    for _ in 0..500 {
        json = format!(r#"{{"arrayValue":{{"values":[{json}]}}}}"#);
    }
    let body = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"x","attributes":[{{"key":"deep","value":{json}}}]}}]}}]}}]}}"#
    );
    let r = client
        .post(format!("{base}/v1/traces"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Nesting within the limit is legal OTLP and is stored.
    let shallow = with_attribute("shallow", "nested", nested(20));
    assert_eq!(
        post_protobuf(&base, "/v1/traces", shallow).await.status(),
        200
    );

    // Invalid UTF-8 in a string field: 400 (protobuf), 400 (JSON).
    let mut bad = traces("utf8", vec![span("NAME_TO_BREAK", 1)]).encode_to_vec();
    let at = bad.windows(13).position(|w| w == b"NAME_TO_BREAK").unwrap();
    bad[at..at + 4].copy_from_slice(&[0xff, 0xfe, 0xfd, 0xfc]);
    let r = post_protobuf(&base, "/v1/traces", bad).await;
    assert_eq!(status_of(r).await, (400, 3));
    let r = client
        .post(format!("{base}/v1/logs"))
        .header("content-type", "application/json")
        .body(b"{\"resourceLogs\":[{\"scopeLogs\":[{\"logRecords\":[{\"body\":{\"stringValue\":\"\xff\xfe\"}}]}]}]}".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // A huge attribute count (100,000 on one span, ~3 MB): legal, stored, process fine.
    let mut wide = span("GET /", 7);
    wide.attributes
        .extend((0..100_000).map(|i| common::kv(&format!("k{i}"), "v")));
    let r = post_protobuf(
        &base,
        "/v1/traces",
        traces("wide", vec![wide]).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status(), 200);

    // Timestamps at the extremes: stored or rejected as partial success, never a 5xx.
    let mut extreme = span("GET /", 8);
    extreme.start_time_unix_nano = u64::MAX;
    extreme.end_time_unix_nano = 0;
    let mut zero = span("GET /", 9);
    zero.start_time_unix_nano = 0;
    zero.end_time_unix_nano = u64::MAX;
    let r = post_protobuf(
        &base,
        "/v1/traces",
        traces("extreme", vec![extreme, zero]).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // A gzip bomb over gRPC (256 MiB of zeros in one ~250 KB message): the decoder stops at
    // max_request_bytes (64 MiB) with RESOURCE_EXHAUSTED, without inflating it all. (One gzip
    // member: gRPC's decoder reads only the first, so concatenated members are no bomb there.)
    let bomb = gzip(&vec![0u8; 256 << 20]);
    let mut frame = vec![1u8];
    frame.extend_from_slice(&(bomb.len() as u32).to_be_bytes());
    frame.extend_from_slice(&bomb);
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = h2
        .post(format!(
            "{}/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            m.grpc_url()
        ))
        .header("content-type", "application/grpc")
        .header("grpc-encoding", "gzip")
        .header("te", "trailers")
        .body(frame)
        .send()
        .await
        .unwrap();
    let grpc_status = r
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(grpc_status.as_deref(), Some("8"), "{:?}", r.headers());
    let peak = m.peak_rss_kib();
    assert!(peak < 600 * 1024, "peak RSS {peak} KiB after the gRPC bomb");

    // A gRPC message that is not an Export request is INVALID_ARGUMENT (not retryable, as
    // OTLP's failure table says), counted as malformed; a method the service lacks is
    // UNIMPLEMENTED.
    let grpc_status_of = |method: &'static str, message: &'static [u8]| {
        let h2 = h2.clone();
        let url = format!("{}/opentelemetry.proto.collector.{method}", m.grpc_url());
        async move {
            let mut frame = vec![0u8];
            frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
            frame.extend_from_slice(message);
            let r = h2
                .post(url)
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(frame)
                .send()
                .await
                .unwrap();
            let status = r.headers().get("grpc-status").cloned();
            let message = r.headers().get("grpc-message").cloned();
            (status.map(|v| v.to_str().unwrap().to_owned()), message)
        }
    };
    let (code, message) = grpc_status_of("trace.v1.TraceService/Export", &[0x0a, 0xff]).await;
    assert_eq!(code.as_deref(), Some("3"), "{message:?}");
    assert!(
        message.is_some_and(|m| m.to_str().unwrap().contains("invalid%20OTLP%20protobuf")),
        "the error says what is wrong"
    );
    let (code, _) = grpc_status_of("logs.v1.LogsService/Export", &[0x0a, 0xff]).await;
    assert_eq!(code.as_deref(), Some("3"));
    let (code, _) = grpc_status_of("trace.v1.TraceService/Import", &[]).await;
    assert_eq!(code.as_deref(), Some("12"));
    let metrics = reqwest::get(format!("http://{}/metrics", m.api))
        .await
        .unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.contains("malformed")
            && l.contains("signal=\"traces\"")
            && l.contains("protocol=\"grpc\"")
            && l.ends_with(" 1")),
        "the malformed gRPC request is counted"
    );

    // SQL: writing, reading files and exhausting memory each end in an error, not a crash.
    let sql = |query: &'static str| {
        let client = client.clone();
        let url = format!("http://{}/api/v1/sql", m.api);
        async move {
            let r = client
                .post(url)
                .json(&serde_json::json!({ "query": query }))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };
    for query in [
        "DROP TABLE spans",
        "DELETE FROM spans",
        "SET datafusion.execution.target_partitions = 1",
        "SELECT * FROM '/etc/passwd'",
        "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/'",
    ] {
        let (status, text) = sql(query).await;
        assert_eq!(status, 400, "{query}: {text}");
    }
    let (status, text) = sql(
        "SELECT count(DISTINCT concat(CAST(x AS VARCHAR), 'padding-to-use-memory')) AS n FROM generate_series(1, 50000000) t(x)",
    )
    .await;
    assert_eq!(status, 422, "{text}");
    assert!(text.to_lowercase().contains("memory"), "{text}");

    // Still serving, nothing lost.
    assert_eq!(
        client
            .get(format!("http://{}/healthz", m.api))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let after = traces("after", vec![span("GET /", 1)]).encode_to_vec();
    assert_eq!(
        post_protobuf(&base, "/v1/traces", after).await.status(),
        200
    );
    let q_after = "SELECT count(*) AS n FROM spans WHERE service_name = 'after'";
    assert_eq!(
        wait_for_count(m.api, q_after, 1, Duration::from_secs(20)).await,
        1
    );
    assert_eq!(count(m.api, q).await, 20);
    let q = "SELECT count(*) AS n FROM spans WHERE service_name IN ('shallow', 'wide')";
    assert_eq!(
        wait_for_count(m.api, q, 2, Duration::from_secs(20)).await,
        2
    );
    for service in ["truncated", "deep", "utf8"] {
        let q = format!("SELECT count(*) AS n FROM spans WHERE service_name = '{service}'");
        assert_eq!(count(m.api, &q).await, 0, "{service}");
    }
    m.terminate();
}
