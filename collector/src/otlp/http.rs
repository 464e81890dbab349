//! OTLP/HTTP receiver: `POST /v1/traces`, `/v1/metrics`, `/v1/logs` with protobuf or JSON bodies,
//! optionally gzip/deflate/zstd-encoded. Answers in the request's content type.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::decompress::{decompress, DecompressError};
use super::{ExportRequest, Intake, IntakeError, Protocol};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// Shared state of the HTTP receiver.
#[derive(Clone)]
struct HttpState {
    intake: Intake,
    max_body: usize,
}

/// The OTLP/HTTP routes; `max_body` bounds the body before and after decompression.
pub fn router(intake: Intake, max_body: usize) -> Router {
    Router::new()
        .route("/v1/traces", post(export::<ExportTraceServiceRequest>))
        .route("/v1/metrics", post(export::<ExportMetricsServiceRequest>))
        .route("/v1/logs", post(export::<ExportLogsServiceRequest>))
        .layer(DefaultBodyLimit::disable())
        .with_state(HttpState { intake, max_body })
}

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Protobuf,
    Json,
}

/// A `google.rpc.Status` error response in the request's encoding.
fn status_response(encoding: Encoding, http: StatusCode, code: i32, message: String) -> Response {
    match encoding {
        Encoding::Json => {
            let body = serde_json::json!({ "code": code, "message": message }).to_string();
            (http, [(header::CONTENT_TYPE, JSON)], body).into_response()
        }
        Encoding::Protobuf => {
            let body = tonic_types::Status {
                code,
                message,
                details: Vec::new(),
            }
            .encode_to_vec();
            (http, [(header::CONTENT_TYPE, PROTOBUF)], body).into_response()
        }
    }
}

// google.rpc.Code values used in error bodies.
const INVALID_ARGUMENT: i32 = 3;
const RESOURCE_EXHAUSTED: i32 = 8;
const INTERNAL: i32 = 13;
const UNAVAILABLE: i32 = 14;

async fn export<R: ExportRequest>(
    State(state): State<HttpState>,
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
        PROTOBUF | "application/protobuf" => Encoding::Protobuf,
        JSON => Encoding::Json,
        other => {
            let message = format!("unsupported Content-Type `{other}`; use {PROTOBUF} or {JSON}");
            return status_response(
                Encoding::Json,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                INVALID_ARGUMENT,
                message,
            );
        }
    };
    let protocol = match encoding {
        Encoding::Protobuf => Protocol::HttpProtobuf,
        Encoding::Json => Protocol::HttpJson,
    };
    // Read the body ourselves (not with the `Bytes` extractor) so an oversized body gets the same
    // google.rpc.Status answer as every other error.
    let body: Bytes = match axum::body::to_bytes(body, state.max_body).await {
        Ok(b) => b,
        Err(e) => {
            state.intake.malformed(R::SIGNAL, protocol);
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            let (http, code, message) = if too_large {
                let m = format!("request body exceeds {} bytes", state.max_body);
                (StatusCode::PAYLOAD_TOO_LARGE, RESOURCE_EXHAUSTED, m)
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    INVALID_ARGUMENT,
                    format!("reading the request body: {e}"),
                )
            };
            return status_response(encoding, http, code, message);
        }
    };
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let raw = match decompress(content_encoding, &body, state.max_body) {
        Ok(raw) => raw,
        Err(e) => {
            state.intake.malformed(R::SIGNAL, protocol);
            let (http, code) = match e {
                DecompressError::TooLarge { .. } => {
                    (StatusCode::PAYLOAD_TOO_LARGE, RESOURCE_EXHAUSTED)
                }
                DecompressError::Unsupported(_) => {
                    (StatusCode::UNSUPPORTED_MEDIA_TYPE, INVALID_ARGUMENT)
                }
                DecompressError::Corrupt { .. } => (StatusCode::BAD_REQUEST, INVALID_ARGUMENT),
            };
            return status_response(encoding, http, code, e.to_string());
        }
    };
    let decoded = match encoding {
        Encoding::Protobuf => {
            R::decode(raw.as_ref()).map_err(|e| format!("invalid OTLP protobuf: {e}"))
        }
        Encoding::Json => R::decode_json(&raw).map_err(|e| e.to_string()),
    };
    let request = match decoded {
        Ok(r) => r,
        Err(message) => {
            state.intake.malformed(R::SIGNAL, protocol);
            return status_response(encoding, StatusCode::BAD_REQUEST, INVALID_ARGUMENT, message);
        }
    };
    match state.intake.accept(&request, protocol).await {
        Ok(accepted) => match encoding {
            Encoding::Protobuf => {
                let body = R::response(&accepted).encode_to_vec();
                (StatusCode::OK, [(header::CONTENT_TYPE, PROTOBUF)], body).into_response()
            }
            Encoding::Json => {
                let body = R::response_json(&accepted).to_string();
                (StatusCode::OK, [(header::CONTENT_TYPE, JSON)], body).into_response()
            }
        },
        Err(IntakeError::Overloaded {
            reason,
            retry_after,
        }) => {
            let mut response = status_response(
                encoding,
                StatusCode::SERVICE_UNAVAILABLE,
                UNAVAILABLE,
                reason,
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after_header(retry_after));
            response
        }
        Err(e @ IntakeError::Convert(_)) => {
            tracing::error!(error = %e, "OTLP/HTTP request could not be converted");
            status_response(
                encoding,
                StatusCode::INTERNAL_SERVER_ERROR,
                INTERNAL,
                e.to_string(),
            )
        }
    }
}

/// `Retry-After` in whole seconds, at least one.
fn retry_after_header(d: Duration) -> HeaderValue {
    HeaderValue::from(d.as_secs_f64().ceil().max(1.0) as u64)
}
