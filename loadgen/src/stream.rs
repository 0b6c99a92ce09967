//! TURN over a byte stream (TCP, or TLS over TCP), client side.
//!
//! RFC 8489 §6.2.2 / RFC 8656 §12.4: over a stream, STUN messages follow one
//! another, each self-delimiting by its length field; ChannelData messages are
//! padded to a multiple of 4 bytes (RFC 8656 §12.5). [`Deframer`] turns the
//! bytes a connection delivers — split anywhere, several messages per read —
//! back into messages; [`OutBuf`] composes outgoing messages in place and
//! survives partial writes; [`StreamConn`] is one non-blocking connection
//! (plain or TLS via rustls) holding one of each.
//!
//! Buffers are allocated once per connection and reused: no allocation per
//! packet in loadgen's own code. (rustls's buffered API keeps its own record
//! buffers: it allocates per TLS record, not per STUN message we send, since
//! everything waiting is handed over in one write.)

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use ringturn::stun::{HEADER_LEN as STUN_HEADER_LEN, MAGIC_COOKIE};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// The longest frame a stream can carry: a STUN message with a 16-bit length
/// (a multiple of 4) after its 20-byte header; a padded ChannelData is shorter.
pub const MAX_FRAME: usize = STUN_HEADER_LEN + 0xFFFC;
/// A connection's receive buffer starts at this size and grows (rarely, up to
/// [`MAX_RX`]) only when a frame or a TLS read needs more room.
pub const RX_INITIAL: usize = 32 << 10;
pub const MAX_RX: usize = 1 << 20;
/// Outgoing bytes a connection may hold before its sender is told to wait.
pub const TX_CAPACITY: usize = 64 << 10;

/// Why a byte stream cannot be TURN: the connection must be dropped, since
/// after garbage there is no way to find the next message boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The first byte is neither STUN (top bits 00) nor ChannelData (0x40–0x7F).
    NotTurn(u8),
    /// A STUN header whose length is not a multiple of 4 (RFC 8489 §5).
    BadStunLength(u16),
    /// A STUN header without the magic cookie.
    BadCookie(u32),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::NotTurn(b) => write!(
                f,
                "byte 0x{b:02x} starts neither a STUN nor a ChannelData message"
            ),
            FrameError::BadStunLength(l) => {
                write!(f, "STUN message length {l} is not a multiple of 4")
            }
            FrameError::BadCookie(c) => {
                write!(f, "STUN header without the magic cookie (0x{c:08x})")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// The length on the wire of the frame starting at `head` (padding
/// included), and the length of the message itself; None until enough of the
/// header is there to tell.
pub fn frame_len(head: &[u8]) -> Result<Option<(usize, usize)>, FrameError> {
    let Some(&first) = head.first() else {
        return Ok(None);
    };
    match first {
        0x00..=0x3F => {
            let Some(h) = head.get(..STUN_HEADER_LEN) else {
                // Check what is there already: garbage is found as early as possible.
                if let Some(l) = head.get(2..4) {
                    let len = u16::from_be_bytes([l[0], l[1]]);
                    if len % 4 != 0 {
                        return Err(FrameError::BadStunLength(len));
                    }
                }
                return Ok(None);
            };
            let len = u16::from_be_bytes([h[2], h[3]]);
            if len % 4 != 0 {
                return Err(FrameError::BadStunLength(len));
            }
            let cookie = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
            if cookie != MAGIC_COOKIE {
                return Err(FrameError::BadCookie(cookie));
            }
            let n = STUN_HEADER_LEN + usize::from(len);
            Ok(Some((n, n)))
        }
        0x40..=0x7F => {
            let Some(h) = head.get(..4) else {
                return Ok(None);
            };
            let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
            let n = 4 + len;
            Ok(Some((n.next_multiple_of(4), n)))
        }
        b => Err(FrameError::NotTurn(b)),
    }
}

/// Received bytes waiting to become messages.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Deframer {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            buf: vec![0u8; n.max(64)],
            start: 0,
            end: 0,
        }
    }

    /// Bytes received but not yet returned as messages.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Room to read into, at least `want` bytes when the buffer may grow to
    /// that (bounded by [`MAX_RX`]); empty when full. Moves buffered bytes to
    /// the front first when that makes room.
    pub fn spare(&mut self, want: usize) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() - self.end < want.max(1) && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < want {
            let need = (self.end + want).min(MAX_RX);
            if need > self.buf.len() {
                // Rare: only until the buffer has its working size.
                let grown = need.max(self.buf.len() * 2).min(MAX_RX);
                self.buf.resize(grown, 0);
            }
        }
        self.buf.get_mut(self.end..).unwrap_or_default()
    }

    /// `n` bytes were written into what [`spare`](Self::spare) returned.
    pub fn commit(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Copies `bytes` in (tests, and callers that already hold the bytes).
    /// Returns how many fit.
    pub fn extend(&mut self, bytes: &[u8]) -> usize {
        let room = self.spare(bytes.len());
        let n = room.len().min(bytes.len());
        if let (Some(dst), Some(src)) = (room.get_mut(..n), bytes.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.commit(n);
        n
    }

    /// The next complete message (ChannelData without its padding), or None
    /// until more bytes arrive. An error means the stream is not TURN.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let avail = self.buf.get(self.start..self.end).unwrap_or_default();
        let Some((wire, msg)) = frame_len(avail)? else {
            return Ok(None);
        };
        if avail.len() < wire {
            if wire > self.buf.len() {
                // A frame larger than the buffer: make room once (at most MAX_FRAME).
                let _ = self.spare(wire - avail.len());
            }
            return Ok(None);
        }
        let at = self.start;
        self.start += wire;
        Ok(self.buf.get(at..at + msg))
    }

    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }
}

/// Outgoing bytes: messages composed in place, written out as the socket
/// takes them. Fixed capacity; a full buffer is backpressure.
#[derive(Debug, Default)]
pub struct OutBuf {
    buf: Vec<u8>,
    head: usize,
    tail: usize,
}

impl OutBuf {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            buf: vec![0u8; n],
            head: 0,
            tail: 0,
        }
    }

    /// Bytes waiting to be written.
    pub fn pending(&self) -> usize {
        self.tail - self.head
    }

    pub fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Bytes that can still be queued.
    pub fn room(&self) -> usize {
        self.buf.len() - self.pending()
    }

    /// Composes one message with `fill` (given `max` bytes, returning how many
    /// it wrote) and pads it to a multiple of 4 (RFC 8656 §12.5; STUN messages
    /// are multiples of 4 already). False, with nothing queued, when `max`
    /// bytes do not fit or `fill` fails.
    pub fn push(&mut self, max: usize, fill: impl FnOnce(&mut [u8]) -> Option<usize>) -> bool {
        let max = max.next_multiple_of(4);
        if self.room() < max {
            return false;
        }
        if self.buf.len() - self.tail < max {
            self.buf.copy_within(self.head..self.tail, 0);
            self.tail -= self.head;
            self.head = 0;
        }
        let Some(region) = self.buf.get_mut(self.tail..self.tail + max) else {
            return false;
        };
        let n = match fill(region) {
            Some(n) if n > 0 && n <= max => n,
            _ => return false,
        };
        let padded = n.next_multiple_of(4);
        if let Some(pad) = region.get_mut(n..padded) {
            pad.fill(0);
        }
        self.tail += padded;
        true
    }

    /// Queues `bytes` as one message (padded). False when it does not fit.
    pub fn push_bytes(&mut self, bytes: &[u8]) -> bool {
        self.push(bytes.len(), |out| {
            out.get_mut(..bytes.len())?.copy_from_slice(bytes);
            Some(bytes.len())
        })
    }

    /// The bytes waiting to be written.
    pub fn as_slice(&self) -> &[u8] {
        self.buf.get(self.head..self.tail).unwrap_or_default()
    }

    /// `n` bytes were written out.
    pub fn consume(&mut self, n: usize) {
        self.head = (self.head + n).min(self.tail);
        if self.head == self.tail {
            self.head = 0;
            self.tail = 0;
        }
    }

    /// Writes as much as `w` takes without blocking; returns the bytes
    /// written. WouldBlock is not an error: what is left stays queued.
    pub fn write_to(&mut self, w: &mut impl Write) -> io::Result<usize> {
        let mut total = 0;
        // Bounded: every turn either writes something or stops.
        for _ in 0..64 {
            if self.is_empty() {
                break;
            }
            match w.write(self.as_slice()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.consume(n);
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    pub fn clear(&mut self) {
        self.head = 0;
        self.tail = 0;
    }
}

/// What one [`StreamConn::fill`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// This many bytes (plaintext) were added to the receive buffer; 0 when
    /// nothing was waiting.
    Data(usize),
    /// The server closed the connection (after the bytes already buffered).
    Closed,
}

/// One client's connection to the server: a non-blocking TCP socket,
/// optionally with TLS, and its two buffers.
pub struct StreamConn {
    sock: TcpStream,
    tls: Option<Box<rustls::ClientConnection>>,
    pub rx: Deframer,
    pub tx: OutBuf,
    /// Whether epoll is asked for writability (set while bytes wait).
    pub write_armed: bool,
    /// Closed (by the server, or after an error): nothing more is sent or read.
    pub closed: bool,
    /// A write failed: the connection is to be handled as lost.
    pub failed: Option<String>,
}

impl fmt::Debug for StreamConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamConn")
            .field("tls", &self.tls.is_some())
            .field("rx", &self.rx.buffered())
            .field("tx", &self.tx.pending())
            .field("closed", &self.closed)
            .finish()
    }
}

/// TLS settings a connection needs: the client configuration and the name
/// the server's certificate must carry.
#[derive(Clone)]
pub struct TlsClient {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: rustls::pki_types::ServerName<'static>,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl StreamConn {
    /// Opens a connection from `local` (any port) to `server` without
    /// waiting for it: the connect completes (or fails) in the event loop.
    pub fn connect(
        local: Ipv4Addr,
        server: SocketAddr,
        sockbuf: usize,
        tls: Option<&TlsClient>,
    ) -> io::Result<Self> {
        let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        sock.set_nonblocking(true)?;
        sock.set_tcp_nodelay(true)?;
        sock.set_cloexec(true)?;
        // Many connections from few addresses: ports come back quickly.
        sock.set_reuse_address(true)?;
        let _ = sock.set_recv_buffer_size(sockbuf);
        let _ = sock.set_send_buffer_size(sockbuf);
        sock.bind(&SockAddr::from(SocketAddr::from((local, 0))))?;
        match sock.connect(&SockAddr::from(server)) {
            Ok(()) => {}
            Err(e)
                if e.raw_os_error() == Some(libc::EINPROGRESS)
                    || e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let tls = match tls {
            Some(t) => {
                let mut c = rustls::ClientConnection::new(t.config.clone(), t.server_name.clone())
                    .map_err(io::Error::other)?;
                c.set_buffer_limit(Some(TX_CAPACITY));
                Some(Box::new(c))
            }
            None => None,
        };
        Ok(Self {
            sock: sock.into(),
            tls,
            rx: Deframer::with_capacity(RX_INITIAL),
            tx: OutBuf::with_capacity(TX_CAPACITY),
            write_armed: false,
            closed: false,
            failed: None,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether bytes still wait to be written (ours, or TLS records).
    pub fn wants_write(&self) -> bool {
        !self.tx.is_empty() || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Room for more outgoing messages in our send buffer (TLS keeps up to
    /// another [`TX_CAPACITY`] of records of its own before it stops taking more).
    pub fn room(&self) -> usize {
        self.tx.room()
    }

    /// Writes what is queued as far as the socket takes it.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let Some(tls) = self.tls.as_mut() else {
            self.tx.write_to(&mut self.sock)?;
            return Ok(());
        };
        // Bounded: each turn hands plaintext to rustls or writes records, or stops.
        for _ in 0..64 {
            if !self.tx.is_empty() {
                // rustls encrypts what it accepts (up to its buffer limit) in
                // records of up to 16 KiB: many messages per record.
                let n = tls.writer().write(self.tx.as_slice())?;
                self.tx.consume(n);
            }
            if !tls.wants_write() {
                if self.tx.is_empty() {
                    break;
                }
                continue;
            }
            match tls.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads what the socket has (one read, or one TLS read and its
    /// plaintext) into the receive buffer; the caller takes the messages out
    /// with `rx.next_frame()` and calls again until `Data(0)`.
    pub fn fill(&mut self) -> io::Result<Fill> {
        if self.closed {
            return Ok(Fill::Closed);
        }
        let Some(tls) = self.tls.as_mut() else {
            let room = self.rx.spare(4096);
            if room.is_empty() {
                return Err(io::Error::other("receive buffer full"));
            }
            return match self.sock.read(room) {
                Ok(0) => Ok(Fill::Closed),
                Ok(n) => {
                    self.rx.commit(n);
                    Ok(Fill::Data(n))
                }
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::Interrupted =>
                {
                    Ok(Fill::Data(0))
                }
                Err(e) => Err(e),
            };
        };
        let eof = match tls.read_tls(&mut self.sock) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                false
            }
            Err(e) => return Err(e),
        };
        let state = tls
            .process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut got = 0;
        let mut want = state.plaintext_bytes_to_read();
        // The plaintext of one TLS read is at most a record or so: bounded.
        while want > 0 {
            let room = self.rx.spare(want);
            if room.is_empty() {
                return Err(io::Error::other("receive buffer full"));
            }
            match tls.reader().read(room) {
                Ok(0) => break,
                Ok(n) => {
                    self.rx.commit(n);
                    got += n;
                    want = want.saturating_sub(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        let wants_write = tls.wants_write();
        if wants_write {
            // Handshake messages, key updates, alerts.
            self.flush()?;
        }
        if got == 0 && (eof || state.peer_has_closed()) {
            return Ok(Fill::Closed);
        }
        Ok(Fill::Data(got))
    }

    /// Stops using the connection (the socket closes when it is dropped).
    pub fn close(&mut self) {
        self.closed = true;
        self.tx.clear();
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths() {
        assert_eq!(frame_len(&[]), Ok(None));
        assert_eq!(frame_len(&[0x40, 0x00, 0x00, 0x05]), Ok(Some((12, 9))));
        assert_eq!(frame_len(&[0x40, 0x00, 0x00, 0x04]), Ok(Some((8, 8))));
        assert_eq!(frame_len(&[0x80]), Err(FrameError::NotTurn(0x80)));
        assert_eq!(
            frame_len(&[0x00, 0x01, 0x00, 0x03]),
            Err(FrameError::BadStunLength(3))
        );
    }

    #[test]
    fn outbuf_pads_and_compacts() {
        let mut o = OutBuf::with_capacity(16);
        assert!(o.push_bytes(&[1, 2, 3, 4, 5]));
        assert_eq!(o.as_slice(), &[1, 2, 3, 4, 5, 0, 0, 0]);
        assert!(o.push_bytes(&[9; 8]));
        assert!(!o.push_bytes(&[7]), "full");
        o.consume(8);
        assert!(o.push_bytes(&[7]), "room again after a partial write");
        assert_eq!(o.as_slice(), &[9, 9, 9, 9, 9, 9, 9, 9, 7, 0, 0, 0]);
    }
}
