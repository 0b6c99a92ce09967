//! RFC 6062 peer connections as a shard keeps them: their numbers
//! (CONNECTION-ID), which shard made one, and the state of each until the
//! client binds it. The methods that drive them are in `tcp_relay.rs`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::allocation::{AllocationId, ClientTuple};
use super::echo::{ReplyIntegrity, RequestEcho};
use crate::stun::TransactionId;

/// RFC 6062 §5.2, §5.3: a peer connection not bound within 30 seconds is closed.
pub const CONNECTION_BIND_TIMEOUT: Duration = Duration::from_secs(30);

/// RFC 6062's CONNECTION-ID: names one peer connection on this server.
pub type ConnectionNumber = u32;

/// The shard (worker) whose core made `connection`, among `shards`.
pub fn connection_shard(connection: ConnectionNumber, shards: u16) -> usize {
    (connection % u32::from(shards.max(1))) as usize
}

#[derive(Debug, Clone)]
pub(crate) enum PeerConnectionState {
    /// Connect sent; waiting for the I/O layer's TCP handshake with the peer.
    Connecting {
        client: ClientTuple,
        echo: RequestEcho,
        integrity: Option<ReplyIntegrity>,
        transaction: TransactionId,
    },
    /// Connected (or accepted); waiting for the client's ConnectionBind.
    AwaitingBind { expires: Instant },
    /// Joined to the client's data connection.
    Bound,
}

#[derive(Debug, Clone)]
pub(crate) struct PeerConnection {
    pub allocation: AllocationId,
    pub peer: SocketAddr,
    pub state: PeerConnectionState,
}
