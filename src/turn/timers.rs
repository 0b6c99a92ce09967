//! Expiry timers: at most one entry per key, in a binary min-heap that can
//! remove any entry.
//!
//! Why this shape (issue 16): freeing an object must free its timer, or a
//! client that churns allocations grows the queue by one entry per free until
//! the old deadlines pass (10 minutes of allocations: 1.4 GB in a soak). The
//! three field-tested answers were a hierarchical timing wheel, an indexed
//! heap with removal, and lazy deletion with compaction. The wheel's O(1) is
//! wasted here — every TURN timer is seconds to an hour out and a shard
//! handles a few thousand timer events a second — and its slots fire early
//! or late by their width; compaction walks the whole queue at once, which is
//! the kind of pause the issue forbids. The indexed heap is exact, removes in
//! O(log n), and holds exactly the live keys:
//!
//! - `heap`: deadlines, ordered (ties first-scheduled first, so runs repeat);
//! - `entries`: one per queued key (dense: a removal moves the last entry
//!   into the hole), with the key's place in `heap`;
//! - `by_key`: key → entry, so scheduling a key again moves its entry and
//!   `cancel` finds it.
//!
//! Memory follows the live keys both ways: the three tables give capacity
//! back once they are less than a quarter full (`fast_map`). No operation
//! touches more than O(log n) entries, except growing or shrinking a table,
//! which copies at most the live entries and only when the live count
//! doubles or quarters — churn at a steady live count never reallocates.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::allocation::AllocationId;
use super::fast_map::{shrink_if_sparse, shrink_vec_if_sparse, FastMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKey {
    Allocation(AllocationId),
    Permission(AllocationId, IpAddr),
    Channel(AllocationId, u16),
    /// An EVEN-PORT reservation (RFC 8656 §7.2: about 30 s).
    Reservation(SocketAddr),
    /// RFC 6062 §5.2/§5.3: a peer connection's ConnectionBind deadline.
    TcpConnection(u32),
}

/// A heap slot: when, in which order among equal deadlines, and whose.
#[derive(Debug, Clone, Copy)]
struct Queued {
    at: Instant,
    seq: u64,
    entry: u32,
}

impl Queued {
    fn before(&self, other: &Queued) -> bool {
        (self.at, self.seq) < (other.at, other.seq)
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: TimerKey,
    /// Index in `Timers::heap`.
    pos: u32,
}

#[derive(Debug, Default)]
pub struct Timers {
    heap: Vec<Queued>,
    entries: Vec<Entry>,
    by_key: FastMap<TimerKey, u32>,
    /// Next tie-breaking sequence number.
    seq: u64,
}

impl Timers {
    /// Arms `key` to fire at `at`. A key already queued is moved to the new
    /// deadline (earlier or later): a key is never queued twice.
    pub fn schedule(&mut self, at: Instant, key: TimerKey) {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        if let Some(entry) = self.by_key.get(&key).copied() {
            let Some(pos) = self.pos_of(entry) else {
                return;
            };
            if let Some(q) = self.heap.get_mut(pos) {
                q.at = at;
                q.seq = seq;
            }
            self.restore(pos);
            return;
        }
        // Beyond u32::MAX queued keys nothing is armed; memory runs out long before.
        let (Ok(entry), Ok(pos)) = (
            u32::try_from(self.entries.len()),
            u32::try_from(self.heap.len()),
        ) else {
            return;
        };
        self.entries.push(Entry { key, pos });
        self.heap.push(Queued { at, seq, entry });
        self.by_key.insert(key, entry);
        self.sift_up(self.heap.len() - 1);
    }

    /// Forgets `key`'s timer; false if none was queued.
    pub fn cancel(&mut self, key: &TimerKey) -> bool {
        match self.by_key.remove(key) {
            Some(entry) => {
                self.remove_entry(entry);
                true
            }
            None => false,
        }
    }

    /// When `key` fires, if it is queued.
    pub fn deadline(&self, key: &TimerKey) -> Option<Instant> {
        let entry = *self.by_key.get(key)?;
        self.heap.get(self.pos_of(entry)?).map(|q| q.at)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.first().map(|q| q.at)
    }

    /// Removes and returns the earliest entry due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, TimerKey)> {
        let first = *self.heap.first()?;
        if first.at > now {
            return None;
        }
        let key = self.entries.get(usize::try_from(first.entry).ok()?)?.key;
        self.by_key.remove(&key);
        self.remove_entry(first.entry);
        Some((first.at, key))
    }

    /// Keys queued: one per live timer.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes the queue's tables hold (capacity, not just use): for tests that
    /// check memory follows the live keys.
    pub fn capacity_bytes(&self) -> usize {
        self.heap.capacity() * std::mem::size_of::<Queued>()
            + self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.by_key.capacity() * (std::mem::size_of::<(TimerKey, u32)>() + 1)
    }

    fn pos_of(&self, entry: u32) -> Option<usize> {
        let e = self.entries.get(usize::try_from(entry).ok()?)?;
        usize::try_from(e.pos).ok()
    }

    /// Takes entry `entry` (already gone from `by_key`) out of the heap and
    /// out of `entries`.
    fn remove_entry(&mut self, entry: u32) {
        let Some(pos) = self.pos_of(entry) else {
            return;
        };
        if pos >= self.heap.len() {
            return;
        }
        self.heap.swap_remove(pos);
        if pos < self.heap.len() {
            // The last slot moved into the hole: tell its entry, then put it
            // where it belongs (it may go either way).
            self.note_pos(pos);
            self.restore(pos);
        }
        let Ok(index) = usize::try_from(entry) else {
            return;
        };
        if index >= self.entries.len() {
            return;
        }
        self.entries.swap_remove(index);
        if let Some(moved) = self.entries.get(index).copied() {
            // The last entry moved into the hole: its heap slot and its key
            // must name the new index.
            if let Some(q) = usize::try_from(moved.pos)
                .ok()
                .and_then(|p| self.heap.get_mut(p))
            {
                q.entry = entry;
            }
            if let Some(e) = self.by_key.get_mut(&moved.key) {
                *e = entry;
            }
        }
        shrink_vec_if_sparse(&mut self.heap);
        shrink_vec_if_sparse(&mut self.entries);
        shrink_if_sparse(&mut self.by_key);
    }

    /// Moves the slot at `pos` up or down to where its deadline belongs.
    fn restore(&mut self, pos: usize) {
        if self.sift_up(pos) == pos {
            self.sift_down(pos);
        }
    }

    /// Records in the slot's entry that it now sits at `pos`.
    fn note_pos(&mut self, pos: usize) {
        let (Some(q), Ok(p)) = (self.heap.get(pos), u32::try_from(pos)) else {
            return;
        };
        if let Some(e) = usize::try_from(q.entry)
            .ok()
            .and_then(|i| self.entries.get_mut(i))
        {
            e.pos = p;
        }
    }

    fn before(&self, a: usize, b: usize) -> bool {
        match (self.heap.get(a), self.heap.get(b)) {
            (Some(x), Some(y)) => x.before(y),
            _ => false,
        }
    }

    /// Both in bounds (checked by `before` returning true first).
    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.note_pos(a);
        self.note_pos(b);
    }

    /// Returns where the slot ended up.
    fn sift_up(&mut self, mut pos: usize) -> usize {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if !self.before(pos, parent) {
                break;
            }
            self.swap(pos, parent);
            pos = parent;
        }
        pos
    }

    fn sift_down(&mut self, mut pos: usize) {
        loop {
            let left = 2 * pos + 1;
            let right = left + 1;
            let mut first = pos;
            if self.before(left, first) {
                first = left;
            }
            if self.before(right, first) {
                first = right;
            }
            if first == pos {
                return;
            }
            self.swap(pos, first);
            pos = first;
        }
    }

    /// Checks the invariants (tests only): heap order, entries and positions agree.
    #[cfg(test)]
    #[allow(clippy::indexing_slicing)]
    fn check(&self) {
        assert_eq!(self.heap.len(), self.entries.len());
        assert_eq!(self.by_key.len(), self.entries.len());
        for (pos, q) in self.heap.iter().enumerate() {
            if pos > 0 {
                assert!(!q.before(&self.heap[(pos - 1) / 2]), "heap order at {pos}");
            }
            assert_eq!(self.entries[q.entry as usize].pos as usize, pos);
        }
        for (i, e) in self.entries.iter().enumerate() {
            assert_eq!(self.by_key[&e.key] as usize, i);
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn key(n: u16) -> TimerKey {
        TimerKey::TcpConnection(u32::from(n))
    }

    #[derive(Debug, Clone)]
    enum Op {
        Schedule(u16, u16),
        Cancel(u16),
        Pop(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u16..64, 0u16..1000).prop_map(|(k, t)| Op::Schedule(k, t)),
            1 => (0u16..64).prop_map(Op::Cancel),
            1 => (0u16..1000).prop_map(Op::Pop),
        ]
    }

    proptest! {
        /// Against a model (a map of key → deadline): the same keys fire, in
        /// deadline order, and the queue holds exactly the live keys.
        #[test]
        fn behaves_like_a_map_of_deadlines(ops in proptest::collection::vec(op(), 1..400)) {
            let base = Instant::now();
            let at = |t: u16| base + Duration::from_millis(u64::from(t));
            let mut timers = Timers::default();
            let mut model: BTreeMap<TimerKey, Instant> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Schedule(k, t) => {
                        timers.schedule(at(t), key(k));
                        model.insert(key(k), at(t));
                    }
                    Op::Cancel(k) => {
                        prop_assert_eq!(timers.cancel(&key(k)), model.remove(&key(k)).is_some());
                    }
                    Op::Pop(t) => {
                        let now = at(t);
                        let mut last = None;
                        while let Some((when, k)) = timers.pop_due(now) {
                            prop_assert!(when <= now);
                            prop_assert_eq!(model.remove(&k), Some(when));
                            prop_assert!(last.is_none_or(|l| l <= when), "fired out of order");
                            last = Some(when);
                        }
                        prop_assert!(model.values().all(|w| *w > now), "a due key stayed queued");
                    }
                }
                timers.check();
                prop_assert_eq!(timers.len(), model.len());
                prop_assert_eq!(timers.next_deadline(), model.values().min().copied());
            }
        }
    }

    #[test]
    fn rescheduling_moves_the_one_entry_both_ways() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.schedule(t0 + Duration::from_secs(10), key(1));
        timers.schedule(t0 + Duration::from_secs(5), key(2));
        timers.schedule(t0 + Duration::from_secs(1), key(1));
        assert_eq!(timers.len(), 2);
        assert_eq!(timers.next_deadline(), Some(t0 + Duration::from_secs(1)));
        timers.schedule(t0 + Duration::from_secs(20), key(1));
        assert_eq!(timers.len(), 2);
        assert_eq!(timers.deadline(&key(1)), Some(t0 + Duration::from_secs(20)));
        assert_eq!(
            timers.pop_due(t0 + Duration::from_secs(30)),
            Some((t0 + Duration::from_secs(5), key(2)))
        );
        timers.check();
    }

    #[test]
    fn equal_deadlines_fire_in_the_order_scheduled() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        for k in [5, 3, 9, 1] {
            timers.schedule(t0, key(k));
        }
        let fired: Vec<_> = std::iter::from_fn(|| timers.pop_due(t0).map(|(_, k)| k)).collect();
        assert_eq!(fired, vec![key(5), key(3), key(9), key(1)]);
    }

    /// Issue 16: a million schedule/cancel cycles at a steady 100 live keys
    /// leave 100 entries and a queue no larger than a few thousand bytes'
    /// worth of slots; a spike to 200,000 gives its memory back.
    #[test]
    fn churn_keeps_the_queue_at_its_live_size_and_a_spike_shrinks_back() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let live = 100u32;
        for i in 0..1_000_000u32 {
            let at = t0 + Duration::from_secs(600) + Duration::from_millis(u64::from(i));
            timers.schedule(at, TimerKey::TcpConnection(i));
            if i >= live {
                assert!(timers.cancel(&TimerKey::TcpConnection(i - live)));
            }
        }
        assert_eq!(timers.len(), live as usize);
        let steady = timers.capacity_bytes();
        assert!(steady < 1024 * 1024, "{steady} bytes for {live} keys");
        for i in 0..200_000u32 {
            timers.schedule(
                t0,
                TimerKey::Reservation(SocketAddr::from(([127, 0, 0, 1], 0))),
            );
            timers.schedule(
                t0 + Duration::from_secs(1),
                TimerKey::TcpConnection(2_000_000 + i),
            );
        }
        let spike = timers.capacity_bytes();
        for i in 0..200_000u32 {
            assert!(timers.cancel(&TimerKey::TcpConnection(2_000_000 + i)));
        }
        timers.check();
        assert_eq!(timers.len(), live as usize + 1);
        let after = timers.capacity_bytes();
        assert!(
            after * 16 < spike,
            "the spike's {spike} bytes came back only to {after}"
        );
    }
}
