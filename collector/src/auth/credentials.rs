//! Reading the secret a request presents in its `authorization` header: `Bearer <token>`, or
//! `Basic` with the token as the password (any user name) — what OTel SDKs send through
//! `OTEL_EXPORTER_OTLP_HEADERS` and the OpenTelemetry Collector's auth extensions.

use base64::Engine;

/// The secret in an `authorization` header value, or `None` when the header has no scheme
/// Meridian accepts. The scheme is case-insensitive.
///
/// ```
/// use meridian_collector::auth::credentials::presented;
/// assert_eq!(presented(b"Bearer s3cret").as_deref(), Some(&b"s3cret"[..]));
/// // "gateway:s3cret" in base64: the user name is ignored.
/// assert_eq!(presented(b"basic Z2F0ZXdheTpzM2NyZXQ=").as_deref(), Some(&b"s3cret"[..]));
/// assert_eq!(presented(b"Digest abc"), None);
/// ```
pub fn presented(value: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (scheme, rest) = text.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        (!rest.is_empty()).then(|| rest.as_bytes().to_vec())
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let colon = decoded.iter().position(|&b| b == b':')?;
        let password = decoded[colon + 1..].to_vec();
        (!password.is_empty()).then_some(password)
    } else {
        None
    }
}
