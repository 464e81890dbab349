//! OTLP conformance of the receivers: status codes and bodies for bad input, size limits,
//! compression, empty requests, partial success. Run against `meridian standalone`.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{count, post_protobuf, span, traces, wait_for_count, Meridian};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codec::CompressionEncoding;

fn standalone() -> (tempfile::TempDir, Meridian) {
    let dir = tempfile::tempdir().unwrap();
    let m = Meridian::start("standalone", dir.path(), &[]);
    (dir, m)
}

/// Scenario: undecodable protobuf and JSON bodies, and a text/plain body.
/// Guarantees: 400 with a google.rpc.Status in the request's encoding; 415 for the wrong type;
/// the process keeps serving.
#[tokio::test]
async fn bad_bodies_get_400_and_415_with_status_bodies() {
    let (_dir, m) = standalone();
    let base = m.http_url();
    let r = post_protobuf(&base, "/v1/traces", vec![0xff, 0xff, 0xff, 0x01]).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/x-protobuf");
    let status = tonic_types::Status::decode(r.bytes().await.unwrap()).unwrap();
    assert_eq!(status.code, 3);
    assert!(
        status.message.contains("invalid OTLP protobuf"),
        "{}",
        status.message
    );

    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/v1/metrics"))
        .header("content-type", "application/json")
        .body(r#"{"resourceMetrics": 5}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], 3);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("resourceMetrics"),
        "{body}"
    );

    let r = client
        .post(format!("{base}/v1/logs"))
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    // Still serving.
    let r = post_protobuf(
        &base,
        "/v1/traces",
        traces("after", vec![span("ok", 1)]).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status(), 200);
}

/// Scenario: empty protobuf body and `{}` JSON on all three paths.
/// Guarantees: success with an empty response.
#[tokio::test]
async fn empty_requests_succeed() {
    let (_dir, m) = standalone();
    let base = m.http_url();
    for path in ["/v1/traces", "/v1/metrics", "/v1/logs"] {
        let r = post_protobuf(&base, path, Vec::new()).await;
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.bytes().await.unwrap().is_empty());
        let r = reqwest::Client::new()
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.text().await.unwrap(), "{}");
    }
}

/// Scenario: a gzip bomb (1 GiB of zeros in about 1 MiB) against the 64 MiB limit.
/// Guarantees: 413, and the collector's memory stays far below the bomb's size.
#[tokio::test]
async fn gzip_bomb_gets_413_without_inflating() {
    let (_dir, m) = standalone();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![0u8; 64 << 20]).unwrap();
    let member = enc.finish().unwrap();
    // Concatenated gzip members decode as one stream: 16 × 64 MiB.
    let bomb: Vec<u8> = std::iter::repeat_n(member.as_slice(), 16)
        .flatten()
        .copied()
        .collect();
    assert!(bomb.len() < 2 << 20);
    let r = reqwest::Client::new()
        .post(format!("{}/v1/traces", m.http_url()))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let peak = m.peak_rss_kib();
    assert!(peak > 0 && peak < 400 * 1024, "peak RSS {peak} KiB");
}

/// Scenario: an uncompressed body just over the 64 MiB limit.
/// Guarantees: 413 with a google.rpc.Status body, like every other refusal.
#[tokio::test]
async fn oversized_raw_body_gets_413_with_status() {
    let (_dir, m) = standalone();
    let r = post_protobuf(&m.http_url(), "/v1/logs", vec![0u8; (64 << 20) + 1]).await;
    assert_eq!(r.status(), 413);
    let status = tonic_types::Status::decode(r.bytes().await.unwrap()).unwrap();
    assert_eq!(status.code, 8);
    assert!(status.message.contains("exceeds"), "{}", status.message);
}

/// Scenario: gzip-encoded OTLP/HTTP with a chunked body (as Traefik sends).
/// Guarantees: accepted and stored.
#[tokio::test]
async fn gzip_and_chunked_http_bodies_are_accepted() {
    let (_dir, m) = standalone();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&traces("gz", vec![span("a", 1), span("b", 2)]).encode_to_vec())
        .unwrap();
    let gz = enc.finish().unwrap();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        gz.chunks(7).map(|c| Ok(c.to_vec())).collect();
    let r = reqwest::Client::new()
        .post(format!("{}/v1/traces", m.http_url()))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let q = "SELECT count(*) AS n FROM spans WHERE service_name = 'gz'";
    assert_eq!(
        wait_for_count(m.api, q, 2, Duration::from_secs(10)).await,
        2
    );
}

/// Scenario: requests mixing valid spans and spans with bad ids, over HTTP (protobuf, JSON) and
/// gRPC (gzip and zstd compressed).
/// Guarantees: partial_success counts the bad ones with a message; the good ones are stored.
#[tokio::test]
async fn partial_success_counts_rejected_spans_and_keeps_the_rest() {
    let (_dir, m) = standalone();
    let mut bad = span("bad", 100);
    bad.trace_id.truncate(5);
    let request = |service: &str| {
        traces(
            service,
            vec![span("good-1", 1), bad.clone(), span("good-2", 2)],
        )
    };

    let r = post_protobuf(
        &m.http_url(),
        "/v1/traces",
        request("http-pb").encode_to_vec(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let response = ExportTraceServiceResponse::decode(r.bytes().await.unwrap()).unwrap();
    let partial = response.partial_success.expect("partial_success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("trace_id must be 16 bytes"),
        "{}",
        partial.error_message
    );

    let json = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"http-json"}}]},
        "scopeSpans":[{"spans":[
          {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"good","startTimeUnixNano":"1"},
          {"traceId":"5b8e","spanId":"eee19b7ec3c1b174","name":"bad"}]}]}]}"#;
    let r = reqwest::Client::new()
        .post(format!("{}/v1/traces", m.http_url()))
        .header("content-type", "application/json")
        .body(json)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["partialSuccess"]["rejectedSpans"], "1");

    for encoding in [CompressionEncoding::Gzip, CompressionEncoding::Zstd] {
        let service = format!("grpc-{encoding:?}");
        let mut client = TraceServiceClient::connect(m.grpc_url())
            .await
            .unwrap()
            .send_compressed(encoding);
        let response = client.export(request(&service)).await.unwrap().into_inner();
        assert_eq!(response.partial_success.map(|p| p.rejected_spans), Some(1));
    }

    for service in ["http-pb", "grpc-Gzip", "grpc-Zstd"] {
        let q = format!("SELECT count(*) AS n FROM spans WHERE service_name = '{service}'");
        assert_eq!(
            wait_for_count(m.api, &q, 2, Duration::from_secs(10)).await,
            2,
            "{service}"
        );
    }
    assert_eq!(
        count(
            m.api,
            "SELECT count(*) AS n FROM spans WHERE service_name = 'http-json'"
        )
        .await,
        1
    );
    assert_eq!(
        count(m.api, "SELECT count(*) AS n FROM spans WHERE name = 'bad'").await,
        0
    );
}

/// Scenario: SQL that is invalid, or not read-only.
/// Guarantees: 400 with the planner's message; nothing is created or written.
#[tokio::test]
async fn sql_errors_and_read_only_enforcement() {
    let (_dir, m) = standalone();
    let client = reqwest::Client::new();
    let url = format!("http://{}/api/v1/sql", m.api);
    for (query, expect) in [
        ("SELEC 1", "expected"),
        ("SELECT nope FROM spans", "nope"),
        ("CREATE TABLE t AS SELECT 1", "DDL"),
        ("INSERT INTO spans SELECT * FROM spans", "DML"),
        ("COPY (SELECT 1) TO '/tmp/x.csv'", "DML"),
        (
            "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
            "DDL",
        ),
        ("SELECT * FROM read_parquet('/etc/passwd')", "read_parquet"),
    ] {
        let r = client
            .post(&url)
            .json(&serde_json::json!({ "query": query }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{query}");
        let body: serde_json::Value = r.json().await.unwrap();
        let message = body["error"].as_str().unwrap_or_default();
        assert!(
            message.to_lowercase().contains(&expect.to_lowercase()),
            "{query}: {message}"
        );
    }
    // Formats: CSV with a header, Arrow IPC stream.
    let r = client
        .post(&url)
        .header("accept", "text/csv")
        .json(&serde_json::json!({ "query": "SELECT 1 AS a, 'x' AS b" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "a,b\n1,x\n");
    let r = client
        .post(&url)
        .header("accept", "application/vnd.apache.arrow.stream")
        .json(&serde_json::json!({ "query": "SELECT 42 AS answer" }))
        .send()
        .await
        .unwrap();
    let bytes = r.bytes().await.unwrap();
    let batches: Vec<_> = arrow::ipc::reader::StreamReader::try_new(bytes.as_ref(), None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(batches[0].num_rows(), 1);
    assert_eq!(batches[0].schema().field(0).name(), "answer");
}

/// Scenario: `SELECT * ... LIMIT 0` on each table.
/// Guarantees: the columns docs/schema.md documents, in order.
#[tokio::test]
async fn schema_doc_matches_the_tables() {
    let (_dir, m) = standalone();
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/schema.md")).unwrap();
    for table in ["spans", "metrics", "logs", "red", "anomalies", "forecasts"] {
        let r = reqwest::Client::new()
            .post(format!("http://{}/api/v1/sql", m.api))
            .json(&serde_json::json!({ "query": format!("SELECT * FROM {table} LIMIT 0") }))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = r.json().await.unwrap();
        let columns: Vec<String> = body["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect();
        let section = doc
            .split(&format!("## `{table}`"))
            .nth(1)
            .unwrap_or_else(|| panic!("no section for {table}"));
        let section = section.split("\n## ").next().unwrap();
        let documented: Vec<String> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .map(str::to_owned)
            .collect();
        assert_eq!(
            columns, documented,
            "docs/schema.md section `{table}` is out of date"
        );
    }
}
