//! One worker thread: its share of the clients (each its own UDP socket
//! connected to the server, or its own TCP/TLS connection), its own echo
//! peers (UDP), one epoll loop. Threads share nothing but the phase and a few
//! progress counters.
//!
//! Every loop here is bounded: the main thread moves the phase on by the
//! clock, every transaction gives up after a fixed number of tries, and the
//! final release waits at most a second.
//!
//! This file holds the shared types, the worker's state and its loop (`run`,
//! the progress it publishes, the final release); `conn` a client's socket or
//! stream and how its data messages are composed, `control` the TURN control
//! transactions, `data` pacing, sending, echoing and receiving.

mod conn;
mod control;
mod data;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use hdrhistogram::Histogram;
use ringturn::stun::TransactionId;

use crate::config::{LoadConfig, Mode, Shape};
use crate::net::{bind_udp, Epoll, RecvBatch, SendBatch};
use crate::payload::Clock;
use crate::stream::TlsClient;
use crate::track::{new_histogram, Counters, FlowRx, Timeline};
use conn::Conn;

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
