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
use crate::buffer::{spool, BufferKind};
use crate::config::CollectorConfig;
use crate::error::CollectorError;
use crate::forward;
use crate::kafka::KafkaConfig;
use crate::listen::{bind, spawn_http};
use crate::otlp::Intake;
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
    /// otherwise, and forwards to `destination`; metrics go to `registry`.
    pub async fn start(
        &self,
        destination: Destination<'_>,
        data_dir: &Path,
        registry: &Registry,
    ) -> Result<RunningCollector, CollectorError> {
        let metrics = CollectorMetrics::new(registry)?;
        let remote = matches!(destination, Destination::Remote(_));
        let (sink, described) = self.sink(destination).await?;
        let disk = match (self.buffer.kind, remote) {
            (BufferKind::Disk, _) | (BufferKind::Auto, true) => {
                Some(self.buffer.build(data_dir, metrics.clone())?)
            }
            _ => None,
        };
        let (queue, rx) = queue::bounded(self.queue_capacity_rows, metrics.clone());
        let intake = Intake::new(&self.region, queue, metrics.clone(), self.otlp.retry_after);
        let intake = if disk.is_some() {
            intake.durable()
        } else {
            intake
        };
        let stop_receivers = CancellationToken::new();
        let stop_forwarding = CancellationToken::new();
        let receivers = self.otlp.start(intake, stop_receivers.clone()).await?;
        let ready = self.ready_check(&metrics, disk.is_some());
        let (spool, forwarder) = match disk {
            Some(buffer) => {
                let spool =
                    tokio::spawn(spool::run(Arc::clone(&buffer), rx, sink.max_batch_bytes()));
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
            let router = admin::router(registry.clone(), Arc::clone(&ready));
            let task = spawn_http("collector API", listener, router, stop_forwarding.clone());
            (Some(addr), Some(task))
        } else {
            (None, None)
        };
        tracing::info!(
            region = %self.region,
            grpc_addr = %receivers.grpc_addr,
            http_addr = %receivers.http_addr,
            destination = %described,
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
                let sink = KafkaSink::new(kafka, &self.region)?;
                (Arc::new(sink), format!("kafka {}", kafka.brokers))
            }
            Destination::Remote(_) => {
                let sink = self.network.build()?;
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

impl std::fmt::Debug for Destination<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::InProcess(sink) => write!(f, "InProcess({})", sink.name()),
            Destination::Remote(kafka) => write!(f, "Remote(kafka: {:?})", kafka.brokers),
        }
    }
}
