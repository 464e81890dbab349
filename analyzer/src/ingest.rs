//! Batches arriving from collectors: in-process ([`StoreSink`], standalone mode) or over HTTP in
//! a wire encoding named by the Content-Type (`POST /api/v1/ingest/{signal}`, the network
//! sink's endpoint).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures::future::BoxFuture;
use futures::FutureExt;
use meridian_collector::memory::MemoryLimit;
use meridian_collector::sink::network::{COLLECTOR_HEADER, SEQUENCE_HEADER};
use meridian_collector::sink::{Sink, SinkError};
use meridian_collector::wire::{self, Encoding};
use meridian_collector::{Signal, SignalBatch};

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
    memory: MemoryLimit,
}

/// The largest delivery accepted, in bytes (the network sink sends far smaller ones).
const MAX_BODY: usize = 256 << 20;

/// Memory a delivery may take per byte of its body once decoded (its buffers are
/// zstd-compressed): an estimate on the safe side, reserved before the body is read.
const DECODED_PER_BODY_BYTE: u64 = 8;

/// The `/api/v1/ingest/{signal}` route; deliveries `memory` has no room for are refused with
/// 503 before they are read.
pub fn router(store: Arc<Store>, memory: MemoryLimit) -> Router {
    let state = IngestState { store, memory };
    Router::new()
        .route("/api/v1/ingest/{signal}", post(ingest))
        .with_state(state)
}

/// A retryable refusal.
fn unavailable(message: String) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [("retry-after", "1")],
        message,
    )
        .into_response()
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
    body: Body,
) -> Response {
    let store = &state.store;
    let signal: Signal = match signal.parse() {
        Ok(s) => s,
        Err(e) => return (StatusCode::NOT_FOUND, e).into_response(),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let encoding = match Encoding::from_content_type(content_type) {
        Ok(encoding) => encoding,
        Err(e) => {
            meridian_collector::listen::discard(body.into_data_stream(), MAX_BODY).await;
            return (StatusCode::UNSUPPORTED_MEDIA_TYPE, e).into_response();
        }
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .unwrap_or(1 << 20)
        .min(MAX_BODY as u64);
    let reserve = declared.saturating_mul(1 + DECODED_PER_BODY_BYTE);
    let _reservation = match state.memory.reserve("api", reserve) {
        Ok(reservation) => reservation,
        Err(e) => {
            meridian_collector::listen::discard(body.into_data_stream(), MAX_BODY).await;
            return unavailable(e.to_string());
        }
    };
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(e) => {
            let message = format!("reading the delivery (at most {MAX_BODY} bytes): {e}");
            return (StatusCode::PAYLOAD_TOO_LARGE, message).into_response();
        }
    };
    let batches = match wire::decode(encoding, &signal.schema(), &body) {
        Ok(b) => b,
        Err(e) => {
            let message = format!("invalid batch (wire encoding {}): {e}", encoding.code());
            return (StatusCode::BAD_REQUEST, message).into_response();
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
        Err(e) if e.is_retryable() => return unavailable(e.to_string()),
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
    StatusCode::NO_CONTENT.into_response()
}
