//! The agent's errors, named for what failed.

use std::path::PathBuf;

/// Why the agent could not do something.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration is not usable.
    #[error("agent configuration: {0}")]
    Config(String),
    /// The analyzer did not answer, or answered with an error.
    #[error("analyzer at {url}: {message}")]
    Analyzer {
        /// The URL asked.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// Writing the gateway's configuration file failed.
    #[error("writing {path}: {source}")]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The gateway refused or did not take the new configuration.
    #[error("{gateway} did not apply the update: {message}")]
    Gateway {
        /// `envoy`, `traefik`.
        gateway: &'static str,
        /// What it said, or what was seen.
        message: String,
    },
    /// The desired state was refused by the agent's own safety rules.
    #[error("refused: {0}")]
    Unsafe(String),
    /// The scaling hook could not be run or failed.
    #[error("scaling hook: {0}")]
    Hook(String),
    /// The agent's own HTTP listener could not start.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Registering a metric failed.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}
