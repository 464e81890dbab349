//! The demo's traffic as OTLP trace requests built directly (no SDK, no clock): for datasets of
//! millions of spans, generated in seconds with a synthetic timeline, for the benchmarks.

use meridian_collector::otlp::builders::{self, kv, resource};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode, Span, Status};
use rand::Rng;

use super::traffic::{Condition, Request};

/// `requests` gateway requests in `region`, one every `step_ns` from `start_ns`: a server span
/// each, plus a client span to the upstream (as the live demo's gateways export them).
pub fn trace_request(
    region: &str,
    requests: usize,
    start_ns: u64,
    step_ns: u64,
    condition: Condition,
    rng: &mut impl Rng,
) -> ExportTraceServiceRequest {
    let mut spans = Vec::with_capacity(requests * 2);
    for i in 0..requests {
        let Some(request) = Request::simulate(condition, rng) else {
            continue;
        };
        let route = request.route;
        let start = start_ns + i as u64 * step_ns;
        let end = start + (request.ms * 1e6) as u64;
        let trace_id = rng.random::<[u8; 16]>().to_vec();
        let server_id = rng.random::<[u8; 8]>().to_vec();
        let status = if request.status >= 500 {
            Some(Status {
                message: format!("upstream answered {}", request.status),
                code: StatusCode::Error as i32,
            })
        } else {
            None
        };
        if !request.healthy_route() {
            spans.push(Span {
                trace_id: trace_id.clone(),
                span_id: rng.random::<[u8; 8]>().to_vec(),
                parent_span_id: server_id.clone(),
                flags: 1,
                name: format!("{} {}", route.method, route.upstream),
                kind: SpanKind::Client as i32,
                start_time_unix_nano: start + 300_000,
                end_time_unix_nano: end.saturating_sub(200_000).max(start + 300_000),
                attributes: vec![
                    kv("http.request.method", route.method),
                    kv("peer.service", route.upstream),
                    kv("server.address", format!("{}.internal", route.upstream)),
                    kv("http.response.status_code", request.status),
                ],
                ..Default::default()
            });
        }
        spans.push(Span {
            trace_id,
            span_id: server_id,
            flags: 1,
            name: format!("{} {}", route.method, route.route),
            kind: SpanKind::Server as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes: vec![
                kv("http.request.method", route.method),
                kv("http.route", route.route),
                kv("url.path", request.path),
                kv("url.scheme", "https"),
                kv("http.response.status_code", request.status),
                kv("server.address", format!("api.{region}.example.com")),
                kv("network.protocol.version", "1.1"),
            ],
            status,
            ..Default::default()
        });
    }
    let gateway = resource(vec![
        kv("service.name", "api-gateway"),
        kv("cloud.region", region),
        kv("cloud.provider", "aws"),
        kv("deployment.environment.name", "demo"),
        kv("service.instance.id", format!("gw-{region}-1")),
    ]);
    builders::trace_request(gateway, None, spans)
}
