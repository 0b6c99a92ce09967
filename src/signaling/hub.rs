//! The driver of [`Rooms`]: one lock around the state machine and the
//! connections' outgoing queues, so every recipient sees events in the order
//! the rooms produced them, whichever transport either side uses.
//!
//! Sending never blocks: a WebSocket connection's queue is bounded in bytes
//! (past the bound the connection is closed with 1008, a slow reader cannot
//! make the server buffer without end); a Socket.IO socket's is bounded in
//! packets by socketioxide (`max_buffer_size`), and a socket whose buffer is
//! full is disconnected.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use socketioxide::extract::SocketRef;
use tokio::sync::mpsc;

use super::events::{
    Admission, ClientEvent, ConnId, Limits, PeerId, ProtocolError, RemoteEvent, RoomName,
    ServerEvent, SharedOp,
};
use super::protocol::{self, ErrorBody};
use super::rooms::Rooms;

/// RFC 6455 §7.4.1 status codes the server closes with.
pub mod close_code {
    /// The server is going down.
    pub const GOING_AWAY: u16 = 1001;
    /// The client does not read what it is sent.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A frame over the hard size limit.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The connection limit is reached.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// What the WebSocket writer task sends.
#[derive(Debug)]
pub enum WsOut {
    Text(String),
    Close(u16, &'static str),
}

/// A WebSocket connection's outgoing queue.
#[derive(Debug)]
pub struct WsSink {
    tx: mpsc::UnboundedSender<WsOut>,
    /// Bytes queued and not yet written (the writer subtracts).
    queued: Arc<AtomicUsize>,
    limit: usize,
    closing: bool,
}

impl WsSink {
    pub fn new(tx: mpsc::UnboundedSender<WsOut>, queued: Arc<AtomicUsize>, limit: usize) -> Self {
        Self {
            tx,
            queued,
            limit,
            closing: false,
        }
    }

    fn send(&mut self, text: String) {
        if self.closing {
            return;
        }
        let len = text.len();
        if self.queued.load(Ordering::Relaxed) + len > self.limit {
            tracing::debug!("signaling: a WebSocket client reads too slowly; closing it");
            self.close(close_code::POLICY_VIOLATION, "too many unread messages");
            return;
        }
        self.queued.fetch_add(len, Ordering::Relaxed);
        let _ = self.tx.send(WsOut::Text(text));
    }

    fn close(&mut self, code: u16, reason: &'static str) {
        if !self.closing {
            self.closing = true;
            let _ = self.tx.send(WsOut::Close(code, reason));
        }
    }
}

/// Where a connection's messages go.
pub enum Sink {
    Ws(WsSink),
    Io(SocketRef),
}

/// Emits one event on a Socket.IO socket, the tutorial's way: positional
/// arguments, `error` with one object.
fn emit_io(socket: &SocketRef, event: &ServerEvent) -> Result<(), socketioxide::SendError> {
    let name = event.name();
    match event {
        ServerEvent::Joined { room, id }
        | ServerEvent::Full { room, id }
        | ServerEvent::Leaved { room, id }
        | ServerEvent::Bye { room, id } => socket.emit(name, &(&**room, &**id)),
        ServerEvent::OtherJoin { room, id } => {
            socket.emit(name, &(&**room, &**id))?;
            // The tutorial's own server spells it `otherjoin`; clients
            // written for it listen for that name.
            socket.emit("otherjoin", &(&**room, &**id))
        }
        ServerEvent::Message { room, data } => {
            // socketioxide re-serializes through its own serializer, which
            // does not pass raw JSON through: parse it once here.
            let value: serde_json::Value =
                serde_json::from_str(data.get()).unwrap_or(serde_json::Value::Null);
            socket.emit(name, &(&**room, value))
        }
        ServerEvent::Error(e) => socket.emit(name, &ErrorBody::from(e)),
    }
}

#[derive(Default)]
struct Kicks(Vec<SocketRef>);

struct State {
    rooms: Rooms,
    sinks: HashMap<ConnId, Sink>,
}

impl State {
    /// Sends everything the rooms produced; returns Socket.IO sockets that
    /// could not take more (to disconnect once the lock is released).
    fn pump(&mut self) -> Kicks {
        let mut kicks = Kicks::default();
        while let Some(out) = self.rooms.poll_output() {
            match self.sinks.get_mut(&out.to) {
                Some(Sink::Ws(ws)) => ws.send(protocol::encode(&out.event)),
                Some(Sink::Io(socket)) => {
                    if let Err(e) = emit_io(socket, &out.event) {
                        tracing::debug!(socket = %socket.id, error = %e, "signaling: cannot emit; disconnecting");
                        kicks.0.push(socket.clone());
                    }
                }
                None => {}
            }
        }
        kicks
    }
}

/// The rooms and every connection's queue, shared by the transports.
pub struct Hub {
    state: Mutex<State>,
    next_conn: AtomicU64,
    limits: Limits,
    /// `signaling-redis`: where the shared store's operations go, in the
    /// order the rooms produced them (`None`: one node alone).
    shared: Option<mpsc::UnboundedSender<SharedOp>>,
}

impl Hub {
    pub fn new(limits: Limits) -> Self {
        Self {
            state: Mutex::new(State {
                rooms: Rooms::new(limits),
                sinks: HashMap::new(),
            }),
            next_conn: AtomicU64::new(1),
            limits,
            shared: None,
        }
    }

    /// A hub whose rooms are shared with other nodes: what the shared store
    /// must do comes out of the returned receiver (`cluster::run` takes it).
    pub fn new_shared(limits: Limits) -> (Self, mpsc::UnboundedReceiver<SharedOp>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let hub = Self {
            state: Mutex::new(State {
                rooms: Rooms::new_shared(limits),
                sinks: HashMap::new(),
            }),
            next_conn: AtomicU64::new(1),
            limits,
            shared: Some(tx),
        };
        (hub, rx)
    }

    /// The shared store answered a join.
    pub fn admission(&self, conn: ConnId, room: RoomName, id: PeerId, admission: Admission) {
        self.with(|s| s.rooms.handle_admission(conn, room, id, admission));
    }

    /// Another node's member did something in a room.
    pub fn remote(&self, event: RemoteEvent) {
        self.with(|s| s.rooms.handle_remote(event));
    }

    /// What `conn` said in `room` could not reach the other nodes.
    pub fn unavailable(&self, conn: ConnId, room: &str) {
        self.with(|s| {
            s.rooms
                .handle_invalid(conn, ProtocolError::Unavailable, Some(room))
        });
    }

    /// The rooms this node has members in.
    pub fn local_rooms(&self) -> Vec<RoomName> {
        self.lock().rooms.local_rooms()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing under this lock panics on input; should something else,
        // the state is still consistent enough to keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let (result, kicks) = {
            let mut state = self.lock();
            let result = f(&mut state);
            let kicks = state.pump();
            // Under the lock, so the store hears operations in the rooms' order.
            while let Some(op) = state.rooms.poll_shared() {
                if let Some(tx) = &self.shared {
                    let _ = tx.send(op);
                }
            }
            (result, kicks)
        };
        for socket in kicks.0 {
            let _ = socket.disconnect();
        }
        result
    }

    /// A fresh connection number.
    pub fn next_conn(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    /// Registers a connection, or refuses it at the connection limit.
    pub fn connect(&self, conn: ConnId, id: PeerId, sink: Sink) -> Result<(), ProtocolError> {
        self.with(|s| {
            s.rooms.handle_connect(conn, id)?;
            s.sinks.insert(conn, sink);
            Ok(())
        })
    }

    pub fn event(&self, conn: ConnId, event: ClientEvent) {
        self.with(|s| s.rooms.handle_event(conn, event));
    }

    pub fn invalid(&self, conn: ConnId, error: ProtocolError, room: Option<&str>) {
        self.with(|s| s.rooms.handle_invalid(conn, error, room));
    }

    /// Queues a close frame for a WebSocket connection (after what is queued).
    pub fn close_ws(&self, conn: ConnId, code: u16, reason: &'static str) {
        self.with(|s| {
            if let Some(Sink::Ws(ws)) = s.sinks.get_mut(&conn) {
                ws.close(code, reason);
            }
        });
    }

    /// The connection is gone: the others in its rooms get `bye`.
    pub fn disconnect(&self, conn: ConnId) {
        self.with(|s| {
            s.sinks.remove(&conn);
            s.rooms.handle_disconnect(conn);
        });
    }

    /// (connections, rooms) now.
    pub fn counts(&self) -> (usize, usize) {
        let s = self.lock();
        (s.rooms.connection_count(), s.rooms.room_count())
    }

    /// Server shutdown: every WebSocket gets a 1001 close after what is
    /// queued; the Socket.IO sockets are returned for the caller to close.
    pub fn shutdown(&self) -> Vec<SocketRef> {
        let mut s = self.lock();
        let mut sockets = Vec::new();
        for sink in s.sinks.values_mut() {
            match sink {
                Sink::Ws(ws) => ws.close(close_code::GOING_AWAY, "server shutting down"),
                Sink::Io(socket) => sockets.push(socket.clone()),
            }
        }
        sockets
    }
}
