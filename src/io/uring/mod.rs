//! The io_uring backend (the `io-uring` crate, used directly).
//!
//! Each registered socket has one multishot RecvMsg armed against a provided
//! buffer ring, so the kernel completes many datagrams per wait with no
//! per-packet submission. Sends are SendMsg entries queued during a loop turn
//! and submitted together. A forwarded datagram is sent straight out of its
//! ring buffer; the buffer returns to the ring when the last send from it
//! completes.
//!
//! Here: ring setup, arming receives, the wake eventfd and watched fds, and
//! the completion loop (`Backend::poll`). `buf_ring`: the provided-buffer
//! rings; `recv`: parsing a received buffer for the worker; `send`: queued
//! sends, SendMsg entries and GSO runs, send completions.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::types::{Fd, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};

use super::gro::{GRO_CMSG_LEN, GRO_SPREAD_LEN, GRO_TYPICAL_SEGMENTS};
use super::gso::Run;
use super::{
    close_fd, new_eventfd, try_enable_gro, Backend, BackendCounters, BackendKind, Received,
    RecvOptions, SendQueue, Token, Waker, HEADROOM, MAX_DATAGRAM, TAILROOM,
};

mod buf_ring;
mod recv;
mod send;
use buf_ring::BufRing;
use send::{PendingPayload, PendingSend, ResolvedSend, SendSlot};

/// Buffers in the provided ring (a power of two).
const RING_BUFFERS: u16 = 1024;
const BUFFER_GROUP: u16 = 0;
/// io_uring_recvmsg_out header + the name area we ask for (a sockaddr_storage).
const NAME_LEN: usize = std::mem::size_of::<libc::sockaddr_storage>();
const RECV_PREFIX: usize = 16 + NAME_LEN;
const BUFFER_LEN: usize = RECV_PREFIX + MAX_DATAGRAM + TAILROOM;
/// GRO sockets receive into a second ring of larger buffers (a power of two of
/// them), ids `RING_BUFFERS..RING_BUFFERS + GRO_BUFFERS`; the prefix has room
/// for the UDP_GRO cmsg, and the payload area for a spread burst (see `gro`).
const GRO_BUFFERS: u16 = 64;
const GRO_GROUP: u16 = 1;
const GRO_RECV_PREFIX: usize = RECV_PREFIX + GRO_CMSG_LEN;
const GRO_BUFFER_LEN: usize = GRO_RECV_PREFIX + GRO_SPREAD_LEN;
const _: () = assert!(RECV_PREFIX >= HEADROOM && GRO_RECV_PREFIX >= HEADROOM);
const SQ_ENTRIES: u32 = 2048;

const KIND_SHIFT: u32 = 60;
const KIND_RECV: u64 = 1;
const KIND_SEND: u64 = 2;
const KIND_WAKE: u64 = 3;
const KIND_CANCEL: u64 = 4;
/// A watched fd (`Backend::watch`): a multishot poll that only wakes the wait.
const KIND_WATCH: u64 = 5;

fn user_data(kind: u64, value: u64) -> u64 {
    (kind << KIND_SHIFT) | (value & ((1 << KIND_SHIFT) - 1))
}

pub struct UringBackend {
    ring: IoUring,
    /// A watched fd's poll completed (`take_watch_ready`).
    watch_ready: bool,
    plain: BufRing,
    /// Created at the first GRO registration.
    gro: Option<BufRing>,
    /// Sends still reading each buffer (both rings' ids).
    buffer_refs: Vec<u16>,
    recv_msghdr: Box<libc::msghdr>,
    recv_msghdr_gro: Box<libc::msghdr>,
    /// Cleared for good when the kernel refuses UDP_GRO.
    gro_allowed: bool,
    /// Segment ranges of one spread receive (reused).
    ranges: Vec<Range<usize>>,
    /// Each socket's fd and whether it coalesces (UDP GRO).
    registered: HashMap<Token, (RawFd, bool), foldhash::fast::RandomState>,
    slots: Vec<Option<Box<SendSlot>>>,
    free_slots: Vec<usize>,
    /// Completed slots kept for reuse, so a send allocates nothing once warm.
    /// Boxed because they move into `slots`, where the kernel holds pointers into them.
    #[allow(clippy::vec_box)]
    spare_slots: Vec<Box<SendSlot>>,
    /// Cleared for good when the kernel refuses UDP_SEGMENT.
    gso_enabled: bool,
    counters: BackendCounters,
    /// Reused every flush, so the send path allocates nothing once warm.
    resolved: Vec<ResolvedSend>,
    /// (socket, destination hash, position) per resolved send, sorted instead of the sends.
    send_keys: Vec<(RawFd, u64, u32)>,
    sorted: Vec<ResolvedSend>,
    runs: Vec<Run>,
    completions: Vec<(u64, i32, u32)>,
    /// Multishot receives to re-arm after this turn's completions.
    rearm: Vec<(RawFd, Token, bool)>,
    pending: Vec<PendingSend>,
    eventfd: RawFd,
    wake_buf: Box<u64>,
}

// SAFETY: the raw pointers point into memory this backend owns; it is moved
// into its worker thread once and used only there.
#[allow(unsafe_code)]
unsafe impl Send for UringBackend {}

impl UringBackend {
    pub fn new() -> io::Result<Self> {
        // SINGLE_ISSUER + DEFER_TASKRUN (6.1+): completion work runs only when
        // this thread waits for completions, never as an interrupt of it; the
        // ring belongs to the thread that creates it. Older kernels get
        // COOP_TASKRUN (5.19+), then plain.
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(SQ_ENTRIES)
            .or_else(|_| IoUring::builder().setup_coop_taskrun().build(SQ_ENTRIES))
            .or_else(|_| IoUring::builder().build(SQ_ENTRIES))?;
        let plain = BufRing::new(&ring, BUFFER_GROUP, RING_BUFFERS, BUFFER_LEN, 0)?;
        // SAFETY: msghdr is plain old data; zero is valid.
        #[allow(unsafe_code)]
        let mut recv_msghdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        recv_msghdr.msg_namelen = NAME_LEN as libc::socklen_t;
        // The kernel reserves the cmsg area after the name in each GRO buffer;
        // the pointer is never used by multishot RecvMsg, only the length.
        // SAFETY: msghdr is plain old data; zero is valid.
        #[allow(unsafe_code)]
        let mut recv_msghdr_gro: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        recv_msghdr_gro.msg_namelen = NAME_LEN as libc::socklen_t;
        recv_msghdr_gro.msg_controllen = GRO_CMSG_LEN;
        let eventfd = new_eventfd()?;
        let mut backend = Self {
            ring,
            watch_ready: false,
            plain,
            gro: None,
            buffer_refs: vec![0; usize::from(RING_BUFFERS + GRO_BUFFERS)],
            recv_msghdr,
            recv_msghdr_gro,
            gro_allowed: true,
            ranges: Vec::with_capacity(64),
            registered: HashMap::default(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            spare_slots: Vec::new(),
            gso_enabled: true,
            counters: BackendCounters::default(),
            resolved: Vec::new(),
            send_keys: Vec::new(),
            sorted: Vec::new(),
            runs: Vec::new(),
            completions: Vec::with_capacity(256),
            rearm: Vec::with_capacity(16),
            pending: Vec::new(),
            eventfd,
            wake_buf: Box::new(0),
        };
        backend.arm_wake()?;
        Ok(backend)
    }

    /// Once, at the first GRO socket: a turn may now carry a burst per
    /// buffer; make room for that in every queue (and spare send slots), so
    /// that bursts do not make the send path allocate as they grow.
    fn reserve_for_bursts(&mut self) {
        let most = usize::from(GRO_BUFFERS) * GRO_TYPICAL_SEGMENTS;
        self.pending.reserve(most);
        self.resolved.reserve(most);
        self.send_keys.reserve(most);
        self.sorted.reserve(most);
        self.runs.reserve(most);
        self.completions.reserve(most);
        self.rearm.reserve(256);
        let slots = usize::from(GRO_BUFFERS) * 4;
        self.slots.reserve(slots);
        self.free_slots.reserve(slots);
        self.spare_slots.reserve(slots);
        while self.spare_slots.len() < slots {
            self.spare_slots.push(Box::new(SendSlot::empty()));
        }
    }

    fn push_sqe(&mut self, entry: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every entry we push points only at memory that outlives
            // its completion (boxed slots, the boxed msghdr, the buffer ring).
            #[allow(unsafe_code)]
            let pushed = unsafe { self.ring.submission().push(&entry) };
            if pushed.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    fn arm_recv(&mut self, fd: RawFd, token: Token, gro: bool) -> io::Result<()> {
        let entry = if gro {
            opcode::RecvMsgMulti::new(Fd(fd), &*self.recv_msghdr_gro, GRO_GROUP)
        } else {
            opcode::RecvMsgMulti::new(Fd(fd), &*self.recv_msghdr, BUFFER_GROUP)
        };
        let entry = entry.build().user_data(user_data(KIND_RECV, token));
        self.push_sqe(entry)
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        let ptr = (&mut *self.wake_buf as *mut u64).cast::<u8>();
        let entry = opcode::Read::new(Fd(self.eventfd), ptr, 8)
            .build()
            .user_data(user_data(KIND_WAKE, 0));
        self.push_sqe(entry)
    }

    fn arm_watch(&mut self, fd: RawFd) -> io::Result<()> {
        let entry = opcode::PollAdd::new(Fd(fd), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(user_data(KIND_WATCH, fd as u64));
        self.push_sqe(entry)
    }
}

impl Backend for UringBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Uring
    }

    fn register_with(&mut self, fd: RawFd, token: Token, options: RecvOptions) -> io::Result<()> {
        let mut gro = options.gro && try_enable_gro(fd, &mut self.gro_allowed, &mut self.counters);
        if gro && self.gro.is_none() {
            match BufRing::new(
                &self.ring,
                GRO_GROUP,
                GRO_BUFFERS,
                GRO_BUFFER_LEN,
                RING_BUFFERS,
            ) {
                Ok(r) => {
                    self.gro = Some(r);
                    self.reserve_for_bursts();
                }
                Err(e) => {
                    // No second buffer ring: receive plain (the socket then gets
                    // its datagrams one by one; GRO stays set but never coalesces
                    // into a receive we cannot split, as we do not ask for the cmsg).
                    tracing::warn!("no buffer ring for UDP GRO ({e}); receiving without it");
                    self.gro_allowed = false;
                    self.counters.gro_fallbacks += 1;
                    let _ = super::gro::disable_gro(fd);
                    gro = false;
                }
            }
        }
        self.registered.insert(token, (fd, gro));
        self.arm_recv(fd, token, gro)?;
        self.ring.submit()?;
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd, token: Token) -> io::Result<()> {
        self.registered.remove(&token);
        self.pending.retain(|s| s.fd != fd);
        let entry = opcode::AsyncCancel::new(user_data(KIND_RECV, token))
            .build()
            .user_data(user_data(KIND_CANCEL, 0));
        self.push_sqe(entry)?;
        // Submit and let the cancellation complete now (with DEFER_TASKRUN it
        // only runs while we wait), so the kernel's reference to the socket is
        // gone when the caller closes it and its port can be bound again at once.
        match self.ring.submit_and_wait(1) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn take_watch_ready(&mut self) -> bool {
        std::mem::take(&mut self.watch_ready)
    }

    fn watch(&mut self, fd: RawFd) -> io::Result<()> {
        self.arm_watch(fd)?;
        self.ring.submit()?;
        Ok(())
    }

    fn waker(&self) -> Waker {
        Waker { fd: self.eventfd }
    }

    fn poll(
        &mut self,
        timeout: Duration,
        handler: &mut dyn FnMut(&mut dyn SendQueue, Received<'_>),
    ) -> io::Result<()> {
        self.submit_pending()?;
        let ts = Timespec::new()
            .sec(timeout.as_secs())
            .nsec(timeout.subsec_nanos());
        let args = SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e)
                if e.raw_os_error() == Some(libc::ETIME)
                    || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => return Err(e),
        }
        let mut completions = std::mem::take(&mut self.completions);
        completions.clear();
        completions.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );

        let mut rearm = std::mem::take(&mut self.rearm);
        rearm.clear();
        for &(data, result, flags) in &completions {
            let kind = data >> KIND_SHIFT;
            let value = data & ((1 << KIND_SHIFT) - 1);
            match kind {
                KIND_RECV => {
                    let token = value;
                    if !cqueue::more(flags) {
                        if let Some(&(fd, gro)) = self.registered.get(&token) {
                            rearm.push((fd, token, gro));
                        }
                    }
                    if result < 0 {
                        continue; // ENOBUFS (re-armed once buffers return), ECANCELED, ...
                    }
                    let Some(bid) = cqueue::buffer_select(flags) else {
                        continue;
                    };
                    if let Some(refs) = self.buffer_refs.get_mut(usize::from(bid)) {
                        *refs = 1; // held while the handler runs
                    }
                    if let Some(&(_, gro)) = self.registered.get(&token) {
                        self.deliver(token, bid, gro, handler);
                    }
                    self.release_buffer(bid);
                }
                KIND_SEND => self.complete_send(value as usize, result),
                KIND_WAKE => self.arm_wake()?,
                // The stream side drains its own set; re-arm when the kernel
                // ended the multishot poll.
                KIND_WATCH => {
                    self.watch_ready = true;
                    if !cqueue::more(flags) {
                        self.arm_watch(value as RawFd)?;
                    }
                }
                _ => {}
            }
        }
        self.completions = completions;
        self.publish_tail();
        for &(fd, token, gro) in &rearm {
            self.arm_recv(fd, token, gro)?;
        }
        self.rearm = rearm;
        self.flush()
    }

    fn send_owned(&mut self, fd: RawFd, to: SocketAddr, data: Vec<u8>) {
        self.pending.push(PendingSend {
            fd,
            to,
            payload: PendingPayload::Owned(data),
        });
    }

    fn flush(&mut self) -> io::Result<()> {
        self.submit_pending()?;
        self.ring.submit()?;
        Ok(())
    }

    fn counters(&self) -> BackendCounters {
        self.counters
    }
}

impl Drop for UringBackend {
    fn drop(&mut self) {
        self.plain.unregister(&self.ring);
        if let Some(gro) = self.gro.as_mut() {
            gro.unregister(&self.ring);
        }
        close_fd(self.eventfd);
    }
}
