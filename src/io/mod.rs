//! The only place with syscalls and `unsafe`: socket setup, and the two
//! receive/send backends a worker drives.
//!
//! A backend owns the receive buffers. It hands each datagram to the worker
//! with `HEADROOM` free bytes in front of the payload (so TURN framing is
//! written in place) and takes sends either as a range of a receive buffer
//! (zero copy) or as owned bytes. Sends queued during one loop turn go out
//! together at its end, grouped into GSO runs (`gso`). Sockets registered
//! with `RecvOptions { gro: true }` may receive coalesced bursts, which are
//! split into datagrams, each with its own headroom, before the worker sees
//! them (`gro`).

pub mod affinity;
pub mod batch;
pub mod clocks;
pub mod gro;
pub mod gso;
pub mod interfaces;
pub mod poller;
pub mod sockaddr;
pub mod socket;
pub mod splice;
pub mod stream;
pub mod uring;

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::RawFd;
use std::time::Duration;

/// Free bytes before every received payload (≥ `turn::PEER_HEADROOM`).
pub const HEADROOM: usize = 64;
/// Largest datagram we receive (UDP payloads larger than this are truncated and dropped).
pub const MAX_DATAGRAM: usize = 2048;
/// Room after the payload for padding.
pub const TAILROOM: usize = 8;
pub const RECV_BUF_LEN: usize = HEADROOM + MAX_DATAGRAM + TAILROOM;

const _: () =
    assert!(HEADROOM >= crate::turn::PEER_HEADROOM && TAILROOM >= crate::turn::PEER_TAILROOM);

/// Identifies a registered socket to the worker.
pub type Token = u64;

/// One received datagram, borrowed from the backend.
pub struct Received<'a> {
    pub token: Token,
    pub from: SocketAddr,
    /// The whole receive buffer; the payload is `buf[payload]`.
    pub buf: &'a mut [u8],
    pub payload: Range<usize>,
    /// Names the buffer for `SendQueue::send_received`.
    pub buf_id: u32,
}

/// Where a worker puts what it wants sent during a loop turn.
pub trait SendQueue {
    /// Send `range` of the receive buffer `buf_id` (zero copy).
    fn send_received(&mut self, fd: RawFd, to: SocketAddr, buf_id: u32, range: Range<usize>);
    /// Send bytes the worker composed.
    fn send_owned(&mut self, fd: RawFd, to: SocketAddr, data: Vec<u8>);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Uring,
    Batch,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Uring => "uring",
            BackendKind::Batch => "batch",
        }
    }
}

/// Wakes a worker blocked in `Backend::poll` (an eventfd).
#[derive(Debug, Clone, Copy)]
pub struct Waker {
    fd: RawFd,
}

impl Waker {
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a valid u64 to an eventfd we own; a full
        // counter (EAGAIN) already means "woken".
        #[allow(unsafe_code)]
        unsafe {
            libc::write(self.fd, (&one as *const u64).cast(), 8);
        }
    }
}

/// What a backend counted about its sends (monotonic).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BackendCounters {
    /// Datagrams lost on send (buffer full, unreachable): UDP loss.
    pub dropped_sends: u64,
    /// GSO sends and the datagrams they carried.
    pub gso_sends: u64,
    pub gso_segments: u64,
    /// Times the kernel refused GSO (it is then off for good).
    pub gso_fallbacks: u64,
    /// Coalesced receives (UDP GRO) and the datagrams they carried.
    pub gro_receives: u64,
    pub gro_segments: u64,
    /// Times the kernel refused UDP_GRO on a socket (it is then not asked again).
    pub gro_fallbacks: u64,
    /// Receives dropped because they could not be split (a datagram over
    /// `MAX_DATAGRAM`, a burst the buffer could not spread).
    pub gro_dropped: u64,
}

impl BackendCounters {
    pub(crate) fn add(&mut self, r: &gso::SendReport) {
        self.dropped_sends += r.dropped;
        self.gso_sends += r.gso_sends;
        self.gso_segments += r.gso_segments;
        self.gso_fallbacks += r.gso_fallbacks;
    }
}

/// Which sockets a worker registers with UDP GRO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroPolicy {
    pub relays: bool,
    pub listeners: bool,
}

impl Default for GroPolicy {
    /// Relay and listening sockets: see `config::UdpGro`.
    fn default() -> Self {
        Self {
            relays: true,
            listeners: true,
        }
    }
}

/// How a registered socket is received from.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecvOptions {
    /// Ask for UDP GRO (coalesced receives, split before delivery; see `gro`).
    /// If the kernel refuses, the socket is received from without it and the
    /// backend stops asking (sticky), counting `gro_fallbacks`.
    pub gro: bool,
}

/// Turns UDP GRO on for `fd` unless an earlier refusal turned it off for good.
/// Returns whether the socket now coalesces.
pub(crate) fn try_enable_gro(
    fd: RawFd,
    allowed: &mut bool,
    counters: &mut BackendCounters,
) -> bool {
    if !*allowed {
        return false;
    }
    match gro::enable_gro(fd) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("UDP_GRO refused ({e}); receiving without it from now on");
            *allowed = false;
            counters.gro_fallbacks += 1;
            false
        }
    }
}

pub trait Backend: Send {
    fn kind(&self) -> BackendKind;

    /// Starts receiving on `fd`.
    fn register(&mut self, fd: RawFd, token: Token) -> io::Result<()> {
        self.register_with(fd, token, RecvOptions::default())
    }

    /// Starts receiving on `fd` with `options`.
    fn register_with(&mut self, fd: RawFd, token: Token, options: RecvOptions) -> io::Result<()>;

    /// Stops receiving on `fd` before the caller closes it.
    fn deregister(&mut self, fd: RawFd, token: Token) -> io::Result<()>;

    /// Wakes `poll` whenever `fd` (a stream `poller::Poller`) is readable;
    /// nothing is received from it — the worker drains it itself.
    fn watch(&mut self, fd: RawFd) -> io::Result<()>;

    /// Whether the watched fd fired since the last call (and clears it), so
    /// the worker looks at its streams only when there is something to see.
    fn take_watch_ready(&mut self) -> bool;

    fn waker(&self) -> Waker;

    /// Waits up to `timeout` for datagrams (or a wake-up), hands each to
    /// `handler` with the send queue, then flushes the queued sends.
    fn poll(
        &mut self,
        timeout: Duration,
        handler: &mut dyn FnMut(&mut dyn SendQueue, Received<'_>),
    ) -> io::Result<()>;

    /// Queues bytes outside `poll` (timer output, cross-worker traffic).
    fn send_owned(&mut self, fd: RawFd, to: SocketAddr, data: Vec<u8>);

    /// Sends everything queued.
    fn flush(&mut self) -> io::Result<()>;

    fn counters(&self) -> BackendCounters;
}

/// Creates the backend asked for; `auto` tries io_uring and says why it fell back.
pub fn create_backend(
    preferred: Option<BackendKind>,
) -> io::Result<(Box<dyn Backend>, Option<String>)> {
    match preferred {
        Some(BackendKind::Batch) => Ok((Box::new(batch::BatchBackend::new()?), None)),
        Some(BackendKind::Uring) => Ok((Box::new(uring::UringBackend::new()?), None)),
        None => match uring::UringBackend::new() {
            Ok(b) => Ok((Box::new(b), None)),
            Err(e) => {
                let why = format!("io_uring unavailable ({e}); using the batch backend");
                Ok((Box::new(batch::BatchBackend::new()?), Some(why)))
            }
        },
    }
}

/// Creates an eventfd for a `Waker`.
pub(crate) fn new_eventfd() -> io::Result<RawFd> {
    // SAFETY: plain syscall with constant flags; the result is checked.
    #[allow(unsafe_code)]
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(fd)
    }
}

pub(crate) fn close_fd(fd: RawFd) {
    // SAFETY: closing an fd this module created and owns exclusively.
    #[allow(unsafe_code)]
    unsafe {
        libc::close(fd);
    }
}

/// Raises the soft open-file limit to the hard limit and returns it: every
/// TCP/TLS connection and (per-allocation mode) every relay socket is a file
/// descriptor, and the usual soft limit of 1024 is far too low for a server.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the live struct we pass.
    #[allow(unsafe_code)]
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the live struct we pass.
        #[allow(unsafe_code)]
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        lim = raised;
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod fd_limit_tests {
    #[test]
    fn raising_the_fd_limit_reaches_the_hard_limit() {
        let got = super::raise_fd_limit().expect("getrlimit/setrlimit");
        let text = std::fs::read_to_string("/proc/self/limits").expect("limits");
        let line = text
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .expect("open files line");
        let fields: Vec<&str> = line.split_whitespace().collect();
        let shown = |f: &str| {
            if f == "unlimited" {
                u64::MAX.to_string()
            } else {
                f.to_owned()
            }
        };
        assert_eq!(shown(fields[3]), got.to_string(), "soft limit now {line}");
        assert_eq!(
            shown(fields[4]),
            got.to_string(),
            "equal to the hard limit: {line}"
        );
    }
}
