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
//!
//! Here: the `StreamSet` a worker drives (poll, read, send, flush, deadline
//! sweep, close, hand-off to another worker). `accept`: the shared
//! connection limits and accepting; `conn`: one connection, its TLS and its
//! output; `framing`: cutting bytes into frames; `peers`: RFC 6062.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::stun::ChannelRange;
use crate::tls::TlsHandle;
use crate::turn::{ClientTransport, ClientTuple};

use super::poller::{Interest, Poller, Readiness};

mod accept;
mod conn;
mod framing;
mod peers;
pub use accept::{StreamLimits, StreamShared};
use conn::{drain_tls, flush_out, Conn, Phase};
use framing::{deliver, FrameHandler};
pub use peers::{PeerEvent, StreamHandler};
use peers::{PeerSock, PEER, RELAY_LISTENER};

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
