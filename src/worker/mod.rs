//! One shard of the server: a (pinned) thread with its own listening
//! sockets (SO_REUSEPORT), its own `turn::Server`, the relay sockets of the
//! allocations it made, and its own I/O backend. Nothing on the data path is
//! shared; relay-to-relay traffic for another worker goes through a bounded
//! lock-free queue to that worker.
//!
//! Here: the worker, its parts and mailboxes, and its loop (`Worker::run`).
//! `datagrams`: the UDP path and relay-to-relay hand-offs; `streams`: TCP
//! and TLS clients; `outputs`: what the shard asks for after a turn. The
//! counters it keeps (`IoCounters`) belong to `crate::metrics`.

mod datagrams;
pub mod directory;
mod outputs;
mod streams;

use std::collections::HashMap;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};

pub use directory::RelayDirectory;

use crate::io::clocks::thread_cpu_time;
use crate::io::socket::BufferSizes;
use crate::io::stream::{DetachedConn, StreamSet};
use crate::io::{Backend, GroPolicy, RecvOptions, Token, Waker, HEADROOM, TAILROOM};
use crate::metrics::WorkerMetrics;
pub use crate::metrics::{IoCounters, TURN_BUCKETS_NS};
use crate::turn::Server;
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
}
