//! Property tests: OTLP → Arrow → OTLP reproduces every field of every signal.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use proptest::prelude::*;

use super::to_otlp::{logs_from_arrow, metrics_from_arrow, traces_from_arrow};
use super::*;
use crate::otlp::builders::kv;
use crate::testing::strategies::{logs, metrics, traces};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Scenario: any valid trace request. Guarantees: OTLP → Arrow → OTLP is the identity.
    #[test]
    fn traces_round_trip(request in traces()) {
        let converted = traces_to_arrow(&request, "r1").unwrap();
        prop_assert_eq!(converted.rejected, 0);
        prop_assert_eq!(traces_from_arrow(&converted.batch).unwrap(), request);
    }

    /// Scenario: any metrics request with all five point kinds. Guarantees: the identity.
    #[test]
    fn metrics_round_trip(request in metrics()) {
        let converted = metrics_to_arrow(&request, "r1").unwrap();
        prop_assert_eq!(converted.rejected, 0);
        prop_assert_eq!(metrics_from_arrow(&converted.batch).unwrap(), request);
    }

    /// Scenario: any logs request, every body kind. Guarantees: the identity.
    #[test]
    fn logs_round_trip(request in logs()) {
        let converted = logs_to_arrow(&request, "r1").unwrap();
        prop_assert_eq!(converted.rejected, 0);
        prop_assert_eq!(logs_from_arrow(&converted.batch).unwrap(), request);
    }
}

/// Scenario: spans with a short trace id and an all-zero span id among valid ones.
/// Guarantees: only the invalid ones are rejected, counted, and described.
#[test]
fn invalid_ids_are_rejected_individually() {
    let mut good = Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "ok".into(),
        ..Default::default()
    };
    good.start_time_unix_nano = 5;
    let short = Span {
        trace_id: vec![1; 5],
        span_id: vec![2; 8],
        name: "short".into(),
        ..Default::default()
    };
    let zero = Span {
        trace_id: vec![1; 16],
        span_id: vec![0; 8],
        name: "zero".into(),
        ..Default::default()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![good, short, zero],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let converted = traces_to_arrow(&request, "r1").unwrap();
    assert_eq!(converted.batch.num_rows(), 1);
    assert_eq!(converted.rejected, 2);
    assert!(
        converted
            .error_message
            .contains("trace_id must be 16 bytes, got 5"),
        "{}",
        converted.error_message
    );
}

/// Scenario: a span with promoted attributes under old and new names.
/// Guarantees: the promoted columns and the region are filled.
#[test]
fn promoted_columns_and_region() {
    use arrow::array::{AsArray, Int32Array};
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", Value::StringValue("gw".into())),
                    kv("cloud.region", Value::StringValue("eu".into())),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    kind: 2,
                    attributes: vec![
                        kv("http.method", Value::StringValue("GET".into())),
                        kv("http.status_code", Value::IntValue(503)),
                        kv("http.route", Value::StringValue("/a/{id}".into())),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let batch = traces_to_arrow(&request, "us-east-1").unwrap().batch;
    let col = |n: &str| {
        batch
            .column_by_name(n)
            .unwrap()
            .as_string::<i32>()
            .value(0)
            .to_owned()
    };
    assert_eq!(col("region"), "us-east-1");
    assert_eq!(col("cloud_region"), "eu");
    assert_eq!(col("service_name"), "gw");
    assert_eq!(col("http_request_method"), "GET");
    assert_eq!(col("http_route"), "/a/{id}");
    assert_eq!(col("kind"), "server");
    let status = batch.column_by_name("http_response_status_code").unwrap();
    assert_eq!(
        status
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap()
            .value(0),
        503
    );
}
