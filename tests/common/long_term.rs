//! The client side of long-term credentials (RFC 8489 §9.2) shared by the
//! socket-level test clients: signing requests once a nonce is known, and
//! the 401/438 dance.
#![allow(dead_code)]

use ringturn::auth::keys::md5_key;
use std::net::SocketAddr;

use ringturn::stun::{
    ChannelNumberAttr, Class, EncodeAttribute, ErrorCodeAttr, Lifetime, Message, MessageType,
    MessageWriter, Method, Nonce, Realm, RequestedTransport, TransactionId, TransportProtocol,
    Username, XorPeerAddress, XorRelayedAddress,
};

#[derive(Debug, Clone)]
pub struct LongTermAuth {
    pub username: String,
    pub password: String,
    pub realm: Option<String>,
    pub nonce: Option<String>,
    tid: u64,
    tid_tag: u8,
}

/// What a response means for a request made with `LongTermAuth`.
pub enum Step {
    /// The answer: success, or an error code that is not a challenge.
    Done(Result<(), u16>),
    /// A challenge (401 first, or 438): send the request again, signed.
    Retry,
}

impl LongTermAuth {
    /// `tid_tag` marks the transaction IDs of one client kind.
    pub fn new(username: &str, password: &str, tid_tag: u8) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
            realm: None,
            nonce: None,
            tid: 0,
            tid_tag,
        }
    }

    /// A transaction ID this client has not used.
    pub fn fresh_tid(&mut self) -> TransactionId {
        self.tid += 1;
        let mut t = [0u8; 12];
        t[4..].copy_from_slice(&self.tid.to_be_bytes());
        t[0] = self.tid_tag;
        TransactionId(t)
    }

    /// A request, signed when a realm and nonce are known.
    pub fn request(
        &mut self,
        method: Method,
        attrs: &[&dyn EncodeAttribute],
    ) -> (TransactionId, Vec<u8>) {
        let tid = self.fresh_tid();
        let mut buf = vec![0u8; 1500];
        let mut w =
            MessageWriter::new(&mut buf, MessageType::new(method, Class::Request), tid).unwrap();
        for a in attrs {
            w.add(*a).unwrap();
        }
        if let (Some(realm), Some(nonce)) = (&self.realm, &self.nonce) {
            w.add(&Username(&self.username)).unwrap();
            w.add(&Realm(realm)).unwrap();
            w.add(&Nonce(nonce)).unwrap();
            w.add_message_integrity(&md5_key(&self.username, realm, &self.password))
                .unwrap();
        }
        let n = w.finish();
        buf.truncate(n);
        (tid, buf)
    }

    /// Reads a response: learns the realm and nonce from a challenge.
    pub fn step(&mut self, resp: &[u8]) -> Step {
        let m = Message::parse(resp).unwrap();
        match m.get::<ErrorCodeAttr>().map(|e| e.unwrap().code.0) {
            None => Step::Done(Ok(())),
            Some(code @ (401 | 438)) if self.nonce.is_none() || code == 438 => {
                self.nonce = Some(m.get::<Nonce>().unwrap().unwrap().0.to_owned());
                self.realm = Some(m.get::<Realm>().unwrap().unwrap().0.to_owned());
                Step::Retry
            }
            Some(code) => Step::Done(Err(code)),
        }
    }
}

/// The TURN requests a test client makes, over whatever transport it has:
/// implement `transact_once` (send, wait for the answer) and `auth`.
pub trait TurnRequests {
    fn transact_once(&mut self, method: Method, attrs: &[&dyn EncodeAttribute]) -> Vec<u8>;
    fn auth(&mut self) -> &mut LongTermAuth;

    /// With the 401/438 dance; Ok(response) or Err(error code).
    fn transact(&mut self, method: Method, attrs: &[&dyn EncodeAttribute]) -> Result<Vec<u8>, u16> {
        for _ in 0..3 {
            let resp = self.transact_once(method, attrs);
            match self.auth().step(&resp) {
                Step::Done(result) => return result.map(|()| resp),
                Step::Retry => {}
            }
        }
        Err(401)
    }

    fn allocate(&mut self) -> Result<SocketAddr, u16> {
        let resp = self.transact(
            Method::ALLOCATE,
            &[&RequestedTransport(TransportProtocol::UDP)],
        )?;
        Ok(Message::parse(&resp)
            .unwrap()
            .get::<XorRelayedAddress>()
            .unwrap()
            .unwrap()
            .0)
    }

    fn create_permission(&mut self, peer: SocketAddr) -> Result<(), u16> {
        self.transact(Method::CREATE_PERMISSION, &[&XorPeerAddress(peer)])
            .map(|_| ())
    }

    fn channel_bind(&mut self, channel: u16, peer: SocketAddr) -> Result<(), u16> {
        self.transact(
            Method::CHANNEL_BIND,
            &[&ChannelNumberAttr(channel), &XorPeerAddress(peer)],
        )
        .map(|_| ())
    }

    fn refresh(&mut self, lifetime: u32) -> Result<(), u16> {
        self.transact(Method::REFRESH, &[&Lifetime(lifetime)])
            .map(|_| ())
    }
}
