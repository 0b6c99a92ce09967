//! A trimmed copy of the sans-IO test harness of `tests/common/mod.rs`: a
//! virtual clock, a fake I/O layer that opens and closes relay sockets as
//! commanded, and a client that signs its requests with long-term
//! credentials. Kept here so the fuzz crate builds on its own.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringturn::auth::keys::md5_key;
use ringturn::auth::{Credentials, NonceKey};
use ringturn::stun::{
    ChannelData, ChannelNumber, Class, EncodeAttribute, ErrorCodeAttr, Message, MessageType,
    MessageWriter, Method, Nonce, Realm, TransactionId, Username, XorPeerAddress,
};
use ringturn::turn::{ClientOutcome, ClientTuple, Command, Server, ServerConfig, Transmit};

pub const REALM: &str = "example.org";
pub const UNIX_START: u64 = 1_800_000_000;

pub fn server_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 3478))
}

pub fn test_config() -> ServerConfig {
    ServerConfig {
        min_port: 50000,
        max_port: 50999,
        relay_ips: vec![[127, 0, 0, 1].into()],
        ..ServerConfig::default()
    }
}

pub struct Harness {
    pub server: Server,
    pub now: Instant,
    pub open_relays: Vec<SocketAddr>,
    pub busy_ports: Vec<u16>,
}

impl Harness {
    pub fn new(config: ServerConfig) -> Self {
        let mut credentials = Credentials::new(REALM);
        credentials.add_user("alice", "secret");
        credentials.add_user("bob", "hunter2");
        let now = Instant::now();
        let server = Server::new(
            config,
            credentials,
            NonceKey::new([42; 32]),
            now,
            UNIX_START,
        );
        Self {
            server,
            now,
            open_relays: Vec::new(),
            busy_ports: Vec::new(),
        }
    }

    /// The fake I/O layer: opens or closes relay sockets as commanded.
    pub fn run_commands(&mut self) {
        while let Some(cmd) = self.server.poll_command() {
            match cmd {
                Command::OpenRelay { relay } | Command::OpenTcpRelay { relay } => {
                    let result = if self.busy_ports.contains(&relay.port())
                        || self.open_relays.contains(&relay)
                    {
                        Err(std::io::ErrorKind::AddrInUse)
                    } else {
                        self.open_relays.push(relay);
                        Ok(())
                    };
                    self.server.handle_relay_opened(self.now, relay, result);
                }
                Command::CloseRelay { relay } => {
                    assert!(
                        self.open_relays.contains(&relay),
                        "closing a relay that is not open: {relay}"
                    );
                    self.open_relays.retain(|r| *r != relay);
                }
                // RFC 6062: fail every outgoing connection (the fuzzer drives
                // only the client side); binds and closes need nothing.
                Command::ConnectPeer { connection, .. } => self.server.handle_peer_connected(
                    self.now,
                    connection,
                    Err(std::io::ErrorKind::ConnectionRefused),
                ),
                Command::BindData { .. } | Command::ClosePeer { .. } => {}
            }
        }
    }

    pub fn input(&mut self, from: ClientTuple, bytes: &[u8]) -> ClientOutcome {
        let out = self.server.handle_client_datagram(self.now, from, bytes);
        self.run_commands();
        out
    }

    pub fn drain(&mut self) -> Vec<Transmit> {
        std::iter::from_fn(|| self.server.poll_transmit()).collect()
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.server.handle_timeout(self.now);
        self.run_commands();
    }
}

pub struct Client {
    pub tuple: ClientTuple,
    pub username: &'static str,
    pub password: &'static str,
    pub nonce: Option<String>,
    pub realm: Option<String>,
    next_tid: u64,
}

impl Client {
    pub fn new(client: &str, username: &'static str, password: &'static str) -> Self {
        Self {
            tuple: ClientTuple::udp(client.parse().unwrap(), server_addr()),
            username,
            password,
            nonce: None,
            realm: None,
            next_tid: 1,
        }
    }

    pub fn fresh_tid(&mut self) -> TransactionId {
        self.next_tid += 1;
        let mut t = [0u8; 12];
        t[4..].copy_from_slice(&self.next_tid.to_be_bytes());
        t[0] = 0xAB;
        TransactionId(t)
    }

    /// Builds a request; signs it when a nonce is known.
    pub fn build(
        &self,
        method: Method,
        tid: TransactionId,
        attrs: &[&dyn EncodeAttribute],
    ) -> Vec<u8> {
        let mut buf = vec![0u8; 1500];
        let mut w =
            MessageWriter::new(&mut buf, MessageType::new(method, Class::Request), tid).unwrap();
        for a in attrs {
            w.add(*a).unwrap();
        }
        if let (Some(nonce), Some(realm)) = (&self.nonce, &self.realm) {
            w.add(&Username(self.username)).unwrap();
            w.add(&Realm(realm)).unwrap();
            w.add(&Nonce(nonce)).unwrap();
            let key = md5_key(self.username, realm, self.password);
            w.add_message_integrity(&key).unwrap();
        }
        let n = w.finish();
        buf.truncate(n);
        buf
    }

    /// A request with the 401/438 dance; returns the final response's bytes.
    pub fn transact(
        &mut self,
        h: &mut Harness,
        method: Method,
        attrs: &[&dyn EncodeAttribute],
    ) -> Vec<u8> {
        for _ in 0..3 {
            let tid = self.fresh_tid();
            let req = self.build(method, tid, attrs);
            assert_eq!(h.input(self.tuple, &req), ClientOutcome::Handled);
            let mut replies = h.drain();
            assert_eq!(replies.len(), 1, "one response per request");
            let t = replies.pop().unwrap();
            assert_eq!(t.to, self.tuple);
            let m = Message::parse(&t.payload).expect("malformed response");
            assert_eq!(m.transaction_id(), tid);
            let code = m.get::<ErrorCodeAttr>().map(|r| r.unwrap().code.0);
            match code {
                Some(401) | Some(438) if self.nonce.is_none() || code == Some(438) => {
                    self.nonce = Some(m.get::<Nonce>().unwrap().unwrap().0.to_owned());
                    self.realm = Some(m.get::<Realm>().unwrap().unwrap().0.to_owned());
                }
                _ => return t.payload,
            }
        }
        panic!("authentication loop did not settle");
    }

    pub fn channel_data(channel: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 4 + payload.len() + 3];
        let n = ChannelData::encode(ChannelNumber(channel), payload, &mut out, false).unwrap();
        out.truncate(n);
        out
    }

    pub fn send_indication(&mut self, peer: SocketAddr, payload: &[u8]) -> Vec<u8> {
        let tid = self.fresh_tid();
        let mut buf = vec![0u8; 1500];
        let mut w = MessageWriter::new(
            &mut buf,
            MessageType::new(Method::SEND, Class::Indication),
            tid,
        )
        .unwrap();
        w.add(&XorPeerAddress(peer)).unwrap();
        w.add(&ringturn::stun::Data(payload)).unwrap();
        let n = w.finish();
        buf.truncate(n);
        buf
    }
}
