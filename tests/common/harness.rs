//! The sans-IO harness for the TURN core: a virtual clock, a fake I/O layer
//! that "opens" relay sockets, and a test client that speaks STUN through
//! the public codec. Used by the scenario, property and bench code, and by
//! the fuzz target `turn_server` (which includes this file by path), so it
//! needs nothing but `ringturn` and std.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringturn::auth::keys::md5_key;
use ringturn::auth::{Credentials, NonceKey};
use ringturn::stun::{
    AttributeType, ChannelNumberAttr, Class, EncodeAttribute, ErrorCode, ErrorCodeAttr, Lifetime,
    Message, MessageType, MessageWriter, Method, Nonce, Realm, RequestedTransport, TransactionId,
    TransportProtocol, Username, XorPeerAddress, XorRelayedAddress,
};
use ringturn::turn::{
    ChannelRoute, ClientOutcome, ClientTuple, Command, Server, ServerConfig, Transmit,
};

pub const REALM: &str = "example.org";
pub const UNIX_START: u64 = 1_800_000_000;

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn server_addr() -> SocketAddr {
    addr("127.0.0.1:3478")
}

pub struct Harness {
    pub server: Server,
    pub now: Instant,
    /// Relay sockets the fake I/O layer holds open.
    pub open_relays: Vec<SocketAddr>,
    /// Ports the fake I/O layer refuses to bind (in use elsewhere).
    pub busy_ports: Vec<u16>,
    /// RFC 6062: connections to peers the core asked for (answer with
    /// `server.handle_peer_connected`), data connections bound, peers closed.
    pub connects: Vec<(u32, SocketAddr, SocketAddr)>,
    pub bound: Vec<(u32, ClientTuple)>,
    pub closed_peers: Vec<u32>,
    /// Issue 11: the kernel fast path's maps as the core commanded them.
    pub offloaded: HashMap<ChannelRoute, Instant>,
    /// Every fast-path command, in order (true: offload).
    pub fast_path_log: Vec<(bool, ChannelRoute)>,
}

pub fn test_config() -> ServerConfig {
    ServerConfig {
        min_port: 50000,
        max_port: 50999,
        relay_ips: vec!["127.0.0.1".parse().unwrap()],
        ..ServerConfig::default()
    }
}

pub fn test_credentials() -> Credentials {
    let mut c = Credentials::new(REALM);
    c.add_user("alice", "secret");
    c.add_user("bob", "hunter2");
    c
}

impl Harness {
    pub fn new(config: ServerConfig) -> Self {
        Self::with_credentials(config, test_credentials())
    }

    pub fn with_credentials(config: ServerConfig, credentials: Credentials) -> Self {
        Self::with_nonce_key(config, credentials, [42; 32])
    }

    /// Another node: its own nonce key, as every ringturn process has.
    pub fn with_nonce_key(config: ServerConfig, credentials: Credentials, key: [u8; 32]) -> Self {
        let now = Instant::now();
        let server = Server::new(config, credentials, NonceKey::new(key), now, UNIX_START);
        Self {
            server,
            now,
            open_relays: Vec::new(),
            busy_ports: Vec::new(),
            connects: Vec::new(),
            bound: Vec::new(),
            closed_peers: Vec::new(),
            offloaded: HashMap::new(),
            fast_path_log: Vec::new(),
        }
    }

    /// Runs the fake I/O layer: opens or closes relay sockets as commanded.
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
                Command::ConnectPeer {
                    connection,
                    relay,
                    peer,
                } => self.connects.push((connection, relay, peer)),
                Command::BindData { connection, data } => self.bound.push((connection, data)),
                Command::ClosePeer { connection } => self.closed_peers.push(connection),
                Command::OffloadChannel { route, until } => {
                    self.offloaded.insert(route, until);
                    self.fast_path_log.push((true, route));
                }
                Command::WithdrawChannel { route } => {
                    assert!(
                        self.offloaded.remove(&route).is_some(),
                        "withdrawing a channel that is not offloaded: {route:?}"
                    );
                    self.fast_path_log.push((false, route));
                }
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

    /// Moves the virtual clock and fires due timers.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.server.handle_timeout(self.now);
        self.run_commands();
    }

    /// Feeds a datagram from a peer into a relay address; returns the framed
    /// bytes the server would send to the client, if any.
    pub fn peer_sends(
        &mut self,
        relay: SocketAddr,
        peer: SocketAddr,
        payload: &[u8],
    ) -> Option<(SocketAddr, Vec<u8>)> {
        let head = ringturn::turn::PEER_HEADROOM;
        let mut buf = vec![0u8; head + payload.len() + ringturn::turn::PEER_TAILROOM];
        buf[head..head + payload.len()].copy_from_slice(payload);
        match self.server.handle_peer_datagram(
            self.now,
            relay,
            peer,
            &mut buf,
            head..head + payload.len(),
        ) {
            ringturn::turn::PeerOutcome::Forward(f) => Some((f.to, buf[f.range].to_vec())),
            ringturn::turn::PeerOutcome::Dropped(_) => None,
        }
    }
}

/// A parsed response, owned.
#[derive(Debug, Clone)]
pub struct Response {
    pub bytes: Vec<u8>,
}

impl Response {
    pub fn msg(&self) -> Message<'_> {
        Message::parse(&self.bytes).expect("server sent a malformed message")
    }

    pub fn class(&self) -> Class {
        self.msg().class()
    }

    pub fn error_code(&self) -> Option<u16> {
        self.msg().get::<ErrorCodeAttr>().map(|r| r.unwrap().code.0)
    }

    pub fn is_success(&self) -> bool {
        self.class() == Class::SuccessResponse
    }
}

pub struct Client {
    pub tuple: ClientTuple,
    pub username: String,
    pub password: String,
    pub nonce: Option<String>,
    pub realm: Option<String>,
    next_tid: u64,
    pub relayed: Option<SocketAddr>,
}

impl Client {
    pub fn new(client: &str, username: &str, password: &str) -> Self {
        Self {
            tuple: ClientTuple::udp(addr(client), server_addr()),
            username: username.into(),
            password: password.into(),
            nonce: None,
            realm: None,
            next_tid: 1,
            relayed: None,
        }
    }

    pub fn key(&self) -> [u8; 16] {
        md5_key(
            &self.username,
            self.realm.as_deref().unwrap_or(REALM),
            &self.password,
        )
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
            w.add(&Username(&self.username)).unwrap();
            w.add(&Realm(realm)).unwrap();
            w.add(&Nonce(nonce)).unwrap();
            w.add_message_integrity(&self.key()).unwrap();
        }
        let n = w.finish();
        buf.truncate(n);
        buf
    }

    /// Sends a request and returns the single response to it.
    pub fn send_raw(&mut self, h: &mut Harness, bytes: &[u8]) -> Option<Response> {
        let out = h.input(self.tuple, bytes);
        assert_eq!(
            out,
            ClientOutcome::Handled,
            "requests are handled, not forwarded"
        );
        let mut replies: Vec<Transmit> = h.drain();
        assert!(
            replies.len() <= 1,
            "one response per request, got {}",
            replies.len()
        );
        let t = replies.pop()?;
        assert_eq!(t.to, self.tuple);
        Some(Response { bytes: t.payload })
    }

    /// A request with the 401/438 dance (RFC 8489 §9.2.3 client side).
    pub fn transact(
        &mut self,
        h: &mut Harness,
        method: Method,
        attrs: &[&dyn EncodeAttribute],
    ) -> Response {
        for _ in 0..3 {
            let tid = self.fresh_tid();
            let req = self.build(method, tid, attrs);
            let resp = self.send_raw(h, &req).expect("no response");
            assert_eq!(resp.msg().transaction_id(), tid);
            match resp.error_code() {
                Some(401) | Some(438) if self.nonce.is_none() || resp.error_code() == Some(438) => {
                    let m = resp.msg();
                    self.nonce = Some(m.get::<Nonce>().unwrap().unwrap().0.to_owned());
                    self.realm = Some(m.get::<Realm>().unwrap().unwrap().0.to_owned());
                }
                _ => return resp,
            }
        }
        panic!("authentication loop did not settle");
    }

    pub fn allocate(&mut self, h: &mut Harness) -> Result<SocketAddr, u16> {
        let resp = self.transact(
            h,
            Method::ALLOCATE,
            &[&RequestedTransport(TransportProtocol::UDP)],
        );
        match resp.error_code() {
            Some(code) => Err(code),
            None => {
                let relayed = resp.msg().get::<XorRelayedAddress>().unwrap().unwrap().0;
                self.relayed = Some(relayed);
                Ok(relayed)
            }
        }
    }

    pub fn create_permission(&mut self, h: &mut Harness, peers: &[SocketAddr]) -> Result<(), u16> {
        let attrs: Vec<XorPeerAddress> = peers.iter().map(|p| XorPeerAddress(*p)).collect();
        let dyns: Vec<&dyn EncodeAttribute> =
            attrs.iter().map(|a| a as &dyn EncodeAttribute).collect();
        let resp = self.transact(h, Method::CREATE_PERMISSION, &dyns);
        resp.error_code().map_or(Ok(()), Err)
    }

    pub fn channel_bind(
        &mut self,
        h: &mut Harness,
        channel: u16,
        peer: SocketAddr,
    ) -> Result<(), u16> {
        let resp = self.transact(
            h,
            Method::CHANNEL_BIND,
            &[&ChannelNumberAttr(channel), &XorPeerAddress(peer)],
        );
        resp.error_code().map_or(Ok(()), Err)
    }

    pub fn refresh(&mut self, h: &mut Harness, lifetime: u32) -> Result<u32, u16> {
        let resp = self.transact(h, Method::REFRESH, &[&Lifetime(lifetime)]);
        match resp.error_code() {
            Some(code) => Err(code),
            None => Ok(resp.msg().get::<Lifetime>().unwrap().unwrap().0),
        }
    }

    pub fn channel_data(channel: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 4 + payload.len() + 3];
        let n = ringturn::stun::ChannelData::encode(
            ringturn::stun::ChannelNumber(channel),
            payload,
            &mut out,
            false,
        )
        .unwrap();
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

pub fn error_of(code: ErrorCode) -> u16 {
    code.0
}

pub fn has_attr(resp: &Response, t: AttributeType) -> bool {
    resp.msg().has(t)
}
