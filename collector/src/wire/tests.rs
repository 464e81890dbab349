use std::sync::Arc;

use arrow::array::{MapBuilder, RecordBatch, StringBuilder};
use proptest::prelude::*;

use super::*;
use crate::convert::{logs_to_arrow, metrics_to_arrow, traces_to_arrow};
use crate::otlp::builders::kv;
use crate::signal::Signal;
use crate::testing::span_batch;
use crate::testing::strategies::{logs, metrics, traces};

fn round_trip(signal: Signal, batch: &RecordBatch) -> Result<(), TestCaseError> {
    for encoding in [Encoding::ArrowIpc, Encoding::Columnar] {
        let bytes = encode(encoding, std::slice::from_ref(batch)).unwrap();
        let back = decode(encoding, &signal.schema(), &bytes).unwrap();
        prop_assert_eq!(back.len(), 1);
        prop_assert_eq!(&back[0], batch, "{:?}", encoding);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Scenario: any valid trace request, converted. Guarantees: both encodings give back
    /// exactly the converted batch.
    #[test]
    fn traces_round_trip(request in traces()) {
        round_trip(Signal::Traces, &traces_to_arrow(&request, "r1").unwrap().batch)?;
    }

    /// Scenario: any metrics request, all five point kinds. Guarantees: the same batch back.
    #[test]
    fn metrics_round_trip(request in metrics()) {
        round_trip(Signal::Metrics, &metrics_to_arrow(&request, "r1").unwrap().batch)?;
    }

    /// Scenario: any logs request, every body kind. Guarantees: the same batch back.
    #[test]
    fn logs_round_trip(request in logs()) {
        round_trip(Signal::Logs, &logs_to_arrow(&request, "r1").unwrap().batch)?;
    }
}

/// Replaces the `attributes` column of a span batch with `rows` maps.
fn with_attributes(rows: &[Vec<(&str, Option<&str>)>]) -> RecordBatch {
    let batch = span_batch(rows.len(), 0).batches.remove(0);
    let mut maps = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for row in rows {
        for (k, v) in row {
            maps.keys().append_value(k);
            match v {
                Some(v) => maps.values().append_value(v),
                None => maps.values().append_null(),
            }
        }
        maps.append(true).unwrap();
    }
    let schema = batch.schema();
    let i = schema.index_of("attributes").unwrap();
    let mut columns = batch.columns().to_vec();
    columns[i] = Arc::new(maps.finish());
    RecordBatch::try_new(schema, columns).unwrap()
}

/// Scenario: attribute maps that cannot be pivoted (a null value, a key twice in one row) and
/// ones that can, in differing key orders, empty, with hex-looking and upper-case values.
/// Guarantees: every one comes back exactly, order of keys included.
#[test]
fn maps_come_back_in_their_own_key_order() {
    type Rows<'a> = Vec<Vec<(&'a str, Option<&'a str>)>>;
    let cases: Vec<Rows> = vec![
        vec![
            vec![("a", Some("1")), ("b", Some("x"))],
            vec![("b", Some("y")), ("a", Some("2"))],
            vec![],
            vec![("c", Some("ab")), ("a", Some(""))],
        ],
        vec![vec![("a", Some("1"))], vec![("a", None)]],
        vec![vec![("a", Some("1")), ("a", Some("2"))]],
        vec![vec![("id", Some("0af7"))], vec![("id", Some("0AF7"))]],
        vec![vec![("id", Some("0af7"))], vec![("id", Some("0af7aa"))]],
    ];
    for rows in cases {
        round_trip(Signal::Traces, &with_attributes(&rows)).unwrap();
    }
}

/// Scenario: spans not in time order, so the differences between rows are negative and large.
/// Guarantees: they come back exactly.
#[test]
fn timestamps_out_of_order_round_trip() {
    let a = span_batch(3, 0).batches.remove(0);
    let b = span_batch(3, 1_000_000_000_000).batches.remove(0);
    let joined = arrow::compute::concat_batches(&a.schema(), &[b, a]).unwrap();
    round_trip(Signal::Traces, &joined).unwrap();
}

/// Scenario: two batches in one message, one whose columns take other transforms.
/// Guarantees: both come back, in order.
#[test]
fn batches_of_different_wire_shapes_share_a_message() {
    let a = span_batch(4, 0).batches.remove(0);
    let b = with_attributes(&[vec![("k", None)]]);
    let bytes = encode(Encoding::Columnar, &[a.clone(), b.clone()]).unwrap();
    let back = decode(Encoding::Columnar, &Signal::Traces.schema(), &bytes).unwrap();
    assert_eq!(back, vec![a, b]);
}

/// Scenario: gateway-like spans, 1,000 per batch. Guarantees: encoding 2 is several times
/// smaller than encoding 1 (the benchmark measures it against OTLP).
#[test]
fn columnar_is_much_smaller_than_arrow_ipc() {
    let spans = (0..1000u64)
        .map(|n| {
            let mut s = crate::otlp::builders::span("GET /api/orders", n);
            s.attributes = vec![
                kv("http.route", "/api/orders"),
                kv("http.response.status_code", 200),
            ];
            s
        })
        .collect();
    let request = crate::otlp::builders::traces("gateway", spans);
    let batch = traces_to_arrow(&request, "r1").unwrap().batch;
    let ipc = encode(Encoding::ArrowIpc, std::slice::from_ref(&batch)).unwrap();
    let columnar = encode(Encoding::Columnar, std::slice::from_ref(&batch)).unwrap();
    assert!(
        columnar.len() * 3 < ipc.len(),
        "{} vs {}",
        columnar.len(),
        ipc.len()
    );
}

/// Scenario: damaged messages: not zstd, zstd of garbage, a valid message cut short or with a
/// byte flipped, a stream for another signal.
/// Guarantees: an error each time, no panic.
#[test]
fn damaged_messages_are_errors() {
    let schema = Signal::Traces.schema();
    let good = encode(Encoding::Columnar, &span_batch(50, 0).batches).unwrap();
    assert!(decode(Encoding::Columnar, &schema, b"garbage").is_err());
    let garbage = zstd::bulk::compress(b"\xff\xff\xff\xff\x10\0\0\0garbage-garbage!", 3).unwrap();
    assert!(decode(Encoding::Columnar, &schema, &garbage).is_err());
    assert!(decode(Encoding::Columnar, &schema, &good[..good.len() / 2]).is_err());
    assert!(decode(Encoding::Columnar, &Signal::Logs.schema(), &good).is_err());
    let raw = inflate(&good).unwrap();
    for at in (0..raw.len()).step_by(97) {
        let mut flipped = raw.clone();
        flipped[at] ^= 0x5a;
        let bytes = zstd::bulk::compress(&flipped, 1).unwrap();
        // Either an error or some batch; what matters is that it returns.
        let _ = decode(Encoding::Columnar, &schema, &bytes);
    }
}

/// Scenario: the names encodings go by in headers and content types.
/// Guarantees: each maps back; absent means 1; unknown ones are errors naming what is read.
#[test]
fn encodings_are_named_in_headers_and_content_types() {
    for e in [Encoding::ArrowIpc, Encoding::Columnar] {
        assert_eq!(Encoding::from_code(e.code()), Some(e));
        assert_eq!(Encoding::from_header(Some(&e.code().to_string())), Ok(e));
        assert_eq!(Encoding::from_content_type(Some(e.content_type())), Ok(e));
    }
    assert_eq!(Encoding::from_header(None), Ok(Encoding::ArrowIpc));
    assert_eq!(Encoding::from_content_type(None), Ok(Encoding::ArrowIpc));
    assert!(Encoding::from_header(Some("7"))
        .unwrap_err()
        .contains("1 and 2"));
    assert!(Encoding::from_content_type(Some("text/plain")).is_err());
    let with_params = format!("{}; charset=binary", Encoding::Columnar.content_type());
    assert_eq!(
        Encoding::from_content_type(Some(&with_params)),
        Ok(Encoding::Columnar)
    );
}

/// Scenario: a batch in which every column has one value (three identical probe results, or
/// columns never set) and a batch with no rows.
/// Guarantees: both come back, row counts included, though no column travels in the first.
#[test]
fn a_batch_of_constants_keeps_its_rows() {
    use arrow::array::{new_null_array, ArrayRef, BooleanArray, Float64Array, Int32Array};
    use arrow::array::{StringArray, TimestampNanosecondArray};
    use arrow::datatypes::DataType;
    let schema = Signal::Probes.schema();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| -> ArrayRef {
            match f.data_type() {
                _ if f.is_nullable() => new_null_array(f.data_type(), 3),
                DataType::Timestamp(..) => {
                    Arc::new(TimestampNanosecondArray::from(vec![7; 3]).with_timezone("UTC"))
                }
                DataType::Utf8 => Arc::new(StringArray::from(vec!["x"; 3])),
                DataType::Boolean => Arc::new(BooleanArray::from(vec![true; 3])),
                DataType::Int32 => Arc::new(Int32Array::from(vec![3; 3])),
                DataType::Float64 => Arc::new(Float64Array::from(vec![-0.0; 3])),
                other => panic!("no fixture for {other}"),
            }
        })
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    round_trip(Signal::Probes, &batch).unwrap();
    round_trip(Signal::Probes, &RecordBatch::new_empty(schema)).unwrap();
}

/// Scenario: a metrics export as gateways send it — histograms whose bucket lists all have one
/// length beside counters without buckets — whole and sliced (as a batch split to fit a
/// message limit is).
/// Guarantees: each comes back exactly, empty lists where the counters had none.
#[test]
fn fixed_length_bucket_lists_round_trip() {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1::{
        metric::Data, number_data_point, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
        ResourceMetrics, ScopeMetrics, Sum,
    };
    let histograms = (0..7u64)
        .map(|i| HistogramDataPoint {
            attributes: vec![kv("route", format!("/r{i}").as_str())],
            time_unix_nano: 1_000 + i,
            count: 6 * i,
            bucket_counts: vec![i, 2 * i, 3 * i],
            explicit_bounds: vec![0.1, 0.5],
            ..Default::default()
        })
        .collect();
    let sums = (0..5i64)
        .map(|i| NumberDataPoint {
            time_unix_nano: 2_000,
            value: Some(number_data_point::Value::AsDouble(i as f64 * 3.0)),
            ..Default::default()
        })
        .collect();
    let metric = |name: &str, data| Metric {
        name: name.into(),
        data: Some(data),
        ..Default::default()
    };
    let request = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    metric(
                        "h",
                        Data::Histogram(Histogram {
                            data_points: histograms,
                            aggregation_temporality: 2,
                        }),
                    ),
                    metric(
                        "s",
                        Data::Sum(Sum {
                            data_points: sums,
                            aggregation_temporality: 2,
                            is_monotonic: true,
                        }),
                    ),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let batch = metrics_to_arrow(&request, "r1").unwrap().batch;
    let wire = columns::to_wire(&batch).unwrap();
    let buckets = wire
        .iter()
        .find(|(f, _)| f.name() == "bucket_counts")
        .unwrap();
    assert!(
        matches!(
            buckets.1.data_type(),
            arrow::datatypes::DataType::FixedSizeList(_, 3)
        ),
        "{:?}",
        buckets.1.data_type()
    );
    round_trip(Signal::Metrics, &batch).unwrap();
    round_trip(Signal::Metrics, &batch.slice(2, 8)).unwrap();
}

/// Scenario: log bodies that split into the same number of space-separated tokens (quoted,
/// numeric, hex, empty tokens), with a null body among them, and bodies that do not split alike.
/// Guarantees: both come back exactly; the first travels as token columns.
#[test]
fn access_log_bodies_travel_as_tokens() {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    let request = |bodies: &[Option<String>]| ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: bodies
                    .iter()
                    .enumerate()
                    .map(|(i, b)| LogRecord {
                        time_unix_nano: 1_000 + i as u64,
                        body: b.clone().map(|b| AnyValue {
                            value: Some(any_value::Value::StringValue(b)),
                        }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let alike: Vec<Option<String>> = (0..40)
        .map(|i| {
            (i != 7).then(|| {
                format!(
                    "\"GET /api/{i} HTTP/1.1\" {} - {:x}{:x} \"\"  \"ua\" 0{i}",
                    200 + i % 3,
                    i,
                    i
                )
            })
        })
        .collect();
    let batch = logs_to_arrow(&request(&alike), "r1").unwrap().batch;
    let wire = columns::to_wire(&batch).unwrap();
    assert!(wire.iter().any(|(f, _)| f.name() == "body#3"), "tokenized");
    round_trip(Signal::Logs, &batch).unwrap();
    let unlike = vec![
        Some("a b".to_owned()),
        Some("a b c".to_owned()),
        Some("x y".to_owned()),
    ];
    round_trip(
        Signal::Logs,
        &logs_to_arrow(&request(&unlike), "r1").unwrap().batch,
    )
    .unwrap();
}
