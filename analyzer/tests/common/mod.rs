//! Helpers shared by the analyzer's tests.
#![allow(dead_code)]

pub mod s3;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use meridian_analyzer::query::QueryEngine;
use meridian_collector::convert::traces_to_arrow;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

/// A `spans` batch holding these spans under one default resource and scope, region `r`.
pub fn spans_batch(spans: Vec<Span>) -> RecordBatch {
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    traces_to_arrow(&request, "r").unwrap().batch
}

/// The single number a `SELECT count(*) ...` query returns.
pub async fn count(engine: &QueryEngine, sql: &str) -> i64 {
    let result = engine.query(sql).await.unwrap();
    result.batches[0]
        .column(0)
        .as_primitive::<Int64Type>()
        .value(0)
}
