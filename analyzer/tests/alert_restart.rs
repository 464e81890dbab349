//! Alert state across analyzer restarts: a firing alert keeps its start, its webhook group is
//! not notified again, and an alert whose rule was removed while the analyzer was down
//! resolves — and the webhook hears that.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use axum::{Json, Router};
use meridian_analyzer::alert::config::{SqlRuleConfig, WebhookConfig};
use meridian_analyzer::AnalyzerConfig;
use serde_json::Value;

/// A webhook receiver keeping every payload it got.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&got);
    let app = Router::new().route(
        "/hook",
        post(move |Json(body): Json<Value>| {
            let keep = Arc::clone(&keep);
            async move {
                keep.lock().unwrap().push(body);
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

fn config(hook: &str, with_rule: bool) -> AnalyzerConfig {
    let mut c = AnalyzerConfig {
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..AnalyzerConfig::default()
    };
    c.postgres.enabled = false;
    c.self_metrics.interval = Duration::ZERO;
    c.alerting.evaluate_every = Duration::from_secs(1);
    c.alerting.builtin.pipeline = false;
    if with_rule {
        c.alerting.rules.push(SqlRuleConfig {
            name: "AlwaysOn".into(),
            sql: "SELECT 'eu-west-1' AS region, 1.0 AS value".into(),
            every: Duration::from_secs(1),
            for_: Duration::ZERO,
            keep_firing_for: Duration::ZERO,
            labels: [("severity".to_owned(), "ticket".to_owned())].into(),
            annotations: Default::default(),
        });
    }
    c.alerting.webhooks.push(WebhookConfig {
        url: hook.to_owned(),
        group_by: vec!["alertname".into()],
        group_wait: Duration::from_secs(1),
        group_interval: Duration::from_secs(2),
        repeat_interval: Duration::from_secs(3600),
        send_resolved: true,
        secret: String::new(),
        max_attempts: 3,
        timeout: Duration::from_secs(2),
    });
    c
}

/// The `AlwaysOn` alerts on `/api/v1/alerts`.
async fn listed(api: SocketAddr) -> Vec<Value> {
    let text = reqwest::get(format!("http://{api}/api/v1/alerts"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    body["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["labels"]["alertname"] == "AlwaysOn")
        .cloned()
        .collect()
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start(dir: &Path, config: AnalyzerConfig) -> meridian_analyzer::RunningAnalyzer {
    let registry = prometheus::Registry::new();
    config
        .build(dir, &registry)
        .await
        .unwrap()
        .start()
        .await
        .unwrap()
}

/// Scenario: a rule that always holds fires and is notified; the analyzer stops and starts
/// again; then it starts without the rule.
/// Guarantees: after the restart the alert is firing with the same `activeAt` and the webhook
/// gets nothing new; without the rule it resolves and the webhook gets one resolved
/// notification; the `alerts` table holds firing then resolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_survive_a_restart_and_resolve_when_their_rule_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, got) = receiver().await;

    let first = start(dir.path(), config(&hook, true)).await;
    let api = first.http_addr;
    wait_for("the first notification", async || {
        got.lock().unwrap().len() == 1
    })
    .await;
    let before = listed(api).await;
    assert_eq!(before[0]["state"], "firing");
    first.shutdown().await.unwrap();

    let second = start(dir.path(), config(&hook, true)).await;
    let api = second.http_addr;
    wait_for("the restored alert", async || !listed(api).await.is_empty()).await;
    let after = listed(api).await;
    assert_eq!(after[0]["state"], "firing");
    assert_eq!(
        after[0]["activeAt"], before[0]["activeAt"],
        "the same alert, not a new one"
    );
    // Past group_wait and group_interval: a forgetful analyzer would have notified again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(got.lock().unwrap().len(), 1, "{:?}", got.lock().unwrap());
    second.shutdown().await.unwrap();

    let third = start(dir.path(), config(&hook, false)).await;
    let api = third.http_addr;
    wait_for("the resolved notification", async || {
        got.lock().unwrap().len() == 2
    })
    .await;
    let resolved = got.lock().unwrap()[1].clone();
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["alerts"][0]["labels"]["region"], "eu-west-1");
    let q = "SELECT state FROM alerts WHERE alertname = 'AlwaysOn' ORDER BY time";
    let client = reqwest::Client::new();
    let text = client
        .post(format!("http://{api}/api/v1/sql"))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "query": q }).to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    let states: Vec<&str> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["firing", "resolved"]);
    third.shutdown().await.unwrap();
}
