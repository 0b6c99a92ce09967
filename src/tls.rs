//! TLS for TURN over TLS (RFC 8656 §3.1, coturn's `tls-listening-port`):
//! rustls with the `ring` provider, TLS 1.2 and 1.3, the ALPN labels of
//! RFC 7443, and a certificate that can be replaced while the server runs
//! (SIGHUP) without touching live connections.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use thiserror::Error;

/// RFC 7443 §4: "stun.turn" for TURN, "stun.nat-discovery" for STUN.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"stun.turn", b"stun.nat-discovery"];

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read the certificate file {path}: {message}")]
    Certificate { path: PathBuf, message: String },
    #[error("the certificate file {path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("cannot read the private key file {path}: {message}")]
    PrivateKey { path: PathBuf, message: String },
    #[error("certificate {cert} and key {pkey} cannot be used: {source}")]
    Config {
        cert: PathBuf,
        pkey: PathBuf,
        source: rustls::Error,
    },
}

/// Where the certificate and key come from, and which versions to offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM: the certificate chain, leaf first (coturn's `cert`).
    pub cert: PathBuf,
    /// PEM: the private key (coturn's `pkey`); may be the same file.
    pub pkey: PathBuf,
    /// Offer TLS 1.2 as well as 1.3 (`no-tlsv1_2` turns it off).
    pub tls12: bool,
    /// coturn's `cipher-list` (OpenSSL names): the TLS 1.2 suites to offer,
    /// of those rustls has; `None`: all of them. As in OpenSSL, the list
    /// does not touch TLS 1.3's suites.
    pub tls12_ciphers: Option<Vec<String>>,
}

/// The TLS 1.2 suites rustls offers, by their OpenSSL names (what
/// `cipher-list` is written in).
pub const TLS12_SUITES: &[(&str, rustls::CipherSuite)] = &[
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |message: String| TlsError::Certificate {
        path: path.to_path_buf(),
        message,
    };
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| err(e.to_string()))?;
    let certs = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Reads the files and builds a rustls configuration.
pub fn load(settings: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = read_certificates(&settings.cert)?;
    let key = PrivateKeyDer::from_pem_file(&settings.pkey).map_err(|e| TlsError::PrivateKey {
        path: settings.pkey.clone(),
        message: e.to_string(),
    })?;
    let config_err = |source| TlsError::Config {
        cert: settings.cert.clone(),
        pkey: settings.pkey.clone(),
        source,
    };
    let versions: &[&'static rustls::SupportedProtocolVersion] = if settings.tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    // An explicit provider: another crate in the process may enable a second
    // one, and then rustls cannot pick a default.
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = &settings.tls12_ciphers {
        provider.cipher_suites.retain(|suite| match suite {
            rustls::SupportedCipherSuite::Tls13(_) => true,
            rustls::SupportedCipherSuite::Tls12(_) => TLS12_SUITES
                .iter()
                .any(|(name, id)| *id == suite.suite() && names.iter().any(|n| n == name)),
        });
    }
    let provider = Arc::new(provider);
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(config_err)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(config_err)?;
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The current TLS configuration, shared by every worker. A reload swaps it;
/// each worker notices the new generation at its next accept, so live
/// connections keep the configuration they were made with.
#[derive(Debug)]
pub struct TlsReloader {
    settings: TlsSettings,
    generation: AtomicU64,
    current: Mutex<Arc<ServerConfig>>,
}

impl TlsReloader {
    pub fn new(settings: TlsSettings) -> Result<Arc<Self>, TlsError> {
        let config = load(&settings)?;
        Ok(Arc::new(Self {
            settings,
            generation: AtomicU64::new(0),
            current: Mutex::new(config),
        }))
    }

    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// Reads the files again; on error the old configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = load(&self.settings)?;
        if let Ok(mut current) = self.current.lock() {
            *current = config;
        }
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn snapshot(&self) -> (u64, Option<Arc<ServerConfig>>) {
        let generation = self.generation();
        let config = self.current.lock().ok().map(|c| c.clone());
        (generation, config)
    }
}

/// A worker's view of the reloader: a cached configuration, refreshed only
/// when the generation moved (one atomic load per accepted connection).
#[derive(Debug, Clone)]
pub struct TlsHandle {
    reloader: Arc<TlsReloader>,
    generation: u64,
    config: Arc<ServerConfig>,
}

impl TlsHandle {
    pub fn new(reloader: Arc<TlsReloader>) -> Option<Self> {
        let (generation, config) = reloader.snapshot();
        Some(Self {
            reloader,
            generation,
            config: config?,
        })
    }

    pub fn config(&mut self) -> Arc<ServerConfig> {
        if self.reloader.generation() != self.generation {
            if let (generation, Some(config)) = self.reloader.snapshot() {
                self.generation = generation;
                self.config = config;
            }
        }
        self.config.clone()
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> TlsSettings {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("generate a certificate");
        let cert_path = dir.join(format!("{name}.crt"));
        let key_path = dir.join(format!("{name}.key"));
        std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");
        TlsSettings {
            cert: cert_path,
            pkey: key_path,
            tls12: true,
            tls12_ciphers: None,
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ringturn-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    /// coturn's `cipher-list`: only the named TLS 1.2 suites are offered;
    /// TLS 1.3's stay (OpenSSL's cipher list does not touch them either).
    #[test]
    fn cipher_list_limits_the_tls12_suites() {
        let dir = temp_dir("ciphers");
        let suites = |names: Option<Vec<String>>| {
            let config = load(&TlsSettings {
                tls12_ciphers: names,
                ..write_pair(&dir, "c")
            })
            .expect("load");
            let all = &config.crypto_provider().cipher_suites;
            let tls12: Vec<rustls::CipherSuite> = all
                .iter()
                .filter(|s| matches!(s, rustls::SupportedCipherSuite::Tls12(_)))
                .map(|s| s.suite())
                .collect();
            (all.len() - tls12.len(), tls12)
        };
        let (tls13, tls12) = suites(None);
        assert_eq!(tls12.len(), TLS12_SUITES.len());
        let (kept13, only) = suites(Some(vec!["ECDHE-RSA-CHACHA20-POLY1305".into()]));
        assert_eq!(kept13, tls13, "TLS 1.3 suites untouched");
        assert_eq!(
            only,
            vec![rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256]
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn rfc7443_offers_stun_turn_and_nat_discovery_alpn() {
        let dir = temp_dir("alpn");
        let config = load(&write_pair(&dir, "a")).expect("load");
        assert_eq!(
            config.alpn_protocols,
            vec![b"stun.turn".to_vec(), b"stun.nat-discovery".to_vec()]
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn names_the_file_it_cannot_read() {
        let settings = TlsSettings {
            cert: PathBuf::from("/nonexistent/ringturn.crt"),
            pkey: PathBuf::from("/nonexistent/ringturn.key"),
            tls12: true,
            tls12_ciphers: None,
        };
        let err = load(&settings).expect_err("no such file");
        assert!(
            err.to_string().contains("/nonexistent/ringturn.crt"),
            "{err}"
        );
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate_is_refused() {
        let dir = temp_dir("mismatch");
        let a = write_pair(&dir, "a");
        let b = write_pair(&dir, "b");
        let mixed = TlsSettings {
            cert: a.cert,
            pkey: b.pkey,
            tls12: true,
            tls12_ciphers: None,
        };
        let err = load(&mixed).expect_err("mismatched key");
        assert!(matches!(err, TlsError::Config { .. }), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn reload_moves_workers_to_the_new_certificate_and_keeps_the_old_on_error() {
        let dir = temp_dir("reload");
        let settings = write_pair(&dir, "live");
        let reloader = TlsReloader::new(settings.clone()).expect("load");
        let mut handle = TlsHandle::new(reloader.clone()).expect("handle");
        let first = handle.config();
        assert!(
            Arc::ptr_eq(&first, &handle.config()),
            "no reload, same config"
        );
        // A new certificate in the same files.
        write_pair(&dir, "live");
        reloader.reload().expect("reload");
        let second = handle.config();
        assert!(!Arc::ptr_eq(&first, &second), "the worker sees the reload");
        // Broken files: the reload fails and the running config stays.
        std::fs::write(&settings.cert, "not a certificate").expect("break");
        assert!(reloader.reload().is_err());
        assert!(Arc::ptr_eq(&second, &handle.config()));
        let _ = std::fs::remove_dir_all(dir);
    }
}
