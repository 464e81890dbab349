//! Who may connect, and what the server tells a client about itself once it has.

use std::collections::HashMap;
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion_postgres::pgwire::api::auth::sasl::scram::{gen_salted_password, ScramAuth};
use datafusion_postgres::pgwire::api::auth::sasl::SASLAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::{
    noop::NoopStartupHandler, AuthSource, LoginInfo, Password, ServerParameterProvider,
    StartupHandler,
};
use datafusion_postgres::pgwire::api::{ClientInfo, ConnectionManager};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::startup::ParameterStatus;
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use datafusion_postgres::pgwire::tokio::TlsAcceptor;
use futures::{Sink, SinkExt};

use super::PgUser;
use crate::query::dialect;

/// PBKDF2 rounds for the stored SCRAM keys (RFC 7677's minimum, PostgreSQL's default).
const SCRAM_ITERATIONS: usize = 4096;

/// The configured users, each with a SCRAM-salted password.
#[derive(Debug, Default)]
pub(super) struct Users {
    salted: HashMap<String, (Vec<u8>, Vec<u8>)>,
}

impl Users {
    /// Salts each user's password; fails on a user without one.
    pub(super) fn from_config(users: &[PgUser]) -> Result<Self, String> {
        let mut salted = HashMap::new();
        for user in users {
            let password = match (&user.password, &user.password_env) {
                (Some(p), None) => p.clone(),
                (None, Some(var)) => std::env::var(var).map_err(|_| {
                    format!(
                        "analyzer.postgres user {:?}: environment variable {var} is not set",
                        user.name
                    )
                })?,
                _ => {
                    return Err(format!(
                        "analyzer.postgres user {:?} needs exactly one of password, password_env",
                        user.name
                    ))
                }
            };
            let salt: [u8; 16] = rand::random();
            let key = gen_salted_password(&password, &salt, SCRAM_ITERATIONS);
            salted.insert(user.name.clone(), (salt.to_vec(), key));
        }
        Ok(Self { salted })
    }

    /// No users configured: the endpoint trusts every client.
    pub(super) fn is_empty(&self) -> bool {
        self.salted.is_empty()
    }
}

#[async_trait]
impl AuthSource for Users {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        match self.salted.get(user) {
            Some((salt, key)) => Ok(Password::new(Some(salt.clone()), key.clone())),
            None => Err(PgWireError::InvalidPassword(user.to_string())),
        }
    }
}

/// What a client learns at startup (`ParameterStatus`): a PostgreSQL 16 in UTC with ISO dates.
#[derive(Debug, Default)]
pub(super) struct Parameters;

impl Parameters {
    fn values() -> HashMap<String, String> {
        [
            ("server_version", dialect::SERVER_VERSION),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("IntervalStyle", "postgres"),
            ("TimeZone", "UTC"),
            ("integer_datetimes", "on"),
            ("standard_conforming_strings", "on"),
            ("default_transaction_read_only", "on"),
            ("in_hot_standby", "off"),
            ("is_superuser", "off"),
            ("search_path", "public"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

impl ServerParameterProvider for Parameters {
    fn server_parameters<C>(&self, _client: &C) -> Option<HashMap<String, String>>
    where
        C: ClientInfo,
    {
        Some(Self::values())
    }
}

/// Lets every client in, then states Meridian's parameters (after pgwire's defaults, which
/// the client's later values replace).
pub(super) struct Trust {
    pub(super) connections: Arc<ConnectionManager>,
}

#[async_trait]
impl NoopStartupHandler for Trust {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(Arc::clone(&self.connections))
    }

    async fn post_startup<C>(
        &self,
        client: &mut C,
        _message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        for (name, value) in Parameters::values() {
            client
                .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                    name, value,
                )))
                .await?;
        }
        Ok(())
    }
}

/// A connection's login: trust, or SCRAM-SHA-256 against [`Users`]. One per connection, as
/// the SCRAM exchange keeps state.
pub(super) enum Login {
    /// No users configured.
    Trust(Trust),
    /// Password required.
    Scram(SASLAuthStartupHandler<Parameters>),
}

impl Login {
    /// The login for a new connection.
    pub(super) fn new(users: &Arc<Users>, connections: &Arc<ConnectionManager>) -> Self {
        if users.is_empty() {
            return Login::Trust(Trust {
                connections: Arc::clone(connections),
            });
        }
        let mut scram = ScramAuth::new(Arc::clone(users) as Arc<dyn AuthSource>);
        scram.set_iterations(SCRAM_ITERATIONS);
        Login::Scram(
            SASLAuthStartupHandler::new(Arc::new(Parameters))
                .with_scram(scram)
                .with_connection_manager(Arc::clone(connections)),
        )
    }
}

#[async_trait]
impl StartupHandler for Login {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match self {
            Login::Trust(trust) => trust.on_startup(client, message).await,
            Login::Scram(scram) => scram.on_startup(client, message).await,
        }
    }
}

/// The TLS acceptor for a PEM certificate chain and PKCS#8 key.
pub(super) fn tls(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    use rustls_pemfile::{certs, pkcs8_private_keys};
    use tokio_rustls::rustls::ServerConfig;

    let read = |path: &Path| {
        std::fs::read(path)
            .map_err(|e| format!("analyzer.postgres: reading {}: {e}", path.display()))
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain = certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("analyzer.postgres.tls_cert {}: {e}", cert.display()))?;
    let key = pkcs8_private_keys(&mut key_pem.as_slice())
        .next()
        .ok_or_else(|| {
            format!(
                "analyzer.postgres.tls_key {}: no PKCS#8 private key",
                key.display()
            )
        })?
        .map_err(|e| format!("analyzer.postgres.tls_key {}: {e}", key.display()))?;
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key.into())
        .map_err(|e| format!("analyzer.postgres TLS: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
