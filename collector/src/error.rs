//! Errors of the collector's start-up and shutdown.

use std::net::SocketAddr;

/// Why the collector could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// A listener could not bind its address.
    #[error("binding {what} on {addr}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Registering the collector's metrics failed (registered twice in one registry).
    #[error("registering metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The disk buffer could not be opened.
    #[error("opening the disk buffer: {0}")]
    Buffer(#[from] crate::buffer::BufferError),
    /// `buffer.kind = "disk"` without `buffer.dir`.
    #[error("the disk buffer needs a directory (collector.buffer.dir)")]
    BufferDir,
    /// A sink could not be built from its configuration.
    #[error("building the sink: {0}")]
    Sink(#[from] crate::sink::SinkError),
}
