//! The PostgreSQL wire endpoint: psql, drivers and Grafana's stock PostgreSQL datasource query
//! the store through it.
//!
//! The protocol is [`pgwire`]'s (via `datafusion-postgres`, which also gives the `pg_catalog`
//! schema, PostgreSQL's SQL rewrites and Arrow → PostgreSQL encoding). This module only
//! translates: statements are planned and run by the [`QueryEngine`], with its limits, exactly
//! as over HTTP.
//!
//! - [`login`]: password (SCRAM-SHA-256) or trust authentication, and the server parameters.
//! - [`session`]: simple and extended query protocols.
//! - [`read_only`]: refusing writes and engine settings with PostgreSQL's error.

mod login;
mod read_only;
mod session;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion_postgres::pgwire::tokio::process_socket;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use meridian_collector::listen::bind;

use super::QueryEngine;
use crate::error::AnalyzerError;

/// The default port: PostgreSQL's 5432 prefixed, so a local PostgreSQL keeps its port.
pub const DEFAULT_PORT: u16 = 15432;

/// The PostgreSQL endpoint (`[analyzer.postgres]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PgConfig {
    /// Serve the endpoint at all.
    pub enabled: bool,
    /// Listen address (`--pg-addr`, `MERIDIAN_PG_ADDR`).
    pub addr: SocketAddr,
    /// Users allowed in, with their passwords (SCRAM-SHA-256). Empty: anyone may connect
    /// without a password (trust), as with the HTTP SQL API.
    pub users: Vec<PgUser>,
    /// PEM certificate chain; with `tls_key`, clients may (and with `sslmode=require`, do)
    /// encrypt. Without, `SSLRequest` is answered "no" and clients fall back to plain text.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8) for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Connections served at once; more are refused.
    pub max_connections: usize,
}

/// One user of the PostgreSQL endpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgUser {
    /// The user name clients log in with.
    pub name: String,
    /// The password, inline.
    #[serde(default)]
    pub password: Option<String>,
    /// An environment variable holding the password (kept out of the file).
    #[serde(default)]
    pub password_env: Option<String>,
}

impl Default for PgConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            addr: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            users: Vec::new(),
            tls_cert: None,
            tls_key: None,
            max_connections: 256,
        }
    }
}

impl PgConfig {
    /// Checks users and TLS files, binds `addr` and accepts connections until `stop`; returns
    /// the bound address and the accepting task.
    pub async fn start(
        &self,
        engine: Arc<QueryEngine>,
        stop: CancellationToken,
    ) -> Result<(SocketAddr, JoinHandle<()>), AnalyzerError> {
        let server = PgServer::bind(self, engine).await?;
        Ok((server.addr, tokio::spawn(server.run(stop))))
    }
}

/// A bound PostgreSQL endpoint, ready to accept.
struct PgServer {
    addr: SocketAddr,
    listener: TcpListener,
    handlers: Arc<session::Handlers>,
    tls: Option<datafusion_postgres::pgwire::tokio::TlsAcceptor>,
    max_connections: usize,
}

impl PgServer {
    /// Binds `config.addr`, checking users and TLS files first.
    async fn bind(config: &PgConfig, engine: Arc<QueryEngine>) -> Result<Self, AnalyzerError> {
        let users = login::Users::from_config(&config.users).map_err(AnalyzerError::Postgres)?;
        if users.is_empty() {
            tracing::warn!(
                addr = %config.addr,
                "the PostgreSQL endpoint lets any user in without a password; \
                 set [[analyzer.postgres.users]] to require one"
            );
        }
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => {
                Some(login::tls(cert, key).map_err(AnalyzerError::Postgres)?)
            }
            (None, None) => None,
            _ => {
                return Err(AnalyzerError::Postgres(
                    "analyzer.postgres.tls_cert and tls_key go together".into(),
                ))
            }
        };
        let (listener, addr) = bind("PostgreSQL endpoint", config.addr).await?;
        Ok(Self {
            addr,
            listener,
            handlers: Arc::new(session::Handlers::new(engine, users)),
            tls,
            max_connections: config.max_connections.max(1),
        })
    }

    /// Accepts connections until `stop` is cancelled.
    async fn run(self, stop: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.max_connections));
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = self.listener.accept() => accepted,
            };
            let (socket, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "PostgreSQL endpoint: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                tracing::warn!(%peer, max = self.max_connections, "PostgreSQL endpoint: too many connections, refusing");
                continue;
            };
            let handlers = Arc::clone(&self.handlers);
            let tls = self.tls.clone();
            tokio::spawn(async move {
                let _slot = slot;
                if let Err(e) = process_socket(socket, tls, handlers).await {
                    tracing::debug!(%peer, error = %e, "PostgreSQL connection ended with an error");
                }
            });
        }
    }
}
