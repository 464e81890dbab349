//! Network sink: POSTs each batch to the analyzer as a zstd-compressed Arrow IPC stream.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};

use super::{BuildSinkError, Sink, SinkError};
use crate::auth::SecretSource;
use crate::ipc;
use crate::schema::SCHEMA_VERSION;
use crate::signal::SignalBatch;
use crate::tls::{ClientTlsConfig, TlsError};

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
    /// Builds the sink.
    pub fn build(&self) -> Result<NetworkSink, BuildSinkError> {
        let client = match self.tls.client_config().map_err(BuildSinkError::Tls)? {
            Some(_) if !self.url.starts_with("https://") => {
                return Err(BuildSinkError::Tls(TlsError::Config(format!(
                    "[collector.network.tls] is set but the url `{}` is not https://",
                    self.url
                ))))
            }
            Some(tls) => {
                // hyper with rustls rather than reqwest: reqwest's rustls backends would either
                // bring a second crypto library or need a process-wide provider installed.
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_only()
                    .enable_http1()
                    .build();
                Client::Https(Box::new(
                    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                        .build(connector),
                ))
            }
            None if self.url.starts_with("https://") => {
                return Err(BuildSinkError::Tls(TlsError::Config(
                    "an https:// analyzer needs [collector.network.tls] ca_file".into(),
                )))
            }
            None => Client::Http(
                reqwest::Client::builder()
                    .timeout(self.timeout)
                    .build()
                    .map_err(BuildSinkError::HttpClient)?,
            ),
        };
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
        })
    }
}

type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// The HTTP client of the sink: reqwest for `http://`, hyper with rustls for `https://`.
enum Client {
    Http(reqwest::Client),
    Https(Box<HttpsClient>),
}

impl Client {
    /// POSTs `body` with `headers`; the answer's status and text, or why there was none.
    async fn post(
        &self,
        url: &str,
        headers: Vec<(&'static str, String)>,
        body: Bytes,
        timeout: Duration,
    ) -> Result<(u16, String), String> {
        match self {
            Client::Http(client) => {
                let mut request = client.post(url);
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                let response = request.body(body).send().await.map_err(|e| e.to_string())?;
                let status = response.status().as_u16();
                Ok((status, response.text().await.unwrap_or_default()))
            }
            Client::Https(client) => {
                let mut request = hyper::Request::post(url);
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
                let exchange = async {
                    let response = client
                        .request(request)
                        .await
                        .map_err(|e| format!("{e:?}"))?;
                    let status = response.status().as_u16();
                    let text = response
                        .into_body()
                        .collect()
                        .await
                        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                        .unwrap_or_default();
                    Ok((status, text))
                };
                tokio::time::timeout(timeout, exchange)
                    .await
                    .map_err(|_| format!("no answer within {timeout:?}"))?
            }
        }
    }
}

/// Delivers batches to an analyzer's `/api/v1/ingest/{signal}` endpoint.
pub struct NetworkSink {
    client: Client,
    timeout: Duration,
    base: String,
    token: Option<SecretSource>,
}

impl NetworkSink {
    async fn post(&self, batch: SignalBatch) -> Result<(), SinkError> {
        let body = batch
            .ipc()
            .map_err(|e| SinkError::Refused(format!("encoding Arrow IPC: {e}")))?;
        let url = format!("{}/api/v1/ingest/{}", self.base, batch.signal.as_str());
        let mut headers = vec![
            ("content-type", ipc::CONTENT_TYPE.to_owned()),
            (SCHEMA_VERSION_HEADER, SCHEMA_VERSION.to_string()),
        ];
        if let Some(token) = &self.token {
            let secret = token
                .read()
                .map_err(|e| SinkError::Unavailable(format!("reading the analyzer token: {e}")))?;
            headers.push(("authorization", format!("Bearer {secret}")));
        }
        if let Some(id) = &batch.id {
            headers.push((COLLECTOR_HEADER, id.collector.to_string()));
            headers.push((SEQUENCE_HEADER, id.sequence.to_string()));
        }
        let (status, text) = self
            .client
            .post(&url, headers, body, self.timeout)
            .await
            .map_err(|e| SinkError::Unavailable(format!("POST {url}: {e}")))?;
        let status = reqwest::StatusCode::from_u16(status)
            .map_err(|e| SinkError::Unavailable(format!("POST {url}: {e}")))?;
        if status.is_success() {
            return Ok(());
        }
        // A rejected token is a configuration to fix, not data to drop: keep retrying.
        let denied = status.as_u16() == 401 || status.as_u16() == 403;
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
