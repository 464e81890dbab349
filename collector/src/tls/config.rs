//! `[*.tls]` tables: what a listener serves, and what the network sink trusts and presents.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{ClientConfig, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::certs::{read_certs, read_key, read_roots, ReloadingCert};

/// TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file holds no usable certificate or key.
    #[error("{path}: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The settings do not go together.
    #[error("TLS: {0}")]
    Config(String),
}

/// The crypto provider of every TLS configuration Meridian builds (ring), passed explicitly.
pub(super) fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// A listener's TLS: off unless `cert_file` and `key_file` are set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerTlsConfig {
    /// PEM certificate chain, leaf first; re-read when it changes.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// PEM CA certificates: when set, clients must present a certificate they signed (mTLS).
    pub client_ca_file: Option<PathBuf>,
}

/// How often certificate files are checked for a renewal.
const RELOAD_EVERY: Duration = Duration::from_secs(5);

impl ServerTlsConfig {
    /// `https` when a certificate is configured, else `http`: the scheme clients use.
    pub fn scheme(&self) -> &'static str {
        if self.cert_file.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The acceptor (HTTP/2 and HTTP/1.1 offered by ALPN), or `None` when TLS is off; the
    /// certificate is re-read when its files change, until `stop`.
    pub fn acceptor(&self, stop: &CancellationToken) -> Result<Option<TlsAcceptor>, TlsError> {
        let (cert, key) = match (&self.cert_file, &self.key_file) {
            (None, None) if self.client_ca_file.is_some() => {
                return Err(TlsError::Config(
                    "client_ca_file needs cert_file and key_file".into(),
                ))
            }
            (None, None) => return Ok(None),
            (Some(cert), Some(key)) => (cert, key),
            _ => {
                return Err(TlsError::Config(
                    "cert_file and key_file go together".into(),
                ))
            }
        };
        let provider = provider();
        let resolver = Arc::new(ReloadingCert::load(cert, key, Arc::clone(&provider))?);
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &self.client_ca_file {
            Some(ca) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(read_roots(ca)?),
                    provider,
                )
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(Arc::clone(&resolver) as _);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RELOAD_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => resolver.reload(),
                    _ = stop.cancelled() => return,
                }
            }
        });
        Ok(Some(TlsAcceptor::from(Arc::new(config))))
    }
}

/// What a client of an `https://` analyzer (the network sink, the agent) trusts, and the client
/// certificate it presents.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientTlsConfig {
    /// PEM CA certificates that sign the analyzer's certificate (required for `https://`:
    /// Meridian does not read the system's store).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain presented to an analyzer that requires mTLS.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

impl ClientTlsConfig {
    /// The rustls client configuration, or `None` when no CA is configured.
    pub fn client_config(&self) -> Result<Option<ClientConfig>, TlsError> {
        let Some(ca) = &self.ca_file else {
            if self.cert_file.is_some() || self.key_file.is_some() {
                return Err(TlsError::Config(
                    "a client certificate needs ca_file too".into(),
                ));
            }
            return Ok(None);
        };
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(read_roots(ca)?);
        let config = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
                .map_err(|e| TlsError::Invalid {
                    path: key.clone(),
                    problem: format!("does not go with {}: {e}", cert.display()),
                })?,
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(TlsError::Config(
                    "cert_file and key_file go together".into(),
                ))
            }
        };
        Ok(Some(config))
    }
}
