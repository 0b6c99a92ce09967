//! RFC 6062 on the I/O side: TCP relay listeners, connections to and from
//! peers, and the pipe between a peer connection and the client's data
//! connection once ConnectionBind has joined them.
//!
//! A pipe moves bytes with backpressure, never buffering without bound: while
//! the peer has not taken what the client sent, the client's connection is
//! not read; while the client has not taken what the peer sent (up to
//! `PIPE_LIMIT`), the peer's is not read. Over plain TCP the bytes never
//! enter user space: splice(2) moves them socket → kernel pipe → socket. A
//! TLS data connection must be decrypted and encrypted, so it is copied
//! (one read, one write).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::{CloseReason, Interest, StreamSet};
use crate::io::socket::bind_stream_listener;
use crate::io::splice::KernelPipe;
use crate::turn::ClientTuple;

/// Token bits: a TCP relay listener, a peer connection (low 32 bits: its number).
pub(super) const RELAY_LISTENER: u64 = 1 << 62;
pub(super) const PEER: u64 = 1 << 61;
/// How long an outgoing connection to a peer may take (RFC 6062 §5.2 leaves
/// it to the server; then 447).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes waiting in either direction of a pipe before its source is paused.
pub(super) const PIPE_LIMIT: usize = 256 * 1024;
/// Peer connections accepted per relay listener per loop turn.
const PEER_ACCEPT_BUDGET: usize = 16;

pub(super) struct PeerSock {
    pub sock: TcpStream,
    /// The connect deadline, while an outgoing connection is in progress.
    pub connecting: Option<Instant>,
    /// The client's data connection, once bound.
    pub data: Option<u64>,
    /// Bytes from the client not yet taken by the peer.
    pub up: Vec<u8>,
    pub up_sent: usize,
    pub interest: Interest,
    /// Kernel pipes (client → peer, peer → client) when the data connection
    /// is plain TCP.
    pub splice: Option<(KernelPipe, KernelPipe)>,
}

impl PeerSock {
    fn pending_up(&self) -> usize {
        self.up.len() - self.up_sent + self.splice.as_ref().map_or(0, |(up, _)| up.held())
    }

    fn held_down(&self) -> usize {
        self.splice.as_ref().map_or(0, |(_, down)| down.held())
    }

    /// Writes what the peer will take of `up`.
    fn flush_up(&mut self) -> io::Result<()> {
        super::flush_out(&mut self.sock, &mut self.up, &mut self.up_sent)
    }
}

/// What happened to peer connections, for the worker to tell the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerEvent {
    /// An outgoing connection (`ConnectPeer`) succeeded or failed.
    Connected {
        connection: u32,
        result: Result<(), io::ErrorKind>,
    },
    /// A peer connection ended (either side hung up, or an error).
    Closed { connection: u32 },
}

/// What the stream side asks of the worker while it polls.
pub trait StreamHandler {
    /// A STUN message or ChannelData frame from a stream client.
    fn frame(&mut self, tuple: ClientTuple, frame: &[u8]);
    /// A peer connected to a TCP relayed address: its connection number, or
    /// `None` to refuse it (RFC 6062 §5.3).
    fn peer_accepted(&mut self, relay: SocketAddr, peer: SocketAddr) -> Option<u32>;
}

/// Starts a non-blocking connection from `relay` (shared with its listener
/// through SO_REUSEPORT) to `peer`.
fn start_connect(relay: SocketAddr, peer: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(
        Domain::for_address(relay),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if relay.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&relay.into())?;
    match socket.connect(&peer.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream: TcpStream = socket.into();
    stream.set_nodelay(true)?;
    Ok(stream)
}

impl StreamSet {
    /// RFC 6062: listens for peers on a TCP allocation's relayed address.
    pub fn open_tcp_relay(&mut self, relay: SocketAddr) -> io::Result<()> {
        let listener = bind_stream_listener(relay, 128)?;
        let token = RELAY_LISTENER | self.next_relay_token;
        self.next_relay_token += 1;
        self.poller
            .add(listener.as_raw_fd(), token, Interest::Read)?;
        self.relay_tokens.insert(token, relay);
        self.relay_listeners.insert(relay, (listener, token));
        Ok(())
    }

    /// Closes a TCP relay listener; `false` if there was none at `relay`.
    pub fn close_tcp_relay(&mut self, relay: SocketAddr) -> bool {
        let Some((listener, token)) = self.relay_listeners.remove(&relay) else {
            return false;
        };
        let _ = self.poller.delete(listener.as_raw_fd());
        self.relay_tokens.remove(&token);
        true
    }

    /// RFC 6062 §5.2: connects to a peer from the relayed address; the result
    /// comes back as `PeerEvent::Connected`.
    pub fn connect_peer(
        &mut self,
        now: Instant,
        connection: u32,
        relay: SocketAddr,
        peer: SocketAddr,
    ) {
        let started = start_connect(relay, peer).and_then(|sock| {
            self.poller.add(
                sock.as_raw_fd(),
                PEER | u64::from(connection),
                Interest::Write,
            )?;
            Ok(sock)
        });
        match started {
            Ok(sock) => {
                self.peers.insert(
                    connection,
                    PeerSock {
                        sock,
                        connecting: Some(now + CONNECT_TIMEOUT),
                        data: None,
                        up: Vec::new(),
                        up_sent: 0,
                        interest: Interest::Write,
                        splice: None,
                    },
                );
            }
            Err(e) => self.peer_events.push(PeerEvent::Connected {
                connection,
                result: Err(e.kind()),
            }),
        }
    }

    /// RFC 6062 §5.4: stream connection `data` now carries peer connection
    /// `connection`'s bytes. Bytes the client sent after its ConnectionBind
    /// go to the peer first.
    pub fn bind_data(&mut self, connection: u32, data: u64) {
        let (Some(peer), Some(conn)) = (self.peers.get_mut(&connection), self.conns.get_mut(&data))
        else {
            self.close_peer(connection);
            return;
        };
        conn.pipe = Some(connection);
        peer.data = Some(data);
        // Plain TCP: splice. Without pipes (fd limit), copy instead.
        if conn.tls.is_none() {
            peer.splice = KernelPipe::new()
                .and_then(|up| Ok((up, KernelPipe::new()?)))
                .ok();
            if peer.splice.is_some() {
                self.counters.spliced_pipes += 1;
            }
        }
        let early = std::mem::take(&mut conn.partial);
        peer.up.extend_from_slice(&early);
        if peer.flush_up().is_err() {
            self.close_peer(connection);
            return;
        }
        self.refresh_pipe(connection);
    }

    /// Closes a peer connection and its data connection.
    pub fn close_peer(&mut self, connection: u32) {
        let Some(peer) = self.peers.remove(&connection) else {
            return;
        };
        let _ = self.poller.delete(peer.sock.as_raw_fd());
        if let Some(data) = peer.data {
            if let Some(conn) = self.conns.get_mut(&data) {
                conn.pipe = None;
                let _ = conn.flush_out();
            }
            self.close(data, CloseReason::Peer);
        }
    }

    /// Peer connections that connected, failed or closed since the last call.
    pub fn take_peer_events(&mut self) -> std::vec::Drain<'_, PeerEvent> {
        self.peer_events.drain(..)
    }

    pub(super) fn accept_peers(&mut self, token: u64, handler: &mut dyn StreamHandler) {
        let Some(relay) = self.relay_tokens.get(&token).copied() else {
            return;
        };
        for _ in 0..PEER_ACCEPT_BUDGET {
            let Some((listener, _)) = self.relay_listeners.get(&relay) else {
                return;
            };
            let (sock, from) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    // Out of fds: as for the clients' listeners.
                    self.pause_accepts(std::time::Instant::now());
                    return;
                }
            };
            // No permission, no allocation: refused by closing it (§5.3).
            let Some(connection) = handler.peer_accepted(relay, from) else {
                continue;
            };
            let registered = sock.set_nonblocking(true).and_then(|()| {
                // Not read until bound: the kernel holds what the peer sends.
                self.poller.add(
                    sock.as_raw_fd(),
                    PEER | u64::from(connection),
                    Interest::Silent,
                )
            });
            if registered.is_err() {
                self.peer_events.push(PeerEvent::Closed { connection });
                continue;
            }
            let _ = sock.set_nodelay(true);
            self.peers.insert(
                connection,
                PeerSock {
                    sock,
                    connecting: None,
                    data: None,
                    up: Vec::new(),
                    up_sent: 0,
                    interest: Interest::Silent,
                    splice: None,
                },
            );
        }
    }

    /// Readiness on a peer connection.
    pub(super) fn peer_ready(
        &mut self,
        connection: u32,
        readable: bool,
        writable: bool,
        closed: bool,
    ) {
        let Some(peer) = self.peers.get_mut(&connection) else {
            return;
        };
        if peer.connecting.is_some() {
            if !(writable || closed) {
                return;
            }
            peer.connecting = None;
            let result = match peer.sock.take_error() {
                Ok(None) if peer.sock.peer_addr().is_ok() => Ok(()),
                Ok(Some(e)) | Err(e) => Err(e.kind()),
                Ok(None) => Err(io::ErrorKind::ConnectionRefused),
            };
            self.peer_events
                .push(PeerEvent::Connected { connection, result });
            if result.is_err() {
                if let Some(peer) = self.peers.remove(&connection) {
                    let _ = self.poller.delete(peer.sock.as_raw_fd());
                }
                return;
            }
            self.refresh_pipe(connection);
            return;
        }
        // Hung up or failed with nothing left to read (a paused or not yet
        // bound peer is registered for errors only, and a level-triggered
        // hang-up would fire every turn): the pipe is over.
        if closed && !readable {
            self.end_pipe(connection);
            return;
        }
        if writable && peer_flush_up(peer).is_err() {
            self.end_pipe(connection);
            return;
        }
        if (readable || closed) && peer.data.is_some() {
            if let Err(()) = self.pipe_to_client(connection) {
                self.end_pipe(connection);
                return;
            }
        }
        self.refresh_pipe(connection);
    }

    /// Peer → client: reads the peer while the client's output has room.
    fn pipe_to_client(&mut self, connection: u32) -> Result<(), ()> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = self.pipe_to_client_with(connection, &mut scratch);
        self.scratch = scratch;
        result
    }

    fn pipe_to_client_with(&mut self, connection: u32, scratch: &mut [u8]) -> Result<(), ()> {
        let Some(peer) = self.peers.get_mut(&connection) else {
            return Err(());
        };
        let Some(conn) = peer.data.and_then(|d| self.conns.get_mut(&d)) else {
            return Err(());
        };
        if let Some((_, down)) = peer.splice.as_mut() {
            // What is in the connection's output (the ConnectionBind answer) first.
            conn.flush_out().map_err(|_| ())?;
            if conn.pending_out() > 0 {
                return Ok(());
            }
            for _ in 0..super::READ_BUDGET {
                down.drain_into(&conn.socket).map_err(|_| ())?;
                if down.held() > 0 {
                    break;
                }
                match down.fill_from(&peer.sock) {
                    Ok(0) => return Err(()),
                    Ok(n) => self.counters.piped_bytes += n as u64,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Err(()),
                }
            }
            return down.drain_into(&conn.socket).map_err(|_| ());
        }
        for _ in 0..super::READ_BUDGET {
            if conn.pending_out() >= PIPE_LIMIT {
                break;
            }
            let n = match peer.sock.read(scratch) {
                Ok(0) => {
                    let _ = conn.flush_out();
                    return Err(());
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(()),
            };
            let data = scratch.get(..n).unwrap_or(&[]);
            match conn.tls.as_mut() {
                Some(tls) => {
                    if tls.writer().write_all(data).is_err() {
                        return Err(());
                    }
                    super::drain_tls(tls, &mut conn.out).map_err(|_| ())?;
                }
                None => conn.out.extend_from_slice(data),
            }
            self.counters.piped_bytes += n as u64;
        }
        if conn.flush_out().is_err() {
            return Err(());
        }
        Ok(())
    }

    /// Client → peer for a data connection: reads the client while the peer
    /// has taken everything sent before.
    pub(super) fn pipe_to_peer(
        &mut self,
        data: u64,
        connection: u32,
        scratch: &mut [u8],
    ) -> Result<(), CloseReason> {
        let (Some(conn), Some(peer)) = (self.conns.get_mut(&data), self.peers.get_mut(&connection))
        else {
            return Err(CloseReason::Peer);
        };
        if peer.splice.is_some() {
            for _ in 0..super::READ_BUDGET {
                peer_flush_up(peer).map_err(|_| CloseReason::Error)?;
                if peer.pending_up() > 0 {
                    break;
                }
                let Some((up, _)) = peer.splice.as_mut() else {
                    break;
                };
                match up.fill_from(&conn.socket) {
                    Ok(0) => return Err(CloseReason::Peer),
                    Ok(n) => self.counters.piped_bytes += n as u64,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Err(CloseReason::Peer),
                }
            }
            return peer_flush_up(peer).map_err(|_| CloseReason::Error);
        }
        for _ in 0..super::READ_BUDGET {
            if peer.pending_up() > 0 {
                break;
            }
            let n = conn.read_plain(scratch)?;
            if n == 0 {
                break;
            }
            let bytes = scratch.get(..n).unwrap_or(&[]);
            let mut written = 0;
            while written < bytes.len() {
                match peer.sock.write(bytes.get(written..).unwrap_or(&[])) {
                    Ok(0) => return Err(CloseReason::Error),
                    Ok(k) => written += k,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Err(CloseReason::Peer),
                }
            }
            peer.up
                .extend_from_slice(bytes.get(written..).unwrap_or(&[]));
            self.counters.piped_bytes += n as u64;
        }
        Ok(())
    }

    /// The data connection can take more: what waits in the kernel pipe
    /// towards it goes now.
    pub(super) fn drain_down(&mut self, connection: u32) {
        let Some(peer) = self.peers.get_mut(&connection) else {
            return;
        };
        let Some(conn) = peer.data.and_then(|d| self.conns.get_mut(&d)) else {
            return;
        };
        if let Some((_, down)) = peer.splice.as_mut() {
            if down.drain_into(&conn.socket).is_err() {
                self.end_pipe(connection);
                return;
            }
        }
        self.refresh_pipe(connection);
    }

    /// Ends a pipe from the peer's side: the data connection closes too.
    fn end_pipe(&mut self, connection: u32) {
        self.close_peer(connection);
        self.peer_events.push(PeerEvent::Closed { connection });
    }

    /// Sets what both ends of a pipe (or a lone peer connection) wait for.
    pub(super) fn refresh_pipe(&mut self, connection: u32) {
        let Some(peer) = self.peers.get_mut(&connection) else {
            return;
        };
        let data = peer
            .data
            .and_then(|d| self.conns.get_mut(&d).map(|c| (d, c)));
        let spliced = peer.splice.is_some();
        let held_down = peer.held_down();
        let client_room = data.as_ref().is_some_and(|(_, c)| {
            if spliced {
                held_down == 0 && c.pending_out() == 0
            } else {
                c.pending_out() < PIPE_LIMIT
            }
        });
        let peer_wants = Interest::of(
            client_room,
            peer.connecting.is_some() || peer.pending_up() > 0,
        );
        if peer_wants != peer.interest
            && self
                .poller
                .modify(
                    peer.sock.as_raw_fd(),
                    PEER | u64::from(connection),
                    peer_wants,
                )
                .is_ok()
        {
            peer.interest = peer_wants;
        }
        if let Some((id, conn)) = data {
            let wants = Interest::of(peer.pending_up() == 0, conn.pending_out() + held_down > 0);
            if wants != conn.interest
                && self
                    .poller
                    .modify(conn.socket.as_raw_fd(), id, wants)
                    .is_ok()
            {
                conn.interest = wants;
            }
        }
    }

    /// Outgoing connections past their deadline fail with a timeout.
    pub(super) fn sweep_peers(&mut self, now: Instant) {
        let late: Vec<u32> = self
            .peers
            .iter()
            .filter(|(_, p)| p.connecting.is_some_and(|d| now >= d))
            .map(|(n, _)| *n)
            .collect();
        for connection in late {
            if let Some(peer) = self.peers.remove(&connection) {
                let _ = self.poller.delete(peer.sock.as_raw_fd());
            }
            self.peer_events.push(PeerEvent::Connected {
                connection,
                result: Err(io::ErrorKind::TimedOut),
            });
        }
    }
}

/// Writes the bytes waiting for the peer: the copied ones, then the spliced.
fn peer_flush_up(peer: &mut PeerSock) -> io::Result<()> {
    peer.flush_up()?;
    if peer.up_sent < peer.up.len() {
        return Ok(());
    }
    if let Some((up, _)) = peer.splice.as_mut() {
        up.drain_into(&peer.sock)?;
    }
    Ok(())
}
