//! Builders of OTLP messages — attributes, resources, spans, trace requests — for the tests, the
//! demo's generated history and the benchmarks, so each of them states only what differs.
//!
//! ```
//! use meridian_collector::otlp::builders::{kv, span, traces};
//! let mut s = span("GET /api/orders", 7);
//! s.attributes = vec![kv("http.route", "/api/orders"), kv("http.response.status_code", 503)];
//! let request = traces("api-gateway", vec![s]);
//! assert_eq!(request.resource_spans[0].scope_spans[0].spans.len(), 1);
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, ResourceSpans, ScopeSpans, Span};

/// What an attribute value can be built from.
pub trait IntoValue {
    /// The OTLP value.
    fn into_value(self) -> Value;
}

impl IntoValue for Value {
    fn into_value(self) -> Value {
        self
    }
}

impl IntoValue for &str {
    fn into_value(self) -> Value {
        Value::StringValue(self.to_owned())
    }
}

impl IntoValue for String {
    fn into_value(self) -> Value {
        Value::StringValue(self)
    }
}

impl IntoValue for i64 {
    fn into_value(self) -> Value {
        Value::IntValue(self)
    }
}

impl IntoValue for f64 {
    fn into_value(self) -> Value {
        Value::DoubleValue(self)
    }
}

impl IntoValue for bool {
    fn into_value(self) -> Value {
        Value::BoolValue(self)
    }
}

/// An attribute: `key` = `value` (a string, `i64`, `f64`, `bool` or any OTLP value).
pub fn kv(key: &str, value: impl IntoValue) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(value.into_value()),
        }),
        key_strindex: 0,
    }
}

/// A resource with these attributes.
pub fn resource(attributes: Vec<KeyValue>) -> Resource {
    Resource {
        attributes,
        ..Default::default()
    }
}

/// A valid server span named `name`, its trace and span ids derived from `n` (distinct for
/// distinct `n`), starting now and lasting 1 ms.
pub fn span(name: &str, n: u64) -> Span {
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&(n + 1).to_be_bytes());
    trace_id[8..].copy_from_slice(&0xabcdu64.to_be_bytes());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    Span {
        trace_id: trace_id.to_vec(),
        span_id: (n + 1).to_be_bytes().to_vec(),
        name: name.to_owned(),
        kind: SpanKind::Server as i32,
        start_time_unix_nano: now,
        end_time_unix_nano: now + 1_000_000,
        ..Default::default()
    }
}

/// A trace export request of `spans` under one resource and scope.
pub fn trace_request(
    resource: Resource,
    scope: Option<InstrumentationScope>,
    spans: Vec<Span>,
) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                scope,
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// A trace export request of `spans` from the service `service` (its only resource attribute).
pub fn traces(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    trace_request(resource(vec![kv("service.name", service)]), None, spans)
}
