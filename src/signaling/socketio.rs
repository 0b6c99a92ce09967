//! The Socket.IO transport at `/socket.io/` (socketioxide), for clients
//! written against the tutorial's Node.js server: `socket.emit('join',
//! room)`, `socket.emit('message', room, data)`, `socket.on('joined', (room,
//! id) => …)` work unchanged. `otherJoin` is also emitted as `otherjoin`, the
//! tutorial server's spelling. Errors arrive as `error` with one object
//! `{code, message, room?}`.
//!
//! Protocol v5 (socket.io-client 3.x and 4.x) and, through socketioxide's
//! `v4` feature, protocol v4 over Engine.IO 3 (socket.io-client 2.x), both
//! over long-polling and WebSocket.
//!
//! socketioxide runs each handler as a task; every handler here finishes in
//! its first poll, and the signaling runtime is single-threaded with a FIFO
//! run queue, so one socket's events reach the rooms in the order it sent
//! them (the Socket.IO test checks a `message` sent right after `join`).
//! A packet socketioxide cannot parse closes that socket's connection (the
//! Socket.IO protocol has no error packet for it); a handler's arguments of
//! the wrong shape get an `invalid-message` error event.

use std::sync::Arc;

use serde_json::Value;
use socketioxide::extract::{Event, SocketRef, TryData};
use socketioxide::SocketIo;

use super::events::{ClientEvent, ConnId, Payload, ProtocolError};
use super::hub::{Hub, Sink};

/// Attaches the rooms to the default namespace.
pub fn attach(io: &SocketIo, hub: Arc<Hub>) {
    io.ns("/", move |socket: SocketRef| {
        let hub = hub.clone();
        async move { on_connect(socket, hub) }
    });
}

fn argument_error(what: &str) -> ProtocolError {
    ProtocolError::InvalidMessage(what.to_owned())
}

fn on_connect(socket: SocketRef, hub: Arc<Hub>) {
    let conn = hub.next_conn();
    if let Err(e) = hub.connect(
        conn,
        Arc::from(socket.id.to_string()),
        Sink::Io(socket.clone()),
    ) {
        let body = super::protocol::ErrorBody {
            code: e.code(),
            message: e.to_string(),
            room: None,
        };
        let _ = socket.emit("error", &body);
        let _ = socket.disconnect();
        return;
    }

    let h = hub.clone();
    socket.on("join", move |TryData::<String>(room)| async move {
        handle(
            &h,
            conn,
            room.map(|room| ClientEvent::Join { room }),
            "join(room)",
        );
    });
    let h = hub.clone();
    socket.on("leave", move |TryData::<String>(room)| async move {
        handle(
            &h,
            conn,
            room.map(|room| ClientEvent::Leave { room }),
            "leave(room)",
        );
    });
    let h = hub.clone();
    socket.on(
        "message",
        move |TryData::<(String, Value)>(args)| async move {
            let max = h.limits().max_message_bytes;
            let event = match args {
                Ok((room, data)) if !data.is_null() => match serde_json::value::to_raw_value(&data)
                {
                    Ok(raw) if raw.get().len() > max => {
                        let error = ProtocolError::TooLarge {
                            size: raw.get().len(),
                            limit: max,
                        };
                        return h.invalid(conn, error, Some(&room));
                    }
                    Ok(raw) => Ok(ClientEvent::Message {
                        room,
                        data: Payload::from(raw),
                    }),
                    Err(e) => return h.invalid(conn, argument_error(&e.to_string()), Some(&room)),
                },
                Ok((room, _)) => {
                    let error =
                        argument_error("message(room, data) needs data (any JSON but null)");
                    return h.invalid(conn, error, Some(&room));
                }
                Err(e) => Err(e),
            };
            handle(&h, conn, event, "message(room, data)");
        },
    );
    let h = hub.clone();
    socket.on_fallback(move |Event(name): Event| async move {
        let shown: String = name.chars().take(64).collect();
        h.invalid(conn, ProtocolError::UnknownType(shown), None);
    });
    socket.on_disconnect(move || async move { hub.disconnect(conn) });
}

fn handle<E>(hub: &Hub, conn: ConnId, event: Result<ClientEvent, E>, usage: &str) {
    match event {
        Ok(event) => hub.event(conn, event),
        Err(_) => hub.invalid(
            conn,
            argument_error(&format!("expected {usage} with a string room")),
            None,
        ),
    }
}
