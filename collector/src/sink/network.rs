//! Network sink: POSTs each batch to the analyzer in a wire encoding (its Content-Type says
//! which).

use std::path::PathBuf;
use std::time::Duration;

use axum::http::Request;
use futures::future::BoxFuture;
use futures::FutureExt;
use http_body_util::Full;
use serde::{Deserialize, Serialize};

use super::{BuildSinkError, Sink, SinkError};
use crate::auth::SecretSource;
use crate::schema::SCHEMA_VERSION;
use crate::signal::SignalBatch;
use crate::tls::client::HttpClient;
use crate::tls::ClientTlsConfig;
use crate::wire::Encoding;

/// Header carrying the schema version of a forwarded batch.
pub const SCHEMA_VERSION_HEADER: &str = "x-meridian-schema-version";
/// Header carrying the sending collector's id.
pub const COLLECTOR_HEADER: &str = "x-meridian-collector-id";
/// Header carrying the batch's sequence number within its collector.
pub const SEQUENCE_HEADER: &str = "x-meridian-batch-sequence";

/// Configuration of the network sink.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSinkConfig {
    /// Base URL of the analyzer's HTTP API, e.g. `http://analyzer:4380`.
    pub url: String,
    /// Timeout of one delivery attempt.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// A file holding the token (with the `ingest` scope) sent to an analyzer that requires
    /// one; re-read for every delivery, so it can be rotated in place.
    pub token_file: Option<PathBuf>,
    /// Or an environment variable holding it.
    pub token_env: Option<String>,
    /// What an `https://` analyzer is verified with, and the client certificate it may ask
    /// for (`[collector.network.tls]`).
    pub tls: ClientTlsConfig,
}

impl Default for NetworkSinkConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:4380".into(),
            timeout: Duration::from_secs(10),
            token_file: None,
            token_env: None,
            tls: ClientTlsConfig::default(),
        }
    }
}

impl NetworkSinkConfig {
    /// Builds the sink; batches not yet encoded are sent in `encoding`.
    pub fn build(&self, encoding: Encoding) -> Result<NetworkSink, BuildSinkError> {
        let client = HttpClient::for_base(&self.url, &self.tls, self.timeout)
            .map_err(BuildSinkError::Tls)?;
        let token = SecretSource {
            token_file: self.token_file.clone(),
            token_env: self.token_env.clone(),
        };
        if token.is_set() {
            // Fail at start on a token that cannot be read at all, not at the first delivery.
            token.read().map_err(BuildSinkError::Token)?;
        }
        Ok(NetworkSink {
            client,
            timeout: self.timeout,
            base: self.url.trim_end_matches('/').to_owned(),
            token: token.is_set().then_some(token),
            encoding,
        })
    }
}

/// Delivers batches to an analyzer's `/api/v1/ingest/{signal}` endpoint.
pub struct NetworkSink {
    client: HttpClient,
    timeout: Duration,
    base: String,
    token: Option<SecretSource>,
    encoding: Encoding,
}

impl NetworkSink {
    async fn post(&self, batch: SignalBatch) -> Result<(), SinkError> {
        let encoded = batch
            .encoded(self.encoding)
            .map_err(|e| SinkError::Refused(format!("encoding the batch: {e}")))?;
        let url = format!("{}/api/v1/ingest/{}", self.base, batch.signal.as_str());
        let mut request = Request::post(&url)
            .header("content-type", encoded.encoding.content_type())
            .header(SCHEMA_VERSION_HEADER, SCHEMA_VERSION.to_string());
        if let Some(token) = &self.token {
            let secret = token
                .read()
                .map_err(|e| SinkError::Unavailable(format!("reading the analyzer token: {e}")))?;
            request = request.header("authorization", format!("Bearer {secret}"));
        }
        if let Some(id) = &batch.id {
            request = request
                .header(COLLECTOR_HEADER, id.collector.to_string())
                .header(SEQUENCE_HEADER, id.sequence.to_string());
        }
        let request = request
            .body(Full::new(encoded.bytes))
            .map_err(|e| SinkError::Refused(format!("POST {url}: {e}")))?;
        let (status, text) = self
            .client
            .exchange(request, self.timeout)
            .await
            .map_err(|e| SinkError::Unavailable(format!("POST {url}: {e}")))?;
        let text = String::from_utf8_lossy(&text);
        if status.is_success() {
            return Ok(());
        }
        // A rejected token, or an encoding the analyzer does not read yet (415: it is older
        // than this collector), is a configuration to fix, not data to drop: keep retrying.
        let denied = matches!(status.as_u16(), 401 | 403 | 415);
        if denied || status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            Err(SinkError::Unavailable(format!(
                "{url} answered {status}: {text}"
            )))
        } else {
            Err(SinkError::Refused(format!(
                "{url} answered {status}: {text}"
            )))
        }
    }
}

impl Sink for NetworkSink {
    fn name(&self) -> &'static str {
        "network"
    }

    fn needs_batches(&self) -> bool {
        false
    }

    fn deliver(&self, batch: SignalBatch) -> BoxFuture<'_, Result<(), SinkError>> {
        self.post(batch).boxed()
    }
}
