//! Rooms for 1-to-1 calls as a sans-IO state machine: a connection's event
//! in, messages to connections out. Both transports (WebSocket and
//! Socket.IO) drive the same [`Rooms`], so a WebSocket page and a Socket.IO
//! client can share a room.
//!
//! The protocol is the classic WebRTC tutorial's:
//!
//! | client → server   | server → client                                                     |
//! |-------------------|---------------------------------------------------------------------|
//! | `join(room)`      | `joined(room, id)` to the joiner, then `otherJoin(room, id)` to each |
//! |                   | member already there; `full(room, id)` instead when the room holds  |
//! |                   | `room_size` members (the joiner is not added)                       |
//! | `leave(room)`     | `leaved(room, id)` to the leaver, then `bye(room, id)` to the others |
//! | `message(room, data)` | `message(room, data)` to every other member, never back       |
//! | (connection lost) | `bye(room, id)` to the others in each of its rooms                  |
//!
//! `id` is always the public id of the connection the event is about (the
//! joiner, the one refused, the leaver). Anything else gets an `error` event
//! back ([`ProtocolError`]) and changes nothing.
//!
//! Contract (as in quinn-proto and str0m): after every `handle_*` call, drain
//! [`Rooms::poll_output`] until it returns `None`. Outputs come in the order
//! the recipients must see them. No I/O, no clock, no locks, no panics on any
//! input.
//!
//! Shared mode ([`Rooms::new_shared`], issue 14: several nodes on one Redis)
//! keeps the same rules for this node's connections, but the room-of-two
//! decision and the other nodes' members live in a store the nodes share:
//! a join is asked of it ([`SharedOp::Admit`], answered through
//! [`Rooms::handle_admission`]), what happens here is told to it (drain
//! [`Rooms::poll_shared`] too), and what happens on other nodes comes back
//! through [`Rooms::handle_remote`] for this node's members of the room.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use smallvec::SmallVec;

pub use super::events::{
    Admission, ClientEvent, ConnId, ErrorEvent, Limits, Output, Payload, PeerId, ProtocolError,
    RemoteEvent, RoomName, ServerEvent, SharedOp,
};

#[derive(Debug)]
struct Connection {
    id: PeerId,
    rooms: SmallVec<[RoomName; 2]>,
    /// Shared mode: joins asked of the shared store, not answered yet.
    pending: SmallVec<[RoomName; 1]>,
    /// Shared mode: the store's admission number of each room it is in.
    admitted: SmallVec<[(RoomName, u64); 2]>,
    /// Shared mode: events that came while a join was being asked, handled
    /// in their order once it is answered (a client may send its offer
    /// right after its join).
    deferred: VecDeque<ClientEvent>,
}

/// Events one connection may send while its join is being asked.
const MAX_DEFERRED: usize = 64;

#[derive(Debug, Default)]
struct Room {
    /// In order of joining.
    members: SmallVec<[ConnId; 2]>,
}

/// The rooms and who is in them. See the module docs for the protocol.
#[derive(Debug)]
pub struct Rooms {
    limits: Limits,
    connections: HashMap<ConnId, Connection>,
    rooms: HashMap<RoomName, Room>,
    outputs: VecDeque<Output>,
    /// Shared mode: what the shared store must hear (`None`: one node alone).
    shared: Option<VecDeque<SharedOp>>,
}

impl Rooms {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            connections: HashMap::new(),
            rooms: HashMap::new(),
            outputs: VecDeque::new(),
            shared: None,
        }
    }

    /// Rooms whose membership and size rule are shared with other nodes.
    pub fn new_shared(limits: Limits) -> Self {
        Self {
            shared: Some(VecDeque::new()),
            ..Self::new(limits)
        }
    }

    /// The rooms this node has members in (for the shared store's sweeps).
    pub fn local_rooms(&self) -> Vec<RoomName> {
        self.rooms.keys().cloned().collect()
    }

    /// The next operation for the shared store; drain after every `handle_*`.
    #[must_use]
    pub fn poll_shared(&mut self) -> Option<SharedOp> {
        self.shared.as_mut()?.pop_front()
    }

    fn tell_shared(&mut self, op: SharedOp) {
        if let Some(q) = self.shared.as_mut() {
            q.push_back(op);
        }
    }

    /// The shared store's answer to `SharedOp::Admit { conn, room, id }`.
    pub fn handle_admission(
        &mut self,
        conn: ConnId,
        room: RoomName,
        id: PeerId,
        admission: Admission,
    ) {
        let Some(c) = self.connections.get_mut(&conn) else {
            // Gone while asking: give the seat back.
            if matches!(admission, Admission::Admitted(_)) {
                self.tell_shared(SharedOp::Left { room, id });
            }
            return;
        };
        let Some(at) = c.pending.iter().position(|r| *r == room) else {
            return;
        };
        c.pending.remove(at);
        match admission {
            Admission::Full => self.push(conn, ServerEvent::Full { room, id }),
            Admission::Unavailable => self.error(conn, ProtocolError::Unavailable, Some(room)),
            Admission::Admitted(seq) => {
                if let Some(c) = self.connections.get_mut(&conn) {
                    c.admitted.retain(|(r, _)| *r != room);
                    c.admitted.push((room.clone(), seq));
                }
                self.admit(conn, &id, room.clone());
                self.tell_shared(SharedOp::Joined { room, id, seq });
            }
        }
        // What the connection said meanwhile, in order, until it asks again.
        loop {
            let Some(c) = self.connections.get_mut(&conn) else {
                return;
            };
            if !c.pending.is_empty() {
                return;
            }
            let Some(event) = c.deferred.pop_front() else {
                return;
            };
            self.handle_event(conn, event);
        }
    }

    /// What a member on another node did: this node's members of the room
    /// hear it as if it happened here.
    pub fn handle_remote(&mut self, event: RemoteEvent) {
        let room = match &event {
            RemoteEvent::Joined { room, .. }
            | RemoteEvent::Message { room, .. }
            | RemoteEvent::Left { room, .. } => room,
        };
        let Some((name, r)) = self.rooms.get_key_value(&**room) else {
            return;
        };
        // The room's own name, so recipients share one allocation of it.
        let room = name.clone();
        let (event, joined) = match event {
            RemoteEvent::Joined { id, seq, .. } => (ServerEvent::OtherJoin { room, id }, Some(seq)),
            RemoteEvent::Message { data, .. } => (ServerEvent::Message { room, data }, None),
            RemoteEvent::Left { id, .. } => (ServerEvent::Bye { room, id }, None),
        };
        // A join is news only to members admitted before it: one admitted
        // after it already got `joined` with the joiner in the room, and its
        // node may hear of the earlier join only now.
        let earlier = |conn: &ConnId| {
            joined.is_none_or(|seq| {
                self.connections
                    .get(conn)
                    .is_some_and(|c| c.admitted.iter().any(|(r, s)| r == name && *s < seq))
            })
        };
        let to: SmallVec<[ConnId; 2]> = r.members.iter().copied().filter(earlier).collect();
        for member in to {
            self.push(member, event.clone());
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Connections now.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Rooms now (each has at least one member).
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// The members of `room` in order of joining (empty if there is no such room).
    pub fn members(&self, room: &str) -> Vec<ConnId> {
        self.rooms
            .get(room)
            .map(|r| r.members.to_vec())
            .unwrap_or_default()
    }

    /// A new connection with public id `id`. Refused with
    /// [`ProtocolError::ServerFull`] at the connection limit (the transport
    /// tells the client and closes); nothing is queued either way.
    pub fn handle_connect(&mut self, conn: ConnId, id: PeerId) -> Result<(), ProtocolError> {
        if self.connections.contains_key(&conn) {
            // A transport bug; keep the first registration.
            tracing::warn!(conn = conn.0, "signaling connection registered twice");
            return Ok(());
        }
        if self.connections.len() >= self.limits.max_connections {
            return Err(ProtocolError::ServerFull {
                max: self.limits.max_connections,
            });
        }
        self.connections.insert(
            conn,
            Connection {
                id,
                rooms: SmallVec::new(),
                pending: SmallVec::new(),
                admitted: SmallVec::new(),
                deferred: VecDeque::new(),
            },
        );
        Ok(())
    }

    /// A well-formed event from `conn`. Events of unknown connections are
    /// ignored.
    pub fn handle_event(&mut self, conn: ConnId, event: ClientEvent) {
        if let Some(c) = self.connections.get_mut(&conn) {
            if !c.pending.is_empty() {
                if c.deferred.len() < MAX_DEFERRED {
                    c.deferred.push_back(event);
                } else {
                    self.error(conn, ProtocolError::Unavailable, None);
                }
                return;
            }
        }
        match event {
            ClientEvent::Join { room } => self.join(conn, room),
            ClientEvent::Leave { room } => self.leave(conn, &room),
            ClientEvent::Message { room, data } => self.message(conn, &room, data),
        }
    }

    /// Input the transport could not turn into a [`ClientEvent`]: `conn` is
    /// told what was wrong.
    pub fn handle_invalid(&mut self, conn: ConnId, error: ProtocolError, room: Option<&str>) {
        if self.connections.contains_key(&conn) {
            self.error(conn, error, room.map(Arc::from));
        }
    }

    /// `conn` is gone (closed, dropped or timed out): a `leave` of every room
    /// it was in, without the `leaved` (there is nobody to tell).
    pub fn handle_disconnect(&mut self, conn: ConnId) {
        let Some(c) = self.connections.remove(&conn) else {
            return;
        };
        for room in c.rooms {
            self.remove_member(conn, &c.id, &room);
        }
    }

    /// The next message to send; drain after every `handle_*`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn push(&mut self, to: ConnId, event: ServerEvent) {
        self.outputs.push_back(Output { to, event });
    }

    fn error(&mut self, to: ConnId, error: ProtocolError, room: Option<RoomName>) {
        self.push(to, ServerEvent::Error(ErrorEvent { error, room }));
    }

    /// A room name as written, or the error for it.
    fn check_room(&self, room: &str) -> Result<(), ProtocolError> {
        if room.is_empty() || room.len() > self.limits.max_room_name_bytes {
            Err(ProtocolError::InvalidRoom {
                max: self.limits.max_room_name_bytes,
            })
        } else {
            Ok(())
        }
    }

    /// The room's shared name if `conn` is in it.
    fn membership(&self, conn: ConnId, room: &str) -> Option<RoomName> {
        self.connections
            .get(&conn)?
            .rooms
            .iter()
            .find(|r| &***r == room)
            .cloned()
    }

    fn join(&mut self, conn: ConnId, room: String) {
        let Some(c) = self.connections.get(&conn) else {
            return;
        };
        let id = c.id.clone();
        let in_rooms = c.rooms.len() + c.pending.len();
        if let Err(e) = self.check_room(&room) {
            // Not echoing a name that may be megabytes long or empty.
            return self.error(conn, e, None);
        }
        if let Some(name) = self.membership(conn, &room) {
            return self.error(conn, ProtocolError::AlreadyInRoom, Some(name));
        }
        let existing = self.rooms.get_key_value(room.as_str());
        let name: RoomName = match existing {
            Some((name, _)) => name.clone(),
            None => Arc::from(room),
        };
        let members = existing.map_or(0, |(_, r)| r.members.len());
        // Shared mode: the size rule is the shared store's, over all nodes.
        if self.shared.is_none() && members >= self.limits.room_size {
            // The tutorial's `full(room, id)`: the joiner is not added.
            return self.push(conn, ServerEvent::Full { room: name, id });
        }
        if in_rooms >= self.limits.max_rooms_per_connection {
            let max = self.limits.max_rooms_per_connection;
            return self.error(conn, ProtocolError::TooManyRooms { max }, Some(name));
        }
        if existing.is_none() && self.rooms.len() >= self.limits.max_rooms {
            let max = self.limits.max_rooms;
            return self.error(conn, ProtocolError::RoomsExhausted { max }, Some(name));
        }
        if self.shared.is_some() {
            if let Some(c) = self.connections.get_mut(&conn) {
                c.pending.push(name.clone());
            }
            return self.tell_shared(SharedOp::Admit {
                conn,
                room: name,
                id,
            });
        }
        self.admit(conn, &id, name);
    }

    /// Adds `conn` to `name`: `joined` to it, `otherJoin` to the members
    /// already there.
    fn admit(&mut self, conn: ConnId, id: &PeerId, name: RoomName) {
        let others: SmallVec<[ConnId; 2]> = self
            .rooms
            .get(&name)
            .map(|r| r.members.clone())
            .unwrap_or_default();
        let name = self
            .rooms
            .get_key_value(&name)
            .map_or(name, |(n, _)| n.clone());
        self.rooms
            .entry(name.clone())
            .or_default()
            .members
            .push(conn);
        if let Some(c) = self.connections.get_mut(&conn) {
            c.rooms.push(name.clone());
        }
        self.push(
            conn,
            ServerEvent::Joined {
                room: name.clone(),
                id: id.clone(),
            },
        );
        for other in others {
            self.push(
                other,
                ServerEvent::OtherJoin {
                    room: name.clone(),
                    id: id.clone(),
                },
            );
        }
    }

    fn leave(&mut self, conn: ConnId, room: &str) {
        let Some(c) = self.connections.get(&conn) else {
            return;
        };
        let id = c.id.clone();
        let Some(name) = self.membership(conn, room) else {
            let named = self.check_room(room).is_ok().then(|| Arc::from(room));
            return self.error(conn, ProtocolError::NotInRoom, named);
        };
        if let Some(c) = self.connections.get_mut(&conn) {
            c.rooms.retain(|r| *r != name);
        }
        self.push(
            conn,
            ServerEvent::Leaved {
                room: name.clone(),
                id: id.clone(),
            },
        );
        self.remove_member(conn, &id, &name);
    }

    /// Takes `conn` out of `room`'s member list, tells the rest `bye`, and
    /// drops the room when it is empty.
    fn remove_member(&mut self, conn: ConnId, id: &PeerId, room: &RoomName) {
        if !self.rooms.contains_key(room) {
            return;
        }
        self.tell_shared(SharedOp::Left {
            room: room.clone(),
            id: id.clone(),
        });
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        r.members.retain(|m| *m != conn);
        let rest = r.members.clone();
        if rest.is_empty() {
            self.rooms.remove(room);
        }
        for other in rest {
            self.push(
                other,
                ServerEvent::Bye {
                    room: room.clone(),
                    id: id.clone(),
                },
            );
        }
    }

    fn message(&mut self, conn: ConnId, room: &str, data: Payload) {
        if !self.connections.contains_key(&conn) {
            return;
        }
        if data.len() > self.limits.max_message_bytes {
            let error = ProtocolError::TooLarge {
                size: data.len(),
                limit: self.limits.max_message_bytes,
            };
            let named = self.check_room(room).is_ok().then(|| Arc::from(room));
            return self.error(conn, error, named);
        }
        let Some(name) = self.membership(conn, room) else {
            let named = self.check_room(room).is_ok().then(|| Arc::from(room));
            return self.error(conn, ProtocolError::NotInRoom, named);
        };
        let others: SmallVec<[ConnId; 2]> = self
            .rooms
            .get(&name)
            .map(|r| r.members.iter().copied().filter(|m| *m != conn).collect())
            .unwrap_or_default();
        for other in others {
            self.push(
                other,
                ServerEvent::Message {
                    room: name.clone(),
                    data: data.clone(),
                },
            );
        }
        if self.shared.is_some() {
            let id = self.connections.get(&conn).map(|c| c.id.clone());
            if let Some(id) = id {
                self.tell_shared(SharedOp::Message {
                    conn,
                    room: name,
                    id,
                    data,
                });
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests;

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]
mod shared_tests;
