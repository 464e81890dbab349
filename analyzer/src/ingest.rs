//! Batches arriving from collectors: in-process ([`StoreSink`], standalone mode) or over HTTP as
//! Arrow IPC (`POST /api/v1/ingest/{signal}`, the network sink's endpoint).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures::future::BoxFuture;
use futures::FutureExt;
use meridian_collector::sink::{Sink, SinkError};
use meridian_collector::{ipc, Signal, SignalBatch};

use crate::error::StoreError;
use crate::store::Store;

/// The in-process sink: the collector hands batches straight to the store.
pub struct StoreSink {
    store: Arc<Store>,
}

impl StoreSink {
    /// A sink into `store`.
    pub fn new(store: Arc<Store>) -> Self {
        Self { store }
    }
}

impl Sink for StoreSink {
    fn name(&self) -> &'static str {
        "in_process"
    }

    fn deliver(&self, batch: SignalBatch) -> BoxFuture<'_, Result<(), SinkError>> {
        let result = self.store.insert(batch).map_err(|e| match e {
            StoreError::Behind(_) => SinkError::Unavailable(e.to_string()),
            other => SinkError::Refused(other.to_string()),
        });
        futures::future::ready(result).boxed()
    }
}

/// The `/api/v1/ingest/{signal}` route.
pub fn router(store: Arc<Store>) -> Router {
    Router::new()
        .route("/api/v1/ingest/{signal}", post(ingest))
        .layer(DefaultBodyLimit::max(256 << 20))
        .with_state(store)
}

async fn ingest(
    State(store): State<Arc<Store>>,
    Path(signal): Path<String>,
    body: Bytes,
) -> Response {
    let signal: Signal = match signal.parse() {
        Ok(s) => s,
        Err(e) => return (StatusCode::NOT_FOUND, e).into_response(),
    };
    let batches = match ipc::decode(&body) {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("invalid Arrow IPC stream: {e}"),
            )
                .into_response()
        }
    };
    for batch in batches {
        match store.insert(SignalBatch::new(signal, batch)) {
            Ok(()) => {}
            Err(e @ StoreError::Behind(_)) => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [("retry-after", "1")],
                    e.to_string(),
                )
                    .into_response()
            }
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        }
    }
    StatusCode::NO_CONTENT.into_response()
}
