//! End-to-end ingest: concurrent OTLP clients → standalone pipeline → visible in SQL.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use meridian_analyzer::AnalyzerConfig;
use meridian_collector::CollectorConfig;
use prometheus::Registry;
use prost::Message;

use super::payload::trace_request;
use super::raw_grpc::RawTraceClient;

/// Measures one protocol against a fresh standalone pipeline.
pub async fn run(
    protocol: &str,
    spans: usize,
    batch: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        matches!(protocol, "grpc" | "http"),
        "unknown protocol `{protocol}`: use grpc or http"
    );
    let dir = std::env::temp_dir().join(format!("meridian-bench-{}", std::process::id()));
    let registry = Registry::new();
    let mut analyzer_config = AnalyzerConfig::default();
    analyzer_config.http_addr.set_port(0);
    analyzer_config.http_addr.set_ip([127, 0, 0, 1].into());
    let analyzer = analyzer_config.open(&dir, &registry)?;
    let engine = analyzer.engine();
    let sink = analyzer.sink();
    let analyzer = analyzer.serve().await?;
    let collector_config = CollectorConfig {
        otlp_grpc_addr: "127.0.0.1:0".parse()?,
        otlp_http_addr: "127.0.0.1:0".parse()?,
        region: "bench".into(),
        ..CollectorConfig::default()
    };
    let collector = collector_config.start(sink, &registry).await?;

    let requests = spans.div_ceil(batch);
    let payloads: Arc<Vec<bytes::Bytes>> = Arc::new(
        (0..32)
            .map(|i| trace_request(batch, i).encode_to_vec().into())
            .collect(),
    );
    let total = requests * batch;
    let mut seen = 0usize;
    let grpc_mode = protocol == "grpc";
    {
        let next = Arc::new(AtomicUsize::new(0));
        let retries = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut clients = Vec::new();
        for _ in 0..concurrency {
            let next = Arc::clone(&next);
            let retries = Arc::clone(&retries);
            let payloads = Arc::clone(&payloads);
            let grpc = format!("http://{}", collector.grpc_addr);
            let http = format!("http://{}/v1/traces", collector.http_addr);
            clients.push(tokio::spawn(async move {
                let mut grpc_client = if grpc_mode {
                    Some(RawTraceClient::connect(grpc).await?)
                } else {
                    None
                };
                let http_client = reqwest::Client::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        return anyhow::Ok(());
                    }
                    let body = &payloads[i % payloads.len()];
                    loop {
                        let ok = match grpc_client.as_mut() {
                            Some(c) => match c.export(body.clone()).await {
                                Ok(_) => true,
                                Err(s) if s.code() == tonic::Code::Unavailable => false,
                                Err(s) => anyhow::bail!("gRPC export failed: {s}"),
                            },
                            None => {
                                let r = http_client
                                    .post(&http)
                                    .header("content-type", "application/x-protobuf")
                                    .body(body.clone())
                                    .send()
                                    .await?;
                                match r.status().as_u16() {
                                    200 => true,
                                    429 | 503 => false,
                                    s => anyhow::bail!("HTTP export failed: {s}"),
                                }
                            }
                        };
                        if ok {
                            break;
                        }
                        retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }));
        }
        for c in clients {
            c.await.context("client panicked")??;
        }
        let sent = started.elapsed();
        seen += total;
        loop {
            let result = engine.query("SELECT count(*) AS n FROM spans").await?;
            let n = result.batches.first().map(|b| {
                use arrow::array::AsArray;
                b.column(0)
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .value(0) as usize
            });
            if n.unwrap_or(0) >= seen {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let visible = started.elapsed();
        println!(
            "{protocol:>4}: {total} spans in {:.2}s → {:.0} spans/s end to end (accepted in {:.2}s, {} backpressure retries, {concurrency} clients, {batch} spans/request)",
            visible.as_secs_f64(),
            total as f64 / visible.as_secs_f64(),
            sent.as_secs_f64(),
            retries.load(Ordering::Relaxed),
        );
    }
    collector.shutdown().await;
    analyzer.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
