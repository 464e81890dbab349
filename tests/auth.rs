//! Authentication end to end (`[[auth.tokens]]`): the real OpenTelemetry Rust exporter sends
//! with and without its token over gRPC and HTTP; raw requests check each protocol's status and
//! error body; the analyzer's API enforces scopes; a collector forwards with its token and an
//! agent follows and reports with its; tokens rotate on SIGHUP without a restart, and nothing
//! accepted is lost while the collector's token is being replaced.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port, metric_sum, span, traces, Meridian};
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{
    Protocol, SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use prost::Message;
use serde_json::Value;

const GATEWAY: &str = "gw-0123456789abcdef";
const READER: &str = "rd-0123456789abcdef";
const OPERATOR: &str = "op-0123456789abcdef";
const COLLECTOR: &str = "co-0123456789abcdef";
const AGENT: &str = "ag-0123456789abcdef";

/// Writes each token to `dir/<name>.token` and a config with one `[[auth.tokens]]` per token.
fn auth_config(dir: &Path, tokens: &[(&str, &str, &str)], extra: &str) -> std::path::PathBuf {
    let mut text = String::from(extra);
    for (name, secret, scopes) in tokens {
        let file = dir.join(format!("{name}.token"));
        std::fs::write(&file, format!("{secret}\n")).unwrap();
        text.push_str(&format!(
            "\n[[auth.tokens]]\nname = \"{name}\"\ntoken_file = \"{}\"\nscopes = [{scopes}]\n",
            file.display()
        ));
    }
    let path = dir.join("meridian.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn standard_tokens() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("gateways", GATEWAY, "\"ingest\""),
        ("grafana", READER, "\"read\""),
        ("operators", OPERATOR, "\"admin\""),
        ("collectors", COLLECTOR, "\"ingest\""),
        ("agents", AGENT, "\"read\", \"ingest\""),
    ]
}

/// SQL with a token; the `rows`, or the HTTP status when it failed.
async fn sql_as(api: std::net::SocketAddr, token: &str, query: &str) -> Result<Vec<Value>, u16> {
    let response = reqwest::Client::new()
        .post(format!("http://{api}/api/v1/sql"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "query": query }))
        .send()
        .await
        .expect("SQL request");
    let status = response.status();
    if !status.is_success() {
        return Err(status.as_u16());
    }
    let body: Value = response.json().await.unwrap();
    Ok(body["rows"].as_array().cloned().unwrap_or_default())
}

async fn spans_of(api: std::net::SocketAddr, service: &str) -> i64 {
    let query = format!("SELECT count(*) AS n FROM spans WHERE service_name = '{service}'");
    sql_as(api, READER, &query).await.unwrap()[0]["n"]
        .as_i64()
        .unwrap()
}

async fn wait_for_spans(api: std::net::SocketAddr, service: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = spans_of(api, service).await;
        if got >= n {
            assert_eq!(got, n, "{service}: more spans than sent");
            return;
        }
        assert!(Instant::now() < deadline, "{service}: {got} of {n} spans");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `spans` spans as `service` through the real exporter, with `headers` on every request.
fn export(service: &str, grpc: Option<&str>, http: Option<(&str, Protocol)>, header: &str) {
    let exporter = match (grpc, http) {
        (Some(url), _) => {
            let mut metadata = tonic::metadata::MetadataMap::new();
            metadata.insert("authorization", header.parse().unwrap());
            SpanExporter::builder()
                .with_tonic()
                .with_endpoint(url)
                .with_metadata(metadata)
                .build()
                .unwrap()
        }
        (None, Some((url, protocol))) => SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .with_endpoint(format!("{url}/v1/traces"))
            .with_headers(HashMap::from([(
                "authorization".to_owned(),
                header.to_owned(),
            )]))
            .build()
            .unwrap(),
        (None, None) => unreachable!(),
    };
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build();
    let tracer = provider.tracer("auth-test");
    for i in 0..5 {
        tracer.start(format!("GET /{i}")).end();
    }
    // Export errors (a refused token) are the exporter's to log, not to return here.
    let _ = provider.force_flush();
    let _ = provider.shutdown();
}

fn basic(secret: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("gateway:{secret}"));
    format!("Basic {encoded}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_receivers_take_only_ingest_tokens_from_the_real_exporter() {
    let dir = tempfile::tempdir().unwrap();
    let config = auth_config(dir.path(), &standard_tokens(), "");
    let meridian = Meridian::start(
        "standalone",
        dir.path(),
        &["--config", config.to_str().unwrap()],
    );
    let (grpc, http, api) = (meridian.grpc_url(), meridian.http_url(), meridian.api);

    // The gateway's exporter with its token: Bearer over gRPC, Basic over HTTP/protobuf, Bearer
    // over HTTP/JSON.
    let bearer = format!("Bearer {GATEWAY}");
    let g = grpc.clone();
    let h = http.clone();
    let b = bearer.clone();
    tokio::task::spawn_blocking(move || {
        export("authed-grpc", Some(&g), None, &b);
        export(
            "authed-proto",
            None,
            Some((&h, Protocol::HttpBinary)),
            &basic(GATEWAY),
        );
        export("authed-json", None, Some((&h, Protocol::HttpJson)), &b);
        // Wrong token, and a valid token without the ingest scope.
        export(
            "intruder-grpc",
            Some(&g),
            None,
            "Bearer not-a-real-token-at-all",
        );
        export(
            "intruder-http",
            None,
            Some((&h, Protocol::HttpBinary)),
            &format!("Bearer {READER}"),
        );
    })
    .await
    .unwrap();
    for service in ["authed-grpc", "authed-proto", "authed-json"] {
        wait_for_spans(api, service, 5).await;
    }
    assert_eq!(spans_of(api, "intruder-grpc").await, 0);
    assert_eq!(spans_of(api, "intruder-http").await, 0);
    let denied = "meridian_auth_denied_total{listener=\"otlp_grpc\",reason=\"invalid\"}";
    assert!(metric_sum(api, None, denied).await >= 1.0);
    let denied = "meridian_auth_denied_total{listener=\"otlp_http\",reason=\"forbidden\"}";
    assert!(metric_sum(api, None, denied).await >= 1.0);

    // OTLP/HTTP: 401 with a challenge and a google.rpc.Status body in the request's encoding;
    // 403 for a token without the scope.
    let body = traces("raw-http", vec![span("refused", 1)]).encode_to_vec();
    let client = reqwest::Client::new();
    let post = |token: Option<&str>, content_type: &str, body: Vec<u8>| {
        let mut request = client
            .post(format!("{http}/v1/traces"))
            .header("content-type", content_type)
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let response = post(None, "application/x-protobuf", body.clone())
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="meridian""#
    );
    let status = tonic_types::Status::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(status.code, tonic::Code::Unauthenticated as i32);
    let response = post(Some(READER), "application/json", b"{}".to_vec())
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["code"], tonic::Code::PermissionDenied as i32);
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains("`grafana` lacks the `ingest` scope"),
        "{json}"
    );
    // Authentication comes before the content type is looked at.
    let response = post(None, "text/plain", b"x".to_vec()).await.unwrap();
    assert_eq!(response.status(), 401);
    let response = post(Some(GATEWAY), "application/x-protobuf", body)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // OTLP/gRPC: UNAUTHENTICATED, PERMISSION_DENIED, then OK.
    let mut client = TraceServiceClient::connect(grpc.clone()).await.unwrap();
    let request = |token: Option<&str>| {
        let mut request = tonic::Request::new(traces("raw-grpc", vec![span("grpc-raw", 2)]));
        if let Some(token) = token {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        request
    };
    let e = client.export(request(None)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e}");
    let e = client.export(request(Some(OPERATOR))).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");
    client.export(request(Some(GATEWAY))).await.unwrap();
    meridian.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_analyzer_api_enforces_scopes_and_reloads_tokens_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    // A reload interval far beyond the test: only SIGHUP can make it see the new file.
    let config = auth_config(
        dir.path(),
        &standard_tokens(),
        "[auth]\nprotect_metrics = true\nreload_interval = \"1h\"\n",
    );
    let meridian = Meridian::start(
        "analyzer",
        dir.path(),
        &["--config", config.to_str().unwrap()],
    );
    let api = meridian.api;
    let client = reqwest::Client::new();
    let status = |method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>| {
        let mut request = client.request(method, format!("http://{api}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    use reqwest::Method;
    let sql = Some(serde_json::json!({ "query": "SELECT 1 AS one" }));
    // Probes and the console's page are open; metrics are protected here.
    assert_eq!(status(Method::GET, "/healthz", None, None).await, 200);
    assert_eq!(status(Method::GET, "/readyz", None, None).await, 200);
    assert_eq!(status(Method::GET, "/", None, None).await, 200);
    assert_eq!(
        status(Method::GET, "/console/console.js", None, None).await,
        200
    );
    assert_eq!(status(Method::GET, "/metrics", None, None).await, 401);
    assert_eq!(
        status(Method::GET, "/metrics", Some(READER), None).await,
        200
    );
    // Reading.
    assert_eq!(
        status(Method::POST, "/api/v1/sql", None, sql.clone()).await,
        401
    );
    assert_eq!(
        status(
            Method::POST,
            "/api/v1/sql",
            Some("wrong-wrong-wrong-wrong"),
            sql.clone()
        )
        .await,
        401
    );
    assert_eq!(
        status(Method::POST, "/api/v1/sql", Some(GATEWAY), sql.clone()).await,
        403
    );
    assert_eq!(
        status(Method::POST, "/api/v1/sql", Some(READER), sql.clone()).await,
        200
    );
    assert_eq!(
        status(Method::POST, "/api/v1/sql", Some(OPERATOR), sql.clone()).await,
        200
    );
    for path in [
        "/api/v1/routing",
        "/api/v1/recommendations",
        "/api/v1/alerts",
    ] {
        assert_eq!(status(Method::GET, path, None, None).await, 401, "{path}");
        assert_eq!(
            status(Method::GET, path, Some(READER), None).await,
            200,
            "{path}"
        );
    }
    // Changing state needs admin.
    let set = Some(
        serde_json::json!({ "service": "*", "region": "eu-west-1", "weight": 50, "reason": "test" }),
    );
    let overrides = "/api/v1/routing/overrides";
    assert_eq!(
        status(Method::POST, overrides, Some(READER), set.clone()).await,
        403
    );
    assert_eq!(
        status(Method::POST, overrides, Some(GATEWAY), set.clone()).await,
        403
    );
    let by_admin = status(Method::POST, overrides, Some(OPERATOR), set.clone()).await;
    assert!(by_admin < 300, "admin override answered {by_admin}");
    let remove = "/api/v1/routing/overrides/*/eu-west-1";
    assert_eq!(
        status(Method::DELETE, remove, Some(READER), None).await,
        403
    );
    // Ingest (collectors) and agents' reports need ingest.
    assert_eq!(
        status(Method::POST, "/api/v1/ingest/traces", Some(READER), None).await,
        403
    );
    let report = Some(
        serde_json::json!({ "version": 0, "applied": {}, "gateway": "traefik", "error": null }),
    );
    assert_eq!(
        status(
            Method::POST,
            "/api/v1/agents/a1/status",
            Some(READER),
            report.clone()
        )
        .await,
        403
    );
    assert_eq!(
        status(
            Method::POST,
            "/api/v1/agents/a1/status",
            Some(AGENT),
            report
        )
        .await,
        204
    );

    // Rotation: the file changes; only after SIGHUP is the new secret in and the old one out.
    let rotated = "rd-rotated-0123456789";
    std::fs::write(dir.path().join("grafana.token"), rotated).unwrap();
    assert_eq!(
        status(Method::POST, "/api/v1/sql", Some(READER), sql.clone()).await,
        200
    );
    let pid = meridian.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(Method::POST, "/api/v1/sql", Some(rotated), sql.clone()).await != 200 {
        assert!(
            Instant::now() < deadline,
            "the rotated token was not taken after SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status(Method::POST, "/api/v1/sql", Some(READER), sql).await,
        401
    );
    meridian.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_and_an_agent_send_their_tokens_and_nothing_is_lost_while_one_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer_dir = dir.path().join("analyzer");
    std::fs::create_dir_all(&analyzer_dir).unwrap();
    let config = auth_config(
        &analyzer_dir,
        &standard_tokens(),
        "[auth]\nreload_interval = \"200ms\"\n",
    );
    let analyzer = Meridian::start(
        "analyzer",
        &analyzer_dir,
        &["--config", config.to_str().unwrap()],
    );
    let api = analyzer.api;

    // The collector: gateways need their token; it sends the collectors' token to the analyzer.
    let collector_dir = dir.path().join("collector");
    std::fs::create_dir_all(&collector_dir).unwrap();
    let sent_token = collector_dir.join("to-analyzer.token");
    std::fs::write(&sent_token, COLLECTOR).unwrap();
    let collector_config = auth_config(
        &collector_dir,
        &[("gateways", GATEWAY, "\"ingest\"")],
        &format!(
            "[collector]\nregion = \"eu-west-1\"\n[collector.network]\nurl = \"http://{api}\"\ntoken_file = \"{}\"\n[collector.forward]\nretry_initial_backoff = \"100ms\"\nretry_max_backoff = \"200ms\"\n",
            sent_token.display()
        ),
    );
    let collector = Meridian::start(
        "collector",
        &collector_dir,
        &["--config", collector_config.to_str().unwrap()],
    );
    let http = collector.http_url();
    let send = |service: &'static str, n: usize| {
        let http = http.clone();
        async move {
            let spans = (0..n as u64).map(|i| span("GET /", i)).collect();
            let response = reqwest::Client::new()
                .post(format!("{http}/v1/traces"))
                .header("content-type", "application/x-protobuf")
                .bearer_auth(GATEWAY)
                .body(traces(service, spans).encode_to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        }
    };
    send("before-rotation", 10).await;
    wait_for_spans(api, "before-rotation", 10).await;

    // The analyzer's side rotates first: the collector's deliveries are refused (401) and the
    // batches wait in its disk buffer; the gateway still gets 200.
    std::fs::write(
        analyzer_dir.join("collectors.token"),
        "co-rotated-0123456789",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let denied = "meridian_auth_denied_total{listener=\"api\",reason=\"invalid\"}";
    send("during-rotation", 7).await;
    while metric_sum(api, None, denied).await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the old collector token was never refused"
        );
        send("during-rotation", 7).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sent = (spans_of(api, "during-rotation").await / 7 + 1) * 7;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored_while_refused = spans_of(api, "during-rotation").await;
    assert!(
        stored_while_refused < sent,
        "nothing was held back while the token was refused"
    );
    // Then the collector's token file: everything held back arrives, exactly once.
    std::fs::write(&sent_token, "co-rotated-0123456789").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = spans_of(api, "during-rotation").await;
        // Each send was answered 200, so each is owed; the loop above may have sent more.
        if got > 0 && got % 7 == 0 && got >= sent {
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(
                spans_of(api, "during-rotation").await,
                got,
                "duplicates arrived"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{got} of at least {sent} spans after the new token"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        metric_sum(collector.api, None, "meridian_collector_lost_rows_total").await,
        0.0,
        "the collector counted rows as lost"
    );

    // An agent with its token follows the routing and reports; one with a wrong token cannot.
    // The operators pin both regions of every service, so the routing has something to apply.
    for region in ["eu-west-1", "us-east-1"] {
        let response = reqwest::Client::new()
            .post(format!("http://{api}/api/v1/routing/overrides"))
            .bearer_auth(OPERATOR)
            .json(&serde_json::json!({ "service": "*", "region": region, "weight": 100, "reason": "auth test" }))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{}",
            response.text().await.unwrap()
        );
    }
    let agent = |id: &str, token: &str| {
        let token_file = dir.path().join(format!("{id}.token"));
        std::fs::write(&token_file, token).unwrap();
        let path = dir.path().join(format!("{id}.toml"));
        std::fs::write(
            &path,
            format!(
                "[agent]\nid = \"{id}\"\nanalyzer = \"http://{api}\"\nresync = \"1s\"\ntoken_file = \"{}\"\n[agent.traefik]\nfile = \"{}\"\n[[agent.traefik.services]]\nname = \"global\"\nservice = \"*\"\n[agent.traefik.services.regions]\n\"eu-west-1\" = \"eu-west-1@file\"\n\"us-east-1\" = \"us-east-1@file\"\n",
                token_file.display(),
                dir.path().join(format!("{id}-traefik.yaml")).display()
            ),
        )
        .unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        Meridian::start_on(
            "agent",
            dir.path(),
            &listen,
            &["--config", path.to_str().unwrap()],
        )
    };
    let good = agent("edge-good", AGENT);
    let bad = agent("edge-bad", "ag-wrong-0123456789");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let routing = reqwest::Client::new()
            .get(format!("http://{api}/api/v1/routing"))
            .bearer_auth(READER)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        let ids: Vec<&str> = routing["agents"]
            .as_array()
            .map(|a| a.iter().filter_map(|a| a["id"].as_str()).collect())
            .unwrap_or_default();
        if ids.contains(&"edge-good") {
            assert!(!ids.contains(&"edge-bad"), "{routing}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent never reported: {routing}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        metric_sum(good.api, None, "meridian_agent_analyzer_up").await,
        1.0
    );
    assert_eq!(
        metric_sum(good.api, None, "meridian_agent_stream_connected").await,
        1.0
    );
    assert_eq!(
        metric_sum(bad.api, None, "meridian_agent_analyzer_up").await,
        0.0
    );
    good.terminate();
    bad.terminate();
    collector.terminate();
    analyzer.terminate();
}
