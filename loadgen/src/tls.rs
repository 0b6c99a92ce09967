//! TLS for TURN over TLS (RFC 8656 §3.1): the rustls client configuration
//! loadgen's connections share, a verifier that trusts anything (benchmarks
//! only), a self-signed certificate for servers `compare` starts, and a
//! blocking probe that tells whether a server speaks TURN over TCP or TLS.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use ringturn::stun::{Class, Message, MessageType, MessageWriter, Method, TransactionId};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring as provider, CryptoProvider};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::Serialize;

use crate::stream::{Deframer, TlsClient};
use crate::transport::Transport;

/// RFC 7443: the ALPN protocol id of TURN over (D)TLS.
pub const ALPN_STUN_TURN: &[u8] = b"stun.turn";

/// Which TLS versions the client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
pub enum TlsVersion {
    /// TLS 1.3 and 1.2; the server picks.
    #[default]
    #[value(name = "any")]
    #[serde(rename = "any")]
    Any,
    #[value(name = "1.2")]
    #[serde(rename = "1.2")]
    Tls12,
    #[value(name = "1.3")]
    #[serde(rename = "1.3")]
    Tls13,
}

/// How the client checks the server's certificate.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TlsSettings {
    /// PEM file of certificates to trust (a CA, or the server's self-signed certificate).
    pub ca: Option<PathBuf>,
    /// Accept any certificate (benchmarks only).
    pub insecure: bool,
    /// The name the certificate must carry; default: `localhost` for loopback.
    pub server_name: Option<String>,
    pub version: TlsVersion,
}

impl TlsSettings {
    /// The name to send in SNI and to check the certificate against.
    pub fn server_name_for(&self, server: SocketAddr) -> Result<ServerName<'static>> {
        let name = match &self.server_name {
            Some(n) => n.clone(),
            None if server.ip().is_loopback() => "localhost".to_owned(),
            None => server.ip().to_string(),
        };
        ServerName::try_from(name.clone()).with_context(|| {
            format!("--tls-server-name {name:?} is not a DNS name or an IP address")
        })
    }

    /// The client configuration every connection of a run shares.
    pub fn client(&self, server: SocketAddr) -> Result<TlsClient> {
        let provider = Arc::new(provider::default_provider());
        let versions: &[&'static rustls::SupportedProtocolVersion] = match self.version {
            TlsVersion::Any => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::Tls12 => &[&rustls::version::TLS12],
            TlsVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .context("TLS versions")?;
        let mut config = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
                .with_no_client_auth()
        } else {
            let Some(ca) = &self.ca else {
                bail!(
                    "--transport tls needs --tls-ca FILE (the CA or the server's self-signed \
                     certificate, PEM) or --tls-insecure"
                );
            };
            let mut roots = rustls::RootCertStore::empty();
            let certs = load_certs(ca)?;
            let (added, _ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                bail!("{}: no usable certificate to trust", ca.display());
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        config.alpn_protocols = vec![ALPN_STUN_TURN.to_vec()];
        Ok(TlsClient {
            config: Arc::new(config),
            server_name: self.server_name_for(server)?,
        })
    }
}

/// Every certificate in a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        bail!("{}: no certificate in it", path.display());
    }
    Ok(certs)
}

/// Trusts any certificate, but still checks that the server holds the key of
/// the one it showed (handshake signatures), so the TLS work is the real work.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A self-signed certificate and its key, written as PEM files.
#[derive(Debug, Clone, Serialize)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Writes a fresh self-signed ECDSA P-256 certificate for `localhost` and
/// 127.0.0.1 (an end-entity certificate: usable as its own trust anchor by
/// rustls, and as `cert=`/`pkey=` by coturn and ringturn) into `dir`.
pub fn self_signed(dir: &Path) -> Result<CertFiles> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".into()])
        .context("cannot generate a self-signed certificate")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let cert = dir.join("turn-cert.pem");
    let key = dir.join("turn-key.pem");
    std::fs::write(&cert, ck.cert.pem())
        .with_context(|| format!("cannot write {}", cert.display()))?;
    write_private(&key, &ck.signing_key.serialize_pem())?;
    Ok(CertFiles { cert, key })
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Connects over `transport` (TCP or TLS) and asks for a STUN Binding;
/// Ok when the answer comes within `limit`. Tells a server that does not
/// serve that transport from one that is slow, with the reason.
pub fn probe(
    server: SocketAddr,
    transport: Transport,
    tls: Option<&TlsClient>,
    limit: Duration,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10))
    };
    let mut sock = TcpStream::connect_timeout(&server, left())
        .with_context(|| format!("TCP connect to {server}"))?;
    sock.set_nodelay(true)?;
    let tid = TransactionId(*b"loadgenprobe");
    let mut req = [0u8; 64];
    let n = MessageWriter::new(
        &mut req,
        MessageType::new(Method::BINDING, Class::Request),
        tid,
    )
    .map(MessageWriter::finish)
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let request = req.get(..n).unwrap_or_default();
    let mut rx = Deframer::with_capacity(4096);
    let check = |rx: &mut Deframer| -> Result<bool> {
        while let Some(frame) = rx
            .next_frame()
            .map_err(|e| anyhow::anyhow!("the answer is not STUN: {e}"))?
        {
            if Message::parse(frame).is_ok_and(|m| m.transaction_id() == tid) {
                return Ok(true);
            }
        }
        Ok(false)
    };
    match (transport, tls) {
        (Transport::Tls, Some(t)) => {
            let conn = rustls::ClientConnection::new(t.config.clone(), t.server_name.clone())
                .context("TLS client")?;
            let mut s = rustls::StreamOwned::new(conn, sock);
            s.sock.set_write_timeout(Some(left()))?;
            s.write_all(request).context("TLS handshake or write")?;
            s.flush()?;
            while Instant::now() < deadline {
                s.sock.set_read_timeout(Some(left()))?;
                let room = rx.spare(2048);
                let got = match s.read(room) {
                    Ok(n) => n,
                    Err(e) if is_timeout(&e) => break,
                    Err(e) => return Err(e).context("TLS read"),
                };
                if got == 0 {
                    bail!("the server closed the TLS connection without answering");
                }
                rx.commit(got);
                if check(&mut rx)? {
                    return Ok(());
                }
            }
        }
        (Transport::Tcp, _) => {
            sock.set_write_timeout(Some(left()))?;
            sock.write_all(request).context("TCP write")?;
            while Instant::now() < deadline {
                sock.set_read_timeout(Some(left()))?;
                let room = rx.spare(2048);
                let got = match sock.read(room) {
                    Ok(n) => n,
                    Err(e) if is_timeout(&e) => break,
                    Err(e) => return Err(e).context("TCP read"),
                };
                if got == 0 {
                    bail!("the server closed the TCP connection without answering");
                }
                rx.commit(got);
                if check(&mut rx)? {
                    return Ok(());
                }
            }
        }
        (Transport::Tls, None) => bail!("no TLS settings"),
        (Transport::Udp, _) => return Ok(()),
    }
    bail!("no answer to a Binding request within {limit:?}")
}
