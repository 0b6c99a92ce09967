//! The sans-IO TURN server of one shard (RFC 8656, compatible with RFC 5766 clients).
//!
//! Inputs (`handle_*`): datagrams from clients and from peers, the I/O
//! layer's answer to a relay-socket request, and the passing of time.
//! Outputs (`poll_*`): datagrams to send, commands for the I/O layer, and the
//! next deadline. After every input, drain `poll_command` and `poll_transmit`,
//! then sleep until `poll_timeout`.
//!
//! This file holds the shard's state and its tables; the hot paths are in
//! `datapath.rs`, relay sockets in `relay_sockets.rs`, requests in
//! `requests.rs` and the files it names, counters in `stats.rs`.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use super::allocation::{
    Allocation, AllocationId, AllocationState, ClientTransport, ClientTuple, RelayKey,
};
use super::bandwidth::DuplexLimit;
use super::config::ServerConfig;
use super::fast_map::{fast_map, shrink_if_sparse, FastMap};
use super::ports::{PortPool, Rng};
use super::session_log::EndReason;
use super::shared::{RelaySocketMode, SharedRelays};
use super::timers::{TimerKey, Timers};
use crate::auth::{Credentials, NonceKey};
use crate::stun::Method;

/// Bytes a peer datagram needs in front of its payload so either a ChannelData
/// header (4) or a Data indication header (20 + XOR-PEER-ADDRESS 24 + DATA 4)
/// can be written in place. Also keep 3 bytes after it for padding.
pub const PEER_HEADROOM: usize = 48;
pub const PEER_TAILROOM: usize = 3;

/// Send these bytes of the caller's buffer from local address `from` to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub range: Range<usize>,
    /// How `to` is reached: the client's transport for data to a client
    /// (a stream connection or UDP); always UDP towards peers.
    pub transport: ClientTransport,
}

pub use super::stats::{
    method_slot, result_slot, DropReason, Stats, TableSizes, COUNTED_CODES, COUNTED_METHODS,
    METHOD_SLOTS, RESULT_SLOTS,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOutcome {
    /// Relay data to a peer (ChannelData or a Send indication).
    Forward(Forward),
    /// A request was handled; its answer (if any) waits in `poll_transmit`.
    Handled,
    Dropped(DropReason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerOutcome {
    /// Send the framed data (ChannelData or Data indication) to the client.
    Forward(Forward),
    Dropped(DropReason),
}

/// A datagram the server composed (responses, control traffic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub from: SocketAddr,
    pub to: ClientTuple,
    pub payload: Vec<u8>,
}

/// Work for the I/O layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Bind a UDP socket on this address and report with `handle_relay_opened`.
    OpenRelay { relay: SocketAddr },
    /// Close the relay socket (or TCP relay listener) on this address.
    CloseRelay { relay: SocketAddr },
    /// RFC 6062: listen for peer connections on this TCP relayed address and
    /// report with `handle_relay_opened`.
    OpenTcpRelay { relay: SocketAddr },
    /// RFC 6062 §5.2: connect from `relay` to `peer`; report with
    /// `handle_peer_connected`.
    ConnectPeer {
        connection: u32,
        relay: SocketAddr,
        peer: SocketAddr,
    },
    /// RFC 6062 §5.4: the stream connection `data` now carries the peer
    /// connection's bytes, raw, both ways (after the ConnectionBind answer).
    BindData { connection: u32, data: ClientTuple },
    /// Close a peer connection (and its data connection, if bound).
    ClosePeer { connection: u32 },
    /// Issue 11: let the kernel fast path relay this channel until `until`
    /// (replaces the channel's earlier entry, if any).
    OffloadChannel {
        route: super::allocation::ChannelRoute,
        until: Instant,
    },
    /// Issue 11: the fast path must stop relaying this channel.
    WithdrawChannel {
        route: super::allocation::ChannelRoute,
    },
}

pub(crate) use super::transactions::CachedResponse;
use super::transactions::TransactionCache;

/// An Allocate waiting for its relay socket: what its answer needs.
#[derive(Debug, Clone)]
pub(crate) struct PendingAllocate {
    pub echo: super::echo::RequestEcho,
    pub integrity: Option<super::echo::ReplyIntegrity>,
}

#[derive(Debug, Default)]
pub(crate) struct Slot {
    generation: u32,
    allocation: Option<Allocation>,
}

/// The live allocation `id` names in `slots` (a free function so callers can
/// hold other fields of the server at the same time).
pub(crate) fn slot_allocation(slots: &mut [Slot], id: AllocationId) -> Option<&mut Allocation> {
    let slot = slots.get_mut(usize::try_from(id.index).ok()?)?;
    if slot.generation != id.generation {
        return None;
    }
    slot.allocation.as_mut()
}

pub struct Server {
    pub(crate) config: ServerConfig,
    pub(crate) credentials: Credentials,
    pub(crate) nonce_key: NonceKey,
    pub(crate) slots: Vec<Slot>,
    free_slots: Vec<u32>,
    pub(super) by_client: FastMap<ClientTuple, AllocationId>,
    pub(super) by_relay: FastMap<RelayKey, AllocationId>,
    pub(crate) pools: Vec<(IpAddr, PortPool)>,
    pub(crate) per_user: HashMap<Arc<str>, u32>,
    /// RFC 8656 §7.2: ports held by RESERVATION-TOKEN, with their expiry.
    pub(crate) reservations: HashMap<SocketAddr, Instant>,
    pub(crate) transactions: TransactionCache,
    /// Allocations made so far (session numbers for the log lines).
    sessions: u64,
    /// This shard's share of `bps-capacity`, each way.
    pub(crate) capacity: Option<Box<DuplexLimit>>,
    pub(crate) timers: Timers,
    pub(crate) pending: FastMap<AllocationId, PendingAllocate>,
    /// RFC 6062 peer connections, by CONNECTION-ID.
    pub(crate) tcp_connections: FastMap<u32, super::peer_connections::PeerConnection>,
    /// Shared relay socket mode: the shard's shared sockets and the
    /// peer-endpoint claims that demultiplex them (`None`: per-allocation mode).
    pub(crate) shared: Option<SharedRelays>,
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) commands: VecDeque<Command>,
    pub(crate) rng: Rng,
    /// Round-robin position over the alternate servers (RFC 8489 §10).
    pub(crate) redirect_turn: usize,
    pub(crate) stats: Stats,
    /// `now` and the unix time it corresponds to: REST usernames and nonces
    /// speak unix time, timers speak `Instant`.
    clock_anchor: (Instant, u64),
}

impl Server {
    /// `now`/`unix_now` anchor the two clocks; `nonce_key` must be shared by
    /// every shard so any of them can check any nonce.
    pub fn new(
        config: ServerConfig,
        credentials: Credentials,
        nonce_key: NonceKey,
        now: Instant,
        unix_now: u64,
    ) -> Self {
        let pools = config
            .relay_ips
            .iter()
            .map(|ip| {
                (
                    *ip,
                    PortPool::new(
                        config.min_port,
                        config.max_port,
                        config.port_offset,
                        config.port_stride,
                    ),
                )
            })
            .collect();
        let rng = Rng::new(config.rng_seed);
        let shared = (config.relay_socket_mode == RelaySocketMode::Shared)
            .then(|| SharedRelays::new(&config.relay_ips));
        let cache_lifetime = config.transaction_cache_lifetime;
        let mut server = Self {
            config,
            credentials,
            nonce_key,
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_client: fast_map(),
            by_relay: fast_map(),
            pools,
            per_user: HashMap::new(),
            reservations: HashMap::new(),
            transactions: TransactionCache::new(cache_lifetime),
            sessions: 0,
            capacity: None,
            timers: Timers::default(),
            pending: fast_map(),
            tcp_connections: fast_map(),
            shared,
            transmits: VecDeque::new(),
            commands: VecDeque::new(),
            rng,
            redirect_turn: 0,
            stats: Stats::default(),
            clock_anchor: (now, unix_now),
        };
        // Shared mode: ask for the shared sockets now, so they are open
        // before the first Allocate (one that comes earlier waits for them).
        let count = server.shared.as_ref().map_or(0, |s| s.relays.len());
        for index in 0..count {
            server.open_shared(index, 1);
        }
        server
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub(crate) fn unix_time(&self, now: Instant) -> u64 {
        let (at, unix) = self.clock_anchor;
        unix + now.saturating_duration_since(at).as_secs()
    }

    // ------------------------------------------------------------ inputs

    pub(super) fn count_drop(&mut self, reason: DropReason) {
        if let Some(n) = self.stats.drops.get_mut(reason.index()) {
            *n += 1;
        }
    }

    /// Counts one response by method and result.
    pub(crate) fn count_response(&mut self, method: Method, error: Option<crate::stun::ErrorCode>) {
        if error.is_some() {
            self.stats.error_responses += 1;
        }
        if let Some(n) = self
            .stats
            .responses
            .get_mut(method_slot(method))
            .and_then(|row| row.get_mut(result_slot(error.map(|e| e.0))))
        {
            *n += 1;
        }
    }

    /// The client's stream connection closed: its allocation goes at once
    /// (RFC 8656 §3.1: over TCP/TLS the allocation lives with the connection).
    pub fn handle_client_closed(&mut self, tuple: &ClientTuple) {
        if let Some(id) = self.allocation_id_for_client(tuple) {
            let now = Instant::now();
            if self
                .remove_allocation(now, id, EndReason::ConnectionClosed)
                .is_some()
            {
                self.stats.allocations_expired += 1;
            }
        }
    }

    /// Expires whatever is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((deadline, key)) = self.timers.pop_due(now) {
            self.fire_timer(now, deadline, key);
        }
        self.transactions.expire(now);
    }

    // ------------------------------------------------------------ outputs

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    #[must_use]
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (
            self.timers.next_deadline(),
            self.transactions.next_deadline(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ------------------------------------------------------------ allocation table

    pub fn allocation_count(&self) -> usize {
        self.stats.allocations
    }

    pub(crate) fn live_allocations(&self) -> impl Iterator<Item = &Allocation> + '_ {
        self.slots.iter().filter_map(|s| s.allocation.as_ref())
    }

    pub(crate) fn allocation(&self, id: AllocationId) -> Option<&Allocation> {
        let slot = self.slots.get(usize::try_from(id.index).ok()?)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.allocation.as_ref()
    }

    pub(crate) fn allocation_mut(&mut self, id: AllocationId) -> Option<&mut Allocation> {
        let slot = self.slots.get_mut(usize::try_from(id.index).ok()?)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.allocation.as_mut()
    }

    /// The live allocation of a client 5-tuple.
    pub fn allocation_for_client(&self, tuple: &ClientTuple) -> Option<&Allocation> {
        let id = self.by_client.get(tuple)?;
        self.allocation(*id)
    }

    pub(crate) fn allocation_id_for_client(&self, tuple: &ClientTuple) -> Option<AllocationId> {
        self.by_client.get(tuple).copied()
    }

    pub(crate) fn allocation_id_for_relay(&self, relay: SocketAddr) -> Option<AllocationId> {
        self.by_relay.get(&RelayKey(relay)).copied()
    }

    /// Whether an allocation of this shard has relay address `relay` (a lookup
    /// that counts nothing, for the I/O layer's relay-to-relay short-circuit).
    /// In shared mode: whether `relay` is one of this shard's open shared sockets.
    pub fn has_relay(&self, relay: SocketAddr) -> bool {
        match &self.shared {
            Some(shared) => shared.is_open(relay),
            None => self.by_relay.contains_key(&RelayKey(relay)),
        }
    }

    /// Relay addresses of live allocations (for the I/O layer's directory);
    /// in shared mode, the open shared sockets' addresses.
    pub fn relay_addresses(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.by_relay
            .keys()
            .map(|k| k.0)
            .chain(self.shared.iter().flat_map(|s| s.open_addresses()))
    }

    pub(crate) fn insert_allocation(
        &mut self,
        make: impl FnOnce(AllocationId) -> Allocation,
    ) -> AllocationId {
        let index = match self.free_slots.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let slot_index = usize::try_from(index).unwrap_or(usize::MAX);
        let generation = self
            .slots
            .get(slot_index)
            .map(|s| s.generation)
            .unwrap_or(0);
        let id = AllocationId { index, generation };
        let alloc = make(id);
        self.by_client.insert(alloc.client, id);
        if self.has_own_relay_socket(&alloc) {
            self.by_relay.insert(RelayKey(alloc.relay), id);
        }
        if let Some(s) = alloc.secondary {
            self.by_relay.insert(RelayKey(s.relay), id);
        }
        if let Some(slot) = self.slots.get_mut(slot_index) {
            slot.allocation = Some(alloc);
        }
        self.stats.allocations += 1;
        id
    }

    /// Whether the allocation's relayed address is a socket of its own (per-
    /// allocation mode, and RFC 6062 TCP relays in either mode) rather than
    /// the shard's shared UDP socket.
    fn has_own_relay_socket(&self, alloc: &Allocation) -> bool {
        self.shared.is_none() || alloc.relay_tcp
    }

    /// Frees an allocation: its maps, its port, its user's quota, its socket.
    /// Frees an allocation and everything it holds, with its session line.
    pub(crate) fn remove_allocation(
        &mut self,
        now: Instant,
        id: AllocationId,
        reason: EndReason,
    ) -> Option<Allocation> {
        let slot = self.slots.get_mut(usize::try_from(id.index).ok()?)?;
        if slot.generation != id.generation {
            return None;
        }
        let alloc = slot.allocation.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.withdraw_fast_path(&alloc);
        self.free_slots.push(id.index);
        self.pending.remove(&id);
        self.by_client.remove(&alloc.client);
        // Its timers go with it (issue 16: a queue that kept them grew with churn).
        self.timers.cancel(&TimerKey::Allocation(id));
        for p in &alloc.permissions {
            self.timers.cancel(&TimerKey::Permission(id, p.ip));
        }
        for c in &alloc.channels {
            self.timers.cancel(&TimerKey::Channel(id, c.number));
        }
        if self.has_own_relay_socket(&alloc) {
            self.by_relay.remove(&RelayKey(alloc.relay));
            self.release_port(alloc.relay);
            if alloc.state == AllocationState::Active {
                self.commands
                    .push_back(Command::CloseRelay { relay: alloc.relay });
            }
        } else if let Some(shared) = self.shared.as_mut() {
            // The socket stays (other allocations share it); the claims go.
            for peer in &alloc.claims {
                shared.release(id, alloc.relay, *peer);
            }
            self.stats.peer_claims = shared.claim_count();
        }
        if let Some(s) = alloc.secondary {
            self.by_relay.remove(&RelayKey(s.relay));
            self.release_port(s.relay);
            // Opened before the primary went live, so open now whatever the state.
            self.commands
                .push_back(Command::CloseRelay { relay: s.relay });
        }
        if let Some(owner) = &alloc.owner {
            if let Some(n) = self.per_user.get_mut(&owner.username) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_user.remove(&owner.username);
                }
            }
        }
        if alloc.relay_tcp {
            self.close_tcp_connections_of(id);
        }
        self.stats.allocations = self.stats.allocations.saturating_sub(1);
        shrink_if_sparse(&mut self.by_client);
        shrink_if_sparse(&mut self.by_relay);
        shrink_if_sparse(&mut self.pending);
        super::session_log::deleted(&alloc, &self.credentials.realm, reason, now);
        Some(alloc)
    }

    /// Moves an opening allocation to another relay port.
    pub(crate) fn rebind_relay(
        &mut self,
        id: AllocationId,
        old: SocketAddr,
        relay: SocketAddr,
        advertised: SocketAddr,
        attempts: u8,
    ) {
        self.by_relay.remove(&RelayKey(old));
        self.by_relay.insert(RelayKey(relay), id);
        if let Some(alloc) = self.allocation_mut(id) {
            alloc.relay = relay;
            alloc.advertised = advertised;
            alloc.state = AllocationState::Opening { attempts };
        }
    }

    pub(crate) fn release_port(&mut self, relay: SocketAddr) {
        if let Some((_, pool)) = self.pools.iter_mut().find(|(ip, _)| *ip == relay.ip()) {
            pool.release(relay.port());
        }
    }

    fn fire_timer(&mut self, now: Instant, deadline: Instant, key: TimerKey) {
        match key {
            TimerKey::Allocation(id) => {
                let Some(alloc) = self.allocation(id) else {
                    return;
                };
                if alloc.expires > deadline {
                    let at = alloc.expires;
                    self.timers.schedule(at, key);
                } else if alloc.expires <= now {
                    self.remove_allocation(now, id, EndReason::Expired);
                    self.stats.allocations_expired += 1;
                }
            }
            TimerKey::TcpConnection(connection) => self.expire_tcp_connection(now, connection),
            TimerKey::Permission(id, ip) => {
                let Some(alloc) = slot_allocation(&mut self.slots, id) else {
                    return;
                };
                if let Some(p) = alloc.permissions.iter().find(|p| p.ip == ip).copied() {
                    if p.expires > deadline {
                        self.timers.schedule(p.expires, key);
                    } else {
                        alloc.permissions.retain(|p| p.ip != ip);
                        // (Its channels leave the fast path in `sync_fast_path` below.)
                        // Shared relay mode: no permission, no traffic with
                        // the IP's endpoints, so their claims go (`turn::shared`).
                        if let Some(shared) = self.shared.as_mut() {
                            let relay = alloc.relay;
                            alloc.claims.retain(|peer| {
                                let keep = peer.ip() != ip;
                                if !keep {
                                    shared.release(id, relay, *peer);
                                }
                                keep
                            });
                            self.stats.peer_claims = shared.claim_count();
                        }
                    }
                }
                self.sync_fast_path(id, now);
            }
            TimerKey::Channel(id, number) => {
                let Some(alloc) = slot_allocation(&mut self.slots, id) else {
                    return;
                };
                let Some(c) = alloc.channels.iter().find(|c| c.number == number).copied() else {
                    return;
                };
                let cooled = c.expires + super::allocation::CHANNEL_COOLDOWN;
                if c.expires > deadline {
                    // Refreshed: fire again when it really expires.
                    self.timers.schedule(c.expires, key);
                } else if cooled > deadline {
                    // Expired: no more data (the fast path is withdrawn
                    // below), but the number and peer stay reserved (§12).
                    self.timers.schedule(cooled, key);
                } else {
                    if let Some((route, _)) = c.offloaded {
                        self.commands.push_back(Command::WithdrawChannel { route });
                    }
                    alloc.channels.retain(|c| c.number != number);
                }
                self.sync_fast_path(id, now);
            }
            TimerKey::Reservation(relay) => {
                if self
                    .reservations
                    .get(&relay)
                    .is_some_and(|expires| *expires <= now)
                {
                    self.reservations.remove(&relay);
                    self.release_port(relay);
                }
            }
        }
    }

    pub(crate) fn advertised(&self, relay: SocketAddr) -> SocketAddr {
        match self.config.external_ips.get(&relay.ip()) {
            Some(public) => SocketAddr::new(*public, relay.port()),
            None => relay,
        }
    }

    pub(crate) fn schedule(&mut self, at: Instant, key: TimerKey) {
        self.timers.schedule(at, key);
    }

    /// Keeps an answer (or the mark that one is coming) for retransmissions
    /// of `(client, tid)` for `transaction_cache_lifetime` (RFC 8489 §6.3.4).
    /// Replacing a kept entry keeps its generation; a new one past
    /// `max_cached_transactions` is not kept, and counted.
    pub(crate) fn cache_response(
        &mut self,
        now: Instant,
        client: SocketAddr,
        tid: crate::stun::TransactionId,
        response: CachedResponse<'_>,
    ) {
        let cap = self.config.max_cached_transactions;
        if !self.transactions.put(now, (client, tid), response, cap) {
            self.stats.transaction_cache_full += 1;
        }
    }

    /// Every live allocation's id (for a reconfiguration: not per packet).
    pub(crate) fn allocation_ids(&self) -> Vec<AllocationId> {
        self.slots
            .iter()
            .filter_map(|s| s.allocation.as_ref().map(|a| a.id))
            .collect()
    }

    /// Forgets the `bps-capacity` buckets (made again at the next datagram).
    pub(crate) fn reset_capacity(&mut self) {
        self.capacity = None;
    }

    /// A number for the next allocation's log lines, unique across workers
    /// (the worker's index in the top 16 bits).
    pub(crate) fn next_session(&mut self) -> u64 {
        self.sessions += 1;
        (u64::from(self.config.port_offset) << 48) | self.sessions
    }

    /// Every per-shard table's size (a few `len` calls and one walk over
    /// the allocation slots: for tests and a metrics scrape, not per packet).
    pub fn table_sizes(&self) -> TableSizes {
        let live = self.live_allocations();
        let (permissions, channels) = live.fold((0, 0), |(p, c), a| {
            (p + a.permissions.len(), c + a.channels.len())
        });
        TableSizes {
            timers: self.timers.len(),
            timer_bytes: self.timers.capacity_bytes(),
            transactions: self.transactions.len(),
            transaction_generations: self.transactions.generations(),
            allocations: self.stats.allocations,
            allocation_slots: self.slots.len(),
            by_client: self.by_client.len(),
            by_relay: self.by_relay.len(),
            pending: self.pending.len(),
            users: self.per_user.len(),
            reservations: self.reservations.len(),
            tcp_connections: self.tcp_connections.len(),
            peer_claims: self.claimed_peers(),
            permissions,
            channels,
        }
    }

    /// Queued timers (a `len`: cheap enough for every loop turn's metrics).
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    /// Cached transaction answers.
    pub fn cached_transactions(&self) -> usize {
        self.transactions.len()
    }
}
