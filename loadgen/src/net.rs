//! The only `unsafe` in loadgen: epoll, batched `recvmmsg`/`sendmmsg`, thread
//! CPU clocks and the open-files limit. Everything above this module is safe.
#![allow(unsafe_code)]

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

use ringturn::io::sockaddr::{parse_sockaddr, storage_bytes, RawAddr};
use ringturn::io::socket::{bind_relay, BufferSizes};

/// Largest datagram loadgen sends or expects (a 1,200-byte payload plus TURN framing fits).
pub const MAX_DATAGRAM: usize = 2048;
/// Datagrams per `recvmmsg` / `sendmmsg`.
pub const BATCH: usize = 64;

/// A non-blocking UDP socket on `ip` (any free port), with big buffers.
pub fn bind_udp(ip: Ipv4Addr, sockbuf: usize) -> io::Result<UdpSocket> {
    let sizes = BufferSizes {
        rcvbuf: Some(sockbuf),
        sndbuf: Some(sockbuf),
    };
    bind_relay(SocketAddr::from((ip, 0)), sizes)
}

/// Level-triggered epoll over our sockets; the token names the socket.
pub struct Epoll {
    fd: RawFd,
    events: Vec<libc::epoll_event>,
    /// epoll_pwait2 works here (cleared on the first ENOSYS).
    precise: bool,
}

impl Epoll {
    pub fn new(capacity: usize) -> io::Result<Self> {
        // SAFETY: plain syscall; the returned fd is owned by this struct.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            fd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; capacity.max(1)],
            precise: true,
        })
    }

    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `ev` is a live epoll_event; both fds are open.
        let rc = unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Asks for readability, plus writability when `write` (a stream with
    /// bytes waiting for room in the socket buffer).
    pub fn modify(&self, fd: RawFd, token: u64, write: bool) -> io::Result<()> {
        let mut events = libc::EPOLLIN as u32;
        if write {
            events |= libc::EPOLLOUT as u32;
        }
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a live epoll_event; both fds are open.
        let rc = unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_MOD, fd, &mut ev) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn delete(&self, fd: RawFd) {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as in `add`; an error (fd not registered) is harmless.
        unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_DEL, fd, &mut ev) };
    }

    /// Waits up to `timeout_ns` (0 = poll) and returns the ready tokens.
    /// Nanosecond timeouts (epoll_pwait2, Linux 5.11) let a paced sender
    /// wake when its next datagram is due instead of a whole millisecond
    /// later; where the kernel lacks it, milliseconds rounded up.
    pub fn wait(&mut self, timeout_ns: u64, out: &mut Vec<u64>) -> io::Result<()> {
        out.clear();
        let max = i32::try_from(self.events.len()).unwrap_or(i32::MAX);
        let n = if self.precise {
            let ts = libc::timespec {
                tv_sec: i64::try_from(timeout_ns / 1_000_000_000).unwrap_or(i64::MAX),
                tv_nsec: i64::try_from(timeout_ns % 1_000_000_000).unwrap_or(0),
            };
            // SAFETY: `events` has room for `max` entries, `ts` is a valid
            // timespec; both outlive the call; no signal mask is passed.
            let n = unsafe {
                libc::epoll_pwait2(
                    self.fd,
                    self.events.as_mut_ptr(),
                    max,
                    &ts,
                    std::ptr::null(),
                )
            };
            if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                self.precise = false;
                return Ok(());
            }
            n
        } else {
            let ms = i32::try_from(timeout_ns.div_ceil(1_000_000)).unwrap_or(i32::MAX);
            // SAFETY: `events` has room for `max` entries and outlives the call.
            unsafe { libc::epoll_wait(self.fd, self.events.as_mut_ptr(), max, ms) }
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(e);
        }
        let n = usize::try_from(n).unwrap_or(0);
        out.extend(self.events.iter().take(n).map(|e| e.u64));
        Ok(())
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: we own the fd and close it once.
        unsafe { libc::close(self.fd) };
    }
}

/// Sends `n` composed datagrams as ringturn's GSO path does: per destination,
/// equal-size runs as one UDP_SEGMENT send. Returns how many went out.
fn send_gso(
    fd: RawFd,
    n: usize,
    datagram: impl Fn(usize) -> Option<(RawAddr, *const u8, usize)>,
    gso: &mut bool,
) -> usize {
    let mut list: Vec<ringturn::io::gso::Datagram> = (0..n)
        .filter_map(&datagram)
        .map(|(to, ptr, len)| {
            // SAFETY: `ptr` points at `len` bytes of a batch buffer that the
            // caller keeps alive and unmodified until this function returns.
            let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
            ringturn::io::gso::Datagram::new(to, bytes)
        })
        .collect();
    let mut scratch = ringturn::io::gso::Scratch::default();
    let report = ringturn::io::gso::send_all(fd, &mut list, gso, &mut scratch);
    list.len().saturating_sub(report.dropped as usize)
}

/// Receive buffers for one `recvmmsg`: BATCH datagrams with their sources.
pub struct RecvBatch {
    /// Echo with UDP GSO (equal-size runs per destination in one send).
    pub gso: bool,
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    lens: [usize; BATCH],
    names: Vec<libc::sockaddr_storage>,
    name_lens: [libc::socklen_t; BATCH],
    count: usize,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    pub fn with_gso(mut self, gso: bool) -> Self {
        self.gso = gso;
        self
    }

    pub fn new() -> Self {
        Self {
            gso: false,
            bufs: vec![[0u8; MAX_DATAGRAM]; BATCH],
            lens: [0; BATCH],
            // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
            names: vec![unsafe { std::mem::zeroed() }; BATCH],
            name_lens: [0; BATCH],
            count: 0,
        }
    }

    /// One `recvmmsg(MSG_DONTWAIT)` on `sock`; returns how many arrived
    /// (0 when none was waiting).
    pub fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        self.count = 0;
        let mut iov: [libc::iovec; BATCH] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; BATCH];
        // SAFETY: mmsghdr is plain old data; all-zero is valid (null pointers, zero lengths).
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, ((buf, name), (v, h))) in self
            .bufs
            .iter_mut()
            .zip(self.names.iter_mut())
            .zip(iov.iter_mut().zip(hdrs.iter_mut()))
            .enumerate()
        {
            v.iov_base = buf.as_mut_ptr().cast();
            v.iov_len = MAX_DATAGRAM;
            h.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            h.msg_hdr.msg_iov = v;
            h.msg_hdr.msg_iovlen = 1;
            let _ = i;
        }
        // SAFETY: every header points at live buffers and sockaddr storage owned by
        // `self` (or the local `iov`), all of which outlive the call.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                hdrs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let n = usize::try_from(n).unwrap_or(0).min(BATCH);
        for (i, h) in hdrs.iter().take(n).enumerate() {
            if let Some(l) = self.lens.get_mut(i) {
                *l = (h.msg_len as usize).min(MAX_DATAGRAM);
            }
            if let Some(l) = self.name_lens.get_mut(i) {
                *l = h.msg_hdr.msg_namelen;
            }
        }
        self.count = n;
        Ok(n)
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The `i`th datagram of the last receive.
    pub fn datagram(&self, i: usize) -> &[u8] {
        match (self.bufs.get(i), self.lens.get(i)) {
            (Some(b), Some(&l)) if i < self.count => b.get(..l).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Where the `i`th datagram came from.
    pub fn source(&self, i: usize) -> Option<SocketAddr> {
        let name = self.names.get(i)?;
        let len = *self.name_lens.get(i)?;
        parse_sockaddr(storage_bytes(name, len))
    }

    /// Sends every datagram of the last receive back where it came from
    /// (the echo peer); returns how many went out.
    pub fn echo(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        let n = self.count;
        if self.gso {
            let (bufs, lens, names, name_lens) =
                (&self.bufs, &self.lens, &self.names, &self.name_lens);
            return Ok(send_gso(
                sock.as_raw_fd(),
                n,
                |i| {
                    let to = RawAddr {
                        storage: *names.get(i)?,
                        len: *name_lens.get(i)?,
                    };
                    Some((to, bufs.get(i)?.as_ptr(), *lens.get(i)?))
                },
                &mut self.gso,
            ));
        }
        let mut iov: [libc::iovec; BATCH] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; BATCH];
        // SAFETY: all-zero mmsghdr is valid.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..n {
            let (Some(buf), Some(&len), Some(name), Some(&nlen), Some(v), Some(h)) = (
                self.bufs.get_mut(i),
                self.lens.get(i),
                self.names.get_mut(i),
                self.name_lens.get(i),
                iov.get_mut(i),
                hdrs.get_mut(i),
            ) else {
                break;
            };
            v.iov_base = buf.as_mut_ptr().cast();
            v.iov_len = len;
            h.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = nlen;
            h.msg_hdr.msg_iov = v;
            h.msg_hdr.msg_iovlen = 1;
        }
        send_headers(sock.as_raw_fd(), &mut hdrs[..n])
    }
}

/// `sendmmsg` over prepared headers, retrying the tail after a partial send;
/// returns how many were sent (stops early when the socket buffer is full).
fn send_headers(fd: RawFd, hdrs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    let mut done = 0usize;
    while done < hdrs.len() {
        let rest = &mut hdrs[done..];
        // SAFETY: every header in `rest` points at live buffers and addresses
        // that outlive this call.
        let rc = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as u32, 0) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(done),
                _ if done > 0 => return Ok(done),
                _ => return Err(e),
            }
        }
        let sent = usize::try_from(rc).unwrap_or(0);
        if sent == 0 {
            break;
        }
        done += sent;
    }
    Ok(done)
}

/// Up to BATCH datagrams composed in place, sent with one `sendmmsg` on a
/// connected socket (or to per-datagram destinations).
pub struct SendBatch {
    /// Send with UDP GSO (equal-size runs per destination in one send).
    pub gso: bool,
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    lens: [usize; BATCH],
    dests: Vec<RawAddr>,
    count: usize,
}

impl Default for SendBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl SendBatch {
    pub fn with_gso(mut self, gso: bool) -> Self {
        self.gso = gso;
        self
    }

    pub fn new() -> Self {
        Self {
            gso: false,
            bufs: vec![[0u8; MAX_DATAGRAM]; BATCH],
            lens: [0; BATCH],
            dests: vec![RawAddr::from_std(SocketAddr::from(([127, 0, 0, 1], 0))); BATCH],
            count: 0,
        }
    }

    pub fn clear(&mut self) {
        self.count = 0;
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn is_full(&self) -> bool {
        self.count >= BATCH
    }

    /// Composes the next datagram with `fill` (which returns its length);
    /// `dest` only matters for unconnected sockets. False when full or when
    /// `fill` wrote nothing.
    pub fn push(
        &mut self,
        dest: Option<SocketAddr>,
        fill: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> bool {
        let i = self.count;
        let (Some(buf), Some(len)) = (self.bufs.get_mut(i), self.lens.get_mut(i)) else {
            return false;
        };
        match fill(buf) {
            Some(n) if n > 0 && n <= MAX_DATAGRAM => *len = n,
            _ => return false,
        }
        if let (Some(d), Some(slot)) = (dest, self.dests.get_mut(i)) {
            *slot = RawAddr::from_std(d);
        }
        self.count += 1;
        true
    }

    /// Sends what was pushed; `with_dest` for unconnected sockets. Returns how
    /// many went out (a prefix of the batch). The batch is cleared.
    pub fn send(&mut self, sock: &UdpSocket, with_dest: bool) -> io::Result<usize> {
        let n = self.count;
        self.count = 0;
        if self.gso && n > 1 {
            let peer = if with_dest {
                None
            } else {
                Some(RawAddr::from_std(sock.peer_addr()?))
            };
            let (bufs, lens, dests) = (&self.bufs, &self.lens, &self.dests);
            return Ok(send_gso(
                sock.as_raw_fd(),
                n,
                |i| {
                    let to = match peer {
                        Some(p) => p,
                        None => *dests.get(i)?,
                    };
                    Some((to, bufs.get(i)?.as_ptr(), *lens.get(i)?))
                },
                &mut self.gso,
            ));
        }
        let mut iov: [libc::iovec; BATCH] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; BATCH];
        // SAFETY: all-zero mmsghdr is valid.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..n {
            let (Some(buf), Some(&len), Some(dest), Some(v), Some(h)) = (
                self.bufs.get_mut(i),
                self.lens.get(i),
                self.dests.get_mut(i),
                iov.get_mut(i),
                hdrs.get_mut(i),
            ) else {
                break;
            };
            v.iov_base = buf.as_mut_ptr().cast();
            v.iov_len = len;
            if with_dest {
                h.msg_hdr.msg_name = (&mut dest.storage as *mut libc::sockaddr_storage).cast();
                h.msg_hdr.msg_namelen = dest.len;
            }
            h.msg_hdr.msg_iov = v;
            h.msg_hdr.msg_iovlen = 1;
        }
        send_headers(sock.as_raw_fd(), &mut hdrs[..n])
    }
}

/// CPU time of the calling thread, in nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time of this whole process (all threads, user + system), in nanoseconds.
pub fn process_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live timespec.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return 0;
    }
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// Raises the open-files soft limit to the hard limit (thousands of client
/// sockets); returns the limit now in force.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            return want.rlim_cur;
        }
    }
    lim.rlim_cur
}

/// Clock ticks per second for /proc/PID/stat times.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: plain syscall.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// Whether we run as root (network namespaces need it).
pub fn is_root() -> bool {
    // SAFETY: plain syscall.
    unsafe { libc::geteuid() == 0 }
}

/// Sends SIGTERM or SIGKILL to one process by PID.
pub fn signal_pid(pid: u32, kill: bool) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    let sig = if kill { libc::SIGKILL } else { libc::SIGTERM };
    // SAFETY: plain syscall on a positive PID (never a group or "all").
    unsafe { libc::kill(pid, sig) == 0 }
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Installs a SIGINT/SIGTERM handler that only sets a flag, so a run stops
/// early but still reports, and servers we started are still killed by their guards.
pub fn install_interrupt_handler() {
    let handler: extern "C" fn(libc::c_int) = on_sigint;
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed)
}

/// The child gets SIGKILL when the thread that started it (loadgen's main
/// thread) dies, so a crashed or killed loadgen leaves no server behind.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only makes
    // one async-signal-safe syscall.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Makes this process get SIGTERM when its parent dies (the netns child of `compare`).
pub fn term_with_parent() {
    // SAFETY: plain syscall.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
}
