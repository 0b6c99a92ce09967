//! The shared relay socket mode (`relay-socket-mode=shared`, like coturn's
//! `--multiplex-peer`): each shard has ONE relay socket per relay IP, and all
//! its allocations on that IP share its address as their XOR-RELAYED-ADDRESS.
//!
//! Peer traffic arriving on a shared socket is demultiplexed by the exact
//! peer transport address (IP and port): the table here maps
//! `(relay address, peer address)` to the allocation that claimed that peer
//! endpoint. Plain state, no I/O: the worker only owns the socket.
//!
//! The claim rules (RFC 8656 leaves the relayed address to the server,
//! §7.2 "the server allocates a relayed transport address"; it says nothing
//! of sharing one, so these are ours):
//! - An allocation claims a peer endpoint when it sends to it: a ChannelBind
//!   (§11.2) for that peer, a Send indication (§10.2) or ChannelData (§12.6)
//!   to it.
//! - An endpoint another allocation of this shard holds cannot be claimed:
//!   ChannelBind gets 508 (Insufficient Capacity: RFC 8656 defines it as "unable
//!   to carry out the request due to some capacity limit being reached"; the
//!   limit here is one allocation per peer endpoint and shared address), a Send
//!   indication or ChannelData is dropped and counted (`DropReason::PeerClaimed`).
//! - An allocation holds at most `max_claimed_peers` endpoints; past it the
//!   same answers (`DropReason::PeerLimit` for data).
//! - A claim is released when the allocation dies (expiry, Refresh with
//!   LIFETIME 0) or when its permission for the peer's IP expires (§9): with
//!   no permission no datagram flows either way for that peer, so the
//!   endpoint is free for another allocation. A channel binding that outlives
//!   its permission keeps no claim; sending on it again re-claims (or is refused).
//! - A datagram from an endpoint nobody claimed is dropped
//!   (`DropReason::Unclaimed`); a claimed one still needs the claimant's
//!   permission for the peer's IP (§10.3, §12.7).

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};

use super::allocation::{hash_addr, AllocationId};
use super::fast_map::{fast_map, FastMap};

/// How a shard gets relayed transport addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RelaySocketMode {
    /// One UDP socket (and port) per allocation.
    #[default]
    PerAllocation,
    /// One UDP socket per shard and relay IP, shared by its allocations.
    Shared,
}

impl std::str::FromStr for RelaySocketMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "per-allocation" => Ok(Self::PerAllocation),
            "shared" => Ok(Self::Shared),
            other => Err(format!("expected per-allocation or shared, got {other:?}")),
        }
    }
}

impl std::fmt::Display for RelaySocketMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::PerAllocation => "per-allocation",
            Self::Shared => "shared",
        })
    }
}

/// Where a shared relay socket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SharedState {
    /// Not open (never asked, or every attempt failed): the next Allocate
    /// on this IP tries again.
    Closed,
    /// Asked the I/O layer to bind `addr`; Allocates on it wait.
    Opening {
        attempts: u8,
    },
    Open,
}

/// One shared relay socket: a relay IP and the port this shard holds on it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SharedRelay {
    pub ip: IpAddr,
    pub addr: SocketAddr,
    pub state: SharedState,
}

/// A demultiplexing key: which shared relay address, which peer endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClaimKey {
    pub relay: SocketAddr,
    pub peer: SocketAddr,
}

impl Hash for ClaimKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_addr(&self.relay, state);
        hash_addr(&self.peer, state);
    }
}

/// What a claim attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClaimStatus {
    /// Already this allocation's.
    Ours,
    /// Nobody's, and the allocation has room: it may take it.
    Free,
    /// Another allocation of this shard holds it.
    Taken,
    /// Nobody's, but the allocation holds its maximum.
    Full,
}

/// The shard's shared relay sockets and the peer-endpoint claims on them.
#[derive(Debug)]
pub(crate) struct SharedRelays {
    pub relays: Vec<SharedRelay>,
    claims: FastMap<ClaimKey, AllocationId>,
}

impl SharedRelays {
    pub fn new(ips: &[IpAddr]) -> Self {
        Self {
            relays: ips
                .iter()
                .map(|ip| SharedRelay {
                    ip: *ip,
                    addr: SocketAddr::new(*ip, 0),
                    state: SharedState::Closed,
                })
                .collect(),
            claims: fast_map(),
        }
    }

    /// The allocation that claimed `peer` on `relay` (the peer → client demux).
    #[inline]
    pub fn owner(&self, relay: SocketAddr, peer: SocketAddr) -> Option<AllocationId> {
        self.claims.get(&ClaimKey { relay, peer }).copied()
    }

    /// Whether `id`, holding `held` claims, may send to `peer` from `relay`.
    #[inline]
    pub fn status(
        &self,
        id: AllocationId,
        held: usize,
        relay: SocketAddr,
        peer: SocketAddr,
        max: usize,
    ) -> ClaimStatus {
        match self.owner(relay, peer) {
            Some(owner) if owner == id => ClaimStatus::Ours,
            Some(_) => ClaimStatus::Taken,
            None if held >= max => ClaimStatus::Full,
            None => ClaimStatus::Free,
        }
    }

    /// Records a claim (after `status` said `Free`).
    pub fn insert(&mut self, id: AllocationId, relay: SocketAddr, peer: SocketAddr) {
        self.claims.insert(ClaimKey { relay, peer }, id);
    }

    /// Drops `id`'s claim on `peer`, if it is `id`'s.
    pub fn release(&mut self, id: AllocationId, relay: SocketAddr, peer: SocketAddr) {
        let key = ClaimKey { relay, peer };
        if self.claims.get(&key) == Some(&id) {
            self.claims.remove(&key);
        }
    }

    /// Live claims on all of the shard's shared relays.
    pub fn claim_count(&self) -> usize {
        self.claims.len()
    }

    pub fn is_open(&self, relay: SocketAddr) -> bool {
        self.relays
            .iter()
            .any(|r| r.addr == relay && r.state == SharedState::Open)
    }

    pub fn open_addresses(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.relays
            .iter()
            .filter(|r| r.state == SharedState::Open)
            .map(|r| r.addr)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id(index: u32) -> AllocationId {
        AllocationId {
            index,
            generation: 0,
        }
    }

    #[test]
    fn claims_are_by_exact_peer_endpoint_and_relay() {
        let relay: SocketAddr = "10.0.0.1:50000".parse().unwrap();
        let other_relay: SocketAddr = "10.0.0.2:50000".parse().unwrap();
        let p: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let p2: SocketAddr = "192.0.2.1:4001".parse().unwrap();
        let mut s = SharedRelays::new(&["10.0.0.1".parse().unwrap()]);
        assert_eq!(s.status(id(1), 0, relay, p, 2), ClaimStatus::Free);
        s.insert(id(1), relay, p);
        assert_eq!(s.status(id(1), 1, relay, p, 2), ClaimStatus::Ours);
        assert_eq!(s.status(id(2), 0, relay, p, 2), ClaimStatus::Taken);
        // Another port of the same IP, or the same peer on another relay IP, is another endpoint.
        assert_eq!(s.status(id(2), 0, relay, p2, 2), ClaimStatus::Free);
        assert_eq!(s.status(id(2), 0, other_relay, p, 2), ClaimStatus::Free);
        assert_eq!(s.status(id(1), 2, relay, p2, 2), ClaimStatus::Full);
        // Only the holder releases.
        s.release(id(2), relay, p);
        assert_eq!(s.owner(relay, p), Some(id(1)));
        s.release(id(1), relay, p);
        assert_eq!(s.owner(relay, p), None);
        assert_eq!(s.claim_count(), 0);
    }

    #[test]
    fn mode_names() {
        assert_eq!("shared".parse(), Ok(RelaySocketMode::Shared));
        assert_eq!("per-allocation".parse(), Ok(RelaySocketMode::PerAllocation));
        assert!("multiplex".parse::<RelaySocketMode>().is_err());
        assert_eq!(RelaySocketMode::Shared.to_string(), "shared");
    }
}
