//! TLS for Meridian's listeners and its network client, with rustls: the OTLP receivers and
//! the analyzer's API take `[*.tls]` ([`ServerTlsConfig`]); certificates are re-read when
//! their files change, without a restart ([`certs::ReloadingCert`]); [`conn`] accepts
//! connections (plain or TLS) for both axum and tonic; the collector's network sink and the
//! agent reach the analyzer through [`client::HttpClient`], verifying it with
//! [`ClientTlsConfig`] and presenting a client certificate when it asks (mTLS).

pub mod certs;
pub mod client;
mod config;
pub mod conn;

pub use config::{ClientTlsConfig, ServerTlsConfig, TlsError};
