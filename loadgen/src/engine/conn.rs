//! A client's way to the server (a connected UDP socket or a TCP/TLS
//! stream), and how one client's data messages are composed.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

use ringturn::stun::{
    ChannelNumber, Class, Data, MessageType, MessageWriter, Method, TransactionId, XorPeerAddress,
};

use super::CHANNEL;
use crate::config::{LoadConfig, Mode};
use crate::net::{bind_udp, Epoll};
use crate::payload::{self, Stamp};
use crate::stream::{StreamConn, TlsClient};

/// What one client's data messages look like; writes one into `out`.
pub(super) struct Compose {
    pub(super) mode: Mode,
    pub(super) indications: bool,
    pub(super) size: usize,
    pub(super) target: Option<SocketAddr>,
    pub(super) flow_id: u32,
}

impl Compose {
    /// Writes a Binding request, a Send indication or a ChannelData message
    /// (unpadded: a stream pads it) carrying `stamp`; returns its length.
    pub(super) fn write(&self, stamp: &Stamp, scratch: &mut [u8], out: &mut [u8]) -> Option<usize> {
        let flow_id = self.flow_id;
        match self.mode {
            Mode::Binding => {
                let tid = payload::binding_tid(stamp);
                let w =
                    MessageWriter::new(out, MessageType::new(Method::BINDING, Class::Request), tid)
                        .ok()?;
                Some(w.finish())
            }
            _ if self.indications => {
                let n = payload::write(stamp, self.size, scratch)?;
                let data = scratch.get(..n)?;
                let tid = TransactionId([
                    0x22,
                    (stamp.seq >> 40) as u8,
                    (stamp.seq >> 32) as u8,
                    0,
                    (stamp.seq >> 24) as u8,
                    (stamp.seq >> 16) as u8,
                    (stamp.seq >> 8) as u8,
                    stamp.seq as u8,
                    (flow_id >> 24) as u8,
                    (flow_id >> 16) as u8,
                    (flow_id >> 8) as u8,
                    flow_id as u8,
                ]);
                let mut w =
                    MessageWriter::new(out, MessageType::new(Method::SEND, Class::Indication), tid)
                        .ok()?;
                w.add(&XorPeerAddress(self.target?)).ok()?;
                w.add(&Data(data)).ok()?;
                Some(w.finish())
            }
            _ => {
                let (head, body) = out.split_at_mut_checked(4)?;
                let n = payload::write(stamp, self.size, body)?;
                head.copy_from_slice(&ringturn::stun::channel_data::write_header(
                    ChannelNumber(CHANNEL),
                    u16::try_from(n).ok()?,
                ));
                Some(4 + n)
            }
        }
    }
}

/// A client's way to the server.
pub(super) enum Conn {
    Udp(UdpSocket),
    Stream(Box<StreamConn>),
}

impl Conn {
    pub(super) fn fd(&self) -> RawFd {
        match self {
            Conn::Udp(s) => s.as_raw_fd(),
            Conn::Stream(s) => s.fd(),
        }
    }

    /// Opens client `global`'s socket (UDP, connected) or connection (TCP/TLS,
    /// connecting: it completes in the event loop).
    pub(super) fn open(
        cfg: &LoadConfig,
        tls: Option<&TlsClient>,
        global: usize,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let ip = cfg
            .client_ips
            .get(global % cfg.client_ips.len().max(1))
            .copied()
            .unwrap_or(Ipv4Addr::LOCALHOST);
        if cfg.transport.is_stream() {
            let tls = match cfg.transport {
                crate::config::Transport::Tls => Some(
                    tls.ok_or_else(|| anyhow::anyhow!("--transport tls without TLS settings"))?,
                ),
                _ => None,
            };
            let s = StreamConn::connect(ip, cfg.server, cfg.sockbuf, tls).with_context(|| {
                format!(
                    "cannot open a {} connection from {ip} to {}",
                    cfg.transport.name(),
                    cfg.server
                )
            })?;
            return Ok(Conn::Stream(Box::new(s)));
        }
        let sock = bind_udp(ip, cfg.sockbuf)
            .with_context(|| format!("cannot open a client socket on {ip}"))?;
        sock.connect(cfg.server)
            .with_context(|| format!("cannot connect a client socket to {}", cfg.server))?;
        Ok(Conn::Udp(sock))
    }

    /// Sends one control message (a request); false when it could not go.
    pub(super) fn send_message(&mut self, epoll: &Epoll, token: usize, bytes: &[u8]) -> bool {
        match self {
            Conn::Udp(s) => s.send(bytes).is_ok(),
            Conn::Stream(s) => {
                if s.closed {
                    return false;
                }
                let queued = s.tx.push_bytes(bytes);
                flush_stream(epoll, token, s);
                queued && s.failed.is_none()
            }
        }
    }
}

/// Writes what a stream holds, and asks epoll for writability exactly while
/// bytes still wait. A write error is kept on the stream for the read side.
pub(super) fn flush_stream(epoll: &Epoll, token: usize, s: &mut StreamConn) {
    if s.closed {
        return;
    }
    if let Err(e) = s.flush() {
        if s.failed.is_none() {
            s.failed = Some(format!("write: {e}"));
        }
    }
    let want = s.wants_write() && s.failed.is_none();
    if want != s.write_armed && epoll.modify(s.fd(), token as u64, want).is_ok() {
        s.write_armed = want;
    }
}
