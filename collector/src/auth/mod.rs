//! Authentication: bearer tokens with scopes (`[[auth.tokens]]`), shared by every Meridian
//! listener except PostgreSQL (which has its own users). [`Auth`] checks credentials;
//! [`http::require`] guards axum routes; the OTLP receivers check in their own protocol's
//! terms; [`watch`] reloads tokens on SIGHUP or when their files change; [`SecretSource`] is how
//! clients (the collector's network sink, the agent) read the token they send.

mod config;
pub mod credentials;
pub mod http;
mod tokens;
mod watch;

pub use config::{AuthConfig, Scope, SecretError, SecretSource, TokenConfig};
pub use tokens::{Auth, AuthError, Caller, Denied};
pub use watch::watch;
