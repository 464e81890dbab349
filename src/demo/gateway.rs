//! A simulated API gateway: produces the traces, metrics and logs a real gateway (Envoy, Kong,
//! Traefik) would, and exports them with the real OpenTelemetry SDK and OTLP exporter.

use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::metrics::{Gauge, Histogram, MeterProvider as _};
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use rand::Rng;

pub use super::traffic::Condition;
use super::traffic::Request;

/// How a gateway reaches its collector.
#[derive(Clone, Copy, Debug)]
pub enum Transport {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP, protobuf bodies.
    HttpProtobuf,
    /// OTLP/HTTP, JSON bodies.
    HttpJson,
}

impl Transport {
    /// Short label.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Grpc => "OTLP/gRPC",
            Transport::HttpProtobuf => "OTLP/HTTP protobuf",
            Transport::HttpJson => "OTLP/HTTP JSON",
        }
    }
}

/// The three OTel providers of one gateway, exporting over one transport.
pub struct Telemetry {
    /// Spans.
    pub tracer: SdkTracerProvider,
    /// Metrics.
    pub meter: SdkMeterProvider,
    /// Logs.
    pub logger: SdkLoggerProvider,
}

impl Telemetry {
    /// Builds providers exporting to a collector at `grpc` (gRPC) or `http` (HTTP base URL).
    pub fn new(
        resource: Resource,
        transport: Transport,
        grpc: &str,
        http: &str,
        interval: Duration,
    ) -> anyhow::Result<Self> {
        use opentelemetry_otlp::{LogExporter, MetricExporter, SpanExporter};
        let protocol = match transport {
            Transport::HttpJson => Protocol::HttpJson,
            _ => Protocol::HttpBinary,
        };
        let (spans, metrics, logs) = match transport {
            Transport::Grpc => (
                SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(grpc)
                    .build()?,
                MetricExporter::builder()
                    .with_tonic()
                    .with_endpoint(grpc)
                    .build()?,
                LogExporter::builder()
                    .with_tonic()
                    .with_endpoint(grpc)
                    .build()?,
            ),
            Transport::HttpProtobuf | Transport::HttpJson => (
                SpanExporter::builder()
                    .with_http()
                    .with_protocol(protocol)
                    .with_endpoint(format!("{http}/v1/traces"))
                    .build()?,
                MetricExporter::builder()
                    .with_http()
                    .with_protocol(protocol)
                    .with_endpoint(format!("{http}/v1/metrics"))
                    .build()?,
                LogExporter::builder()
                    .with_http()
                    .with_protocol(protocol)
                    .with_endpoint(format!("{http}/v1/logs"))
                    .build()?,
            ),
        };
        let batch = BatchConfigBuilder::default()
            .with_scheduled_delay(interval)
            .with_max_queue_size(65_536)
            .with_max_export_batch_size(2048)
            .build();
        let tracer = SdkTracerProvider::builder()
            .with_span_processor(
                BatchSpanProcessor::builder(spans)
                    .with_batch_config(batch)
                    .build(),
            )
            .with_resource(resource.clone())
            .build();
        let meter = SdkMeterProvider::builder()
            .with_reader(
                PeriodicReader::builder(metrics)
                    .with_interval(interval)
                    .build(),
            )
            .with_resource(resource.clone())
            .build();
        let logger = SdkLoggerProvider::builder()
            .with_batch_exporter(logs)
            .with_resource(resource)
            .build();
        Ok(Self {
            tracer,
            meter,
            logger,
        })
    }

    /// Flushes everything and stops the exporters.
    pub fn shutdown(&self) -> anyhow::Result<()> {
        self.tracer.force_flush().context("flushing spans")?;
        self.meter.force_flush().context("flushing metrics")?;
        self.logger.force_flush().context("flushing logs")?;
        let _ = self.tracer.shutdown();
        let _ = self.meter.shutdown();
        let _ = self.logger.shutdown();
        Ok(())
    }
}

/// One simulated gateway instance in a region.
pub struct Gateway {
    region: String,
    telemetry: Telemetry,
    duration: Histogram<f64>,
    cpu: Gauge<f64>,
    memory: Gauge<i64>,
}

impl Gateway {
    /// A gateway named `api-gateway` in `region`.
    pub fn new(region: &str, telemetry: Telemetry) -> Self {
        let meter = telemetry.meter.meter("meridian-demo-gateway");
        let duration = meter
            .f64_histogram("http.server.request.duration")
            .with_unit("s")
            .with_description("Duration of HTTP server requests")
            .with_boundaries(vec![
                0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
            ])
            .build();
        // Host figures under OpenTelemetry's process semantic conventions, as a gateway's
        // host metrics receiver would export them.
        let cpu = meter
            .f64_gauge("process.cpu.utilization")
            .with_unit("1")
            .with_description("CPU time used, as a fraction of the available CPU")
            .build();
        let memory = meter
            .i64_gauge("process.memory.usage")
            .with_unit("By")
            .with_description("Resident memory of the gateway process")
            .build();
        Self {
            region: region.to_owned(),
            telemetry,
            duration,
            cpu,
            memory,
        }
    }

    /// The resource every gateway signal carries.
    pub fn resource(region: &str) -> Resource {
        Resource::builder()
            .with_service_name("api-gateway")
            .with_attributes([
                KeyValue::new("cloud.region", region.to_owned()),
                KeyValue::new("cloud.provider", "aws"),
                KeyValue::new("deployment.environment.name", "demo"),
                KeyValue::new("service.instance.id", format!("gw-{region}-1")),
            ])
            .build()
    }

    /// Serves `count` simulated requests that ended just now.
    pub fn serve(&self, count: usize, condition: Condition, rng: &mut impl Rng) {
        // Load against the 100 ms tick of 4 × 30 req/s; slow requests hold workers longer.
        let load = count as f64 / 12.0 * (1.0 + 0.1 * (condition.latency_factor - 1.0));
        self.cpu.record((0.05 + 0.6 * load).min(1.0), &[]);
        self.memory
            .record((160.0 + 64.0 * load) as i64 * 1024 * 1024, &[]);
        let tracer = self.telemetry.tracer.tracer("meridian-demo-gateway");
        let logger = self.telemetry.logger.logger("meridian-demo-gateway");
        for _ in 0..count {
            let Some(request) = Request::simulate(condition, rng) else {
                continue;
            };
            let (route, ms, status, healthy_route) = (
                request.route,
                request.ms,
                request.status,
                request.healthy_route(),
            );
            let end = SystemTime::now();
            let start = end - Duration::from_secs_f64(ms / 1000.0);
            let attrs = vec![
                KeyValue::new("http.request.method", route.method),
                KeyValue::new("http.route", route.route),
                KeyValue::new("url.path", request.path.clone()),
                KeyValue::new("url.scheme", "https"),
                KeyValue::new("http.response.status_code", status),
                KeyValue::new("server.address", format!("api.{}.example.com", self.region)),
                KeyValue::new("network.protocol.version", "1.1"),
            ];
            let mut server = tracer
                .span_builder(format!("{} {}", route.method, route.route))
                .with_kind(SpanKind::Server)
                .with_start_time(start)
                .with_attributes(attrs.clone())
                .start(&tracer);
            if status >= 500 {
                server.set_status(Status::error(format!("upstream answered {status}")));
            }
            let span_context = server.span_context().clone();
            let cx = Context::current_with_span(server);
            if !healthy_route {
                let upstream_start = start + Duration::from_micros(300);
                let upstream_end = end
                    .checked_sub(Duration::from_micros(200))
                    .unwrap_or(end)
                    .max(upstream_start);
                let mut client = tracer
                    .span_builder(format!("{} {}", route.method, route.upstream))
                    .with_kind(SpanKind::Client)
                    .with_start_time(upstream_start)
                    .with_attributes([
                        KeyValue::new("http.request.method", route.method),
                        KeyValue::new("peer.service", route.upstream),
                        KeyValue::new("server.address", format!("{}.internal", route.upstream)),
                        KeyValue::new("http.response.status_code", status),
                    ])
                    .start_with_context(&tracer, &cx);
                client.end_with_timestamp(upstream_end);
            }
            cx.span().end_with_timestamp(end);

            self.duration.record(
                ms / 1000.0,
                &[
                    KeyValue::new("http.request.method", route.method),
                    KeyValue::new("http.route", route.route),
                    KeyValue::new("http.response.status_code", status),
                ],
            );

            let mut record = logger.create_log_record();
            record.set_timestamp(end);
            record.set_observed_timestamp(end);
            let (severity, text) = if status >= 500 {
                (Severity::Error, "ERROR")
            } else {
                (Severity::Info, "INFO")
            };
            record.set_severity_number(severity);
            record.set_severity_text(text);
            record.set_body(AnyValue::from(format!(
                "{} {} {} {:.1}ms upstream={}",
                route.method, route.route, status, ms, route.upstream
            )));
            record.set_trace_context(
                span_context.trace_id(),
                span_context.span_id(),
                Some(span_context.trace_flags()),
            );
            record.add_attribute("http.response.status_code", status);
            record.add_attribute("http.route", route.route);
            logger.emit(record);
        }
    }

    /// Flushes and stops the exporters.
    pub fn shutdown(&self) -> anyhow::Result<()> {
        self.telemetry.shutdown()
    }
}
