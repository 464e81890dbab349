//! The one HTTP client of Meridian's calls to its analyzer — the collector's deliveries and
//! the agent's routing, stream and reports — over `http://`, or `https://` verified with a
//! [`ClientTlsConfig`] (and a client certificate for mTLS). hyper with rustls rather than
//! reqwest: reqwest's rustls backends would either bring a second crypto library or need a
//! process-wide provider installed, which breaks every other reqwest client in the process.

use std::time::Duration;

use axum::http::{Request, Response, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use super::config::provider;
use super::{ClientTlsConfig, TlsError};

/// An HTTP/1.1 client of one base URL's scheme. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// Why a request got no answer (every one is worth retrying).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Nothing, or not the whole answer, within the time allowed.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Connecting, the TLS handshake, sending or reading failed.
    #[error("{0}")]
    Failed(String),
}

impl HttpClient {
    /// A client for URLs like `base`: `tls` must have a `ca_file` for `https://` and must be
    /// empty for `http://` (certificates configured for a plain-text URL are a mistake worth
    /// failing on at start); connecting is bounded by `connect_timeout`.
    ///
    /// ```
    /// use meridian_collector::tls::{client::HttpClient, ClientTlsConfig};
    /// use std::time::Duration;
    /// let none = ClientTlsConfig::default();
    /// assert!(HttpClient::for_base("http://analyzer:4380", &none, Duration::from_secs(5)).is_ok());
    /// let refused = HttpClient::for_base("https://analyzer:4380", &none, Duration::from_secs(5));
    /// assert!(refused.err().is_some_and(|e| e.to_string().contains("ca_file")));
    /// ```
    pub fn for_base(
        base: &str,
        tls: &ClientTlsConfig,
        connect_timeout: Duration,
    ) -> Result<Self, TlsError> {
        let https = base.starts_with("https://");
        let config = match (tls.client_config()?, https) {
            (Some(config), true) => config,
            (Some(_), false) => {
                return Err(TlsError::Config(format!(
                    "TLS is configured but the url `{base}` is not https://"
                )))
            }
            (None, true) => {
                return Err(TlsError::Config(format!(
                    "the https:// url `{base}` needs a tls.ca_file to verify it with"
                )))
            }
            // Never used for a connection (http only); the connector needs one.
            (None, false) => ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError::Config(e.to_string()))?
                .with_root_certificates(RootCertStore::empty())
                .with_no_client_auth(),
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config);
        let connector = if https {
            builder.https_only().enable_http1().wrap_connector(http)
        } else {
            builder.https_or_http().enable_http1().wrap_connector(http)
        };
        Ok(Self {
            inner: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// Sends `request`; the answer's head within `timeout`, its body left to stream.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, RequestError> {
        tokio::time::timeout(timeout, self.inner.request(request))
            .await
            .map_err(|_| RequestError::Timeout(timeout))?
            .map_err(|e| RequestError::Failed(describe(&e)))
    }

    /// Sends `request` and reads its whole answer, all within `timeout`.
    pub async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), RequestError> {
        let exchange = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|e| RequestError::Failed(describe(&e)))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| RequestError::Failed(format!("reading the answer: {e}")))?;
            Ok((status, body.to_bytes()))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| RequestError::Timeout(timeout))?
    }
}

/// The error and its causes on one line (hyper's own message is only "client error (Connect)").
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
