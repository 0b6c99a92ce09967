//! TURN over TCP and TLS (RFC 8656 §3.1): one worker's stream listeners and
//! connections. The worker that accepts a connection owns it and its
//! allocation, exactly as for UDP.
//!
//! Received bytes are cut into STUN messages and ChannelData frames (RFC 8656
//! §12.4: self-delimiting by their length, ChannelData padded to 4 bytes) and
//! handed to the worker one frame at a time. Whole frames are handed straight
//! out of the read buffer; only a frame split across reads is copied into the
//! connection's own buffer. Outgoing frames are appended to the connection's
//! output and written once per loop turn.
//!
//! What a public server needs against abuse: a cap on connections overall and
//! per source address, deadlines for the TLS handshake and for the first
//! complete message, an idle timeout for connections without an allocation,
//! and a cap on bytes waiting to be written (frames beyond it are dropped,
//! whole, as a full UDP socket buffer would).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::stun::channel_data::stream_frame_len;
use crate::stun::ChannelRange;
use crate::tls::TlsHandle;
use crate::turn::{ClientTransport, ClientTuple};

use super::poller::{Interest, Poller, Readiness};

mod peers;
pub use peers::{PeerEvent, StreamHandler};
use peers::{PeerSock, PEER, RELAY_LISTENER};

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
    limits: StreamLimits,
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

    fn release(&self, ip: IpAddr) {
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

/// One listening socket of a worker.
#[derive(Debug)]
pub struct StreamListener {
    pub socket: TcpListener,
    /// TLS on this port (coturn's `tls-listening-port`), else plain TCP.
    pub tls: bool,
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed it (or reset it).
    Peer,
    /// A handshake, first-message or idle deadline passed.
    Deadline,
    /// Bytes that are neither STUN nor ChannelData, or a failed TLS handshake.
    Malformed,
    /// A socket error.
    Error,
}

/// What the stream side counted (monotonic, except `open`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StreamCounters {
    pub open: u64,
    pub accepted: u64,
    /// Refused by the connection limits.
    pub refused: u64,
    pub closed_by_peer: u64,
    pub closed_deadline: u64,
    pub closed_malformed: u64,
    pub closed_error: u64,
    /// Frames dropped because the connection's output was full.
    pub dropped_frames: u64,
    pub frames_in: u64,
    pub frames_out: u64,
    /// RFC 6062: bytes passed between peers and data connections.
    pub piped_bytes: u64,
    /// RFC 6062 data connections joined with splice(2) (plain TCP) rather than copied.
    pub spliced_pipes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    FirstMessage,
    Open,
}

struct Conn {
    socket: TcpStream,
    tuple: ClientTuple,
    tls: Option<Box<rustls::ServerConnection>>,
    /// The start of a frame that arrived split across reads.
    partial: Vec<u8>,
    /// Bytes for the socket (TLS records on a TLS connection).
    out: Vec<u8>,
    /// How much of `out` is written already.
    out_sent: usize,
    phase: Phase,
    accepted: Instant,
    last_rx: Instant,
    /// What the poller watches this socket for.
    interest: Interest,
    queued_for_flush: bool,
    /// RFC 6062: a data connection joined to this peer connection; its bytes
    /// are raw, not STUN.
    pipe: Option<u32>,
}

impl Conn {
    fn deadline(&self, limits: &StreamLimits) -> Instant {
        match self.phase {
            Phase::Handshake => self.accepted + limits.handshake_timeout,
            Phase::FirstMessage => self.accepted + limits.first_message_timeout,
            Phase::Open => self.last_rx + limits.idle_timeout,
        }
    }

    fn pending_out(&self) -> usize {
        self.out.len() - self.out_sent
    }

    /// Moves TLS records rustls has ready into `out`.
    fn drain_tls(&mut self) -> io::Result<()> {
        match self.tls.as_mut() {
            Some(tls) => drain_tls(tls, &mut self.out),
            None => Ok(()),
        }
    }

    /// Reads what the socket has into `scratch` as plaintext: `Ok(0)` when
    /// nothing more is there now.
    fn read_plain(&mut self, scratch: &mut [u8]) -> Result<usize, CloseReason> {
        let Conn {
            socket,
            tls,
            out,
            out_sent,
            phase,
            ..
        } = self;
        let Some(tls) = tls.as_mut() else {
            return loop {
                match socket.read(scratch) {
                    Ok(0) => break Err(CloseReason::Peer),
                    Ok(n) => break Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(0),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break Err(CloseReason::Peer),
                }
            };
        };
        loop {
            match tls.reader().read(scratch) {
                Ok(0) => return Err(CloseReason::Peer), // close_notify
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Err(CloseReason::Peer),
            }
            match tls.read_tls(socket) {
                Ok(0) => return Err(CloseReason::Peer),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(CloseReason::Peer),
            }
            if tls.process_new_packets().is_err() {
                // Send the alert rustls prepared, then give up on the client.
                let _ = drain_tls(tls, out);
                let _ = socket.write(out.get(*out_sent..).unwrap_or(&[]));
                return Err(CloseReason::Malformed);
            }
            if *phase == Phase::Handshake && !tls.is_handshaking() {
                *phase = Phase::FirstMessage;
            }
            // Handshake messages (or a key update) to answer.
            if tls.wants_write() {
                drain_tls(tls, out).map_err(|_| CloseReason::Error)?;
                flush_out(socket, out, out_sent).map_err(|_| CloseReason::Error)?;
            }
        }
    }

    fn flush_out(&mut self) -> io::Result<()> {
        flush_out(&mut self.socket, &mut self.out, &mut self.out_sent)
    }
}

pub(super) fn drain_tls(tls: &mut rustls::ServerConnection, out: &mut Vec<u8>) -> io::Result<()> {
    while tls.wants_write() {
        tls.write_tls(out)?;
    }
    Ok(())
}

/// Writes as much of `out[*sent..]` as the socket takes.
pub(super) fn flush_out(
    socket: &mut TcpStream,
    out: &mut Vec<u8>,
    sent: &mut usize,
) -> io::Result<()> {
    while let Some(rest) = out.get(*sent..).filter(|r| !r.is_empty()) {
        match socket.write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => *sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if *sent >= out.len() {
        out.clear();
        *sent = 0;
    } else if *sent > out.len() / 2 {
        out.drain(..*sent);
        *sent = 0;
    }
    Ok(())
}

/// Where a frame came from and what it is.
type FrameHandler<'a> = dyn FnMut(ClientTuple, &[u8]) + 'a;

/// Token bit that marks a listener (connections use their id).
const LISTENER: u64 = 1 << 63;
/// Connections accepted per listener per loop turn, so a flood of connects
/// cannot starve the datagrams.
const ACCEPT_BUDGET: usize = 64;
/// Reads per connection per loop turn, for the same reason.
pub(super) const READ_BUDGET: usize = 8;
const SCRATCH_LEN: usize = 64 * 1024;
/// How long accepting pauses after it failed for want of descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(200);
/// How often deadlines are checked.
const SWEEP_EVERY: Duration = Duration::from_millis(100);
/// Room for TLS record overhead when checking `max_buffered`.
const TLS_OVERHEAD: usize = 64;

pub struct StreamSet {
    poller: Poller,
    listeners: Vec<StreamListener>,
    conns: HashMap<u64, Conn>,
    next_id: u64,
    shared: Arc<StreamShared>,
    tls: Option<TlsHandle>,
    channel_range: ChannelRange,
    ready: Vec<Readiness>,
    flush_list: Vec<u64>,
    closed: Vec<ClientTuple>,
    scratch: Vec<u8>,
    next_sweep: Instant,
    counters: StreamCounters,
    /// RFC 6062: TCP relay listeners by relayed address, and their tokens.
    relay_listeners: HashMap<SocketAddr, (TcpListener, u64)>,
    relay_tokens: HashMap<u64, SocketAddr>,
    next_relay_token: u64,
    /// RFC 6062: peer connections by CONNECTION-ID.
    peers: HashMap<u32, PeerSock>,
    peer_events: Vec<PeerEvent>,
    /// Accepting failed (no fds): listeners are silent until then.
    accepts_paused_until: Option<Instant>,
    /// The last poll found work; budgets may have left some behind.
    active: bool,
}

impl StreamSet {
    pub fn new(
        listeners: Vec<StreamListener>,
        shared: Arc<StreamShared>,
        tls: Option<TlsHandle>,
        channel_range: ChannelRange,
    ) -> io::Result<Self> {
        let poller = Poller::new(256)?;
        for (i, l) in listeners.iter().enumerate() {
            poller.add(l.socket.as_raw_fd(), LISTENER | i as u64, Interest::Read)?;
        }
        Ok(Self {
            poller,
            listeners,
            conns: HashMap::new(),
            next_id: 0,
            shared,
            tls,
            channel_range,
            ready: Vec::with_capacity(256),
            flush_list: Vec::new(),
            closed: Vec::new(),
            scratch: vec![0; SCRATCH_LEN],
            next_sweep: Instant::now(),
            counters: StreamCounters::default(),
            relay_listeners: HashMap::new(),
            relay_tokens: HashMap::new(),
            next_relay_token: 0,
            peers: HashMap::new(),
            peer_events: Vec::new(),
            accepts_paused_until: None,
            active: false,
        })
    }

    /// The fd the worker's backend waits on (`Backend::watch`).
    pub fn poll_fd(&self) -> std::os::fd::RawFd {
        self.poller.fd()
    }

    pub fn counters(&self) -> &StreamCounters {
        &self.counters
    }

    /// Whether the last poll found work. io_uring's multishot poll on the
    /// stream set wakes the worker on new readiness only, so what a read or
    /// accept budget left for later is picked up by polling again at once.
    pub fn was_active(&self) -> bool {
        self.active
    }

    /// Accepts, reads and hands every complete frame to the handler; moves
    /// the bytes of RFC 6062 pipes.
    pub fn poll(&mut self, now: Instant, handler: &mut dyn StreamHandler) -> io::Result<()> {
        let mut ready = std::mem::take(&mut self.ready);
        self.poller.ready_now(&mut ready)?;
        self.active = !ready.is_empty();
        for r in &ready {
            if r.token & LISTENER != 0 {
                self.accept((r.token & !LISTENER) as usize, now);
                continue;
            }
            if r.token & RELAY_LISTENER != 0 {
                self.accept_peers(r.token, handler);
                continue;
            }
            if r.token & PEER != 0 {
                let connection = (r.token & u64::from(u32::MAX)) as u32;
                self.peer_ready(connection, r.readable, r.writable, r.closed);
                continue;
            }
            let id = r.token;
            if r.writable {
                if let Some(conn) = self.conns.get_mut(&id) {
                    if conn.flush_out().is_err() {
                        self.close(id, CloseReason::Error);
                        continue;
                    }
                    match conn.pipe {
                        Some(connection) => self.drain_down(connection),
                        None => self.update_interest(id),
                    }
                }
            }
            // Hung up or failed, nothing to read: a paused connection (registered
            // for errors only) would otherwise be woken by it every turn.
            if r.closed && !r.readable {
                self.close(id, CloseReason::Peer);
                continue;
            }
            if r.readable || r.closed {
                let pipe = self.conns.get(&id).and_then(|c| c.pipe);
                let result = match pipe {
                    Some(connection) => {
                        let mut scratch = std::mem::take(&mut self.scratch);
                        let result = self.pipe_to_peer(id, connection, &mut scratch);
                        self.scratch = scratch;
                        self.refresh_pipe(connection);
                        result
                    }
                    None => self.read(id, now, &mut |t, f| handler.frame(t, f)),
                };
                if let Err(reason) = result {
                    self.close(id, reason);
                }
            }
        }
        self.ready = ready;
        Ok(())
    }

    fn accept(&mut self, index: usize, now: Instant) {
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

    fn resume_accepts(&mut self) {
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

    fn read(
        &mut self,
        id: u64,
        now: Instant,
        on_frame: &mut FrameHandler<'_>,
    ) -> Result<(), CloseReason> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = self.read_with(id, now, &mut scratch, on_frame);
        self.scratch = scratch;
        result
    }

    fn read_with(
        &mut self,
        id: u64,
        now: Instant,
        scratch: &mut [u8],
        on_frame: &mut FrameHandler<'_>,
    ) -> Result<(), CloseReason> {
        let range = self.channel_range;
        let Some(conn) = self.conns.get_mut(&id) else {
            return Ok(());
        };
        let mut frames = 0u64;
        let mut result = Ok(());
        for _ in 0..READ_BUDGET {
            let n = match conn.read_plain(scratch) {
                Ok(0) => break,
                Ok(n) => n,
                Err(reason) => {
                    result = Err(reason);
                    break;
                }
            };
            conn.last_rx = now;
            let data = scratch.get(..n).unwrap_or(&[]);
            match deliver(conn, data, range, on_frame) {
                Ok(k) => frames += k,
                Err(reason) => {
                    result = Err(reason);
                    break;
                }
            }
            if n < scratch.len() && conn.tls.is_none() {
                break; // the socket is drained
            }
        }
        if conn.pending_out() > 0 && !conn.queued_for_flush {
            conn.queued_for_flush = true;
            self.flush_list.push(id);
        }
        self.counters.frames_in += frames;
        result
    }

    /// Queues a frame for the client of connection `id`; `false` if it was
    /// dropped (no such connection, or its output is full).
    pub fn send(&mut self, id: u64, frame: &[u8]) -> bool {
        let Some(conn) = self.conns.get_mut(&id) else {
            return false;
        };
        let overhead = if conn.tls.is_some() { TLS_OVERHEAD } else { 0 };
        if conn.pending_out() + frame.len() + overhead > self.shared.limits.max_buffered {
            self.counters.dropped_frames += 1;
            return false;
        }
        match conn.tls.as_mut() {
            Some(tls) => {
                if tls.writer().write_all(frame).is_err() || conn.drain_tls().is_err() {
                    self.counters.dropped_frames += 1;
                    return false;
                }
            }
            None => conn.out.extend_from_slice(frame),
        }
        if !conn.queued_for_flush {
            conn.queued_for_flush = true;
            self.flush_list.push(id);
        }
        self.counters.frames_out += 1;
        true
    }

    /// Writes what was queued this loop turn.
    pub fn flush(&mut self) {
        let mut list = std::mem::take(&mut self.flush_list);
        for id in list.drain(..) {
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            conn.queued_for_flush = false;
            if conn.flush_out().is_err() {
                self.close(id, CloseReason::Error);
                continue;
            }
            self.update_interest(id);
        }
        self.flush_list = list;
    }

    /// Watches for writability only while output is waiting.
    fn update_interest(&mut self, id: u64) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if let Some(connection) = conn.pipe {
            self.refresh_pipe(connection);
            return;
        }
        let interest = Interest::of(true, conn.pending_out() > 0);
        if interest != conn.interest
            && self
                .poller
                .modify(conn.socket.as_raw_fd(), id, interest)
                .is_ok()
        {
            conn.interest = interest;
        }
    }

    /// Closes connections whose deadline passed. A connection past its idle
    /// time stays while `has_allocation` says its client still has one: the
    /// allocation's lifetime governs it then.
    pub fn sweep(&mut self, now: Instant, has_allocation: &dyn Fn(&ClientTuple) -> bool) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP_EVERY;
        self.sweep_peers(now);
        if self.accepts_paused_until.is_some_and(|t| now >= t) {
            self.resume_accepts();
        }
        let limits = self.shared.limits;
        let expired: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                // A data connection (RFC 6062) lives as long as its peer connection.
                c.pipe.is_none()
                    && now >= c.deadline(&limits)
                    && !(c.phase == Phase::Open && has_allocation(&c.tuple))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.close(id, CloseReason::Deadline);
        }
    }

    fn close(&mut self, id: u64, reason: CloseReason) {
        let Some(conn) = self.conns.remove(&id) else {
            return;
        };
        let _ = self.poller.delete(conn.socket.as_raw_fd());
        self.shared.release(conn.tuple.client.ip());
        if let Some(connection) = conn.pipe {
            if let Some(peer) = self.peers.remove(&connection) {
                let _ = self.poller.delete(peer.sock.as_raw_fd());
            }
            self.peer_events.push(PeerEvent::Closed { connection });
        }
        match reason {
            CloseReason::Peer => self.counters.closed_by_peer += 1,
            CloseReason::Deadline => self.counters.closed_deadline += 1,
            CloseReason::Malformed => self.counters.closed_malformed += 1,
            CloseReason::Error => self.counters.closed_error += 1,
        }
        self.counters.open = self.conns.len() as u64;
        tracing::debug!(client = %conn.tuple.client, ?reason, "stream connection closed");
        self.closed.push(conn.tuple);
    }

    /// Connections closed since the last call: their allocations go now.
    pub fn take_closed(&mut self) -> std::vec::Drain<'_, ClientTuple> {
        self.closed.drain(..)
    }

    /// Closes every connection (shutdown).
    pub fn close_all(&mut self) {
        let peers: Vec<u32> = self.peers.keys().copied().collect();
        for connection in peers {
            self.close_peer(connection);
        }
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            self.close(id, CloseReason::Peer);
        }
    }
}

impl Drop for StreamSet {
    fn drop(&mut self) {
        for conn in self.conns.values() {
            self.shared.release(conn.tuple.client.ip());
        }
    }
}

/// A client connection on its way to another worker (RFC 6062: a
/// ConnectionBind for a peer connection that worker holds).
pub struct DetachedConn(Box<Conn>);

impl StreamSet {
    /// Takes connection `id` out of this set, socket, TLS state and all.
    pub fn detach(&mut self, id: u64) -> Option<DetachedConn> {
        let conn = self.conns.remove(&id)?;
        let _ = self.poller.delete(conn.socket.as_raw_fd());
        self.counters.open = self.conns.len() as u64;
        Some(DetachedConn(Box::new(conn)))
    }

    /// Drops a detached connection that could not be handed over (the other
    /// worker's queue was full): it closes, and its admission counts go.
    pub fn discard(&mut self, conn: DetachedConn) {
        self.shared.release(conn.0.tuple.client.ip());
        self.counters.closed_error += 1;
    }

    /// Takes over a connection another worker detached; its tuple (with its
    /// id here) is returned. Its admission counts travel with it.
    pub fn adopt(&mut self, conn: DetachedConn) -> io::Result<ClientTuple> {
        let mut conn = conn.0;
        let id = self.next_id;
        self.next_id += 1;
        conn.tuple.transport = ClientTransport::Stream(id);
        conn.queued_for_flush = false;
        conn.interest = Interest::of(true, conn.pending_out() > 0);
        if let Err(e) = self.poller.add(conn.socket.as_raw_fd(), id, conn.interest) {
            self.shared.release(conn.tuple.client.ip());
            return Err(e);
        }
        let tuple = conn.tuple;
        self.conns.insert(id, *conn);
        self.counters.open = self.conns.len() as u64;
        Ok(tuple)
    }
}

/// Hands every complete frame in `data` (after any partial frame kept from
/// the last read) to `on_frame`; keeps an incomplete tail. Returns the count.
fn deliver(
    conn: &mut Conn,
    data: &[u8],
    range: ChannelRange,
    on_frame: &mut FrameHandler<'_>,
) -> Result<u64, CloseReason> {
    // The first message on a TURN connection is a STUN request: anything else
    // (an HTTP request, a stray TLS ClientHello on the TCP port) is cut off
    // at once instead of waiting out the deadline for a 64 KiB "frame".
    if conn.phase == Phase::FirstMessage {
        let first = conn.partial.first().or(data.first());
        if first.is_some_and(|b| *b > 3) {
            return Err(CloseReason::Malformed);
        }
    }
    let frames = if conn.partial.is_empty() {
        let (frames, used) = split_frames(data, range, conn.tuple, on_frame)?;
        conn.partial
            .extend_from_slice(data.get(used..).unwrap_or(&[]));
        frames
    } else {
        let mut partial = std::mem::take(&mut conn.partial);
        partial.extend_from_slice(data);
        let result = split_frames(&partial, range, conn.tuple, on_frame);
        if let Ok((_, used)) = result {
            partial.drain(..used);
        }
        conn.partial = partial;
        result?.0
    };
    if frames > 0 && conn.phase == Phase::FirstMessage {
        conn.phase = Phase::Open;
    }
    Ok(frames)
}

/// Calls `on_frame` for each complete frame at the front of `data`; returns
/// how many and the bytes they used.
fn split_frames(
    data: &[u8],
    range: ChannelRange,
    tuple: ClientTuple,
    on_frame: &mut FrameHandler<'_>,
) -> Result<(u64, usize), CloseReason> {
    let mut used = 0;
    let mut frames = 0;
    while let Some(rest) = data.get(used..) {
        let Some(len) = stream_frame_len(rest, range) else {
            break;
        };
        let len = len.map_err(|_| CloseReason::Malformed)?;
        let Some(frame) = rest.get(..len) else {
            break;
        };
        on_frame(tuple, frame);
        used += len;
        frames += 1;
    }
    Ok((frames, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple() -> ClientTuple {
        ClientTuple {
            client: "127.0.0.1:5000".parse().expect("addr"),
            server: "127.0.0.1:3478".parse().expect("addr"),
            transport: ClientTransport::Stream(7),
        }
    }

    fn binding_request() -> Vec<u8> {
        let mut m = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
        m.extend_from_slice(&[7; 12]);
        m
    }

    fn collect(data: &[&[u8]]) -> Result<Vec<Vec<u8>>, CloseReason> {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let now = Instant::now();
        let mut conn = Conn {
            socket: client,
            tuple: tuple(),
            tls: None,
            partial: Vec::new(),
            out: Vec::new(),
            out_sent: 0,
            phase: Phase::FirstMessage,
            accepted: now,
            last_rx: now,
            interest: Interest::Read,
            queued_for_flush: false,
            pipe: None,
        };
        let mut frames = Vec::new();
        for chunk in data {
            deliver(&mut conn, chunk, ChannelRange::Rfc5766, &mut |t, f| {
                assert_eq!(t, tuple());
                frames.push(f.to_vec());
            })?;
        }
        Ok(frames)
    }

    #[test]
    fn rfc8656_12_4_frames_split_across_reads_are_joined() {
        let m = binding_request();
        let frames = collect(&[&m[..3], &m[3..15], &m[15..]]).expect("frames");
        assert_eq!(frames, vec![m]);
    }

    #[test]
    fn rfc8656_12_5_channel_data_over_streams_is_padded_to_four() {
        // 5 bytes of data: the frame is 4 + 5 + 3 padding bytes.
        let frame = [0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0];
        let m = binding_request();
        let mut both = m.clone();
        both.extend_from_slice(&frame);
        let frames = collect(&[&both[..30], &both[30..]]).expect("frames");
        assert_eq!(frames, vec![m, frame.to_vec()]);
    }

    #[test]
    fn several_frames_in_one_read_each_arrive() {
        let m = binding_request();
        let mut three = m.clone();
        three.extend_from_slice(&m);
        three.extend_from_slice(&m);
        assert_eq!(collect(&[&three]).expect("frames").len(), 3);
    }

    #[test]
    fn a_first_message_that_is_not_stun_closes_the_connection() {
        assert_eq!(
            collect(&[b"GET / HTTP/1.1\r\n\r\n"]),
            Err(CloseReason::Malformed)
        );
        // A TLS ClientHello on the plain TCP port.
        assert_eq!(
            collect(&[&[0x16, 0x03, 0x01, 0x00, 0xa5]]),
            Err(CloseReason::Malformed)
        );
    }

    #[test]
    fn bytes_that_are_neither_stun_nor_channel_data_close_the_connection() {
        let mut stream = binding_request();
        stream.extend_from_slice(&[0xff; 8]);
        assert_eq!(collect(&[&stream]), Err(CloseReason::Malformed));
    }

    fn arbitrary_frame() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        prop_oneof![
            // A STUN message with a body of whole 4-byte words.
            (0u16..64, any::<[u8; 12]>()).prop_map(|(words, tid)| {
                let len = words * 4;
                let mut m = vec![0x00, 0x01];
                m.extend_from_slice(&len.to_be_bytes());
                m.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
                m.extend_from_slice(&tid);
                m.resize(20 + usize::from(len), 0xAB);
                m
            }),
            // ChannelData of any length, padded to 4 as over a stream.
            (
                0x4000u16..0x4FFF,
                proptest::collection::vec(any::<u8>(), 0..300)
            )
                .prop_map(|(channel, data)| {
                    let mut m = channel.to_be_bytes().to_vec();
                    m.extend_from_slice(&(data.len() as u16).to_be_bytes());
                    m.extend_from_slice(&data);
                    while m.len() % 4 != 0 {
                        m.push(0);
                    }
                    m
                }),
        ]
    }

    proptest::proptest! {
        /// RFC 8656 §12.4: however TCP cuts the byte stream into reads, the
        /// same frames come out, in order, each whole.
        #[test]
        fn rfc8656_12_4_any_split_of_the_stream_gives_the_same_frames(
            mut frames in proptest::collection::vec(arbitrary_frame(), 1..12),
            cuts in proptest::collection::vec(0usize..4000, 0..20),
        ) {
            // The first message on a connection is STUN.
            frames.insert(0, binding_request());
            let stream: Vec<u8> = frames.concat();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % stream.len()).collect();
            cuts.push(0);
            cuts.push(stream.len());
            cuts.sort_unstable();
            cuts.dedup();
            let chunks: Vec<&[u8]> = cuts.windows(2).map(|w| &stream[w[0]..w[1]]).collect();
            let got = collect(&chunks).expect("valid frames");
            proptest::prop_assert_eq!(got, frames);
        }
    }

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
