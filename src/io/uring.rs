//! The io_uring backend (the `io-uring` crate, used directly).
//!
//! Each registered socket has one multishot RecvMsg armed against a provided
//! buffer ring, so the kernel completes many datagrams per wait with no
//! per-packet submission. Sends are SendMsg entries queued during a loop turn
//! and submitted together. A forwarded datagram is sent straight out of its
//! ring buffer; the buffer returns to the ring when the last send from it
//! completes.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use io_uring::types::{BufRingEntry, Fd, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};

use super::gro::{
    deliver_segments, gro_segment_size, GRO_CMSG_LEN, GRO_SPREAD_LEN, GRO_TYPICAL_SEGMENTS,
};
use super::gso::{is_gso_refusal, plan_runs, segment_cmsg, Run, CMSG_WORDS, MAX_SEGMENTS};
use super::sockaddr::{parse_sockaddr, storage_bytes, RawAddr};
use super::{
    close_fd, new_eventfd, try_enable_gro, Backend, BackendCounters, BackendKind, Received,
    RecvOptions, SendQueue, Token, Waker, HEADROOM, MAX_DATAGRAM, TAILROOM,
};

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

/// One SendMsg in flight: everything the kernel reads lives here, boxed so it
/// never moves until the completion arrives.
struct SendSlot {
    msghdr: libc::msghdr,
    /// One iovec per datagram; several make a GSO send.
    iovs: Vec<libc::iovec>,
    to: RawAddr,
    cmsg: [u64; CMSG_WORDS],
    /// Composed datagrams this send reads.
    owned: Vec<Vec<u8>>,
    /// Ring buffers this send reads, returned when it completes.
    buffers: Vec<u16>,
}

impl SendSlot {
    fn empty() -> Self {
        Self {
            // SAFETY: msghdr is plain old data; zero is valid.
            #[allow(unsafe_code)]
            msghdr: unsafe { std::mem::zeroed() },
            // Room for the longest GSO run, so a reused slot never grows.
            iovs: Vec::with_capacity(MAX_SEGMENTS),
            to: RawAddr::from_std(SocketAddr::from(([0, 0, 0, 0], 0))),
            cmsg: [0; CMSG_WORDS],
            owned: Vec::new(),
            buffers: Vec::with_capacity(MAX_SEGMENTS),
        }
    }
}

/// A placeholder for out-of-range lookups (never sent).
static EMPTY_ADDR: RawAddr = RawAddr::zeroed();

/// A queued send with its bytes located: socket, destination, data pointer and
/// length, the composed bytes it owns, the ring buffer it reads.
type ResolvedSend = (
    RawFd,
    RawAddr,
    *const u8,
    usize,
    Option<Vec<u8>>,
    Option<u16>,
    u32,
);

enum PendingPayload {
    Received { bid: u16, range: Range<usize> },
    Owned(Vec<u8>),
}

struct PendingSend {
    fd: RawFd,
    to: SocketAddr,
    payload: PendingPayload,
}

struct Queue<'a> {
    sends: &'a mut Vec<PendingSend>,
}

impl SendQueue for Queue<'_> {
    fn send_received(&mut self, fd: RawFd, to: SocketAddr, buf_id: u32, range: Range<usize>) {
        self.sends.push(PendingSend {
            fd,
            to,
            payload: PendingPayload::Received {
                bid: buf_id as u16,
                range,
            },
        });
    }

    fn send_owned(&mut self, fd: RawFd, to: SocketAddr, data: Vec<u8>) {
        self.sends.push(PendingSend {
            fd,
            to,
            payload: PendingPayload::Owned(data),
        });
    }
}

/// One provided-buffer ring: entries shared with the kernel, and the buffers.
struct BufRing {
    entries: *mut BufRingEntry,
    layout: Layout,
    group: u16,
    /// Entries (a power of two) and buffers.
    count: u16,
    buf_len: usize,
    /// The first buffer's id (ids are unique across both rings).
    first_id: u16,
    buffers: Vec<u8>,
    /// Local copy of the ring's tail.
    tail: u16,
}

impl BufRing {
    fn new(
        ring: &IoUring,
        group: u16,
        count: u16,
        buf_len: usize,
        first_id: u16,
    ) -> io::Result<Self> {
        let layout = Layout::from_size_align(
            usize::from(count) * std::mem::size_of::<BufRingEntry>(),
            4096,
        )
        .map_err(|e| io::Error::other(e.to_string()))?;
        // SAFETY: non-zero size, valid alignment; checked for null below.
        #[allow(unsafe_code)]
        let entries = unsafe { alloc_zeroed(layout) }.cast::<BufRingEntry>();
        if entries.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        // SAFETY: the ring memory is page aligned, zeroed, sized for `count`
        // entries, and stays allocated until `unregister` (called from Drop).
        #[allow(unsafe_code)]
        let registered = unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(entries as u64, count, group, 0)
        };
        if let Err(e) = registered {
            // SAFETY: allocated just above with this layout, not registered.
            #[allow(unsafe_code)]
            unsafe {
                dealloc(entries.cast(), layout)
            };
            return Err(e);
        }
        let mut r = Self {
            entries,
            layout,
            group,
            count,
            buf_len,
            first_id,
            buffers: vec![0u8; usize::from(count) * buf_len],
            tail: 0,
        };
        for i in 0..count {
            r.push(first_id + i);
        }
        r.publish();
        Ok(r)
    }

    fn holds(&self, bid: u16) -> bool {
        bid >= self.first_id && bid - self.first_id < self.count
    }

    /// Buffer `bid`'s place in `buffers`.
    fn span(&self, bid: u16) -> Range<usize> {
        let start = usize::from(bid.wrapping_sub(self.first_id)) * self.buf_len;
        start..start + self.buf_len
    }

    /// Puts buffer `bid` at the ring's tail (published by `publish`).
    fn push(&mut self, bid: u16) {
        if !self.holds(bid) {
            return;
        }
        let index = usize::from(self.tail & (self.count - 1));
        let addr = self.buffers.as_mut_ptr().wrapping_add(self.span(bid).start);
        // SAFETY: `index` < count, inside the ring allocation; the kernel only
        // reads entries between its head and the published tail, and this one is
        // past the tail until `publish`.
        #[allow(unsafe_code)]
        unsafe {
            let entry = &mut *self.entries.add(index);
            entry.set_addr(addr as u64);
            entry.set_len(self.buf_len as u32);
            entry.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&mut self) {
        // SAFETY: the tail field lives in the first ring entry, which we own;
        // the kernel reads it concurrently, hence the atomic release store.
        #[allow(unsafe_code)]
        unsafe {
            let tail = BufRingEntry::tail(self.entries)
                .cast_mut()
                .cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    fn unregister(&mut self, ring: &IoUring) {
        let _ = ring.submitter().unregister_buf_ring(self.group);
        // SAFETY: allocated in `new` with this layout; the kernel no longer
        // references it after unregistering (or the ring is being torn down).
        #[allow(unsafe_code)]
        unsafe {
            dealloc(self.entries.cast(), self.layout)
        };
    }
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

    /// Puts buffer `bid` back into its ring (published by `publish_tail`).
    fn push_buffer(&mut self, bid: u16) {
        if self.plain.holds(bid) {
            self.plain.push(bid);
        } else if let Some(gro) = self.gro.as_mut() {
            gro.push(bid);
        }
    }

    fn publish_tail(&mut self) {
        self.plain.publish();
        if let Some(gro) = self.gro.as_mut() {
            gro.publish();
        }
    }

    /// Where `range` of buffer `bid` lies, if it is inside that buffer.
    fn buffer_ptr(&self, bid: u16, range: &Range<usize>) -> Option<*const u8> {
        let ring = if self.plain.holds(bid) {
            &self.plain
        } else {
            self.gro.as_ref().filter(|g| g.holds(bid))?
        };
        if range.start > range.end || range.end > ring.buf_len {
            return None;
        }
        Some(
            ring.buffers
                .as_ptr()
                .wrapping_add(ring.span(bid).start + range.start),
        )
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

    fn release_buffer(&mut self, bid: u16) {
        let Some(refs) = self.buffer_refs.get_mut(usize::from(bid)) else {
            return;
        };
        *refs = refs.saturating_sub(1);
        if *refs == 0 {
            self.push_buffer(bid);
        }
    }

    /// Turns queued sends into SendMsg entries: per socket and destination,
    /// equal-size runs become one GSO send (UDP_SEGMENT), as in the batch backend.
    fn submit_pending(&mut self) -> io::Result<()> {
        let mut pending = std::mem::take(&mut self.pending);
        if pending.is_empty() {
            self.pending = pending;
            return Ok(());
        }
        let mut items = std::mem::take(&mut self.resolved);
        items.clear();
        for send in pending.drain(..) {
            match send.payload {
                PendingPayload::Received { bid, range } => {
                    let Some(ptr) = self.buffer_ptr(bid, &range) else {
                        self.release_buffer(bid);
                        continue;
                    };
                    let order = items.len() as u32;
                    items.push((
                        send.fd,
                        RawAddr::from_std(send.to),
                        ptr,
                        range.len(),
                        None,
                        Some(bid),
                        order,
                    ));
                }
                PendingPayload::Owned(v) => {
                    let (ptr, len) = (v.as_ptr(), v.len());
                    let order = items.len() as u32;
                    items.push((
                        send.fd,
                        RawAddr::from_std(send.to),
                        ptr,
                        len,
                        Some(v),
                        None,
                        order,
                    ));
                }
            }
        }
        self.pending = pending;
        // Bring each socket's and destination's datagrams together, keeping
        // their order: sort small (socket, destination hash, position) keys
        // and permute once, rather than sorting the ~190-byte entries (see
        // gso::group_by_destination; a hash collision only shortens runs).
        let first = items
            .first()
            .map(|i| (i.0, storage_bytes(&i.1.storage, i.1.len)));
        let grouped = items
            .iter()
            .all(|i| Some((i.0, storage_bytes(&i.1.storage, i.1.len))) == first);
        if !grouped {
            let hasher = foldhash::fast::FixedState::with_seed(0x5eed);
            let mut keys = std::mem::take(&mut self.send_keys);
            keys.clear();
            keys.extend(items.iter().map(|i| {
                let dest = hasher.hash_one(storage_bytes(&i.1.storage, i.1.len));
                (i.0, dest, i.6)
            }));
            keys.sort_unstable();
            let mut sorted = std::mem::take(&mut self.sorted);
            sorted.clear();
            for &(_, _, at) in &keys {
                if let Some(i) = items.get_mut(at as usize) {
                    sorted.push((i.0, i.1, i.2, i.3, i.4.take(), i.5, i.6));
                }
            }
            std::mem::swap(&mut items, &mut sorted);
            sorted.clear();
            self.sorted = sorted;
            self.send_keys = keys;
        }
        let mut start = 0;
        while start < items.len() {
            let fd = items.get(start).map_or(-1, |i| i.0);
            let end = items
                .iter()
                .skip(start)
                .position(|i| i.0 != fd)
                .map_or(items.len(), |p| start + p);
            let group = items.get_mut(start..end).unwrap_or(&mut []);
            let mut runs = std::mem::take(&mut self.runs);
            runs.clear();
            plan_runs(
                group.len(),
                |i| group.get(i).map_or((&EMPTY_ADDR, 0), |g| (&g.1, g.3)),
                self.gso_enabled,
                &mut runs,
            );
            for run in runs.iter().copied() {
                let mut slot = self
                    .spare_slots
                    .pop()
                    .unwrap_or_else(|| Box::new(SendSlot::empty()));
                slot.iovs.clear();
                slot.owned.clear();
                slot.buffers.clear();
                for item in group.iter_mut().skip(run.first).take(run.count) {
                    slot.iovs.push(libc::iovec {
                        iov_base: item.2 as *mut libc::c_void,
                        iov_len: item.3,
                    });
                    if let Some(v) = item.4.take() {
                        slot.owned.push(v);
                    }
                    if let Some(bid) = item.5 {
                        slot.buffers.push(bid);
                    }
                }
                if let Some(first) = group.get(run.first) {
                    slot.to = first.1;
                }
                // Point the header at the slot's own (boxed, so stable) fields; the
                // iovec Vec is not touched again until the send completes.
                // SAFETY: msghdr is plain old data; zero is valid.
                #[allow(unsafe_code)]
                let zeroed: libc::msghdr = unsafe { std::mem::zeroed() };
                slot.msghdr = zeroed;
                slot.msghdr.msg_name = (&mut slot.to.storage as *mut libc::sockaddr_storage).cast();
                slot.msghdr.msg_namelen = slot.to.len;
                slot.msghdr.msg_iov = slot.iovs.as_mut_ptr();
                slot.msghdr.msg_iovlen = slot.iovs.len();
                if run.count > 1 {
                    let len = segment_cmsg(&mut slot.cmsg, run.segment as u16);
                    slot.msghdr.msg_control = slot.cmsg.as_mut_ptr().cast();
                    slot.msghdr.msg_controllen = len;
                }
                let msg_ptr: *const libc::msghdr = &slot.msghdr;
                let index = match self.free_slots.pop() {
                    Some(i) => {
                        if let Some(s) = self.slots.get_mut(i) {
                            *s = Some(slot);
                        }
                        i
                    }
                    None => {
                        self.slots.push(Some(slot));
                        self.slots.len() - 1
                    }
                };
                let entry = opcode::SendMsg::new(Fd(fd), msg_ptr)
                    .build()
                    .user_data(user_data(KIND_SEND, index as u64));
                self.push_sqe(entry)?;
            }
            self.runs = runs;
            start = end;
        }
        items.clear();
        self.resolved = items;
        Ok(())
    }

    fn complete_send(&mut self, index: usize, result: i32) {
        let Some(mut slot) = self.slots.get_mut(index).and_then(Option::take) else {
            return;
        };
        self.free_slots.push(index);
        let segments = slot.iovs.len() as u64;
        if result < 0 {
            if segments > 1 && is_gso_refusal(-result) {
                // The kernel or device cannot segment: plain sends from now on.
                // This run is lost (UDP); the counter says so.
                self.gso_enabled = false;
                self.counters.gso_fallbacks += 1;
            }
            self.counters.dropped_sends += segments;
        } else if segments > 1 {
            self.counters.gso_sends += 1;
            self.counters.gso_segments += segments;
        }
        let buffers = std::mem::take(&mut slot.buffers);
        for bid in &buffers {
            self.release_buffer(*bid);
        }
        slot.buffers = buffers;
        slot.buffers.clear();
        slot.owned.clear();
        self.spare_slots.push(slot);
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

impl UringBackend {
    /// Parses one received buffer and hands it to the worker: one datagram,
    /// or, from a GRO socket, each segment of a coalesced burst after
    /// spreading them in the buffer (see `gro`).
    fn deliver(
        &mut self,
        token: Token,
        bid: u16,
        gro: bool,
        handler: &mut dyn FnMut(&mut dyn SendQueue, Received<'_>),
    ) {
        let (prefix, buf) = if self.plain.holds(bid) {
            let span = self.plain.span(bid);
            (RECV_PREFIX, self.plain.buffers.get_mut(span))
        } else {
            let Some(ring) = self.gro.as_mut().filter(|g| g.holds(bid)) else {
                return;
            };
            let span = ring.span(bid);
            (GRO_RECV_PREFIX, ring.buffers.get_mut(span))
        };
        let Some(buf) = buf else {
            return;
        };
        // io_uring_recvmsg_out: namelen, controllen, payloadlen, flags (u32 each).
        let header = |i: usize| {
            buf.get(i * 4..i * 4 + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_ne_bytes)
        };
        let (Some(namelen), Some(controllen), Some(payloadlen), Some(msg_flags)) =
            (header(0), header(1), header(2), header(3))
        else {
            return;
        };
        if msg_flags & libc::MSG_TRUNC as u32 != 0 {
            return; // larger than any datagram we relay
        }
        let name_end = 16 + (namelen as usize).min(NAME_LEN);
        let Some(from) = buf.get(16..name_end).and_then(parse_sockaddr) else {
            return;
        };
        let segment = if gro {
            let control = RECV_PREFIX..RECV_PREFIX + (controllen as usize).min(GRO_CMSG_LEN);
            buf.get(control).and_then(gro_segment_size)
        } else {
            None
        };
        let len = (payloadlen as usize).min(buf.len().saturating_sub(prefix));
        let mut queue = Queue {
            sends: &mut self.pending,
        };
        let before = queue.sends.len();
        let delivered = deliver_segments(
            buf,
            prefix,
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
                    buf_id: u32::from(bid),
                };
                handler(&mut queue, received);
            },
        );
        // Plain sockets: a datagram over MAX_DATAGRAM, as a truncated one in batch.
        if !delivered && gro {
            self.counters.gro_dropped += 1;
        }
        // Every in-place send from this buffer holds a reference until it completes.
        let added = self
            .pending
            .iter()
            .skip(before)
            .filter(|s| matches!(s.payload, PendingPayload::Received { bid: b, .. } if b == bid))
            .count();
        if let Some(refs) = self.buffer_refs.get_mut(usize::from(bid)) {
            *refs = refs.saturating_add(added as u16);
        }
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
