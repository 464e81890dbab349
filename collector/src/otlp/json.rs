//! OTLP/JSON as the OTLP specification defines it, decoded into the protobuf types.
//!
//! Differences from the canonical proto3 JSON mapping that the spec requires, all handled here:
//! trace and span ids are hex (not base64); enums are integers (names also accepted); keys are
//! lowerCamelCase (the original snake_case names are accepted too); 64-bit integers may be decimal
//! strings or numbers; unknown fields are ignored. We do not use `opentelemetry-proto`'s serde
//! support for input because it rejects valid requests (missing optional fields, names for enums)
//! and can silently drop a oneof value.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    summary_data_point::ValueAtQuantile, Exemplar, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use serde_json::{Map, Value};

use crate::json::any_value::{any_value, key_value};
pub use crate::json::JsonError;
use crate::json::{
    boolean, enumeration, float, float_value, get, id, integer, integer_value, list, object, parse,
    string, Result,
};

fn attributes(obj: &Map<String, Value>, path: &str) -> Result<Vec<KeyValue>> {
    list(obj, "attributes", path, key_value)
}

fn resource(obj: &Map<String, Value>, path: &str) -> Result<Option<Resource>> {
    get(obj, "resource")
        .map(|r| {
            let path = format!("{path}.resource");
            let r = object(r, &path)?;
            Ok(Resource {
                attributes: attributes(r, &path)?,
                dropped_attributes_count: integer(r, "droppedAttributesCount", &path)?,
                entity_refs: Vec::new(),
            })
        })
        .transpose()
}

fn scope(obj: &Map<String, Value>, path: &str) -> Result<Option<InstrumentationScope>> {
    get(obj, "scope")
        .map(|s| {
            let path = format!("{path}.scope");
            let s = object(s, &path)?;
            Ok(InstrumentationScope {
                name: string(s, "name", &path)?,
                version: string(s, "version", &path)?,
                attributes: attributes(s, &path)?,
                dropped_attributes_count: integer(s, "droppedAttributesCount", &path)?,
            })
        })
        .transpose()
}

const SPAN_KINDS: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
const STATUS_CODES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];
const TEMPORALITIES: [&str; 3] = [
    "AGGREGATION_TEMPORALITY_UNSPECIFIED",
    "AGGREGATION_TEMPORALITY_DELTA",
    "AGGREGATION_TEMPORALITY_CUMULATIVE",
];

/// Decodes an `ExportTraceServiceRequest` from OTLP/JSON.
pub fn decode_traces(body: &[u8]) -> Result<ExportTraceServiceRequest> {
    let root = parse(body)?;
    let resource_spans = list(object(&root, "$")?, "resourceSpans", "$", |v, path| {
        let o = object(v, path)?;
        Ok(ResourceSpans {
            resource: resource(o, path)?,
            scope_spans: list(o, "scopeSpans", path, |v, path| {
                let o = object(v, path)?;
                Ok(ScopeSpans {
                    scope: scope(o, path)?,
                    spans: list(o, "spans", path, decode_span)?,
                    schema_url: string(o, "schemaUrl", path)?,
                })
            })?,
            schema_url: string(o, "schemaUrl", path)?,
        })
    })?;
    Ok(ExportTraceServiceRequest { resource_spans })
}

fn decode_span(v: &Value, path: &str) -> Result<Span> {
    let o = object(v, path)?;
    let status = get(o, "status")
        .map(|s| {
            let path = format!("{path}.status");
            let s = object(s, &path)?;
            Ok(Status {
                message: string(s, "message", &path)?,
                code: enumeration(s, "code", &path, &STATUS_CODES)?,
            })
        })
        .transpose()?;
    Ok(Span {
        trace_id: id(o, "traceId", path)?,
        span_id: id(o, "spanId", path)?,
        trace_state: string(o, "traceState", path)?,
        parent_span_id: id(o, "parentSpanId", path)?,
        flags: integer(o, "flags", path)?,
        name: string(o, "name", path)?,
        kind: enumeration(o, "kind", path, &SPAN_KINDS)?,
        start_time_unix_nano: integer(o, "startTimeUnixNano", path)?,
        end_time_unix_nano: integer(o, "endTimeUnixNano", path)?,
        attributes: attributes(o, path)?,
        dropped_attributes_count: integer(o, "droppedAttributesCount", path)?,
        events: list(o, "events", path, |v, path| {
            let o = object(v, path)?;
            Ok(span::Event {
                time_unix_nano: integer(o, "timeUnixNano", path)?,
                name: string(o, "name", path)?,
                attributes: attributes(o, path)?,
                dropped_attributes_count: integer(o, "droppedAttributesCount", path)?,
            })
        })?,
        dropped_events_count: integer(o, "droppedEventsCount", path)?,
        links: list(o, "links", path, |v, path| {
            let o = object(v, path)?;
            Ok(span::Link {
                trace_id: id(o, "traceId", path)?,
                span_id: id(o, "spanId", path)?,
                trace_state: string(o, "traceState", path)?,
                attributes: attributes(o, path)?,
                dropped_attributes_count: integer(o, "droppedAttributesCount", path)?,
                flags: integer(o, "flags", path)?,
            })
        })?,
        dropped_links_count: integer(o, "droppedLinksCount", path)?,
        status,
    })
}

/// Decodes an `ExportMetricsServiceRequest` from OTLP/JSON.
pub fn decode_metrics(body: &[u8]) -> Result<ExportMetricsServiceRequest> {
    let root = parse(body)?;
    let resource_metrics = list(object(&root, "$")?, "resourceMetrics", "$", |v, path| {
        let o = object(v, path)?;
        Ok(ResourceMetrics {
            resource: resource(o, path)?,
            scope_metrics: list(o, "scopeMetrics", path, |v, path| {
                let o = object(v, path)?;
                Ok(ScopeMetrics {
                    scope: scope(o, path)?,
                    metrics: list(o, "metrics", path, decode_metric)?,
                    schema_url: string(o, "schemaUrl", path)?,
                })
            })?,
            schema_url: string(o, "schemaUrl", path)?,
        })
    })?;
    Ok(ExportMetricsServiceRequest { resource_metrics })
}

fn decode_metric(v: &Value, path: &str) -> Result<Metric> {
    let o = object(v, path)?;
    let temporality = |d: &Map<String, Value>, p: &str| {
        enumeration(d, "aggregationTemporality", p, &TEMPORALITIES)
    };
    let data = if let Some(g) = get(o, "gauge") {
        let p = format!("{path}.gauge");
        Some(Data::Gauge(Gauge {
            data_points: list(object(g, &p)?, "dataPoints", &p, number_point)?,
        }))
    } else if let Some(s) = get(o, "sum") {
        let p = format!("{path}.sum");
        let s = object(s, &p)?;
        Some(Data::Sum(Sum {
            data_points: list(s, "dataPoints", &p, number_point)?,
            aggregation_temporality: temporality(s, &p)?,
            is_monotonic: boolean(s, "isMonotonic", &p)?,
        }))
    } else if let Some(h) = get(o, "histogram") {
        let p = format!("{path}.histogram");
        let h = object(h, &p)?;
        Some(Data::Histogram(Histogram {
            data_points: list(h, "dataPoints", &p, histogram_point)?,
            aggregation_temporality: temporality(h, &p)?,
        }))
    } else if let Some(h) = get(o, "exponentialHistogram") {
        let p = format!("{path}.exponentialHistogram");
        let h = object(h, &p)?;
        Some(Data::ExponentialHistogram(ExponentialHistogram {
            data_points: list(h, "dataPoints", &p, exponential_point)?,
            aggregation_temporality: temporality(h, &p)?,
        }))
    } else if let Some(s) = get(o, "summary") {
        let p = format!("{path}.summary");
        Some(Data::Summary(Summary {
            data_points: list(object(s, &p)?, "dataPoints", &p, summary_point)?,
        }))
    } else {
        None
    };
    Ok(Metric {
        name: string(o, "name", path)?,
        description: string(o, "description", path)?,
        unit: string(o, "unit", path)?,
        metadata: list(o, "metadata", path, key_value)?,
        data,
    })
}

fn u64_list(o: &Map<String, Value>, key: &str, path: &str) -> Result<Vec<u64>> {
    list(o, key, path, integer_value)
}

fn exemplars(o: &Map<String, Value>, path: &str) -> Result<Vec<Exemplar>> {
    list(o, "exemplars", path, |v, path| {
        let o = object(v, path)?;
        let value = if let Some(d) = float(o, "asDouble", path)? {
            Some(exemplar::Value::AsDouble(d))
        } else if get(o, "asInt").is_some() {
            Some(exemplar::Value::AsInt(integer(o, "asInt", path)?))
        } else {
            None
        };
        Ok(Exemplar {
            filtered_attributes: list(o, "filteredAttributes", path, key_value)?,
            time_unix_nano: integer(o, "timeUnixNano", path)?,
            span_id: id(o, "spanId", path)?,
            trace_id: id(o, "traceId", path)?,
            value,
        })
    })
}

fn number_point(v: &Value, path: &str) -> Result<NumberDataPoint> {
    let o = object(v, path)?;
    let value = if let Some(d) = float(o, "asDouble", path)? {
        Some(number_data_point::Value::AsDouble(d))
    } else if get(o, "asInt").is_some() {
        Some(number_data_point::Value::AsInt(integer(o, "asInt", path)?))
    } else {
        None
    };
    Ok(NumberDataPoint {
        attributes: attributes(o, path)?,
        start_time_unix_nano: integer(o, "startTimeUnixNano", path)?,
        time_unix_nano: integer(o, "timeUnixNano", path)?,
        exemplars: exemplars(o, path)?,
        flags: integer(o, "flags", path)?,
        value,
    })
}

fn histogram_point(v: &Value, path: &str) -> Result<HistogramDataPoint> {
    let o = object(v, path)?;
    Ok(HistogramDataPoint {
        attributes: attributes(o, path)?,
        start_time_unix_nano: integer(o, "startTimeUnixNano", path)?,
        time_unix_nano: integer(o, "timeUnixNano", path)?,
        count: integer(o, "count", path)?,
        sum: float(o, "sum", path)?,
        bucket_counts: u64_list(o, "bucketCounts", path)?,
        explicit_bounds: list(o, "explicitBounds", path, float_value)?,
        exemplars: exemplars(o, path)?,
        flags: integer(o, "flags", path)?,
        min: float(o, "min", path)?,
        max: float(o, "max", path)?,
    })
}

fn exponential_point(v: &Value, path: &str) -> Result<ExponentialHistogramDataPoint> {
    let o = object(v, path)?;
    let buckets = |key: &str| -> Result<Option<Buckets>> {
        get(o, key)
            .map(|b| {
                let p = format!("{path}.{key}");
                let b = object(b, &p)?;
                Ok(Buckets {
                    offset: integer(b, "offset", &p)?,
                    bucket_counts: u64_list(b, "bucketCounts", &p)?,
                })
            })
            .transpose()
    };
    Ok(ExponentialHistogramDataPoint {
        attributes: attributes(o, path)?,
        start_time_unix_nano: integer(o, "startTimeUnixNano", path)?,
        time_unix_nano: integer(o, "timeUnixNano", path)?,
        count: integer(o, "count", path)?,
        sum: float(o, "sum", path)?,
        scale: integer(o, "scale", path)?,
        zero_count: integer(o, "zeroCount", path)?,
        positive: buckets("positive")?,
        negative: buckets("negative")?,
        flags: integer(o, "flags", path)?,
        exemplars: exemplars(o, path)?,
        min: float(o, "min", path)?,
        max: float(o, "max", path)?,
        zero_threshold: float(o, "zeroThreshold", path)?.unwrap_or_default(),
    })
}

fn summary_point(v: &Value, path: &str) -> Result<SummaryDataPoint> {
    let o = object(v, path)?;
    Ok(SummaryDataPoint {
        attributes: attributes(o, path)?,
        start_time_unix_nano: integer(o, "startTimeUnixNano", path)?,
        time_unix_nano: integer(o, "timeUnixNano", path)?,
        count: integer(o, "count", path)?,
        sum: float(o, "sum", path)?.unwrap_or_default(),
        quantile_values: list(o, "quantileValues", path, |v, path| {
            let o = object(v, path)?;
            Ok(ValueAtQuantile {
                quantile: float(o, "quantile", path)?.unwrap_or_default(),
                value: float(o, "value", path)?.unwrap_or_default(),
            })
        })?,
        flags: integer(o, "flags", path)?,
    })
}

/// Decodes an `ExportLogsServiceRequest` from OTLP/JSON.
pub fn decode_logs(body: &[u8]) -> Result<ExportLogsServiceRequest> {
    let root = parse(body)?;
    let resource_logs = list(object(&root, "$")?, "resourceLogs", "$", |v, path| {
        let o = object(v, path)?;
        Ok(ResourceLogs {
            resource: resource(o, path)?,
            scope_logs: list(o, "scopeLogs", path, |v, path| {
                let o = object(v, path)?;
                Ok(ScopeLogs {
                    scope: scope(o, path)?,
                    log_records: list(o, "logRecords", path, decode_log)?,
                    schema_url: string(o, "schemaUrl", path)?,
                })
            })?,
            schema_url: string(o, "schemaUrl", path)?,
        })
    })?;
    Ok(ExportLogsServiceRequest { resource_logs })
}

const SEVERITIES: [&str; 25] = [
    "SEVERITY_NUMBER_UNSPECIFIED",
    "SEVERITY_NUMBER_TRACE",
    "SEVERITY_NUMBER_TRACE2",
    "SEVERITY_NUMBER_TRACE3",
    "SEVERITY_NUMBER_TRACE4",
    "SEVERITY_NUMBER_DEBUG",
    "SEVERITY_NUMBER_DEBUG2",
    "SEVERITY_NUMBER_DEBUG3",
    "SEVERITY_NUMBER_DEBUG4",
    "SEVERITY_NUMBER_INFO",
    "SEVERITY_NUMBER_INFO2",
    "SEVERITY_NUMBER_INFO3",
    "SEVERITY_NUMBER_INFO4",
    "SEVERITY_NUMBER_WARN",
    "SEVERITY_NUMBER_WARN2",
    "SEVERITY_NUMBER_WARN3",
    "SEVERITY_NUMBER_WARN4",
    "SEVERITY_NUMBER_ERROR",
    "SEVERITY_NUMBER_ERROR2",
    "SEVERITY_NUMBER_ERROR3",
    "SEVERITY_NUMBER_ERROR4",
    "SEVERITY_NUMBER_FATAL",
    "SEVERITY_NUMBER_FATAL2",
    "SEVERITY_NUMBER_FATAL3",
    "SEVERITY_NUMBER_FATAL4",
];

fn decode_log(v: &Value, path: &str) -> Result<LogRecord> {
    let o = object(v, path)?;
    Ok(LogRecord {
        time_unix_nano: integer(o, "timeUnixNano", path)?,
        observed_time_unix_nano: integer(o, "observedTimeUnixNano", path)?,
        severity_number: enumeration(o, "severityNumber", path, &SEVERITIES)?,
        severity_text: string(o, "severityText", path)?,
        body: get(o, "body")
            .map(|b| any_value(b, &format!("{path}.body")))
            .transpose()?,
        attributes: attributes(o, path)?,
        dropped_attributes_count: integer(o, "droppedAttributesCount", path)?,
        flags: integer(o, "flags", path)?,
        trace_id: id(o, "traceId", path)?,
        span_id: id(o, "spanId", path)?,
        event_name: string(o, "eventName", path)?,
    })
}
