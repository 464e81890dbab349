//! The `[auth]` table: who may call Meridian's listeners, with which token and for what.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a token lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Send telemetry: the OTLP receivers, the collector → analyzer ingest API, agents'
    /// status reports.
    Ingest,
    /// Read: SQL, the `GET` endpoints, the recommendation stream (and `/metrics` when
    /// protected).
    Read,
    /// Change state: routing overrides. Also grants `read`.
    Admin,
}

impl Scope {
    /// The name used in the configuration and in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    /// Whether holding `self` is enough for a call that needs `needed`.
    ///
    /// ```
    /// use meridian_collector::auth::Scope;
    /// assert!(Scope::Admin.grants(Scope::Read));
    /// assert!(!Scope::Read.grants(Scope::Admin));
    /// assert!(!Scope::Admin.grants(Scope::Ingest));
    /// ```
    pub fn grants(self, needed: Scope) -> bool {
        self == needed || (self == Scope::Admin && needed == Scope::Read)
    }
}

/// Where a secret is read from: a file (re-read when it changes) or an environment variable.
/// Configurations carry the two keys themselves (`token_file`, `token_env`) and hand them here.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SecretSource {
    /// A file holding the secret; surrounding whitespace is ignored.
    pub token_file: Option<PathBuf>,
    /// An environment variable holding the secret.
    pub token_env: Option<String>,
}

/// A secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Both or neither of `token_file` and `token_env` are set.
    #[error("set exactly one of token_file and token_env")]
    Ambiguous,
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The variable is not set or not UTF-8.
    #[error("environment variable {0} is not set")]
    Env(String),
    /// The secret is empty or shorter than 16 characters.
    #[error("the token from {0} is shorter than 16 characters")]
    TooShort(String),
    /// The secret contains characters an HTTP header cannot carry.
    #[error("the token from {0} contains whitespace or control characters")]
    Invalid(String),
}

/// Shortest token accepted: a guessable token is no protection.
const MIN_TOKEN_LEN: usize = 16;

impl SecretSource {
    /// Whether a source is configured at all (clients send no token otherwise).
    pub fn is_set(&self) -> bool {
        self.token_file.is_some() || self.token_env.is_some()
    }

    /// Reads the secret now.
    pub fn read(&self) -> Result<String, SecretError> {
        let (text, from) = match (&self.token_file, &self.token_env) {
            (Some(path), None) => {
                let text = std::fs::read_to_string(path).map_err(|source| SecretError::File {
                    path: path.clone(),
                    source,
                })?;
                (text, path.display().to_string())
            }
            (None, Some(var)) => {
                let text = std::env::var(var).map_err(|_| SecretError::Env(var.clone()))?;
                (text, format!("${var}"))
            }
            _ => return Err(SecretError::Ambiguous),
        };
        let token = text.trim();
        if token.len() < MIN_TOKEN_LEN {
            return Err(SecretError::TooShort(from));
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(SecretError::Invalid(from));
        }
        Ok(token.to_owned())
    }
}

/// One accepted token (`[[auth.tokens]]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it, for logs and metrics (never the token itself).
    pub name: String,
    /// A file holding the token (re-read when it changes).
    pub token_file: Option<PathBuf>,
    /// Or an environment variable holding it.
    pub token_env: Option<String>,
    /// What it may do.
    pub scopes: Vec<Scope>,
}

impl TokenConfig {
    /// Where this token is read from.
    pub fn secret(&self) -> SecretSource {
        SecretSource {
            token_file: self.token_file.clone(),
            token_env: self.token_env.clone(),
        }
    }
}

/// Authentication of every listener but PostgreSQL (`[auth]`). With no tokens, every
/// listener is open, as before authentication existed, and a listener that is not on loopback
/// logs a warning at start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The accepted tokens.
    pub tokens: Vec<TokenConfig>,
    /// Whether `/metrics` needs a `read` token too (Prometheus then sends
    /// `authorization: Bearer`); `/healthz` and `/readyz` are always open.
    pub protect_metrics: bool,
    /// How often token files are checked for changes (they are also re-read on SIGHUP).
    #[serde(with = "humantime_serde")]
    pub reload_interval: std::time::Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            tokens: Vec::new(),
            protect_metrics: false,
            reload_interval: std::time::Duration::from_secs(5),
        }
    }
}
