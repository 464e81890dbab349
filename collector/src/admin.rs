//! The small HTTP API every Meridian process serves for operators: `/healthz`, `/readyz`, `/metrics`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus::Registry;

use crate::auth::{self, Auth, Scope};

/// Says whether the process can take traffic now, and if not, why.
pub type ReadyCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
struct AdminState {
    registry: Registry,
    ready: ReadyCheck,
}

/// Routes `/healthz` (process alive), `/readyz` (`ready` decides: 200, or 503 with the reason)
/// and `/metrics` (Prometheus text). The probes stay open, since load balancers and Kubernetes
/// call them without credentials; `/metrics` needs a `read` token when `auth` protects it.
pub fn router(registry: Registry, ready: ReadyCheck, auth: &Auth) -> Router {
    let state = AdminState { registry, ready };
    let metrics_route = Router::new()
        .route("/metrics", get(metrics))
        .with_state(state.clone());
    let metrics_route = if auth.protects_metrics() {
        auth::http::require(metrics_route, auth, Scope::Read, "metrics")
    } else {
        metrics_route
    };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
        .merge(metrics_route)
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    match (state.ready)() {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::render(&state.registry),
    )
}
