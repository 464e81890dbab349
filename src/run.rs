//! Wiring of the three long-running modes: standalone, collector, analyzer.

use std::sync::Arc;

use anyhow::Context;
use prometheus::Registry;

use meridian_collector::buffer::BufferKind;
use meridian_collector::sink::kafka::KafkaSink;
use meridian_collector::sink::Sink;
use meridian_collector::Signal;

use crate::config::MeridianConfig;

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down: no new requests; flushing what was accepted");
}

/// Collector and analyzer in one process, joined by the in-process sink.
pub async fn standalone(config: MeridianConfig) -> anyhow::Result<()> {
    let registry = Registry::new();
    let analyzer = config.analyzer.open(&config.data_dir(), &registry).await?;
    // The in-process sink writes straight into the store, so the collector can start first and
    // the analyzer's /readyz can include the collector's readiness.
    let collector = config.collector.start(analyzer.sink(), &registry).await?;
    let analyzer = analyzer
        .with_ready_check(collector.ready.clone())
        .serve()
        .await?;
    println!(
        "meridian standalone: OTLP gRPC {} · OTLP HTTP {} · SQL http://{}/api/v1/sql{} · data {}",
        collector.grpc_addr,
        collector.http_addr,
        analyzer.http_addr,
        postgres_banner(&analyzer),
        config.storage()
    );
    shutdown_signal().await;
    collector.shutdown().await;
    analyzer.shutdown().await;
    Ok(())
}

/// A regional collector forwarding to Kafka (when brokers are configured) or straight to an
/// analyzer over HTTP, through its disk buffer by default.
pub async fn collector(mut config: MeridianConfig) -> anyhow::Result<()> {
    let registry = Registry::new();
    let (sink, destination): (Arc<dyn Sink>, String) = if config.kafka.enabled() {
        let topics: Vec<&str> = Signal::ALL
            .iter()
            .map(|s| config.kafka.topics.of(*s))
            .collect();
        if let Err(e) = config.kafka.ensure_topics(&topics).await {
            // The broker may be down now; the disk buffer holds the data until it is back.
            tracing::warn!(error = %e, "could not make sure the Kafka topics exist");
        }
        let sink = KafkaSink::new(&config.kafka, &config.collector.region)
            .context("building the Kafka sink")?;
        (Arc::new(sink), format!("kafka {}", config.kafka.brokers))
    } else {
        let sink = config
            .network_sink
            .build()
            .context("building the network sink")?;
        (Arc::new(sink), config.network_sink.url.clone())
    };
    let buffer = &mut config.collector.buffer;
    if buffer.kind == BufferKind::Auto {
        buffer.kind = BufferKind::Disk;
    }
    if buffer.dir.is_none() {
        buffer.dir = Some(
            config
                .data_dir
                .clone()
                .unwrap_or_else(|| "meridian-data".into())
                .join("buffer"),
        );
    }
    let collector = config.collector.start(sink, &registry).await?;
    let admin = tokio::net::TcpListener::bind(config.collector.http_addr)
        .await
        .with_context(|| {
            format!(
                "binding the collector HTTP API on {}",
                config.collector.http_addr
            )
        })?;
    let admin_addr = admin.local_addr()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let admin_task = tokio::spawn({
        let router = meridian_collector::admin::router(registry.clone(), collector.ready.clone());
        let stop = stop.clone();
        async move { axum_serve(admin, router, stop).await }
    });
    println!(
        "meridian collector [{}]: OTLP gRPC {} · OTLP HTTP {} · health/metrics http://{} · forwarding to {}",
        config.collector.region, collector.grpc_addr, collector.http_addr, admin_addr, destination
    );
    shutdown_signal().await;
    collector.shutdown().await;
    stop.cancel();
    let _ = admin_task.await;
    Ok(())
}

async fn axum_serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    stop: tokio_util::sync::CancellationToken,
) {
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::error!(error = %e, "HTTP API failed");
    }
}

/// The central analyzer: ingest from collectors, SQL for users.
pub async fn analyzer(config: MeridianConfig) -> anyhow::Result<()> {
    let registry = Registry::new();
    let mut analyzer = config.analyzer.open(&config.data_dir(), &registry).await?;
    let mut source = String::new();
    if config.kafka.enabled() {
        analyzer = analyzer.with_kafka(config.kafka.clone());
        source = format!(" · consuming kafka {}", config.kafka.brokers);
    }
    let analyzer = analyzer.serve().await?;
    println!(
        "meridian analyzer: SQL http://{}/api/v1/sql{} · ingest http://{}/api/v1/ingest{} · data {}",
        analyzer.http_addr,
        postgres_banner(&analyzer),
        analyzer.http_addr,
        source,
        config.storage()
    );
    shutdown_signal().await;
    analyzer.shutdown().await;
    Ok(())
}

/// ` · PostgreSQL ADDR` for the startup line, when the endpoint is on.
pub fn postgres_banner(analyzer: &meridian_analyzer::RunningAnalyzer) -> String {
    analyzer
        .pg_addr
        .map(|addr| format!(" · PostgreSQL {addr}"))
        .unwrap_or_default()
}
