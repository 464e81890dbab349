//! OTLP/HTTP receiver: `POST /v1/traces`, `/v1/metrics`, `/v1/logs` with protobuf or JSON bodies,
//! optionally gzip/deflate/zstd-encoded. Answers in the request's content type.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{header, Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::BytesMut;
use futures::StreamExt;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::decompress::{decompress, DecompressError};
use super::{Accepted, ExportRequest, Intake, IntakeError, Protocol, Sender};
use crate::auth::{self, Auth, Scope};
use crate::memory::{Reservation, DECODED_PER_BODY_BYTE};
use crate::tls::conn::ClientAddr;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// Shared state of the HTTP receiver.
#[derive(Clone)]
struct HttpState {
    intake: Intake,
    max_body: usize,
    auth: Auth,
}

/// The OTLP/HTTP routes; `max_body` bounds the body before and after decompression; requests
/// need an `ingest` token when `auth` has tokens.
pub fn router(intake: Intake, max_body: usize, auth: Auth) -> Router {
    Router::new()
        .route("/v1/traces", post(export::<ExportTraceServiceRequest>))
        .route("/v1/metrics", post(export::<ExportMetricsServiceRequest>))
        .route("/v1/logs", post(export::<ExportLogsServiceRequest>))
        .layer(DefaultBodyLimit::disable())
        .with_state(HttpState {
            intake,
            max_body,
            auth,
        })
}

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Protobuf,
    Json,
}

/// A `google.rpc.Status` error response in the request's encoding, with the status from the
/// shared table ([`IntakeError::status`]) and `Retry-After` when the error is retryable.
fn error_response(encoding: Encoding, error: &IntakeError) -> Response {
    let (http, code) = error.status();
    let message = error.to_string();
    let mut response = match encoding {
        Encoding::Json => {
            let body = serde_json::json!({ "code": code as i32, "message": message }).to_string();
            (http, [(header::CONTENT_TYPE, JSON)], body).into_response()
        }
        Encoding::Protobuf => {
            let body = tonic_types::Status {
                code: code as i32,
                message,
                details: Vec::new(),
            }
            .encode_to_vec();
            (http, [(header::CONTENT_TYPE, PROTOBUF)], body).into_response()
        }
    };
    if let Some(wait) = error.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after_header(wait));
    }
    if http == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(auth::http::CHALLENGE),
        );
    }
    response
}

async fn export<R: ExportRequest>(
    State(state): State<HttpState>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let encoding = match content_type.as_str() {
        PROTOBUF | "application/protobuf" => Some(Encoding::Protobuf),
        JSON => Some(Encoding::Json),
        _ => None,
    };
    // Before anything else, so an unknown caller learns nothing and costs no decoding.
    let caller = match auth::http::authorize(&state.auth, "otlp_http", &headers, Scope::Ingest) {
        Ok(caller) => caller,
        Err(denied) => return error_response(encoding.unwrap_or(Encoding::Json), &denied.into()),
    };
    let addr = extensions
        .get::<ConnectInfo<ClientAddr>>()
        .map(|ConnectInfo(ClientAddr(addr))| *addr);
    let sender = Sender::of(Some(&caller), addr);
    let encoding = match encoding {
        Some(encoding) => encoding,
        None => {
            let other = content_type.as_str();
            let message = format!("unsupported Content-Type `{other}`; use {PROTOBUF} or {JSON}");
            return error_response(Encoding::Json, &IntakeError::UnsupportedMediaType(message));
        }
    };
    let protocol = match encoding {
        Encoding::Protobuf => Protocol::HttpProtobuf,
        Encoding::Json => Protocol::HttpJson,
    };
    // Before the body is read: its first chunk, decoded. The reservation then grows with what
    // arrives (Content-Length is not trusted: a client declaring gigabytes and sending slowly
    // must not hold everyone's room).
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let first = declared.unwrap_or(FIRST_CHUNK).min(FIRST_CHUNK);
    let reserve = first.saturating_mul(1 + DECODED_PER_BODY_BYTE);
    let mut reservation = match state.intake.admit(R::SIGNAL, protocol, reserve) {
        Ok(reservation) => reservation,
        Err(e) => {
            crate::listen::discard(body.into_data_stream(), state.max_body).await;
            return error_response(encoding, &e);
        }
    };
    let received = receive::<R>(
        &state,
        &headers,
        body,
        declared,
        (encoding, protocol),
        &mut reservation,
    );
    match received.await {
        Ok(request) => match state.intake.accept(&request, protocol, &sender).await {
            Ok(accepted) => ok_response::<R>(encoding, &accepted),
            Err(e) => {
                if let IntakeError::Convert(_) = e {
                    tracing::error!(error = %e, "OTLP/HTTP request could not be converted");
                }
                error_response(encoding, &e)
            }
        },
        Err(e @ IntakeError::Overloaded { .. }) => error_response(encoding, &e),
        Err(e) => {
            state.intake.malformed(R::SIGNAL, protocol);
            error_response(encoding, &e)
        }
    }
}

/// The body a request reserves room for before any of it is read.
const FIRST_CHUNK: u64 = 64 << 10;

/// Reads, decompresses and decodes the body, each within `max_body` bytes, raising
/// `reservation` as the body arrives and to the decoded request's estimated size before
/// decoding.
async fn receive<R: ExportRequest>(
    state: &HttpState,
    headers: &HeaderMap,
    body: Body,
    declared: Option<u64>,
    (encoding, protocol): (Encoding, Protocol),
    reservation: &mut Reservation,
) -> Result<R, IntakeError> {
    let body = read_body::<R>(state, body, declared, protocol, reservation).await?;
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let raw = decompress(content_encoding, &body, state.max_body).map_err(|e| {
        let message = e.to_string();
        match e {
            DecompressError::TooLarge { .. } => IntakeError::TooLarge(message),
            DecompressError::Unsupported(_) => IntakeError::UnsupportedMediaType(message),
            DecompressError::Corrupt { .. } => IntakeError::Malformed(message),
        }
    })?;
    let decoded = (raw.len() as u64).saturating_mul(DECODED_PER_BODY_BYTE);
    let total = decoded.saturating_add(body.len() as u64 + raw.len() as u64);
    state.intake.grow(reservation, R::SIGNAL, protocol, total)?;
    match encoding {
        Encoding::Protobuf => R::decode(raw.as_ref()).map_err(IntakeError::undecodable),
        Encoding::Json => R::decode_json(&raw).map_err(|e| IntakeError::Malformed(e.to_string())),
    }
}

/// Reads the body (ourselves, not with the `Bytes` extractor, so an oversized body gets the same
/// `google.rpc.Status` answer as every other error), growing `reservation` chunk by chunk; a
/// refusal mid-way reads and drops the rest, so the client gets the answer.
async fn read_body<R: ExportRequest>(
    state: &HttpState,
    body: Body,
    declared: Option<u64>,
    protocol: Protocol,
    reservation: &mut Reservation,
) -> Result<Bytes, IntakeError> {
    let too_large =
        || IntakeError::TooLarge(format!("request body exceeds {} bytes", state.max_body));
    let mut chunks = body.into_data_stream();
    if declared.is_some_and(|n| n > state.max_body as u64) {
        // Refused unread, but read up to the limit (and dropped) so the client, still writing,
        // gets the 413 instead of a broken pipe, which it would retry.
        crate::listen::discard(chunks, state.max_body).await;
        return Err(too_large());
    }
    let mut read = BytesMut::with_capacity(declared.unwrap_or(0).min(1 << 20) as usize);
    while let Some(chunk) = chunks.next().await {
        let chunk =
            chunk.map_err(|e| IntakeError::Malformed(format!("reading the request body: {e}")))?;
        let len = read.len() + chunk.len();
        if len > state.max_body {
            return Err(too_large());
        }
        let want = (len as u64).saturating_mul(1 + DECODED_PER_BODY_BYTE);
        if let Err(e) = state.intake.grow(reservation, R::SIGNAL, protocol, want) {
            crate::listen::discard(chunks, state.max_body - len).await;
            return Err(e);
        }
        read.extend_from_slice(&chunk);
    }
    Ok(read.freeze())
}

/// The Export response in the request's encoding.
fn ok_response<R: ExportRequest>(encoding: Encoding, accepted: &Accepted) -> Response {
    match encoding {
        Encoding::Protobuf => {
            let body = R::response(accepted).encode_to_vec();
            (StatusCode::OK, [(header::CONTENT_TYPE, PROTOBUF)], body).into_response()
        }
        Encoding::Json => {
            let body = R::response_json(accepted).to_string();
            (StatusCode::OK, [(header::CONTENT_TYPE, JSON)], body).into_response()
        }
    }
}

/// `Retry-After` in whole seconds, at least one.
fn retry_after_header(d: Duration) -> HeaderValue {
    HeaderValue::from(d.as_secs_f64().ceil().max(1.0) as u64)
}
