//! Synthetic gateway telemetry for benchmarks (traces, metrics, access logs): realistic
//! attribute sets, fixed seed.

use meridian_collector::otlp::builders::{kv, resource, trace_request};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, Span, Status};
use rand::{Rng, SeedableRng};

const ROUTES: [&str; 6] = [
    "/api/users/{id}",
    "/api/catalog/search",
    "/api/orders",
    "/api/orders/{id}",
    "/api/payments",
    "/healthz",
];

/// A request of `spans` server spans from one gateway, seeded by `seed`.
pub fn gateway_request(spans: usize, seed: u64) -> ExportTraceServiceRequest {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let now = 1_764_000_000_000_000_000u64 + seed * 1_000_000;
    let spans = (0..spans)
        .map(|i| {
            let route = ROUTES[i % ROUTES.len()];
            let start = now + i as u64 * 1000;
            let status: i64 = if rng.random::<f64>() < 0.01 { 503 } else { 200 };
            Span {
                trace_id: rng.random::<[u8; 16]>().to_vec(),
                span_id: rng.random::<[u8; 8]>().to_vec(),
                parent_span_id: Vec::new(),
                trace_state: String::new(),
                flags: 1,
                name: format!("GET {route}"),
                kind: SpanKind::Server as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: start + rng.random_range(1_000_000..80_000_000),
                attributes: vec![
                    kv("http.request.method", "GET"),
                    kv("http.route", route),
                    kv(
                        "url.path",
                        route.replace("{id}", &rng.random_range(1..10_000).to_string()),
                    ),
                    kv("url.scheme", "https"),
                    kv("http.response.status_code", status),
                    kv("server.address", "api.example.com"),
                    kv("network.peer.address", "10.1.2.3"),
                    kv("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)"),
                    kv("upstream_cluster", "orders"),
                ],
                dropped_attributes_count: 0,
                events: Vec::new(),
                dropped_events_count: 0,
                links: Vec::new(),
                dropped_links_count: 0,
                status: (status >= 500).then(|| Status {
                    message: "upstream error".into(),
                    code: 2,
                }),
            }
        })
        .collect();
    trace_request(
        gateway_resource(),
        Some(InstrumentationScope {
            name: "envoy".into(),
            version: "1.40".into(),
            ..Default::default()
        }),
        spans,
    )
}

fn gateway_resource() -> opentelemetry_proto::tonic::resource::v1::Resource {
    resource(vec![
        kv("service.name", "api-gateway"),
        kv("cloud.region", "us-east-1"),
        kv("deployment.environment.name", "bench"),
        kv("service.instance.id", "gw-1"),
    ])
}

/// Upper bounds (seconds) of the request-duration histogram, OpenTelemetry's HTTP defaults.
const DURATION_BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// One export of a gateway's metrics, `points` data points: request-duration histograms and
/// request counters per (route, status, upstream), as Envoy or Traefik export them every 10 s.
pub fn gateway_metrics(points: usize, seed: u64) -> ExportMetricsServiceRequest {
    use opentelemetry_proto::tonic::metrics::v1::{
        metric::Data, number_data_point, AggregationTemporality, Histogram, HistogramDataPoint,
        Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let start = 1_764_000_000_000_000_000u64;
    let now = start + 3_600_000_000_000 + seed * 10_000_000_000;
    let statuses = [200i64, 404, 503];
    let series_attributes = |i: usize| {
        vec![
            kv("http.request.method", "GET"),
            kv("http.route", ROUTES[i % ROUTES.len()]),
            kv(
                "http.response.status_code",
                statuses[i / ROUTES.len() % statuses.len()],
            ),
            kv(
                "upstream.address",
                format!("10.1.{}.{}:8080", i / 18 / 250, i / 18 % 250).as_str(),
            ),
        ]
    };
    let histograms = (0..points.div_ceil(2))
        .map(|i| {
            let total: u64 = rng.random_range(100..20_000);
            let mut left = total;
            let bucket_counts: Vec<u64> = (0..=DURATION_BOUNDS.len())
                .map(|b| {
                    let take = if b == DURATION_BOUNDS.len() {
                        left
                    } else {
                        rng.random_range(0..=left / 2)
                    };
                    left -= take;
                    take
                })
                .collect();
            HistogramDataPoint {
                attributes: series_attributes(i),
                start_time_unix_nano: start,
                time_unix_nano: now,
                count: total,
                sum: Some(total as f64 * rng.random_range(0.01..0.3)),
                bucket_counts,
                explicit_bounds: DURATION_BOUNDS.to_vec(),
                ..Default::default()
            }
        })
        .collect();
    let counters = (0..points / 2)
        .map(|i| NumberDataPoint {
            attributes: series_attributes(i),
            start_time_unix_nano: start,
            time_unix_nano: now,
            value: Some(number_data_point::Value::AsInt(
                rng.random_range(1_000..10_000_000),
            )),
            ..Default::default()
        })
        .collect();
    let metrics = vec![
        Metric {
            name: "http.server.request.duration".into(),
            unit: "s".into(),
            description: "Duration of HTTP server requests.".into(),
            data: Some(Data::Histogram(Histogram {
                data_points: histograms,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        },
        Metric {
            name: "http.server.requests".into(),
            unit: "{request}".into(),
            description: "Requests served.".into(),
            data: Some(Data::Sum(Sum {
                data_points: counters,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        },
    ];
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(gateway_resource()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "envoy".into(),
                    version: "1.40".into(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// A gateway's access log as OTLP log records, `records` of them: Envoy's default access-log
/// line as the body, the request's fields as attributes, the trace and span ids of the request.
pub fn gateway_logs(records: usize, seed: u64) -> ExportLogsServiceRequest {
    use opentelemetry_proto::tonic::logs::v1::{
        LogRecord, ResourceLogs, ScopeLogs, SeverityNumber,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let now = 1_764_000_000_000_000_000u64 + seed * 1_000_000;
    let log_records = (0..records)
        .map(|i| {
            let route = ROUTES[i % ROUTES.len()];
            let path = route.replace("{id}", &rng.random_range(1..10_000).to_string());
            let status: i64 = if rng.random::<f64>() < 0.01 { 503 } else { 200 };
            let duration_ms: i64 = rng.random_range(1..80);
            let bytes: i64 = rng.random_range(100..20_000);
            let time = now + i as u64 * 1000;
            let body = format!(
                "[2026-11-24T16:00:00.{:03}Z] \"GET {path} HTTP/1.1\" {status} - 0 {bytes} {duration_ms} {} \"10.1.2.3\" \"Mozilla/5.0 (X11; Linux x86_64)\" \"{:032x}\" \"api.example.com\" \"10.0.0.7:8080\"",
                i % 1000,
                duration_ms.saturating_sub(1),
                rng.random::<u128>(),
            );
            LogRecord {
                time_unix_nano: time,
                observed_time_unix_nano: time + rng.random_range(0..1_000_000),
                severity_number: SeverityNumber::Info as i32,
                severity_text: "INFO".into(),
                body: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                    value: Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(body),
                    ),
                }),
                attributes: vec![
                    kv("http.request.method", "GET"),
                    kv("url.path", path.as_str()),
                    kv("http.response.status_code", status),
                    kv("http.server.request.duration_ms", duration_ms),
                    kv("http.response.body.size", bytes),
                    kv("upstream_cluster", "orders"),
                ],
                flags: 1,
                trace_id: rng.random::<[u8; 16]>().to_vec(),
                span_id: rng.random::<[u8; 8]>().to_vec(),
                ..Default::default()
            }
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(gateway_resource()),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "envoy.access_loggers.open_telemetry".into(),
                    ..Default::default()
                }),
                log_records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}
