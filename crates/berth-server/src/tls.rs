//! HTTPS for `berth serve` (the API server only calls webhooks over TLS): rustls with the ring
//! provider, a certificate and key read from PEM files and re-read when they change (cert-manager
//! renews them in place), an edit that does not load keeping the last good pair.
//!
//! Connections themselves (TLS handshake, HTTP/1.1, their limits) are `crate::connections`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;

/// Where the serving certificate and key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM: the certificate first, then its chain.
    pub cert: PathBuf,
    /// PEM: PKCS#8, PKCS#1 or SEC1 private key.
    pub key: PathBuf,
}

/// Why a certificate pair did not load.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// The files' contents when last read, so a poll notices any change.
type Contents = (Vec<u8>, Vec<u8>);

/// Answers every handshake with the current certificate; [`CertificateReloader::reload`]
/// swaps it.
#[derive(Debug)]
pub struct CertificateReloader {
    settings: TlsSettings,
    current: RwLock<Current>,
}

#[derive(Debug)]
struct Current {
    key: Arc<CertifiedKey>,
    /// The files as last read, loaded or not: a broken pair is reported once, not every poll.
    seen: Contents,
}

impl CertificateReloader {
    /// Loads the pair once; an error here stops the server from starting.
    pub fn new(settings: TlsSettings) -> Result<CertificateReloader, TlsError> {
        let contents = read_pair(&settings)?;
        let key = certified_key(&settings, &contents)?;
        Ok(CertificateReloader {
            settings,
            current: RwLock::new(Current {
                key: Arc::new(key),
                seen: contents,
            }),
        })
    }

    /// Re-reads the files; a changed pair that loads replaces the served one. Returns whether
    /// it was replaced; an error (reported once per change of the files) leaves the last good
    /// pair in place.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let contents = read_pair(&self.settings)?;
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.seen == contents {
            return Ok(false);
        }
        let loaded = certified_key(&self.settings, &contents);
        current.seen = contents;
        current.key = Arc::new(loaded?);
        Ok(true)
    }

    /// A rustls server config that asks this reloader for its certificate.
    pub fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|_| unreachable!("ring supports the default protocol versions"))
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl ResolvesServerCert for CertificateReloader {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        Some(Arc::clone(&current.key))
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_pair(settings: &TlsSettings) -> Result<Contents, TlsError> {
    Ok((read_file(&settings.cert)?, read_file(&settings.key)?))
}

fn certified_key(settings: &TlsSettings, contents: &Contents) -> Result<CertifiedKey, TlsError> {
    let invalid = |path: &Path, message: String| TlsError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&contents.0)
        .collect::<Result<_, _>>()
        .map_err(|error| invalid(&settings.cert, format!("not PEM certificates: {error}")))?;
    if certs.is_empty() {
        return Err(invalid(&settings.cert, "holds no certificate".to_string()));
    }
    let key = PrivateKeyDer::from_pem_slice(&contents.1)
        .map_err(|error| invalid(&settings.key, format!("no PEM private key: {error}")))?;
    let signing_key = ring::sign::any_supported_type(&key)
        .map_err(|error| invalid(&settings.key, format!("unusable private key: {error}")))?;
    let certified = CertifiedKey::new(certs, signing_key);
    certified.keys_match().map_err(|error| {
        invalid(
            &settings.key,
            format!("does not match the certificate: {error}"),
        )
    })?;
    Ok(certified)
}

/// Re-reads the pair every `interval` until `stop` says so, logging swaps and failures.
pub async fn watch_certificates(
    reloader: Arc<CertificateReloader>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = crate::until_stopped(&mut stop) => return,
            () = tokio::time::sleep(interval) => {}
        }
        match reloader.reload() {
            Ok(true) => tracing::info!(
                cert = %reloader.settings.cert.display(),
                "serving certificate reloaded"
            ),
            Ok(false) => {}
            Err(error) => tracing::warn!(
                error = %error,
                "serving certificate not reloaded; the last good one is kept"
            ),
        }
    }
}
