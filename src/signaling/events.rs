//! What goes in and out of the rooms state machine: connection and peer
//! ids, a message's opaque JSON payload, client events, server events,
//! protocol errors with their codes, and the limits.

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
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
    /// `signaling-redis`: the store the nodes share is out of reach.
    #[error("the rooms shared by the signaling nodes are out of reach; try again")]
    Unavailable,
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
            Self::Unavailable => "unavailable",
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

/// What a node must ask of, or tell, the store the signaling nodes share
/// (`signaling-redis`): the rooms state machine's output in shared mode.
#[derive(Debug, Clone, PartialEq)]
pub enum SharedOp {
    /// May `id` (connection `conn`) join `room`? The answer comes back as
    /// `Rooms::handle_admission`; the room-of-`room_size` rule is decided
    /// there, atomically, for every node.
    Admit {
        conn: ConnId,
        room: RoomName,
        id: PeerId,
    },
    /// `id` joined `room` here as the store's `seq`-th admission: the other
    /// nodes' members admitted before it get `otherJoin`.
    Joined {
        room: RoomName,
        id: PeerId,
        seq: u64,
    },
    /// `id` (connection `conn`) said `data` in `room`: the other nodes'
    /// members get it.
    Message {
        conn: ConnId,
        room: RoomName,
        id: PeerId,
        data: Payload,
    },
    /// `id` left `room` (or its connection closed): out of the shared
    /// membership, and `bye` to the other nodes' members.
    Left { room: RoomName, id: PeerId },
}

/// What another node's member did, as the shared store reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum RemoteEvent {
    /// `seq`: the store's admission order, which tells the members that were
    /// there first (they hear `otherJoin`) from those admitted after it
    /// whose nodes hear of it late (they must not).
    Joined {
        room: RoomName,
        id: PeerId,
        seq: u64,
    },
    Message {
        room: RoomName,
        data: Payload,
    },
    Left {
        room: RoomName,
        id: PeerId,
    },
}

/// The shared store's answer to `SharedOp::Admit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Admitted as the store's `n`-th admission (increasing across nodes).
    Admitted(u64),
    /// The room holds `room_size` members, counted over every node.
    Full,
    /// The store could not be asked.
    Unavailable,
}
