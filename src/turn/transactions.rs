//! The transaction cache (RFC 8489 §6.3.4): the answer to each
//! retransmittable request, kept for `transaction_cache_lifetime` (40 s) so a
//! retransmission gets the same answer without acting twice.
//!
//! Shaped for churn (issue 16). At thousands of requests a second a worker
//! holds up to `max_cached_transactions` (100,000) answers, and two ways of
//! keeping them failed in soaks:
//! - one big map stalled the worker for tens of milliseconds whenever it grew
//!   or rehashed (75 ms measured);
//! - removing each answer as it expired left the hash tables' deleted-entry
//!   markers behind until the tables ran out of free slots and doubled, a
//!   minute or two after the cache had filled (+65 MB of RSS between 115 s
//!   and 170 s of a soak, with the number of answers flat: heaptrack put all
//!   of it in the tables' resizes).
//!
//! So answers are kept in **generations**: each generation takes the answers
//! of one quarter of the lifetime, and goes whole once its newest answer has
//! lived a lifetime (every answer lives between one and 1¼ lifetimes). Nothing
//! is ever removed one by one, so the tables never fill with deleted markers;
//! a generation that goes is cleared and kept as the next one, with its
//! memory, so at a steady rate nothing is allocated at all once the first
//! lifetime has passed. Within a generation the answers are spread over 16
//! maps by a keyed hash (clients choose transaction ids, so the pick must not
//! be theirs), so a map that grows copies 1/16 of a generation; the answers'
//! bytes sit one after another in the map's byte buffer, not in an
//! allocation each.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::fast_map::{fast_map, FastMap};
use crate::stun::{Method, TransactionId};

/// Maps per generation.
const SHARDS: usize = 16;
/// Generations per lifetime: a generation starts every lifetime / 4.
const GENERATIONS_PER_LIFETIME: u32 = 4;

/// A client's transport address and the request's transaction id.
pub(crate) type TransactionKey = (SocketAddr, TransactionId);

/// What the cache holds for a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CachedResponse<'a> {
    /// Being answered (an Allocate waiting for its relay socket): a
    /// retransmission is dropped.
    InProgress,
    /// The answer, and the method it answered (a different request reusing
    /// the transaction id is not a retransmission).
    Done(Method, &'a [u8]),
}

/// Where a cached answer's bytes are in its map's buffer.
#[derive(Debug, Clone, Copy)]
enum Slot {
    InProgress,
    Done { method: Method, at: u32, len: u32 },
}

#[derive(Debug)]
struct Shard {
    slots: FastMap<TransactionKey, Slot>,
    bytes: Vec<u8>,
}

impl Shard {
    fn new() -> Self {
        Self {
            slots: fast_map(),
            bytes: Vec::new(),
        }
    }

    fn get(&self, key: &TransactionKey) -> Option<CachedResponse<'_>> {
        Some(match *self.slots.get(key)? {
            Slot::InProgress => CachedResponse::InProgress,
            Slot::Done { method, at, len } => {
                let at = at as usize;
                CachedResponse::Done(method, self.bytes.get(at..at + len as usize)?)
            }
        })
    }

    fn slot_for(&mut self, response: CachedResponse<'_>) -> Option<Slot> {
        Some(match response {
            CachedResponse::InProgress => Slot::InProgress,
            CachedResponse::Done(method, bytes) => {
                let at = u32::try_from(self.bytes.len()).ok()?;
                let len = u32::try_from(bytes.len()).ok()?;
                self.bytes.extend_from_slice(bytes);
                Slot::Done { method, at, len }
            }
        })
    }
}

#[derive(Debug)]
struct Generation {
    started: Instant,
    /// When its newest answer went in: the generation goes a lifetime later.
    last_put: Instant,
    shards: Vec<Shard>,
    len: usize,
}

impl Generation {
    fn new(now: Instant) -> Self {
        Self {
            started: now,
            last_put: now,
            shards: (0..SHARDS).map(|_| Shard::new()).collect(),
            len: 0,
        }
    }
}

#[derive(Debug)]
pub(crate) struct TransactionCache {
    lifetime: Duration,
    /// Oldest first.
    generations: VecDeque<Generation>,
    /// The last generation to go, emptied, kept for the next to start.
    spare: Option<Generation>,
    pick: foldhash::fast::RandomState,
    len: usize,
}

impl TransactionCache {
    pub(crate) fn new(lifetime: Duration) -> Self {
        Self {
            lifetime,
            generations: VecDeque::new(),
            spare: None,
            pick: foldhash::fast::RandomState::default(),
            len: 0,
        }
    }

    fn shard_index(&self, key: &TransactionKey) -> usize {
        // The top 4 bits (SHARDS = 16) of a keyed 64-bit hash: uniform
        // whatever ids the clients pick.
        (self.pick.hash_one(key) >> 60) as usize
    }

    pub(crate) fn get(&self, key: &TransactionKey) -> Option<CachedResponse<'_>> {
        let index = self.shard_index(key);
        self.generations
            .iter()
            .rev()
            .find_map(|g| g.shards.get(index)?.get(key))
    }

    /// Caches `response` under `key` at `now`. A key already cached gets the
    /// new response and keeps its generation; a new key past `cap` entries
    /// is not cached (false).
    pub(crate) fn put(
        &mut self,
        now: Instant,
        key: TransactionKey,
        response: CachedResponse<'_>,
        cap: usize,
    ) -> bool {
        let index = self.shard_index(&key);
        for generation in self.generations.iter_mut().rev() {
            let Some(shard) = generation.shards.get_mut(index) else {
                continue;
            };
            if shard.slots.contains_key(&key) {
                let Some(slot) = shard.slot_for(response) else {
                    return false;
                };
                shard.slots.insert(key, slot);
                return true;
            }
        }
        if self.len >= cap {
            return false;
        }
        let span = self.lifetime / GENERATIONS_PER_LIFETIME;
        let start_new = self
            .generations
            .back()
            .is_none_or(|newest| now >= newest.started + span);
        if start_new {
            let mut next = self.spare.take().unwrap_or_else(|| Generation::new(now));
            next.started = now;
            self.generations.push_back(next);
        }
        let Some(newest) = self.generations.back_mut() else {
            return false;
        };
        let Some(shard) = newest.shards.get_mut(index) else {
            return false;
        };
        let Some(slot) = shard.slot_for(response) else {
            return false;
        };
        shard.slots.insert(key, slot);
        newest.len += 1;
        newest.last_put = now;
        self.len += 1;
        true
    }

    /// Forgets every generation whose newest answer has lived its lifetime.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some(oldest) = self.generations.front() {
            if now < oldest.last_put + self.lifetime {
                break;
            }
            let Some(gone) = self.generations.pop_front() else {
                break;
            };
            self.len = self.len.saturating_sub(gone.len);
            self.recycle(gone);
        }
    }

    /// Empties a generation that went and keeps it as the spare, its maps
    /// sized for what the live generations hold (so memory follows the
    /// load down, and a steady load reuses it without allocating).
    fn recycle(&mut self, mut gone: Generation) {
        if self.spare.is_some() {
            return;
        }
        for (index, shard) in gone.shards.iter_mut().enumerate() {
            let (mut slots, mut bytes) = (0, 0);
            for g in &self.generations {
                if let Some(live) = g.shards.get(index) {
                    slots = slots.max(live.slots.len());
                    bytes = bytes.max(live.bytes.len());
                }
            }
            shard.slots.clear();
            shard.bytes.clear();
            // A quarter more than the biggest live one: a generation a little
            // bigger than the last does not reallocate.
            shard.slots.shrink_to(slots + slots / 4);
            shard.bytes.shrink_to(bytes + bytes / 4);
        }
        gone.len = 0;
        self.spare = Some(gone);
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.generations.front().map(|g| g.last_put + self.lifetime)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Generations holding answers (at most 5 while requests keep coming).
    pub(crate) fn generations(&self) -> usize {
        self.generations.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn key(i: u32) -> TransactionKey {
        let mut t = [0u8; 12];
        t[..4].copy_from_slice(&i.to_be_bytes());
        (SocketAddr::from(([192, 0, 2, 1], 5000)), TransactionId(t))
    }

    const LIFE: Duration = Duration::from_secs(40);

    #[test]
    fn rfc8489_6_3_4_answers_live_at_least_their_lifetime_and_the_cap_holds() {
        let t0 = Instant::now();
        let mut c = TransactionCache::new(LIFE);
        for i in 0..100 {
            let now = t0 + Duration::from_millis(u64::from(i));
            let answer = [i as u8; 3];
            assert_eq!(
                c.put(
                    now,
                    key(i),
                    CachedResponse::Done(Method::REFRESH, &answer),
                    60
                ),
                i < 60
            );
        }
        assert_eq!(c.len(), 60);
        assert_eq!(
            c.get(&key(7)),
            Some(CachedResponse::Done(Method::REFRESH, &[7, 7, 7]))
        );
        // Replacing keeps the count.
        assert!(c.put(t0, key(3), CachedResponse::InProgress, 60));
        assert_eq!(c.get(&key(3)), Some(CachedResponse::InProgress));
        assert_eq!(c.len(), 60);
        // All went in one generation: kept until a lifetime after the last.
        c.expire(t0 + LIFE);
        assert_eq!(c.len(), 60, "the newest answer is not a lifetime old yet");
        assert_eq!(
            c.next_deadline(),
            Some(t0 + Duration::from_millis(59) + LIFE)
        );
        c.expire(t0 + LIFE + Duration::from_millis(59));
        assert_eq!((c.len(), c.generations()), (0, 0));
        assert!(c.get(&key(9)).is_none());
        assert_eq!(c.next_deadline(), None);
    }

    /// One request every 10 ms for four lifetimes: every answer is there for
    /// a full lifetime, none for more than 1¼, and at most five generations
    /// hold them.
    #[test]
    fn answers_go_between_one_and_one_and_a_quarter_lifetimes() {
        let t0 = Instant::now();
        let mut c = TransactionCache::new(LIFE);
        let step = Duration::from_millis(10);
        let n = 4 * 4000;
        for i in 0..n {
            let now = t0 + step * i;
            c.expire(now);
            assert!(c.put(now, key(i), CachedResponse::InProgress, usize::MAX));
            assert!(c.generations() <= 5, "{} at {i}", c.generations());
            // The answer from a lifetime ago minus one step is still there;
            // the one from 1¼ lifetimes ago is gone.
            if let Some(j) = i.checked_sub(3999) {
                assert!(c.get(&key(j)).is_some(), "{j} gone early at {i}");
            }
            if let Some(j) = i.checked_sub(5001) {
                assert!(c.get(&key(j)).is_none(), "{j} kept late at {i}");
            }
        }
        assert!(c.len() <= 5000 && c.len() >= 4000, "{}", c.len());
    }

    /// At a steady rate the cache stops allocating: the generation that goes
    /// becomes the next one with its tables and buffers. (A capacity check,
    /// not timing: what the soak showed growing must stay put.)
    #[test]
    fn a_steady_rate_reuses_the_same_memory() {
        let t0 = Instant::now();
        let mut c = TransactionCache::new(LIFE);
        let step = Duration::from_millis(1);
        let capacity = |c: &TransactionCache| -> (usize, usize) {
            let all = c.generations.iter().chain(c.spare.iter());
            all.flat_map(|g| g.shards.iter())
                .fold((0, 0), |(s, b), sh| {
                    (s + sh.slots.capacity(), b + sh.bytes.capacity())
                })
        };
        let mut after_warmup = (0, 0);
        for i in 0..200_000u32 {
            let now = t0 + step * i;
            c.expire(now);
            let answer = [1u8; 120];
            c.put(
                now,
                key(i),
                CachedResponse::Done(Method::ALLOCATE, &answer),
                usize::MAX,
            );
            if i == 100_000 {
                after_warmup = capacity(&c);
            }
        }
        let end = capacity(&c);
        assert!(
            end.0 <= after_warmup.0 * 11 / 10 && end.1 <= after_warmup.1 * 11 / 10,
            "capacity grew at a steady rate: {after_warmup:?} -> {end:?}"
        );
    }

    /// Chosen transaction ids still spread over the shards.
    #[test]
    fn ids_an_attacker_picks_spread_over_the_shards() {
        let t0 = Instant::now();
        let mut c = TransactionCache::new(LIFE);
        for i in 0..6400 {
            // Same first bytes, same client: only the last bytes differ.
            let mut t = [7u8; 12];
            t[11] = (i % 256) as u8;
            t[10] = (i / 256) as u8;
            c.put(
                t0,
                (SocketAddr::from(([192, 0, 2, 1], 5000)), TransactionId(t)),
                CachedResponse::InProgress,
                usize::MAX,
            );
        }
        let biggest = c.generations[0]
            .shards
            .iter()
            .map(|s| s.slots.len())
            .max()
            .unwrap();
        assert!(biggest < 600, "one shard took {biggest} of 6400");
    }

    /// Memory follows the load down: after a burst and a quiet lifetime the
    /// cache holds nothing and keeps no big tables.
    #[test]
    fn a_burst_leaves_no_tables_behind() {
        let t0 = Instant::now();
        let mut c = TransactionCache::new(LIFE);
        for i in 0..50_000 {
            c.put(
                t0,
                key(i),
                CachedResponse::Done(Method::REFRESH, &[0; 64]),
                usize::MAX,
            );
        }
        c.expire(t0 + 2 * LIFE);
        assert_eq!((c.len(), c.generations()), (0, 0));
        let kept: usize = c
            .spare
            .iter()
            .flat_map(|g| g.shards.iter())
            .map(|s| s.slots.capacity() + s.bytes.capacity())
            .sum();
        assert!(kept < 1000, "{kept} entries and bytes kept after the burst");
    }
}
