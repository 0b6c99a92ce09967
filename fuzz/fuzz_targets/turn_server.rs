//! The sans-IO TURN server driven by a byte string: after a config byte, the
//! input is a list of chunks `[op][len: u16 BE][payload]`, each one a client
//! datagram from one of three clients, a peer datagram into a relay, a clock
//! advance, or a correctly signed request built by the test client (so the
//! long-term-credential half reaches past authentication too). The I/O
//! commands are run after every input exactly as the test harness does.
//!
//! Checked after every step: nothing panics; a client datagram is answered
//! only if it is a request, by at most one well-formed response with its
//! transaction id (errors with a decodable ERROR-CODE); forward ranges lie
//! inside the buffer and frame what they claim; and the allocation table
//! matches the open relay sockets.
#![no_main]

// The integration tests' harness, so the two never drift apart.
#[path = "../../tests/common/harness.rs"]
mod harness;

use std::net::SocketAddr;
use std::time::Duration;

use harness::{Client, Harness};
use libfuzzer_sys::fuzz_target;
use ringturn::stun::{
    ChannelData, ChannelNumberAttr, ChannelRange, Class, Data, ErrorCodeAttr, Lifetime, Message,
    Method, RequestedTransport, TransportProtocol, XorPeerAddress,
};
use ringturn::turn::{
    ClientOutcome, ClientTransport, PeerOutcome, PeerPolicy, RelaySocketMode, ServerConfig,
};

const CLIENTS: [(&str, &str, &str); 3] = [
    ("192.0.2.1:1000", "alice", "secret"),
    ("192.0.2.2:2000", "bob", "hunter2"),
    ("198.51.100.7:3000", "alice", "secret"),
];

const PEERS: [&str; 4] = [
    "127.0.0.2:40000",
    "127.0.0.2:40001",
    "127.0.0.3:40000",
    "[::1]:40000",
];

fn peer(i: u8) -> SocketAddr {
    PEERS[usize::from(i) % PEERS.len()].parse().unwrap()
}

fn config(flags: u8) -> ServerConfig {
    let mut c = ServerConfig {
        no_auth: flags & 1 != 0,
        fingerprint: flags & 4 != 0,
        peer_policy: PeerPolicy {
            allow_loopback: true,
            ..Default::default()
        },
        ..harness::test_config()
    };
    if flags & 2 != 0 {
        // A tiny port range: exhaustion and busy ports are reachable.
        c.max_port = c.min_port + 3;
    }
    if flags & 8 != 0 {
        c.channel_range = ChannelRange::Rfc8656;
    }
    if flags & 16 != 0 {
        c.user_quota = 1;
        c.total_quota = 2;
        c.max_permissions_per_allocation = 2;
        c.max_channels_per_allocation = 2;
        c.max_claimed_peers = 2;
    }
    if flags & 64 != 0 {
        // Shared relay sockets: the peer-endpoint claim table is reachable.
        c.relay_socket_mode = RelaySocketMode::Shared;
    }
    c
}

fn check_table(h: &Harness) {
    match h.server.config().relay_socket_mode {
        RelaySocketMode::PerAllocation => {
            assert_eq!(h.server.allocation_count(), h.open_relays.len())
        }
        // One socket per relay IP, whatever the allocations.
        RelaySocketMode::Shared => {
            assert!(h.open_relays.len() <= h.server.config().relay_ips.len())
        }
    }
}

fn client_datagram(h: &mut Harness, c: &Client, bytes: &[u8]) {
    let outcome = h.input(c.tuple, bytes);
    let replies = h.drain();
    let parsed = Message::parse(bytes).ok();
    match &outcome {
        ClientOutcome::Forward(f) => {
            assert!(replies.is_empty());
            assert!(f.range.start <= f.range.end && f.range.end <= bytes.len());
            assert!(h.open_relays.contains(&f.from));
            let payload = &bytes[f.range.clone()];
            match &parsed {
                Some(m) => assert_eq!(m.get::<Data>().unwrap().unwrap().0, payload),
                None => assert_eq!(ChannelData::parse(bytes).unwrap().data, payload),
            }
        }
        ClientOutcome::Dropped(_) => assert!(replies.is_empty()),
        ClientOutcome::Handled => assert!(parsed.is_some()),
    }
    match parsed.filter(|m| m.class() == Class::Request) {
        None => assert!(replies.is_empty(), "answered a non-request"),
        Some(req) => {
            assert!(replies.len() <= 1, "several answers to one request");
            for t in &replies {
                assert_eq!(t.to, c.tuple);
                let resp = Message::parse(&t.payload).expect("malformed response");
                assert!(matches!(
                    resp.class(),
                    Class::SuccessResponse | Class::ErrorResponse
                ));
                assert_eq!(resp.method(), req.method());
                assert_eq!(resp.transaction_id(), req.transaction_id());
                assert_eq!(resp.cookie(), req.cookie());
                if resp.class() == Class::ErrorResponse {
                    let ec = resp.get::<ErrorCodeAttr>().expect("no ERROR-CODE");
                    assert!((300..700).contains(&ec.expect("bad ERROR-CODE").code.0));
                }
                assert_ne!(resp.verify_fingerprint(), Some(false));
            }
        }
    }
    check_table(h);
}

fn peer_datagram(h: &mut Harness, clients: &[Client], p: &[u8]) {
    let (sel, rest) = p.split_at(p.len().min(4));
    let b = |i: usize| sel.get(i).copied().unwrap_or(0);
    let relay = if h.open_relays.is_empty() || b(0) & 0x80 != 0 {
        SocketAddr::from(([127, 0, 0, 1], 50000 + u16::from(b(0) & 7)))
    } else {
        h.open_relays[usize::from(b(0)) % h.open_relays.len()]
    };
    let from = peer(b(1));
    let head = usize::from(b(2) % 64);
    let tail = usize::from(b(3) % 8);
    let mut buf = vec![0xEE; head + rest.len() + tail];
    buf[head..head + rest.len()].copy_from_slice(rest);
    let out = h
        .server
        .handle_peer_datagram(h.now, relay, from, &mut buf, head..head + rest.len());
    if let PeerOutcome::Forward(f) = out {
        assert!(f.range.start <= f.range.end && f.range.end <= buf.len());
        assert!(clients.iter().any(|c| c.tuple.client == f.to));
        let framed = &buf[f.range];
        match Message::parse(framed) {
            Ok(m) => {
                assert_eq!((m.class(), m.method()), (Class::Indication, Method::DATA));
                assert_eq!(m.get::<XorPeerAddress>().unwrap().unwrap().0, from);
                assert_eq!(m.get::<Data>().unwrap().unwrap().0, rest);
            }
            Err(_) => assert_eq!(ChannelData::parse(framed).unwrap().data, rest),
        }
    }
    check_table(h);
}

/// A correctly built (and, with credentials, signed) request or data message.
fn signed(h: &mut Harness, clients: &mut [Client], p: &[u8]) {
    let b = |i: usize| p.get(i).copied().unwrap_or(0);
    let c = &mut clients[usize::from(b(0)) % 3];
    let udp = RequestedTransport(TransportProtocol::UDP);
    let lifetime = u32::from(u16::from_be_bytes([b(2), b(3)]));
    let channel = 0x4000 + u16::from(b(4) % 4);
    let resp = match b(1) % 8 {
        0 => c.transact(h, Method::ALLOCATE, &[&udp]),
        1 => c.transact(h, Method::ALLOCATE, &[&udp, &Lifetime(lifetime)]),
        2 => c.transact(h, Method::REFRESH, &[&Lifetime(lifetime % 8)]),
        3 => c.transact(h, Method::REFRESH, &[&Lifetime(lifetime)]),
        4 => c.transact(
            h,
            Method::CREATE_PERMISSION,
            &[&XorPeerAddress(peer(b(5))), &XorPeerAddress(peer(b(6)))],
        ),
        5 => c.transact(
            h,
            Method::CHANNEL_BIND,
            &[&ChannelNumberAttr(channel), &XorPeerAddress(peer(b(5)))],
        ),
        6 => {
            let bytes = Client::channel_data(channel, p.get(5..).unwrap_or(&[]));
            let c = &clients[usize::from(b(0)) % 3];
            return client_datagram(h, c, &bytes);
        }
        _ => {
            let bytes = c.send_indication(peer(b(5)), p.get(6..).unwrap_or(&[]));
            let c = &clients[usize::from(b(0)) % 3];
            return client_datagram(h, c, &bytes);
        }
    };
    let m = Message::parse(&resp.bytes).expect("malformed response");
    assert!(matches!(
        m.class(),
        Class::SuccessResponse | Class::ErrorResponse
    ));
    if m.class() == Class::ErrorResponse {
        assert!(m.get::<ErrorCodeAttr>().is_some_and(|e| e.is_ok()));
    }
    check_table(h);
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let config = config(flags);
    let tiny = config.max_port - config.min_port < 8;
    let mut h = Harness::new(config);
    if tiny && flags & 32 != 0 {
        // One port of the tiny range is taken by someone else.
        h.busy_ports.push(h.server.config().min_port + 1);
    }
    let mut clients: Vec<Client> = CLIENTS
        .iter()
        .map(|&(a, u, p)| Client::new(a, u, p))
        .collect();
    // The third client is on a stream connection (RFC 8656 §12.5 padding).
    clients[2].tuple.transport = ClientTransport::Stream(1);

    let mut steps = 0;
    while rest.len() >= 3 && steps < 64 {
        steps += 1;
        let op = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let payload = &rest[3..3 + len];
        rest = &rest[3 + len..];
        match op % 8 {
            0..=2 => {
                let c = &clients[usize::from(op % 8)];
                client_datagram(&mut h, c, payload);
            }
            3 => peer_datagram(&mut h, &clients, payload),
            4 => {
                let mut ms = [0u8; 4];
                for (o, b) in ms.iter_mut().zip(payload) {
                    *o = *b;
                }
                let ms = u64::from(u32::from_be_bytes(ms) % 4_000_000);
                h.advance(Duration::from_millis(ms));
                check_table(&h);
            }
            _ => signed(&mut h, &mut clients, payload),
        }
    }
    // RFC 8656 §7: nothing outlives the maximum lifetime without a refresh.
    h.advance(Duration::from_secs(3601));
    assert_eq!(h.server.allocation_count(), 0);
    assert!(h.open_relays.is_empty());
});
