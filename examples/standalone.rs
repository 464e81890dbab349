//! Run with `cargo run --example standalone`: Meridian's collector and analyzer in one process,
//! one span sent by the real OpenTelemetry exporter (as a gateway would), then found with SQL.
//!
//! The same wiring as `meridian standalone`: the analyzer is built first so that the collector
//! can deliver into its store in-process; every stage builds itself from its configuration.

use std::time::{Duration, Instant};

use anyhow::Context;
use meridian_analyzer::AnalyzerConfig;
use meridian_collector::auth::Auth;
use meridian_collector::memory::MemoryLimit;
use meridian_collector::{CollectorConfig, Destination};
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use prometheus::Registry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let registry = Registry::new();

    // The analyzer: store, SQL engine and analysis pipeline; no listener needed here.
    let analyzer = AnalyzerConfig::default()
        .build(data.path(), &registry)
        .await?;
    let sql = analyzer.engine();

    // A collector for region eu-west-1 on free loopback ports, delivering in-process.
    let mut config = CollectorConfig {
        region: "eu-west-1".into(),
        ..CollectorConfig::default()
    };
    config.otlp.grpc_addr = "127.0.0.1:0".parse()?;
    config.otlp.http_addr = "127.0.0.1:0".parse()?;
    let collector = config
        .start(
            Destination::InProcess(analyzer.sink()),
            data.path(),
            &registry,
            &Auth::open(),
            &MemoryLimit::unlimited(),
        )
        .await?;

    // The gateway's side: the OpenTelemetry SDK exporting over OTLP/gRPC.
    let exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(format!("http://{}", collector.grpc_addr))
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("checkout-gw").build())
        .build();
    let mut span = provider
        .tracer("example")
        .span_builder("GET /api/orders")
        .with_kind(SpanKind::Server)
        .with_attributes([KeyValue::new("http.route", "/api/orders")])
        .start(&provider.tracer("example"));
    span.end();
    provider.shutdown().context("flushing the exporter")?;

    // The span, stamped with the collector's region, answered by SQL.
    let query = "SELECT region, service_name, http_route FROM spans";
    let deadline = Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let result = sql.query(query).await?;
        let rows: usize = result.batches.iter().map(|b| b.num_rows()).sum();
        if rows > 0 || Instant::now() > deadline {
            break result.batches;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let table = arrow::util::pretty::pretty_format_batches(&rows)?.to_string();
    println!("{table}");
    anyhow::ensure!(
        table.contains("eu-west-1")
            && table.contains("checkout-gw")
            && table.contains("/api/orders"),
        "the span did not reach SQL"
    );
    collector.shutdown().await?;
    Ok(())
}
