//! One shard of the server: a (pinned) thread with its own listening
//! sockets (SO_REUSEPORT), its own `turn::Server`, the relay sockets of the
//! allocations it made, and its own I/O backend. Nothing on the data path is
//! shared; relay-to-relay traffic for another worker goes through a bounded
//! lock-free queue to that worker.

pub mod directory;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, TrySendError};

pub use directory::RelayDirectory;

use crate::io::socket::{bind_relay, BufferSizes};
use crate::io::{Backend, Received, SendQueue, Token, Waker, HEADROOM, RECV_BUF_LEN};
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
    pub data: Vec<u8>,
    /// The worker whose relay sent it.
    pub from_worker: usize,
    /// The owner had no allocation there (a port redeemed by another shard
    /// through a RESERVATION-TOKEN): the sender sends it through the kernel.
    pub bounced: bool,
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
    relays: HashMap<SocketAddr, (UdpSocket, Token)>,
    relay_tokens: HashMap<Token, SocketAddr>,
    next_token: Token,
    directory: Arc<RelayDirectory>,
    mailboxes: Vec<Mailbox>,
    inbox: Receiver<CrossPacket>,
    buffers: BufferSizes,
    scratch: Vec<u8>,
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
            backend.register(sock.as_raw_fd(), i as Token)?;
            listeners.push((addr, sock));
        }
        let next_token = listeners.len() as Token;
        Ok(Self {
            index: parts.index,
            server: parts.server,
            listeners,
            relays: HashMap::new(),
            relay_tokens: HashMap::new(),
            next_token,
            directory: parts.directory,
            mailboxes: parts.mailboxes,
            inbox: parts.inbox,
            buffers: parts.buffers,
            scratch: vec![0u8; RECV_BUF_LEN],
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
                        Some((owner, relay)) => {
                            let data = buf.get(range).unwrap_or(&[]);
                            self.relay_to_relay(queue, now, owner, relay, f.from, data);
                        }
                        None => {
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

    /// Delivers `data` from our relay `from_relay` to relay `relay` as if it
    /// had arrived on that relay's socket.
    fn relay_to_relay(
        &mut self,
        queue: &mut dyn SendQueue,
        now: Instant,
        owner: usize,
        relay: SocketAddr,
        from_relay: SocketAddr,
        data: &[u8],
    ) {
        if owner == self.index {
            self.counters.same_worker_relayed += 1;
            if !self.deliver_to_relay(queue, now, relay, from_relay, data) {
                self.send_via_kernel(queue, from_relay, relay, data);
            }
            return;
        }
        let packet = CrossPacket {
            to_relay: relay,
            from_peer: from_relay,
            data: data.to_vec(),
            from_worker: self.index,
            bounced: false,
        };
        self.post(owner, packet);
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

    /// Runs a datagram through a relay this worker owns, with the permission
    /// check of a kernel arrival. False if no allocation here has that address.
    fn deliver_to_relay(
        &mut self,
        queue: &mut dyn SendQueue,
        now: Instant,
        relay: SocketAddr,
        peer: SocketAddr,
        data: &[u8],
    ) -> bool {
        // Not one of ours (a port another shard redeemed, or a plain local peer
        // inside the relay range): the caller sends it through the kernel.
        if !self.server.has_relay(relay) {
            return false;
        }
        let end = HEADROOM + data.len();
        let Some(slot) = self.scratch.get_mut(HEADROOM..end) else {
            return true;
        };
        slot.copy_from_slice(data);
        match self
            .server
            .handle_peer_datagram(now, relay, peer, &mut self.scratch, HEADROOM..end)
        {
            PeerOutcome::Forward(f) => {
                if let (Some(fd), Some(bytes)) =
                    (self.listener_fd(f.from), self.scratch.get(f.range))
                {
                    queue.send_owned(fd, f.to, bytes.to_vec());
                }
                true
            }
            PeerOutcome::Dropped(crate::turn::DropReason::NoAllocation) => false,
            PeerOutcome::Dropped(_) => true,
        }
    }

    /// Sends from our relay socket through the kernel, like any other peer.
    fn send_via_kernel(
        &mut self,
        queue: &mut dyn SendQueue,
        from_relay: SocketAddr,
        to: SocketAddr,
        data: &[u8],
    ) {
        if let Some((sock, _)) = self.relays.get(&from_relay) {
            queue.send_owned(sock.as_raw_fd(), to, data.to_vec());
        }
    }

    fn drain_inbox(&mut self, backend: &mut dyn Backend) {
        let now = Instant::now();
        let mut queue: Vec<(RawFd, SocketAddr, Vec<u8>)> = Vec::new();
        while let Ok(p) = self.inbox.try_recv() {
            let mut sink = OwnedSink(&mut queue);
            if p.bounced {
                self.send_via_kernel(&mut sink, p.from_peer, p.to_relay, &p.data);
            } else if !self.deliver_to_relay(&mut sink, now, p.to_relay, p.from_peer, &p.data) {
                let back = p.from_worker;
                self.post(back, CrossPacket { bounced: true, ..p });
            }
        }
        for (fd, to, data) in queue {
            backend.send_owned(fd, to, data);
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
        backend
            .register(sock.as_raw_fd(), token)
            .map_err(|e| e.kind())?;
        self.relays.insert(relay, (sock, token));
        self.relay_tokens.insert(token, relay);
        Ok(())
    }
}

/// Collects owned sends outside a backend poll.
struct OwnedSink<'a>(&'a mut Vec<(RawFd, SocketAddr, Vec<u8>)>);

impl SendQueue for OwnedSink<'_> {
    fn send_received(
        &mut self,
        _fd: RawFd,
        _to: SocketAddr,
        _buf_id: u32,
        _range: std::ops::Range<usize>,
    ) {
    }

    fn send_owned(&mut self, fd: RawFd, to: SocketAddr, data: Vec<u8>) {
        self.0.push((fd, to, data));
    }
}
