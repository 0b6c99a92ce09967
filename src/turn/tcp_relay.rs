//! TCP relaying (RFC 6062): an allocation with REQUESTED-TRANSPORT TCP
//! relays TCP connections to peers instead of datagrams. The client asks for
//! an outgoing connection with Connect (§4.3, §5.2) or learns of an incoming
//! one through a ConnectionAttempt indication (§4.4, §5.3); either way it
//! then opens a new connection to the server and binds it with
//! ConnectionBind (§4.4, §5.4), after which that connection carries the
//! peer's bytes both ways, raw.
//!
//! The core decides; the I/O layer connects, accepts and splices, and reports
//! back (`handle_peer_connected`, `handle_peer_connection`,
//! `handle_peer_closed`).

use std::net::SocketAddr;
use std::time::Instant;

use super::allocation::{AllocationId, AllocationState, ClientTuple};
use super::echo::{ReplyIntegrity, RequestEcho};
use super::fast_map::shrink_if_sparse;
use super::server::{Command, Server};
use super::timers::TimerKey;
use crate::stun::{
    ConnectionId, ErrorCode, Message, MessageType, MessageWriter, Method, TransactionId,
    XorPeerAddress,
};

pub use super::peer_connections::{connection_shard, ConnectionNumber, CONNECTION_BIND_TIMEOUT};
pub(crate) use super::peer_connections::{PeerConnection, PeerConnectionState};

impl Server {
    /// A fresh CONNECTION-ID that names this shard: `n % port_stride ==
    /// port_offset`, so whichever worker a ConnectionBind's new connection
    /// lands on can tell which worker holds the peer connection.
    fn new_connection_number(&mut self) -> ConnectionNumber {
        let stride = u32::from(self.config.port_stride.max(1));
        let offset = u32::from(self.config.port_offset) % stride;
        loop {
            let r = (self.rng.next_u64() >> 32) as u32;
            let n = r - r % stride + offset;
            if n != 0 && !self.tcp_connections.contains_key(&n) {
                return n;
            }
        }
    }

    /// RFC 6062 §5.2: Connect. The answer waits for the peer's handshake.
    pub(crate) fn connect(
        &mut self,
        now: Instant,
        id: AllocationId,
        from: ClientTuple,
        msg: &Message<'_>,
        echo: &RequestEcho,
        integrity: Option<ReplyIntegrity>,
    ) -> Result<super::requests::Answer, super::requests::Refusal> {
        let alloc = self
            .allocation(id)
            .ok_or((ErrorCode::ALLOCATION_MISMATCH, "No allocation"))?;
        if !alloc.relay_tcp {
            return Err((ErrorCode::BAD_REQUEST, "Connect needs a TCP allocation"));
        }
        let relay = alloc.relay;
        let peer = match msg.get::<XorPeerAddress>() {
            Some(Ok(XorPeerAddress(p))) => p,
            _ => return Err((ErrorCode::BAD_REQUEST, "XOR-PEER-ADDRESS missing")),
        };
        self.check_peer(id, peer)?;
        // §5.2: one connection per peer address, in progress or established.
        if self
            .tcp_connections
            .values()
            .any(|c| c.allocation == id && c.peer == peer)
        {
            return Err((
                ErrorCode::CONNECTION_ALREADY_EXISTS,
                "Connection Already Exists",
            ));
        }
        // The peer's IP gets a permission, as a ChannelBind would give it, so
        // its later connections to the relayed address are accepted too.
        let expires = now + self.config.permission_lifetime;
        let max = self.config.max_permissions_per_allocation;
        let change = self
            .allocation_mut(id)
            .map(|a| a.refresh_permission(peer.ip(), expires, max));
        match change {
            Some(super::allocation::PermissionChange::Installed) => {
                self.stats.permissions_installed += 1;
                self.schedule(expires, TimerKey::Permission(id, peer.ip()));
            }
            Some(super::allocation::PermissionChange::Full) => {
                return Err((
                    ErrorCode::INSUFFICIENT_CAPACITY,
                    "Too many permissions on this allocation",
                ))
            }
            _ => {}
        }
        let connection = self.new_connection_number();
        self.tcp_connections.insert(
            connection,
            super::tcp_relay::PeerConnection {
                allocation: id,
                peer,
                state: PeerConnectionState::Connecting {
                    client: from,
                    echo: *echo,
                    integrity,
                    transaction: msg.transaction_id(),
                },
            },
        );
        self.cache_response(
            now,
            from.client,
            msg.transaction_id(),
            super::server::CachedResponse::InProgress,
        );
        self.commands.push_back(Command::ConnectPeer {
            connection,
            relay,
            peer,
        });
        Ok(super::requests::Answer::Deferred)
    }

    /// The I/O layer's TCP handshake with the peer ended: answer the Connect.
    pub fn handle_peer_connected(
        &mut self,
        now: Instant,
        connection: ConnectionNumber,
        result: Result<(), std::io::ErrorKind>,
    ) {
        let Some(conn) = self.tcp_connections.get_mut(&connection) else {
            return;
        };
        let PeerConnectionState::Connecting {
            client,
            echo,
            integrity,
            transaction,
        } = conn.state.clone()
        else {
            return;
        };
        let bytes = if result.is_ok() {
            let expires = now + CONNECTION_BIND_TIMEOUT;
            conn.state = PeerConnectionState::AwaitingBind { expires };
            self.schedule(expires, TimerKey::TcpConnection(connection));
            self.reply(client, &echo, None, integrity.as_ref(), |w| {
                w.add(&ConnectionId(connection))
            })
        } else {
            // §5.2: the connection attempt failed or timed out.
            self.forget_tcp_connection(connection);
            self.commands.push_back(Command::ClosePeer { connection });
            self.reply_error(
                client,
                &echo,
                ErrorCode::CONNECTION_TIMEOUT_OR_FAILURE,
                "Connection Timeout or Failure",
                integrity.as_ref(),
            )
        };
        if let Some(bytes) = bytes {
            self.cache_response(
                now,
                client.client,
                transaction,
                super::server::CachedResponse::Done(Method::CONNECT, &bytes),
            );
        }
    }

    /// RFC 6062 §5.3: a peer connected to a TCP allocation's relayed address.
    /// Returns the connection's number, or `None` to refuse it (no such
    /// allocation, or no permission for the peer's IP).
    pub fn handle_peer_connection(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        peer: SocketAddr,
    ) -> Option<ConnectionNumber> {
        let id = self.allocation_id_for_relay(relay)?;
        let alloc = self.allocation(id)?;
        if !alloc.relay_tcp
            || alloc.state != AllocationState::Active
            || now >= alloc.expires
            || !alloc.has_permission(peer.ip(), now)
        {
            return None;
        }
        let client = alloc.client;
        let connection = self.new_connection_number();
        let expires = now + CONNECTION_BIND_TIMEOUT;
        self.tcp_connections.insert(
            connection,
            PeerConnection {
                allocation: id,
                peer,
                state: PeerConnectionState::AwaitingBind { expires },
            },
        );
        self.schedule(expires, TimerKey::TcpConnection(connection));
        // ConnectionAttempt indication with CONNECTION-ID and XOR-PEER-ADDRESS.
        let mut tid = [0u8; 12];
        let r = self.rng.next_u64().to_be_bytes();
        tid.iter_mut()
            .zip(r.iter().chain(r.iter()))
            .for_each(|(t, b)| *t = *b);
        let mut buf = [0u8; 64];
        let n = MessageWriter::new(
            &mut buf,
            MessageType::new(Method::CONNECTION_ATTEMPT, crate::stun::Class::Indication),
            TransactionId(tid),
        )
        .and_then(|mut w| {
            w.add(&ConnectionId(connection))?;
            w.add(&XorPeerAddress(peer))?;
            Ok(w.finish())
        })
        .ok()?;
        self.queue(client, buf.get(..n)?.to_vec());
        Some(connection)
    }

    /// RFC 6062 §5.4: ConnectionBind on a new connection from the client.
    /// Authenticated with the allocation owner's credentials; on success the
    /// connection becomes the peer connection's data connection.
    pub(crate) fn connection_bind(
        &mut self,
        from: ClientTuple,
        msg: &Message<'_>,
        owner: Option<&super::allocation::Owner>,
    ) -> Result<ConnectionNumber, super::requests::Refusal> {
        if !from.is_stream() || self.allocation_id_for_client(&from).is_some() {
            return Err((
                ErrorCode::BAD_REQUEST,
                "ConnectionBind needs a new TCP or TLS connection",
            ));
        }
        let connection = match msg.get::<ConnectionId>() {
            Some(Ok(ConnectionId(c))) => c,
            _ => return Err((ErrorCode::BAD_REQUEST, "CONNECTION-ID missing")),
        };
        let Some(conn) = self.tcp_connections.get(&connection) else {
            return Err((ErrorCode::BAD_REQUEST, "Unknown CONNECTION-ID"));
        };
        if !matches!(conn.state, PeerConnectionState::AwaitingBind { .. }) {
            return Err((ErrorCode::BAD_REQUEST, "Connection not awaiting a bind"));
        }
        let allocation_owner = self
            .allocation(conn.allocation)
            .and_then(|a| a.owner.as_ref())
            .map(|o| o.username.clone());
        if allocation_owner != owner.map(|o| o.username.clone()) {
            return Err((ErrorCode::WRONG_CREDENTIALS, "Wrong Credentials"));
        }
        if let Some(conn) = self.tcp_connections.get_mut(&connection) {
            conn.state = PeerConnectionState::Bound;
        }
        Ok(connection)
    }

    /// The I/O layer closed a peer connection (either side hung up).
    pub fn handle_peer_closed(&mut self, connection: ConnectionNumber) {
        self.forget_tcp_connection(connection);
    }

    /// Drops a peer connection's record and its bind timer.
    fn forget_tcp_connection(&mut self, connection: ConnectionNumber) {
        if self.tcp_connections.remove(&connection).is_some() {
            self.timers.cancel(&TimerKey::TcpConnection(connection));
            shrink_if_sparse(&mut self.tcp_connections);
        }
    }

    /// A peer connection's bind deadline passed.
    pub(crate) fn expire_tcp_connection(&mut self, now: Instant, connection: ConnectionNumber) {
        let due = matches!(
            self.tcp_connections.get(&connection).map(|c| &c.state),
            Some(PeerConnectionState::AwaitingBind { expires }) if *expires <= now
        );
        if due {
            self.forget_tcp_connection(connection);
            self.commands.push_back(Command::ClosePeer { connection });
        }
    }

    /// RFC 6062 §5: an allocation's peer connections end with it.
    pub(crate) fn close_tcp_connections_of(&mut self, id: AllocationId) {
        let mine: Vec<ConnectionNumber> = self
            .tcp_connections
            .iter()
            .filter(|(_, c)| c.allocation == id)
            .map(|(n, _)| *n)
            .collect();
        for connection in mine {
            self.forget_tcp_connection(connection);
            self.commands.push_back(Command::ClosePeer { connection });
        }
    }

    /// Peer connections open or pending (for tests and metrics).
    pub fn tcp_connection_count(&self) -> usize {
        self.tcp_connections.len()
    }
}
