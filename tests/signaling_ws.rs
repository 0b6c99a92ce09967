//! The signaling server over `/ws` with a Rust WebSocket client
//! (tokio-tungstenite): every message of the tutorial protocol, every
//! bad-input case (each answered with an `error` event, the connection
//! staying usable), the limits, RFC 6455 close codes, the page, and
//! `/api/ice-servers` credentials that ringturn's TURN server accepts.

#[path = "signaling/support.rs"]
mod support;

mod common;

use common::long_term::TurnRequests;

use std::time::Duration;

use common::udp_client::UdpTurnClient;
use ringturn::config::Config;
use ringturn::run::{start, RunSettings};
use ringturn::signaling::{self, Limits, SignalingConfig};
use serde_json::{json, Value};
use support::{header, http_get, server, small_limits, Heard, WsClient};

/// RFC 6455 §7.4.1 close codes.
const GOING_AWAY: u16 = 1001;
const MESSAGE_TOO_BIG: u16 = 1009;
const TRY_AGAIN_LATER: u16 = 1013;

fn close_code(h: Heard) -> Option<u16> {
    match h {
        Heard::Closed(Some(f)) => Some(u16::from(f.code)),
        Heard::Closed(None) => None,
        Heard::Json(v) => panic!("expected a close, got {v}"),
    }
}

#[tokio::test]
async fn tutorial_protocol_join_joined_other_join_message_leave_leaved_bye() {
    let srv = server(small_limits());
    let addr = srv.local_addr();
    let mut a = WsClient::connect(addr).await;
    let mut b = WsClient::connect(addr).await;

    a.join("r1").await;
    let joined_a = a.expect("joined").await;
    assert_eq!(joined_a["room"], "r1");
    let id_a = joined_a["id"].as_str().unwrap().to_owned();
    assert_eq!(id_a.len(), 20, "an id like a socket.io socket id: {id_a}");

    b.join("r1").await;
    let joined_b = b.expect("joined").await;
    let id_b = joined_b["id"].as_str().unwrap().to_owned();
    assert_ne!(id_a, id_b);
    // The one already there hears who joined.
    let other = a.expect("otherJoin").await;
    assert_eq!(
        other,
        json!({"type": "otherJoin", "room": "r1", "id": id_b})
    );

    // offer / answer / candidate, forwarded to the other member only, byte for byte.
    let offer = json!({"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"});
    a.message("r1", offer.clone()).await;
    let got = b.expect("message").await;
    assert_eq!(got, json!({"type": "message", "room": "r1", "data": offer}));
    let answer = json!({"type": "answer", "sdp": "v=0\r\n"});
    b.message("r1", answer.clone()).await;
    assert_eq!(a.expect("message").await["data"], answer);
    let cand = json!({"type": "candidate", "label": 0, "id": "0",
                      "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 49152 typ relay"});
    a.message("r1", cand.clone()).await;
    assert_eq!(b.expect("message").await["data"], cand);
    a.silent_for(Duration::from_millis(200)).await;

    // Opaque data keeps its exact text (spacing, key order, unicode escapes).
    let raw = r#"{"type":"message","room":"r1","data":{ "z" : 1, "a" : "\u00e9" }}"#;
    a.send_text(raw).await;
    let frame = match b.ws.next_text().await {
        Some(t) => t,
        None => panic!("no frame"),
    };
    assert_eq!(
        frame,
        r#"{"type":"message","room":"r1","data":{ "z" : 1, "a" : "\u00e9" }}"#
    );

    // leave: leaved to the leaver, bye to the other.
    a.leave("r1").await;
    assert_eq!(
        a.expect("leaved").await,
        json!({"type": "leaved", "room": "r1", "id": id_a})
    );
    assert_eq!(
        b.expect("bye").await,
        json!({"type": "bye", "room": "r1", "id": id_a})
    );
    assert_eq!(srv.counts(), (2, 1), "B is still in r1");
}

#[tokio::test]
async fn third_join_gets_full_and_the_members_hear_nothing() {
    let srv = server(small_limits());
    let addr = srv.local_addr();
    let (mut a, mut b, mut c) = (
        WsClient::connect(addr).await,
        WsClient::connect(addr).await,
        WsClient::connect(addr).await,
    );
    a.join("r").await;
    a.expect("joined").await;
    b.join("r").await;
    b.expect("joined").await;
    a.expect("otherJoin").await;
    c.join("r").await;
    let full = c.expect("full").await;
    assert_eq!(full["room"], "r");
    assert_eq!(full["id"].as_str().map(str::len), Some(20), "{full}");
    a.silent_for(Duration::from_millis(200)).await;
    b.silent_for(Duration::from_millis(10)).await;
    // C was not added: its message is refused and reaches nobody.
    c.message("r", json!({"type": "offer", "sdp": ""})).await;
    c.expect_error("not-in-room").await;
    b.silent_for(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_dropped_connection_counts_as_leave_and_the_other_gets_bye() {
    let srv = server(small_limits());
    let addr = srv.local_addr();
    let mut a = WsClient::connect(addr).await;
    let mut b = WsClient::connect(addr).await;
    a.join("r").await;
    let id_a = a.expect("joined").await["id"].clone();
    b.join("r").await;
    b.expect("joined").await;
    a.expect("otherJoin").await;
    drop(a); // TCP closed without a WebSocket close or a leave
    let bye = b.expect("bye").await;
    assert_eq!(bye, json!({"type": "bye", "room": "r", "id": id_a}));
    // And the room takes a new member.
    let mut c = WsClient::connect(addr).await;
    c.join("r").await;
    c.expect("joined").await;
    b.expect("otherJoin").await;
}

#[tokio::test]
async fn every_bad_input_gets_an_error_event_and_the_connection_stays_usable() {
    let limits = small_limits();
    let srv = server(limits);
    let addr = srv.local_addr();
    let mut a = WsClient::connect(addr).await;
    let mut b = WsClient::connect(addr).await;

    // Malformed JSON.
    a.send_text("{\"type\": \"join\", ").await;
    a.expect_error("malformed-json").await;
    a.send_text("not json at all").await;
    a.expect_error("malformed-json").await;
    // Binary frames are not the protocol.
    a.ws.send_binary(vec![1, 2, 3]).await;
    a.expect_error("binary-frame").await;
    // JSON, wrong shape.
    for bad in [
        json!([1, 2]),
        json!("join"),
        json!({"room": "r"}),
        json!({"type": 5, "room": "r"}),
        json!({"type": "join"}),
        json!({"type": "join", "room": 42}),
        json!({"type": "message", "room": "r"}),
        json!({"type": "message", "room": "r", "data": null}),
    ] {
        a.send(bad).await;
        a.expect_error("invalid-message").await;
    }
    // Unknown type, echoed.
    a.send(json!({"type": "dance", "room": "r"})).await;
    let e = a.expect_error("unknown-type").await;
    assert!(e["message"].as_str().unwrap().contains("dance"), "{e}");
    // A message to / leaving a room you are not in.
    a.message("elsewhere", json!({"type": "offer"})).await;
    let e = a.expect_error("not-in-room").await;
    assert_eq!(e["room"], "elsewhere");
    a.leave("elsewhere").await;
    a.expect_error("not-in-room").await;
    // Room names: empty, too long.
    a.join("").await;
    a.expect_error("invalid-room").await;
    a.join(&"x".repeat(limits.max_room_name_bytes + 1)).await;
    a.expect_error("invalid-room").await;
    // Joining twice.
    a.join("r").await;
    a.expect("joined").await;
    a.join("r").await;
    assert_eq!(a.expect_error("already-in-room").await["room"], "r");
    // Oversized (over the limit, under the hard limit): refused, not forwarded.
    b.join("r").await;
    b.expect("joined").await;
    a.expect("otherJoin").await;
    let big = "x".repeat(limits.max_message_bytes + 10);
    a.message("r", json!({"blob": big})).await;
    let e = a.expect_error("too-large").await;
    assert!(e["message"].as_str().unwrap().contains("4096"), "{e}");
    b.silent_for(Duration::from_millis(200)).await;
    // Too many rooms for one connection.
    for room in ["r2", "r3"] {
        a.join(room).await;
        a.expect("joined").await;
    }
    a.join("r4").await;
    assert_eq!(a.expect_error("too-many-rooms").await["room"], "r4");
    // Too many rooms on the server (limit 6: r, r2, r3 exist).
    let mut c = WsClient::connect(addr).await;
    for room in ["c1", "c2", "c3"] {
        c.join(room).await;
        c.expect("joined").await;
    }
    let mut d = WsClient::connect(addr).await;
    d.join("d1").await;
    d.expect_error("rooms-exhausted").await;
    d.join("r2").await; // an existing room is still joinable
    d.expect("joined").await;
    a.expect("otherJoin").await;

    // After all that, the connection works as before.
    let data = json!({"type": "offer", "sdp": "v=0"});
    a.message("r", data.clone()).await;
    assert_eq!(b.expect("message").await["data"], data);
    assert_eq!(srv.counts().1, 6);
}

#[tokio::test]
async fn a_frame_over_the_hard_limit_closes_with_1009_message_too_big_rfc6455_7_4_1() {
    let limits = small_limits();
    let srv = server(limits);
    let addr = srv.local_addr();
    let mut a = WsClient::connect(addr).await;
    let mut b = WsClient::connect(addr).await;
    a.join("r").await;
    a.expect("joined").await;
    b.join("r").await;
    b.expect("joined").await;
    a.expect("otherJoin").await;
    let huge = "y".repeat(limits.max_message_bytes * 4);
    a.message("r", json!(huge)).await;
    assert_eq!(close_code(a.hear().await), Some(MESSAGE_TOO_BIG));
    // The server treats it as gone.
    assert_eq!(b.expect("bye").await["room"], "r");
}

#[tokio::test]
async fn the_connection_limit_refuses_with_server_full_and_1013_try_again_later() {
    let srv = server(Limits {
        max_connections: 2,
        ..small_limits()
    });
    let addr = srv.local_addr();
    let _a = WsClient::connect(addr).await;
    let mut b = WsClient::connect(addr).await;
    support::wait_connections(&srv, 2).await;
    let mut c = WsClient::connect(addr).await;
    c.expect_error("server-full").await;
    assert_eq!(close_code(c.hear().await), Some(TRY_AGAIN_LATER));
    // The admitted ones work.
    b.join("r").await;
    b.expect("joined").await;
    assert_eq!(srv.counts().0, 2);
}

#[tokio::test]
async fn stopping_the_server_closes_websockets_with_1001_going_away() {
    let srv = server(small_limits());
    let mut a = WsClient::connect(srv.local_addr()).await;
    a.join("r").await;
    a.expect("joined").await;
    let stopper = std::thread::spawn(move || {
        let t = std::time::Instant::now();
        srv.stop();
        t.elapsed()
    });
    assert_eq!(close_code(a.hear().await), Some(GOING_AWAY));
    let took = tokio::task::spawn_blocking(move || stopper.join().unwrap())
        .await
        .unwrap();
    assert!(took < Duration::from_secs(1), "stop took {took:?}");
}

#[test]
fn the_page_and_its_assets_are_served_with_a_content_security_policy() {
    let srv = server(small_limits());
    let addr = srv.local_addr();
    let (status, headers, body) = http_get(addr, "/", "127.0.0.1");
    assert_eq!(status, 200);
    assert!(header(&headers, "content-type")
        .unwrap()
        .starts_with("text/html"));
    let csp = header(&headers, "content-security-policy").unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    for needle in [
        "id=\"room\"",
        "id=\"join\"",
        "id=\"hangup\"",
        "id=\"restart-ice\"",
        "id=\"ice-policy\"",
        "id=\"bundle-policy\"",
        "id=\"rtcp-mux-policy\"",
        "id=\"pool-size\"",
        "id=\"local-video\"",
        "id=\"remote-video\"",
        "name=\"viewport\"",
    ] {
        assert!(body.contains(needle), "the page lacks {needle}");
    }
    let (status, headers, js) = http_get(addr, "/call.js", "127.0.0.1");
    assert_eq!(status, 200);
    assert!(header(&headers, "content-type")
        .unwrap()
        .starts_with("text/javascript"));
    for needle in [
        "iceRestart: true",
        "addIceCandidate",
        "getStats",
        "/api/ice-servers",
        "iceTransportPolicy",
        "otherJoin",
        "'bye'",
        "'full'",
    ] {
        assert!(js.contains(needle), "call.js lacks {needle}");
    }
    let (status, _, css) = http_get(addr, "/call.css", "127.0.0.1");
    assert_eq!(status, 200);
    assert!(css.contains("@media"), "a layout for small screens");
    assert_eq!(http_get(addr, "/nope", "127.0.0.1").0, 404);
}

#[test]
fn ice_servers_without_a_secret_offer_stun_only_and_say_why() {
    let mut ice = support::ice("127.0.0.1:3478".parse().unwrap());
    ice.rest_api = None;
    let srv = signaling::spawn(SignalingConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        limits: small_limits(),
        ice,
        redis: None,
    })
    .unwrap();
    let (status, headers, body) = http_get(srv.local_addr(), "/api/ice-servers", "127.0.0.1");
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["iceServers"], json!([{"urls": ["stun:127.0.0.1:3478"]}]));
    assert!(v["turnUnavailable"]
        .as_str()
        .unwrap()
        .contains("static-auth-secret"));
    assert!(!body.contains("\"credential\""), "{body}");
    assert!(!body.contains("\"username\""), "{body}");
}

/// The credentials `/api/ice-servers` hands out work: a TURN Allocate with
/// them succeeds against ringturn's relay (draft-uberti-behave-turn-rest
/// username `<expiry>:<tag>`, password base64(HMAC-SHA1(secret, username))).
#[test]
fn ice_servers_credentials_allocate_on_ringturn_turn_rest_api() {
    let config = Config::parse(
        "test.conf",
        "listening-ip=127.0.0.1\nrelay-ip=127.0.0.1\nmin-port=45000\nmax-port=45399\n\
         realm=ringturn.test\nstatic-auth-secret=rotating-secret\nallow-loopback-peers\n\
         signaling-listening-ip=127.0.0.1\nsignaling-listening-port=1\n\
         signaling-credential-ttl=600\n",
        &[],
    )
    .unwrap();
    let turn = start(RunSettings {
        backend: Some(ringturn::io::BackendKind::Batch),
        ..RunSettings::new(
            vec!["127.0.0.1:0".parse().unwrap()],
            vec![config.server_config(0, 1)],
            config.credentials(),
        )
    })
    .unwrap();
    let mut sc = SignalingConfig::from_config(&config, &turn.listening).unwrap();
    sc.listen.set_port(0);
    let srv = signaling::spawn(sc).unwrap();

    let (status, _, body) = http_get(srv.local_addr(), "/api/ice-servers", "127.0.0.1");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let turn_addr = turn.listening[0];
    assert_eq!(
        v["iceServers"][0]["urls"],
        json!([format!("stun:{turn_addr}")])
    );
    let entry = &v["iceServers"][1];
    assert_eq!(
        entry["urls"],
        json!([format!("turn:{turn_addr}?transport=udp")])
    );
    assert_eq!(v["ttl"], 600);
    let username = entry["username"].as_str().unwrap();
    let credential = entry["credential"].as_str().unwrap();
    let (expiry, tag) = username.split_once(':').unwrap();
    let expiry: u64 = expiry.parse().unwrap();
    assert_eq!(v["expires"], expiry);
    assert_eq!(tag.len(), 8);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now + 590..=now + 610).contains(&expiry),
        "{expiry} vs {now}"
    );

    let mut client = UdpTurnClient::new("127.0.0.1:0", turn_addr, username, credential);
    let relayed = client
        .allocate()
        .unwrap_or_else(|code| panic!("Allocate with the minted credentials got {code}"));
    assert_eq!(relayed.ip().to_string(), "127.0.0.1");
    // A wrong password with the same username is refused (401).
    let mut wrong = UdpTurnClient::new("127.0.0.1:0", turn_addr, username, "not-it");
    assert_eq!(wrong.allocate(), Err(401));
    // Two calls get different usernames (per-page tags).
    let (_, _, again) = http_get(srv.local_addr(), "/api/ice-servers", "127.0.0.1");
    let again: Value = serde_json::from_str(&again).unwrap();
    assert_ne!(again["iceServers"][1]["username"], entry["username"]);
    srv.stop();
    turn.stop().unwrap();
}

trait NextText {
    async fn next_text(&mut self) -> Option<String>;
    async fn send_binary(&mut self, b: Vec<u8>);
}

impl NextText
    for tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>
{
    async fn next_text(&mut self) -> Option<String> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            match tokio::time::timeout(support::RECV_TIMEOUT, self.next())
                .await
                .ok()??
                .ok()?
            {
                Message::Text(t) => return Some(t.as_str().to_owned()),
                Message::Ping(_) | Message::Pong(_) => {}
                _ => return None,
            }
        }
    }

    async fn send_binary(&mut self, b: Vec<u8>) {
        use futures_util::SinkExt;
        self.send(tokio_tungstenite::tungstenite::Message::binary(b))
            .await
            .unwrap();
    }
}

/// Past `2 × max_connections + 64` open TCP connections a new one is closed
/// at once (no hang, no memory); closing one makes room again.
#[test]
fn tcp_connections_beyond_the_limit_are_closed_at_once() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let srv = server(Limits {
        max_connections: 1,
        ..small_limits()
    });
    let addr = srv.local_addr();
    let mut held: Vec<TcpStream> = (0..66).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut over = TcpStream::connect(addr).unwrap();
    over.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let _ = over.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut buf = [0u8; 64];
    match over.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the connection over the limit was served: {other:?}"),
    }
    // A held one still works.
    let first = held.first_mut().unwrap();
    first
        .write_all(b"GET /favicon.ico HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut reply = String::new();
    first.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 204"), "{reply}");
    // Its slot is free again once it is closed.
    held.remove(0);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(http_get(addr, "/favicon.ico", "x").0, 204);
}
