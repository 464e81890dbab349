//! The receive stage's configuration (`[collector.otlp]`), and starting both receivers from it.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::grpc::GrpcReceiver;
use super::{Intake, RateLimitConfig};
use crate::auth::Auth;
use crate::error::CollectorError;
use crate::listen::{bind, spawn_https};
use crate::tls::conn::Incoming;
use crate::tls::ServerTlsConfig;

/// Where and how the OTLP receivers listen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// OTLP/gRPC listen address (`--otlp-grpc-addr`).
    pub grpc_addr: SocketAddr,
    /// OTLP/HTTP listen address (`--otlp-http-addr`).
    pub http_addr: SocketAddr,
    /// Largest request accepted, in bytes, before and after decompression.
    pub max_request_bytes: usize,
    /// What receivers tell clients to wait when the queue is full (`Retry-After`, `RetryInfo`).
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
    /// Rate limits per sender (`[collector.otlp.rate_limit]`; off by default).
    pub rate_limit: RateLimitConfig,
    /// TLS on both receivers (`[collector.otlp.tls]`; off by default).
    pub tls: ServerTlsConfig,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            grpc_addr: SocketAddr::from(([0, 0, 0, 0], 4317)),
            http_addr: SocketAddr::from(([0, 0, 0, 0], 4318)),
            max_request_bytes: 64 << 20,
            retry_after: Duration::from_secs(1),
            rate_limit: RateLimitConfig::default(),
            tls: ServerTlsConfig::default(),
        }
    }
}

/// Both receivers, serving until their stop token fires.
pub struct Receivers {
    /// Bound OTLP/gRPC address (the real port when configured with port 0).
    pub grpc_addr: SocketAddr,
    /// Bound OTLP/HTTP address.
    pub http_addr: SocketAddr,
    /// The server tasks, named, ending once `stop` fired and their requests finished.
    pub tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl OtlpConfig {
    /// Binds both addresses and serves OTLP into `intake` until `stop`, requiring `ingest`
    /// tokens when `auth` has any.
    pub async fn start(
        &self,
        intake: Intake,
        auth: &Auth,
        stop: CancellationToken,
    ) -> Result<Receivers, CollectorError> {
        // One acceptor (one certificate, one reload task) for both receivers.
        let http_tls = self.tls.acceptor(&stop)?;
        let grpc_tls = http_tls.clone();
        let (grpc_listener, grpc_addr) = bind("OTLP/gRPC", self.grpc_addr).await?;
        let (http_listener, http_addr) = bind("OTLP/HTTP", self.http_addr).await?;
        auth.warn_if_open("OTLP/gRPC", grpc_addr);
        auth.warn_if_open("OTLP/HTTP", http_addr);

        let mut server = tonic::transport::Server::builder();
        let grpc = GrpcReceiver::new(intake.clone()).add_to(
            &mut server,
            self.max_request_bytes,
            auth.clone(),
        );
        let grpc_stop = stop.clone();
        let grpc_task = tokio::spawn(async move {
            let incoming =
                Incoming::start(grpc_listener, grpc_tls, grpc_stop.clone()).into_stream();
            if let Err(e) = grpc
                .serve_with_incoming_shutdown(incoming, grpc_stop.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "OTLP/gRPC server failed");
            }
        });
        let router = super::http::router(intake, self.max_request_bytes, auth.clone());
        let http_task = spawn_https("OTLP/HTTP", http_listener, router, http_tls, stop);
        Ok(Receivers {
            grpc_addr,
            http_addr,
            tasks: vec![
                ("OTLP/gRPC receiver", grpc_task),
                ("OTLP/HTTP receiver", http_task),
            ],
        })
    }
}
