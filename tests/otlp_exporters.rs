//! The real OpenTelemetry Rust exporter (`opentelemetry-otlp`) sends traces, metrics (gauge, sum,
//! histogram, exponential histogram) and logs to `meridian standalone` over gRPC, HTTP/protobuf
//! and HTTP/JSON; SQL then returns exactly what was sent.

mod common;

use std::time::{Duration, SystemTime};

use common::{count, sql, wait_for_count, Meridian};
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{LogExporter, MetricExporter, Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::{
    Aggregation, Instrument, PeriodicReader, SdkMeterProvider, Stream,
};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

const SPANS: usize = 25;
const LOGS: usize = 7;

/// Exports one fixed set of telemetry as service `service` over `transport` to the receivers at
/// `grpc_url` / `http_url`.
fn export(service: &str, transport: &str, grpc_url: &str, http_url: &str) {
    let resource = Resource::builder()
        .with_service_name(service.to_owned())
        .build();
    let http = |path: &str| format!("{http_url}{path}");
    let protocol = if transport == "http-json" {
        Protocol::HttpJson
    } else {
        Protocol::HttpBinary
    };
    let (spans, metrics, logs) = if transport == "grpc" {
        (
            SpanExporter::builder()
                .with_tonic()
                .with_endpoint(grpc_url)
                .build()
                .unwrap(),
            MetricExporter::builder()
                .with_tonic()
                .with_endpoint(grpc_url)
                .build()
                .unwrap(),
            LogExporter::builder()
                .with_tonic()
                .with_endpoint(grpc_url)
                .build()
                .unwrap(),
        )
    } else {
        (
            SpanExporter::builder()
                .with_http()
                .with_protocol(protocol)
                .with_endpoint(http("/v1/traces"))
                .build()
                .unwrap(),
            MetricExporter::builder()
                .with_http()
                .with_protocol(protocol)
                .with_endpoint(http("/v1/metrics"))
                .build()
                .unwrap(),
            LogExporter::builder()
                .with_http()
                .with_protocol(protocol)
                .with_endpoint(http("/v1/logs"))
                .build()
                .unwrap(),
        )
    };

    let tracer_provider = SdkTracerProvider::builder()
        .with_batch_exporter(spans)
        .with_resource(resource.clone())
        .build();
    let tracer = tracer_provider.tracer("e2e");
    for i in 0..SPANS {
        let mut span = tracer
            .span_builder(format!("op-{i:02}"))
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("i", i as i64),
                KeyValue::new("http.route", "/items/{id}"),
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.response.status_code", 200 + (i as i64 % 2) * 300),
            ])
            .start(&tracer);
        span.add_event("checkpoint", vec![KeyValue::new("ok", true)]);
        span.end();
    }
    tracer_provider.force_flush().unwrap();

    let meter_provider = SdkMeterProvider::builder()
        .with_reader(
            PeriodicReader::builder(metrics)
                .with_interval(Duration::from_secs(3600))
                .build(),
        )
        .with_resource(resource.clone())
        .with_view(|i: &Instrument| {
            (i.name() == "latency.exp").then(|| {
                Stream::builder()
                    .with_aggregation(Aggregation::Base2ExponentialHistogram {
                        max_size: 160,
                        max_scale: 20,
                        record_min_max: true,
                    })
                    .build()
                    .unwrap()
            })
        })
        .build();
    let meter = meter_provider.meter("e2e");
    let requests = meter.u64_counter("requests").build();
    for _ in 0..10 {
        requests.add(1, &[KeyValue::new("route", "/items")]);
    }
    meter
        .f64_gauge("temperature")
        .with_unit("Cel")
        .build()
        .record(21.5, &[]);
    let latency = meter.f64_histogram("latency").with_unit("s").build();
    let exp = meter.f64_histogram("latency.exp").with_unit("s").build();
    for v in [0.1, 0.2, 0.3] {
        latency.record(v, &[]);
    }
    for v in [1.0, 2.0, 4.0] {
        exp.record(v, &[]);
    }
    meter_provider.force_flush().unwrap();

    let logger_provider = SdkLoggerProvider::builder()
        .with_batch_exporter(logs)
        .with_resource(resource)
        .build();
    let logger = logger_provider.logger("e2e");
    for i in 0..LOGS {
        let mut record = logger.create_log_record();
        record.set_timestamp(SystemTime::now());
        record.set_severity_number(Severity::Warn);
        record.set_severity_text("WARN");
        record.set_body(AnyValue::from(format!("log-{i}")));
        record.add_attribute("n", i as i64);
        logger.emit(record);
    }
    logger_provider.force_flush().unwrap();
    let _ = tracer_provider.shutdown();
    let _ = meter_provider.shutdown();
    let _ = logger_provider.shutdown();
}

async fn check(service: &str, meridian: &Meridian) {
    let api = meridian.api;
    let timeout = Duration::from_secs(20);
    let where_ = format!("service_name = '{service}'");
    let spans = wait_for_count(
        api,
        &format!("SELECT count(*) AS n FROM spans WHERE {where_}"),
        SPANS as i64,
        timeout,
    )
    .await;
    assert_eq!(spans, SPANS as i64, "{service}: spans");
    assert_eq!(
        count(
            api,
            &format!("SELECT count(DISTINCT span_id) AS n FROM spans WHERE {where_}")
        )
        .await,
        SPANS as i64
    );
    let rows = sql(api, &format!(
        "SELECT name, kind, attributes['i'] AS i, attribute_types['i'] AS t, http_route, http_response_status_code AS status, \
         cardinality(events) AS events, region FROM spans WHERE {where_} ORDER BY name"
    )).await;
    assert_eq!(rows.len(), SPANS);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["name"], format!("op-{i:02}"));
        assert_eq!(row["kind"], "server");
        assert_eq!(row["i"], i.to_string());
        assert_eq!(row["t"], "int");
        assert_eq!(row["http_route"], "/items/{id}");
        assert_eq!(row["status"], 200 + (i as i64 % 2) * 300);
        assert_eq!(row["events"], 1);
        assert_eq!(row["region"], "test-region");
    }

    let logs = wait_for_count(
        api,
        &format!("SELECT count(*) AS n FROM logs WHERE {where_}"),
        LOGS as i64,
        timeout,
    )
    .await;
    assert_eq!(logs, LOGS as i64, "{service}: logs");
    let rows = sql(
        api,
        &format!(
            "SELECT body, severity_number, severity_text FROM logs WHERE {where_} ORDER BY body"
        ),
    )
    .await;
    assert_eq!(rows.len(), LOGS);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["body"], format!("log-{i}"));
        assert_eq!(row["severity_number"], 13);
        assert_eq!(row["severity_text"], "WARN");
    }

    // The SDK exports each metric on flush and again at shutdown: every exported point must be exact.
    let q = |name: &str| {
        format!("SELECT count(*) AS n FROM metrics WHERE {where_} AND name = '{name}'")
    };
    for name in ["requests", "temperature", "latency", "latency.exp"] {
        assert!(
            wait_for_count(api, &q(name), 1, timeout).await >= 1,
            "{service}: metric {name} missing"
        );
    }
    let rows = sql(api, &format!("SELECT name, kind, temporality, is_monotonic, value, value_int, count, sum, min, max, unit, \
        bucket_counts, exp_scale, exp_positive_bucket_counts, attributes['route'] AS route FROM metrics WHERE {where_}")).await;
    let mut seen = std::collections::BTreeSet::new();
    for row in &rows {
        seen.insert(row["name"].as_str().unwrap_or_default().to_owned());
        match row["name"].as_str() {
            Some("requests") => {
                assert_eq!(
                    (&row["kind"], &row["temporality"], &row["is_monotonic"]),
                    (&"sum".into(), &"cumulative".into(), &true.into())
                );
                assert_eq!(
                    (&row["value_int"], &row["route"]),
                    (&10.into(), &"/items".into())
                );
            }
            Some("temperature") => {
                assert_eq!(
                    (&row["kind"], &row["value"], &row["unit"]),
                    (&"gauge".into(), &21.5.into(), &"Cel".into())
                );
            }
            Some("latency") => {
                assert_eq!(row["kind"], "histogram");
                assert_eq!(row["count"], 3);
                assert!((row["sum"].as_f64().unwrap() - 0.6).abs() < 1e-9);
                assert_eq!((&row["min"], &row["max"]), (&0.1.into(), &0.3.into()));
                let buckets: u64 = row["bucket_counts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap())
                    .sum();
                assert_eq!(buckets, 3);
            }
            Some("latency.exp") => {
                assert_eq!(row["kind"], "exponential_histogram");
                assert_eq!((&row["count"], &row["sum"]), (&3.into(), &7.0.into()));
                assert!(row["exp_scale"].is_i64());
                let buckets: u64 = row["exp_positive_bucket_counts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap())
                    .sum();
                assert_eq!(buckets, 3);
            }
            other => panic!("{service}: unexpected metric {other:?}"),
        }
    }
    assert_eq!(seen.len(), 4, "{service}: metrics seen {seen:?}");
}

/// Scenario: the Rust SDK's OTLP exporter over each of the three encodings, one service each.
/// Guarantees: every span, log record and metric point is stored exactly once with its values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_exporter_over_grpc_http_protobuf_and_http_json() {
    let dir = tempfile::tempdir().unwrap();
    let meridian = Meridian::start("standalone", dir.path(), &["--region", "test-region"]);
    for transport in ["grpc", "http-protobuf", "http-json"] {
        let service = format!("svc-{transport}");
        let (s, grpc, http) = (service.clone(), meridian.grpc_url(), meridian.http_url());
        // The SDK's exporters block; run them off the async test's workers.
        tokio::task::spawn_blocking(move || export(&s, transport, &grpc, &http))
            .await
            .unwrap();
        check(&service, &meridian).await;
    }
}
