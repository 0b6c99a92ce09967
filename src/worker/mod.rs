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

use crate::io::clocks::thread_cpu_time;
use crate::io::socket::{bind_relay, BufferSizes};
use crate::io::stream::{DetachedConn, PeerEvent, StreamHandler, StreamSet};
use crate::io::{
    Backend, GroPolicy, Received, RecvOptions, SendQueue, Token, Waker, HEADROOM, TAILROOM,
};
use crate::metrics::WorkerMetrics;
use crate::turn::{
    ClientOutcome, ClientTransport, ClientTuple, Command, Forward, PeerOutcome, Server,
};
use crate::xdp::SharedFastPath;

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

/// A client connection handed to the worker that holds its RFC 6062 peer
/// connection, with the ConnectionBind request that asks for it.
pub struct StreamHandoff {
    pub conn: DetachedConn,
    pub frame: Vec<u8>,
}

/// A handle to send to another worker.
#[derive(Clone)]
pub struct Mailbox {
    pub sender: Sender<CrossPacket>,
    pub streams: Sender<StreamHandoff>,
    pub waker: Waker,
}

/// Counters a worker keeps about its I/O.
#[derive(Debug, Default, Clone)]
pub struct IoCounters {
    pub cross_worker_sent: u64,
    pub cross_worker_dropped: u64,
    pub same_worker_relayed: u64,
    pub relay_open_failures: u64,
    pub streams: crate::io::stream::StreamCounters,
    /// RFC 6062 data connections handed to another worker.
    pub stream_handoffs: u64,
    /// How long loop turns kept the worker busy (from the first datagram
    /// or the end of the wait, to the flush), by `TURN_BUCKETS_NS`; a
    /// stall here is latency for every flow of the worker.
    pub busy_turns: [u64; TURN_BUCKETS_NS.len() + 1],
    /// The longest busy turn so far, and all busy time, nanoseconds.
    pub longest_turn_ns: u64,
    pub busy_ns: u64,
    /// The most CPU time one turn used, nanoseconds: when the longest turn's
    /// wall time is far above this, the worker waited for a CPU, not on work.
    pub longest_turn_cpu_ns: u64,
}

/// Upper bounds of the busy-turn histogram buckets (the last bucket is +Inf).
pub const TURN_BUCKETS_NS: [u64; 6] = [
    250_000, 1_000_000, 5_000_000, 10_000_000, 20_000_000, 50_000_000,
];

impl IoCounters {
    fn record_turn(&mut self, busy: Duration, cpu: Duration) {
        let cpu_ns = u64::try_from(cpu.as_nanos()).unwrap_or(u64::MAX);
        self.longest_turn_cpu_ns = self.longest_turn_cpu_ns.max(cpu_ns);
        let ns = u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX);
        let slot = TURN_BUCKETS_NS
            .iter()
            .position(|b| ns <= *b)
            .unwrap_or(TURN_BUCKETS_NS.len());
        if let Some(n) = self.busy_turns.get_mut(slot) {
            *n += 1;
        }
        self.longest_turn_ns = self.longest_turn_ns.max(ns);
        self.busy_ns = self.busy_ns.saturating_add(ns);
    }
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
    /// TCP and TLS clients (`None` with `no-tcp` and `no-tls`).
    streams: Option<StreamSet>,
    /// Datagrams a stream client sent to a relay of this worker, handled
    /// with the cross-worker ones (they need headroom the stream lacks).
    local_inbox: Vec<CrossPacket>,
    /// Stream connections other workers hand over (RFC 6062 ConnectionBind).
    stream_inbox: Receiver<StreamHandoff>,
    /// Connections of ours to hand over after this poll: (id, worker, request).
    handoffs: Vec<(u64, usize, Vec<u8>)>,
    /// The XDP fast path whose maps this worker writes (`xdp-interface`).
    fast_path: Option<Arc<SharedFastPath>>,
    config_slot: Arc<ConfigSlot>,
    config_seen: u64,
    /// When `poll_fast_path_rates` runs next.
    rate_poll_at: Instant,
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
    pub streams: Option<StreamSet>,
    pub stream_inbox: Receiver<StreamHandoff>,
    pub fast_path: Option<Arc<SharedFastPath>>,
    /// Where a reloaded configuration arrives (SIGHUP).
    pub config_slot: Arc<ConfigSlot>,
}

/// A reloaded configuration waiting for its worker (SIGHUP, issue 12): the
/// control thread offers it, the worker takes it between two loop turns
/// (one atomic load a turn while nothing changes).
#[derive(Debug, Default)]
pub struct ConfigSlot {
    generation: std::sync::atomic::AtomicU64,
    next: std::sync::Mutex<Option<(crate::turn::ServerConfig, crate::auth::Credentials)>>,
}

impl ConfigSlot {
    pub fn offer(&self, config: crate::turn::ServerConfig, credentials: crate::auth::Credentials) {
        if let Ok(mut next) = self.next.lock() {
            *next = Some((config, credentials));
        }
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn take_new(
        &self,
        seen: &mut u64,
    ) -> Option<(crate::turn::ServerConfig, crate::auth::Credentials)> {
        let generation = self.generation.load(Ordering::Acquire);
        if generation == *seen {
            return None;
        }
        *seen = generation;
        self.next.lock().ok()?.take()
    }
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
        if let Some(streams) = &parts.streams {
            backend.watch(streams.poll_fd())?;
        }
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
            streams: parts.streams,
            local_inbox: Vec::new(),
            stream_inbox: parts.stream_inbox,
            handoffs: Vec::new(),
            fast_path: parts.fast_path,
            config_slot: parts.config_slot,
            config_seen: 0,
            rate_poll_at: Instant::now(),
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
            let wait = if self.streams.as_ref().is_some_and(StreamSet::was_active) {
                Duration::ZERO
            } else {
                self.server
                    .poll_timeout()
                    .map_or(MAX_WAIT, |t| t.saturating_duration_since(now).min(MAX_WAIT))
            };
            let mut busy_from: Option<(Instant, Duration)> = None;
            backend.poll(wait, &mut |queue, rx| {
                if busy_from.is_none() {
                    busy_from = Some((Instant::now(), thread_cpu_time()));
                }
                self.on_datagram(queue, rx);
            })?;
            let (busy_from, cpu_from) =
                busy_from.unwrap_or_else(|| (Instant::now(), thread_cpu_time()));
            self.poll_streams(backend.as_mut())?;
            self.drain_inbox(backend.as_mut());
            let now = Instant::now();
            if let Some((config, credentials)) = self.config_slot.take_new(&mut self.config_seen) {
                self.server.reconfigure(config, credentials, now);
            }
            // Issue 12: rates for what the kernel relays, once a second.
            if now >= self.rate_poll_at {
                self.rate_poll_at = now + Duration::from_secs(1);
                if let Some(fast) = &self.fast_path {
                    self.server.poll_fast_path_rates(now, &mut |route| {
                        fast.channel_counters(route).map(|c| {
                            [
                                c.packets_to_peers,
                                c.bytes_to_peers,
                                c.packets_to_clients,
                                c.bytes_to_clients,
                            ]
                        })
                    });
                }
            }
            if self.server.poll_timeout().is_some_and(|t| t <= now) {
                self.server.handle_timeout(now);
            }
            self.process_outputs(backend.as_mut());
            backend.flush()?;
            if let Some(streams) = self.streams.as_mut() {
                streams.flush();
            }
            if let Some(streams) = &self.streams {
                self.counters.streams.clone_from(streams.counters());
            }
            self.counters.record_turn(
                busy_from.elapsed(),
                thread_cpu_time().saturating_sub(cpu_from),
            );
            self.metrics
                .publish(self.server.stats(), &self.counters, &backend.counters());
            self.metrics
                .publish_tables(self.server.timer_count(), self.server.cached_transactions());
        }
        if let Some(streams) = self.streams.as_mut() {
            streams.close_all();
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
                    // In shared relay socket mode this works unchanged: `f.from` is
                    // the sending worker's shared address, and the owner finds the
                    // allocation that claimed it as a peer endpoint, exactly as if the
                    // datagram had come through the kernel. (Two allocations of one
                    // worker share an address, so they cannot reach each other either way.)
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
                                self.send_to_client(queue, &g, buf, buf_id);
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
                self.send_to_client(queue, &f, buf, buf_id);
            }
        }
    }

    /// Sends framed peer data to its client: zero copy from the receive
    /// buffer over UDP, appended to the connection's output over a stream.
    fn send_to_client(&mut self, queue: &mut dyn SendQueue, f: &Forward, buf: &[u8], buf_id: u32) {
        match f.transport {
            ClientTransport::Udp => {
                if let Some(fd) = self.listener_fd(f.from) {
                    queue.send_received(fd, f.to, buf_id, f.range.clone());
                }
            }
            ClientTransport::Stream(id) => {
                if let (Some(streams), Some(frame)) =
                    (self.streams.as_mut(), buf.get(f.range.clone()))
                {
                    streams.send(id, frame);
                }
            }
        }
    }

    /// Sends bytes the worker owns to a client, by its transport.
    fn send_to_client_owned(
        &mut self,
        backend: &mut dyn Backend,
        from: SocketAddr,
        to: ClientTuple,
        data: Vec<u8>,
    ) {
        match to.transport {
            ClientTransport::Udp => {
                if let Some(fd) = self.listener_fd(from) {
                    backend.send_owned(fd, to.client, data);
                }
            }
            ClientTransport::Stream(id) => {
                if let Some(streams) = self.streams.as_mut() {
                    streams.send(id, &data);
                }
            }
        }
    }

    /// Accepts and reads stream clients, hands their frames to the server,
    /// and frees the allocations of connections that closed.
    fn poll_streams(&mut self, backend: &mut dyn Backend) -> std::io::Result<()> {
        let Some(mut streams) = self.streams.take() else {
            return Ok(());
        };
        let now = Instant::now();
        while let Ok(h) = self.stream_inbox.try_recv() {
            match streams.adopt(h.conn) {
                Ok(tuple) => self.on_stream_frame(backend, now, tuple, &h.frame),
                Err(e) => tracing::debug!(error = %e, "cannot take over a connection"),
            }
        }
        // Only when the stream set fired (or the last look left work behind):
        // under datagram load this saves an epoll_wait per loop turn.
        let result = if backend.take_watch_ready() || streams.was_active() {
            streams.poll(
                now,
                &mut StreamSide {
                    worker: self,
                    backend,
                    now,
                },
            )
        } else {
            Ok(())
        };
        for (id, worker, frame) in std::mem::take(&mut self.handoffs) {
            let (Some(conn), Some(mailbox)) = (streams.detach(id), self.mailboxes.get(worker))
            else {
                continue;
            };
            match mailbox.streams.try_send(StreamHandoff { conn, frame }) {
                Ok(()) => {
                    self.counters.stream_handoffs += 1;
                    mailbox.waker.wake();
                    tracing::debug!(
                        to = worker,
                        "ConnectionBind handed to the worker holding its peer connection"
                    );
                }
                // Its queue is full: the connection closes, as a full backlog would.
                Err(TrySendError::Full(h) | TrySendError::Disconnected(h)) => {
                    streams.discard(h.conn)
                }
            }
        }
        let server = &self.server;
        streams.sweep(now, &|tuple| server.allocation_for_client(tuple).is_some());
        for tuple in streams.take_closed() {
            self.server.handle_client_closed(&tuple);
        }
        for event in streams.take_peer_events() {
            match event {
                PeerEvent::Connected { connection, result } => {
                    self.server.handle_peer_connected(now, connection, result)
                }
                PeerEvent::Closed { connection } => self.server.handle_peer_closed(connection),
            }
        }
        self.streams = Some(streams);
        result
    }

    /// RFC 6062 §5.4: a ConnectionBind for a peer connection another worker
    /// holds (its CONNECTION-ID names the worker): that worker's.
    fn bind_elsewhere(&self, frame: &[u8]) -> Option<usize> {
        // A ConnectionBind request: type 0x000B.
        if frame.get(..2) != Some(&[0x00, 0x0B]) {
            return None;
        }
        let msg = crate::stun::Message::parse(frame).ok()?;
        let crate::stun::ConnectionId(connection) = msg.get()?.ok()?;
        let shard = crate::turn::connection_shard(connection, self.server.config().port_stride);
        (shard != self.index && shard < self.mailboxes.len()).then_some(shard)
    }

    /// One STUN message or ChannelData frame from a stream client.
    fn on_stream_frame(
        &mut self,
        backend: &mut dyn Backend,
        now: Instant,
        tuple: ClientTuple,
        frame: &[u8],
    ) {
        if let (ClientTransport::Stream(id), Some(worker)) =
            (tuple.transport, self.bind_elsewhere(frame))
        {
            self.handoffs.push((id, worker, frame.to_vec()));
            return;
        }
        let ClientOutcome::Forward(f) = self.server.handle_client_datagram(now, tuple, frame)
        else {
            return;
        };
        let Some(data) = frame.get(f.range.clone()) else {
            return;
        };
        let shortcut = self.server.config().relay_shortcut;
        match self.directory.owner(f.to).filter(|_| shortcut) {
            Some((owner, relay)) if owner != self.index => {
                self.post(owner, CrossPacket::new(relay, f.from, data, self.index));
            }
            // A relay of ours: framed later, in a buffer with headroom.
            Some((_, relay)) if self.server.has_relay(relay) => {
                self.counters.same_worker_relayed += 1;
                self.local_inbox
                    .push(CrossPacket::new(relay, f.from, data, self.index));
            }
            _ => {
                if let Some((sock, _)) = self.relays.get(&f.from) {
                    // Into the backend's batch like any other send (sendmmsg / GSO
                    // runs at the end of the loop turn), at the price of one copy.
                    backend.send_owned(sock.as_raw_fd(), f.to, data.to_vec());
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
        let local = std::mem::take(&mut self.local_inbox);
        let mut pending = local.into_iter();
        while let Some(mut p) = pending.next().or_else(|| self.inbox.try_recv().ok()) {
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
                let to = ClientTuple {
                    client: f.to,
                    server: f.from,
                    transport: f.transport,
                };
                self.send_to_client_owned(backend, f.from, to, trim(p.data, f.range));
            }
        }
    }

    /// Relay sockets to open or close, responses to send.
    fn process_outputs(&mut self, backend: &mut dyn Backend) {
        loop {
            let mut progressed = false;
            // Answers first: a ConnectionBind's success must be on its way
            // before the connection turns into a raw pipe (RFC 6062 §5.4).
            while let Some(t) = self.server.poll_transmit() {
                progressed = true;
                self.send_to_client_owned(backend, t.from, t.to, t.payload);
            }
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
                        } else if let Some(streams) = self.streams.as_mut() {
                            streams.close_tcp_relay(relay);
                        }
                    }
                    Command::OpenTcpRelay { relay } => {
                        let result = match self.streams.as_mut() {
                            Some(streams) => streams.open_tcp_relay(relay).map_err(|e| e.kind()),
                            None => Err(std::io::ErrorKind::Unsupported),
                        };
                        if result.is_err() {
                            self.counters.relay_open_failures += 1;
                        }
                        self.server
                            .handle_relay_opened(Instant::now(), relay, result);
                    }
                    Command::ConnectPeer {
                        connection,
                        relay,
                        peer,
                    } => {
                        if let Some(streams) = self.streams.as_mut() {
                            streams.connect_peer(Instant::now(), connection, relay, peer);
                        }
                    }
                    Command::BindData { connection, data } => {
                        if let (Some(streams), ClientTransport::Stream(id)) =
                            (self.streams.as_mut(), data.transport)
                        {
                            streams.bind_data(connection, id);
                        }
                    }
                    Command::ClosePeer { connection } => {
                        if let Some(streams) = self.streams.as_mut() {
                            streams.close_peer(connection);
                        }
                    }
                    Command::OffloadChannel { route, until } => {
                        if let Some(fast) = &self.fast_path {
                            fast.offload(&route, until);
                        }
                    }
                    Command::WithdrawChannel { route } => {
                        if let Some(fast) = &self.fast_path {
                            fast.withdraw(&route);
                        }
                    }
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

/// The worker as the stream side sees it during a poll (the stream set
/// itself is taken out of the worker meanwhile).
struct StreamSide<'a> {
    worker: &'a mut Worker,
    backend: &'a mut dyn Backend,
    now: Instant,
}

impl StreamHandler for StreamSide<'_> {
    fn frame(&mut self, tuple: ClientTuple, frame: &[u8]) {
        self.worker
            .on_stream_frame(self.backend, self.now, tuple, frame);
    }

    fn peer_accepted(&mut self, relay: SocketAddr, peer: SocketAddr) -> Option<u32> {
        let connection = self
            .worker
            .server
            .handle_peer_connection(self.now, relay, peer);
        // The ConnectionAttempt indication goes out with this turn's outputs.
        connection
    }
}

/// Keeps only `range` of `data` (shifting it to the front, no allocation).
fn trim(mut data: Vec<u8>, range: std::ops::Range<usize>) -> Vec<u8> {
    data.truncate(range.end);
    data.drain(..range.start.min(range.end));
    data
}
