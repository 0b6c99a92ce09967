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

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use smallvec::SmallVec;
use thiserror::Error;

/// A connection as the transports number it (never reused while running).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// A room's name, as the client wrote it.
pub type RoomName = Arc<str>;

/// A connection's public id: what `joined`, `otherJoin`, `bye`… carry.
pub type PeerId = Arc<str>;

/// A `message`'s `data`: opaque JSON text, checked to be JSON once when it
/// arrives and never parsed again (forwarded as is).
#[derive(Clone)]
pub struct Payload(Arc<RawValue>);

impl Payload {
    /// Checks that `json` is one JSON value.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        RawValue::from_string(json.to_owned()).map(Self::from)
    }

    pub fn get(&self) -> &str {
        self.0.get()
    }

    pub fn raw(&self) -> &RawValue {
        &self.0
    }

    /// Bytes of JSON text.
    pub fn len(&self) -> usize {
        self.0.get().len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.get().is_empty()
    }
}

impl From<Box<RawValue>> for Payload {
    fn from(raw: Box<RawValue>) -> Self {
        Self(Arc::from(raw))
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.len())
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// What a client asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    Join { room: String },
    Leave { room: String },
    Message { room: String, data: Payload },
}

/// Everything a client can get wrong, and the server limits it can hit.
/// Each is answered with an `error` event carrying [`ProtocolError::code`]
/// and the message; nothing else changes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// Not JSON text at all.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// A WebSocket binary frame: the protocol is JSON text.
    #[error("binary frames are not part of the protocol; send JSON text")]
    BinaryFrame,
    /// JSON, but not the shape of a protocol message (no string `type`, a
    /// `room` that is not a string, no `data`…).
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    #[error("unknown message type {0:?} (expected join, leave or message)")]
    UnknownType(String),
    #[error("a room name is 1 to {max} bytes")]
    InvalidRoom { max: usize },
    #[error("message of {size} bytes is over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("not in this room")]
    NotInRoom,
    #[error("already in this room")]
    AlreadyInRoom,
    #[error("a connection may be in at most {max} rooms at once")]
    TooManyRooms { max: usize },
    #[error("the server holds its limit of {max} rooms; join an existing room or try later")]
    RoomsExhausted { max: usize },
    #[error("the server holds its limit of {max} connections; try later")]
    ServerFull { max: usize },
}

impl ProtocolError {
    /// The stable, machine-readable name of the error (the `code` field).
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed-json",
            Self::BinaryFrame => "binary-frame",
            Self::InvalidMessage(_) => "invalid-message",
            Self::UnknownType(_) => "unknown-type",
            Self::InvalidRoom { .. } => "invalid-room",
            Self::TooLarge { .. } => "too-large",
            Self::NotInRoom => "not-in-room",
            Self::AlreadyInRoom => "already-in-room",
            Self::TooManyRooms { .. } => "too-many-rooms",
            Self::RoomsExhausted { .. } => "rooms-exhausted",
            Self::ServerFull { .. } => "server-full",
        }
    }
}

/// An `error` event: what went wrong and, when it concerns one, which room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorEvent {
    pub error: ProtocolError,
    pub room: Option<RoomName>,
}

/// What a client is told.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    Joined { room: RoomName, id: PeerId },
    OtherJoin { room: RoomName, id: PeerId },
    Full { room: RoomName, id: PeerId },
    Leaved { room: RoomName, id: PeerId },
    Bye { room: RoomName, id: PeerId },
    Message { room: RoomName, data: Payload },
    Error(ErrorEvent),
}

impl ServerEvent {
    /// The event name on the wire (WebSocket `type`, Socket.IO event).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Joined { .. } => "joined",
            Self::OtherJoin { .. } => "otherJoin",
            Self::Full { .. } => "full",
            Self::Leaved { .. } => "leaved",
            Self::Bye { .. } => "bye",
            Self::Message { .. } => "message",
            Self::Error(_) => "error",
        }
    }
}

/// One message for one connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub to: ConnId,
    pub event: ServerEvent,
}

/// Bounds that keep a flood of connections, rooms or bytes from exhausting
/// memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Members per room (`signaling-room-size`, default 2).
    pub room_size: usize,
    /// Connections at once, both transports together.
    pub max_connections: usize,
    /// Rooms at once (a room exists while it has members).
    pub max_rooms: usize,
    /// Rooms one connection may be in at once.
    pub max_rooms_per_connection: usize,
    /// Bytes of a room name.
    pub max_room_name_bytes: usize,
    /// Bytes of one client message (checked by the transports, which see
    /// the bytes; kept here so both use one number).
    pub max_message_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            room_size: 2,
            max_connections: 10_000,
            max_rooms: 10_000,
            max_rooms_per_connection: 4,
            max_room_name_bytes: 256,
            max_message_bytes: 64 * 1024,
        }
    }
}

#[derive(Debug)]
struct Connection {
    id: PeerId,
    rooms: SmallVec<[RoomName; 2]>,
}

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
}

impl Rooms {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            connections: HashMap::new(),
            rooms: HashMap::new(),
            outputs: VecDeque::new(),
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
            },
        );
        Ok(())
    }

    /// A well-formed event from `conn`. Events of unknown connections are
    /// ignored.
    pub fn handle_event(&mut self, conn: ConnId, event: ClientEvent) {
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
        let in_rooms = c.rooms.len();
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
        if members >= self.limits.room_size {
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
        let others: SmallVec<[ConnId; 2]> =
            existing.map(|(_, r)| r.members.clone()).unwrap_or_default();
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
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const A: ConnId = ConnId(1);
    const B: ConnId = ConnId(2);
    const C: ConnId = ConnId(3);

    fn rooms(limits: Limits) -> Rooms {
        let mut r = Rooms::new(limits);
        for (conn, id) in [(A, "a"), (B, "b"), (C, "c")] {
            r.handle_connect(conn, Arc::from(id)).unwrap();
        }
        r
    }

    fn drain(r: &mut Rooms) -> Vec<(ConnId, ServerEvent)> {
        std::iter::from_fn(|| r.poll_output())
            .map(|o| (o.to, o.event))
            .collect()
    }

    fn name(s: &str) -> RoomName {
        Arc::from(s)
    }

    fn join(r: &mut Rooms, conn: ConnId, room: &str) -> Vec<(ConnId, ServerEvent)> {
        r.handle_event(
            conn,
            ClientEvent::Join {
                room: room.to_owned(),
            },
        );
        drain(r)
    }

    fn say(r: &mut Rooms, conn: ConnId, room: &str, json: &str) -> Vec<(ConnId, ServerEvent)> {
        r.handle_event(
            conn,
            ClientEvent::Message {
                room: room.to_owned(),
                data: Payload::from_json(json).unwrap(),
            },
        );
        drain(r)
    }

    fn error_code(out: &[(ConnId, ServerEvent)]) -> Vec<(ConnId, &'static str)> {
        out.iter()
            .map(|(to, e)| match e {
                ServerEvent::Error(e) => (*to, e.error.code()),
                other => panic!("expected an error, got {other:?}"),
            })
            .collect()
    }

    #[test]
    fn first_join_gets_joined_with_its_own_id_and_nobody_else_hears() {
        let mut r = rooms(Limits::default());
        let out = join(&mut r, A, "r1");
        assert_eq!(
            out,
            vec![(
                A,
                ServerEvent::Joined {
                    room: name("r1"),
                    id: name("a")
                }
            )]
        );
        assert_eq!(r.members("r1"), vec![A]);
        assert_eq!(r.room_count(), 1);
    }

    #[test]
    fn second_join_gets_joined_then_the_first_gets_other_join_with_the_joiner_id() {
        let mut r = rooms(Limits::default());
        let _ = join(&mut r, A, "r1");
        let out = join(&mut r, B, "r1");
        assert_eq!(
            out,
            vec![
                (
                    B,
                    ServerEvent::Joined {
                        room: name("r1"),
                        id: name("b")
                    }
                ),
                (
                    A,
                    ServerEvent::OtherJoin {
                        room: name("r1"),
                        id: name("b")
                    }
                ),
            ]
        );
    }

    #[test]
    fn third_join_gets_full_and_is_not_added() {
        let mut r = rooms(Limits::default());
        let _ = join(&mut r, A, "r1");
        let _ = join(&mut r, B, "r1");
        let out = join(&mut r, C, "r1");
        assert_eq!(
            out,
            vec![(
                C,
                ServerEvent::Full {
                    room: name("r1"),
                    id: name("c")
                }
            )]
        );
        assert_eq!(r.members("r1"), vec![A, B]);
        // Not a member: its message is refused, nobody hears it.
        let out = say(&mut r, C, "r1", "{}");
        assert_eq!(error_code(&out), vec![(C, "not-in-room")]);
    }

    #[test]
    fn messages_go_to_the_other_member_only_and_unchanged() {
        let mut r = rooms(Limits::default());
        let _ = join(&mut r, A, "r1");
        let _ = join(&mut r, B, "r1");
        let _ = join(&mut r, C, "r2");
        let sdp = r#"{"type":"offer","sdp":"v=0\r\n…"}"#;
        let out = say(&mut r, A, "r1", sdp);
        assert_eq!(out.len(), 1);
        let (to, ServerEvent::Message { room, data }) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!((*to, &**room, data.get()), (B, "r1", sdp));
        let out = say(&mut r, B, "r1", "[1,2]");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, A);
    }

    #[test]
    fn a_message_in_a_room_of_one_reaches_nobody() {
        let mut r = rooms(Limits::default());
        let _ = join(&mut r, A, "r1");
        assert!(say(&mut r, A, "r1", "1").is_empty());
    }

    #[test]
    fn leave_gets_leaved_and_the_other_gets_bye_then_the_room_can_refill() {
        let mut r = rooms(Limits::default());
        let _ = join(&mut r, A, "r1");
        let _ = join(&mut r, B, "r1");
        r.handle_event(
            A,
            ClientEvent::Leave {
                room: "r1".to_owned(),
            },
        );
        assert_eq!(
            drain(&mut r),
            vec![
                (
                    A,
                    ServerEvent::Leaved {
                        room: name("r1"),
                        id: name("a")
                    }
                ),
                (
                    B,
                    ServerEvent::Bye {
                        room: name("r1"),
                        id: name("a")
                    }
                ),
            ]
        );
        assert_eq!(r.members("r1"), vec![B]);
        let out = join(&mut r, C, "r1");
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(
            out[1],
            (
                B,
                ServerEvent::OtherJoin {
                    room: name("r1"),
                    id: name("c")
                }
            )
        );
    }

    #[test]
    fn the_last_one_leaving_removes_the_room() {
        let mut r = rooms(Limits::default());
        let _ = join(&mut r, A, "r1");
        r.handle_event(
            A,
            ClientEvent::Leave {
                room: "r1".to_owned(),
            },
        );
        assert_eq!(drain(&mut r).len(), 1, "leaved only");
        assert_eq!(r.room_count(), 0);
    }

    #[test]
    fn a_dropped_connection_counts_as_leave_the_other_gets_bye() {
        let mut r = rooms(Limits::default());
        let _ = join(&mut r, A, "r1");
        let _ = join(&mut r, B, "r1");
        let _ = join(&mut r, A, "r2");
        r.handle_disconnect(A);
        assert_eq!(
            drain(&mut r),
            vec![(
                B,
                ServerEvent::Bye {
                    room: name("r1"),
                    id: name("a")
                }
            )]
        );
        assert_eq!(r.room_count(), 1, "r2 had only A");
        assert_eq!(r.connection_count(), 2);
        // Gone means gone: later events of that connection do nothing.
        let _ = join(&mut r, A, "r3");
        assert_eq!(r.room_count(), 1);
        r.handle_disconnect(A);
        assert!(drain(&mut r).is_empty());
    }

    #[test]
    fn leave_and_message_outside_a_room_are_errors_naming_the_room() {
        let mut r = rooms(Limits::default());
        r.handle_event(
            A,
            ClientEvent::Leave {
                room: "nope".to_owned(),
            },
        );
        let out = drain(&mut r);
        assert_eq!(error_code(&out), vec![(A, "not-in-room")]);
        let ServerEvent::Error(e) = &out[0].1 else {
            unreachable!()
        };
        assert_eq!(e.room.as_deref(), Some("nope"));
        let out = say(&mut r, A, "nope", "{}");
        assert_eq!(error_code(&out), vec![(A, "not-in-room")]);
    }

    #[test]
    fn joining_twice_is_an_error_and_changes_nothing() {
        let mut r = rooms(Limits::default());
        let _ = join(&mut r, A, "r1");
        let out = join(&mut r, A, "r1");
        assert_eq!(error_code(&out), vec![(A, "already-in-room")]);
        assert_eq!(r.members("r1"), vec![A]);
    }

    #[test]
    fn room_names_must_be_1_to_max_bytes() {
        let mut r = rooms(Limits {
            max_room_name_bytes: 8,
            ..Limits::default()
        });
        assert_eq!(error_code(&join(&mut r, A, "")), vec![(A, "invalid-room")]);
        assert_eq!(
            error_code(&join(&mut r, A, "123456789")),
            vec![(A, "invalid-room")]
        );
        assert_eq!(join(&mut r, A, "12345678").len(), 1);
        assert_eq!(r.room_count(), 1);
    }

    #[test]
    fn rooms_per_connection_are_limited() {
        let mut r = rooms(Limits {
            max_rooms_per_connection: 2,
            ..Limits::default()
        });
        let _ = join(&mut r, A, "r1");
        let _ = join(&mut r, A, "r2");
        let out = join(&mut r, A, "r3");
        assert_eq!(error_code(&out), vec![(A, "too-many-rooms")]);
        assert_eq!(r.room_count(), 2);
        // Leaving one frees the slot.
        r.handle_event(
            A,
            ClientEvent::Leave {
                room: "r1".to_owned(),
            },
        );
        let _ = drain(&mut r);
        assert_eq!(join(&mut r, A, "r3").len(), 1);
    }

    #[test]
    fn total_rooms_are_limited_but_existing_rooms_stay_joinable() {
        let mut r = rooms(Limits {
            max_rooms: 1,
            ..Limits::default()
        });
        let _ = join(&mut r, A, "r1");
        let out = join(&mut r, B, "r2");
        assert_eq!(error_code(&out), vec![(B, "rooms-exhausted")]);
        assert_eq!(join(&mut r, B, "r1").len(), 2, "joined + otherJoin");
    }

    #[test]
    fn connections_are_limited() {
        let mut r = Rooms::new(Limits {
            max_connections: 2,
            ..Limits::default()
        });
        r.handle_connect(A, name("a")).unwrap();
        r.handle_connect(B, name("b")).unwrap();
        assert_eq!(
            r.handle_connect(C, name("c")),
            Err(ProtocolError::ServerFull { max: 2 })
        );
        r.handle_disconnect(A);
        r.handle_connect(C, name("c")).unwrap();
        assert!(drain(&mut r).is_empty());
    }

    #[test]
    fn room_size_is_configurable() {
        let mut r = rooms(Limits {
            room_size: 3,
            ..Limits::default()
        });
        let _ = join(&mut r, A, "r");
        let _ = join(&mut r, B, "r");
        let out = join(&mut r, C, "r");
        let other_joins: Vec<ConnId> = out
            .iter()
            .filter(|(_, e)| matches!(e, ServerEvent::OtherJoin { .. }))
            .map(|(to, _)| *to)
            .collect();
        assert_eq!(other_joins, vec![A, B]);
        let out = say(&mut r, B, "r", "0");
        let to: Vec<ConnId> = out.iter().map(|(to, _)| *to).collect();
        assert_eq!(to, vec![A, C]);
    }

    #[test]
    fn oversized_data_is_refused() {
        let mut r = rooms(Limits {
            max_message_bytes: 10,
            ..Limits::default()
        });
        let _ = join(&mut r, A, "r");
        let _ = join(&mut r, B, "r");
        assert_eq!(
            error_code(&say(&mut r, A, "r", "\"0123456789\"")),
            vec![(A, "too-large")]
        );
        assert_eq!(say(&mut r, A, "r", "\"01234567\"").len(), 1);
    }

    #[test]
    fn invalid_input_is_echoed_to_its_sender_only() {
        let mut r = rooms(Limits::default());
        let _ = join(&mut r, A, "r");
        let _ = join(&mut r, B, "r");
        r.handle_invalid(A, ProtocolError::UnknownType("dance".into()), None);
        r.handle_invalid(ConnId(99), ProtocolError::BinaryFrame, None);
        let out = drain(&mut r);
        assert_eq!(error_code(&out), vec![(A, "unknown-type")]);
    }

    #[test]
    fn error_codes_are_distinct() {
        let all = [
            ProtocolError::MalformedJson(String::new()),
            ProtocolError::BinaryFrame,
            ProtocolError::InvalidMessage(String::new()),
            ProtocolError::UnknownType(String::new()),
            ProtocolError::InvalidRoom { max: 1 },
            ProtocolError::TooLarge { size: 2, limit: 1 },
            ProtocolError::NotInRoom,
            ProtocolError::AlreadyInRoom,
            ProtocolError::TooManyRooms { max: 1 },
            ProtocolError::RoomsExhausted { max: 1 },
            ProtocolError::ServerFull { max: 1 },
        ];
        let mut codes: Vec<&str> = all.iter().map(ProtocolError::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }
}
