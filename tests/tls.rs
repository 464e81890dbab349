//! TLS end to end, with certificates made by openssl: the real OpenTelemetry Rust exporter sends
//! over OTLP/gRPC with TLS, curl over OTLP/HTTPS and the analyzer's HTTPS API; a renewed
//! certificate is served without a restart; a collector forwards to an analyzer that requires
//! client certificates (mTLS), an agent follows it the same way, and a client without one is
//! turned away; the collector's own API is served over TLS.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Meridian;
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{SpanExporter, WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA `<ca>.pem`/`<ca>.key` in `dir`.
fn make_ca(dir: &Path, ca: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={ca}"),
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
        ],
    );
}

/// `<name>.pem`/`<name>.key` signed by `ca`, for 127.0.0.1 and localhost.
fn make_cert(dir: &Path, ca: &str, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    std::fs::write(
        dir.join(format!("{name}.ext")),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

fn path(dir: &Path, file: &str) -> String {
    dir.join(file).display().to_string()
}

/// `curl` with `args`; its exit status and what it printed.
fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl is installed");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn sql_over_https(
    api: std::net::SocketAddr,
    ca: &str,
    extra: &[&str],
    query: &str,
) -> (bool, String) {
    let body = serde_json::json!({ "query": query }).to_string();
    let url = format!("https://127.0.0.1:{}/api/v1/sql", api.port());
    let mut args = vec![
        "--cacert",
        ca,
        "-H",
        "content-type: application/json",
        "-d",
        &body,
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(&args)
}

fn wait_for_rows(api: std::net::SocketAddr, ca: &str, extra: &[&str], query: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, text) = sql_over_https(api, ca, extra, query);
        let got = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["rows"][0]["n"].as_i64());
        if ok && got == Some(n) {
            return;
        }
        assert!(Instant::now() < deadline, "{query}: {text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let file = dir.join("meridian.toml");
    std::fs::write(&file, text).unwrap();
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporters_and_curl_speak_tls_and_a_renewed_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d, "ca");
    make_cert(d, "ca", "server");
    let tls = format!(
        "cert_file = \"{}\"\nkey_file = \"{}\"\n",
        path(d, "server.pem"),
        path(d, "server.key")
    );
    let config = write_config(
        d,
        &format!("[collector.otlp.tls]\n{tls}[analyzer.tls]\n{tls}"),
    );
    let meridian = Meridian::start("standalone", d, &["--config", config.to_str().unwrap()]);
    let ca = path(d, "ca.pem");

    // The real exporter over gRPC with TLS, trusting only the test's CA.
    let grpc = format!("https://localhost:{}", meridian.grpc.unwrap().port());
    let ca_pem = std::fs::read_to_string(d.join("ca.pem")).unwrap();
    tokio::task::spawn_blocking(move || {
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(ca_pem))
            .domain_name("localhost");
        let exporter = SpanExporter::builder()
            .with_tonic()
            .with_endpoint(grpc)
            .with_tls_config(tls)
            .build()
            .unwrap();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name("over-tls").build())
            .build();
        let tracer = provider.tracer("tls-test");
        for i in 0..6 {
            tracer.start(format!("GET /{i}")).end();
        }
        provider.force_flush().unwrap();
        provider.shutdown().unwrap();
    })
    .await
    .unwrap();
    let api = meridian.api;
    wait_for_rows(
        api,
        &ca,
        &[],
        "SELECT count(*) AS n FROM spans WHERE service_name = 'over-tls'",
        6,
    );

    // curl over OTLP/HTTPS (JSON), and plain HTTP on the TLS port is not served.
    let http = meridian.http.unwrap().port();
    let body = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"curl-tls"}}]},"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"GET /","kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000100000000"}]}]}]}"#;
    let url = format!("https://127.0.0.1:{http}/v1/traces");
    let (ok, text) = curl(&[
        "--cacert",
        &ca,
        "-H",
        "content-type: application/json",
        "-d",
        body,
        "--fail",
        &url,
    ]);
    assert!(ok, "{text}");
    let (ok, _) = curl(&[
        "-H",
        "content-type: application/json",
        "-d",
        body,
        "--fail",
        &format!("http://127.0.0.1:{http}/v1/traces"),
    ]);
    assert!(!ok, "plain HTTP was served on the TLS port");
    wait_for_rows(
        api,
        &ca,
        &[],
        "SELECT count(*) AS n FROM spans WHERE service_name = 'curl-tls'",
        1,
    );

    // Renewal: a certificate from another CA replaces the files; new handshakes present it.
    make_ca(d, "ca2");
    make_cert(d, "ca2", "renewed");
    std::fs::copy(d.join("renewed.key"), d.join("server.key")).unwrap();
    std::fs::copy(d.join("renewed.pem"), d.join("server.pem")).unwrap();
    let ca2 = path(d, "ca2.pem");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sql_over_https(api, &ca2, &["--fail"], "SELECT 1 AS n").0 {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        !sql_over_https(api, &ca, &["--fail"], "SELECT 1 AS n").0,
        "the old certificate is still served"
    );
    meridian.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_forwards_over_mtls_and_a_client_without_a_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d, "ca");
    make_cert(d, "ca", "analyzer");
    make_cert(d, "ca", "collector");
    let analyzer_dir = d.join("analyzer");
    std::fs::create_dir_all(&analyzer_dir).unwrap();
    let config = write_config(
        &analyzer_dir,
        &format!(
            "[analyzer.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nclient_ca_file = \"{}\"\n",
            path(d, "analyzer.pem"),
            path(d, "analyzer.key"),
            path(d, "ca.pem")
        ),
    );
    let analyzer = Meridian::start(
        "analyzer",
        &analyzer_dir,
        &["--config", config.to_str().unwrap()],
    );
    let api = analyzer.api;
    let collector_dir = d.join("collector");
    std::fs::create_dir_all(&collector_dir).unwrap();
    let config = write_config(
        &collector_dir,
        &format!(
            "[collector]\nregion = \"eu-west-1\"\n[collector.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n[collector.network]\nurl = \"https://127.0.0.1:{}\"\n[collector.network.tls]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            path(d, "collector.pem"),
            path(d, "collector.key"),
            api.port(),
            path(d, "ca.pem"),
            path(d, "collector.pem"),
            path(d, "collector.key")
        ),
    );
    let collector = Meridian::start(
        "collector",
        &collector_dir,
        &["--config", config.to_str().unwrap()],
    );
    let spans = (0..9).map(|i| common::span("GET /", i)).collect();
    let body = prost::Message::encode_to_vec(&common::traces("over-mtls", spans));
    let response = common::post_protobuf(&collector.http_url(), "/v1/traces", body).await;
    assert_eq!(response.status(), 200);

    let ca = path(d, "ca.pem");
    // The collector's own API is served over TLS too, and not over plain HTTP.
    let health = format!("https://127.0.0.1:{}/healthz", collector.api.port());
    let (ok, text) = curl(&["--fail", "--cacert", &ca, &health]);
    assert!(ok, "collector API over TLS: {text}");
    let plain = format!("http://127.0.0.1:{}/healthz", collector.api.port());
    let (ok, text) = curl(&["--fail", &plain]);
    assert!(!ok, "collector API served plain HTTP: {text}");
    let client = [
        "--cert",
        &path(d, "collector.pem"),
        "--key",
        &path(d, "collector.key"),
    ];
    let query =
        "SELECT count(*) AS n FROM spans WHERE service_name = 'over-mtls' AND region = 'eu-west-1'";
    wait_for_rows(api, &ca, &client, query, 9);
    // Without a client certificate the handshake fails: no answer at all.
    let (ok, text) = sql_over_https(api, &ca, &[], "SELECT 1 AS n");
    assert!(!ok, "served without a client certificate: {text}");

    // An agent follows the same analyzer over mTLS and reports what it applied. The operators
    // pin both regions, so the routing has something to apply.
    let base = format!("https://127.0.0.1:{}", api.port());
    for region in ["eu-west-1", "us-east-1"] {
        let body = serde_json::json!({ "service": "*", "region": region, "weight": 100, "reason": "tls test" }).to_string();
        let url = format!("{base}/api/v1/routing/overrides");
        let mut args = vec![
            "--fail",
            "--cacert",
            &ca,
            "-H",
            "content-type: application/json",
            "-d",
            &body,
        ];
        args.extend_from_slice(&client);
        args.push(&url);
        let (ok, text) = curl(&args);
        assert!(ok, "override: {text}");
    }
    let agent_dir = d.join("agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let agent_config = |tls: &str| {
        format!(
            "[agent]\nid = \"edge-tls\"\nanalyzer = \"{base}\"\nresync = \"1s\"\n{tls}[agent.traefik]\nfile = \"{}\"\n[[agent.traefik.services]]\nname = \"global\"\nservice = \"*\"\n[agent.traefik.services.regions]\n\"eu-west-1\" = \"eu-west-1@file\"\n\"us-east-1\" = \"us-east-1@file\"\n",
            path(&agent_dir, "traefik.yaml")
        )
    };
    // Without [agent.tls] an https:// analyzer is a configuration error, said at start.
    let config = write_config(&agent_dir, &agent_config(""));
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["agent", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("ca_file"),
        "{stderr}"
    );
    let tls = format!(
        "[agent.tls]\nca_file = \"{ca}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        path(d, "collector.pem"),
        path(d, "collector.key")
    );
    let config = write_config(&agent_dir, &agent_config(&tls));
    let listen = format!("127.0.0.1:{}", common::free_port());
    let agent = Meridian::start_on(
        "agent",
        &agent_dir,
        &listen,
        &["--config", config.to_str().unwrap()],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut args = vec!["--cacert", ca.as_str()];
        args.extend_from_slice(&client);
        let url = format!("{base}/api/v1/routing");
        args.push(&url);
        let (ok, text) = curl(&args);
        if ok && text.contains("\"edge-tls\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent never reported: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        common::metric_sum(agent.api, None, "meridian_agent_stream_connected").await,
        1.0
    );
    agent.terminate();
    collector.terminate();
    analyzer.terminate();
}
