//! The transaction cache (RFC 8489 §6.3.4): the answer to each
//! retransmittable request, kept for `transaction_cache_lifetime` (40 s) so a
//! retransmission gets the same answer without acting twice.
//!
//! Shaped for churn (issue 16): at thousands of requests a second a shard
//! holds up to `max_cached_transactions` (100,000) answers, and a single
//! table that large stalls the worker for tens of milliseconds whenever it
//! grows or rehashes (75 ms measured in a soak). So:
//! - the answers live in 64 smaller maps, the shard picked by a keyed hash
//!   (clients choose transaction ids, so the pick must not be theirs): a
//!   growth or rehash touches 1/64 of the entries;
//! - every answer lives exactly the same time, so expiry is a FIFO queue in
//!   insertion order, not the timer heap: O(1) per answer, nothing to cancel;
//!   the queue is kept in blocks (`BlockQueue`) so it grows without copying.

use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::time::Instant;

use super::block_queue::BlockQueue;
use super::fast_map::{fast_map, shrink_if_sparse, FastMap};
use crate::stun::{Method, TransactionId};

const SHARDS: usize = 64;

/// A client's transport address and the request's transaction id.
pub(crate) type TransactionKey = (SocketAddr, TransactionId);

#[derive(Debug, Clone)]
pub(crate) enum CachedResponse {
    InProgress,
    /// The answer, and the method it answered (a different request reusing
    /// the transaction id is not a retransmission).
    Done(Method, Vec<u8>),
}

#[derive(Debug)]
pub(crate) struct TransactionCache {
    shards: Vec<FastMap<TransactionKey, CachedResponse>>,
    pick: foldhash::fast::RandomState,
    /// Keys in the order they were cached, with when each goes.
    expiry: BlockQueue<(Instant, TransactionKey)>,
    len: usize,
}

impl Default for TransactionCache {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| fast_map()).collect(),
            pick: foldhash::fast::RandomState::default(),
            expiry: BlockQueue::default(),
            len: 0,
        }
    }
}

impl TransactionCache {
    fn shard(&self, key: &TransactionKey) -> usize {
        // The top 6 bits (SHARDS = 64) of a keyed 64-bit hash: uniform
        // whatever ids the clients pick.
        (self.pick.hash_one(key) >> 58) as usize
    }

    pub(crate) fn get(&self, key: &TransactionKey) -> Option<&CachedResponse> {
        self.shards.get(self.shard(key))?.get(key)
    }

    /// Caches `response` under `key` until `expires`. A key already cached
    /// gets the new response and keeps its expiry; a new key past `cap`
    /// entries is not cached (false).
    pub(crate) fn put(
        &mut self,
        key: TransactionKey,
        response: CachedResponse,
        expires: Instant,
        cap: usize,
    ) -> bool {
        let index = self.shard(&key);
        let Some(shard) = self.shards.get_mut(index) else {
            return false;
        };
        if let Some(kept) = shard.get_mut(&key) {
            *kept = response;
            return true;
        }
        if self.len >= cap {
            return false;
        }
        shard.insert(key, response);
        self.len += 1;
        // Deadlines only grow (one lifetime, a clock that does not go back),
        // so the queue stays in expiry order.
        self.expiry.push_back((expires, key));
        true
    }

    /// Forgets every answer due at `now`.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.expiry.front() {
            if *at > now {
                break;
            }
            let Some((_, key)) = self.expiry.pop_front() else {
                break;
            };
            let index = self.shard(&key);
            if let Some(shard) = self.shards.get_mut(index) {
                if shard.remove(&key).is_some() {
                    self.len = self.len.saturating_sub(1);
                }
                shrink_if_sparse(shard);
            }
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.expiry.front().map(|(at, _)| *at)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Entries waiting in the expiry queue (one per cached answer).
    pub(crate) fn queued(&self) -> usize {
        self.expiry.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(i: u32) -> TransactionKey {
        let mut t = [0u8; 12];
        t[..4].copy_from_slice(&i.to_be_bytes());
        (SocketAddr::from(([192, 0, 2, 1], 5000)), TransactionId(t))
    }

    #[test]
    fn answers_live_their_lifetime_and_the_cap_holds() {
        let t0 = Instant::now();
        let life = Duration::from_secs(40);
        let mut c = TransactionCache::default();
        for i in 0..100 {
            let now = t0 + Duration::from_millis(u64::from(i));
            assert_eq!(
                c.put(key(i), CachedResponse::InProgress, now + life, 60),
                i < 60
            );
        }
        assert_eq!((c.len(), c.queued()), (60, 60));
        // Replacing keeps the expiry and the count.
        assert!(c.put(
            key(3),
            CachedResponse::Done(Method::ALLOCATE, vec![1]),
            t0,
            60
        ));
        assert_eq!(c.len(), 60);
        c.expire(t0 + life + Duration::from_millis(9));
        assert_eq!(c.len(), 50, "the first ten went, in order");
        assert!(c.get(&key(9)).is_none() && c.get(&key(10)).is_some());
        c.expire(t0 + life + Duration::from_secs(1));
        assert_eq!((c.len(), c.queued()), (0, 0));
        assert_eq!(c.next_deadline(), None);
    }

    /// Chosen transaction ids still spread over the shards.
    #[test]
    fn ids_an_attacker_picks_spread_over_the_shards() {
        let t0 = Instant::now();
        let mut c = TransactionCache::default();
        for i in 0..6400 {
            // Same first bytes, same client: only the last byte differs.
            let mut t = [7u8; 12];
            t[11] = (i % 256) as u8;
            t[10] = (i / 256) as u8;
            c.put(
                (SocketAddr::from(([192, 0, 2, 1], 5000)), TransactionId(t)),
                CachedResponse::InProgress,
                t0,
                usize::MAX,
            );
        }
        let biggest = c.shards.iter().map(|s| s.len()).max().unwrap();
        assert!(biggest < 200, "one shard took {biggest} of 6400");
    }
}
