//! Signed webhook POSTs with retries, shared by recommendation and alert delivery: the body's
//! HMAC-SHA256 in `X-Meridian-Signature: sha256=<hex>`, retried with backoff (0.5 s doubling
//! to 30 s) until accepted or out of attempts.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

/// The signature header of webhook deliveries.
pub const SIGNATURE_HEADER: &str = "x-meridian-signature";

/// `sha256=<hex>` of `body` under `secret`.
///
/// ```
/// use meridian_analyzer::webhook::signature;
/// assert_eq!(
///     signature("key", b"The quick brown fox jumps over the lazy dog"),
///     "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
/// );
/// ```
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// One POST to deliver.
pub struct Delivery<'a> {
    /// Where.
    pub url: &'a str,
    /// The JSON body.
    pub body: &'a [u8],
    /// HMAC key; empty sends no signature.
    pub secret: &'a str,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// Attempts before giving up (at least 1).
    pub max_attempts: u32,
}

/// POSTs `d` until a 2xx answer or the attempts run out; `None` when `stop` ends the wait,
/// else whether it was accepted.
pub async fn post(
    client: &reqwest::Client,
    d: Delivery<'_>,
    stop: &CancellationToken,
) -> Option<bool> {
    let mut backoff = Duration::from_millis(500);
    let attempts = d.max_attempts.max(1);
    for attempt in 1..=attempts {
        let mut request = client
            .post(d.url)
            .header("content-type", "application/json");
        for (name, value) in &d.headers {
            request = request.header(*name, value);
        }
        if !d.secret.is_empty() {
            request = request.header(SIGNATURE_HEADER, signature(d.secret, d.body));
        }
        match request.body(d.body.to_vec()).send().await {
            Ok(r) if r.status().is_success() => return Some(true),
            Ok(r) => {
                tracing::warn!(url = %d.url, status = %r.status(), attempt, "webhook refused a delivery")
            }
            Err(e) => tracing::warn!(url = %d.url, error = %e, attempt, "webhook unreachable"),
        }
        if attempt == attempts {
            break;
        }
        tokio::select! {
            _ = stop.cancelled() => return None,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
    Some(false)
}
