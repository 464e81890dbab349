//! TLS for Meridian's listeners and its network client, with rustls: the OTLP receivers and
//! the analyzer's API take `[*.tls]` ([`ServerTlsConfig`]); certificates are re-read when
//! their files change, without a restart ([`certs::ReloadingCert`]); [`conn`] accepts
//! connections (plain or TLS) for both axum and tonic; the collector's network sink verifies
//! the analyzer with [`ClientTlsConfig`] and may present a client certificate (mTLS).

pub mod certs;
mod config;
pub mod conn;

pub use config::{ClientTlsConfig, ServerTlsConfig, TlsError};
