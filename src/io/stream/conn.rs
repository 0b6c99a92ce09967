//! One client connection: its phase and deadlines, reading plaintext out of
//! it (through TLS, the handshake included, on a TLS connection), and writing
//! out what is queued for it.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use super::{CloseReason, Interest, StreamLimits};
use crate::turn::ClientTuple;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Handshake,
    FirstMessage,
    Open,
}

pub(super) struct Conn {
    pub(super) socket: TcpStream,
    pub(super) tuple: ClientTuple,
    pub(super) tls: Option<Box<rustls::ServerConnection>>,
    /// The start of a frame that arrived split across reads.
    pub(super) partial: Vec<u8>,
    /// Bytes for the socket (TLS records on a TLS connection).
    pub(super) out: Vec<u8>,
    /// How much of `out` is written already.
    pub(super) out_sent: usize,
    pub(super) phase: Phase,
    pub(super) accepted: Instant,
    pub(super) last_rx: Instant,
    /// What the poller watches this socket for.
    pub(super) interest: Interest,
    pub(super) queued_for_flush: bool,
    /// RFC 6062: a data connection joined to this peer connection; its bytes
    /// are raw, not STUN.
    pub(super) pipe: Option<u32>,
}

impl Conn {
    pub(super) fn deadline(&self, limits: &StreamLimits) -> Instant {
        match self.phase {
            Phase::Handshake => self.accepted + limits.handshake_timeout,
            Phase::FirstMessage => self.accepted + limits.first_message_timeout,
            Phase::Open => self.last_rx + limits.idle_timeout,
        }
    }

    pub(super) fn pending_out(&self) -> usize {
        self.out.len() - self.out_sent
    }

    /// Moves TLS records rustls has ready into `out`.
    pub(super) fn drain_tls(&mut self) -> io::Result<()> {
        match self.tls.as_mut() {
            Some(tls) => drain_tls(tls, &mut self.out),
            None => Ok(()),
        }
    }

    /// Reads what the socket has into `scratch` as plaintext: `Ok(0)` when
    /// nothing more is there now.
    pub(super) fn read_plain(&mut self, scratch: &mut [u8]) -> Result<usize, CloseReason> {
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

    pub(super) fn flush_out(&mut self) -> io::Result<()> {
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
