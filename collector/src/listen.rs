//! Binding a listener and serving an axum router until a stop token fires: the one way every
//! Meridian HTTP server (OTLP/HTTP, the collector's and the analyzer's APIs) is started.

use std::net::SocketAddr;

use axum::Router;

use crate::tls::conn::{ClientAddr, Incoming};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// A listener could not bind its address.
#[derive(Debug, thiserror::Error)]
#[error("binding {what} on {addr}: {source}")]
pub struct BindError {
    /// Which listener.
    pub what: &'static str,
    /// The address.
    pub addr: SocketAddr,
    /// The OS error.
    pub source: std::io::Error,
}

/// Binds `addr` and reads back the bound address (the real port when `addr` has port 0).
pub async fn bind(
    what: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), BindError> {
    let error = |source| BindError { what, addr, source };
    let listener = TcpListener::bind(addr).await.map_err(error)?;
    let bound = listener.local_addr().map_err(error)?;
    Ok((listener, bound))
}

/// Serves `router` on `listener` until `stop`, then finishes the requests under way.
pub fn spawn_http(
    what: &'static str,
    listener: TcpListener,
    router: Router,
    stop: CancellationToken,
) -> JoinHandle<()> {
    spawn_https(what, listener, router, None, stop)
}

/// As [`spawn_http`], over TLS when `tls` is set.
pub fn spawn_https(
    what: &'static str,
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let incoming = Incoming::start(listener, tls, stop.clone());
        // Handlers see the client's address (rate limits per address when there are no tokens).
        let service = router.into_make_service_with_connect_info::<ClientAddr>();
        let serve = axum::serve(incoming, service).with_graceful_shutdown(stop.cancelled_owned());
        if let Err(e) = serve.await {
            tracing::error!(error = %e, server = what, "HTTP server failed");
        }
    })
}

/// Reads and drops a refused request's body (its data stream), chunk by chunk, so the client reads the answer on
/// a connection that stays open (answering before the body was sent breaks HTTP/1.1 clients
/// mid-write); stops after `limit` bytes.
pub async fn discard<E>(
    mut chunks: impl futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    limit: usize,
) {
    use futures::StreamExt;
    let mut read = 0;
    while let Some(Ok(chunk)) = chunks.next().await {
        read += chunk.len();
        if read > limit {
            break;
        }
    }
}
