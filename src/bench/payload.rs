//! Synthetic gateway trace requests for benchmarks: realistic attribute sets, fixed seed.

use meridian_collector::otlp::builders::{kv, resource, trace_request};
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
        resource(vec![
            kv("service.name", "api-gateway"),
            kv("cloud.region", "us-east-1"),
            kv("deployment.environment.name", "bench"),
            kv("service.instance.id", "gw-1"),
        ]),
        Some(InstrumentationScope {
            name: "envoy".into(),
            version: "1.40".into(),
            ..Default::default()
        }),
        spans,
    )
}
