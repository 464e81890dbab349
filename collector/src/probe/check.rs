//! One health check, with Route 53's rules: connect within the connect timeout, a 2xx or 3xx
//! status within the response timeout after connecting, and (with a search string) the string
//! in the first 5,120 bytes of the body, which must arrive within the response timeout after
//! the status. Gzip and deflate bodies are decompressed first.

use std::io::Read;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, HOST, USER_AGENT};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::timeout_at;
use tokio_rustls::rustls::pki_types::ServerName;

use super::config::{ProbeConfig, Target};

/// Bytes of the body a search string must appear in.
pub const SEARCH_BYTES: usize = 5120;
/// Compressed bytes read at most to find [`SEARCH_BYTES`] of decompressed body.
const MAX_COMPRESSED: usize = 64 << 10;

/// What one check found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Whether the check passed.
    pub ok: bool,
    /// The HTTP status, when one arrived.
    pub status_code: Option<u16>,
    /// Time to connect (TCP, and TLS for HTTPS), ms.
    pub connect_ms: Option<f64>,
    /// Time from the start to the response's first byte (the status line), ms.
    pub first_byte_ms: Option<f64>,
    /// Why it failed.
    pub error: Option<String>,
}

impl Outcome {
    fn failed(error: String) -> Self {
        Self {
            error: Some(error),
            ..Self::default()
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs one check of `probe` against `target`.
pub async fn run(probe: &ProbeConfig, target: &Target) -> Outcome {
    let started = Instant::now();
    let connect_by = tokio::time::Instant::now() + probe.connect_timeout();
    let (host, port) = match target {
        Target::Http { host, port, .. } | Target::Tcp { host, port } => (host.as_str(), *port),
    };
    let stream = match timeout_at(connect_by, TcpStream::connect((host, port))).await {
        Err(_) => {
            return Outcome::failed(format!(
                "no connection within {:?}",
                probe.connect_timeout()
            ))
        }
        Ok(Err(e)) => return Outcome::failed(format!("connecting to {host}:{port}: {e}")),
        Ok(Ok(stream)) => stream,
    };
    let Target::Http { tls, path, .. } = target else {
        return Outcome {
            ok: true,
            connect_ms: Some(ms(started.elapsed())),
            ..Outcome::default()
        };
    };
    let host_header = if port == if *tls { 443 } else { 80 } {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    };
    let request = HttpRequest {
        probe,
        host_header,
        path,
        started,
    };
    if !*tls {
        return request.send(stream, ms(started.elapsed())).await;
    }
    let connector = match super::tls::connector() {
        Ok(c) => c,
        Err(e) => return Outcome::failed(format!("TLS is unavailable: {e}")),
    };
    let Ok(name) = ServerName::try_from(host.to_owned()) else {
        return Outcome::failed(format!("`{host}` is not a valid TLS server name"));
    };
    match timeout_at(connect_by, connector.connect(name, stream)).await {
        Err(_) => Outcome::failed(format!(
            "no TLS handshake within {:?}",
            probe.connect_timeout()
        )),
        Ok(Err(e)) => Outcome::failed(format!("TLS handshake: {e}")),
        Ok(Ok(stream)) => request.send(stream, ms(started.elapsed())).await,
    }
}

/// The HTTP half of a check, over a connected stream.
struct HttpRequest<'a> {
    probe: &'a ProbeConfig,
    host_header: String,
    path: &'a str,
    started: Instant,
}

impl HttpRequest<'_> {
    async fn send<S>(self, stream: S, connect_ms: f64) -> Outcome
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let wait = self.probe.response_timeout();
        let fail = |error: String, status_code: Option<u16>, first_byte_ms: Option<f64>| Outcome {
            ok: false,
            status_code,
            connect_ms: Some(connect_ms),
            first_byte_ms,
            error: Some(error),
        };
        let status_by = tokio::time::Instant::now() + wait;
        let handshake =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream));
        let (mut sender, connection) = match timeout_at(status_by, handshake).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return fail(format!("HTTP: {e}"), None, None),
            Err(_) => return fail(format!("no response within {wait:?}"), None, None),
        };
        // The connection is driven beside the request and ends with the check.
        let _driver = AbortOnDrop(tokio::spawn(connection));
        let request = Request::get(self.path)
            .header(HOST, self.host_header.as_str())
            .header(
                USER_AGENT,
                HeaderValue::from_static("Meridian-Health-Check/1.0"),
            )
            .header(ACCEPT_ENCODING, HeaderValue::from_static("gzip, deflate"))
            .body(Empty::new());
        let request = match request {
            Ok(r) => r,
            Err(e) => return fail(format!("building the request: {e}"), None, None),
        };
        let response = match timeout_at(status_by, sender.send_request(request)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return fail(format!("HTTP: {e}"), None, None),
            Err(_) => return fail(format!("no response within {wait:?}"), None, None),
        };
        let first_byte_ms = Some(ms(self.started.elapsed()));
        let status = response.status();
        let code = Some(status.as_u16());
        if !(status.is_success() || status.is_redirection()) {
            return fail(format!("status {}", status.as_u16()), code, first_byte_ms);
        }
        let Some(search) = &self.probe.search_string else {
            return Outcome {
                ok: true,
                status_code: code,
                connect_ms: Some(connect_ms),
                first_byte_ms,
                error: None,
            };
        };
        let encoding = response
            .headers()
            .get(CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        let limit = if encoding.is_some() {
            MAX_COMPRESSED
        } else {
            SEARCH_BYTES
        };
        let body_by = tokio::time::Instant::now() + wait;
        let mut body = response.into_body();
        let mut raw = Vec::new();
        let complete = loop {
            if raw.len() >= limit {
                break true;
            }
            match timeout_at(body_by, body.frame()).await {
                Err(_) => break false,
                Ok(None) => break true,
                Ok(Some(Err(e))) => {
                    return fail(format!("reading the body: {e}"), code, first_byte_ms)
                }
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        raw.extend_from_slice(&data);
                    }
                }
            }
        };
        let text = match decoded_prefix(&raw, encoding.as_deref()) {
            Ok(text) => text,
            Err(e) => return fail(e, code, first_byte_ms),
        };
        let found = text.windows(search.len()).any(|w| w == search.as_bytes());
        if found {
            Outcome {
                ok: true,
                status_code: code,
                connect_ms: Some(connect_ms),
                first_byte_ms,
                error: None,
            }
        } else if !complete && text.len() < SEARCH_BYTES {
            fail(
                format!("the body did not arrive within {wait:?} of the status"),
                code,
                first_byte_ms,
            )
        } else {
            fail(
                format!("`{search}` is not in the first {SEARCH_BYTES} bytes of the body"),
                code,
                first_byte_ms,
            )
        }
    }
}

/// Aborts the connection task when the check ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<Result<(), hyper::Error>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The first [`SEARCH_BYTES`] of the body, decompressed when it is gzip or deflate.
fn decoded_prefix(raw: &[u8], encoding: Option<&str>) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(SEARCH_BYTES);
    let limit = SEARCH_BYTES as u64;
    let read = match encoding {
        None | Some("identity") => {
            out.extend_from_slice(&raw[..raw.len().min(SEARCH_BYTES)]);
            return Ok(out);
        }
        Some("gzip") | Some("x-gzip") => flate2::read::GzDecoder::new(raw)
            .take(limit)
            .read_to_end(&mut out),
        Some("deflate") => flate2::read::ZlibDecoder::new(raw)
            .take(limit)
            .read_to_end(&mut out),
        Some(other) => {
            return Err(format!(
                "the body's content-encoding `{other}` is not gzip or deflate"
            ))
        }
    };
    match read {
        Ok(_) => Ok(out),
        // A body cut at the read limit still gives its first bytes.
        Err(_) if !out.is_empty() => Ok(out),
        Err(e) => Err(format!("decompressing the body: {e}")),
    }
}
