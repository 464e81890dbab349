//! A running collector, assembled from its configuration: receivers → intake → queue →
//! (disk buffer) → forwarder → sink, plus its own operator API when it forwards to a remote
//! analyzer.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use prometheus::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, ReadyCheck};
use crate::auth::Auth;
use crate::buffer::{spool, BufferKind};
use crate::config::CollectorConfig;
use crate::error::CollectorError;
use crate::forward;
use crate::kafka::KafkaConfig;
use crate::listen::{bind, spawn_https};
use crate::memory::MemoryLimit;
use crate::otlp::{Intake, RateLimiter};
use crate::queue;
use crate::signal::Signal;
use crate::sink::kafka::KafkaSink;
use crate::sink::Sink;
use crate::task::{join, join_all, TaskFailed};
use crate::telemetry::CollectorMetrics;

/// Where a collector delivers what it accepts.
pub enum Destination<'a> {
    /// An analyzer in the same process (standalone): batches wait in memory unless
    /// `buffer.kind = "disk"`, and the analyzer's API serves the collector's health and metrics.
    InProcess(Arc<dyn Sink>),
    /// A remote analyzer: through Kafka when `kafka.brokers` is set, else over HTTP to
    /// `collector.network.url`; batches wait in the disk buffer unless `buffer.kind =
    /// "memory"`, and the collector serves its own API on `collector.http_addr`.
    Remote(&'a KafkaConfig),
}

/// A started collector.
pub struct RunningCollector {
    /// Whether the collector can take traffic: its sink is delivering and its queue has room.
    pub ready: ReadyCheck,
    /// Bound OTLP/gRPC address (the real port when configured with port 0).
    pub grpc_addr: SocketAddr,
    /// Bound OTLP/HTTP address.
    pub http_addr: SocketAddr,
    /// Bound address of the collector's own API (remote destinations only).
    pub admin_addr: Option<SocketAddr>,
    /// Where batches go, for banners: `in-process`, `kafka BROKERS` or the analyzer's URL.
    pub destination: String,
    stop_receivers: CancellationToken,
    stop_forwarding: CancellationToken,
    receivers: Vec<(&'static str, JoinHandle<()>)>,
    /// The disk buffer's writer (disk mode only); ends when the receivers are gone.
    spool: Option<JoinHandle<()>>,
    forwarder: JoinHandle<()>,
    admin: Option<JoinHandle<()>>,
}

impl CollectorConfig {
    /// Starts the collector: binds the receivers (and, for a remote destination, the
    /// collector's API), opens the disk buffer under `data_dir` unless `buffer.dir` says
    /// otherwise, and forwards to `destination`; metrics go to `registry`; `auth` decides who
    /// may send (an `ingest` token) and read its metrics; `memory` refuses requests the process
    /// has no room for.
    pub async fn start(
        &self,
        destination: Destination<'_>,
        data_dir: &Path,
        registry: &Registry,
        auth: &Auth,
        memory: &MemoryLimit,
    ) -> Result<RunningCollector, CollectorError> {
        let targets = crate::probe::validate(&self.probes)?;
        let metrics = CollectorMetrics::new(registry)?;
        let probe_metrics = crate::probe::ProbeMetrics::new(registry)?;
        let remote = matches!(destination, Destination::Remote(_));
        let (sink, described) = self.sink(destination).await?;
        let disk = match (self.buffer.kind, remote) {
            (BufferKind::Disk, _) | (BufferKind::Auto, true) => {
                Some(self.buffer.build(data_dir, metrics.clone())?)
            }
            _ => None,
        };
        metrics
            .queue_capacity_rows
            .set(self.queue_capacity_rows as i64);
        if disk.is_some() {
            metrics.buffer_max_bytes.set(self.buffer.max_bytes as i64);
        }
        let (queue, rx) = queue::bounded(self.queue_capacity_rows, metrics.clone());
        let intake = Intake::new(&self.region, queue, metrics.clone(), self.otlp.retry_after)
            .limited(RateLimiter::new(self.otlp.rate_limit.clone()))
            .with_memory_limit(memory.clone());
        let intake = match &disk {
            Some(buffer) => intake.durable(Arc::clone(buffer)),
            None => intake,
        };
        let stop_receivers = CancellationToken::new();
        let stop_forwarding = CancellationToken::new();
        let mut receivers = self
            .otlp
            .start(intake.clone(), auth, stop_receivers.clone())
            .await?;
        // The probes queue like receivers, so they stop with them.
        receivers.tasks.extend(crate::probe::start(
            &self.probes,
            targets,
            &self.region,
            intake.clone(),
            probe_metrics,
            stop_receivers.clone(),
        ));
        receivers.tasks.extend(crate::self_metrics::start(
            &self.self_metrics,
            &self.region,
            registry.clone(),
            intake,
            stop_receivers.clone(),
        ));
        let ready = self.ready_check(&metrics, disk.is_some());
        let (spool, forwarder) = match disk {
            Some(buffer) => {
                let spool = tokio::spawn(spool::run(
                    Arc::clone(&buffer),
                    rx,
                    sink.max_batch_bytes(),
                    self.wire_encoding,
                ));
                let drain = tokio::spawn(forward::disk::run(
                    self.forward.clone(),
                    buffer,
                    sink,
                    metrics,
                    stop_forwarding.clone(),
                ));
                (Some(spool), drain)
            }
            None => (
                None,
                tokio::spawn(forward::memory::run(
                    self.forward.clone(),
                    rx,
                    sink,
                    metrics,
                    stop_forwarding.clone(),
                )),
            ),
        };
        let (admin_addr, admin) = if remote {
            let (listener, addr) = bind("collector HTTP API", self.http_addr).await?;
            let router = admin::router(registry.clone(), Arc::clone(&ready), auth);
            let tls = self.tls.acceptor(&stop_forwarding)?;
            let stop = stop_forwarding.clone();
            let task = spawn_https("collector API", listener, router, tls, stop);
            (Some(addr), Some(task))
        } else {
            (None, None)
        };
        tracing::info!(
            region = %self.region,
            grpc_addr = %receivers.grpc_addr,
            http_addr = %receivers.http_addr,
            destination = %described,
            probes = self.probes.len(),
            "collector listening for OTLP"
        );
        Ok(RunningCollector {
            ready,
            grpc_addr: receivers.grpc_addr,
            http_addr: receivers.http_addr,
            admin_addr,
            destination: described,
            stop_receivers,
            stop_forwarding,
            receivers: receivers.tasks,
            spool,
            forwarder,
            admin,
        })
    }

    /// The sink for `destination`, and how to name it in banners.
    async fn sink(
        &self,
        destination: Destination<'_>,
    ) -> Result<(Arc<dyn Sink>, String), CollectorError> {
        Ok(match destination {
            Destination::InProcess(sink) => (sink, "in-process".to_owned()),
            Destination::Remote(kafka) if kafka.enabled() => {
                let topics: Vec<&str> = Signal::ALL.iter().map(|s| kafka.topics.of(*s)).collect();
                if let Err(e) = kafka.ensure_topics(&topics).await {
                    // The broker may be down now; the disk buffer holds the data until it is back.
                    tracing::warn!(error = %e, "could not make sure the Kafka topics exist");
                }
                let sink = KafkaSink::new(kafka, &self.region, self.wire_encoding)?;
                (Arc::new(sink), format!("kafka {}", kafka.brokers))
            }
            Destination::Remote(_) => {
                let sink = self.network.build(self.wire_encoding)?;
                (Arc::new(sink), self.network.url.clone())
            }
        })
    }

    /// Ready while the sink delivers and the queue and the disk buffer are under 90% full.
    fn ready_check(&self, metrics: &CollectorMetrics, disk: bool) -> ReadyCheck {
        let (sink_up, queue_rows) = (metrics.sink_up.clone(), metrics.queue_rows.clone());
        let buffer_bytes = metrics.buffer_bytes.clone();
        // Nearly full: stop sending new clients here before they start getting refusals.
        let threshold = (self.queue_capacity_rows as f64 * 0.9) as i64;
        let buffer_threshold = if disk {
            (self.buffer.max_bytes as f64 * 0.9) as i64
        } else {
            i64::MAX
        };
        Arc::new(move || {
            if sink_up.get() == 0 {
                Err("the sink is unavailable; accepted data is being retried".into())
            } else if queue_rows.get() >= threshold {
                Err(format!(
                    "the queue holds {} rows, over 90% of its capacity",
                    queue_rows.get()
                ))
            } else if buffer_bytes.get() >= buffer_threshold {
                Err(format!(
                    "the disk buffer holds {} bytes, over 90% of its capacity",
                    buffer_bytes.get()
                ))
            } else {
                Ok(())
            }
        })
    }
}

impl RunningCollector {
    /// Stops accepting requests, then waits until every accepted row is delivered (or, with the
    /// sink unreachable, until the forwarder's shutdown grace period ends; with a disk buffer the
    /// undelivered rows stay on disk for the next start). A task that panicked is reported after
    /// the others were joined.
    pub async fn shutdown(self) -> Result<(), TaskFailed> {
        self.stop_receivers.cancel();
        let receivers = join_all(self.receivers).await;
        // The receivers' senders are gone, so the queue drains: into the disk buffer (whose
        // writer then ends) or straight to the sink.
        let spool = match self.spool {
            Some(spool) => join("disk buffer writer", spool).await,
            None => Ok(()),
        };
        self.stop_forwarding.cancel();
        let forwarder = join("forwarder", self.forwarder).await;
        let admin = match self.admin {
            Some(admin) => join("collector API", admin).await,
            None => Ok(()),
        };
        receivers.and(spool).and(forwarder).and(admin)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prost::Message;

    use super::*;
    use crate::otlp::builders::{span, traces};
    use crate::testing::{CaptureSink, Reply};

    fn local() -> CollectorConfig {
        let mut config = CollectorConfig {
            region: "eu-test".into(),
            ..CollectorConfig::default()
        };
        config.otlp.grpc_addr = "127.0.0.1:0".parse().unwrap();
        config.otlp.http_addr = "127.0.0.1:0".parse().unwrap();
        config.forward.batch_timeout = Duration::from_millis(10);
        config
    }

    async fn post(addr: SocketAddr, body: Vec<u8>) -> reqwest::StatusCode {
        reqwest::Client::new()
            .post(format!("http://{addr}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Scenario: an in-process collector on 127.0.0.1:0 gets a malformed request, then a good one.
    /// Guarantees: the bad one is answered 400 and changes nothing; the good one's spans reach
    /// the sink stamped with the region; shutdown delivers and reports a clean stop.
    #[tokio::test]
    async fn accepted_spans_reach_the_sink_stamped_with_the_region() {
        let dir = tempfile::tempdir().unwrap();
        let sink = CaptureSink::scripted([]);
        let running = local()
            .start(
                Destination::InProcess(Arc::new(sink.clone())),
                dir.path(),
                &Registry::new(),
                &Auth::open(),
                &MemoryLimit::unlimited(),
            )
            .await
            .unwrap();
        assert!(
            running.admin_addr.is_none(),
            "the analyzer serves the API in-process"
        );
        assert_eq!(
            post(running.http_addr, b"not protobuf".to_vec()).await,
            reqwest::StatusCode::BAD_REQUEST
        );
        let body = traces("gw", (0..3).map(|n| span("GET /", n)).collect()).encode_to_vec();
        assert_eq!(post(running.http_addr, body).await, reqwest::StatusCode::OK);
        running.shutdown().await.unwrap();
        assert_eq!(sink.delivered_rows(), 3);
        let batch = &sink.delivered()[0].batches[0];
        let region = batch
            .column_by_name("region")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap()
            .value(0)
            .to_owned();
        assert_eq!(region, "eu-test");
        assert!(
            dir.path().read_dir().unwrap().next().is_none(),
            "in-process: memory queue, no disk buffer"
        );
    }

    /// Scenario: the sink panics while delivering.
    /// Guarantees: shutdown does not swallow it: it names the forwarder as panicked.
    #[tokio::test]
    async fn a_panicking_forwarder_is_reported_at_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let sink = CaptureSink::scripted([Reply::Panic]);
        let running = local()
            .start(
                Destination::InProcess(Arc::new(sink)),
                dir.path(),
                &Registry::new(),
                &Auth::open(),
                &MemoryLimit::unlimited(),
            )
            .await
            .unwrap();
        let body = traces("gw", vec![span("GET /", 1)]).encode_to_vec();
        assert_eq!(post(running.http_addr, body).await, reqwest::StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stopped = running.shutdown().await.unwrap_err();
        assert_eq!(stopped.to_string(), "the forwarder task panicked");
    }

    /// Scenario: a remote collector (HTTP to an analyzer that is not there) on 127.0.0.1:0.
    /// Guarantees: it buffers on disk under the data directory, serves its own API, and says
    /// it is not ready while the sink is unreachable.
    #[tokio::test]
    async fn a_remote_collector_buffers_on_disk_and_serves_its_api() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = local();
        config.http_addr = "127.0.0.1:0".parse().unwrap();
        config.network.url = "http://127.0.0.1:9".into();
        config.forward.shutdown_grace = Duration::from_millis(100);
        let kafka = KafkaConfig::default();
        let running = config
            .start(
                Destination::Remote(&kafka),
                dir.path(),
                &Registry::new(),
                &Auth::open(),
                &MemoryLimit::unlimited(),
            )
            .await
            .unwrap();
        assert_eq!(running.destination, "http://127.0.0.1:9");
        let body = traces("gw", vec![span("GET /", 1)]).encode_to_vec();
        assert_eq!(post(running.http_addr, body).await, reqwest::StatusCode::OK);
        assert!(dir.path().join("buffer").is_dir());
        let admin = running.admin_addr.unwrap();
        let mut ready = reqwest::StatusCode::OK;
        for _ in 0..50 {
            ready = reqwest::get(format!("http://{admin}/readyz"))
                .await
                .unwrap()
                .status();
            if ready == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(ready, reqwest::StatusCode::SERVICE_UNAVAILABLE);
        running.shutdown().await.unwrap();
    }
}
