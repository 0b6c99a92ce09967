//! The send path: what a loop turn queues (zero-copy ranges of ring buffers
//! or owned bytes), turned into SendMsg entries grouped into GSO runs at its
//! end, and the completions that free their slots and buffers.

use std::hash::BuildHasher;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::RawFd;

use io_uring::opcode;
use io_uring::types::Fd;

use super::{user_data, UringBackend, KIND_SEND};
use crate::io::gso::{is_gso_refusal, plan_runs, segment_cmsg, CMSG_WORDS, MAX_SEGMENTS};
use crate::io::sockaddr::{storage_bytes, RawAddr};
use crate::io::SendQueue;

/// One SendMsg in flight: everything the kernel reads lives here, boxed so it
/// never moves until the completion arrives.
pub(super) struct SendSlot {
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
    pub(super) fn empty() -> Self {
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
pub(super) type ResolvedSend = (
    RawFd,
    RawAddr,
    *const u8,
    usize,
    Option<Vec<u8>>,
    Option<u16>,
    u32,
);

pub(super) enum PendingPayload {
    Received { bid: u16, range: Range<usize> },
    Owned(Vec<u8>),
}

pub(super) struct PendingSend {
    pub(super) fd: RawFd,
    pub(super) to: SocketAddr,
    pub(super) payload: PendingPayload,
}

pub(super) struct Queue<'a> {
    pub(super) sends: &'a mut Vec<PendingSend>,
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

impl UringBackend {
    /// Turns queued sends into SendMsg entries: per socket and destination,
    /// equal-size runs become one GSO send (UDP_SEGMENT), as in the batch backend.
    pub(super) fn submit_pending(&mut self) -> io::Result<()> {
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

    pub(super) fn complete_send(&mut self, index: usize, result: i32) {
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
