//! One allocation's state (RFC 8656 §2.2): its relayed address, lifetime,
//! permissions and channel bindings. Per-allocation lists are small vectors:
//! WebRTC uses a handful of peers, and a linear scan of a few entries beats a
//! hash lookup. Their length is capped by `ServerConfig`.

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smallvec::SmallVec;

use crate::auth::{PasswordAlgorithm, UserKeys};
use crate::stun::TransactionId;

/// RFC 8656 §12: a channel number or peer stays reserved this long after its
/// binding expires, so a stale packet is never delivered to a new peer.
pub const CHANNEL_COOLDOWN: Duration = Duration::from_secs(300);

/// A slot index plus a generation, so stale timers never touch a new tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AllocationId {
    pub index: u32,
    pub generation: u32,
}

/// How the client reaches us: its address, the local address it sent to,
/// and the transport (RFC 8656 §2: the 5-tuple).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTuple {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub transport: ClientTransport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientTransport {
    Udp,
    /// A stream connection (TCP or TLS), by the I/O layer's connection number.
    Stream(u64),
}

/// Packs an address into integers for hashing: far cheaper than the derived
/// `Hash` of `SocketAddr`, which feeds every field separately. This lookup
/// runs once per relayed packet.
pub(crate) fn hash_addr<H: Hasher>(addr: &SocketAddr, state: &mut H) {
    match addr {
        SocketAddr::V4(a) => {
            state.write_u64(u64::from(u32::from(*a.ip())) << 16 | u64::from(a.port()))
        }
        SocketAddr::V6(a) => {
            state.write_u128(u128::from(*a.ip()));
            state.write_u32(u32::from(a.port()) | (a.scope_id() << 16));
        }
    }
}

impl Hash for ClientTuple {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_addr(&self.client, state);
        hash_addr(&self.server, state);
        if let ClientTransport::Stream(id) = self.transport {
            state.write_u64(id);
        }
    }
}

/// A relay address as a map key, with the cheap hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RelayKey(pub SocketAddr);

impl Hash for RelayKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_addr(&self.0, state);
    }
}

impl ClientTuple {
    pub fn udp(client: SocketAddr, server: SocketAddr) -> Self {
        Self {
            client,
            server,
            transport: ClientTransport::Udp,
        }
    }

    pub fn is_stream(&self) -> bool {
        matches!(self.transport, ClientTransport::Stream(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    pub ip: IpAddr,
    pub expires: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelBinding {
    pub number: u16,
    pub peer: SocketAddr,
    /// Data flows until here.
    pub expires: Instant,
    /// Issue 11: on the kernel fast path, with this route, until then.
    pub offloaded: Option<(ChannelRoute, Instant)>,
    /// What the kernel had relayed on it at the last rate poll (issue 12),
    /// since it was offloaded: packets and bytes to the peer, to the client.
    pub kernel_seen: [u64; 4],
}

impl ChannelBinding {
    pub fn is_live(&self, now: Instant) -> bool {
        now < self.expires
    }

    /// Still blocks rebinding of its number and peer (RFC 8656 §12).
    pub fn blocks_rebinding(&self, now: Instant) -> bool {
        now < self.expires + CHANNEL_COOLDOWN
    }
}

/// The credentials an allocation was made with; later requests on it must
/// come from the same user (RFC 8656 §5) and are checked with the cached key.
#[derive(Debug, Clone)]
pub struct Owner {
    pub username: Arc<str>,
    pub keys: UserKeys,
    pub algorithm: PasswordAlgorithm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocationState {
    /// Waiting for the I/O layer to open the relay socket.
    Opening {
        attempts: u8,
    },
    Active,
}

#[derive(Debug, Clone)]
pub struct Allocation {
    pub id: AllocationId,
    pub client: ClientTuple,
    /// The local relay socket address.
    pub relay: SocketAddr,
    /// What XOR-RELAYED-ADDRESS tells the client (the `external-ip` mapping).
    pub advertised: SocketAddr,
    pub owner: Option<Owner>,
    pub expires: Instant,
    pub state: AllocationState,
    /// The Allocate request that created it (RFC 8656 §7.2: a retransmission
    /// gets the same success response).
    pub creating_transaction: TransactionId,
    pub lifetime: Duration,
    /// The deadline of this allocation's one live timer entry.
    pub timer_at: Instant,
    /// RFC 8656 §7.2: the port after an EVEN-PORT R=1 allocation, held for a later Allocate.
    pub reservation_token: Option<[u8; 8]>,
    /// RFC 8656 §7.2: the family of a requested dual allocation we could not
    /// serve, and why (ADDRESS-ERROR-CODE).
    pub address_error: Option<(crate::stun::AddressFamily, crate::stun::ErrorCode)>,
    /// RFC 8656 §7.2 / RFC 6156: the second (IPv6) relayed address of a dual
    /// allocation (ADDITIONAL-ADDRESS-FAMILY).
    pub secondary: Option<SecondaryRelay>,
    /// RFC 6062: REQUESTED-TRANSPORT TCP — the relayed address is a TCP
    /// listener and peers are reached by Connect / ConnectionAttempt.
    pub relay_tcp: bool,
    /// The primary relay socket is open; a dual allocation goes live when the
    /// secondary's has opened (or failed) too.
    pub primary_open: bool,
    /// Inline for the usual few peers, so the hot path touches one cache line
    /// less per list.
    pub permissions: SmallVec<[Permission; 4]>,
    pub channels: SmallVec<[ChannelBinding; 2]>,
    /// Shared relay socket mode: the peer endpoints this allocation claimed
    /// on its (shared) relay address (see `turn::shared`). Empty otherwise.
    pub claims: SmallVec<[SocketAddr; 2]>,
    /// Issue 12: the session number in the log lines, when it was created,
    /// and what it relayed on the socket path (read when it ends).
    pub session: u64,
    pub created: Instant,
    pub traffic: super::bandwidth::Traffic,
    /// `max-bps`: this allocation's buckets, one each way.
    /// (Boxed: most allocations have none, and the hot path walks many.)
    pub limit: Option<Box<super::bandwidth::DuplexLimit>>,
    /// Went over its rate on the kernel fast path: its channels stay on the
    /// socket path (where the buckets drop) until then.
    pub fast_path_hold: Option<Instant>,
}

/// The other-family relayed address of a dual allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecondaryRelay {
    pub relay: SocketAddr,
    pub advertised: SocketAddr,
    pub open: bool,
}

impl Allocation {
    /// The relay address that talks to `peer`: the one of the peer's family
    /// (RFC 8656 §7.2: a dual allocation relays to peers of either family).
    pub fn relay_for(&self, peer: &SocketAddr) -> Option<SocketAddr> {
        if peer.is_ipv4() == self.relay.is_ipv4() {
            return Some(self.relay);
        }
        self.secondary
            .filter(|s| s.relay.is_ipv4() == peer.is_ipv4())
            .map(|s| s.relay)
    }

    /// Every relayed address: the primary, then a dual allocation's second.
    pub fn relays(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        std::iter::once(self.relay).chain(self.secondary.map(|s| s.relay))
    }

    /// RFC 8656 §9: permissions match the peer's IP address only, not its port.
    pub fn has_permission(&self, ip: IpAddr, now: Instant) -> bool {
        self.permissions
            .iter()
            .any(|p| p.ip == ip && now < p.expires)
    }

    /// Installs or refreshes a permission; false if the list is full.
    pub fn refresh_permission(
        &mut self,
        ip: IpAddr,
        expires: Instant,
        max: usize,
    ) -> PermissionChange {
        if let Some(p) = self.permissions.iter_mut().find(|p| p.ip == ip) {
            p.expires = expires;
            return PermissionChange::Refreshed;
        }
        if self.permissions.len() >= max {
            return PermissionChange::Full;
        }
        self.permissions.push(Permission { ip, expires });
        PermissionChange::Installed
    }

    pub fn live_channel(&self, number: u16, now: Instant) -> Option<&ChannelBinding> {
        self.channels
            .iter()
            .find(|c| c.number == number && c.is_live(now))
    }

    pub fn channel_for_peer(&self, peer: SocketAddr, now: Instant) -> Option<u16> {
        self.channels
            .iter()
            .find(|c| c.peer == peer && c.is_live(now))
            .map(|c| c.number)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermissionChange {
    Installed,
    Refreshed,
    Full,
}

/// Both directions of an offloaded channel: ChannelData from `client` to
/// `listening` on `channel` leaves as UDP `relay → peer`; UDP from `peer` to
/// `relay` arrives at the client as ChannelData `listening → client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelRoute {
    pub client: SocketAddr,
    pub listening: SocketAddr,
    pub channel: u16,
    pub relay: SocketAddr,
    pub peer: SocketAddr,
}
