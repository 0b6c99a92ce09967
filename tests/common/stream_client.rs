//! A blocking TURN client over TCP or TLS (RFC 8656 §3.1), for server tests:
//! STUN messages and ChannelData frames over one stream, ChannelData padded
//! to 4 bytes (§12.5).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use super::long_term::{LongTermAuth, TurnRequests};
use ringturn::stun::channel_data::stream_frame_len;
use ringturn::stun::{
    ChannelData, ChannelNumber, ChannelRange, Class, Data, EncodeAttribute, Message, MessageType,
    MessageWriter, Method, TransactionId, XorPeerAddress,
};

pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

pub struct StreamTurnClient {
    pub stream: Box<dyn Stream>,
    pub auth: LongTermAuth,
    buf: Vec<u8>,
}

/// A TLS client that trusts exactly `ca_pem` and offers ALPN "stun.turn".
pub fn tls_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"stun.turn".to_vec()];
    Arc::new(config)
}

pub fn connect_tcp(server: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&server, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

pub fn connect_tls(
    server: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, connect_tcp(server));
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls
}

impl StreamTurnClient {
    pub fn new(stream: Box<dyn Stream>, username: &str, password: &str) -> Self {
        Self {
            stream,
            auth: LongTermAuth::new(username, password, 0x55),
            buf: Vec::new(),
        }
    }

    fn request(
        &mut self,
        method: Method,
        attrs: &[&dyn EncodeAttribute],
    ) -> (TransactionId, Vec<u8>) {
        self.auth.request(method, attrs)
    }

    /// The next whole frame from the stream; `None` on EOF, timeout or error.
    pub fn read_frame(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(len) = stream_frame_len(&self.buf, ChannelRange::Rfc5766) {
                let len = len.ok()?;
                if self.buf.len() >= len {
                    return Some(self.buf.drain(..len).collect());
                }
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }

    pub fn transact_once(&mut self, method: Method, attrs: &[&dyn EncodeAttribute]) -> Vec<u8> {
        let (tid, req) = self.request(method, attrs);
        self.stream.write_all(&req).unwrap();
        self.stream.flush().unwrap();
        while let Some(frame) = self.read_frame() {
            if let Ok(m) = Message::parse(&frame) {
                if m.transaction_id() == tid {
                    return frame;
                }
            }
        }
        panic!("no response to {method:?} over the stream");
    }

    pub fn send_channel_data(&mut self, channel: u16, payload: &[u8]) {
        let mut out = vec![0u8; payload.len() + 8];
        let n = ChannelData::encode(ChannelNumber(channel), payload, &mut out, true).unwrap();
        self.stream.write_all(&out[..n]).unwrap();
        self.stream.flush().unwrap();
    }

    pub fn send_indication(&mut self, peer: SocketAddr, payload: &[u8]) {
        let tid = self.auth.fresh_tid();
        let mut buf = vec![0u8; payload.len() + 100];
        let mut w = MessageWriter::new(
            &mut buf,
            MessageType::new(Method::SEND, Class::Indication),
            tid,
        )
        .unwrap();
        w.add(&XorPeerAddress(peer)).unwrap();
        w.add(&Data(payload)).unwrap();
        let n = w.finish();
        self.stream.write_all(&buf[..n]).unwrap();
        self.stream.flush().unwrap();
    }

    /// The next ChannelData frame: (channel, payload); padding checked.
    pub fn recv_channel_data(&mut self) -> Option<(u16, Vec<u8>)> {
        for _ in 0..10 {
            let frame = self.read_frame()?;
            if let Ok(cd) = ChannelData::parse(&frame) {
                assert_eq!(frame.len() % 4, 0, "RFC 8656 §12.5: padded over streams");
                return Some((cd.channel.0, cd.data.to_vec()));
            }
        }
        None
    }

    /// The next Data indication: (peer, payload).
    pub fn recv_data_indication(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        for _ in 0..10 {
            let frame = self.read_frame()?;
            if let Ok(m) = Message::parse(&frame) {
                if m.method() == Method::DATA {
                    let peer = m.get::<XorPeerAddress>()?.ok()?.0;
                    let data = m.get::<Data>()?.ok()?.0.to_vec();
                    return Some((peer, data));
                }
            }
        }
        None
    }
}

impl TurnRequests for StreamTurnClient {
    fn transact_once(&mut self, method: Method, attrs: &[&dyn EncodeAttribute]) -> Vec<u8> {
        StreamTurnClient::transact_once(self, method, attrs)
    }

    fn auth(&mut self) -> &mut LongTermAuth {
        &mut self.auth
    }
}
