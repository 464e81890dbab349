//! The recommend stage's HTTP API; it only translates between HTTP and the [`Board`]:
//!
//! - `GET /api/v1/routing` — the desired routing (level-triggered, with a version);
//! - `POST /api/v1/routing/overrides` — set a manual override;
//!   `DELETE /api/v1/routing/overrides/{service}/{region}` — remove it;
//! - `GET /api/v1/recommendations` — the active recommendations;
//! - `GET /api/v1/recommendations/stream` — Server-Sent Events, resumable from a version
//!   (`Last-Event-ID` or `?since=`);
//! - `POST /api/v1/agents/{id}/status` — what an agent applied.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;

use meridian_collector::auth::http::require;
use meridian_collector::auth::{Auth, Scope};

use crate::telemetry::AnalyzerMetrics;

use super::board::{recommendation_json, AgentStatus, Board, Event, Override, OverrideError};

/// The routes, over `board`; what agents report applied is also exported as
/// `meridian_routing_applied_weight`, so dashboards draw desired against applied. Reading needs
/// the `read` scope, overrides `admin`, and agents' reports `ingest` (an agent's token holds
/// `read` and `ingest`: it follows the routing and reports, but cannot change it).
pub fn router(board: Arc<Board>, metrics: AnalyzerMetrics, auth: &Auth) -> Router {
    let read = Router::new()
        .route("/api/v1/routing", get(routing))
        .route("/api/v1/recommendations", get(recommendations))
        .route("/api/v1/recommendations/stream", get(stream))
        .with_state(Arc::clone(&board));
    let admin = Router::new()
        .route("/api/v1/routing/overrides", post(set_override))
        .route(
            "/api/v1/routing/overrides/{service}/{region}",
            delete(remove_override),
        )
        .with_state(Arc::clone(&board));
    let reports = Router::new()
        .route("/api/v1/agents/{id}/status", post(agent_status))
        .with_state((board, metrics));
    require(read, auth, Scope::Read, "api")
        .merge(require(admin, auth, Scope::Admin, "api"))
        .merge(require(reports, auth, Scope::Ingest, "api"))
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": message.to_string() })),
    )
        .into_response()
}

async fn routing(State(board): State<Arc<Board>>) -> Json<serde_json::Value> {
    Json(board.routing())
}

/// The body of `POST /api/v1/routing/overrides`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideBody {
    service: String,
    region: String,
    weight: u8,
    #[serde(default)]
    reason: String,
}

async fn set_override(
    State(board): State<Arc<Board>>,
    body: Result<Json<OverrideBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "{e} (expected {{\"service\", \"region\", \"weight\": 0..255, \"reason\"}})"
                ),
            )
        }
    };
    let o = Override {
        service: body.service,
        region: body.region,
        weight: body.weight,
        reason: body.reason,
        set_at_ns: 0,
    };
    match board.set_override(o) {
        Ok(state) => Json(state).into_response(),
        Err(e @ OverrideError::AllOff(_)) => error(StatusCode::CONFLICT, e),
        Err(e @ OverrideError::Empty) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn remove_override(
    State(board): State<Arc<Board>>,
    Path((service, region)): Path<(String, String)>,
) -> Response {
    if board.remove_override(&service, &region) {
        Json(board.routing()).into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            format!("no override for service `{service}` in `{region}`"),
        )
    }
}

async fn recommendations(State(board): State<Arc<Board>>) -> Json<serde_json::Value> {
    let recs: Vec<serde_json::Value> = board.active().iter().map(recommendation_json).collect();
    Json(serde_json::json!({ "version": board.version(), "recommendations": recs }))
}

/// `?since=` of the stream.
#[derive(Deserialize)]
struct Since {
    since: Option<u64>,
}

fn sse(event: &Event) -> SseEvent {
    SseEvent::default()
        .id(event.version.to_string())
        .event(event.kind)
        .data(event.data.to_string())
}

async fn stream(
    State(board): State<Arc<Board>>,
    Query(query): Query<Since>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let since = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .or(query.since);
    let (replay, rx) = board.subscribe(since);
    let newest = replay.last().map_or(0, |e| e.version);
    let replayed = futures::stream::iter(replay.into_iter().map(|e| Ok(sse(&e))));
    // A lagging client ends its stream and resumes from its last id; nothing is skipped.
    let live = BroadcastStream::new(rx)
        .take_while(|e| futures::future::ready(e.is_ok()))
        .filter_map(move |e| {
            futures::future::ready(match e {
                Ok(e) if e.version > newest => Some(Ok(sse(&e))),
                _ => None,
            })
        });
    Sse::new(replayed.chain(live)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

async fn agent_status(
    State((board, metrics)): State<(Arc<Board>, AnalyzerMetrics)>,
    Path(id): Path<String>,
    body: Result<Json<AgentStatus>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(status)) => {
            for (service, regions) in &status.applied {
                for (region, weight) in regions {
                    metrics
                        .routing_applied_weight
                        .with_label_values(&[id.as_str(), service, region])
                        .set(i64::from(*weight));
                }
            }
            board.agent_status(&id, status);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => error(
            StatusCode::BAD_REQUEST,
            format!("{e} (expected {{\"version\", \"applied\": {{service: {{region: weight}}}}, \"gateway\", \"error\"}})"),
        ),
    }
}
