//! Alerting end to end: `meridian demo`'s incident through a real Alertmanager (Debian's
//! `prometheus-alertmanager`, installed by scripts/test.sh) to a webhook receiver, and through
//! Meridian's own grouped webhook.

mod common;

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Path, State};
use axum::routing::post;
use axum::Json;
use common::{reserved_port, sql, KillOnDrop, Meridian};
use serde_json::Value;

/// Notifications received: (path, when, body).
type Received = Arc<Mutex<Vec<(String, SystemTime, Value)>>>;

async fn receiver() -> (u16, Received) {
    let received: Received = Arc::default();
    let app =
        axum::Router::new()
            .route(
                "/{path}",
                post(
                    |State(r): State<Received>,
                     Path(path): Path<String>,
                     Json(body): Json<Value>| async move {
                        r.lock().unwrap().push((path, SystemTime::now(), body));
                    },
                ),
            )
            .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, received)
}

fn alertmanager(dir: &std::path::Path, port: u16) -> KillOnDrop {
    let bin = std::env::var("MERIDIAN_ALERTMANAGER_BIN").unwrap_or_else(|_| {
        panic!("MERIDIAN_ALERTMANAGER_BIN is not set: run the tests with scripts/test.sh, which installs Debian's prometheus-alertmanager")
    });
    KillOnDrop(
        Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.join("alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting alertmanager"),
    )
}

async fn am_alerts(port: u16) -> Option<Vec<Value>> {
    reqwest::get(format!("http://127.0.0.1:{port}/api/v2/alerts"))
        .await
        .ok()?
        .json()
        .await
        .ok()
}

fn secs(t: &str) -> SystemTime {
    let t = chrono::DateTime::parse_from_rfc3339(t).unwrap();
    SystemTime::UNIX_EPOCH + Duration::from_nanos(t.timestamp_nanos_opt().unwrap() as u64)
}

/// Scenario: `meridian demo` (30 min of history, eu-west-1's incident from +30 s for 40 s)
/// pushing to a real Alertmanager (group_wait 5 s) that posts to a webhook receiver, and to a
/// Meridian webhook (group_wait 5 s); Alertmanager is stopped and restarted (SIGTERM, same
/// storage) while the alert fires.
/// Guarantees: exactly one firing and one resolved notification of `RegionAnomaly` for
/// eu-west-1 on each path, with the region, service and severity labels, the hint and the
/// exemplar SQL; firing arrives within 60 s of the onset and resolved within 5 min of the end;
/// no page-severity alert for the healthy regions; the restarted Alertmanager shows the alert
/// again after Meridian's resend; the `alerts` table holds the transitions with evidence
/// (exemplar trace ids).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_incident_alerts_once_and_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let (port, received) = receiver().await;
    let am_port = reserved_port();
    std::fs::write(
        dir.path().join("alertmanager.yml"),
        format!(
            "route:\n  receiver: test\n  group_by: [alertname, region]\n  group_wait: 5s\n  group_interval: 10s\n  repeat_interval: 1h\n\
             receivers:\n- name: test\n  webhook_configs:\n  - url: http://127.0.0.1:{port}/am\n    send_resolved: true\n"
        ),
    )
    .unwrap();
    let mut am = alertmanager(dir.path(), am_port);
    let config = dir.path().join("meridian.toml");
    std::fs::write(
        &config,
        format!(
            "[analyzer.alerting]\nresend_delay = \"10s\"\n\n\
             [[analyzer.alerting.alertmanagers]]\nurl = \"http://127.0.0.1:{am_port}\"\n\n\
             [[analyzer.alerting.webhooks]]\nurl = \"http://127.0.0.1:{port}/direct\"\ngroup_wait = \"5s\"\ngroup_interval = \"10s\"\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut demo = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .args(common::loopback_ports("127.0.0.1:0"))
        .args([
            "demo",
            "--history",
            "30m",
            "--duration",
            "250s",
            "--incident-after",
            "30s",
            "--incident-for",
            "40s",
        ])
        .env("MERIDIAN_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the demo");
    let lines = common::collect_lines(demo.stdout.take().unwrap());

    let is_incident = |b: &Value| {
        b["groupLabels"]["alertname"] == "RegionAnomaly"
            && b["groupLabels"]["region"] == "eu-west-1"
    };
    // Alertmanager killed and restarted while the alert fires.
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "no firing notification from Alertmanager"
        );
        if received
            .lock()
            .unwrap()
            .iter()
            .any(|(p, _, b)| p == "am" && is_incident(b))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A restart as an operator does it (SIGTERM: Alertmanager saves its notification log, so
    // it does not notify the same group twice), then Meridian's resend fills it again.
    let stopped = Command::new("kill")
        .args(["-TERM", &am.0.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let _ = am.0.wait();
    am = alertmanager(dir.path(), am_port);
    let restarted = Instant::now();
    let shown = loop {
        assert!(
            restarted.elapsed() < Duration::from_secs(40),
            "restarted Alertmanager never got the alert back"
        );
        if let Some(alerts) = am_alerts(am_port).await {
            if let Some(a) = alerts.iter().find(|a| {
                a["labels"]["alertname"] == "RegionAnomaly" && a["labels"]["region"] == "eu-west-1"
            }) {
                break a.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "restarted Alertmanager shows the alert again {:.1} s after the restart",
        restarted.elapsed().as_secs_f64()
    );
    assert_eq!(shown["labels"]["service_name"], "api-gateway");

    let status = tokio::task::spawn_blocking(move || demo.wait())
        .await
        .unwrap()
        .unwrap();
    let out = lines.lock().unwrap().join("\n");
    assert!(status.success(), "demo failed:\n{out}");
    // The demo prints the alerts it sends, with the time from the onset.
    let fired_line = out
        .lines()
        .find(|l| l.contains("🔔 firing RegionAnomaly eu-west-1"))
        .unwrap_or_else(|| panic!("the demo printed no firing alert:\n{out}"));
    let offset: f64 = fired_line
        .rsplit_once("(+")
        .and_then(|(_, rest)| rest.split('s').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no onset offset in {fired_line}"));
    drop(am);

    let received = received.lock().unwrap().clone();
    for path in ["am", "direct"] {
        let incident: Vec<&(String, SystemTime, Value)> = received
            .iter()
            .filter(|(p, _, b)| p == path && is_incident(b))
            .collect();
        let firing: Vec<_> = incident
            .iter()
            .filter(|(_, _, b)| b["status"] == "firing")
            .collect();
        let resolved: Vec<_> = incident
            .iter()
            .filter(|(_, _, b)| b["status"] == "resolved")
            .collect();
        assert_eq!(
            (firing.len(), resolved.len()),
            (1, 1),
            "{path}: {incident:#?}"
        );
        let (_, fired_at, body) = firing[0];
        assert_eq!(body["version"], "4");
        let alert = &body["alerts"][0];
        assert_eq!(alert["labels"]["severity"], "page");
        assert_eq!(alert["labels"]["service_name"], "api-gateway");
        assert!(
            alert["annotations"]["hint"]
                .as_str()
                .is_some_and(|h| h.contains("traces:")),
            "{alert}"
        );
        assert!(alert["annotations"]["exemplar_sql"]
            .as_str()
            .is_some_and(|s| s.contains("eu-west-1")));
        // The onset, from the alert's start and the demo's own offset of it.
        let onset = secs(alert["startsAt"].as_str().unwrap()) - Duration::from_secs_f64(offset);
        let to_firing = fired_at.duration_since(onset).unwrap();
        let (_, resolved_at, _) = resolved[0];
        let end = onset + Duration::from_secs(40);
        let to_resolved = resolved_at.duration_since(end).unwrap();
        println!(
            "{path}: firing {:.0} s after the onset, resolved {:.0} s after the incident ended",
            to_firing.as_secs_f64(),
            to_resolved.as_secs_f64()
        );
        assert!(
            to_firing <= Duration::from_secs(60),
            "{path}: {to_firing:?}"
        );
        assert!(
            to_resolved <= Duration::from_secs(300),
            "{path}: {to_resolved:?}"
        );
        let healthy_pages: Vec<_> = received
            .iter()
            .filter(|(p, _, b)| p == path && b["groupLabels"]["region"] != "eu-west-1")
            .filter(|(_, _, b)| b["commonLabels"]["severity"] == "page")
            .collect();
        assert!(
            healthy_pages.is_empty(),
            "{path}: pages for healthy regions {healthy_pages:#?}"
        );
    }

    let meridian = Meridian::start("standalone", &data, &[]);
    let rows = sql(
        meridian.api,
        "SELECT state, evidence FROM alerts WHERE alertname = 'RegionAnomaly' AND region = 'eu-west-1' ORDER BY time",
    )
    .await;
    let states: Vec<&str> = rows.iter().filter_map(|r| r["state"].as_str()).collect();
    assert_eq!(states, vec!["firing", "resolved"]);
    let evidence: Value = serde_json::from_str(rows[0]["evidence"].as_str().unwrap()).unwrap();
    assert!(
        !evidence["exemplar_trace_ids"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{evidence}"
    );
}
