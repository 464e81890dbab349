//! [`Auth`]: the accepted tokens, checked in constant time, reloaded without a restart.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::config::{AuthConfig, Scope, SecretError};
use super::credentials::presented;

/// Why a request was turned away.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No `authorization` header, or one without a Bearer or Basic credential.
    #[error("authentication required: send `authorization: Bearer <token>`")]
    Missing,
    /// A credential that matches no configured token.
    #[error("invalid token")]
    Invalid,
    /// A valid token without the scope the call needs.
    #[error("token `{name}` lacks the `{}` scope", needed.as_str())]
    Forbidden {
        /// The token's name.
        name: Arc<str>,
        /// The scope the call needs.
        needed: Scope,
    },
}

impl Denied {
    /// Label value for `meridian_auth_denied_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Denied::Missing => "missing",
            Denied::Invalid => "invalid",
            Denied::Forbidden { .. } => "forbidden",
        }
    }

    /// Whether the caller is unknown (HTTP 401, gRPC UNAUTHENTICATED) rather than known but
    /// not allowed (403, PERMISSION_DENIED).
    pub fn unauthenticated(&self) -> bool {
        !matches!(self, Denied::Forbidden { .. })
    }
}

/// Who made an accepted request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// Authentication is off (no tokens configured).
    Anonymous,
    /// The named token.
    Token(Arc<str>),
}

/// The `[auth]` configuration could not be loaded at start.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A token could not be read.
    #[error("auth token `{name}`: {source}")]
    Secret {
        /// The token's name.
        name: String,
        /// Why.
        source: SecretError,
    },
    /// A token has no scopes, or two tokens share a name or a secret.
    #[error("auth token `{name}`: {problem}")]
    Invalid {
        /// The token's name.
        name: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// Registering the metrics failed.
    #[error("registering auth metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// One accepted token: only its SHA-256 is kept, so the secret is not in memory dumps.
#[derive(Clone)]
struct Known {
    name: Arc<str>,
    digest: [u8; 32],
    scopes: Vec<Scope>,
}

struct Inner {
    config: AuthConfig,
    tokens: RwLock<Arc<[Known]>>,
    denied: IntCounterVec,
    loaded: IntGauge,
}

/// Checks the credentials of requests against the configured tokens. Cheap to clone; one per
/// process, shared by every listener. With no tokens configured, every request is let through.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

fn digest(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

impl Auth {
    /// No tokens: every listener open (tests, benchmarks, the demo).
    pub fn open() -> Self {
        Self::build(AuthConfig::default(), Vec::new(), &Registry::new())
            .unwrap_or_else(|_| unreachable!("an empty token set always builds"))
    }

    /// Reads every token of `config`; an unreadable or invalid token is an error at start.
    /// Metrics `meridian_auth_denied_total{listener,reason}` and `meridian_auth_tokens` go to
    /// `registry`.
    pub fn load(config: &AuthConfig, registry: &Registry) -> Result<Self, AuthError> {
        let mut known = Vec::with_capacity(config.tokens.len());
        for token in &config.tokens {
            let secret = token.secret().read().map_err(|source| AuthError::Secret {
                name: token.name.clone(),
                source,
            })?;
            let invalid = |problem| AuthError::Invalid {
                name: token.name.clone(),
                problem,
            };
            if token.scopes.is_empty() {
                return Err(invalid(
                    "no scopes: give at least one of ingest, read, admin",
                ));
            }
            let digest = digest(secret.as_bytes());
            if known.iter().any(|k: &Known| k.name.as_ref() == token.name) {
                return Err(invalid("two tokens have this name"));
            }
            if known.iter().any(|k| k.digest == digest) {
                return Err(invalid("has the same secret as another token"));
            }
            known.push(Known {
                name: token.name.as_str().into(),
                digest,
                scopes: token.scopes.clone(),
            });
        }
        Self::build(config.clone(), known, registry)
    }

    fn build(
        config: AuthConfig,
        known: Vec<Known>,
        registry: &Registry,
    ) -> Result<Self, AuthError> {
        let denied = IntCounterVec::new(
            Opts::new(
                "meridian_auth_denied_total",
                "Requests turned away by authentication, by listener and reason (missing, invalid, forbidden).",
            ),
            &["listener", "reason"],
        )?;
        let loaded = IntGauge::new("meridian_auth_tokens", "Tokens currently accepted.")?;
        if !config.tokens.is_empty() {
            registry.register(Box::new(denied.clone()))?;
            registry.register(Box::new(loaded.clone()))?;
        }
        loaded.set(known.len() as i64);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                tokens: RwLock::new(known.into()),
                denied,
                loaded,
            }),
        })
    }

    /// Whether tokens are required (any are configured).
    pub fn enabled(&self) -> bool {
        !self.inner.config.tokens.is_empty()
    }

    /// Whether `/metrics` needs a `read` token.
    pub fn protects_metrics(&self) -> bool {
        self.enabled() && self.inner.config.protect_metrics
    }

    /// The configuration this was loaded from.
    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }

    /// Checks the `authorization` header value of a request to `listener` for a call needing
    /// `needed`. Every token is compared, in constant time, whichever matches.
    ///
    /// ```
    /// use meridian_collector::auth::{Auth, AuthConfig, Caller, Denied, Scope, TokenConfig};
    /// std::env::set_var("DOC_GATEWAY_TOKEN", "0123456789abcdef-gateway");
    /// let config = AuthConfig {
    ///     tokens: vec![TokenConfig {
    ///         name: "gateways".into(),
    ///         token_file: None,
    ///         token_env: Some("DOC_GATEWAY_TOKEN".into()),
    ///         scopes: vec![Scope::Ingest],
    ///     }],
    ///     ..AuthConfig::default()
    /// };
    /// let auth = Auth::load(&config, &prometheus::Registry::new()).unwrap();
    /// let bearer = b"Bearer 0123456789abcdef-gateway";
    /// assert_eq!(auth.check("otlp_http", Some(bearer), Scope::Ingest), Ok(Caller::Token("gateways".into())));
    /// assert!(matches!(auth.check("api", Some(bearer), Scope::Read), Err(Denied::Forbidden { .. })));
    /// assert_eq!(auth.check("api", Some(b"Bearer guess-guess-guess"), Scope::Read), Err(Denied::Invalid));
    /// assert_eq!(auth.check("api", None, Scope::Read), Err(Denied::Missing));
    /// ```
    pub fn check(
        &self,
        listener: &'static str,
        authorization: Option<&[u8]>,
        needed: Scope,
    ) -> Result<Caller, Denied> {
        if !self.enabled() {
            return Ok(Caller::Anonymous);
        }
        let outcome = self.verify(authorization, needed);
        if let Err(denied) = &outcome {
            self.inner
                .denied
                .with_label_values(&[listener, denied.reason()])
                .inc();
        }
        outcome
    }

    fn verify(&self, authorization: Option<&[u8]>, needed: Scope) -> Result<Caller, Denied> {
        let secret = authorization.and_then(presented).ok_or(Denied::Missing)?;
        let presented = digest(&secret);
        let tokens = Arc::clone(&self.inner.tokens.read().unwrap_or_else(|e| e.into_inner()));
        let mut found: Option<&Known> = None;
        for known in tokens.iter() {
            if bool::from(known.digest.ct_eq(&presented)) {
                found = Some(known);
            }
        }
        let known = found.ok_or(Denied::Invalid)?;
        if known.scopes.iter().any(|s| s.grants(needed)) {
            Ok(Caller::Token(Arc::clone(&known.name)))
        } else {
            Err(Denied::Forbidden {
                name: Arc::clone(&known.name),
                needed,
            })
        }
    }

    /// Re-reads every token's file or variable. A token that can no longer be read is dropped
    /// (and logged) rather than kept: rotation must never leave an old secret valid. Logs only
    /// when something changed.
    pub fn reload(&self) {
        if !self.enabled() {
            return;
        }
        let mut known = Vec::with_capacity(self.inner.config.tokens.len());
        for token in &self.inner.config.tokens {
            match token.secret().read() {
                Ok(secret) => known.push(Known {
                    name: token.name.as_str().into(),
                    digest: digest(secret.as_bytes()),
                    scopes: token.scopes.clone(),
                }),
                Err(e) => {
                    tracing::error!(token = %token.name, error = %e, "auth token dropped until it can be read again");
                }
            }
        }
        let mut current = self.inner.tokens.write().unwrap_or_else(|e| e.into_inner());
        let same = current.len() == known.len()
            && current
                .iter()
                .zip(&known)
                .all(|(a, b)| a.name == b.name && a.digest == b.digest);
        if !same {
            tracing::info!(tokens = known.len(), "auth tokens reloaded");
            self.inner.loaded.set(known.len() as i64);
            *current = known.into();
        }
    }

    /// Logs a warning when `what` listens beyond loopback with no tokens configured.
    pub fn warn_if_open(&self, what: &str, addr: SocketAddr) {
        if !self.enabled() && !addr.ip().is_loopback() {
            tracing::warn!(
                listener = what,
                %addr,
                "listening beyond loopback without authentication: anyone who can reach it may use it; configure [[auth.tokens]]"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenConfig;

    fn file_token(
        dir: &std::path::Path,
        name: &str,
        secret: &str,
        scopes: Vec<Scope>,
    ) -> TokenConfig {
        let path = dir.join(format!("{name}.token"));
        std::fs::write(&path, secret).unwrap();
        TokenConfig {
            name: name.into(),
            token_file: Some(path),
            token_env: None,
            scopes,
        }
    }

    /// Scenario: a token file is rotated, then removed, then written again.
    /// Guarantees: after each reload only the file's current secret is valid; a file that
    /// cannot be read leaves no secret valid (fail closed), and comes back when readable.
    #[test]
    fn reload_follows_the_file_and_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let config = AuthConfig {
            tokens: vec![file_token(
                dir.path(),
                "a",
                "first-secret-0123456",
                vec![Scope::Read],
            )],
            ..AuthConfig::default()
        };
        let auth = Auth::load(&config, &Registry::new()).unwrap();
        let ok = |secret: &str| {
            auth.check(
                "t",
                Some(format!("Bearer {secret}").as_bytes()),
                Scope::Read,
            )
            .is_ok()
        };
        assert!(ok("first-secret-0123456"));
        std::fs::write(dir.path().join("a.token"), "second-secret-0123456\n").unwrap();
        auth.reload();
        assert!(!ok("first-secret-0123456"));
        assert!(ok("second-secret-0123456"));
        std::fs::remove_file(dir.path().join("a.token")).unwrap();
        auth.reload();
        assert!(!ok("second-secret-0123456"));
        std::fs::write(dir.path().join("a.token"), "third-secret-0123456").unwrap();
        auth.reload();
        assert!(ok("third-secret-0123456"));
    }

    /// Scenario: configurations an operator could get wrong.
    /// Guarantees: each is refused at start with the token's name, never its secret.
    #[test]
    fn bad_token_configurations_are_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let load = |tokens: Vec<TokenConfig>| {
            let config = AuthConfig {
                tokens,
                ..AuthConfig::default()
            };
            Auth::load(&config, &Registry::new())
                .err()
                .map(|e| e.to_string())
        };
        let short = file_token(dir.path(), "short", "abc", vec![Scope::Read]);
        assert!(load(vec![short]).unwrap().contains("shorter than 16"));
        let none = file_token(dir.path(), "none", "no-scopes-0123456789", vec![]);
        assert!(load(vec![none]).unwrap().contains("no scopes"));
        let a = file_token(dir.path(), "a", "same-secret-0123456789", vec![Scope::Read]);
        let b = file_token(
            dir.path(),
            "b",
            "same-secret-0123456789",
            vec![Scope::Admin],
        );
        let e = load(vec![a, b]).unwrap();
        assert!(
            e.contains("same secret") && !e.contains("same-secret-0123456789"),
            "{e}"
        );
        let missing = TokenConfig {
            name: "m".into(),
            token_file: Some(dir.path().join("absent")),
            token_env: None,
            scopes: vec![Scope::Read],
        };
        assert!(load(vec![missing]).unwrap().contains("auth token `m`"));
    }
}
