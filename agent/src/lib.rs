//! Meridian's gateway agent: follows the analyzer's desired routing (`GET /api/v1/routing`
//! and its event stream), applies the weights to a gateway beside it (Envoy through
//! file-based EDS, Traefik through its file provider), runs a hook for scaling
//! recommendations, and reports back what it applied (`POST /api/v1/agents/{id}/status`).
//!
//! The loop is level-triggered: every reconcile applies the whole desired state, so a missed
//! event or a restart converges to the same weights. The agent never drains anything because it
//! lost contact: without an answer from the analyzer the gateway keeps the last applied state.
#![warn(missing_docs)]

pub mod agent;
pub mod client;
pub mod config;
pub mod desired;
pub mod error;
pub mod gateway;
pub mod metrics;
pub mod scale;

pub use agent::Agent;
pub use config::AgentConfig;
pub use error::AgentError;
