//! OTLP/JSON decoding: the spec's encoding rules, every AnyValue kind, every metric point kind.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use proptest::prelude::*;

use super::json::*;
use crate::json::any_value;
use crate::testing::strategies;

/// Scenario: a span as another SDK (JS, Go, the Collector) writes it: hex ids, int64 as strings,
/// enums as numbers and names, an unknown field, a snake_case key, and every AnyValue kind.
/// Guarantees: every value arrives, typed as sent.
#[test]
fn spec_style_trace_decodes_every_value_kind() {
    let body = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"gw"}}]},
      "scopeSpans":[{"scope":{"name":"s","version":"1"},"spans":[{
        "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","parentSpanId":"",
        "name":"GET /x","kind":2,"startTimeUnixNano":"1544712660000000000","end_time_unix_nano":1544712661000000000,
        "futureField":{"ignored":true},
        "attributes":[
          {"key":"s","value":{"stringValue":"v"}},
          {"key":"b","value":{"boolValue":true}},
          {"key":"i","value":{"intValue":"-42"}},
          {"key":"i2","value":{"intValue":7}},
          {"key":"d","value":{"doubleValue":1.5}},
          {"key":"nan","value":{"doubleValue":"NaN"}},
          {"key":"bytes","value":{"bytesValue":"AQID"}},
          {"key":"arr","value":{"arrayValue":{"values":[{"intValue":"1"},{"stringValue":"two"}]}}},
          {"key":"kv","value":{"kvlistValue":{"values":[{"key":"k","value":{"boolValue":false}}]}}},
          {"key":"empty","value":{}},
          {"key":"absent"}
        ],
        "status":{"code":"STATUS_CODE_ERROR","message":"boom"}}]}]}]}"#;
    let request = decode_traces(body).unwrap();
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(
        hex::encode(&span.trace_id),
        "5b8efff798038103d269b633813fc60c"
    );
    assert_eq!(hex::encode(&span.span_id), "eee19b7ec3c1b174");
    assert!(span.parent_span_id.is_empty());
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
    assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
    assert_eq!(span.status.as_ref().map(|s| s.code), Some(2));
    let value = |k: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key == k)
            .unwrap()
            .value
            .clone()
    };
    let v = |k: &str| value(k).and_then(|v| v.value);
    assert_eq!(v("s"), Some(Value::StringValue("v".into())));
    assert_eq!(v("b"), Some(Value::BoolValue(true)));
    assert_eq!(v("i"), Some(Value::IntValue(-42)));
    assert_eq!(v("i2"), Some(Value::IntValue(7)));
    assert_eq!(v("d"), Some(Value::DoubleValue(1.5)));
    assert!(matches!(v("nan"), Some(Value::DoubleValue(d)) if d.is_nan()));
    assert_eq!(v("bytes"), Some(Value::BytesValue(vec![1, 2, 3])));
    let Some(Value::ArrayValue(arr)) = v("arr") else {
        panic!("array lost")
    };
    assert_eq!(arr.values[0].value, Some(Value::IntValue(1)));
    assert_eq!(arr.values[1].value, Some(Value::StringValue("two".into())));
    let Some(Value::KvlistValue(kv)) = v("kv") else {
        panic!("kvlist lost")
    };
    assert_eq!(
        kv.values[0].value.as_ref().unwrap().value,
        Some(Value::BoolValue(false))
    );
    assert_eq!(value("empty").map(|v| v.value), Some(None));
    assert_eq!(value("absent"), None);
}

/// Scenario: one metric of each point kind, as the spec's JSON examples write them.
/// Guarantees: each kind, its temporality and its numbers arrive intact.
#[test]
fn every_metric_point_kind_decodes() {
    let body = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
      {"name":"g","unit":"1","gauge":{"dataPoints":[{"asDouble":0.5,"timeUnixNano":"1"}]}},
      {"name":"c","sum":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_CUMULATIVE","isMonotonic":true,
         "dataPoints":[{"asInt":"12","startTimeUnixNano":"1","timeUnixNano":"2",
         "exemplars":[{"asDouble":3,"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","timeUnixNano":"2"}]}]}},
      {"name":"h","histogram":{"aggregationTemporality":1,"dataPoints":[{"count":"3","sum":6,"min":1,"max":3,
         "bucketCounts":["1",2],"explicitBounds":[1.5],"timeUnixNano":"2"}]}},
      {"name":"e","exponentialHistogram":{"aggregationTemporality":2,"dataPoints":[{"count":"4","sum":10,"scale":-1,
         "zeroCount":"1","zeroThreshold":0.001,"positive":{"offset":-2,"bucketCounts":["1","2"]},"negative":{"bucketCounts":[]},
         "timeUnixNano":"2"}]}},
      {"name":"s","summary":{"dataPoints":[{"count":"2","sum":3.5,"quantileValues":[{"quantile":0.5,"value":1.5},{"quantile":1,"value":2}],
         "timeUnixNano":"2"}]}}
    ]}]}]}"#;
    let request = decode_metrics(body).unwrap();
    let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;
    assert_eq!(metrics.len(), 5);
    let Some(Data::Gauge(g)) = &metrics[0].data else {
        panic!("gauge")
    };
    assert_eq!(
        g.data_points[0].value,
        Some(number_data_point::Value::AsDouble(0.5))
    );
    let Some(Data::Sum(s)) = &metrics[1].data else {
        panic!("sum")
    };
    assert_eq!((s.aggregation_temporality, s.is_monotonic), (2, true));
    assert_eq!(
        s.data_points[0].value,
        Some(number_data_point::Value::AsInt(12))
    );
    assert_eq!(s.data_points[0].exemplars[0].span_id.len(), 8);
    let Some(Data::Histogram(h)) = &metrics[2].data else {
        panic!("histogram")
    };
    let p = &h.data_points[0];
    assert_eq!(
        (p.count, p.sum, p.min, p.max),
        (3, Some(6.0), Some(1.0), Some(3.0))
    );
    assert_eq!(
        (p.bucket_counts.clone(), p.explicit_bounds.clone()),
        (vec![1, 2], vec![1.5])
    );
    let Some(Data::ExponentialHistogram(e)) = &metrics[3].data else {
        panic!("exponential")
    };
    let p = &e.data_points[0];
    assert_eq!((p.scale, p.zero_count, p.zero_threshold), (-1, 1, 0.001));
    assert_eq!(
        p.positive
            .as_ref()
            .map(|b| (b.offset, b.bucket_counts.clone())),
        Some((-2, vec![1, 2]))
    );
    assert_eq!(p.negative.as_ref().map(|b| b.bucket_counts.len()), Some(0));
    let Some(Data::Summary(s)) = &metrics[4].data else {
        panic!("summary")
    };
    assert_eq!(s.data_points[0].quantile_values[1].value, 2.0);
}

/// Scenario: log records with a structured body and severity by name.
/// Guarantees: body kind, severity and ids survive.
#[test]
fn logs_decode_structured_bodies() {
    let body = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[
      {"timeUnixNano":"5","severityNumber":"SEVERITY_NUMBER_WARN","severityText":"WARN",
       "body":{"kvlistValue":{"values":[{"key":"msg","value":{"stringValue":"hi"}}]}},
       "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","eventName":"e"}]}]}]}"#;
    let request = decode_logs(body).unwrap();
    let r = &request.resource_logs[0].scope_logs[0].log_records[0];
    assert_eq!(r.severity_number, 13);
    assert!(matches!(
        r.body.as_ref().and_then(|b| b.value.as_ref()),
        Some(Value::KvlistValue(_))
    ));
    assert_eq!(r.event_name, "e");
}

/// Scenario: malformed bodies. Guarantees: a clear error naming where it went wrong.
#[test]
fn malformed_json_is_an_error_with_a_path() {
    let e = decode_traces(
        b"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"zz\"}]}]}]}",
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("resourceSpans[0].scopeSpans[0].spans[0].traceId"),
        "{e}"
    );
    assert!(decode_traces(b"{not json").is_err());
    assert!(decode_metrics(b"[1,2]").is_err());
    assert!(decode_logs(b"").unwrap().resource_logs.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Scenario: what the Rust exporter's `http-json` serializer (opentelemetry-proto serde) emits.
    /// Guarantees: our decoder reads it back exactly.
    #[test]
    fn decodes_what_the_rust_exporter_sends_for_traces(request in strategies::traces()) {
        let body = serde_json::to_vec(&request).unwrap();
        prop_assert_eq!(decode_traces(&body).unwrap(), request);
    }

    /// Scenario: as above, for metrics of every point kind.
    #[test]
    fn decodes_what_the_rust_exporter_sends_for_metrics(request in strategies::metrics()) {
        let body = serde_json::to_vec(&request).unwrap();
        prop_assert_eq!(decode_metrics(&body).unwrap(), request);
    }

    /// Scenario: as above, for logs with every body kind.
    #[test]
    fn decodes_what_the_rust_exporter_sends_for_logs(request in strategies::logs()) {
        let body = serde_json::to_vec(&request).unwrap();
        prop_assert_eq!(decode_logs(&body).unwrap(), request);
    }

    /// Scenario: any value. Guarantees: our own JSON encoding of AnyValue decodes to itself.
    #[test]
    fn any_value_json_round_trips(value in strategies::any_value()) {
        prop_assert_eq!(any_value::decode(&any_value::encode(&value)).unwrap(), value);
    }
}
