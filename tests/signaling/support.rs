//! Helpers shared by the signaling tests (`#[path]`-included): an in-process
//! signaling server, a tutorial-protocol WebSocket client, a tiny HTTP GET,
//! and child processes (Node, `unshare --net`) that are killed with their
//! whole process group on every path.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use ringturn::auth::RestApi;
use ringturn::signaling::{self, IceSettings, Limits, SignalingConfig, SignalingServer};
use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

pub const SECRET: &str = "signaling-test-secret";

pub fn ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// ICE settings for a TURN server said to be at `turn` with a REST secret.
pub fn ice(turn: SocketAddr) -> IceSettings {
    IceSettings {
        listening: vec![turn],
        external_ips: vec![],
        rest_api: Some(RestApi::new(vec![SECRET.as_bytes().to_vec()], ':')),
        no_auth: false,
        stun: true,
        turn: true,
        ttl: Duration::from_secs(3600),
        tcp_listening: vec![],
        tls_listening: vec![],
        turn_urls: vec![],
    }
}

/// A signaling server on 127.0.0.1, any free port.
pub fn server(limits: Limits) -> SignalingServer {
    signaling::spawn(SignalingConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        limits,
        ice: ice("127.0.0.1:3478".parse().unwrap()),
        redis: None,
    })
    .expect("start the signaling server")
}

/// Waits (up to 10 s) until the server holds `connections` connections:
/// it registers one just after the handshake the client already saw.
pub async fn wait_connections(srv: &SignalingServer, connections: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while srv.counts().0 != connections {
        assert!(Instant::now() < deadline, "counts: {:?}", srv.counts());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Small limits so every limit is reachable in a test.
pub fn small_limits() -> Limits {
    Limits {
        room_size: 2,
        max_connections: 50,
        max_rooms: 6,
        max_rooms_per_connection: 3,
        max_room_name_bytes: 64,
        max_message_bytes: 4096,
    }
}

/// A blocking HTTP/1.1 GET; returns (status, lower-cased headers, body).
pub fn http_get(addr: SocketAddr, path: &str, host: &str) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(addr).expect("connect for GET");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A client of `/ws` speaking the tutorial protocol.
pub struct WsClient {
    pub ws: Ws,
}

/// What the server said, or how it ended the connection.
#[derive(Debug)]
pub enum Heard {
    Json(Value),
    Closed(Option<CloseFrame>),
}

pub const RECV_TIMEOUT: Duration = Duration::from_secs(10);

impl WsClient {
    pub async fn connect(addr: SocketAddr) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .expect("WebSocket handshake");
        Self { ws }
    }

    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::text(v.to_string()))
            .await
            .expect("send");
    }

    pub async fn send_text(&mut self, s: &str) {
        self.ws.send(Message::text(s)).await.expect("send");
    }

    pub async fn join(&mut self, room: &str) {
        self.send(serde_json::json!({"type": "join", "room": room}))
            .await;
    }

    pub async fn leave(&mut self, room: &str) {
        self.send(serde_json::json!({"type": "leave", "room": room}))
            .await;
    }

    pub async fn message(&mut self, room: &str, data: Value) {
        self.send(serde_json::json!({"type": "message", "room": room, "data": data}))
            .await;
    }

    /// The next JSON message or the close (pings are skipped).
    pub async fn hear(&mut self) -> Heard {
        loop {
            let next = tokio::time::timeout(RECV_TIMEOUT, self.ws.next())
                .await
                .expect("the server said nothing within 10 s");
            match next {
                Some(Ok(Message::Text(t))) => {
                    return Heard::Json(serde_json::from_str(t.as_str()).expect("JSON from server"))
                }
                Some(Ok(Message::Close(frame))) => return Heard::Closed(frame),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(other)) => panic!("unexpected frame {other:?}"),
                Some(Err(_)) | None => return Heard::Closed(None),
            }
        }
    }

    /// The next JSON message (a close fails the test).
    pub async fn recv(&mut self) -> Value {
        match self.hear().await {
            Heard::Json(v) => v,
            Heard::Closed(f) => panic!("connection closed ({f:?}) while a message was expected"),
        }
    }

    /// The next message, which must be of `kind`.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let v = self.recv().await;
        assert_eq!(v["type"], kind, "expected {kind}, got {v}");
        v
    }

    /// The next message, which must be an error with `code`.
    pub async fn expect_error(&mut self, code: &str) -> Value {
        let v = self.expect("error").await;
        assert_eq!(v["code"], code, "{v}");
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "errors carry a message: {v}"
        );
        v
    }

    /// Nothing arrives within `d`.
    pub async fn silent_for(&mut self, d: Duration) {
        if let Ok(Some(Ok(m))) = tokio::time::timeout(d, self.ws.next()).await {
            assert!(
                matches!(m, Message::Ping(_) | Message::Pong(_)),
                "expected silence, got {m:?}"
            );
        }
    }
}

/// `tests/signaling/node_modules`, which must exist: CI installs it with
/// `npm ci --prefix tests/signaling`.
pub fn node_modules() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/signaling");
    let modules = dir.join("node_modules");
    for package in ["socket.io-client", "playwright-core", "ws"] {
        assert!(
            modules.join(package).join("package.json").exists(),
            "the signaling tests need Node packages that are not installed ({} is missing).\n\
             Install them with:  npm ci --prefix tests/signaling",
            modules.join(package).display()
        );
    }
    let node = Command::new("node")
        .arg("--version")
        .output()
        .expect("the signaling tests need Node.js (`node` on PATH)");
    assert!(node.status.success(), "node --version failed");
    dir
}

// Every test crate that includes this file also has `mod common;`.
#[allow(unused_imports)]
pub use crate::common::process::{run_bounded, Run};

/// The JSON of a run's `RESULT {...}` line.
pub fn result(run: &Run) -> Value {
    let line = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line\n{}", run.transcript()));
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("RESULT is not JSON: {e}\n{}", run.transcript()))
}

/// A socket.io-client driver run (`socketio_client.mjs`) that must have
/// passed: its result and the names of the checks it passed.
pub fn socketio_passed(run: &Run, what: &str) -> (Value, Vec<String>) {
    let result = result(run);
    assert!(
        run.status.is_some_and(|s| s.success()) && result["ok"] == Value::Bool(true),
        "socket.io-client {what} failed: {}\n{}",
        result["error"].as_str().unwrap_or("?"),
        run.transcript()
    );
    let checks = result["checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    (result, checks)
}

/// Whether `unshare --net` works here (root); outside CI a test may skip
/// without it.
pub fn netns_available() -> bool {
    Command::new("unshare")
        .args(["--net", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
