//! Relay sockets as the I/O layer opens them: a per-allocation socket
//! answering a pending Allocate, and the shared sockets of
//! `relay-socket-mode=shared` with their peer claims.

use std::net::SocketAddr;
use std::time::Instant;

use super::allocation::{AllocationId, RelayKey};
use super::server::{slot_allocation, Command, DropReason, Server};
use super::shared::{ClaimStatus, SharedState};

impl Server {
    /// The I/O layer's answer to `Command::OpenRelay`.
    pub fn handle_relay_opened(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        result: Result<(), std::io::ErrorKind>,
    ) {
        let own = self.by_relay.get(&RelayKey(relay)).copied();
        // In shared mode only TCP relays (RFC 6062) have an address of their own.
        if self.shared.is_some() && own.is_none() {
            self.shared_relay_opened(now, relay, result);
            return;
        }
        let Some(id) = own else {
            return;
        };
        let Some(alloc) = self.allocation_mut(id) else {
            return;
        };
        if alloc.secondary.is_some_and(|s| s.relay == relay) {
            // RFC 8656 §7.2: without its IPv6 half a dual allocation still
            // succeeds for IPv4, with ADDRESS-ERROR-CODE 508.
            match result {
                Ok(()) => {
                    if let Some(s) = alloc.secondary.as_mut() {
                        s.open = true;
                    }
                }
                Err(_) => {
                    alloc.secondary = None;
                    alloc.address_error = Some((
                        crate::stun::AddressFamily::of(&relay),
                        crate::stun::ErrorCode::INSUFFICIENT_CAPACITY,
                    ));
                    self.by_relay.remove(&RelayKey(relay));
                    self.release_port(relay);
                }
            }
            if self.allocation(id).is_some_and(|a| a.primary_open) {
                self.activate_allocation(now, id);
            }
            return;
        }
        match result {
            Ok(()) => {
                alloc.primary_open = true;
                if alloc.secondary.is_none_or(|s| s.open) {
                    self.activate_allocation(now, id);
                }
            }
            Err(_) => self.retry_relay_port(now, id),
        }
    }

    /// Shared mode's `handle_relay_opened`: the waiting allocations go live,
    /// or move with the socket to another port, or (out of attempts) get 508.
    fn shared_relay_opened(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        result: Result<(), std::io::ErrorKind>,
    ) {
        let Some(shared) = self.shared.as_mut() else {
            return;
        };
        let Some(index) = shared
            .relays
            .iter()
            .position(|r| r.addr == relay && matches!(r.state, SharedState::Opening { .. }))
        else {
            return;
        };
        let attempts = match shared.relays.get(index).map(|r| r.state) {
            Some(SharedState::Opening { attempts }) => attempts,
            _ => return,
        };
        let waiting: Vec<AllocationId> = self
            .pending
            .keys()
            .copied()
            .filter(|id| self.allocation(*id).is_some_and(|a| a.relay == relay))
            .collect();
        match result {
            Ok(()) => {
                if let Some(r) = self.shared.as_mut().and_then(|s| s.relays.get_mut(index)) {
                    r.state = SharedState::Open;
                }
                // Once per worker and relay IP: the port an operator's firewall must open.
                tracing::info!(%relay, "shared relay socket open");
                for id in waiting {
                    self.activate_allocation(now, id);
                }
            }
            // The failed port stays out of the pool: something else holds it.
            Err(kind) => {
                tracing::warn!(%relay, error = ?kind, "cannot open the shared relay socket");
                let moved = attempts < self.config.relay_open_attempts
                    && self.open_shared(index, attempts + 1);
                let new_addr = self
                    .shared
                    .as_ref()
                    .and_then(|s| s.relays.get(index))
                    .map(|r| r.addr);
                for id in waiting {
                    match new_addr.filter(|_| moved) {
                        Some(addr) => {
                            let advertised = self.advertised(addr);
                            let Some(alloc) = slot_allocation(&mut self.slots, id) else {
                                continue;
                            };
                            // Claims are per relay address: any made on the
                            // old one (a ChannelBind sent before the answer) go.
                            if let Some(shared) = self.shared.as_mut() {
                                for peer in alloc.claims.drain(..) {
                                    shared.release(id, alloc.relay, peer);
                                }
                                self.stats.peer_claims = shared.claim_count();
                            }
                            alloc.relay = addr;
                            alloc.advertised = advertised;
                        }
                        None => self.fail_pending_allocation(now, id),
                    }
                }
                if !moved {
                    if let Some(r) = self.shared.as_mut().and_then(|s| s.relays.get_mut(index)) {
                        r.state = SharedState::Closed;
                    }
                }
            }
        }
    }

    /// Shared mode: asks the I/O layer to open shared relay `index` on the
    /// lowest free port of this shard's share of the range (so worker `w` of
    /// `n` holds `min-port + 2w` unless it is taken). False if no port is left.
    pub(crate) fn open_shared(&mut self, index: usize, attempts: u8) -> bool {
        let Some(shared) = self.shared.as_mut() else {
            return false;
        };
        let Some(r) = shared.relays.get_mut(index) else {
            return false;
        };
        let Some(port) = self
            .pools
            .iter_mut()
            .find(|(ip, _)| *ip == r.ip)
            .and_then(|(_, pool)| pool.take_lowest())
        else {
            return false;
        };
        r.addr = SocketAddr::new(r.ip, port);
        r.state = SharedState::Opening { attempts };
        let relay = r.addr;
        self.commands.push_back(Command::OpenRelay { relay });
        true
    }

    /// Shared relay mode: allocation `id` sends to `peer` from `relay`; it
    /// claims the endpoint unless another allocation holds it or it holds its
    /// maximum (the rules are in `turn::shared`). Per-allocation mode: `Ok`.
    #[inline]
    pub(super) fn claim_for_send(
        &mut self,
        id: AllocationId,
        relay: SocketAddr,
        peer: SocketAddr,
    ) -> Result<(), DropReason> {
        let Some(shared) = self.shared.as_mut() else {
            return Ok(());
        };
        let Some(alloc) = slot_allocation(&mut self.slots, id) else {
            return Err(DropReason::NoAllocation);
        };
        match shared.status(
            id,
            alloc.claims.len(),
            relay,
            peer,
            self.config.max_claimed_peers,
        ) {
            ClaimStatus::Ours => Ok(()),
            ClaimStatus::Free => {
                shared.insert(id, relay, peer);
                alloc.claims.push(peer);
                self.stats.peer_claims = shared.claim_count();
                Ok(())
            }
            ClaimStatus::Taken => Err(DropReason::PeerClaimed),
            ClaimStatus::Full => Err(DropReason::PeerLimit),
        }
    }

    /// Shared relay mode: where a ChannelBind of `id` to `peer` stands (`None`
    /// in per-allocation mode, where every peer is free).
    pub(crate) fn claim_status(&self, id: AllocationId, peer: SocketAddr) -> Option<ClaimStatus> {
        let shared = self.shared.as_ref()?;
        let alloc = self.allocation(id)?;
        Some(shared.status(
            id,
            alloc.claims.len(),
            alloc.relay,
            peer,
            self.config.max_claimed_peers,
        ))
    }

    /// Records a claim `claim_status` found `Free`.
    pub(crate) fn insert_claim(&mut self, id: AllocationId, peer: SocketAddr) {
        let Some(shared) = self.shared.as_mut() else {
            return;
        };
        let Some(alloc) = slot_allocation(&mut self.slots, id) else {
            return;
        };
        if !alloc.claims.contains(&peer) {
            shared.insert(id, alloc.relay, peer);
            alloc.claims.push(peer);
            self.stats.peer_claims = shared.claim_count();
        }
    }

    /// Peer endpoints claimed on this shard's shared relay sockets (0 in per-allocation mode).
    pub fn claimed_peers(&self) -> usize {
        self.shared.as_ref().map_or(0, |s| s.claim_count())
    }
}
