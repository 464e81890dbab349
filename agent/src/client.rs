//! Talking to the analyzer: the desired routing (`GET /api/v1/routing`), the active
//! recommendations, the event stream (`GET /api/v1/recommendations/stream`, Server-Sent
//! Events, resumed from the last id) and the status report.

use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use meridian_collector::auth::SecretSource;

use crate::desired::Routing;
use crate::error::AgentError;

/// What the agent reports after a reconcile (the analyzer's `AgentStatus`).
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// The routing version applied.
    pub version: u64,
    /// The weights applied, per Meridian service and region.
    pub applied: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u8>>,
    /// The gateway driven.
    pub gateway: &'static str,
    /// Why the last reconcile failed, if it did.
    pub error: Option<String>,
}

/// One event of the stream.
#[derive(Clone, Debug)]
pub enum Update {
    /// The whole desired routing.
    Routing(Routing),
    /// One recommendation (as `GET /api/v1/recommendations` lists them).
    Recommendation(Value),
}

/// The analyzer's HTTP API.
#[derive(Clone)]
pub struct Analyzer {
    base: String,
    client: reqwest::Client,
    streaming: reqwest::Client,
    token: Option<SecretSource>,
}

impl Analyzer {
    /// A client of the analyzer at `base` (`http://host:4380`), each call bounded by `timeout`,
    /// sending the token from `token` (read for every request) when there is one.
    pub fn new(base: &str, timeout: Duration, token: Option<SecretSource>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        // The stream stays open: only connecting is bounded.
        let streaming = reqwest::Client::builder()
            .connect_timeout(timeout)
            .build()
            .unwrap_or_default();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            client,
            streaming,
            token,
        }
    }

    /// `request` with the analyzer token, when one is configured.
    fn authorized(
        &self,
        request: reqwest::RequestBuilder,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, AgentError> {
        match &self.token {
            Some(token) => {
                let secret = token.read().map_err(|e| self.failed(path, e))?;
                Ok(request.bearer_auth(secret))
            }
            None => Ok(request),
        }
    }

    fn failed(&self, path: &str, e: impl std::fmt::Display) -> AgentError {
        AgentError::Analyzer {
            url: format!("{}{path}", self.base),
            message: e.to_string(),
        }
    }

    async fn get(&self, path: &str) -> Result<Value, AgentError> {
        self.authorized(self.client.get(format!("{}{path}", self.base)), path)?
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| self.failed(path, e))?
            .json()
            .await
            .map_err(|e| self.failed(path, e))
    }

    /// The desired routing.
    pub async fn routing(&self) -> Result<Routing, AgentError> {
        let path = "/api/v1/routing";
        serde_json::from_value(self.get(path).await?).map_err(|e| self.failed(path, e))
    }

    /// The active recommendations.
    pub async fn recommendations(&self) -> Result<Vec<Value>, AgentError> {
        let body = self.get("/api/v1/recommendations").await?;
        Ok(body["recommendations"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Reports what was applied.
    pub async fn report(&self, id: &str, status: &Status) -> Result<(), AgentError> {
        let path = format!("/api/v1/agents/{id}/status");
        let request = self.client.post(format!("{}{path}", self.base));
        self.authorized(request, &path)?
            .json(status)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| self.failed(&path, e))?;
        Ok(())
    }

    /// Follows the event stream until `stop`, sending each update to `tx`; reconnects (from
    /// the last id seen, so nothing is skipped) with a backoff of 1 s doubling to 10 s.
    pub async fn follow(
        self,
        tx: mpsc::Sender<Update>,
        connected: prometheus::IntGauge,
        stop: CancellationToken,
    ) {
        let path = "/api/v1/recommendations/stream";
        let mut last_id: Option<u64> = None;
        let mut backoff = Duration::from_secs(1);
        while !stop.is_cancelled() {
            let request = self.streaming.get(format!("{}{path}", self.base));
            let response = match self.authorized(request, path) {
                Ok(mut request) => {
                    if let Some(id) = last_id {
                        request = request.header("last-event-id", id.to_string());
                    }
                    tokio::select! {
                        r = request.send() => r.and_then(|r| r.error_for_status()).map_err(|e| self.failed(path, e)),
                        () = stop.cancelled() => return,
                    }
                }
                Err(e) => Err(e),
            };
            match response {
                Err(e) => tracing::debug!(error = %e, "event stream not available; retrying"),
                Ok(response) => {
                    connected.set(1);
                    backoff = Duration::from_secs(1);
                    let mut body = response.bytes_stream();
                    let mut buffer = String::new();
                    loop {
                        let chunk = tokio::select! {
                            c = body.next() => c,
                            () = stop.cancelled() => return,
                        };
                        let Some(Ok(chunk)) = chunk else { break };
                        buffer.push_str(&String::from_utf8_lossy(&chunk));
                        while let Some((event, rest)) = next_event(&buffer) {
                            buffer = rest;
                            if let Some(id) = event.id {
                                last_id = Some(id);
                            }
                            if let Some(update) = event.update() {
                                if tx.send(update).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    connected.set(0);
                    tracing::info!("event stream ended; reconnecting");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = stop.cancelled() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }
}

/// One Server-Sent Event.
#[derive(Debug, Default, PartialEq)]
struct Event {
    id: Option<u64>,
    kind: String,
    data: String,
}

impl Event {
    fn update(&self) -> Option<Update> {
        match self.kind.as_str() {
            "routing" => {
                let mut routing: Routing = serde_json::from_str(&self.data).ok()?;
                // The event's id is the version the board had after the change.
                if let Some(id) = self.id {
                    routing.version = routing.version.max(id);
                }
                Some(Update::Routing(routing))
            }
            "recommendation" => serde_json::from_str(&self.data)
                .ok()
                .map(Update::Recommendation),
            _ => None,
        }
    }
}

/// Splits the first complete event off `buffer` (events end with a blank line); comments
/// (keep-alives) give an empty event.
fn next_event(buffer: &str) -> Option<(Event, String)> {
    let normalized;
    let text = if buffer.contains('\r') {
        normalized = buffer.replace("\r\n", "\n");
        normalized.as_str()
    } else {
        buffer
    };
    let end = text.find("\n\n")?;
    let mut event = Event::default();
    let mut data = Vec::new();
    for line in text[..end].lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => event.id = value.parse().ok(),
            "event" => event.kind = value.to_owned(),
            "data" => data.push(value),
            _ => {}
        }
    }
    event.data = data.join("\n");
    Some((event, text[end + 2..].to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scenario: a stream chunk holding a keep-alive, a routing event and half of the next.
    /// Guarantees: the complete events are parsed (id, kind, data), the half one waits.
    #[test]
    fn parses_complete_events_only() {
        let buffer = ":\n\nid: 5\nevent: routing\ndata: {\"version\": 4, \"services\": {}}\n\nid: 6\nevent: rec";
        let (keepalive, rest) = next_event(buffer).unwrap();
        assert_eq!(keepalive, Event::default());
        let (routing, rest) = next_event(&rest).unwrap();
        assert_eq!(routing.id, Some(5));
        match routing.update() {
            Some(Update::Routing(r)) => assert_eq!(r.version, 5),
            other => panic!("{other:?}"),
        }
        assert!(next_event(&rest).is_none());
        assert_eq!(rest, "id: 6\nevent: rec");
    }
}
