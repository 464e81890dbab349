//! `POST /api/v1/sql`: a query in, its result out as JSON (default), CSV (`Accept: text/csv`) or
//! an Arrow IPC stream (`Accept: application/vnd.apache.arrow.stream`).

use std::sync::Arc;

use arrow::array::RecordBatch;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::sql::{QueryEngine, QueryResult};
use crate::error::QueryError;

/// Response header saying whether the result was cut at `max_result_rows`.
pub const TRUNCATED_HEADER: &str = "x-meridian-truncated";

/// The request body.
#[derive(Deserialize)]
struct SqlRequest {
    query: String,
}

/// The `/api/v1/sql` route.
pub fn router(engine: Arc<QueryEngine>) -> Router {
    Router::new()
        .route("/api/v1/sql", post(sql))
        .with_state(engine)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn sql(
    State(engine): State<Arc<QueryEngine>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let request: SqlRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("body must be {{\"query\": \"...\"}}: {e}"),
            )
        }
    };
    let result = match engine.query(&request.query).await {
        Ok(r) => r,
        Err(QueryError::Invalid(m)) => return error(StatusCode::BAD_REQUEST, m),
        Err(QueryError::Execution(m)) => return error(StatusCode::INTERNAL_SERVER_ERROR, m),
        // As Prometheus's query API: a timeout is 503, a query too big to run is 422.
        Err(e @ QueryError::Timeout(_)) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        Err(e @ QueryError::TooLarge(_)) => {
            return error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
    };
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let encoded = if accept.contains(meridian_collector::ipc::CONTENT_TYPE) {
        arrow_ipc(&result).map(|b| (meridian_collector::ipc::CONTENT_TYPE, b))
    } else if accept.contains("text/csv") {
        csv(&result.batches).map(|b| ("text/csv; charset=utf-8", b))
    } else {
        json_body(&result).map(|b| ("application/json", b))
    };
    let truncated = if result.truncated { "true" } else { "false" };
    match encoded {
        Ok((content_type, body)) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::HeaderName::from_static(TRUNCATED_HEADER), truncated),
            ],
            body,
        )
            .into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the result: {e}"),
        ),
    }
}

/// `{"columns": [{"name", "type"}...], "truncated": bool, "rows": [{column: value}...]}`; nulls
/// are explicit.
fn json_body(result: &QueryResult) -> Result<Vec<u8>, arrow::error::ArrowError> {
    let mut rows = Vec::new();
    {
        let mut writer = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(&mut rows);
        let batches: Vec<&RecordBatch> = result.batches.iter().collect();
        writer.write_batches(&batches)?;
        writer.finish()?;
    }
    if rows.is_empty() {
        rows.extend_from_slice(b"[]");
    }
    let columns: Vec<_> = result
        .schema
        .fields()
        .iter()
        .map(|f| json!({ "name": f.name(), "type": f.data_type().to_string() }))
        .collect();
    let mut out = format!(
        "{{\"columns\":{},\"truncated\":{},\"rows\":",
        serde_json::Value::from(columns),
        result.truncated
    )
    .into_bytes();
    out.extend_from_slice(&rows);
    out.push(b'}');
    Ok(out)
}

fn csv(batches: &[RecordBatch]) -> Result<Vec<u8>, arrow::error::ArrowError> {
    let mut out = Vec::new();
    {
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut out);
        for b in batches {
            writer.write(b)?;
        }
    }
    Ok(out)
}

fn arrow_ipc(result: &QueryResult) -> Result<Vec<u8>, arrow::error::ArrowError> {
    let mut out = Vec::new();
    {
        let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut out, &result.schema)?;
        for b in &result.batches {
            writer.write(b)?;
        }
        writer.finish()?;
    }
    Ok(out)
}
