//! `GET /api/v1/alerts`, in the shape of Prometheus's `/api/v1/alerts`: pending and firing
//! alerts with labels, annotations, state, `activeAt` and value (`?fingerprint=` for one).

use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::rule::format_value;
use super::state::{AlertBook, Phase};

#[derive(Deserialize)]
struct Filter {
    fingerprint: Option<String>,
}

/// The alerts API over `book`.
pub fn router(book: Arc<Mutex<AlertBook>>) -> Router {
    Router::new()
        .route("/api/v1/alerts", get(alerts))
        .with_state(book)
}

async fn alerts(
    State(book): State<Arc<Mutex<AlertBook>>>,
    Query(filter): Query<Filter>,
) -> Json<Value> {
    let book = book.lock().unwrap_or_else(|p| p.into_inner());
    let list: Vec<Value> = book
        .alerts()
        .filter(|a| a.phase != Phase::Resolved)
        .filter(|a| {
            filter
                .fingerprint
                .as_ref()
                .is_none_or(|f| *f == a.fingerprint)
        })
        .map(|a| {
            json!({
                "labels": a.instance.labels,
                "annotations": a.instance.annotations,
                "state": a.phase.as_str(),
                "activeAt": chrono::DateTime::from_timestamp_nanos(a.active_at_ns)
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "value": format_value(a.instance.value),
                "fingerprint": a.fingerprint,
                "evidence": a.instance.evidence,
            })
        })
        .collect();
    Json(json!({"status": "success", "data": {"alerts": list}}))
}
