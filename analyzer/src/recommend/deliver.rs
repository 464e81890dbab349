//! Delivery of the board's events beyond HTTP: a Kafka topic (keyed by service, for agents in
//! other regions) and webhooks, each POST signed with HMAC-SHA256 of its body in
//! `X-Meridian-Signature: sha256=<hex>` and retried with backoff.

use std::sync::Arc;
use std::time::Duration;

use meridian_collector::kafka::KafkaConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::board::{Board, Event};
use crate::telemetry::AnalyzerMetrics;

pub use crate::webhook::{signature, SIGNATURE_HEADER};

/// Where recommendations go besides the HTTP API (`[analyzer.recommend.delivery]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Topic the events are produced to when the analyzer consumes Kafka (`kafka.brokers`);
    /// empty turns it off.
    pub kafka_topic: String,
    /// Webhooks (`[[analyzer.recommend.delivery.webhooks]]`).
    pub webhooks: Vec<WebhookConfig>,
}

/// One webhook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// URL events are POSTed to.
    pub url: String,
    /// HMAC-SHA256 key of the signature; empty sends no signature.
    #[serde(default)]
    pub secret: String,
    /// Attempts per event before it is given up (and counted).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Time allowed per attempt.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            kafka_topic: "meridian.recommendations".into(),
            webhooks: Vec::new(),
        }
    }
}

fn default_attempts() -> u32 {
    5
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// The JSON body of one event.
fn body(event: &Event) -> Vec<u8> {
    serde_json::json!({
        "version": event.version,
        "type": event.kind,
        "service": event.service,
        "data": event.data,
    })
    .to_string()
    .into_bytes()
}

/// Delivers the board's events until `stop`.
pub async fn run(
    board: Arc<Board>,
    config: DeliveryConfig,
    kafka: Option<KafkaConfig>,
    metrics: AnalyzerMetrics,
    stop: CancellationToken,
) {
    let (_, mut events) = board.subscribe(Some(board.version()));
    let producer = match kafka.filter(|k| k.enabled() && !config.kafka_topic.is_empty()) {
        Some(k) => {
            if let Err(e) = k.ensure_topics(&[&config.kafka_topic]).await {
                tracing::warn!(error = %e, "could not make sure the recommendations topic exists");
            }
            match k.client_config(&[], &k.producer).create::<FutureProducer>() {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::error!(error = %e, "recommendations will not go to Kafka");
                    None
                }
            }
        }
        None => None,
    };
    let hooks: Vec<mpsc::Sender<Event>> = config
        .webhooks
        .iter()
        .cloned()
        .map(|hook| {
            let (tx, rx) = mpsc::channel(1024);
            tokio::spawn(webhook(hook, rx, metrics.clone(), stop.clone()));
            tx
        })
        .collect();
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            e = events.recv() => e,
        };
        let event = match event {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    skipped = n,
                    "recommendation delivery fell behind; the routing state stays level-triggered"
                );
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if let Some(producer) = &producer {
            let payload = body(&event);
            let record = FutureRecord::to(&config.kafka_topic)
                .key(&event.service)
                .payload(&payload);
            let outcome = match producer.send(record, Duration::from_secs(10)).await {
                Ok(_) => "ok",
                Err((e, _)) => {
                    tracing::warn!(error = %e, "producing a recommendation event failed");
                    "failed"
                }
            };
            metrics
                .recommendation_deliveries
                .with_label_values(&["kafka", outcome])
                .inc();
        }
        for hook in &hooks {
            if hook.try_send(event.clone()).is_err() {
                metrics
                    .recommendation_deliveries
                    .with_label_values(&["webhook", "dropped"])
                    .inc();
            }
        }
    }
}

/// One webhook's queue: each event POSTed in order, retried with backoff.
async fn webhook(
    hook: WebhookConfig,
    mut events: mpsc::Receiver<Event>,
    metrics: AnalyzerMetrics,
    stop: CancellationToken,
) {
    let client = match reqwest::Client::builder().timeout(hook.timeout).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(url = %hook.url, error = %e, "webhook client could not be built");
            return;
        }
    };
    while let Some(event) = tokio::select! {
        _ = stop.cancelled() => None,
        e = events.recv() => e,
    } {
        let payload = body(&event);
        let delivery = crate::webhook::Delivery {
            url: &hook.url,
            body: &payload,
            secret: &hook.secret,
            headers: vec![
                ("x-meridian-event", event.kind.to_owned()),
                ("x-meridian-version", event.version.to_string()),
            ],
            max_attempts: hook.max_attempts,
        };
        let Some(accepted) = crate::webhook::post(&client, delivery, &stop).await else {
            return;
        };
        let outcome = if accepted { "ok" } else { "failed" };
        metrics
            .recommendation_deliveries
            .with_label_values(&["webhook", outcome])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use axum::http::HeaderMap;
    use axum::routing::post;
    use prometheus::Registry;

    use super::*;
    use crate::recommend::routing::{Changes, Phase, RegionRoute};

    /// Scenario: a webhook receiver on 127.0.0.1 that refuses the first delivery with 503; the
    /// board publishes a routing change; an SSE-style subscriber resumes from version 0.
    /// Guarantees: the event is retried until accepted, its signature is the HMAC-SHA256 of the
    /// exact body under the secret, and a subscriber resuming from a version gets what it missed.
    #[tokio::test]
    async fn webhooks_are_signed_and_retried_and_subscribers_resume() {
        let (tx, mut rx) = mpsc::channel::<(String, Vec<u8>)>(8);
        let refused = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let app = axum::Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let (tx, refused) = (tx.clone(), Arc::clone(&refused));
                async move {
                    if !refused.swap(true, std::sync::atomic::Ordering::SeqCst) {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let sig = headers[SIGNATURE_HEADER].to_str().unwrap().to_owned();
                    tx.send((sig, body.to_vec())).await.unwrap();
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let board = Arc::new(Board::default());
        let config = DeliveryConfig {
            kafka_topic: String::new(),
            webhooks: vec![WebhookConfig {
                url: format!("http://{addr}/hook"),
                secret: "s3cret".into(),
                max_attempts: 5,
                timeout: Duration::from_secs(2),
            }],
        };
        let metrics = AnalyzerMetrics::new(&Registry::new()).unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(Arc::clone(&board), config, None, metrics, stop.clone()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let route = |weight| {
            let phase = if weight == 0 {
                Phase::Drained
            } else {
                Phase::Normal
            };
            RegionRoute::fixed(weight, phase)
        };
        let desired = BTreeMap::from([(
            "*".to_owned(),
            BTreeMap::from([
                ("eu-west-1".to_owned(), route(0)),
                ("us-east-1".to_owned(), route(200)),
            ]),
        )]);
        board.publish(&desired, &Changes::default(), 1);

        let (sig, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(sig, signature("s3cret", &body));
        let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(event["type"], "routing");
        assert_eq!(
            event["data"]["services"]["*"]["regions"]["eu-west-1"]["weight"],
            0
        );

        let (missed, _) = board.subscribe(Some(0));
        assert_eq!(
            missed.len(),
            1,
            "resuming from version 0 replays the change"
        );
        assert_eq!(missed[0].version, board.version());
        stop.cancel();
        task.await.unwrap();
    }
}
