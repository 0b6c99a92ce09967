//! A blocking TURN client over a real UDP socket, for in-process server tests.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use super::long_term::{LongTermAuth, TurnRequests};
use ringturn::stun::{ChannelData, ChannelNumber, EncodeAttribute, Message, Method, TransactionId};

pub struct UdpTurnClient {
    pub sock: UdpSocket,
    pub server: SocketAddr,
    pub auth: LongTermAuth,
}

impl UdpTurnClient {
    pub fn new(bind: &str, server: SocketAddr, username: &str, password: &str) -> Self {
        let sock = UdpSocket::bind(bind).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        Self {
            sock,
            server,
            auth: LongTermAuth::new(username, password, 0x77),
        }
    }

    fn request(
        &mut self,
        method: Method,
        attrs: &[&dyn EncodeAttribute],
    ) -> (TransactionId, Vec<u8>) {
        self.auth.request(method, attrs)
    }

    /// Sends a request (retransmitting on timeout) and returns the response bytes.
    pub fn transact_once(&mut self, method: Method, attrs: &[&dyn EncodeAttribute]) -> Vec<u8> {
        let (tid, req) = self.request(method, attrs);
        let mut buf = [0u8; 2048];
        for _ in 0..6 {
            self.sock.send_to(&req, self.server).unwrap();
            while let Some((n, _)) = self.recv(&mut buf) {
                if let Ok(m) = Message::parse(&buf[..n]) {
                    if m.transaction_id() == tid {
                        return buf[..n].to_vec();
                    }
                }
            }
        }
        panic!("no response to {method:?}");
    }

    /// recv_from that retries when a signal interrupts it (EINTR); None on timeout.
    pub fn recv(&self, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
        loop {
            match self.sock.recv_from(buf) {
                Ok(x) => return Some(x),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            }
        }
    }

    pub fn send_channel_data(&self, channel: u16, payload: &[u8]) {
        let mut out = vec![0u8; payload.len() + 8];
        let n = ChannelData::encode(ChannelNumber(channel), payload, &mut out, false).unwrap();
        self.sock.send_to(&out[..n], self.server).unwrap();
    }

    /// Receives the next ChannelData payload on `channel`.
    pub fn recv_channel_data(&self, channel: u16) -> Option<Vec<u8>> {
        let mut buf = [0u8; 2048];
        for _ in 0..10 {
            let (n, _) = self.recv(&mut buf)?;
            if let Ok(cd) = ChannelData::parse(&buf[..n]) {
                if cd.channel.0 == channel {
                    return Some(cd.data.to_vec());
                }
            }
        }
        None
    }
}

impl TurnRequests for UdpTurnClient {
    fn transact_once(&mut self, method: Method, attrs: &[&dyn EncodeAttribute]) -> Vec<u8> {
        UdpTurnClient::transact_once(self, method, attrs)
    }

    fn auth(&mut self) -> &mut LongTermAuth {
        &mut self.auth
    }
}
