//! Who may connect: the connection limits every worker shares (overall and
//! per source address), and accepting on a worker's listeners, with the
//! pause that follows running out of descriptors.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::conn::{Conn, Phase};
use super::{Interest, StreamSet, ACCEPT_BUDGET, ACCEPT_PAUSE, LISTENER};
use crate::turn::{ClientTransport, ClientTuple};

/// Limits for stream connections; `0` in a count means "no limit".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Connections open at once, all workers together.
    pub max_connections: usize,
    /// Connections open at once from one source IP address.
    pub max_per_ip: usize,
    /// From accept until the TLS handshake completes.
    pub handshake_timeout: Duration,
    /// From accept until the first complete STUN message.
    pub first_message_timeout: Duration,
    /// Silence after which a connection without an allocation is closed.
    pub idle_timeout: Duration,
    /// Bytes waiting to be written to one connection.
    pub max_buffered: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            max_connections: 50_000,
            max_per_ip: 1_000,
            handshake_timeout: Duration::from_secs(10),
            first_message_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_buffered: 256 * 1024,
        }
    }
}

/// Connection counts every worker shares; touched on accept and close only.
#[derive(Debug)]
pub struct StreamShared {
    pub(super) limits: StreamLimits,
    open: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

impl StreamShared {
    pub fn new(limits: StreamLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            open: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
        })
    }

    /// Connections open now, all workers together.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn try_admit(&self, ip: IpAddr) -> bool {
        let max = self.limits.max_connections;
        let admitted = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (max == 0 || n < max).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            return false;
        }
        let Ok(mut per_ip) = self.per_ip.lock() else {
            return true;
        };
        let n = per_ip.entry(ip).or_insert(0);
        if self.limits.max_per_ip != 0 && *n >= self.limits.max_per_ip {
            drop(per_ip);
            self.open.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        *n += 1;
        true
    }

    pub(super) fn release(&self, ip: IpAddr) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        if let Ok(mut per_ip) = self.per_ip.lock() {
            if let Some(n) = per_ip.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
    }
}

impl StreamSet {
    pub(super) fn accept(&mut self, index: usize, now: Instant) {
        for _ in 0..ACCEPT_BUDGET {
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            let tls = listener.tls;
            let (socket, peer) = match listener.socket.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of fds or memory: leave the rest in the backlog and
                    // stop listening a moment — a level-triggered listener
                    // would wake the worker every turn meanwhile.
                    tracing::warn!(error = %e, "cannot accept a connection; pausing accepts");
                    self.pause_accepts(now);
                    return;
                }
            };
            if !self.shared.try_admit(peer.ip()) {
                self.counters.refused += 1;
                continue; // dropping the socket closes it
            }
            if let Err(e) = self.admit(socket, peer, tls, now) {
                tracing::debug!(%peer, error = %e, "cannot set up a connection");
                self.shared.release(peer.ip());
            }
        }
    }

    /// Every listener (clients' and RFC 6062 relays') stops reporting new
    /// connections until `resume_accepts`.
    pub(super) fn pause_accepts(&mut self, now: Instant) {
        self.accepts_paused_until = Some(now + ACCEPT_PAUSE);
        self.set_listener_interest(Interest::Silent);
    }

    pub(super) fn resume_accepts(&mut self) {
        self.accepts_paused_until = None;
        self.set_listener_interest(Interest::Read);
    }

    fn set_listener_interest(&mut self, interest: Interest) {
        for (i, l) in self.listeners.iter().enumerate() {
            let _ = self
                .poller
                .modify(l.socket.as_raw_fd(), LISTENER | i as u64, interest);
        }
        for (listener, token) in self.relay_listeners.values() {
            let _ = self.poller.modify(listener.as_raw_fd(), *token, interest);
        }
    }

    fn admit(
        &mut self,
        socket: TcpStream,
        peer: SocketAddr,
        tls: bool,
        now: Instant,
    ) -> io::Result<()> {
        socket.set_nonblocking(true)?;
        socket.set_nodelay(true)?;
        let local = socket.local_addr()?;
        let tls = match (tls, self.tls.as_mut()) {
            (false, _) => None,
            (true, Some(handle)) => Some(Box::new(
                rustls::ServerConnection::new(handle.config()).map_err(io::Error::other)?,
            )),
            (true, None) => return Err(io::Error::other("TLS listener without a certificate")),
        };
        let id = self.next_id;
        self.next_id += 1;
        self.poller.add(socket.as_raw_fd(), id, Interest::Read)?;
        let phase = if tls.is_some() {
            Phase::Handshake
        } else {
            Phase::FirstMessage
        };
        self.conns.insert(
            id,
            Conn {
                socket,
                tuple: ClientTuple {
                    client: peer,
                    server: local,
                    transport: ClientTransport::Stream(id),
                },
                tls,
                partial: Vec::new(),
                out: Vec::new(),
                out_sent: 0,
                phase,
                accepted: now,
                last_rx: now,
                interest: Interest::Read,
                queued_for_flush: false,
                pipe: None,
            },
        );
        self.counters.accepted += 1;
        self.counters.open = self.conns.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_and_total_limits_admit_and_release() {
        let shared = StreamShared::new(StreamLimits {
            max_connections: 3,
            max_per_ip: 2,
            ..StreamLimits::default()
        });
        let a: IpAddr = "127.0.0.2".parse().expect("ip");
        let b: IpAddr = "127.0.0.3".parse().expect("ip");
        assert!(shared.try_admit(a));
        assert!(shared.try_admit(a));
        assert!(!shared.try_admit(a), "per-IP cap");
        assert!(shared.try_admit(b));
        assert!(!shared.try_admit(b), "total cap");
        shared.release(a);
        assert!(shared.try_admit(b));
        assert_eq!(shared.open(), 3);
    }
}
