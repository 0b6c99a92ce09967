//! Expiry timers: a min-heap with one entry per live object. A refresh only
//! moves the object's own deadline; when its heap entry comes due early it is
//! re-armed at the new deadline. Every event is O(log n), nothing scans.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::allocation::AllocationId;
use crate::stun::TransactionId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKey {
    Allocation(AllocationId),
    Permission(AllocationId, IpAddr),
    Channel(AllocationId, u16),
    /// A cached response to a retransmittable request.
    Transaction(SocketAddr, TransactionId),
    /// An EVEN-PORT reservation (RFC 8656 §7.2: about 30 s).
    Reservation(SocketAddr),
    /// RFC 6062 §5.2/§5.3: a peer connection's ConnectionBind deadline.
    TcpConnection(u32),
}

#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, TimerKey)>>,
}

impl Timers {
    pub fn schedule(&mut self, at: Instant, key: TimerKey) {
        self.heap.push(Reverse((at, key)));
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Removes and returns the earliest entry due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, TimerKey)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}
