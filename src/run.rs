//! Wiring of the long-running modes: standalone, collector, analyzer, agent. Each stage builds
//! itself from its configuration; this only joins them and waits for the signal to stop.

use anyhow::Context;
use prometheus::Registry;

use meridian_collector::auth::Auth;
use meridian_collector::memory::MemoryLimit;
use meridian_collector::Destination;
use tokio_util::sync::CancellationToken;

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

/// The process's tokens (`[auth]`), reloaded on SIGHUP and file changes until `stop`.
fn auth(
    config: &MeridianConfig,
    registry: &Registry,
    stop: &CancellationToken,
) -> anyhow::Result<Auth> {
    let auth = Auth::load(&config.auth, registry).context("loading [auth]")?;
    tokio::spawn(meridian_collector::auth::watch(auth.clone(), stop.clone()));
    Ok(auth)
}

/// The process's memory limit (`max_memory_bytes`), if it has one; `serves_sql`: the process
/// runs queries, whose own budget should fit under it.
fn memory(
    config: &MeridianConfig,
    registry: &Registry,
    serves_sql: bool,
) -> anyhow::Result<MemoryLimit> {
    let limit = MemoryLimit::new(config.max_memory_bytes, registry)
        .context("registering memory metrics")?;
    let queries = config.analyzer.query.memory_limit_bytes as u64;
    if let Some(max) = limit.max_bytes().filter(|_| serves_sql) {
        if queries > max / 2 {
            tracing::warn!(
                max_memory_bytes = max,
                query_memory_limit_bytes = queries,
                "queries may take more than half of the process's memory limit; lower \
                 [analyzer.query] memory_limit_bytes"
            );
        }
    }
    Ok(limit)
}

/// Collector and analyzer in one process, joined by the in-process sink.
pub async fn standalone(config: MeridianConfig) -> anyhow::Result<()> {
    let registry = Registry::new();
    let stop_watch = CancellationToken::new();
    let auth = auth(&config, &registry, &stop_watch)?;
    let _stop_watch = stop_watch.drop_guard();
    let memory = memory(&config, &registry, true)?;
    let data_dir = config.data_dir();
    let analyzer = config
        .analyzer
        .build(&data_dir, &registry)
        .await?
        .with_auth(auth.clone())
        .with_memory_limit(memory.clone());
    // The in-process sink writes straight into the store, so the collector can start first and
    // the analyzer's /readyz can include the collector's readiness.
    let collector = config
        .collector
        .start(
            Destination::InProcess(analyzer.sink()),
            &data_dir,
            &registry,
            &auth,
            &memory,
        )
        .await?;
    let analyzer = analyzer
        .with_ready_check(collector.ready.clone())
        .start()
        .await?;
    println!(
        "meridian standalone: OTLP gRPC {} · OTLP HTTP {} · SQL {}://{}/api/v1/sql{} · data {}",
        collector.grpc_addr,
        collector.http_addr,
        config.analyzer.tls.scheme(),
        analyzer.http_addr,
        postgres_banner(&analyzer),
        config.storage()
    );
    shutdown_signal().await;
    // The analyzer flushes whatever the collector delivered, even if a collector task failed.
    let collector = collector.shutdown().await;
    let analyzer = analyzer.shutdown().await;
    collector.context("stopping the collector")?;
    analyzer.context("stopping the analyzer")?;
    Ok(())
}

/// A regional collector forwarding to Kafka (when brokers are configured) or straight to an
/// analyzer over HTTP, through its disk buffer by default.
pub async fn collector(config: MeridianConfig) -> anyhow::Result<()> {
    let registry = Registry::new();
    let stop_watch = CancellationToken::new();
    let auth = auth(&config, &registry, &stop_watch)?;
    let _stop_watch = stop_watch.drop_guard();
    let collector = config
        .collector
        .start(
            Destination::Remote(&config.kafka),
            &config.data_dir(),
            &registry,
            &auth,
            &memory(&config, &registry, false)?,
        )
        .await?;
    let admin = collector
        .admin_addr
        .map_or_else(String::new, |a| a.to_string());
    println!(
        "meridian collector [{}]: OTLP gRPC {} · OTLP HTTP {} · health/metrics {}://{} · forwarding to {}",
        config.collector.region,
        collector.grpc_addr,
        collector.http_addr,
        config.collector.tls.scheme(),
        admin,
        collector.destination
    );
    shutdown_signal().await;
    collector
        .shutdown()
        .await
        .context("stopping the collector")?;
    Ok(())
}

/// The central analyzer: ingest from collectors, SQL for users.
pub async fn analyzer(config: MeridianConfig) -> anyhow::Result<()> {
    let registry = Registry::new();
    let stop_watch = CancellationToken::new();
    let auth = auth(&config, &registry, &stop_watch)?;
    let _stop_watch = stop_watch.drop_guard();
    let mut analyzer = config
        .analyzer
        .build(&config.data_dir(), &registry)
        .await?
        .with_auth(auth)
        .with_memory_limit(memory(&config, &registry, true)?);
    let mut source = String::new();
    if config.kafka.enabled() {
        analyzer = analyzer.with_kafka(config.kafka.clone());
        source = format!(" · consuming kafka {}", config.kafka.brokers);
    }
    let analyzer = analyzer.start().await?;
    let scheme = config.analyzer.tls.scheme();
    println!(
        "meridian analyzer: SQL {scheme}://{}/api/v1/sql{} · ingest {scheme}://{}/api/v1/ingest{} · data {}",
        analyzer.http_addr,
        postgres_banner(&analyzer),
        analyzer.http_addr,
        source,
        config.storage()
    );
    shutdown_signal().await;
    analyzer.shutdown().await.context("stopping the analyzer")?;
    Ok(())
}

/// The gateway agent: follows the analyzer, drives the configured gateway.
pub async fn agent(config: MeridianConfig) -> anyhow::Result<()> {
    use meridian_agent::gateway::{envoy::Envoy, traefik::Traefik};
    let mut agent = config.agent;
    if agent.id.is_empty() {
        agent.id = host_name();
    }
    agent.validate()?;
    let registry = Registry::new();
    let stop = tokio_util::sync::CancellationToken::new();
    let signal = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        signal.cancel();
    });
    println!(
        "meridian agent {}: following {} · {} · health/metrics http://{}{}",
        agent.id,
        agent.analyzer,
        if agent.envoy.is_some() {
            "envoy"
        } else {
            "traefik"
        },
        agent.listen,
        if agent.dry_run { " · dry run" } else { "" },
    );
    match (agent.envoy.clone(), agent.traefik.clone()) {
        (Some(envoy), _) => {
            meridian_agent::Agent::new(agent, Envoy::new(envoy), registry)?
                .run(stop)
                .await?
        }
        (None, Some(traefik)) => {
            meridian_agent::Agent::new(agent, Traefik::new(traefik), registry)?
                .run(stop)
                .await?
        }
        (None, None) => {
            anyhow::bail!("no gateway configured: add [agent.envoy] or [agent.traefik]")
        }
    }
    Ok(())
}

/// The machine's name (the agent's default id).
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "agent".into())
}

/// ` · PostgreSQL ADDR` for the startup line, when the endpoint is on.
pub fn postgres_banner(analyzer: &meridian_analyzer::RunningAnalyzer) -> String {
    analyzer
        .pg_addr
        .map(|addr| format!(" · PostgreSQL {addr}"))
        .unwrap_or_default()
}
