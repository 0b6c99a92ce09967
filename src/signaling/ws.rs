//! The WebSocket transport at `/ws` (RFC 6455): one JSON object per text
//! frame, see [`super::protocol`].
//!
//! Frames up to `max_message_bytes` are parsed; larger ones up to twice that
//! (plus 1 KiB) are answered with a `too-large` error and the connection
//! stays; beyond that the frame is not even read into memory: the
//! connection is closed with 1009 (Message Too Big). The server pings every
//! [`PING_INTERVAL`] and drops a connection silent for [`IDLE_TIMEOUT`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::events::{ConnId, ProtocolError};
use super::hub::{close_code, Hub, Sink, WsOut, WsSink};
use super::protocol;
use super::App;

pub const PING_INTERVAL: Duration = Duration::from_secs(20);
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest frame read at all: past the limit by this much, the
/// connection is closed rather than answered.
pub fn hard_limit(max_message_bytes: usize) -> usize {
    max_message_bytes.saturating_mul(2).saturating_add(1024)
}

/// Bytes queued for one client before it counts as not reading.
pub fn queue_limit(max_message_bytes: usize) -> usize {
    max_message_bytes.saturating_mul(16).max(1 << 20)
}

pub async fn upgrade(ws: WebSocketUpgrade, State(app): State<Arc<App>>) -> Response {
    let hard = hard_limit(app.hub.limits().max_message_bytes);
    ws.max_message_size(hard)
        .max_frame_size(hard)
        .on_upgrade(move |socket| serve(socket, app))
}

async fn serve(socket: WebSocket, app: Arc<App>) {
    let hub = &app.hub;
    let (sink, stream) = socket.split();
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let conn = hub.next_conn();
    let id = super::random_id();
    let limit = queue_limit(hub.limits().max_message_bytes);
    let mut writer = tokio::spawn(write_loop(sink, rx, queued.clone()));
    if let Err(e) = hub.connect(
        conn,
        id.into(),
        Sink::Ws(WsSink::new(tx.clone(), queued, limit)),
    ) {
        // Not registered: tell the client directly, then close.
        let refused = protocol::encode(&super::events::ServerEvent::Error(
            super::events::ErrorEvent {
                error: e,
                room: None,
            },
        ));
        let _ = tx.send(WsOut::Text(refused));
        let _ = tx.send(WsOut::Close(close_code::TRY_AGAIN_LATER, "server full"));
        drop(tx);
        let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
        return;
    }
    drop(tx);
    tokio::select! {
        end = read_loop(stream, hub, conn) => {
            if let Some((code, reason)) = end {
                hub.close_ws(conn, code, reason);
            }
            hub.disconnect(conn);
            // The writer sends what is queued (the close last) and ends
            // when the hub drops the queue's sender.
            if tokio::time::timeout(Duration::from_secs(1), &mut writer).await.is_err() {
                writer.abort();
            }
        }
        _ = &mut writer => hub.disconnect(conn),
    }
}

/// Reads until the client closes, errs or goes silent; returns the close
/// frame to send when the server is the one ending it.
async fn read_loop(
    mut stream: SplitStream<WebSocket>,
    hub: &Hub,
    conn: ConnId,
) -> Option<(u16, &'static str)> {
    let max = hub.limits().max_message_bytes;
    loop {
        let next = match tokio::time::timeout(IDLE_TIMEOUT, stream.next()).await {
            Ok(next) => next,
            Err(_) => return Some((close_code::POLICY_VIOLATION, "idle timeout")),
        };
        match next {
            None | Some(Ok(Message::Close(_))) => return None,
            Some(Ok(Message::Text(text))) => match protocol::parse_text(text.as_str(), max) {
                Ok(event) => hub.event(conn, event),
                Err(r) => hub.invalid(conn, r.error, r.room.as_deref()),
            },
            Some(Ok(Message::Binary(_))) => hub.invalid(conn, ProtocolError::BinaryFrame, None),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Err(e)) => {
                tracing::debug!(conn = conn.0, error = %e, "signaling: WebSocket read error");
                // tungstenite refuses frames over `max_message_size` with a
                // capacity error; anything else is a broken connection.
                let text = e.to_string();
                return (text.contains("Space limit exceeded")
                    || text.contains("too long")
                    || text.contains("too big"))
                .then_some((close_code::MESSAGE_TOO_BIG, "message too big"));
            }
        }
    }
}

async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::UnboundedReceiver<WsOut>,
    queued: Arc<AtomicUsize>,
) {
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.tick().await;
    loop {
        let out = tokio::select! {
            out = rx.recv() => out,
            _ = ping.tick() => {
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
                continue;
            }
        };
        match out {
            Some(WsOut::Text(text)) => {
                queued.fetch_sub(text.len(), Ordering::Relaxed);
                if sink
                    .send(Message::Text(Utf8Bytes::from(text)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Some(WsOut::Close(code, reason)) => {
                let frame = CloseFrame {
                    code,
                    reason: Utf8Bytes::from_static(reason),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
                return;
            }
            None => {
                let _ = sink.close().await;
                return;
            }
        }
    }
}
