//! The sans-IO TURN server of one shard (RFC 8656, compatible with RFC 5766 clients).
//!
//! Inputs (`handle_*`): datagrams from clients and from peers, the I/O
//! layer's answer to a relay-socket request, and the passing of time.
//! Outputs (`poll_*`): datagrams to send, commands for the I/O layer, and the
//! next deadline. After every input, drain `poll_command` and `poll_transmit`,
//! then sleep until `poll_timeout`.
//!
//! The hot paths — ChannelData and Send/Data indications — return a
//! forwarding decision over the caller's buffer: no copy, no allocation.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use super::allocation::{
    Allocation, AllocationId, AllocationState, ClientTransport, ClientTuple, RelayKey,
};
use super::config::ServerConfig;
use super::fast_map::{fast_map, shrink_if_sparse, FastMap};
use super::ports::{PortPool, Rng};
use super::shared::{ClaimStatus, RelaySocketMode, SharedRelays, SharedState};
use super::timers::{TimerKey, Timers};
use crate::auth::{Credentials, NonceKey};
use crate::stun::channel_data::{write_header, CHANNEL_DATA_HEADER_LEN};
use crate::stun::{
    demultiplex, AttributeType, ChannelData, Class, Data, Message, Method, PacketKind,
    XorPeerAddress, HEADER_LEN,
};

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

/// Why a datagram produced nothing. Counted, never logged per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    Malformed,
    NotStunOrChannelData,
    NoAllocation,
    NoChannel,
    NoPermission,
    UnexpectedClass,
    Disabled,
    InProgress,
    NoHeadroom,
    /// Shared relay socket: the peer endpoint belongs to another allocation.
    PeerClaimed,
    /// Shared relay socket: the allocation holds its maximum of peer endpoints.
    PeerLimit,
    /// Shared relay socket: a datagram from a peer endpoint no allocation claimed.
    Unclaimed,
    /// Over `max-bps` (the allocation's) or `bps-capacity` (the server's).
    RateLimited,
}

impl DropReason {
    /// Every reason, in `index` order.
    pub const ALL: [DropReason; 13] = [
        DropReason::Malformed,
        DropReason::NotStunOrChannelData,
        DropReason::NoAllocation,
        DropReason::NoChannel,
        DropReason::NoPermission,
        DropReason::UnexpectedClass,
        DropReason::Disabled,
        DropReason::InProgress,
        DropReason::NoHeadroom,
        DropReason::PeerClaimed,
        DropReason::PeerLimit,
        DropReason::Unclaimed,
        DropReason::RateLimited,
    ];

    /// Position in `ALL` (and in `Stats::drops`).
    pub fn index(self) -> usize {
        self as usize
    }

    /// A snake_case name for metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NotStunOrChannelData => "not_stun_or_channel_data",
            DropReason::NoAllocation => "no_allocation",
            DropReason::NoChannel => "no_channel",
            DropReason::NoPermission => "no_permission",
            DropReason::UnexpectedClass => "unexpected_class",
            DropReason::Disabled => "disabled",
            DropReason::InProgress => "in_progress",
            DropReason::NoHeadroom => "no_headroom",
            DropReason::PeerClaimed => "peer_claimed",
            DropReason::PeerLimit => "peer_limit",
            DropReason::Unclaimed => "unclaimed_peer",
            DropReason::RateLimited => "rate_limited",
        }
    }
}

/// The relay address and peer of ChannelData on `channel` (RFC 8656 §12.6).
#[inline]
fn channel_route(
    alloc: &Allocation,
    channel: u16,
    now: Instant,
) -> Result<(SocketAddr, SocketAddr), DropReason> {
    let binding = alloc
        .live_channel(channel, now)
        .ok_or(DropReason::NoChannel)?;
    let peer = binding.peer;
    if !alloc.has_permission(peer.ip(), now) {
        return Err(DropReason::NoPermission);
    }
    let relay = alloc.relay_for(&peer).ok_or(DropReason::NoPermission)?;
    Ok((relay, peer))
}

/// Charges `bytes` to the allocation's `max-bps` bucket and the shard's
/// `bps-capacity` one (false: over a rate, drop), and counts them in the
/// allocation's session totals.
#[inline]
fn charge(
    a: &mut Allocation,
    capacity: &mut Option<Box<DuplexLimit>>,
    capacity_rate: u64,
    bytes: usize,
    now: Instant,
    direction: Direction,
) -> bool {
    if let Some(limit) = a.limit.as_mut() {
        let bucket = match direction {
            Direction::ToPeer => &mut limit.to_peer,
            Direction::ToClient => &mut limit.to_client,
        };
        if !bucket.take(bytes, now) {
            return false;
        }
    }
    if capacity_rate > 0 {
        let server = capacity.get_or_insert_with(|| Box::new(DuplexLimit::new(capacity_rate, now)));
        let bucket = match direction {
            Direction::ToPeer => &mut server.to_peer,
            Direction::ToClient => &mut server.to_client,
        };
        if !bucket.take(bytes, now) {
            return false;
        }
    }
    match direction {
        Direction::ToPeer => a.traffic.to_peer(bytes),
        Direction::ToClient => a.traffic.to_client(bytes),
    }
    true
}

/// Which way a relayed datagram goes, for the rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToPeer,
    ToClient,
}

/// The request methods responses are counted by (the last slot: any other).
pub const COUNTED_METHODS: [(Method, &str); 7] = [
    (Method::BINDING, "binding"),
    (Method::ALLOCATE, "allocate"),
    (Method::REFRESH, "refresh"),
    (Method::CREATE_PERMISSION, "create_permission"),
    (Method::CHANNEL_BIND, "channel_bind"),
    (Method::CONNECT, "connect"),
    (Method::CONNECTION_BIND, "connection_bind"),
];
/// Method slots in `Stats::responses`: `COUNTED_METHODS` and "other".
pub const METHOD_SLOTS: usize = COUNTED_METHODS.len() + 1;
/// The error codes responses are counted by; slot 0 is success, the last any other code.
pub const COUNTED_CODES: [u16; 16] = [
    300, 400, 401, 403, 420, 437, 438, 440, 441, 442, 443, 446, 447, 486, 500, 508,
];
/// Result slots in `Stats::responses`: success, `COUNTED_CODES`, "other".
pub const RESULT_SLOTS: usize = COUNTED_CODES.len() + 2;

/// The `Stats::responses` slot of a method.
pub fn method_slot(method: Method) -> usize {
    COUNTED_METHODS
        .iter()
        .position(|(m, _)| *m == method)
        .unwrap_or(COUNTED_METHODS.len())
}

/// The `Stats::responses` slot of a result: `None` is success.
pub fn result_slot(code: Option<u16>) -> usize {
    match code {
        None => 0,
        Some(c) => COUNTED_CODES
            .iter()
            .position(|k| *k == c)
            .map_or(RESULT_SLOTS - 1, |i| i + 1),
    }
}

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
        route: super::fast_path::ChannelRoute,
        until: Instant,
    },
    /// Issue 11: the fast path must stop relaying this channel.
    WithdrawChannel {
        route: super::fast_path::ChannelRoute,
    },
}

/// Counters for metrics; all monotonic except `allocations`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub allocations: usize,
    pub allocations_created: u64,
    pub allocations_expired: u64,
    pub requests: u64,
    pub error_responses: u64,
    pub forwarded_to_peers: u64,
    pub forwarded_to_clients: u64,
    /// Of those, the ones that were ChannelData on the client's side (the
    /// kind the kernel fast path can take over).
    pub channel_data_to_peers: u64,
    pub channel_data_to_clients: u64,
    pub dropped: u64,
    pub malformed: u64,
    /// Payload bytes relayed client → peer and peer → client.
    pub bytes_to_peers: u64,
    pub bytes_to_clients: u64,
    /// Drops by `DropReason::index`.
    pub drops: [u64; DropReason::ALL.len()],
    /// Responses sent, by `method_slot` and `result_slot`.
    pub responses: [[u64; RESULT_SLOTS]; METHOD_SLOTS],
    /// Permissions installed (not refreshed) and channels newly bound.
    pub permissions_installed: u64,
    pub channels_bound: u64,
    /// Gauge, shared relay socket mode: peer endpoints claimed (`turn::shared`).
    pub peer_claims: usize,
    /// Answers not kept for retransmissions because the transaction cache
    /// held `max_cached_transactions` (its cap biting).
    pub transaction_cache_full: u64,
    /// Issue 11: channels put on the kernel fast path (or moved to a new deadline).
    pub fast_path_offloads: u64,
}

/// How many entries each per-shard table holds: every one is bounded by live
/// state (allocations, their permissions and channels, requests of the last
/// `transaction_cache_lifetime`) or by a cap (issue 16). Read by tests and
/// the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableSizes {
    /// Queued timers: one per live allocation, permission, channel,
    /// reservation and RFC 6062 peer connection awaiting its bind (cached
    /// answers expire through their own queue).
    pub timers: usize,
    /// Bytes the timer queue's tables hold (capacity).
    pub timer_bytes: usize,
    /// Cached answers (capped at `max_cached_transactions`).
    pub transactions: usize,
    /// Generations holding them (a quarter of the cache lifetime each: at
    /// most five while requests keep coming).
    pub transaction_generations: usize,
    pub allocations: usize,
    /// Allocation slots ever made (reused after a free; the peak of live allocations).
    pub allocation_slots: usize,
    pub by_client: usize,
    pub by_relay: usize,
    /// Allocations waiting for their relay socket.
    pub pending: usize,
    /// Users with live allocations (for `user-quota`).
    pub users: usize,
    /// Ports held by RESERVATION-TOKENs.
    pub reservations: usize,
    /// RFC 6062 peer connections.
    pub tcp_connections: usize,
    /// Shared relay mode: claimed peer endpoints.
    pub peer_claims: usize,
    pub permissions: usize,
    pub channels: usize,
}

use super::bandwidth::DuplexLimit;
use super::session_log::EndReason;
pub(crate) use super::transactions::CachedResponse;
use super::transactions::TransactionCache;

/// An Allocate waiting for its relay socket: what its answer needs.
#[derive(Debug, Clone)]
pub(crate) struct PendingAllocate {
    pub echo: super::reply::RequestEcho,
    pub integrity: Option<super::reply::ReplyIntegrity>,
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
    by_client: FastMap<ClientTuple, AllocationId>,
    by_relay: FastMap<RelayKey, AllocationId>,
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
    pub(crate) tcp_connections: FastMap<u32, super::tcp_relay::PeerConnection>,
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

    /// A datagram from a client on a listening address.
    pub fn handle_client_datagram(
        &mut self,
        now: Instant,
        from: ClientTuple,
        buf: &[u8],
    ) -> ClientOutcome {
        match demultiplex(buf, self.config.channel_range) {
            PacketKind::ChannelData => self.handle_client_channel_data(now, &from, buf),
            PacketKind::Stun => match Message::parse(buf) {
                Ok(msg) => self.handle_stun(now, from, &msg, buf),
                Err(_) => {
                    self.stats.malformed += 1;
                    self.drop_reason(DropReason::Malformed)
                }
            },
            PacketKind::Other => self.drop_reason(DropReason::NotStunOrChannelData),
        }
    }

    fn drop_reason(&mut self, reason: DropReason) -> ClientOutcome {
        self.stats.dropped += 1;
        self.count_drop(reason);
        ClientOutcome::Dropped(reason)
    }

    /// RFC 8656 §12.6: ChannelData from the client goes to the bound peer.
    fn handle_client_channel_data(
        &mut self,
        now: Instant,
        from: &ClientTuple,
        buf: &[u8],
    ) -> ClientOutcome {
        let Ok(cd) = ChannelData::parse(buf) else {
            self.stats.malformed += 1;
            return self.drop_reason(DropReason::Malformed);
        };
        // One lookup of the allocation for the checks, the rates and the
        // session counts (issue 12: counting adds no lookup here).
        let shared = self.shared.is_some();
        let len = cd.data.len();
        let capacity_rate = self.config.bps_capacity;
        let routed = match self.by_client.get(from).copied() {
            None => Err(DropReason::NoAllocation),
            Some(id) => match slot_allocation(&mut self.slots, id).filter(|a| now < a.expires) {
                None => Err(DropReason::NoAllocation),
                Some(alloc) => channel_route(alloc, cd.channel.0, now).and_then(|(relay, peer)| {
                    // Shared relay sockets claim the peer first (below).
                    if !shared
                        && !charge(
                            alloc,
                            &mut self.capacity,
                            capacity_rate,
                            len,
                            now,
                            Direction::ToPeer,
                        )
                    {
                        return Err(DropReason::RateLimited);
                    }
                    Ok((id, relay, peer))
                }),
            },
        };
        let (id, relay, peer) = match routed {
            Ok(r) => r,
            Err(reason) => return self.drop_reason(reason),
        };
        if shared {
            if let Err(reason) = self.claim_for_send(id, relay, peer) {
                return self.drop_reason(reason);
            }
            if !self.within_rate(id, len, now, Direction::ToPeer) {
                return self.drop_reason(DropReason::RateLimited);
            }
        }
        self.stats.forwarded_to_peers += 1;
        self.stats.channel_data_to_peers += 1;
        self.stats.bytes_to_peers += cd.data.len() as u64;
        let start = CHANNEL_DATA_HEADER_LEN;
        ClientOutcome::Forward(Forward {
            from: relay,
            to: peer,
            range: start..start + cd.data.len(),
            transport: ClientTransport::Udp,
        })
    }

    fn handle_stun(
        &mut self,
        now: Instant,
        from: ClientTuple,
        msg: &Message<'_>,
        buf: &[u8],
    ) -> ClientOutcome {
        match msg.class() {
            Class::Request => {
                self.stats.requests += 1;
                self.handle_request(now, from, msg);
                ClientOutcome::Handled
            }
            Class::Indication => match msg.method() {
                Method::SEND => self.handle_send_indication(now, &from, msg, buf),
                // RFC 8489 §6.3.2: Binding indications keep NAT bindings alive; nothing to answer.
                Method::BINDING => ClientOutcome::Handled,
                _ => self.drop_reason(DropReason::UnexpectedClass),
            },
            Class::SuccessResponse | Class::ErrorResponse => {
                self.drop_reason(DropReason::UnexpectedClass)
            }
        }
    }

    /// RFC 8656 §10.2: a Send indication relays DATA to XOR-PEER-ADDRESS if a
    /// permission exists; anything wrong means a silent drop.
    fn handle_send_indication(
        &mut self,
        now: Instant,
        from: &ClientTuple,
        msg: &Message<'_>,
        buf: &[u8],
    ) -> ClientOutcome {
        if self.config.stun_only {
            return self.drop_reason(DropReason::Disabled);
        }
        let (Some(Ok(XorPeerAddress(peer))), Some(Ok(Data(data)))) =
            (msg.get::<XorPeerAddress>(), msg.get::<Data>())
        else {
            return self.drop_reason(DropReason::Malformed);
        };
        let Some(alloc) = self.allocation_for_client(from).filter(|a| now < a.expires) else {
            return self.drop_reason(DropReason::NoAllocation);
        };
        let Some(relay) = alloc.relay_for(&peer) else {
            return self.drop_reason(DropReason::NoPermission);
        };
        if !alloc.has_permission(peer.ip(), now) {
            return self.drop_reason(DropReason::NoPermission);
        }
        let id = alloc.id;
        if let Err(reason) = self.claim_for_send(id, relay, peer) {
            return self.drop_reason(reason);
        }
        let start = (data.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
        if !self.within_rate(id, data.len(), now, Direction::ToPeer) {
            return self.drop_reason(DropReason::RateLimited);
        }
        self.stats.forwarded_to_peers += 1;
        self.stats.bytes_to_peers += data.len() as u64;
        ClientOutcome::Forward(Forward {
            from: relay,
            to: peer,
            range: start..start + data.len(),
            transport: ClientTransport::Udp,
        })
    }

    /// A datagram from `peer` arrived on the relay socket `relay`. The payload
    /// is `buf[payload]`, with `PEER_HEADROOM` bytes free before it and
    /// `PEER_TAILROOM` after, so the framing is written in place (RFC 8656
    /// §10.3 Data indication, §12.7 ChannelData).
    pub fn handle_peer_datagram(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        peer: SocketAddr,
        buf: &mut [u8],
        payload: Range<usize>,
    ) -> PeerOutcome {
        let id = match &self.shared {
            // Shared relay socket: the exact peer endpoint says whose it is.
            Some(shared) => match shared.owner(relay, peer) {
                Some(id) => id,
                None => return self.peer_drop(DropReason::Unclaimed),
            },
            None => match self.by_relay.get(&RelayKey(relay)).copied() {
                Some(id) => id,
                None => return self.peer_drop(DropReason::NoAllocation),
            },
        };
        // One lookup for the checks, the rates and the session counts.
        let len = payload.len();
        let capacity_rate = self.config.bps_capacity;
        let checked = match slot_allocation(&mut self.slots, id) {
            None => Err(DropReason::NoAllocation),
            // A TCP allocation (RFC 6062) has no datagrams to deliver.
            Some(a) if a.state != AllocationState::Active || now >= a.expires || a.relay_tcp => {
                Err(DropReason::NoAllocation)
            }
            // RFC 8656 §10.3: no permission for the peer's IP, no delivery.
            Some(a) if !a.has_permission(peer.ip(), now) => Err(DropReason::NoPermission),
            Some(a) => {
                if charge(
                    a,
                    &mut self.capacity,
                    capacity_rate,
                    len,
                    now,
                    Direction::ToClient,
                ) {
                    Ok((a.client, a.channel_for_peer(peer, now)))
                } else {
                    Err(DropReason::RateLimited)
                }
            }
        };
        let (client, channel) = match checked {
            Ok(c) => c,
            Err(reason) => return self.peer_drop(reason),
        };
        let Ok(len16) = u16::try_from(len) else {
            return self.peer_drop(DropReason::Malformed);
        };
        let framed = match channel {
            Some(number) => {
                let Some(start) = payload.start.checked_sub(CHANNEL_DATA_HEADER_LEN) else {
                    return self.peer_drop(DropReason::NoHeadroom);
                };
                let Some(head) = buf.get_mut(start..payload.start) else {
                    return self.peer_drop(DropReason::NoHeadroom);
                };
                head.copy_from_slice(&write_header(crate::stun::ChannelNumber(number), len16));
                let mut end = payload.end;
                if client.is_stream() {
                    // RFC 8656 §12.5: over streams, pad to a multiple of 4.
                    let padded = start + crate::stun::channel_data::frame_len(len, true);
                    match buf.get_mut(end..padded) {
                        Some(pad) => pad.fill(0),
                        None => return self.peer_drop(DropReason::NoHeadroom),
                    }
                    end = padded;
                }
                self.stats.channel_data_to_clients += 1;
                start..end
            }
            None => match self.write_data_indication(buf, &payload, peer) {
                Some(range) => range,
                None => return self.peer_drop(DropReason::NoHeadroom),
            },
        };
        self.stats.forwarded_to_clients += 1;
        self.stats.bytes_to_clients += len as u64;
        PeerOutcome::Forward(Forward {
            from: client.server,
            to: client.client,
            range: framed,
            transport: client.transport,
        })
    }

    /// Counts `bytes` relayed for allocation `id` (its session totals) if
    /// `max-bps` and `bps-capacity` leave room for them; false: drop them.
    /// Without either limit this is the counting alone.
    #[inline]
    fn within_rate(
        &mut self,
        id: AllocationId,
        bytes: usize,
        now: Instant,
        direction: Direction,
    ) -> bool {
        let capacity_rate = self.config.bps_capacity;
        match slot_allocation(&mut self.slots, id) {
            Some(a) => charge(a, &mut self.capacity, capacity_rate, bytes, now, direction),
            None => true,
        }
    }

    fn peer_drop(&mut self, reason: DropReason) -> PeerOutcome {
        self.stats.dropped += 1;
        self.count_drop(reason);
        PeerOutcome::Dropped(reason)
    }

    /// Writes a Data indication (header, XOR-PEER-ADDRESS, DATA header) in
    /// front of the payload and its padding after it.
    fn write_data_indication(
        &mut self,
        buf: &mut [u8],
        payload: &Range<usize>,
        peer: SocketAddr,
    ) -> Option<Range<usize>> {
        let addr_len = if peer.is_ipv4() { 8 } else { 20 };
        let front = HEADER_LEN + 4 + addr_len + 4;
        let start = payload.start.checked_sub(front)?;
        let len = payload.len();
        let padded = crate::stun::reader::padded_len(len);
        let end = payload.start + padded;
        buf.get_mut(payload.end..end)?.fill(0);
        let mut tid = [0u8; 12];
        let r = self.rng.next_u64().to_be_bytes();
        tid.iter_mut()
            .zip(r.iter().chain(r.iter()))
            .for_each(|(t, b)| *t = *b);
        let head = buf.get_mut(start..payload.start)?;
        let mut w = crate::stun::MessageWriter::new(
            head,
            crate::stun::MessageType::new(Method::DATA, Class::Indication),
            crate::stun::TransactionId(tid),
        )
        .ok()?;
        w.add(&XorPeerAddress(peer)).ok()?;
        // The DATA attribute header; its value is the payload already in place.
        let body_len = u16::try_from(4 + addr_len + 4 + padded).ok()?;
        let len16 = u16::try_from(len).ok()?;
        let data_head = [
            (AttributeType::DATA.0 >> 8) as u8,
            AttributeType::DATA.0 as u8,
            (len16 >> 8) as u8,
            len16 as u8,
        ];
        head.get_mut(HEADER_LEN + 4 + addr_len..)?
            .copy_from_slice(&data_head);
        head.get_mut(2..4)?.copy_from_slice(&body_len.to_be_bytes());
        Some(start..end)
    }

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
    fn claim_for_send(
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

    fn count_drop(&mut self, reason: DropReason) {
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
