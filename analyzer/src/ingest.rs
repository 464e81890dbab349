//! Batches arriving from collectors: in-process ([`StoreSink`], standalone mode) or over HTTP as
//! Arrow IPC (`POST /api/v1/ingest/{signal}`, the network sink's endpoint).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures::future::BoxFuture;
use futures::FutureExt;
use meridian_collector::sink::network::{COLLECTOR_HEADER, SEQUENCE_HEADER};
use meridian_collector::sink::{Sink, SinkError};
use meridian_collector::{ipc, Signal, SignalBatch};

use crate::store::ledger::{BatchKey, Origin};
use crate::store::{Inserted, Store};

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
        let result = self.store.insert(batch).map_err(|e| {
            if e.is_retryable() {
                SinkError::Unavailable(e.to_string())
            } else {
                SinkError::Refused(e.to_string())
            }
        });
        futures::future::ready(result).boxed()
    }
}

#[derive(Clone)]
struct IngestState {
    store: Arc<Store>,
}

/// The `/api/v1/ingest/{signal}` route.
pub fn router(store: Arc<Store>) -> Router {
    let state = IngestState { store };
    Router::new()
        .route("/api/v1/ingest/{signal}", post(ingest))
        .layer(DefaultBodyLimit::max(256 << 20))
        .with_state(state)
}

/// The batch id headers, if the sender set both.
fn batch_id(headers: &HeaderMap) -> Option<BatchKey> {
    let collector = headers.get(COLLECTOR_HEADER)?.to_str().ok()?.to_owned();
    let sequence = headers.get(SEQUENCE_HEADER)?.to_str().ok()?.parse().ok()?;
    Some(BatchKey {
        collector,
        sequence,
        part: 0,
    })
}

async fn ingest(
    State(state): State<IngestState>,
    Path(signal): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let store = &state.store;
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
    // All of a delivery's batches are stored together or not at all, so a retry never
    // duplicates part of it.
    let origin = Origin {
        kafka: None,
        batch: batch_id(&headers),
    };
    match store.insert_from(SignalBatch::from_batches(signal, batches), origin) {
        Ok(Inserted::Stored) => {}
        Ok(Inserted::Repeat) => {
            tracing::debug!("batch already stored; acknowledging the retry");
        }
        Err(e) if e.is_retryable() => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", "1")],
                e.to_string(),
            )
                .into_response()
        }
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
    StatusCode::NO_CONTENT.into_response()
}
