//! Talking to the analyzer: the desired routing (`GET /api/v1/routing`), the active
//! recommendations, the event stream (`GET /api/v1/recommendations/stream`, Server-Sent
//! Events, resumed from the last id) and the status report.

use std::time::Duration;

use axum::http::{header, HeaderValue, Method, Request};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use meridian_collector::auth::SecretSource;
use meridian_collector::tls::client::HttpClient;
use meridian_collector::tls::ClientTlsConfig;

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

/// The analyzer's HTTP API, over `http://` or `https://` (`[agent.tls]`).
#[derive(Clone)]
pub struct Analyzer {
    base: String,
    http: HttpClient,
    timeout: Duration,
    token: Option<SecretSource>,
}

impl Analyzer {
    /// A client of the analyzer at `base` (`http://host:4380` or `https://…` verified with
    /// `tls`), each call bounded by `timeout`, sending the token from `token` (read for every
    /// request) when there is one.
    pub fn new(
        base: &str,
        tls: &ClientTlsConfig,
        timeout: Duration,
        token: Option<SecretSource>,
    ) -> Result<Self, AgentError> {
        let http = HttpClient::for_base(base, tls, timeout)
            .map_err(|e| AgentError::Config(format!("[agent.tls]: {e}")))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
            timeout,
            token,
        })
    }

    /// A request to `path`, with the analyzer token when one is configured.
    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Request<Full<Bytes>>, AgentError> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            let secret = token.read().map_err(|e| self.failed(path, e))?;
            request = request.header(header::AUTHORIZATION, format!("Bearer {secret}"));
        }
        let body = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(body))
            }
            None => Full::default(),
        };
        request.body(body).map_err(|e| self.failed(path, e))
    }

    fn failed(&self, path: &str, e: impl std::fmt::Display) -> AgentError {
        AgentError::Analyzer {
            url: format!("{}{path}", self.base),
            message: e.to_string(),
        }
    }

    /// Sends a request and reads its whole answer; an answer that is not 2xx is an error.
    async fn call(&self, path: &str, request: Request<Full<Bytes>>) -> Result<Bytes, AgentError> {
        let (status, body) = self
            .http
            .exchange(request, self.timeout)
            .await
            .map_err(|e| self.failed(path, e))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(self.failed(path, format!("answered {status}: {text}")));
        }
        Ok(body)
    }

    async fn get(&self, path: &str) -> Result<Value, AgentError> {
        let body = self
            .call(path, self.request(Method::GET, path, None)?)
            .await?;
        serde_json::from_slice(&body).map_err(|e| self.failed(path, e))
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
        let body = serde_json::to_vec(status).map_err(|e| self.failed(&path, e))?;
        let request = self.request(Method::POST, &path, Some(body))?;
        self.call(&path, request).await?;
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
            let response = match self.request(Method::GET, path, None) {
                Ok(mut request) => {
                    if let Some(id) = last_id {
                        if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
                            request.headers_mut().insert("last-event-id", value);
                        }
                    }
                    // The stream stays open: only its answer's head is bounded.
                    tokio::select! {
                        r = self.http.send(request, self.timeout) => match r {
                            Ok(r) if r.status().is_success() => Ok(r),
                            Ok(r) => Err(self.failed(path, format!("answered {}", r.status()))),
                            Err(e) => Err(self.failed(path, e)),
                        },
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
                    let mut body = response.into_body().into_data_stream();
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
