//! One shard of the server: a (pinned) thread with its own listening
//! sockets (SO_REUSEPORT), its own `turn::Server`, the relay sockets of the
//! allocations it made, and its own I/O backend. Nothing on the data path is
//! shared; relay-to-relay traffic for another worker goes through a bounded
//! lock-free queue to that worker.

pub mod directory;

use std::collections::HashMap;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, TrySendError};

pub use directory::RelayDirectory;

use crate::io::socket::{bind_relay, BufferSizes};
use crate::io::{
    Backend, GroPolicy, Received, RecvOptions, SendQueue, Token, Waker, HEADROOM, TAILROOM,
};
use crate::metrics::WorkerMetrics;
use crate::turn::{ClientOutcome, ClientTuple, Command, PeerOutcome, Server};

/// How long a worker sleeps at most, so it notices shutdown promptly.
const MAX_WAIT: Duration = Duration::from_millis(50);
/// Capacity of each worker's cross-worker queue.
pub const CROSS_QUEUE_LEN: usize = 4096;

/// A datagram one worker's relay sends to a relay address another worker owns.
#[derive(Debug)]
pub struct CrossPacket {
    pub to_relay: SocketAddr,
    pub from_peer: SocketAddr,
    /// The payload at `HEADROOM..HEADROOM + len`, with room around it so the
    /// owner frames it in place.
    pub data: Vec<u8>,
    pub len: usize,
    /// The worker whose relay sent it.
    pub from_worker: usize,
    /// The owner had no allocation there (a port redeemed by another shard
    /// through a RESERVATION-TOKEN): the sender sends it through the kernel.
    pub bounced: bool,
}

impl CrossPacket {
    /// The one copy a hand-off between workers makes.
    pub fn new(
        to_relay: SocketAddr,
        from_peer: SocketAddr,
        payload: &[u8],
        from_worker: usize,
    ) -> Self {
        let mut data = Vec::with_capacity(HEADROOM + payload.len() + TAILROOM);
        data.resize(HEADROOM, 0);
        data.extend_from_slice(payload);
        data.resize(HEADROOM + payload.len() + TAILROOM, 0);
        Self {
            to_relay,
            from_peer,
            data,
            len: payload.len(),
            from_worker,
            bounced: false,
        }
    }
}

/// A handle to send to another worker.
#[derive(Clone)]
pub struct Mailbox {
    pub sender: Sender<CrossPacket>,
    pub waker: Waker,
}

/// Counters a worker keeps about its I/O.
#[derive(Debug, Default, Clone)]
pub struct IoCounters {
    pub cross_worker_sent: u64,
    pub cross_worker_dropped: u64,
    pub same_worker_relayed: u64,
    pub relay_open_failures: u64,
}

pub struct Worker {
    pub index: usize,
    server: Server,
    listeners: Vec<(SocketAddr, UdpSocket)>,
    /// Looked up per relayed datagram: foldhash (keys are our own relay
    /// addresses and tokens, not chosen by a sender), not SipHash.
    relays: FastMap<SocketAddr, (UdpSocket, Token)>,
    relay_tokens: FastMap<Token, SocketAddr>,
    next_token: Token,
    directory: Arc<RelayDirectory>,
    mailboxes: Vec<Mailbox>,
    inbox: Receiver<CrossPacket>,
    buffers: BufferSizes,
    gro: GroPolicy,
    counters: IoCounters,
    metrics: Arc<WorkerMetrics>,
}

pub struct WorkerParts {
    pub index: usize,
    pub server: Server,
    pub listeners: Vec<UdpSocket>,
    pub directory: Arc<RelayDirectory>,
    pub mailboxes: Vec<Mailbox>,
    pub inbox: Receiver<CrossPacket>,
    pub buffers: BufferSizes,
    /// Which sockets receive with UDP GRO.
    pub gro: GroPolicy,
    /// Where the worker publishes its counters once per loop turn.
    pub metrics: Arc<WorkerMetrics>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Builds a `turn::Server` anchored to the real clocks.
pub fn new_server(
    config: crate::turn::ServerConfig,
    credentials: crate::auth::Credentials,
    nonce_key: crate::auth::NonceKey,
) -> Server {
    Server::new(config, credentials, nonce_key, Instant::now(), unix_now())
}

impl Worker {
    pub fn new(parts: WorkerParts, backend: &mut dyn Backend) -> std::io::Result<Self> {
        let mut listeners = Vec::new();
        for (i, sock) in parts.listeners.into_iter().enumerate() {
            let addr = sock.local_addr()?;
            let options = RecvOptions {
                gro: parts.gro.listeners,
            };
            backend.register_with(sock.as_raw_fd(), i as Token, options)?;
            listeners.push((addr, sock));
        }
        let next_token = listeners.len() as Token;
        Ok(Self {
            index: parts.index,
            server: parts.server,
            listeners,
            relays: FastMap::default(),
            relay_tokens: FastMap::default(),
            next_token,
            directory: parts.directory,
            mailboxes: parts.mailboxes,
            inbox: parts.inbox,
            buffers: parts.buffers,
            gro: parts.gro,
            counters: IoCounters::default(),
            metrics: parts.metrics,
        })
    }

    pub fn server(&self) -> &Server {
        &self.server
    }

    pub fn counters(&self) -> &IoCounters {
        &self.counters
    }

    fn listener_fd(&self, addr: SocketAddr) -> Option<RawFd> {
        self.listeners
            .iter()
            .find(|(a, _)| *a == addr)
            .map(|(_, s)| s.as_raw_fd())
    }

    /// Runs until `shutdown` is set; then every socket is released.
    pub fn run(
        mut self,
        mut backend: Box<dyn Backend>,
        shutdown: Arc<AtomicBool>,
    ) -> std::io::Result<()> {
        while !shutdown.load(Ordering::Relaxed) {
            let now = Instant::now();
            let wait = self
                .server
                .poll_timeout()
                .map_or(MAX_WAIT, |t| t.saturating_duration_since(now).min(MAX_WAIT));
            backend.poll(wait, &mut |queue, rx| self.on_datagram(queue, rx))?;
            self.drain_inbox(backend.as_mut());
            let now = Instant::now();
            if self.server.poll_timeout().is_some_and(|t| t <= now) {
                self.server.handle_timeout(now);
            }
            self.process_outputs(backend.as_mut());
            backend.flush()?;
            self.metrics
                .publish(self.server.stats(), &self.counters, &backend.counters());
        }
        for (addr, (sock, token)) in self.relays.drain() {
            let _ = backend.deregister(sock.as_raw_fd(), token);
            let _ = addr;
        }
        Ok(())
    }

    fn on_datagram(&mut self, queue: &mut dyn SendQueue, rx: Received<'_>) {
        let now = Instant::now();
        let Received {
            token,
            from,
            buf,
            payload,
            buf_id,
        } = rx;
        if let Some((local, _)) = self.listeners.get(token as usize) {
            let tuple = ClientTuple::udp(from, *local);
            let Some(bytes) = buf.get(payload.clone()) else {
                return;
            };
            match self.server.handle_client_datagram(now, tuple, bytes) {
                ClientOutcome::Forward(f) => {
                    let range = payload.start + f.range.start..payload.start + f.range.end;
                    let shortcut = self.server.config().relay_shortcut;
                    match self.directory.owner(f.to).filter(|_| shortcut) {
                        // Both ends are relays of this server: skip the kernel.
                        // Another worker's: hand it over through its queue.
                        Some((owner, relay)) if owner != self.index => {
                            let data = buf.get(range).unwrap_or(&[]);
                            self.post(owner, CrossPacket::new(relay, f.from, data, self.index));
                        }
                        // Ours: frame it for the other client right in the
                        // receive buffer (the bytes in front of the data are
                        // spent) and send it from there — no copy.
                        Some((_, relay)) if self.server.has_relay(relay) => {
                            self.counters.same_worker_relayed += 1;
                            if let PeerOutcome::Forward(g) = self
                                .server
                                .handle_peer_datagram(now, relay, f.from, buf, range)
                            {
                                if let Some(fd) = self.listener_fd(g.from) {
                                    queue.send_received(fd, g.to, buf_id, g.range);
                                }
                            }
                        }
                        // A peer outside (or a relay port no allocation holds here,
                        // e.g. one another shard redeemed): through the kernel.
                        _ => {
                            if let Some((sock, _)) = self.relays.get(&f.from) {
                                queue.send_received(sock.as_raw_fd(), f.to, buf_id, range);
                            }
                        }
                    }
                }
                ClientOutcome::Handled | ClientOutcome::Dropped(_) => {}
            }
        } else if let Some(relay) = self.relay_tokens.get(&token).copied() {
            if let PeerOutcome::Forward(f) = self
                .server
                .handle_peer_datagram(now, relay, from, buf, payload)
            {
                if let Some(fd) = self.listener_fd(f.from) {
                    queue.send_received(fd, f.to, buf_id, f.range);
                }
            }
        }
    }

    fn post(&mut self, worker: usize, packet: CrossPacket) {
        let Some(mailbox) = self.mailboxes.get(worker) else {
            return;
        };
        match mailbox.sender.try_send(packet) {
            Ok(()) => {
                self.counters.cross_worker_sent += 1;
                mailbox.waker.wake();
            }
            // A full queue drops, as a full socket buffer would.
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.cross_worker_dropped += 1
            }
        }
    }

    /// Datagrams other workers' relays sent to relays of this one: run through
    /// the owner's permission check as if they had arrived on its socket,
    /// framed in place in the packet's own buffer, and sent on without a copy.
    fn drain_inbox(&mut self, backend: &mut dyn Backend) {
        let now = Instant::now();
        while let Ok(mut p) = self.inbox.try_recv() {
            let payload = HEADROOM..HEADROOM + p.len;
            if p.bounced {
                // Ours is the sending relay: out through the kernel after all.
                if let Some((sock, _)) = self.relays.get(&p.from_peer) {
                    backend.send_owned(sock.as_raw_fd(), p.to_relay, trim(p.data, payload));
                }
            } else if !self.server.has_relay(p.to_relay) {
                // No allocation here holds it (a port another shard redeemed):
                // back to the sender, which sends it through the kernel.
                let back = p.from_worker;
                p.bounced = true;
                self.post(back, p);
            } else if let PeerOutcome::Forward(f) =
                self.server
                    .handle_peer_datagram(now, p.to_relay, p.from_peer, &mut p.data, payload)
            {
                if let Some(fd) = self.listener_fd(f.from) {
                    backend.send_owned(fd, f.to, trim(p.data, f.range));
                }
            }
        }
    }

    /// Relay sockets to open or close, responses to send.
    fn process_outputs(&mut self, backend: &mut dyn Backend) {
        loop {
            let mut progressed = false;
            while let Some(cmd) = self.server.poll_command() {
                progressed = true;
                match cmd {
                    Command::OpenRelay { relay } => {
                        let result = self.open_relay(backend, relay);
                        if result.is_err() {
                            self.counters.relay_open_failures += 1;
                        }
                        self.server
                            .handle_relay_opened(Instant::now(), relay, result);
                    }
                    Command::CloseRelay { relay } => {
                        if let Some((sock, token)) = self.relays.remove(&relay) {
                            let _ = backend.deregister(sock.as_raw_fd(), token);
                            self.relay_tokens.remove(&token);
                            tracing::debug!(%relay, "relay closed");
                        }
                    }
                }
            }
            while let Some(t) = self.server.poll_transmit() {
                progressed = true;
                if let Some(fd) = self.listener_fd(t.from) {
                    backend.send_owned(fd, t.to.client, t.payload);
                }
            }
            if !progressed {
                break;
            }
        }
    }

    fn open_relay(
        &mut self,
        backend: &mut dyn Backend,
        relay: SocketAddr,
    ) -> Result<(), std::io::ErrorKind> {
        let sock = bind_relay(relay, self.buffers).map_err(|e| e.kind())?;
        let token = self.next_token;
        self.next_token += 1;
        let options = RecvOptions {
            gro: self.gro.relays,
        };
        backend
            .register_with(sock.as_raw_fd(), token, options)
            .map_err(|e| e.kind())?;
        self.relays.insert(relay, (sock, token));
        self.relay_tokens.insert(token, relay);
        Ok(())
    }
}

/// Keeps only `range` of `data` (shifting it to the front, no allocation).
fn trim(mut data: Vec<u8>, range: std::ops::Range<usize>) -> Vec<u8> {
    data.truncate(range.end);
    data.drain(..range.start.min(range.end));
    data
}
