//! The provided-buffer rings the kernel receives into (one of plain
//! datagram buffers, one of larger buffers for GRO sockets), and how the
//! backend finds a buffer, lends it to sends and puts it back.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

use super::UringBackend;

/// One provided-buffer ring: entries shared with the kernel, and the buffers.
pub(super) struct BufRing {
    entries: *mut BufRingEntry,
    layout: Layout,
    group: u16,
    /// Entries (a power of two) and buffers.
    count: u16,
    buf_len: usize,
    /// The first buffer's id (ids are unique across both rings).
    first_id: u16,
    pub(super) buffers: Vec<u8>,
    /// Local copy of the ring's tail.
    tail: u16,
}

impl BufRing {
    pub(super) fn new(
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

    pub(super) fn holds(&self, bid: u16) -> bool {
        bid >= self.first_id && bid - self.first_id < self.count
    }

    /// Buffer `bid`'s place in `buffers`.
    pub(super) fn span(&self, bid: u16) -> Range<usize> {
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

    pub(super) fn unregister(&mut self, ring: &IoUring) {
        let _ = ring.submitter().unregister_buf_ring(self.group);
        // SAFETY: allocated in `new` with this layout; the kernel no longer
        // references it after unregistering (or the ring is being torn down).
        #[allow(unsafe_code)]
        unsafe {
            dealloc(self.entries.cast(), self.layout)
        };
    }
}

impl UringBackend {
    /// Puts buffer `bid` back into its ring (published by `publish_tail`).
    fn push_buffer(&mut self, bid: u16) {
        if self.plain.holds(bid) {
            self.plain.push(bid);
        } else if let Some(gro) = self.gro.as_mut() {
            gro.push(bid);
        }
    }

    pub(super) fn publish_tail(&mut self) {
        self.plain.publish();
        if let Some(gro) = self.gro.as_mut() {
            gro.publish();
        }
    }

    /// Where `range` of buffer `bid` lies, if it is inside that buffer.
    pub(super) fn buffer_ptr(&self, bid: u16, range: &Range<usize>) -> Option<*const u8> {
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

    pub(super) fn release_buffer(&mut self, bid: u16) {
        let Some(refs) = self.buffer_refs.get_mut(usize::from(bid)) else {
            return;
        };
        *refs = refs.saturating_sub(1);
        if *refs == 0 {
            self.push_buffer(bid);
        }
    }
}
