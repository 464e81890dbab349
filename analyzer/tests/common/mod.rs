//! Helpers shared by the analyzer's tests.

use arrow::array::RecordBatch;
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
