//! Shared harness of the end-to-end tests: start `meridian` processes on free ports, query SQL.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod closed_loop;
pub mod fleet;
pub mod kafka;
pub mod pgwire;
#[path = "../../analyzer/tests/common/s3.rs"]
pub mod s3;

use serde_json::Value;

/// A running `meridian` process; killed when dropped.
pub struct Meridian {
    pub child: Child,
    /// OTLP/gRPC address (collector, standalone).
    pub grpc: Option<SocketAddr>,
    /// OTLP/HTTP address (collector, standalone).
    pub http: Option<SocketAddr>,
    /// HTTP API address (SQL on analyzer and standalone; health on collector).
    pub api: SocketAddr,
    /// PostgreSQL wire address (analyzer, standalone).
    pub pg: Option<SocketAddr>,
}

/// The address after `label` in the banner line, e.g. `OTLP gRPC 127.0.0.1:1234`.
fn addr_after(line: &str, label: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(label)? + label.len()..];
    let token = rest.split_whitespace().next()?;
    let token = token.trim_start_matches("http://");
    let token = token.split('/').next()?;
    token.parse().ok()
}

impl Meridian {
    /// Starts `meridian <mode> <args>` with loopback ports chosen by the OS, waits for its banner.
    pub fn start(mode: &str, data_dir: &Path, args: &[&str]) -> Meridian {
        Self::start_on(mode, data_dir, "127.0.0.1:0", args)
    }

    /// As [`Meridian::start`], with the HTTP API on `http_addr`.
    pub fn start_on(mode: &str, data_dir: &Path, http_addr: &str, args: &[&str]) -> Meridian {
        let mut command = Command::new(env!("CARGO_BIN_EXE_meridian"));
        command
            .arg(mode)
            .arg("--data-dir")
            .arg(data_dir)
            .args(loopback_ports(http_addr))
            .args(args)
            .env("MERIDIAN_LOG", "warn")
            // Only what a test passes: never a broker or config from the test's environment.
            .env_remove("MERIDIAN_KAFKA_BROKERS")
            .env_remove("MERIDIAN_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("spawning meridian");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).expect("reading the banner");
        assert!(line.starts_with("meridian"), "unexpected banner: {line:?}");
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in reader.lines() {});
        let api = [
            "SQL http://",
            "SQL https://",
            "health/metrics http://",
            "health/metrics https://",
        ]
        .iter()
        .find_map(|before| addr_after(&line, before))
        .unwrap_or_else(|| panic!("no API address in {line:?}"));
        Meridian {
            child,
            grpc: addr_after(&line, "OTLP gRPC "),
            http: addr_after(&line, "OTLP HTTP "),
            pg: addr_after(&line, "PostgreSQL "),
            api,
        }
    }

    /// `http://` URL of the OTLP/gRPC receiver.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc.expect("no gRPC receiver"))
    }

    /// `http://` base URL of the OTLP/HTTP receiver.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http.expect("no HTTP receiver"))
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        // systemd's default stop timeout. The shutdown flush sorts and writes every hot row,
        // which in these unoptimised test builds takes tens of seconds for the demo's history.
        let started = Instant::now();
        let deadline = started + Duration::from_secs(90);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "meridian exited with {status}");
                eprintln!("meridian stopped {:?} after SIGTERM", started.elapsed());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "meridian did not stop within 90 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process with SIGKILL (no shutdown work at all) and waits for it.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The value of an unlabelled metric on `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("http://{}/metrics", self.api))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
    }

    /// Peak resident memory of the process in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Meridian {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sum of every sample on `api`'s `/metrics` whose line starts with `prefix` (a name, or a
/// name with some labels), fetched with `token` when one is given.
pub async fn metric_sum(api: SocketAddr, token: Option<&str>, prefix: &str) -> f64 {
    let mut request = reqwest::Client::new().get(format!("http://{api}/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let text = request
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Runs SQL against an analyzer; returns the `rows` array (panics on an error response).
pub async fn sql(api: SocketAddr, query: &str) -> Vec<Value> {
    let response = reqwest::Client::new()
        .post(format!("http://{api}/api/v1/sql"))
        .json(&serde_json::json!({ "query": query }))
        .send()
        .await
        .expect("SQL request");
    let status = response.status();
    let body: Value = response.json().await.expect("SQL response is JSON");
    assert!(status.is_success(), "SQL {query:?} failed: {status} {body}");
    body["rows"].as_array().cloned().unwrap_or_default()
}

/// The single number a `SELECT count(*) AS n ...` query returns.
pub async fn count(api: SocketAddr, query: &str) -> i64 {
    sql(api, query)
        .await
        .first()
        .and_then(|r| r["n"].as_i64())
        .unwrap_or(0)
}

/// Polls `query` until its count reaches `expected` (or fails after `timeout` with the last count).
pub async fn wait_for_count(api: SocketAddr, query: &str, expected: i64, timeout: Duration) -> i64 {
    let deadline = Instant::now() + timeout;
    loop {
        let n = count(api, query).await;
        if n >= expected || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A loopback port that is free now and outside the kernel's ephemeral range (32768+), so no
/// later bind to port 0 (by any process of the test) can take it before its owner starts.
pub fn reserved_port() -> u16 {
    loop {
        let port = rand::random_range(20_000..32_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Flags that put every listener of a Meridian process on a free loopback port, the HTTP API
/// on `http_addr`.
pub fn loopback_ports(http_addr: &str) -> [&str; 8] {
    [
        "--otlp-grpc-addr",
        "127.0.0.1:0",
        "--otlp-http-addr",
        "127.0.0.1:0",
        "--http-addr",
        http_addr,
        "--pg-addr",
        "127.0.0.1:0",
    ]
}

// Each test binary uses some of them.
#[allow(unused_imports)]
pub use meridian_collector::otlp::builders::{kv, span, traces};

/// POSTs a protobuf-encoded request to an OTLP/HTTP path.
pub async fn post_protobuf(base: &str, path: &str, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .expect("OTLP/HTTP request")
}

/// A child process (a gateway) killed when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the upstream the gateways route to: `/api/items/{id}` answers 200, `/api/fail` 503.
/// Returns its port.
pub async fn upstream() -> u16 {
    use axum::http::StatusCode;
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the upstream");
    let port = listener.local_addr().expect("upstream address").port();
    let app = axum::Router::new()
        .route("/api/items/{id}", get(|| async { "ok" }))
        .route(
            "/api/fail",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down") }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// The lines a child writes to `stdout`, collected as they come by a reader thread.
#[allow(dead_code)]
pub fn collect_lines(
    stdout: std::process::ChildStdout,
) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    let lines: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let sink = std::sync::Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}
