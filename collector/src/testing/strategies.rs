//! proptest strategies generating valid OTLP requests of every signal, for property tests.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    summary_data_point::ValueAtQuantile, Exemplar, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        Just(0.0),
        Just(-0.0),
        Just(1e300)
    ]
}

fn time() -> impl Strategy<Value = u64> {
    0u64..(i64::MAX as u64)
}

pub fn any_value() -> impl Strategy<Value = AnyValue> {
    let leaf = prop_oneof![
        ".{0,12}".prop_map(Value::StringValue),
        any::<bool>().prop_map(Value::BoolValue),
        any::<i64>().prop_map(Value::IntValue),
        finite().prop_map(Value::DoubleValue),
        vec(any::<u8>(), 0..8).prop_map(Value::BytesValue),
    ]
    .prop_map(|v| AnyValue { value: Some(v) });
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(|values| AnyValue {
                value: Some(Value::ArrayValue(ArrayValue { values }))
            }),
            vec(("[a-z]{1,6}", option::of(inner)), 0..4).prop_map(|kvs| AnyValue {
                value: Some(Value::KvlistValue(KeyValueList {
                    values: kvs
                        .into_iter()
                        .map(|(key, value)| KeyValue {
                            key,
                            value,
                            key_strindex: 0
                        })
                        .collect(),
                })),
            }),
            Just(AnyValue { value: None }),
        ]
    })
}

/// Attributes with unique keys (OTLP requires them unique).
pub fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    proptest::collection::btree_map("[a-z.]{1,10}", option::of(any_value()), 0..5).prop_map(|m| {
        m.into_iter()
            .map(|(key, value)| KeyValue {
                key,
                value,
                key_strindex: 0,
            })
            .collect()
    })
}

fn resource(i: usize) -> impl Strategy<Value = Resource> {
    (attributes(), any::<u32>()).prop_map(move |(mut attributes, dropped)| {
        // A distinct attribute keeps neighbouring resources distinct (identical neighbours merge).
        attributes.push(KeyValue {
            key: "test.resource".into(),
            value: Some(AnyValue {
                value: Some(Value::IntValue(i as i64)),
            }),
            key_strindex: 0,
        });
        Resource {
            attributes,
            dropped_attributes_count: dropped,
            entity_refs: vec![],
        }
    })
}

fn scope(i: usize) -> impl Strategy<Value = InstrumentationScope> {
    ("[a-z]{0,6}", attributes(), any::<u32>()).prop_map(move |(version, attributes, dropped)| {
        InstrumentationScope {
            name: format!("scope-{i}"),
            version,
            attributes,
            dropped_attributes_count: dropped,
        }
    })
}

fn id(len: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), len).prop_filter("non-zero id", |v| v.iter().any(|b| *b != 0))
}

fn span() -> impl Strategy<Value = Span> {
    let event =
        (time(), ".{0,8}", attributes(), any::<u32>()).prop_map(|(t, name, attributes, d)| {
            span::Event {
                time_unix_nano: t,
                name,
                attributes,
                dropped_attributes_count: d,
            }
        });
    let link = (
        id(16),
        id(8),
        "[a-z=,]{0,8}",
        attributes(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(trace_id, span_id, trace_state, attributes, dropped_attributes_count, flags)| {
                span::Link {
                    trace_id,
                    span_id,
                    trace_state,
                    attributes,
                    dropped_attributes_count,
                    flags,
                }
            },
        );
    let status = option::of(
        (".{0,8}", 0i32..3).prop_filter("not default", |(m, c)| !m.is_empty() || *c != 0),
    )
    .prop_map(|s| s.map(|(message, code)| Status { message, code }));
    (
        (
            id(16),
            id(8),
            prop_oneof![Just(vec![]), id(8)],
            "[a-z=,]{0,8}",
            any::<u32>(),
            ".{0,10}",
            0i32..7,
        ),
        (
            time(),
            time(),
            attributes(),
            any::<u32>(),
            vec(event, 0..3),
            any::<u32>(),
            vec(link, 0..3),
        ),
        (any::<u32>(), status),
    )
        .prop_map(
            |(
                (trace_id, span_id, parent_span_id, trace_state, flags, name, kind),
                (
                    start,
                    end,
                    attributes,
                    dropped_attributes_count,
                    events,
                    dropped_events_count,
                    links,
                ),
                (dropped_links_count, status),
            )| Span {
                trace_id,
                span_id,
                trace_state,
                parent_span_id,
                flags,
                name,
                kind,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes,
                dropped_attributes_count,
                events,
                dropped_events_count,
                links,
                dropped_links_count,
                status,
            },
        )
}

pub fn traces() -> impl Strategy<Value = ExportTraceServiceRequest> {
    vec(vec(vec(span(), 1..4), 1..3), 1..3).prop_flat_map(|shape| {
        let resources: Vec<_> = shape
            .into_iter()
            .enumerate()
            .map(|(ri, scopes)| {
                let scopes: Vec<_> = scopes
                    .into_iter()
                    .enumerate()
                    .map(|(si, spans)| {
                        (scope(si), "[a-z:/.]{0,10}").prop_map(move |(scope, schema_url)| {
                            ScopeSpans {
                                scope: Some(scope),
                                spans: spans.clone(),
                                schema_url,
                            }
                        })
                    })
                    .collect();
                (resource(ri), scopes, "[a-z:/.]{0,10}").prop_map(
                    |(resource, scope_spans, schema_url)| ResourceSpans {
                        resource: Some(resource),
                        scope_spans,
                        schema_url,
                    },
                )
            })
            .collect();
        resources.prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
    })
}

fn exemplars() -> impl Strategy<Value = Vec<Exemplar>> {
    let value = option::of(prop_oneof![
        finite().prop_map(exemplar::Value::AsDouble),
        any::<i64>().prop_map(exemplar::Value::AsInt)
    ]);
    vec(
        (
            attributes(),
            time(),
            prop_oneof![Just(vec![]), id(8)],
            prop_oneof![Just(vec![]), id(16)],
            value,
        )
            .prop_map(
                |(filtered_attributes, time_unix_nano, span_id, trace_id, value)| Exemplar {
                    filtered_attributes,
                    time_unix_nano,
                    span_id,
                    trace_id,
                    value,
                },
            ),
        0..3,
    )
}

fn number_point() -> impl Strategy<Value = NumberDataPoint> {
    let value = option::of(prop_oneof![
        finite().prop_map(number_data_point::Value::AsDouble),
        any::<i64>().prop_map(number_data_point::Value::AsInt)
    ]);
    (
        attributes(),
        time(),
        time(),
        exemplars(),
        any::<u32>(),
        value,
    )
        .prop_map(
            |(attributes, start_time_unix_nano, time_unix_nano, exemplars, flags, value)| {
                NumberDataPoint {
                    attributes,
                    start_time_unix_nano,
                    time_unix_nano,
                    exemplars,
                    flags,
                    value,
                }
            },
        )
}

fn histogram_point() -> impl Strategy<Value = HistogramDataPoint> {
    (
        (
            attributes(),
            time(),
            time(),
            any::<u64>(),
            option::of(finite()),
        ),
        (
            vec(any::<u64>(), 0..5),
            vec(finite(), 0..4),
            exemplars(),
            any::<u32>(),
            option::of(finite()),
            option::of(finite()),
        ),
    )
        .prop_map(
            |(
                (attributes, start, t, count, sum),
                (bucket_counts, explicit_bounds, exemplars, flags, min, max),
            )| {
                HistogramDataPoint {
                    attributes,
                    start_time_unix_nano: start,
                    time_unix_nano: t,
                    count,
                    sum,
                    bucket_counts,
                    explicit_bounds,
                    exemplars,
                    flags,
                    min,
                    max,
                }
            },
        )
}

fn exponential_point() -> impl Strategy<Value = ExponentialHistogramDataPoint> {
    let buckets = option::of((any::<i32>(), vec(any::<u64>(), 0..5)).prop_map(
        |(offset, bucket_counts)| Buckets {
            offset,
            bucket_counts,
        },
    ));
    (
        (
            attributes(),
            time(),
            time(),
            any::<u64>(),
            option::of(finite()),
            -10i32..20,
            any::<u64>(),
        ),
        (
            buckets.clone(),
            buckets,
            any::<u32>(),
            exemplars(),
            option::of(finite()),
            option::of(finite()),
            finite(),
        ),
    )
        .prop_map(
            |(
                (attributes, start, t, count, sum, scale, zero_count),
                (positive, negative, flags, exemplars, min, max, zero_threshold),
            )| {
                ExponentialHistogramDataPoint {
                    attributes,
                    start_time_unix_nano: start,
                    time_unix_nano: t,
                    count,
                    sum,
                    scale,
                    zero_count,
                    positive,
                    negative,
                    flags,
                    exemplars,
                    min,
                    max,
                    zero_threshold,
                }
            },
        )
}

fn summary_point() -> impl Strategy<Value = SummaryDataPoint> {
    (
        attributes(),
        time(),
        time(),
        any::<u64>(),
        finite(),
        vec((finite(), finite()), 0..4),
        any::<u32>(),
    )
        .prop_map(
            |(attributes, start, t, count, sum, qs, flags)| SummaryDataPoint {
                attributes,
                start_time_unix_nano: start,
                time_unix_nano: t,
                count,
                sum,
                quantile_values: qs
                    .into_iter()
                    .map(|(quantile, value)| ValueAtQuantile { quantile, value })
                    .collect(),
                flags,
            },
        )
}

fn data() -> impl Strategy<Value = Data> {
    prop_oneof![
        vec(number_point(), 1..3).prop_map(|data_points| Data::Gauge(Gauge { data_points })),
        (vec(number_point(), 1..3), 0i32..3, any::<bool>()).prop_map(|(data_points, t, m)| {
            Data::Sum(Sum {
                data_points,
                aggregation_temporality: t,
                is_monotonic: m,
            })
        }),
        (vec(histogram_point(), 1..3), 0i32..3).prop_map(|(data_points, t)| Data::Histogram(
            Histogram {
                data_points,
                aggregation_temporality: t
            }
        )),
        (vec(exponential_point(), 1..3), 0i32..3).prop_map(|(data_points, t)| {
            Data::ExponentialHistogram(ExponentialHistogram {
                data_points,
                aggregation_temporality: t,
            })
        }),
        vec(summary_point(), 1..3).prop_map(|data_points| Data::Summary(Summary { data_points })),
    ]
}

pub fn metrics() -> impl Strategy<Value = ExportMetricsServiceRequest> {
    let metric = |i: usize| {
        (".{0,8}", "[a-z/{}]{0,4}", attributes(), data()).prop_map(
            move |(description, unit, metadata, data)| Metric {
                name: format!("metric.{i}"),
                description,
                unit,
                metadata,
                data: Some(data),
            },
        )
    };
    (1usize..3, 1usize..4).prop_flat_map(move |(resources, metrics_per_scope)| {
        let rs: Vec<_> = (0..resources)
            .map(|ri| {
                let ms: Vec<_> = (0..metrics_per_scope).map(metric).collect();
                (resource(ri), scope(0), ms, "[a-z]{0,5}").prop_map(
                    |(resource, scope, metrics, url)| ResourceMetrics {
                        resource: Some(resource),
                        scope_metrics: vec![ScopeMetrics {
                            scope: Some(scope),
                            metrics,
                            schema_url: url.clone(),
                        }],
                        schema_url: url,
                    },
                )
            })
            .collect();
        rs.prop_map(|resource_metrics| ExportMetricsServiceRequest { resource_metrics })
    })
}

fn log_record() -> impl Strategy<Value = LogRecord> {
    (
        (
            time(),
            time(),
            0i32..25,
            "[A-Z]{0,5}",
            option::of(any_value()),
        ),
        (
            attributes(),
            any::<u32>(),
            any::<u32>(),
            prop_oneof![Just(vec![]), id(16)],
            prop_oneof![Just(vec![]), id(8)],
            "[a-z.]{0,6}",
        ),
    )
        .prop_map(
            |(
                (t, observed, severity_number, severity_text, body),
                (attributes, dropped, flags, trace_id, span_id, event_name),
            )| LogRecord {
                time_unix_nano: t,
                observed_time_unix_nano: observed,
                severity_number,
                severity_text,
                body,
                attributes,
                dropped_attributes_count: dropped,
                flags,
                trace_id,
                span_id,
                event_name,
            },
        )
}

pub fn logs() -> impl Strategy<Value = ExportLogsServiceRequest> {
    (1usize..3).prop_flat_map(|resources| {
        let rs: Vec<_> = (0..resources)
            .map(|ri| {
                (resource(ri), scope(0), vec(log_record(), 1..4)).prop_map(
                    |(resource, scope, log_records)| ResourceLogs {
                        resource: Some(resource),
                        scope_logs: vec![ScopeLogs {
                            scope: Some(scope),
                            log_records,
                            schema_url: String::new(),
                        }],
                        schema_url: String::new(),
                    },
                )
            })
            .collect();
        rs.prop_map(|resource_logs| ExportLogsServiceRequest { resource_logs })
    })
}
