//! One worker thread: its share of the clients (each its own UDP socket
//! connected to the server, or its own TCP/TLS connection), its own echo
//! peers (UDP), one epoll loop. Threads share nothing but the phase and a few
//! progress counters.
//!
//! Every loop here is bounded: the main thread moves the phase on by the
//! clock, every transaction gives up after a fixed number of tries, and the
//! final release waits at most a second.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use hdrhistogram::Histogram;
use ringturn::auth::keys::md5_key;
use ringturn::stun::{
    ChannelData, ChannelNumber, ChannelNumberAttr, Class, Data, EncodeAttribute, ErrorCodeAttr,
    Lifetime, Message, MessageType, MessageWriter, Method, Nonce, Realm, RequestedTransport,
    TransactionId, TransportProtocol, Username, XorPeerAddress, XorRelayedAddress,
};

use crate::config::{LoadConfig, Mode, Rate, Shape};
use crate::net::{bind_udp, Epoll, RecvBatch, SendBatch, BATCH};
use crate::payload::{self, Clock, Stamp};
use crate::stream::{Fill, StreamConn, TlsClient};
use crate::track::{new_histogram, Counters, FlowRx, Seen, Timeline};

pub const PHASE_SETUP: u8 = 0;
pub const PHASE_WARMUP: u8 = 1;
pub const PHASE_MEASURE: u8 = 2;
pub const PHASE_DRAIN: u8 = 3;
pub const PHASE_STOP: u8 = 4;

/// The channel every client binds (one peer per client).
pub const CHANNEL: u16 = 0x4000;
/// Tries per transaction (RFC 8489 §6.2.1 suggests 7; loopback needs fewer).
const MAX_TRIES: u8 = 6;
/// A --max window with no progress for this long is written off as lost.
const STALL_NS: u64 = 200_000_000;
/// Long runs refresh channel bindings and permissions this often.
const REFRESH_EVERY_NS: u64 = 120_000_000_000;
/// How long the final Refresh(0) round may take.
const RELEASE_NS: u64 = 1_000_000_000;
/// How long the loop waits when nothing is due (it still wakes for replies).
const IDLE_WAIT_NS: u64 = 10_000_000;
const PEER_TOKEN: u64 = 1 << 40;
/// Room kept in a stream's send buffer for control messages (Refresh, ChannelBind)
/// when data fills it.
const CONTROL_RESERVE: usize = 2048;
/// Largest data message composed: payload plus Send-indication framing.
const DATA_OVERHEAD: usize = 64;

/// Per-thread counters the main thread reads for the progress line.
#[derive(Debug, Default)]
pub struct Progress {
    pub sent_all: AtomicU64,
    pub received_all: AtomicU64,
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub ready: AtomicU64,
    pub failed: AtomicU64,
    pub allocations: AtomicU64,
    pub setup_done: AtomicBool,
    pub count_done: AtomicBool,
    pub drained: AtomicBool,
}

/// What every worker sees.
pub struct Shared {
    pub phase: AtomicU8,
    pub clock: Clock,
    /// When warm-up began (clock ns); timelines start there.
    pub warmup_start_ns: AtomicU64,
    pub progress: Vec<Progress>,
    pub workers_started: AtomicUsize,
    /// TLS client settings every connection shares (`--transport tls`).
    pub tls: Option<TlsClient>,
}

impl Shared {
    pub fn new(threads: usize) -> Self {
        Self {
            phase: AtomicU8::new(PHASE_SETUP),
            clock: Clock::new(),
            warmup_start_ns: AtomicU64::new(0),
            progress: (0..threads).map(|_| Progress::default()).collect(),
            workers_started: AtomicUsize::new(0),
            tls: None,
        }
    }

    pub fn phase(&self) -> u8 {
        self.phase.load(Ordering::Acquire)
    }
}

/// One thread's share of the run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub index: usize,
    /// Global client numbers owned by this thread.
    pub first_client: usize,
    pub clients: usize,
    /// Measured packets / requests / allocations this thread stops at.
    pub count_share: Option<u64>,
    pub cpu: Option<usize>,
}

/// What one thread measured.
#[derive(Debug)]
pub struct WorkerResult {
    pub counters: Counters,
    pub latency: Histogram<u64>,
    pub timeline: Timeline,
    /// Thread CPU time spent between measure start and drain start.
    pub busy_ns: u64,
    pub measure_wall_ns: u64,
    pub ready: u64,
    pub failures: BTreeMap<String, u64>,
    pub alloc: AllocCounters,
    pub setup_ns: u64,
    pub released: u64,
    pub pin_error: Option<String>,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct AllocCounters {
    /// Allocations completed in the measured window (storm) or during setup (hold).
    pub completed: u64,
    pub completed_all: u64,
    /// Requests sent, retransmissions included.
    pub requests: u64,
    pub responses: u64,
    pub retransmissions: u64,
    pub timeouts: u64,
    /// Error responses by code (401 challenges excluded).
    pub errors: BTreeMap<u16, u64>,
    pub stale_nonce: u64,
    pub refreshes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    AllocPlain,
    AllocAuth,
    Permission,
    Bind,
    RefreshBind,
    RefreshAlloc,
    Release,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::AllocPlain | Step::AllocAuth => "Allocate",
            Step::Permission => "CreatePermission",
            Step::Bind => "ChannelBind",
            Step::RefreshBind => "ChannelBind refresh",
            Step::RefreshAlloc => "Refresh",
            Step::Release => "Refresh(0)",
        }
    }
}

struct Tx {
    tid: TransactionId,
    step: Step,
    bytes: Vec<u8>,
    last_sent_ns: u64,
    tries: u8,
    stale_retries: u8,
    /// Handed to the socket (a stream's full send buffer can refuse it).
    sent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not started (setup waits for a concurrency slot; storm waits for the next cycle).
    Idle,
    /// A setup transaction is in flight.
    Setup,
    /// Pair mode: allocated, waiting for the partner's relayed address.
    WaitPartner,
    Ready,
    Failed,
    /// Allocation released (or never made) and nothing more to do.
    Done,
}

/// What one client's data messages look like; writes one into `out`.
struct Compose {
    mode: Mode,
    indications: bool,
    size: usize,
    target: Option<SocketAddr>,
    flow_id: u32,
}

impl Compose {
    /// Writes a Binding request, a Send indication or a ChannelData message
    /// (unpadded: a stream pads it) carrying `stamp`; returns its length.
    fn write(&self, stamp: &Stamp, scratch: &mut [u8], out: &mut [u8]) -> Option<usize> {
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
enum Conn {
    Udp(UdpSocket),
    Stream(Box<StreamConn>),
}

impl Conn {
    fn fd(&self) -> RawFd {
        match self {
            Conn::Udp(s) => s.as_raw_fd(),
            Conn::Stream(s) => s.fd(),
        }
    }

    /// Opens client `global`'s socket (UDP, connected) or connection (TCP/TLS,
    /// connecting: it completes in the event loop).
    fn open(cfg: &LoadConfig, tls: Option<&TlsClient>, global: usize) -> anyhow::Result<Self> {
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
    fn send_message(&mut self, epoll: &Epoll, token: usize, bytes: &[u8]) -> bool {
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
fn flush_stream(epoll: &Epoll, token: usize, s: &mut StreamConn) {
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

struct Client {
    conn: Conn,
    user: String,
    pass: String,
    realm: Option<String>,
    nonce: Option<String>,
    key: Option<[u8; 16]>,
    state: State,
    tx: Option<Tx>,
    relayed: Option<SocketAddr>,
    /// Where this client's data goes (an echo peer, or the partner's relay).
    target: Option<SocketAddr>,
    allocated: bool,
    shape: Shape,
    cycle_start_ns: u64,
    cycle_measured: bool,
    next_refresh_ns: u64,
    /// Allocate storm with --pps: when this client may start its next cycle
    /// (0: not yet placed).
    next_cycle_ns: u64,
    tid_counter: u32,
}

/// The sending half of a flow (indexed by the sending client).
#[derive(Default)]
struct Flow {
    next_seq: u64,
    sent_all: u64,
    sent_measured: u64,
    written_off: u64,
    last_progress_ns: u64,
    rx: FlowRx,
}

pub struct Worker {
    cfg: Arc<LoadConfig>,
    shared: Arc<Shared>,
    plan: Plan,
    clients: Vec<Client>,
    flows: Vec<Flow>,
    peers: Vec<UdpSocket>,
    epoll: Epoll,
    /// Taken while its datagrams are handled (they borrow it).
    recv: Option<Box<RecvBatch>>,
    send: SendBatch,
    scratch: Vec<u8>,
    counters: Counters,
    alloc: AllocCounters,
    latency: Histogram<u64>,
    timeline: Timeline,
    failures: BTreeMap<String, u64>,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    in_setup: usize,
    next_idle: usize,
    sending: bool,
    count_done: bool,
    unix_now: u64,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Worker {
    /// Opens this thread's sockets (clients connected to the server, echo peers).
    pub fn new(cfg: Arc<LoadConfig>, shared: Arc<Shared>, plan: Plan) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let epoll = Epoll::new(1024)?;
        let now = unix_now();
        let mut clients = Vec::with_capacity(plan.clients);
        for k in 0..plan.clients {
            let global = plan.first_client + k;
            let conn = Conn::open(&cfg, shared.tls.as_ref(), global)?;
            epoll.add(conn.fd(), k as u64)?;
            let (user, pass) = cfg.credentials.for_client(global, now);
            clients.push(Client {
                conn,
                user,
                pass,
                realm: cfg.credentials.realm_override().map(str::to_owned),
                nonce: None,
                key: None,
                state: State::Idle,
                tx: None,
                relayed: None,
                target: None,
                allocated: false,
                shape: cfg.shape(global),
                cycle_start_ns: 0,
                cycle_measured: false,
                next_refresh_ns: u64::MAX,
                next_cycle_ns: 0,
                tid_counter: 0,
            });
        }
        let mut peers = Vec::new();
        if cfg.mode == Mode::Relay {
            for p in 0..cfg.peers_per_thread.min(plan.clients.max(1)) {
                let sock = bind_udp(cfg.peer_ip, cfg.sockbuf)
                    .with_context(|| format!("cannot open an echo peer on {}", cfg.peer_ip))?;
                epoll.add(sock.as_raw_fd(), PEER_TOKEN + p as u64)?;
                peers.push(sock);
            }
        }
        let flows = (0..plan.clients).map(|_| Flow::default()).collect();
        Ok(Self {
            flows,
            clients,
            peers,
            epoll,
            recv: Some(Box::new(RecvBatch::new().with_gso(cfg.gso))),
            send: SendBatch::new().with_gso(cfg.gso),
            scratch: vec![0u8; crate::net::MAX_DATAGRAM],
            counters: Counters::default(),
            alloc: AllocCounters::default(),
            latency: new_histogram(),
            timeline: Timeline::default(),
            failures: BTreeMap::new(),
            heap: BinaryHeap::new(),
            in_setup: 0,
            next_idle: 0,
            sending: false,
            count_done: false,
            unix_now: now,
            cfg,
            shared,
            plan,
        })
    }

    fn progress(&self) -> Option<&Progress> {
        self.shared.progress.get(self.plan.index)
    }

    fn flow_base(&self) -> u32 {
        self.plan.first_client as u32
    }

    fn partner(&self, ci: usize) -> usize {
        ci ^ 1
    }

    /// Runs until the main thread says stop; returns what was measured.
    pub fn run(mut self) -> WorkerResult {
        let pin_error = self.plan.cpu.and_then(|cpu| {
            ringturn::io::affinity::pin_current_thread(cpu)
                .err()
                .map(|e| format!("cannot pin thread {} to CPU {cpu}: {e}", self.plan.index))
        });
        self.shared.workers_started.fetch_add(1, Ordering::AcqRel);
        let setup_start = self.shared.clock.now_ns();
        let mut setup_ns = 0u64;
        let mut tokens = Vec::with_capacity(1024);
        let mut last_scan = 0u64;
        let mut last_publish = 0u64;
        let mut phase_seen = PHASE_SETUP;
        let mut measure_start = (0u64, 0u64);
        let mut busy_ns = 0u64;
        let mut measure_wall_ns = 0u64;
        // Hard stop even if the main thread vanished: setup + warm-up + window + drain, generously.
        let hard_limit = setup_start
            + (self.cfg.setup_timeout
                + self.cfg.warmup
                + self.cfg.duration
                + self.cfg.hold.unwrap_or_default()
                + self.cfg.drain)
                .as_nanos() as u64
            + 30_000_000_000;
        loop {
            let now = self.shared.clock.now_ns();
            let phase = self.shared.phase();
            if phase == PHASE_STOP || now > hard_limit {
                if phase_seen == PHASE_MEASURE {
                    busy_ns = crate::net::thread_cpu_ns().saturating_sub(measure_start.1);
                    measure_wall_ns = now.saturating_sub(measure_start.0);
                }
                break;
            }
            if phase != phase_seen {
                if phase_seen == PHASE_SETUP {
                    setup_ns = now.saturating_sub(setup_start);
                    self.abandon_setup();
                }
                if phase >= PHASE_WARMUP && phase_seen < PHASE_WARMUP {
                    self.start_sending(now);
                }
                if phase == PHASE_MEASURE {
                    measure_start = (now, crate::net::thread_cpu_ns());
                }
                if phase >= PHASE_DRAIN && phase_seen == PHASE_MEASURE {
                    busy_ns = crate::net::thread_cpu_ns().saturating_sub(measure_start.1);
                    measure_wall_ns = now.saturating_sub(measure_start.0);
                }
                phase_seen = phase;
            }

            if phase == PHASE_SETUP {
                self.start_setups(now);
            }
            if self.cfg.mode == Mode::Allocate && self.cfg.hold.is_none() {
                self.start_cycles(now, phase);
            }
            if now.saturating_sub(last_scan) >= 10_000_000 {
                last_scan = now;
                self.scan_timeouts(now, phase);
            }
            let timeout_ns = if self.sending && (phase == PHASE_WARMUP || phase == PHASE_MEASURE) {
                self.send_due(now, phase)
            } else {
                IDLE_WAIT_NS
            };
            if let Err(e) = self.epoll.wait(timeout_ns, &mut tokens) {
                *self.failures.entry(format!("epoll: {e}")).or_default() += 1;
                break;
            }
            let now = self.shared.clock.now_ns();
            for &token in tokens.iter() {
                if token >= PEER_TOKEN {
                    self.echo(usize::try_from(token - PEER_TOKEN).unwrap_or(usize::MAX));
                } else {
                    self.receive(usize::try_from(token).unwrap_or(usize::MAX), now, phase);
                }
            }
            if now.saturating_sub(last_publish) >= 20_000_000 {
                last_publish = now;
                self.publish(phase);
            }
        }
        self.publish(PHASE_STOP);
        let ready = match self.cfg.mode {
            Mode::Binding => self.clients.len() as u64,
            Mode::Allocate if self.cfg.hold.is_none() => self.clients.len() as u64,
            _ => self
                .clients
                .iter()
                .filter(|c| c.state == State::Ready)
                .count() as u64,
        };
        let released = self.release_all();
        for f in &self.flows {
            self.counters.duplicated += f.rx.duplicated;
            self.counters.reordered += f.rx.reordered;
        }
        WorkerResult {
            counters: self.counters,
            latency: self.latency,
            timeline: self.timeline,
            busy_ns,
            measure_wall_ns,
            ready,
            failures: self.failures,
            alloc: self.alloc,
            setup_ns,
            released,
            pin_error,
        }
    }

    fn publish(&mut self, phase: u8) {
        let ready = self
            .clients
            .iter()
            .filter(|c| c.state == State::Ready || (self.cfg.hold.is_some() && c.allocated))
            .count() as u64;
        let failed = self
            .clients
            .iter()
            .filter(|c| c.state == State::Failed)
            .count() as u64;
        let setup_done = match self.cfg.mode {
            Mode::Binding => true,
            Mode::Allocate if self.cfg.hold.is_none() => true,
            _ => self.clients.iter().all(|c| {
                matches!(c.state, State::Ready | State::Failed | State::Done)
                    || (self.cfg.mode == Mode::Allocate && c.allocated)
            }),
        };
        let drained = phase >= PHASE_DRAIN && self.is_drained();
        let counters = &self.counters;
        let alloc_completed = self.alloc.completed;
        let count_done = self.count_done;
        if let Some(p) = self.progress() {
            p.sent_all.store(counters.sent_all, Ordering::Relaxed);
            p.received_all
                .store(counters.received_all, Ordering::Relaxed);
            p.sent.store(counters.sent, Ordering::Relaxed);
            p.received.store(counters.received, Ordering::Relaxed);
            p.ready.store(ready, Ordering::Relaxed);
            p.failed.store(failed, Ordering::Relaxed);
            p.allocations.store(alloc_completed, Ordering::Relaxed);
            p.setup_done.store(setup_done, Ordering::Release);
            p.count_done.store(count_done, Ordering::Release);
            p.drained.store(drained, Ordering::Release);
        }
    }

    fn is_drained(&self) -> bool {
        match self.cfg.mode {
            Mode::Allocate => self.clients.iter().all(|c| c.state != State::Setup),
            _ => self
                .flows
                .iter()
                .all(|f| f.rx.unique_measured >= f.sent_measured),
        }
    }

    fn fail(&mut self, ci: usize, why: String) {
        *self.failures.entry(why).or_default() += 1;
        let pair = self.cfg.mode == Mode::Pair;
        if let Some(c) = self.clients.get_mut(ci) {
            if matches!(c.state, State::Setup | State::WaitPartner) {
                self.in_setup = self.in_setup.saturating_sub(1);
            }
            c.state = State::Failed;
            c.tx = None;
        }
        if pair {
            let p = self.partner(ci);
            if let Some(c) = self.clients.get_mut(p) {
                if c.state == State::WaitPartner {
                    self.in_setup = self.in_setup.saturating_sub(1);
                }
                if matches!(c.state, State::WaitPartner | State::Idle) {
                    c.state = State::Failed;
                    *self
                        .failures
                        .entry("partner could not allocate".into())
                        .or_default() += 1;
                }
            }
        }
    }

    // ---------------------------------------------------------------- control transactions

    fn next_tid(&mut self, ci: usize) -> TransactionId {
        let base = self.flow_base() as usize + ci;
        let Some(c) = self.clients.get_mut(ci) else {
            return TransactionId([0; 12]);
        };
        c.tid_counter = c.tid_counter.wrapping_add(1);
        let mut t = [0u8; 12];
        t[0] = 0x11; // bit 0x80 of byte 3 stays clear: not a binding stamp
        t[4..8].copy_from_slice(&(base as u32).to_be_bytes());
        t[8..12].copy_from_slice(&c.tid_counter.to_be_bytes());
        t[1] = (self.unix_now & 0xff) as u8;
        TransactionId(t)
    }

    fn build(
        &self,
        ci: usize,
        method: Method,
        tid: TransactionId,
        attrs: &[&dyn EncodeAttribute],
        sign: bool,
    ) -> Option<Vec<u8>> {
        let c = self.clients.get(ci)?;
        let mut buf = vec![0u8; 1024];
        let mut w =
            MessageWriter::new(&mut buf, MessageType::new(method, Class::Request), tid).ok()?;
        for a in attrs {
            w.add(*a).ok()?;
        }
        if sign {
            if let (Some(realm), Some(nonce), Some(key)) = (&c.realm, &c.nonce, &c.key) {
                w.add(&Username(&c.user)).ok()?;
                w.add(&Realm(realm)).ok()?;
                w.add(&Nonce(nonce)).ok()?;
                w.add_message_integrity(key).ok()?;
            }
        }
        let n = w.finish();
        buf.truncate(n);
        Some(buf)
    }

    /// Starts the transaction for `step` on client `ci`.
    fn begin(&mut self, ci: usize, step: Step, now: u64) {
        let tid = self.next_tid(ci);
        let lifetime = self.cfg.lifetime;
        let Some(c) = self.clients.get(ci) else {
            return;
        };
        let target = c.target;
        let transport = RequestedTransport(TransportProtocol::UDP);
        let bytes = match step {
            Step::AllocPlain => self.build(
                ci,
                Method::ALLOCATE,
                tid,
                &[&transport, &Lifetime(lifetime)],
                false,
            ),
            Step::AllocAuth => self.build(
                ci,
                Method::ALLOCATE,
                tid,
                &[&transport, &Lifetime(lifetime)],
                true,
            ),
            Step::Permission => match target {
                Some(t) => self.build(
                    ci,
                    Method::CREATE_PERMISSION,
                    tid,
                    &[&XorPeerAddress(t)],
                    true,
                ),
                None => None,
            },
            Step::Bind | Step::RefreshBind => match target {
                Some(t) => self.build(
                    ci,
                    Method::CHANNEL_BIND,
                    tid,
                    &[&ChannelNumberAttr(CHANNEL), &XorPeerAddress(t)],
                    true,
                ),
                None => None,
            },
            Step::RefreshAlloc => {
                self.build(ci, Method::REFRESH, tid, &[&Lifetime(lifetime)], true)
            }
            Step::Release => self.build(ci, Method::REFRESH, tid, &[&Lifetime(0)], true),
        };
        let Some(bytes) = bytes else {
            self.fail(ci, format!("cannot encode {}", step.name()));
            return;
        };
        let Some(c) = self.clients.get_mut(ci) else {
            return;
        };
        let sent = c.conn.send_message(&self.epoll, ci, &bytes);
        if !sent {
            self.counters.send_errors += 1;
        }
        self.alloc.requests += 1;
        let stale_retries =
            c.tx.as_ref()
                .map_or(0, |t| if t.step == step { t.stale_retries } else { 0 });
        c.tx = Some(Tx {
            tid,
            step,
            bytes,
            last_sent_ns: now,
            tries: 1,
            stale_retries,
            sent,
        });
    }

    fn start_setups(&mut self, now: u64) {
        let sets_up = matches!(self.cfg.mode, Mode::Relay | Mode::Pair)
            || (self.cfg.mode == Mode::Allocate && self.cfg.hold.is_some());
        if !sets_up {
            return;
        }
        while self.in_setup < self.cfg.setup_concurrency && self.next_idle < self.clients.len() {
            let ci = self.next_idle;
            self.next_idle += 1;
            if let Some(c) = self.clients.get_mut(ci) {
                if c.state != State::Idle {
                    continue;
                }
                c.state = State::Setup;
                c.cycle_start_ns = now;
                c.cycle_measured = true;
            }
            self.in_setup += 1;
            self.begin(ci, Step::AllocPlain, now);
        }
    }

    /// When warm-up starts, clients whose setup has not finished are given up.
    fn abandon_setup(&mut self) {
        for ci in 0..self.clients.len() {
            let stuck = self.clients.get(ci).is_some_and(|c| {
                matches!(c.state, State::Setup | State::WaitPartner | State::Idle)
            }) && matches!(self.cfg.mode, Mode::Relay | Mode::Pair);
            if stuck {
                self.fail(ci, "setup not finished before the run started".into());
            }
        }
    }

    /// Allocation storm: every idle client starts a new cycle while the run goes on.
    fn start_cycles(&mut self, now: u64, phase: u8) {
        if !(phase == PHASE_WARMUP || phase == PHASE_MEASURE) || self.count_done {
            return;
        }
        let pace = self.cfg.cycle_interval_ns();
        let n = self.clients.len().max(1) as u64;
        for ci in 0..self.clients.len() {
            let idle = self
                .clients
                .get(ci)
                .is_some_and(|c| c.state == State::Idle && c.tx.is_none());
            if !idle {
                continue;
            }
            if let (Some(interval), Some(c)) = (pace, self.clients.get_mut(ci)) {
                // --pps: cycles start on a schedule (phases spread over one
                // interval), not as soon as the last one ended. A cycle that
                // took longer than its interval delays the next; one more
                // than three intervals behind is counted late and the
                // schedule restarts from now, as for paced sends.
                if c.next_cycle_ns == 0 {
                    c.next_cycle_ns = now + interval * (ci as u64) / n;
                }
                if now < c.next_cycle_ns {
                    continue;
                }
                let mut next = c.next_cycle_ns + interval;
                if next + 3 * interval < now {
                    self.counters.late += 1;
                    next = now + interval;
                }
                c.next_cycle_ns = next;
            }
            // A fresh 5-tuple each cycle, as a new client would have: servers may keep a
            // released allocation's 5-tuple for a while (coturn answers 437 on it).
            if self.clients.get(ci).is_some_and(|c| c.tid_counter > 0) {
                if let Err(e) = self.renew_socket(ci) {
                    *self
                        .failures
                        .entry(format!("cannot open a new client socket: {e}"))
                        .or_default() += 1;
                    continue;
                }
            }
            self.timeline.add_sent(now, 1);
            if let Some(c) = self.clients.get_mut(ci) {
                c.state = State::Setup;
                c.cycle_start_ns = now;
                c.cycle_measured = phase == PHASE_MEASURE;
                // The 401 challenge is part of the cost of every allocation.
                c.nonce = None;
            }
            self.begin(ci, Step::AllocPlain, now);
        }
    }

    /// Replaces client `ci`'s socket with a new one (new source port); a
    /// stream client gets a new connection (the old one, and with it any
    /// allocation still on it, is closed).
    fn renew_socket(&mut self, ci: usize) -> anyhow::Result<()> {
        let global = self.plan.first_client + ci;
        let conn = Conn::open(&self.cfg, self.shared.tls.as_ref(), global)?;
        let Some(c) = self.clients.get_mut(ci) else {
            return Ok(());
        };
        self.epoll.delete(c.conn.fd());
        self.epoll.add(conn.fd(), ci as u64)?;
        c.conn = conn;
        Ok(())
    }

    /// A stream client's connection is gone (closed by the server, reset, or
    /// not TURN): its allocation went with it (RFC 8656 §3.1).
    fn on_conn_lost(&mut self, ci: usize, why: String, now: u64) {
        let storm = self.cfg.mode == Mode::Allocate && self.cfg.hold.is_none();
        let Some(c) = self.clients.get_mut(ci) else {
            return;
        };
        let Conn::Stream(s) = &mut c.conn else {
            return;
        };
        if s.closed {
            return;
        }
        self.epoll.delete(s.fd());
        s.close();
        c.allocated = false;
        let tx = c.tx.take();
        let expected = tx.is_none() && matches!(c.state, State::Idle | State::Done | State::Failed);
        if expected {
            return; // nothing was waiting on it (a storm client between cycles, or the end)
        }
        let what = format!("{} connection lost: {why}", self.cfg.transport.name());
        if storm {
            *self.failures.entry(what).or_default() += 1;
            if let Some(c) = self.clients.get_mut(ci) {
                c.state = State::Idle;
                c.cycle_start_ns = now;
            }
            return;
        }
        let in_setup = self
            .clients
            .get(ci)
            .is_some_and(|c| matches!(c.state, State::Setup | State::WaitPartner));
        match tx {
            // The reason names the step that was waiting.
            Some(t) if in_setup => {
                self.on_tx_failed(ci, t.step, format!("{}: {what}", t.step.name()), now)
            }
            // A ready client (or a held allocation) lost its allocation with the connection.
            _ => self.fail(ci, what),
        }
    }

    /// Streams whose writes failed: handled as lost connections.
    fn check_streams(&mut self, now: u64) {
        for ci in 0..self.clients.len() {
            let why = match self.clients.get_mut(ci).map(|c| &mut c.conn) {
                Some(Conn::Stream(s)) if !s.closed => s.failed.take(),
                _ => None,
            };
            if let Some(why) = why {
                self.on_conn_lost(ci, why, now);
            }
        }
    }

    fn scan_timeouts(&mut self, now: u64, phase: u8) {
        let rto = self.cfg.rto.as_nanos() as u64;
        let stream = self.cfg.transport.is_stream();
        if stream {
            self.check_streams(now);
        }
        for ci in 0..self.clients.len() {
            let Some(c) = self.clients.get_mut(ci) else {
                continue;
            };
            if let Some(tx) = c.tx.as_mut() {
                let wait = rto.saturating_mul(1u64 << (tx.tries - 1).min(4));
                if now.saturating_sub(tx.last_sent_ns) < wait {
                    continue;
                }
                if tx.tries < MAX_TRIES && stream {
                    // RFC 8489 §6.2.2: no retransmission over a reliable transport;
                    // the transaction waits as long as the UDP schedule would. Only a
                    // request its send buffer refused is tried again.
                    tx.tries += 1;
                    tx.last_sent_ns = now;
                    if !tx.sent {
                        tx.sent = c.conn.send_message(&self.epoll, ci, &tx.bytes);
                    }
                    continue;
                }
                if tx.tries < MAX_TRIES {
                    tx.tries += 1;
                    tx.last_sent_ns = now;
                    if !c.conn.send_message(&self.epoll, ci, &tx.bytes) {
                        self.counters.send_errors += 1;
                    }
                    self.alloc.requests += 1;
                    self.alloc.retransmissions += 1;
                    continue;
                }
                let step = tx.step;
                c.tx = None;
                self.alloc.timeouts += 1;
                self.on_tx_failed(ci, step, format!("{} timed out", step.name()), now);
                continue;
            }
            // Long runs: keep permissions and channels alive.
            if c.state == State::Ready
                && now >= c.next_refresh_ns
                && (phase == PHASE_WARMUP || phase == PHASE_MEASURE)
            {
                c.next_refresh_ns = now + REFRESH_EVERY_NS;
                let step = if self.cfg.indications {
                    Step::Permission
                } else {
                    Step::RefreshBind
                };
                self.alloc.refreshes += 1;
                self.begin(ci, step, now);
            }
        }
    }

    fn on_tx_failed(&mut self, ci: usize, step: Step, why: String, now: u64) {
        let storm = self.cfg.mode == Mode::Allocate && self.cfg.hold.is_none();
        let state = self.clients.get(ci).map(|c| c.state);
        match step {
            Step::RefreshBind | Step::RefreshAlloc | Step::Release => {
                *self.failures.entry(why).or_default() += 1;
                if step == Step::Release {
                    if let Some(c) = self.clients.get_mut(ci) {
                        c.allocated = false;
                        if storm {
                            c.state = State::Idle;
                        }
                    }
                }
            }
            Step::Permission if state == Some(State::Ready) => {
                *self.failures.entry(why).or_default() += 1;
            }
            _ if storm => {
                *self.failures.entry(why).or_default() += 1;
                if let Some(c) = self.clients.get_mut(ci) {
                    c.state = State::Idle;
                    c.cycle_start_ns = now;
                }
            }
            _ => self.fail(ci, why),
        }
    }

    fn on_control_response(&mut self, ci: usize, msg: &Message<'_>, now: u64) {
        let Some(c) = self.clients.get(ci) else {
            return;
        };
        let Some(tx) = c.tx.as_ref() else { return };
        if tx.tid != msg.transaction_id() {
            return; // a late answer to a retransmission
        }
        let step = tx.step;
        let stale_retries = tx.stale_retries;
        self.alloc.responses += 1;
        let code = msg
            .get::<ErrorCodeAttr>()
            .and_then(|r| r.ok())
            .map(|e| e.code.0);
        // The 401 challenge of the first Allocate, and 438 (stale nonce) anywhere.
        if let Some(code @ (401 | 438)) = code {
            let nonce = msg
                .get::<Nonce>()
                .and_then(|r| r.ok())
                .map(|n| n.0.to_owned());
            let realm = msg
                .get::<Realm>()
                .and_then(|r| r.ok())
                .map(|r| r.0.to_owned());
            let retry = match (code, step) {
                (401, Step::AllocPlain) => Some(Step::AllocAuth),
                (438, _) if stale_retries < 3 => Some(if step == Step::AllocPlain {
                    Step::AllocAuth
                } else {
                    step
                }),
                _ => None,
            };
            if let (Some(next), Some(nonce)) = (retry, nonce) {
                if code == 438 {
                    self.alloc.stale_nonce += 1;
                }
                if let Some(c) = self.clients.get_mut(ci) {
                    c.nonce = Some(nonce);
                    if c.realm.is_none() || self.cfg.credentials.realm_override().is_none() {
                        if let Some(r) = realm {
                            c.realm = Some(r);
                        }
                    }
                    if let Some(realm) = &c.realm {
                        c.key = Some(md5_key(&c.user, realm, &c.pass));
                    }
                    if let Some(tx) = c.tx.as_mut() {
                        if code == 438 {
                            tx.stale_retries += 1;
                        }
                    }
                }
                self.begin(ci, next, now);
                return;
            }
        }
        if let Some(code) = code {
            *self.alloc.errors.entry(code).or_default() += 1;
            if let Some(c) = self.clients.get_mut(ci) {
                c.tx = None;
            }
            let what = match code {
                401 => "401 Unauthorized (wrong credentials?)".to_string(),
                403 => "403 Forbidden (does the server allow loopback peers? coturn and ringturn need --allow-loopback-peers)".to_string(),
                437 => "437 Allocation Mismatch".to_string(),
                486 => "486 Allocation Quota Reached".to_string(),
                508 => "508 Insufficient Capacity".to_string(),
                c => format!("error {c}"),
            };
            self.on_tx_failed(ci, step, format!("{}: {what}", step.name()), now);
            return;
        }
        if msg.class() != Class::SuccessResponse {
            return;
        }
        if let Some(c) = self.clients.get_mut(ci) {
            c.tx = None;
        }
        match step {
            Step::AllocPlain | Step::AllocAuth => {
                let relayed = msg
                    .get::<XorRelayedAddress>()
                    .and_then(|r| r.ok())
                    .map(|a| a.0);
                let Some(relayed) = relayed else {
                    self.fail(ci, "Allocate success without XOR-RELAYED-ADDRESS".into());
                    return;
                };
                self.on_allocated(ci, relayed, now);
            }
            Step::Permission => {
                let next_bind = !self.cfg.indications;
                let ready = self
                    .clients
                    .get(ci)
                    .is_some_and(|c| c.state == State::Ready);
                if ready {
                    return; // a refresh
                }
                if next_bind {
                    self.begin(ci, Step::Bind, now);
                } else {
                    self.set_ready(ci, now);
                }
            }
            Step::Bind => self.set_ready(ci, now),
            Step::RefreshBind => self.begin(ci, Step::RefreshAlloc, now),
            Step::RefreshAlloc => {}
            Step::Release => {
                let storm = self.cfg.mode == Mode::Allocate && self.cfg.hold.is_none();
                if let Some(c) = self.clients.get_mut(ci) {
                    c.allocated = false;
                    c.state = if storm { State::Idle } else { State::Done };
                }
            }
        }
    }

    fn on_allocated(&mut self, ci: usize, relayed: SocketAddr, now: u64) {
        let mode = self.cfg.mode;
        let hold = self.cfg.hold.is_some();
        let peer = (mode == Mode::Relay).then(|| {
            let n = self.peers.len().max(1);
            self.peers.get(ci % n).and_then(|p| p.local_addr().ok())
        });
        let Some(c) = self.clients.get_mut(ci) else {
            return;
        };
        c.relayed = Some(relayed);
        c.allocated = true;
        let latency = now.saturating_sub(c.cycle_start_ns);
        let measured = c.cycle_measured;
        match mode {
            Mode::Allocate => {
                self.alloc.completed_all += 1;
                self.timeline.add_received(now, 1);
                let phase = self.shared.phase();
                let counts = if hold {
                    phase == PHASE_SETUP
                } else {
                    measured && phase == PHASE_MEASURE
                };
                if counts {
                    self.alloc.completed += 1;
                    let _ = self.latency.record(latency.max(1));
                    if let Some(share) = self.plan.count_share {
                        if !hold && self.alloc.completed >= share {
                            self.count_done = true;
                        }
                    }
                }
                if hold {
                    self.in_setup = self.in_setup.saturating_sub(1);
                    if let Some(c) = self.clients.get_mut(ci) {
                        c.state = State::Ready;
                    }
                } else {
                    self.begin(ci, Step::Release, now);
                }
            }
            Mode::Relay => {
                c.target = peer.flatten();
                self.begin(ci, Step::Permission, now);
            }
            Mode::Pair => {
                let p = self.partner(ci);
                let partner_relay = self
                    .clients
                    .get(p)
                    .and_then(|pc| pc.relayed.filter(|_| pc.state == State::WaitPartner));
                match partner_relay {
                    Some(pr) => {
                        if let Some(c) = self.clients.get_mut(ci) {
                            c.target = Some(pr);
                        }
                        if let Some(pc) = self.clients.get_mut(p) {
                            pc.target = Some(relayed);
                            pc.state = State::Setup;
                        }
                        self.begin(ci, Step::Permission, now);
                        self.begin(p, Step::Permission, now);
                    }
                    None => {
                        let partner_failed = self
                            .clients
                            .get(p)
                            .is_some_and(|pc| pc.state == State::Failed);
                        if partner_failed {
                            self.fail(ci, "partner could not allocate".into());
                        } else if let Some(c) = self.clients.get_mut(ci) {
                            c.state = State::WaitPartner;
                        }
                    }
                }
            }
            Mode::Binding => {}
        }
    }

    fn set_ready(&mut self, ci: usize, now: u64) {
        let Some(c) = self.clients.get_mut(ci) else {
            return;
        };
        if c.state == State::Setup {
            self.in_setup = self.in_setup.saturating_sub(1);
        }
        c.state = State::Ready;
        c.next_refresh_ns = now + REFRESH_EVERY_NS;
        if self.sending {
            self.schedule(ci, now);
        }
    }

    // ---------------------------------------------------------------- data

    fn is_sender(&self, ci: usize) -> bool {
        match self.cfg.mode {
            Mode::Relay | Mode::Pair => self
                .clients
                .get(ci)
                .is_some_and(|c| c.state == State::Ready),
            Mode::Binding => true,
            Mode::Allocate => false,
        }
    }

    fn start_sending(&mut self, now: u64) {
        self.sending = true;
        let origin = self
            .shared
            .warmup_start_ns
            .load(Ordering::Acquire)
            .max(1)
            .min(now);
        let max_points = ((self.cfg.warmup + self.cfg.duration + self.cfg.drain).as_nanos()
            / self.cfg.interval.as_nanos().max(1)) as usize
            + 64;
        self.timeline = Timeline::new(
            origin,
            self.cfg.interval.as_nanos() as u64,
            max_points.min(1_000_000),
        );
        if matches!(self.cfg.rate, Rate::Pps(_)) {
            for ci in 0..self.clients.len() {
                if self.is_sender(ci) {
                    self.schedule(ci, now);
                }
            }
        }
        for f in &mut self.flows {
            f.last_progress_ns = now;
        }
    }

    /// Puts a paced client on the timer heap, its phase spread over one interval.
    fn schedule(&mut self, ci: usize, now: u64) {
        if !matches!(self.cfg.rate, Rate::Pps(_)) {
            return;
        }
        let Some(c) = self.clients.get(ci) else {
            return;
        };
        let interval = c.shape.interval_ns.max(1);
        let n = self.clients.len().max(1) as u64;
        let offset = interval * (ci as u64) / n;
        self.heap.push(Reverse((now + offset, ci as u32)));
    }

    /// Sends what is due; returns the epoll timeout until the next send (ns).
    fn send_due(&mut self, now: u64, phase: u8) -> u64 {
        if self.count_done {
            return IDLE_WAIT_NS;
        }
        match self.cfg.rate {
            Rate::Pps(_) => {
                let mut budget = 4096usize; // bounded work per loop turn
                while let Some(Reverse((due, ci))) = self.heap.peek().copied() {
                    if due > now || budget == 0 {
                        break;
                    }
                    self.heap.pop();
                    let ci = ci as usize;
                    if !self.is_sender(ci) {
                        continue;
                    }
                    let Some(shape) = self.clients.get(ci).map(|c| c.shape) else {
                        continue;
                    };
                    let interval = shape.interval_ns.max(1);
                    self.send_burst(ci, shape.burst as usize, now, phase);
                    budget = budget.saturating_sub(shape.burst as usize);
                    let mut next = due + interval;
                    if next + 3 * interval < now {
                        self.counters.late += 1;
                        next = now + interval;
                    }
                    self.heap.push(Reverse((next, ci as u32)));
                    if self.count_done {
                        break;
                    }
                }
                match self.heap.peek() {
                    Some(Reverse((due, _))) if *due > now => (*due - now).min(IDLE_WAIT_NS),
                    Some(_) => 0,
                    None => IDLE_WAIT_NS,
                }
            }
            Rate::Max { window } => {
                let mut any_room = false;
                for ci in 0..self.clients.len() {
                    if !self.is_sender(ci) {
                        continue;
                    }
                    let Some(f) = self.flows.get_mut(ci) else {
                        continue;
                    };
                    let mut in_flight = f.sent_all.saturating_sub(f.rx.unique_all + f.written_off);
                    if in_flight >= u64::from(window)
                        && now.saturating_sub(f.last_progress_ns) > STALL_NS
                    {
                        f.written_off += in_flight;
                        f.last_progress_ns = now;
                        in_flight = 0;
                    }
                    let room = u64::from(window)
                        .saturating_sub(in_flight)
                        .min(BATCH as u64) as usize;
                    if room > 0 {
                        let sent = self.send_burst(ci, room, now, phase);
                        any_room |= sent == room;
                    }
                    if self.count_done {
                        break;
                    }
                }
                if any_room {
                    0
                } else {
                    1_000_000
                }
            }
        }
    }

    /// Sends up to `k` payloads (or Binding requests) from client `ci`; returns how many went.
    fn send_burst(&mut self, ci: usize, k: usize, now: u64, phase: u8) -> usize {
        let measured = phase == PHASE_MEASURE;
        let mut k = k.min(BATCH);
        if measured {
            if let Some(share) = self.plan.count_share {
                let left = share.saturating_sub(self.counters.sent);
                if left == 0 {
                    self.count_done = true;
                    return 0;
                }
                k = k.min(usize::try_from(left).unwrap_or(usize::MAX));
            }
        }
        let flow_id = self.flow_base() + ci as u32;
        let mode = self.cfg.mode;
        let indications = self.cfg.indications;
        let (Some(c), Some(f)) = (self.clients.get(ci), self.flows.get(ci)) else {
            return 0;
        };
        let size = c.shape.size;
        let target = c.target;
        let first_seq = f.next_seq;
        let what = Compose {
            mode,
            indications,
            size,
            target,
            flow_id,
        };
        let stamp = |j: usize| Stamp {
            flow: flow_id,
            seq: first_seq + j as u64,
            sent_ns: now,
            measured,
        };
        let (batch, sent) =
            if let Some(Conn::Stream(st)) = self.clients.get_mut(ci).map(|c| &mut c.conn) {
                // Composed in place in the connection's send buffer, written with one
                // flush; a full buffer (the server reads slower than we send) is
                // backpressure: fewer go, and they are not counted as sent.
                if st.closed {
                    return 0;
                }
                let max = size + DATA_OVERHEAD;
                let scratch = &mut self.scratch;
                let mut n = 0;
                for j in 0..k {
                    if st.room() < max + CONTROL_RESERVE {
                        break;
                    }
                    let stamp = stamp(j);
                    if !st.tx.push(max, |out| what.write(&stamp, scratch, out)) {
                        break;
                    }
                    n += 1;
                }
                if n > 0 {
                    flush_stream(&self.epoll, ci, st);
                }
                (k, n)
            } else {
                self.send.clear();
                for j in 0..k {
                    let stamp = stamp(j);
                    let scratch = &mut self.scratch;
                    if !self.send.push(None, |out| what.write(&stamp, scratch, out)) {
                        break;
                    }
                }
                let batch = self.send.len();
                if batch == 0 {
                    return 0;
                }
                let Some(Conn::Udp(sock)) = self.clients.get(ci).map(|c| &c.conn) else {
                    return 0;
                };
                let sent = match self.send.send(sock, false) {
                    Ok(n) => n,
                    Err(_) => {
                        self.counters.send_errors += 1;
                        0
                    }
                };
                (batch, sent)
            };
        if sent < batch {
            self.counters.send_blocked += 1;
        }
        let Some(f) = self.flows.get_mut(ci) else {
            return sent;
        };
        let was_idle = f.sent_all == f.rx.unique_all + f.written_off;
        f.next_seq += sent as u64;
        f.sent_all += sent as u64;
        if was_idle {
            f.last_progress_ns = now;
        }
        self.counters.sent_all += sent as u64;
        self.timeline.add_sent(now, sent as u64);
        if measured {
            f.sent_measured += sent as u64;
            self.counters.sent += sent as u64;
            self.counters.bytes_sent += (sent * size) as u64;
            if let Some(share) = self.plan.count_share {
                if self.counters.sent >= share {
                    self.count_done = true;
                }
            }
        }
        sent
    }

    fn echo(&mut self, p: usize) {
        let (Some(sock), Some(batch)) = (self.peers.get(p), self.recv.as_mut()) else {
            return;
        };
        for _ in 0..8 {
            match batch.recv(sock) {
                Ok(0) => break,
                Ok(n) => match batch.echo(sock) {
                    Ok(sent) => {
                        self.counters.echoed += sent as u64;
                        if sent < n {
                            self.counters.send_blocked += 1;
                        }
                    }
                    Err(_) => self.counters.send_errors += 1,
                },
                Err(_) => {
                    self.counters.recv_errors += 1;
                    break;
                }
            }
        }
    }

    fn receive(&mut self, ci: usize, now: u64, phase: u8) {
        if let Some(Conn::Stream(_)) = self.clients.get(ci).map(|c| &c.conn) {
            self.receive_stream(ci, now, phase);
            return;
        }
        let Some(mut batch) = self.recv.take() else {
            return;
        };
        for _ in 0..8 {
            let n = {
                let Some(Conn::Udp(sock)) = self.clients.get(ci).map(|c| &c.conn) else {
                    break;
                };
                match batch.recv(sock) {
                    Ok(n) => n,
                    Err(_) => {
                        // ICMP errors (a server that went away) surface here on connected sockets.
                        self.counters.recv_errors += 1;
                        0
                    }
                }
            };
            if n == 0 {
                break;
            }
            for i in 0..n {
                self.handle_datagram(ci, batch.datagram(i), now, phase);
            }
            if n < BATCH {
                break;
            }
        }
        self.recv = Some(batch);
    }

    /// A stream client's socket is ready: write what waits, read what came,
    /// and handle every complete message (bounded turns per wake-up).
    fn receive_stream(&mut self, ci: usize, now: u64, phase: u8) {
        let mut lost = None;
        for _ in 0..16 {
            let Some(Conn::Stream(s)) = self.clients.get_mut(ci).map(|c| &mut c.conn) else {
                return;
            };
            if s.closed {
                return;
            }
            if s.wants_write() {
                flush_stream(&self.epoll, ci, s);
            }
            if let Some(why) = s.failed.take() {
                lost = Some(why);
                break;
            }
            let fill = s.fill();
            // Taken out while its messages are handled (they borrow it); an
            // empty Deframer does not allocate.
            let mut rx = std::mem::take(&mut s.rx);
            let mut garbage = None;
            // Bounded by what one read brought in.
            loop {
                match rx.next_frame() {
                    Ok(Some(frame)) => self.handle_datagram(ci, frame, now, phase),
                    Ok(None) => break,
                    Err(e) => {
                        garbage = Some(e);
                        break;
                    }
                }
            }
            if let Some(Conn::Stream(s)) = self.clients.get_mut(ci).map(|c| &mut c.conn) {
                s.rx = rx;
            }
            if let Some(e) = garbage {
                self.counters.foreign += 1;
                lost = Some(format!("the server sent something that is not TURN: {e}"));
                break;
            }
            match fill {
                Ok(Fill::Data(0)) => break,
                Ok(Fill::Data(_)) => {}
                Ok(Fill::Closed) => {
                    lost = Some("closed by the server".into());
                    break;
                }
                Err(e) => {
                    self.counters.recv_errors += 1;
                    lost = Some(e.to_string());
                    break;
                }
            }
        }
        if let Some(why) = lost {
            self.on_conn_lost(ci, why, now);
        }
    }

    fn handle_datagram(&mut self, ci: usize, d: &[u8], now: u64, phase: u8) {
        match d.first() {
            Some(0x40..=0x7F) => match ChannelData::parse(d) {
                Ok(cd) => self.on_payload(ci, cd.data, now),
                Err(_) => self.counters.foreign += 1,
            },
            Some(0x00..=0x3F) => {
                let Ok(msg) = Message::parse(d) else {
                    self.counters.foreign += 1;
                    return;
                };
                match (msg.class(), msg.method()) {
                    (Class::Indication, Method::DATA) => match msg.get::<Data>() {
                        Some(Ok(data)) => self.on_payload(ci, data.0, now),
                        _ => self.counters.foreign += 1,
                    },
                    (Class::SuccessResponse | Class::ErrorResponse, Method::BINDING)
                        if self.cfg.mode == Mode::Binding =>
                    {
                        self.on_binding_response(ci, &msg, now);
                    }
                    (Class::SuccessResponse | Class::ErrorResponse, _) => {
                        self.on_control_response(ci, &msg, now)
                    }
                    _ => self.counters.foreign += 1,
                }
            }
            _ => self.counters.foreign += 1,
        }
        let _ = phase;
    }

    fn on_payload(&mut self, ci: usize, data: &[u8], now: u64) {
        let Some(stamp) = payload::read(data) else {
            self.counters.foreign += 1;
            return;
        };
        let expected = match self.cfg.mode {
            Mode::Pair => self.partner(ci),
            _ => ci,
        };
        let local = stamp.flow.wrapping_sub(self.flow_base()) as usize;
        if local != expected {
            self.counters.foreign += 1;
            return;
        }
        self.on_stamp(local, &stamp, now);
    }

    fn on_stamp(&mut self, flow: usize, stamp: &Stamp, now: u64) {
        let Some(f) = self.flows.get_mut(flow) else {
            self.counters.foreign += 1;
            return;
        };
        if stamp.seq >= f.next_seq {
            // Never sent: not ours after all.
            self.counters.foreign += 1;
            return;
        }
        match f.rx.record(stamp.seq, stamp.measured) {
            Some(Seen::First) => {
                f.last_progress_ns = now;
                self.counters.received_all += 1;
                self.timeline.add_received(now, 1);
                if stamp.measured {
                    self.counters.received += 1;
                    let _ = self
                        .latency
                        .record(now.saturating_sub(stamp.sent_ns).max(1));
                }
            }
            Some(Seen::Duplicate) => {}
            None => self.counters.foreign += 1,
        }
    }

    fn on_binding_response(&mut self, ci: usize, msg: &Message<'_>, now: u64) {
        let Some(stamp) = payload::read_binding_tid(&msg.transaction_id(), now) else {
            self.counters.foreign += 1;
            return;
        };
        let local = stamp.flow.wrapping_sub(self.flow_base() & 0x00ff_ffff) as usize;
        if local != ci {
            self.counters.foreign += 1;
            return;
        }
        if msg.class() == Class::ErrorResponse {
            let code = msg
                .get::<ErrorCodeAttr>()
                .and_then(|r| r.ok())
                .map_or(0, |e| e.code.0);
            *self.alloc.errors.entry(code).or_default() += 1;
        }
        // Only the low 32 bits of seq travel; restore the rest from what was sent.
        let Some(f) = self.flows.get(local) else {
            return;
        };
        let high = f.next_seq & !0xffff_ffff;
        let mut seq = high | stamp.seq;
        if seq >= f.next_seq {
            seq = seq.wrapping_sub(1 << 32);
        }
        let full = Stamp { seq, ..stamp };
        self.on_stamp(local, &full, now);
    }

    // ---------------------------------------------------------------- the end

    /// Refresh(0) for every allocation still held, pipelined, bounded by a second.
    fn release_all(&mut self) -> u64 {
        let start = self.shared.clock.now_ns();
        let mut asked = 0u64;
        for ci in 0..self.clients.len() {
            let Some(c) = self.clients.get_mut(ci) else {
                continue;
            };
            if !c.allocated
                || c.key.is_none()
                    && !matches!(self.cfg.credentials, crate::config::Credentials::None)
            {
                continue;
            }
            c.tx = None;
            c.state = State::Done;
            self.begin(ci, Step::Release, start);
            asked += 1;
        }
        if asked == 0 {
            return 0;
        }
        let mut tokens = Vec::new();
        loop {
            let now = self.shared.clock.now_ns();
            let pending = self.clients.iter().filter(|c| c.tx.is_some()).count();
            if pending == 0 || now.saturating_sub(start) > RELEASE_NS {
                break;
            }
            self.scan_timeouts(now, PHASE_STOP);
            if self.epoll.wait(5_000_000, &mut tokens).is_err() {
                break;
            }
            for &t in tokens.clone().iter() {
                if t >= PEER_TOKEN {
                    self.echo(usize::try_from(t - PEER_TOKEN).unwrap_or(usize::MAX));
                } else {
                    self.receive(usize::try_from(t).unwrap_or(usize::MAX), now, PHASE_STOP);
                }
            }
        }
        asked - self.clients.iter().filter(|c| c.allocated).count() as u64
    }
}
