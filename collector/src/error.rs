//! Errors of the collector's start-up and shutdown.

/// Why the collector could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// A listener could not bind its address.
    #[error(transparent)]
    Bind(#[from] crate::listen::BindError),
    /// A listener's TLS certificate or settings are not usable.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// Registering the collector's metrics failed (registered twice in one registry).
    #[error("registering metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The disk buffer could not be opened.
    #[error("opening the disk buffer: {0}")]
    Buffer(#[from] crate::buffer::BufferError),
    /// A sink could not be built from its configuration.
    #[error("building the sink: {0}")]
    Sink(#[from] crate::sink::BuildSinkError),
    /// A health probe's configuration is invalid.
    #[error("invalid health probe: {0}")]
    Probe(#[from] crate::probe::ProbeConfigError),
}
