//! End-to-end ingest: concurrent OTLP clients → pipeline → visible in SQL, in-process or through
//! Kafka; and freshness, the time from export to visible.

use super::figures::Figures;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use meridian_analyzer::AnalyzerConfig;
use meridian_collector::auth::Auth;
use meridian_collector::buffer::BufferKind;
use meridian_collector::kafka::KafkaConfig;
use meridian_collector::memory::MemoryLimit;
use meridian_collector::CollectorConfig;
use meridian_collector::Destination;
use prometheus::Registry;
use prost::Message;

use super::payload::gateway_request;
use super::raw_grpc::RawTraceClient;

/// How the collector reaches the analyzer.
pub enum Transport {
    /// The standalone in-process sink (the baseline).
    InProcess,
    /// Disk buffer → Kafka at these brokers → consumer, batches in this wire encoding.
    Kafka(String, meridian_collector::wire::Encoding),
}

impl Transport {
    fn name(&self) -> &'static str {
        match self {
            Transport::InProcess => "in-process",
            Transport::Kafka(..) => "kafka",
        }
    }
}

/// The load of one measurement.
pub struct Load<'a> {
    /// `grpc` or `http`.
    pub protocol: &'a str,
    /// Total spans.
    pub spans: usize,
    /// Spans per request.
    pub batch: usize,
    /// Concurrent clients.
    pub concurrency: usize,
    /// Heavy SQL queries kept running during the ingest (0: none).
    pub query_load: usize,
}

/// The query of the query load: a percentile per region and route over every span so far.
const HEAVY_QUERY: &str = "SELECT region, http_route, \
    approx_percentile_cont(duration_ns, 0.99) AS p99, count(*) AS n \
    FROM spans GROUP BY 1, 2 ORDER BY p99 DESC";

/// A collector and an analyzer in this process, joined by `transport`.
struct Pipeline {
    collector: meridian_collector::RunningCollector,
    analyzer: meridian_analyzer::RunningAnalyzer,
    engine: Arc<meridian_analyzer::query::QueryEngine>,
    dir: std::path::PathBuf,
}

impl Pipeline {
    async fn start(transport: &Transport) -> anyhow::Result<Pipeline> {
        let dir = std::env::temp_dir().join(format!(
            "meridian-bench-{}-{}",
            std::process::id(),
            uuid_like()
        ));
        let registry = Registry::new();
        let analyzer_config = AnalyzerConfig {
            http_addr: "127.0.0.1:0".parse()?,
            postgres: meridian_analyzer::query::PgConfig {
                enabled: false,
                ..Default::default()
            },
            ..AnalyzerConfig::default()
        };
        let mut analyzer = analyzer_config
            .build(&dir.join("analyzer"), &registry)
            .await?;
        let engine = analyzer.engine();
        let mut collector_config = CollectorConfig {
            region: "bench".into(),
            http_addr: "127.0.0.1:0".parse()?,
            ..CollectorConfig::default()
        };
        collector_config.otlp.grpc_addr = "127.0.0.1:0".parse()?;
        collector_config.otlp.http_addr = "127.0.0.1:0".parse()?;
        let kafka;
        let destination = match transport {
            Transport::InProcess => Destination::InProcess(analyzer.sink()),
            Transport::Kafka(brokers, encoding) => {
                collector_config.wire_encoding = *encoding;
                let unique = uuid_like();
                let mut config = KafkaConfig {
                    brokers: brokers.clone(),
                    group_id: format!("bench-{unique}"),
                    ..KafkaConfig::default()
                };
                config.topics.spans = format!("bench-{unique}.spans");
                config.topics.metrics = format!("bench-{unique}.metrics");
                config.topics.logs = format!("bench-{unique}.logs");
                collector_config.buffer.kind = BufferKind::Disk;
                analyzer = analyzer.with_kafka(config.clone());
                kafka = config;
                Destination::Remote(&kafka)
            }
        };
        let analyzer = analyzer.start().await?;
        let collector = collector_config
            .start(
                destination,
                &dir,
                &registry,
                &Auth::open(),
                &MemoryLimit::unlimited(),
            )
            .await?;
        Ok(Pipeline {
            collector,
            analyzer,
            engine,
            dir,
        })
    }

    async fn count(&self, query: &str) -> anyhow::Result<usize> {
        let result = self.engine.query(query).await?;
        Ok(result
            .batches
            .first()
            .map(|b| {
                use arrow::array::AsArray;
                b.column(0)
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .value(0) as usize
            })
            .unwrap_or(0))
    }

    async fn stop(self) -> anyhow::Result<()> {
        let collector = self.collector.shutdown().await;
        let analyzer = self.analyzer.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
        collector?;
        analyzer?;
        Ok(())
    }
}

/// A short random token for names that must not collide between runs.
pub(super) fn uuid_like() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// What one ingest measurement found.
#[derive(Clone, Copy, Debug)]
pub struct Measured {
    /// Spans/s from the first request until SQL counts every span.
    pub rate: f64,
    /// Spans per CPU-second of this whole process (load generator included), from the first
    /// request until the pipeline has stopped, its last flush to Parquet done: steadier than
    /// wall time on a shared machine.
    pub per_cpu_s: f64,
}

/// Measures one protocol through `transport` against a fresh pipeline.
pub async fn run(load: &Load<'_>, transport: &Transport) -> anyhow::Result<Measured> {
    let (protocol, spans, batch, concurrency) =
        (load.protocol, load.spans, load.batch, load.concurrency);
    anyhow::ensure!(
        matches!(protocol, "grpc" | "http"),
        "unknown protocol `{protocol}`: use grpc or http"
    );
    let pipeline = Pipeline::start(transport).await?;
    let collector = &pipeline.collector;
    let requests = spans.div_ceil(batch);
    let payloads = trace_payloads(batch);
    let total = requests * batch;
    let mut seen = 0usize;
    let stop_queries = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let queries_done = Arc::new(AtomicUsize::new(0));
    let query_tasks: Vec<_> = (0..load.query_load)
        .map(|_| {
            let engine = Arc::clone(&pipeline.engine);
            let (stop, done) = (Arc::clone(&stop_queries), Arc::clone(&queries_done));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if engine.query(HEAVY_QUERY).await.is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    {
        let cpu = super::cpu::Clock::new()?;
        let cpu_before = cpu.seconds(std::process::id())?;
        let started = Instant::now();
        let target = Target {
            protocol,
            grpc_addr: collector.grpc_addr,
            http_addr: collector.http_addr,
        };
        let retries = send_all(&target, &payloads, requests, concurrency).await?;
        let sent = started.elapsed();
        seen += total;
        while pipeline.count("SELECT count(*) AS n FROM spans").await? < seen {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let visible = started.elapsed();
        stop_queries.store(true, Ordering::Relaxed);
        for task in query_tasks {
            task.await.context("a query loop panicked")?;
        }
        let rate = total as f64 / visible.as_secs_f64();
        let under = if load.query_load > 0 {
            format!(
                ", under {} query loops: {} heavy queries done",
                load.query_load,
                queries_done.load(Ordering::Relaxed)
            )
        } else {
            String::new()
        };
        pipeline.stop().await?;
        let per_cpu_s = total as f64 / (cpu.seconds(std::process::id())? - cpu_before);
        println!(
            "{protocol:>4} {:>10}: {total} spans in {:.2}s → {rate:.0} spans/s end to end (accepted in {:.2}s, {} backpressure retries, {concurrency} clients, {batch} spans/request{under}); {per_cpu_s:.0} spans per CPU-second to the last flush",
            transport.name(),
            visible.as_secs_f64(),
            sent.as_secs_f64(),
            retries,
        );
        Ok(Measured { rate, per_cpu_s })
    }
}

/// Sends `samples` requests one at a time, each under its own service name, and times each from
/// the export call until SQL sees all its spans; prints p50/p90/p99.
pub async fn freshness(
    transport: &Transport,
    samples: usize,
    batch: usize,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let pipeline = Pipeline::start(transport).await?;
    let grpc = format!("http://{}", pipeline.collector.grpc_addr);
    let mut client = RawTraceClient::connect(grpc).await?;
    // Warm up: the first batch pays for topic metadata and the consumer group join.
    let warm = trace_request_for("warmup", batch, 0);
    client.export(warm.encode_to_vec().into()).await?;
    while pipeline
        .count("SELECT count(*) AS n FROM spans WHERE service_name = 'warmup'")
        .await?
        < batch
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut latencies = Vec::with_capacity(samples);
    for i in 0..samples {
        let service = format!("fresh-{i}");
        let body: bytes::Bytes = trace_request_for(&service, batch, i as u64 + 1)
            .encode_to_vec()
            .into();
        let query = format!("SELECT count(*) AS n FROM spans WHERE service_name = '{service}'");
        let started = Instant::now();
        client.export(body).await?;
        while pipeline.count(&query).await? < batch {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "freshness {:>10}: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({samples} samples of {batch} spans, export → visible in SQL)",
        transport.name(),
        at(0.50).as_secs_f64() * 1e3,
        at(0.90).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
    let name = transport.name().replace('-', "_");
    for (label, q) in [("p50", 0.50), ("p90", 0.90), ("p99", 0.99)] {
        figures.add(format!("{name}_{label}_ms"), at(q).as_secs_f64() * 1e3);
    }
    pipeline.stop().await?;
    Ok(())
}

/// A bench request whose spans all belong to `service`.
fn trace_request_for(
    service: &str,
    batch: usize,
    seed: u64,
) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
    use meridian_collector::otlp::builders::kv;
    let mut request = gateway_request(batch, seed);
    for rs in &mut request.resource_spans {
        if let Some(resource) = rs.resource.as_mut() {
            resource.attributes.retain(|kv| kv.key != "service.name");
            resource.attributes.push(kv("service.name", service));
        }
    }
    request
}

/// 32 encoded gateway-like trace requests of `batch` spans each, sent round-robin by the load
/// generator (bytes passed through untouched, so clients spend no CPU encoding).
pub fn trace_payloads(batch: usize) -> Arc<Vec<bytes::Bytes>> {
    Arc::new(
        (0..32)
            .map(|i| gateway_request(batch, i).encode_to_vec().into())
            .collect(),
    )
}

/// Where a load generator sends: the protocol and the collector's two OTLP addresses.
pub struct Target<'a> {
    /// `grpc` or `http`.
    pub protocol: &'a str,
    /// The OTLP/gRPC receiver.
    pub grpc_addr: std::net::SocketAddr,
    /// The OTLP/HTTP receiver.
    pub http_addr: std::net::SocketAddr,
}

/// Sends `requests` requests (taken round-robin from `payloads`) over `concurrency` connections,
/// retrying each refused with backpressure after 20 ms; returns how many retries that took.
pub async fn send_all(
    target: &Target<'_>,
    payloads: &Arc<Vec<bytes::Bytes>>,
    requests: usize,
    concurrency: usize,
) -> anyhow::Result<usize> {
    let grpc_mode = target.protocol == "grpc";
    let next = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..concurrency {
        let next = Arc::clone(&next);
        let retries = Arc::clone(&retries);
        let payloads = Arc::clone(payloads);
        let grpc = format!("http://{}", target.grpc_addr);
        let http = format!("http://{}/v1/traces", target.http_addr);
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
    Ok(retries.load(Ordering::Relaxed))
}
