//! The collector's configuration, and starting a collector from it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;

use crate::buffer::{spool, BufferConfig, BufferKind, DiskBuffer};
use crate::error::CollectorError;
use crate::forward::{self, ForwardConfig};
use crate::otlp::{self, grpc::GrpcReceiver, Intake};
use crate::queue;
use crate::sink::Sink;
use crate::telemetry::CollectorMetrics;

/// Configuration of one regional collector (`[collector]` in the TOML file).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// Region stamped on every row (the `region` column).
    pub region: String,
    /// OTLP/gRPC listen address.
    pub otlp_grpc_addr: SocketAddr,
    /// OTLP/HTTP listen address.
    pub otlp_http_addr: SocketAddr,
    /// Health and metrics API of a separate collector process (`meridian collector`).
    pub http_addr: SocketAddr,
    /// Largest request accepted, in bytes, before and after decompression.
    pub max_request_bytes: usize,
    /// Rows the queue between receivers and sink holds before receivers answer with backpressure.
    pub queue_capacity_rows: usize,
    /// What receivers tell clients to wait when the queue is full (`Retry-After`, `RetryInfo`).
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
    /// Batching and retry of forwarding.
    pub forward: ForwardConfig,
    /// Where accepted batches wait for the sink: memory, or the durable disk buffer.
    pub buffer: BufferConfig,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            region: "local".into(),
            otlp_grpc_addr: SocketAddr::from(([0, 0, 0, 0], 4317)),
            otlp_http_addr: SocketAddr::from(([0, 0, 0, 0], 4318)),
            http_addr: SocketAddr::from(([0, 0, 0, 0], 4381)),
            max_request_bytes: 64 << 20,
            queue_capacity_rows: 262_144,
            retry_after: Duration::from_secs(1),
            forward: ForwardConfig::default(),
            buffer: BufferConfig::default(),
        }
    }
}

/// A started collector.
pub struct RunningCollector {
    /// Whether the collector can take traffic: its sink is delivering and its queue has room.
    pub ready: crate::admin::ReadyCheck,
    /// Bound OTLP/gRPC address (the real port when configured with port 0).
    pub grpc_addr: SocketAddr,
    /// Bound OTLP/HTTP address.
    pub http_addr: SocketAddr,
    stop_receivers: CancellationToken,
    stop_forwarding: CancellationToken,
    receivers: Vec<JoinHandle<()>>,
    /// The disk buffer's writer (disk mode only); ends when the receivers are gone.
    spool: Option<JoinHandle<()>>,
    forwarder: JoinHandle<()>,
}

/// Binds `addr` and reads back the bound address (the real port when `addr` has port 0).
async fn bind(
    what: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), CollectorError> {
    let error = |source| CollectorError::Bind { what, addr, source };
    let listener = TcpListener::bind(addr).await.map_err(error)?;
    let bound = listener.local_addr().map_err(error)?;
    Ok((listener, bound))
}

impl CollectorConfig {
    /// Binds the receivers and starts forwarding to `sink`; metrics go to `registry`. With
    /// `buffer.kind = "disk"`, `buffer.dir` must be set.
    pub async fn start(
        &self,
        sink: Arc<dyn Sink>,
        registry: &Registry,
    ) -> Result<RunningCollector, CollectorError> {
        let metrics = CollectorMetrics::new(registry)?;
        let (queue, rx) = queue::bounded(self.queue_capacity_rows, metrics.clone());
        let intake = Intake::new(&self.region, queue, metrics.clone(), self.retry_after);
        let disk = match (self.buffer.kind, &self.buffer.dir) {
            (BufferKind::Disk, Some(dir)) => {
                Some(DiskBuffer::open(dir, self.buffer.clone(), metrics.clone())?)
            }
            (BufferKind::Disk, None) => return Err(CollectorError::BufferDir),
            _ => None,
        };
        let intake = if disk.is_some() {
            intake.durable()
        } else {
            intake
        };

        let (grpc_listener, grpc_addr) = bind("OTLP/gRPC", self.otlp_grpc_addr).await?;
        let (http_listener, http_addr) = bind("OTLP/HTTP", self.otlp_http_addr).await?;

        let stop_receivers = CancellationToken::new();
        let stop_forwarding = CancellationToken::new();

        let mut server = tonic::transport::Server::builder();
        let grpc = GrpcReceiver::new(intake.clone()).add_to(&mut server, self.max_request_bytes);
        let stop = stop_receivers.clone();
        let grpc_task = tokio::spawn(async move {
            let incoming = TcpListenerStream::new(grpc_listener);
            if let Err(e) = grpc
                .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "OTLP/gRPC server failed");
            }
        });

        let http = otlp::http::router(intake, self.max_request_bytes);
        let stop = stop_receivers.clone();
        let http_task = tokio::spawn(async move {
            let serve =
                axum::serve(http_listener, http).with_graceful_shutdown(stop.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "OTLP/HTTP server failed");
            }
        });

        let ready: crate::admin::ReadyCheck = {
            let (sink_up, queue_rows) = (metrics.sink_up.clone(), metrics.queue_rows.clone());
            let buffer_bytes = metrics.buffer_bytes.clone();
            // Nearly full: stop sending new clients here before they start getting refusals.
            let threshold = (self.queue_capacity_rows as f64 * 0.9) as i64;
            let buffer_threshold = match disk {
                Some(_) => (self.buffer.max_bytes as f64 * 0.9) as i64,
                None => i64::MAX,
            };
            std::sync::Arc::new(move || {
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
        };
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
        tracing::info!(region = %self.region, %grpc_addr, %http_addr, "collector listening for OTLP");
        Ok(RunningCollector {
            ready,
            grpc_addr,
            http_addr,
            stop_receivers,
            stop_forwarding,
            receivers: vec![grpc_task, http_task],
            spool,
            forwarder,
        })
    }
}

impl RunningCollector {
    /// Stops accepting requests, then waits until every accepted row is delivered (or, with the
    /// sink unreachable, until the forwarder's shutdown grace period ends; with a disk buffer the
    /// undelivered rows stay on disk for the next start).
    pub async fn shutdown(self) {
        self.stop_receivers.cancel();
        for task in self.receivers {
            let _ = task.await;
        }
        // The receivers' senders are gone, so the queue drains: into the disk buffer (whose
        // writer then ends) or straight to the sink.
        if let Some(spool) = self.spool {
            let _ = spool.await;
        }
        self.stop_forwarding.cancel();
        let _ = self.forwarder.await;
    }
}
