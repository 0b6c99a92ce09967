//! The Socket.IO transport driven by real socket.io-client packages from npm
//! (`tests/signaling/socketio_client.mjs`): every protocol message with the
//! tutorial's positional arguments, every bad input, the limits, malformed
//! packets, and a room shared with a `/ws` client. Client majors 4 and 3
//! (Socket.IO protocol v5) and 2 (protocol v4, Engine.IO 3), over
//! long-polling, WebSocket and the polling → WebSocket upgrade.
//!
//! Needs Node.js and `npm ci --prefix tests/signaling`; fails with that
//! command in the message when the packages are missing.

mod common;
#[path = "signaling/support.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use ringturn::signaling::Limits;

fn drive(client: &str, transports: &str) {
    let dir = support::node_modules();
    let limits = support::small_limits();
    let srv = support::server(limits);
    let full = support::server(Limits {
        max_connections: 2,
        ..limits
    });
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("socketio_client.mjs"))
        .args(["--client", client, "--transports", transports])
        .arg("--url")
        .arg(format!("http://{}", srv.local_addr()))
        .arg("--full-url")
        .arg(format!("http://{}", full.local_addr()))
        .arg("--max-message-bytes")
        .arg(limits.max_message_bytes.to_string())
        .arg("--rooms-per-connection")
        .arg(limits.max_rooms_per_connection.to_string())
        .arg("--max-rooms")
        .arg(limits.max_rooms.to_string());
    let run = support::run_bounded(cmd, Duration::from_secs(90));
    let (result, checks) = support::socketio_passed(&run, &format!("{client} ({transports})"));
    let checks: Vec<&str> = checks.iter().map(String::as_str).collect();
    for must in [
        "join -> joined(room, id)",
        "second join -> joined to it, otherJoin(room, id) + otherjoin to the first",
        "message(room, data) -> message(room, data) to the other member only",
        "third join -> full(room, id), the members hear nothing",
        "leave -> leaved(room, id) to it, bye(room, id) to the other",
        "a dropped connection counts as leave: the other gets bye",
        "events of one socket are handled in order",
        "unknown event -> error unknown-type",
        "wrong arguments -> error invalid-message",
        "message/leave outside a room -> error not-in-room",
        "empty or long room name -> error invalid-room",
        "join twice -> error already-in-room",
        "oversized message -> error too-large, not forwarded",
        "too many rooms for one connection -> error too-many-rooms",
        "server room limit -> error rooms-exhausted; existing rooms stay joinable",
        "the connection stays usable after errors",
        "a Socket.IO client and a /ws client share a room",
        "connection limit -> error server-full and disconnect",
        "malformed Socket.IO packets close that connection only",
    ] {
        assert!(checks.contains(&must), "missing check {must:?}: {checks:?}");
    }
    assert!(checks.contains(&"malformed Socket.IO packets close that connection only"));
    eprintln!(
        "socket.io-client {} over {transports}: {} checks passed in {:.1?}",
        result["version"],
        checks.len(),
        run.elapsed
    );
    srv.stop();
    full.stop();
}

#[test]
fn socketio_client_4_protocol_v5_polling_upgraded_to_websocket() {
    drive("v4", "default");
}

#[test]
fn socketio_client_4_protocol_v5_websocket_only() {
    drive("v4", "websocket");
}

#[test]
fn socketio_client_4_protocol_v5_long_polling_only() {
    drive("v4", "polling");
}

#[test]
fn socketio_client_3_protocol_v5() {
    drive("v3", "default");
}

#[test]
fn socketio_client_2_protocol_v4_engine_io_3() {
    drive("v2", "default");
}

#[test]
fn socketio_client_2_protocol_v4_websocket_only() {
    drive("v2", "websocket");
}
