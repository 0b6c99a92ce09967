//! What a shard counts for the metrics: why datagrams were dropped, the
//! responses by method and result, the live totals, and the size of every
//! per-shard table (issue 16).

use crate::stun::Method;

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
