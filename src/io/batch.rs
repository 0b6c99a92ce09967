//! The portable backend: level-triggered epoll, recvmmsg to take up to
//! `BATCH` datagrams per syscall, sendmmsg per destination socket. For hosts
//! where io_uring is disabled (Docker's default seccomp profile,
//! `kernel.io_uring_disabled`).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::RawFd;
use std::time::Duration;

use super::gro::{
    deliver_segments, gro_segment_size, GRO_CMSG_LEN, GRO_MAX_BYTES, GRO_RECV_BUF_LEN,
    GRO_TYPICAL_SEGMENTS,
};
use super::gso::{send_all, Datagram, Scratch};
use super::poller::{Interest, Poller};
use super::sockaddr::{parse_sockaddr, storage_bytes, RawAddr};
use super::{
    close_fd, new_eventfd, try_enable_gro, Backend, BackendCounters, BackendKind, Received,
    RecvOptions, SendQueue, Token, Waker, HEADROOM, MAX_DATAGRAM, RECV_BUF_LEN,
};

/// Datagrams per recvmmsg / sendmmsg call.
const BATCH: usize = 32;
/// recvmmsg rounds per ready socket per loop turn, so one busy socket cannot starve the rest.
const ROUNDS_PER_SOCKET: usize = 4;
const EVENTFD_TOKEN: u64 = u64::MAX;
/// A watched fd (`Backend::watch`): it only wakes the wait.
const WATCH_TOKEN: u64 = u64::MAX - 1;

enum Payload {
    Received { buf_id: u32, range: Range<usize> },
    Owned(Vec<u8>),
}

struct PendingSend {
    fd: RawFd,
    to: RawAddr,
    payload: Payload,
    /// Position in the queue, so an in-place sort keeps each socket's order.
    order: u32,
}

/// A control buffer for one receive, aligned for cmsghdr.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Control([u8; GRO_CMSG_LEN]);

pub struct BatchBackend {
    /// The sockets, the eventfd and a watched fd, all level-triggered reads.
    poller: Poller,
    eventfd: RawFd,
    /// Each registered socket's token and whether it coalesces (UDP GRO).
    tokens: HashMap<RawFd, (Token, bool), foldhash::fast::RandomState>,
    /// Receive buffers: `RECV_BUF_LEN` each, or `GRO_RECV_BUF_LEN` once a GRO
    /// socket is registered (a coalesced receive is spread inside its buffer).
    bufs: Vec<Vec<u8>>,
    controls: Vec<Control>,
    /// Per received datagram of the current batch: the GRO segment size, if coalesced.
    segments: Vec<Option<usize>>,
    /// Segment ranges of one spread receive (reused).
    ranges: Vec<Range<usize>>,
    /// Cleared for good when the kernel refuses UDP_GRO.
    gro_allowed: bool,
    names: Vec<libc::sockaddr_storage>,
    /// Per received datagram of the current batch: length (`usize::MAX` if truncated) and name length.
    lens: Vec<usize>,
    namelens: Vec<libc::socklen_t>,
    sends: Vec<PendingSend>,

    /// Cleared for good when the kernel refuses UDP_SEGMENT.
    gso_enabled: bool,
    counters: BackendCounters,
    /// Reused every flush and poll, so the send path allocates nothing once warm.
    datagrams: Vec<Datagram>,
    scratch: Scratch,
    ready: Vec<u64>,
    /// The watched fd was reported readable (`take_watch_ready`).
    watch_ready: bool,
}

// SAFETY: the raw pointers inside libc structs are only created transiently
// during syscalls; the backend is moved into its worker thread once.
#[allow(unsafe_code)]
unsafe impl Send for BatchBackend {}

impl BatchBackend {
    pub fn new() -> io::Result<Self> {
        let poller = Poller::new(64)?;
        let eventfd = new_eventfd()?;
        let mut backend = Self {
            poller,
            eventfd,
            tokens: HashMap::default(),
            bufs: (0..BATCH).map(|_| vec![0u8; RECV_BUF_LEN]).collect(),
            controls: vec![Control([0; GRO_CMSG_LEN]); BATCH],
            segments: Vec::with_capacity(BATCH),
            ranges: Vec::with_capacity(64),
            gro_allowed: true,
            // SAFETY: sockaddr_storage is plain old data; zero is valid.
            #[allow(unsafe_code)]
            names: vec![unsafe { std::mem::zeroed() }; BATCH],
            lens: Vec::with_capacity(BATCH),
            namelens: Vec::with_capacity(BATCH),
            sends: Vec::with_capacity(BATCH * 2),
            gso_enabled: true,
            counters: BackendCounters::default(),
            datagrams: Vec::new(),
            scratch: Scratch::default(),
            ready: Vec::with_capacity(64),
            watch_ready: false,
        };
        backend.epoll_add(eventfd, EVENTFD_TOKEN)?;
        Ok(backend)
    }

    fn epoll_add(&mut self, fd: RawFd, data: u64) -> io::Result<()> {
        self.poller.add(fd, data, Interest::Read)
    }

    fn drain_eventfd(&self) {
        let mut v: u64 = 0;
        // SAFETY: reading 8 bytes into a live u64 from our non-blocking eventfd.
        #[allow(unsafe_code)]
        unsafe {
            libc::read(self.eventfd, (&mut v as *mut u64).cast(), 8);
        }
    }

    /// One recvmmsg into all buffers; returns how many datagrams arrived.
    /// With `gro`, each may be a coalesced burst (its segment size in `segments`).
    fn recv_batch(&mut self, fd: RawFd, gro: bool) -> io::Result<usize> {
        // SAFETY (for the zeroed structs): iovec/mmsghdr are plain old data.
        #[allow(unsafe_code)]
        let mut iovecs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: mmsghdr is plain old data (null pointers, zero lengths); all-zero is valid.
        #[allow(unsafe_code)]
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, (iov, msg)) in iovecs.iter_mut().zip(msgs.iter_mut()).enumerate() {
            let Some(buf) = self.bufs.get_mut(i) else {
                break;
            };
            let Some(name) = self.names.get_mut(i) else {
                break;
            };
            let Some(control) = self.controls.get_mut(i) else {
                break;
            };
            // The payload lands after the headroom; a coalesced one may fill
            // up to GRO_MAX_BYTES (the buffer has room to spread it after that).
            iov.iov_base = buf.as_mut_ptr().wrapping_add(HEADROOM).cast();
            iov.iov_len = if gro && buf.len() >= GRO_RECV_BUF_LEN {
                GRO_MAX_BYTES
            } else {
                MAX_DATAGRAM
            };
            msg.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
            msg.msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            msg.msg_hdr.msg_iov = iov;
            msg.msg_hdr.msg_iovlen = 1;
            if gro {
                msg.msg_hdr.msg_control = control.0.as_mut_ptr().cast();
                msg.msg_hdr.msg_controllen = GRO_CMSG_LEN;
            }
        }
        // SAFETY: every mmsghdr points at a live iovec, buffer, name and control
        // buffer of the stated sizes, all owned by `self`/this frame for the whole call.
        #[allow(unsafe_code)]
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                // ICMP errors (port unreachable) surface here on UDP sockets: not fatal.
                io::ErrorKind::ConnectionRefused => Ok(0),
                _ => Err(e),
            };
        }
        let n = n as usize;
        // Record lengths and truncation in the name slots' neighbours.
        self.lens.clear();
        self.namelens.clear();
        self.segments.clear();
        for (msg, control) in msgs.iter().zip(self.controls.iter()).take(n) {
            let written = control.0.get(..msg.msg_hdr.msg_controllen).unwrap_or(&[]);
            self.segments
                .push(if gro { gro_segment_size(written) } else { None });
            let truncated = msg.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            self.lens.push(if truncated {
                usize::MAX
            } else {
                msg.msg_len as usize
            });
            self.namelens.push(msg.msg_hdr.msg_namelen);
        }
        Ok(n)
    }
}

impl SendQueue for Vec<PendingSend> {
    fn send_received(&mut self, fd: RawFd, to: SocketAddr, buf_id: u32, range: Range<usize>) {
        let order = self.len() as u32;
        self.push(PendingSend {
            fd,
            to: RawAddr::from_std(to),
            payload: Payload::Received { buf_id, range },
            order,
        });
    }

    fn send_owned(&mut self, fd: RawFd, to: SocketAddr, data: Vec<u8>) {
        let order = self.len() as u32;
        self.push(PendingSend {
            fd,
            to: RawAddr::from_std(to),
            payload: Payload::Owned(data),
            order,
        });
    }
}

impl Backend for BatchBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Batch
    }

    fn register_with(&mut self, fd: RawFd, token: Token, options: RecvOptions) -> io::Result<()> {
        let gro = options.gro && try_enable_gro(fd, &mut self.gro_allowed, &mut self.counters);
        if gro
            && self
                .bufs
                .first()
                .is_some_and(|b| b.len() < GRO_RECV_BUF_LEN)
        {
            // Once, at the first GRO socket: room to receive and spread a burst.
            for buf in &mut self.bufs {
                buf.resize(GRO_RECV_BUF_LEN, 0);
            }
            let most = BATCH * GRO_TYPICAL_SEGMENTS;
            self.sends.reserve(most);
            self.datagrams.reserve(most);
            self.scratch.reserve(most);
        }
        self.epoll_add(fd, fd as u64)?;
        self.tokens.insert(fd, (token, gro));
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd, _token: Token) -> io::Result<()> {
        self.tokens.remove(&fd);
        // Drop sends still queued for this socket: it is about to close.
        self.sends.retain(|s| s.fd != fd);
        self.poller.delete(fd)
    }

    fn watch(&mut self, fd: RawFd) -> io::Result<()> {
        self.epoll_add(fd, WATCH_TOKEN)
    }

    fn take_watch_ready(&mut self) -> bool {
        std::mem::take(&mut self.watch_ready)
    }

    fn waker(&self) -> Waker {
        Waker { fd: self.eventfd }
    }

    fn poll(
        &mut self,
        timeout: Duration,
        handler: &mut dyn FnMut(&mut dyn SendQueue, Received<'_>),
    ) -> io::Result<()> {
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        let mut ready = std::mem::take(&mut self.ready);
        self.poller.wait_tokens(ms, &mut ready)?;
        for &data in &ready {
            if data == EVENTFD_TOKEN {
                self.drain_eventfd();
                continue;
            }
            if data == WATCH_TOKEN {
                self.watch_ready = true;
                continue;
            }
            let fd = data as RawFd;
            let Some(&(token, gro)) = self.tokens.get(&fd) else {
                continue;
            };
            for _ in 0..ROUNDS_PER_SOCKET {
                let got = self.recv_batch(fd, gro)?;
                for i in 0..got {
                    let len = self.lens.get(i).copied().unwrap_or(usize::MAX);
                    if len == usize::MAX {
                        continue; // truncated: larger than any datagram we relay
                    }
                    let namelen = self.namelens.get(i).copied().unwrap_or(0);
                    let Some(from) = self
                        .names
                        .get(i)
                        .and_then(|n| parse_sockaddr(storage_bytes(n, namelen)))
                    else {
                        continue;
                    };
                    let Some(buf) = self.bufs.get_mut(i) else {
                        continue;
                    };
                    let segment = self.segments.get(i).copied().flatten();
                    let sends = &mut self.sends;
                    let delivered = deliver_segments(
                        buf,
                        HEADROOM,
                        len,
                        segment,
                        &mut self.ranges,
                        &mut self.counters,
                        |buf, payload| {
                            let received = Received {
                                token,
                                from,
                                buf,
                                payload,
                                buf_id: i as u32,
                            };
                            handler(sends, received);
                        },
                    );
                    if !delivered {
                        self.counters.gro_dropped += 1;
                    }
                }
                // In-place sends refer to these buffers: send before reusing them.
                self.flush()?;
                if got < BATCH {
                    break;
                }
            }
        }
        self.ready = ready;
        self.flush()
    }

    fn send_owned(&mut self, fd: RawFd, to: SocketAddr, data: Vec<u8>) {
        SendQueue::send_owned(&mut self.sends, fd, to, data);
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.sends.is_empty() {
            return Ok(());
        }
        let mut sends = std::mem::take(&mut self.sends);
        // Group by socket, each keeping its order (in place: no merge buffer);
        // nothing to do when they all leave one socket (the common case).
        let first_fd = sends.first().map(|s| s.fd);
        if sends.iter().any(|s| Some(s.fd) != first_fd) {
            sends.sort_unstable_by_key(|s| (s.fd, s.order));
        }
        let mut start = 0;
        while start < sends.len() {
            let fd = sends.get(start).map(|s| s.fd).unwrap_or(-1);
            let end = sends
                .iter()
                .skip(start)
                .position(|s| s.fd != fd)
                .map_or(sends.len(), |p| start + p);
            let bufs = &self.bufs;
            let mut group = std::mem::take(&mut self.datagrams);
            group.clear();
            group.extend(sends.get(start..end).unwrap_or(&[]).iter().map(|s| {
                let bytes: &[u8] = match &s.payload {
                    Payload::Received { buf_id, range } => bufs
                        .get(*buf_id as usize)
                        .and_then(|b| b.get(range.clone()))
                        .unwrap_or(&[]),
                    Payload::Owned(v) => v,
                };
                Datagram::new(s.to, bytes)
            }));
            let report = send_all(fd, &mut group, &mut self.gso_enabled, &mut self.scratch);
            group.clear();
            self.datagrams = group;
            self.counters.add(&report);
            start = end;
        }
        sends.clear();
        self.sends = sends;
        Ok(())
    }

    fn counters(&self) -> BackendCounters {
        self.counters
    }
}

impl Drop for BatchBackend {
    fn drop(&mut self) {
        close_fd(self.eventfd);
    }
}
