//! Sending alerts: to Alertmanager (`POST /api/v2/alerts`, firing ones re-sent every
//! `resend_delay` and resolved ones with their `endsAt` for `resolved_retention`, so an
//! Alertmanager restart loses nothing) and to webhooks as Alertmanager's webhook payload
//! (version 4, as Alertmanager 0.25 sends it), retried with backoff, optionally signed.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::config::{AlertingConfig, WebhookConfig};
use super::group::Notification;
use super::state::{Alert, Phase};
use crate::telemetry::AnalyzerMetrics;

/// Alertmanager's "no end" time.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Where the alert came from, for people: the analyzer's alerts API.
fn generator(config: &AlertingConfig, alert: &Alert) -> String {
    format!(
        "{}/api/v1/alerts?fingerprint={}",
        config.external_url.trim_end_matches('/'),
        alert.fingerprint
    )
}

/// The Alertmanager API v2 body for `alert` at `now_ns`: a firing alert is valid for four
/// resend periods (as Prometheus does), a resolved one ends when it resolved.
pub fn alertmanager_alert(config: &AlertingConfig, alert: &Alert, now_ns: i64) -> Value {
    let valid = config.resend_delay.max(config.evaluate_every) * 4;
    let ends = match alert.resolved_at_ns {
        Some(at) => at,
        None => now_ns + i64::try_from(valid.as_nanos()).unwrap_or(i64::MAX / 2),
    };
    json!({
        "labels": alert.instance.labels,
        "annotations": alert.instance.annotations,
        "startsAt": rfc3339(alert.active_at_ns),
        "endsAt": rfc3339(ends),
        "generatorURL": generator(config, alert),
    })
}

/// Which alerts each Alertmanager is due to get: on every change of state, and every
/// `resend_delay` while firing or recently resolved.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Resender {
    sent: HashMap<String, (Phase, i64)>,
}

impl Resender {
    /// The alerts to send at `now_ns`; call [`Resender::sent`] once they were accepted.
    pub fn due<'a>(
        &self,
        config: &AlertingConfig,
        alerts: impl Iterator<Item = &'a Alert>,
        now_ns: i64,
    ) -> Vec<Alert> {
        let resend = i64::try_from(config.resend_delay.as_nanos()).unwrap_or(i64::MAX);
        alerts
            .filter(|a| a.phase != Phase::Pending)
            .filter(|a| match self.sent.get(&a.fingerprint) {
                Some((phase, at)) => *phase != a.phase || now_ns - at >= resend,
                None => true,
            })
            .cloned()
            .collect()
    }

    /// Records `alerts` as delivered at `now_ns`.
    pub fn sent(&mut self, alerts: &[Alert], now_ns: i64) {
        for a in alerts {
            self.sent.insert(a.fingerprint.clone(), (a.phase, now_ns));
        }
    }

    /// Forgets alerts no longer known.
    pub fn retain(&mut self, known: &[String]) {
        self.sent.retain(|fp, _| known.contains(fp));
    }
}

/// Posts `alerts` to every Alertmanager; true when all of them accepted.
pub async fn push_alertmanagers(
    client: &reqwest::Client,
    config: &AlertingConfig,
    alerts: &[Alert],
    now_ns: i64,
    metrics: &AnalyzerMetrics,
) -> bool {
    let body: Vec<Value> = alerts
        .iter()
        .map(|a| alertmanager_alert(config, a, now_ns))
        .collect();
    let mut all = true;
    for am in &config.alertmanagers {
        let url = format!("{}/api/v2/alerts", am.url.trim_end_matches('/'));
        let request = client
            .post(&url)
            .timeout(am.timeout)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default());
        let outcome = match request.send().await {
            Ok(r) if r.status().is_success() => "ok",
            Ok(r) => {
                tracing::warn!(%url, status = %r.status(), "Alertmanager refused alerts; re-sent at the next evaluation");
                "failed"
            }
            Err(e) => {
                tracing::warn!(%url, error = %e, "Alertmanager unreachable; re-sent at the next evaluation");
                "failed"
            }
        };
        all &= outcome == "ok";
        metrics
            .alert_notifications
            .with_label_values(&["alertmanager", outcome])
            .inc();
    }
    all
}

/// Alertmanager's webhook payload (version 4) for `n`.
pub fn webhook_payload(config: &AlertingConfig, receiver: &str, n: &Notification) -> Value {
    let status = if n.alerts.iter().any(|a| a.phase == Phase::Firing) {
        "firing"
    } else {
        "resolved"
    };
    let common = |pick: &dyn Fn(&Alert) -> &BTreeMap<String, String>| -> BTreeMap<String, String> {
        let Some(first) = n.alerts.first() else {
            return BTreeMap::new();
        };
        pick(first)
            .iter()
            .filter(|(k, v)| n.alerts.iter().all(|a| pick(a).get(*k) == Some(v)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let alerts: Vec<Value> = n
        .alerts
        .iter()
        .map(|a| {
            json!({
                "status": if a.phase == Phase::Resolved { "resolved" } else { "firing" },
                "labels": a.instance.labels,
                "annotations": a.instance.annotations,
                "startsAt": rfc3339(a.active_at_ns),
                "endsAt": a.resolved_at_ns.map_or_else(|| ZERO_TIME.to_owned(), rfc3339),
                "generatorURL": generator(config, a),
                "fingerprint": a.fingerprint,
            })
        })
        .collect();
    json!({
        "version": "4",
        "groupKey": n.key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": n.labels,
        "commonLabels": common(&|a| &a.instance.labels),
        "commonAnnotations": common(&|a| &a.instance.annotations),
        "externalURL": config.external_url,
        "alerts": alerts,
    })
}

/// One webhook's queue: each notification POSTed in order, retried with backoff.
pub async fn webhook(
    hook: WebhookConfig,
    mut queue: mpsc::Receiver<Value>,
    metrics: AnalyzerMetrics,
    stop: CancellationToken,
) {
    let client = match reqwest::Client::builder().timeout(hook.timeout).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(url = %hook.url, error = %e, "alert webhook client could not be built");
            return;
        }
    };
    while let Some(payload) = tokio::select! {
        _ = stop.cancelled() => None,
        p = queue.recv() => p,
    } {
        let body = payload.to_string().into_bytes();
        let delivery = crate::webhook::Delivery {
            url: &hook.url,
            body: &body,
            secret: &hook.secret,
            headers: Vec::new(),
            max_attempts: hook.max_attempts,
        };
        let Some(accepted) = crate::webhook::post(&client, delivery, &stop).await else {
            return;
        };
        let outcome = if accepted { "ok" } else { "failed" };
        metrics
            .alert_notifications
            .with_label_values(&["webhook", outcome])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use prometheus::Registry;

    use std::time::Duration;

    use super::*;
    use crate::alert::state::{fingerprint, Instance, Labels};
    use crate::webhook::{signature, SIGNATURE_HEADER};

    fn alert(phase: Phase) -> Alert {
        let labels: Labels = [
            ("alertname", "RegionAnomaly"),
            ("region", "eu"),
            ("severity", "page"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Alert {
            rule: "RegionAnomaly".into(),
            fingerprint: fingerprint(&labels),
            instance: Instance {
                labels,
                annotations: BTreeMap::from([("summary".to_owned(), "eu p99".to_owned())]),
                value: 0.9,
                evidence: Value::Null,
            },
            phase,
            active_at_ns: 1_000_000_000,
            last_seen_ns: 1_000_000_000,
            resolved_at_ns: (phase == Phase::Resolved).then_some(2_000_000_000),
        }
    }

    /// Scenario: a webhook receiver that answers 503 twice, then 200; a notification with a
    /// secret.
    /// Guarantees: it is retried until accepted (3 attempts), signed with the body's HMAC, and
    /// the body is Alertmanager's v4 payload (version, groupKey, status, groupLabels,
    /// commonLabels, alerts with startsAt, zero endsAt while firing, fingerprint).
    #[tokio::test]
    async fn webhook_retries_until_accepted_and_signs() {
        let calls = Arc::new(AtomicUsize::new(0));
        type Seen = Arc<std::sync::Mutex<Vec<(HeaderMap, Vec<u8>)>>>;
        let bodies: Seen = Arc::default();
        let (c, b) = (Arc::clone(&calls), Arc::clone(&bodies));
        let app = axum::Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let (c, b) = (Arc::clone(&c), Arc::clone(&b));
                async move {
                    b.lock().unwrap().push((headers, body.to_vec()));
                    if c.fetch_add(1, Ordering::SeqCst) < 2 {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let hook = WebhookConfig {
            url: format!("http://{addr}/hook"),
            group_by: vec!["alertname".into(), "region".into()],
            group_wait: Duration::ZERO,
            group_interval: Duration::ZERO,
            repeat_interval: Duration::from_secs(3600),
            send_resolved: true,
            secret: "key".into(),
            max_attempts: 5,
            timeout: Duration::from_secs(2),
        };
        let n = Notification {
            key: "{}:{alertname=\"RegionAnomaly\", region=\"eu\"}".into(),
            labels: [
                ("alertname".to_owned(), "RegionAnomaly".to_owned()),
                ("region".to_owned(), "eu".to_owned()),
            ]
            .into(),
            alerts: vec![alert(Phase::Firing)],
        };
        let payload = webhook_payload(&AlertingConfig::default(), "meridian-webhook-0", &n);
        let metrics = AnalyzerMetrics::new(&Registry::new()).unwrap();
        let (tx, rx) = mpsc::channel(4);
        tx.send(payload.clone()).await.unwrap();
        drop(tx);
        webhook(hook, rx, metrics.clone(), CancellationToken::new()).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let bodies = bodies.lock().unwrap();
        let (headers, body) = bodies.last().unwrap();
        assert_eq!(
            headers[SIGNATURE_HEADER].to_str().unwrap(),
            signature("key", body)
        );
        let sent: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(sent, payload);
        assert_eq!(sent["version"], "4");
        assert_eq!(sent["status"], "firing");
        assert_eq!(sent["groupLabels"]["region"], "eu");
        assert_eq!(sent["commonLabels"]["severity"], "page");
        assert_eq!(sent["alerts"][0]["endsAt"], ZERO_TIME);
        assert_eq!(sent["alerts"][0]["startsAt"], "1970-01-01T00:00:01.000Z");
        assert_eq!(
            metrics
                .alert_notifications
                .with_label_values(&["webhook", "ok"])
                .get(),
            1
        );
    }

    /// Scenario: an alert firing, unchanged for a while, then resolved.
    /// Guarantees: Alertmanager gets it at once, again only after `resend_delay`, at once when
    /// it resolves (with its end), and a firing alert's `endsAt` lies four resend periods ahead.
    #[test]
    fn alertmanager_resends_on_schedule_and_on_change() {
        let config = AlertingConfig::default();
        let mut r = Resender::default();
        let firing = alert(Phase::Firing);
        let s = 1_000_000_000;
        assert_eq!(r.due(&config, [&firing].into_iter(), 10 * s).len(), 1);
        r.sent(std::slice::from_ref(&firing), 10 * s);
        assert!(r.due(&config, [&firing].into_iter(), 30 * s).is_empty());
        assert_eq!(r.due(&config, [&firing].into_iter(), 70 * s).len(), 1);
        let resolved = alert(Phase::Resolved);
        assert_eq!(r.due(&config, [&resolved].into_iter(), 31 * s).len(), 1);
        let body = alertmanager_alert(&config, &firing, 10 * s);
        assert_eq!(body["endsAt"], rfc3339(10 * s + 240 * s));
        assert_eq!(
            alertmanager_alert(&config, &resolved, 10 * s)["endsAt"],
            rfc3339(2 * s)
        );
    }
}
