//! Reading PEM files, and the server certificate that follows its files.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::RootCertStore;

use super::TlsError;

fn open(path: &Path) -> Result<BufReader<File>, TlsError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
}

/// The certificates of a PEM file (a chain, or CA certificates).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut open(path)?)
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Invalid {
            path: path.to_owned(),
            problem: "no PEM certificate in it".into(),
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut open(path)?)
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| TlsError::Invalid {
            path: path.to_owned(),
            problem: "no PEM private key in it".into(),
        })
}

/// A root store of the CA certificates in `path`.
pub fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots.add(cert).map_err(|e| TlsError::Invalid {
            path: path.to_owned(),
            problem: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// A certificate and key read from files.
pub fn certified_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    CertifiedKey::from_der(read_certs(cert)?, read_key(key)?, provider).map_err(|e| {
        TlsError::Invalid {
            path: key.to_owned(),
            problem: format!("does not go with {}: {e}", cert.display()),
        }
    })
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The server's certificate, re-read when its files change ([`ReloadingCert::reload`]); a
/// pair that does not load (a half-written renewal) keeps the previous one.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<(Arc<CertifiedKey>, [Option<SystemTime>; 2])>,
}

impl ReloadingCert {
    /// Loads the pair now; an error here stops the start.
    pub fn load(cert: &Path, key: &Path, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let stamp = [modified(cert), modified(key)];
        let loaded = certified_key(cert, key, &provider)?;
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider,
            current: RwLock::new((Arc::new(loaded), stamp)),
        })
    }

    /// Re-reads the files if either changed since the last load.
    pub fn reload(&self) {
        let stamp = [modified(&self.cert), modified(&self.key)];
        if self.current.read().unwrap_or_else(|p| p.into_inner()).1 == stamp {
            return;
        }
        match certified_key(&self.cert, &self.key, &self.provider) {
            Ok(loaded) => {
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                *self.current.write().unwrap_or_else(|p| p.into_inner()) =
                    (Arc::new(loaded), stamp);
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS certificate not reloaded; serving the previous one")
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|p| p.into_inner()).0,
        ))
    }
}
