//! Property tests of the sans-IO TURN server against hostile and random input:
//! arbitrary and mutated datagrams from clients, arbitrary datagrams from
//! peers, and random operation sequences on a virtual clock checked against a
//! small model of RFC 8656 allocations, permissions and channels.
//!
//! Every property runs with a fixed seed and a modest case count, so the file
//! is repeatable and takes seconds in a debug build.

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use ringturn::auth::keys::{md5_key, sha256_key};
use ringturn::auth::NonceKey;
use ringturn::stun::{
    Attribute, AttributeType, ChannelData, Class, Data, ErrorCodeAttr, Lifetime, Message,
    MessageType, MessageWriter, Method, Nonce, PasswordAlgorithm, PasswordAlgorithmsList, Realm,
    TransactionId, Username, XorMappedAddress, XorPeerAddress, XorRelayedAddress, HEADER_LEN,
    MAGIC_COOKIE,
};
use ringturn::turn::{
    ClientOutcome, ClientTransport, ClientTuple, DropReason, PeerOutcome, PeerPolicy, ServerConfig,
    Transmit, PEER_HEADROOM, PEER_TAILROOM,
};

// ====================================================================== setup

fn config(cases: u32, seed: u64) -> ProptestConfig {
    ProptestConfig {
        rng_seed: RngSeed::Fixed(seed),
        ..ProptestConfig::with_cases(cases)
    }
}

/// The harness configuration with loopback peers allowed (the peers below are
/// on 127.0.0.0/8), optionally without authentication.
fn loopback_config(no_auth: bool) -> ServerConfig {
    ServerConfig {
        no_auth,
        peer_policy: PeerPolicy {
            allow_loopback: true,
            ..Default::default()
        },
        ..test_config()
    }
}

const CLIENT_ADDRS: [&str; 3] = ["192.0.2.1:1000", "192.0.2.2:2000", "198.51.100.7:3000"];
const USERS: [(&str, &str); 3] = [("alice", "secret"), ("bob", "hunter2"), ("alice", "secret")];
const PEER_ADDRS: [&str; 5] = [
    "127.0.0.2:40000",
    "127.0.0.2:40001", // same IP as the first: shares its permission, not its channel
    "127.0.0.3:40000",
    "[::1]:40000", // wrong family for an IPv4 relay: 443
    "0.0.0.1:9",   // refused by the peer policy: 403
];

fn peer(i: usize) -> SocketAddr {
    addr(PEER_ADDRS[i % PEER_ADDRS.len()])
}

fn client(i: usize) -> Client {
    let (user, pass) = USERS[i % USERS.len()];
    Client::new(CLIENT_ADDRS[i % CLIENT_ADDRS.len()], user, pass)
}

/// A server where client 0 holds an allocation with a permission for peer 0
/// and channel 0x4000 bound to it; client 1 has a nonce but no allocation.
struct World {
    h: Harness,
    clients: Vec<Client>,
}

fn world(no_auth: bool) -> World {
    let mut h = Harness::new(loopback_config(no_auth));
    let mut a = client(0);
    a.allocate(&mut h).unwrap();
    a.create_permission(&mut h, &[peer(0)]).unwrap();
    a.channel_bind(&mut h, 0x4000, peer(0)).unwrap();
    let mut b = client(1);
    if !no_auth {
        // An unauthenticated request fetches the realm and nonce.
        let tid = b.fresh_tid();
        let req = b.build(Method::ALLOCATE, tid, &[]);
        let resp = b.send_raw(&mut h, &req).unwrap();
        let m = resp.msg();
        b.nonce = Some(m.get::<Nonce>().unwrap().unwrap().0.to_owned());
        b.realm = Some(m.get::<Realm>().unwrap().unwrap().0.to_owned());
    }
    assert_eq!(h.server.allocation_count(), 1);
    World {
        h,
        clients: vec![a, b],
    }
}

// ====================================================================== checks

/// RFC 8489 §6.3, §14.7, §14.8: an answer to `req` is a response of the same
/// method, with the same cookie and transaction id, sent back on the 5-tuple
/// the request came on; an error response carries a decodable ERROR-CODE, a
/// success response none; a FINGERPRINT, when present, is right; every
/// attribute the server wrote decodes.
fn check_response(req: &Message<'_>, from: ClientTuple, t: &Transmit) {
    assert_eq!(t.to, from, "the answer goes back on the request's 5-tuple");
    assert_eq!(t.from, from.server);
    let resp = Message::parse(&t.payload).unwrap_or_else(|e| {
        panic!(
            "server sent a malformed message ({e:?}): {:02x?}",
            t.payload
        )
    });
    assert!(
        matches!(resp.class(), Class::SuccessResponse | Class::ErrorResponse),
        "a request is answered by a response, got {:?}",
        resp.class()
    );
    assert_eq!(resp.method(), req.method(), "responses keep the method");
    assert_eq!(resp.transaction_id(), req.transaction_id());
    assert_eq!(resp.cookie(), req.cookie());
    match (resp.class(), resp.get::<ErrorCodeAttr>()) {
        (Class::ErrorResponse, Some(Ok(ec))) => {
            assert!((300..700).contains(&ec.code.0), "error code {}", ec.code.0)
        }
        (Class::ErrorResponse, other) => panic!("error response with ERROR-CODE {other:?}"),
        (_, ec) => assert!(ec.is_none(), "success response with ERROR-CODE"),
    }
    assert_ne!(resp.verify_fingerprint(), Some(false), "wrong FINGERPRINT");
    if req.has_fingerprint() {
        assert!(
            resp.has_fingerprint(),
            "a FINGERPRINTed request gets one back"
        );
    }
    for a in resp.decoded_attributes() {
        a.unwrap_or_else(|e| panic!("undecodable attribute in a response: {e:?}"));
    }
}

/// What one client datagram may produce: a forward decision inside the
/// datagram (RFC 8656 §11.2 Send, §12.6 ChannelData) and no answer, a drop and
/// no answer, or — for a request only — at most one well-formed response.
fn check_exchange(
    h: &Harness,
    from: ClientTuple,
    input: &[u8],
    outcome: &ClientOutcome,
    replies: &[Transmit],
) {
    let parsed = Message::parse(input).ok();
    match outcome {
        ClientOutcome::Forward(f) => {
            assert!(replies.is_empty(), "data is forwarded, not answered");
            assert!(
                f.range.start <= f.range.end && f.range.end <= input.len(),
                "forward range {:?} outside a {}-byte datagram",
                f.range,
                input.len()
            );
            assert!(
                h.open_relays.contains(&f.from),
                "forwarded from {} which is no open relay",
                f.from
            );
            let payload = &input[f.range.clone()];
            match &parsed {
                Some(m) => {
                    assert_eq!((m.class(), m.method()), (Class::Indication, Method::SEND));
                    assert_eq!(m.get::<Data>().unwrap().unwrap().0, payload);
                    assert_eq!(m.get::<XorPeerAddress>().unwrap().unwrap().0, f.to);
                }
                None => assert_eq!(ChannelData::parse(input).unwrap().data, payload),
            }
        }
        ClientOutcome::Dropped(_) => {
            assert!(replies.is_empty(), "a dropped datagram got an answer")
        }
        ClientOutcome::Handled => assert!(parsed.is_some(), "handled a datagram that is no STUN"),
    }
    match parsed.as_ref().filter(|m| m.class() == Class::Request) {
        None => assert!(replies.is_empty(), "only requests are answered"),
        Some(req) => {
            assert!(
                replies.len() <= 1,
                "{} answers to one request",
                replies.len()
            );
            for t in replies {
                check_response(req, from, t);
            }
        }
    }
}

/// The allocation table agrees with the fake I/O layer: one open relay socket
/// per allocation, and every client the table knows is counted.
fn check_table(h: &Harness, clients: &[Client]) {
    assert_eq!(
        h.server.allocation_count(),
        h.open_relays.len(),
        "allocations vs open relay sockets"
    );
    let mut relays: Vec<SocketAddr> = h.server.relay_addresses().collect();
    relays.sort();
    let mut open = h.open_relays.clone();
    open.sort();
    assert_eq!(relays, open, "the server's relay directory vs open sockets");
    let known = clients
        .iter()
        .filter(|c| h.server.allocation_for_client(&c.tuple).is_some())
        .count();
    assert!(known <= h.server.allocation_count());
}

/// Feeds one client datagram and checks everything it produced.
fn feed(h: &mut Harness, clients: &[Client], from: ClientTuple, input: &[u8]) -> ClientOutcome {
    let outcome = h.input(from, input);
    let replies = h.drain();
    check_exchange(h, from, input, &outcome, &replies);
    check_table(h, clients);
    outcome
}

// ====================================================================== arbitrary datagrams

/// Known methods most of the time, any 12-bit method sometimes.
fn method() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => prop::sample::select(vec![0x001u16, 0x003, 0x004, 0x006, 0x007, 0x008, 0x009, 0x00A, 0x00B, 0x00C]),
        1 => 0u16..0x1000,
    ]
}

fn class() -> impl Strategy<Value = Class> {
    prop_oneof![
        3 => Just(Class::Request),
        1 => Just(Class::Indication),
        1 => Just(Class::SuccessResponse),
        1 => Just(Class::ErrorResponse),
    ]
}

fn message_type() -> impl Strategy<Value = u16> {
    (method(), class()).prop_map(|(m, c)| MessageType::new(Method(m), c).to_u16())
}

fn cookie() -> impl Strategy<Value = [u8; 4]> {
    prop_oneof![9 => Just(MAGIC_COOKIE.to_be_bytes()), 1 => any::<[u8; 4]>()]
}

/// A valid 20-byte header (random method, class, and a length that is right
/// or random) followed by junk.
fn stun_header_then_junk() -> impl Strategy<Value = Vec<u8>> {
    (
        message_type(),
        cookie(),
        any::<[u8; 12]>(),
        vec(any::<u8>(), 0..120),
        prop_oneof![2 => Just(None), 1 => any::<u16>().prop_map(Some)],
    )
        .prop_map(|(ty, cookie, tid, body, len)| {
            let len = len.unwrap_or(body.len() as u16);
            let mut out = Vec::with_capacity(HEADER_LEN + body.len());
            out.extend_from_slice(&ty.to_be_bytes());
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&cookie);
            out.extend_from_slice(&tid);
            out.extend_from_slice(&body);
            out
        })
}

/// A ChannelData header (first byte 0x40..0x7F) with a right or random length.
fn channel_data_like() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![3 => 0x4000u16..0x4004, 1 => 0x4000u16..=0x7FFF],
        vec(any::<u8>(), 0..200),
        prop_oneof![2 => Just(None), 1 => any::<u16>().prop_map(Some)],
        0usize..4,
    )
        .prop_map(|(ch, payload, len, pad)| {
            let len = len.unwrap_or(payload.len() as u16);
            let mut out = Vec::new();
            out.extend_from_slice(&ch.to_be_bytes());
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&payload);
            out.extend(std::iter::repeat_n(0, pad));
            out
        })
}

/// How a structured message is signed when it is rendered.
#[derive(Debug, Clone, Copy)]
enum Auth {
    None,
    /// USERNAME, REALM, a valid NONCE for the sender, MESSAGE-INTEGRITY.
    Md5,
    /// The same with PASSWORD-ALGORITHM(S) and MESSAGE-INTEGRITY-SHA256.
    Sha256,
    /// Signed with the wrong key.
    WrongKey,
}

/// A datagram to feed: raw bytes, or a well-framed STUN message with random
/// attributes, rendered for its sender (the nonce depends on the address).
#[derive(Debug, Clone)]
enum Datagram {
    Raw(Vec<u8>),
    Stun {
        ty: u16,
        cookie: [u8; 4],
        tid: [u8; 12],
        attrs: Vec<(u16, Vec<u8>)>,
        auth: Auth,
        fingerprint: bool,
    },
}

fn attr_type() -> impl Strategy<Value = u16> {
    let known: Vec<u16> = AttributeType::KNOWN.iter().map(|t| t.0).collect();
    prop_oneof![6 => prop::sample::select(known), 1 => any::<u16>()]
}

fn attr_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..40),
        // The sizes real attributes have: addresses, numbers, ids, MACs.
        prop::sample::select(vec![1usize, 4, 8, 20, 32]).prop_flat_map(|n| vec(any::<u8>(), n)),
        // A valid XOR-PEER-ADDRESS value for a loopback peer (cookie-only XOR).
        (0usize..PEER_ADDRS.len()).prop_map(|i| {
            let mut buf = [0u8; 64];
            let mut w = MessageWriter::new(
                &mut buf,
                MessageType::new(Method::BINDING, Class::Request),
                TransactionId([0; 12]),
            )
            .unwrap();
            w.add(&XorPeerAddress(peer(i))).unwrap();
            let n = w.finish();
            buf[HEADER_LEN + 4..n].to_vec()
        }),
    ]
}

fn structured_stun() -> impl Strategy<Value = Datagram> {
    (
        message_type(),
        cookie(),
        any::<[u8; 12]>(),
        vec((attr_type(), attr_value()), 0..8),
        prop_oneof![
            2 => Just(Auth::None),
            3 => Just(Auth::Md5),
            1 => Just(Auth::Sha256),
            1 => Just(Auth::WrongKey),
        ],
        any::<bool>(),
    )
        .prop_map(
            |(ty, cookie, tid, attrs, auth, fingerprint)| Datagram::Stun {
                ty,
                cookie,
                tid,
                attrs,
                auth,
                fingerprint,
            },
        )
}

fn datagram() -> impl Strategy<Value = Datagram> {
    prop_oneof![
        2 => vec(any::<u8>(), 0..600).prop_map(Datagram::Raw),
        2 => stun_header_then_junk().prop_map(Datagram::Raw),
        2 => channel_data_like().prop_map(Datagram::Raw),
        4 => structured_stun(),
    ]
}

impl Datagram {
    /// The bytes `sender` would put on the wire. A message the writer refuses
    /// (an attribute after the integrity ones) is cut where the writer stopped.
    fn render(&self, sender: SocketAddr) -> Vec<u8> {
        let (ty, cookie, tid, attrs, auth, fingerprint) = match self {
            Datagram::Raw(bytes) => return bytes.clone(),
            Datagram::Stun {
                ty,
                cookie,
                tid,
                attrs,
                auth,
                fingerprint,
            } => (ty, cookie, tid, attrs, auth, fingerprint),
        };
        let mut buf = vec![0u8; 4096];
        let mt = MessageType::from_u16(*ty);
        let mut w = MessageWriter::with_cookie(&mut buf, mt, *cookie, TransactionId(*tid)).unwrap();
        for (t, v) in attrs {
            let _ = w.add(&Attribute::Unknown {
                attr_type: AttributeType(*t),
                value: v,
            });
        }
        let nonce = NonceKey::new([42; 32]).issue(UNIX_START, sender);
        let (user, pass) = USERS[0];
        let sign = |w: &mut MessageWriter<'_>| {
            let _ = w.add(&Username(user));
            let _ = w.add(&Realm(REALM));
            let _ = w.add(&Nonce(nonce.as_str()));
        };
        match auth {
            Auth::None => {}
            Auth::Md5 => {
                sign(&mut w);
                let _ = w.add_message_integrity(&md5_key(user, REALM, pass));
            }
            Auth::WrongKey => {
                sign(&mut w);
                let _ = w.add_message_integrity(&md5_key(user, REALM, "wrong"));
            }
            Auth::Sha256 => {
                sign(&mut w);
                let _ = w.add(&PasswordAlgorithmsList(&[
                    PasswordAlgorithm::MD5,
                    PasswordAlgorithm::SHA256,
                ]));
                let _ = w.add(&PasswordAlgorithm::SHA256);
                let _ = w.add_message_integrity_sha256(&sha256_key(user, REALM, pass));
            }
        }
        if *fingerprint {
            let _ = w.add_fingerprint();
        }
        let n = w.finish();
        buf.truncate(n);
        buf
    }
}

proptest! {
    #![proptest_config(config(256, 0x7e57_0001))]

    /// RFC 8489 §6.3 / §7.3, RFC 8656 §5: whatever a client sends, the server
    /// does not panic, answers only requests, and only with well-formed
    /// responses carrying the request's transaction id (errors with a
    /// decodable ERROR-CODE); forwards stay inside the datagram; and the
    /// allocation table stays consistent with the open relay sockets.
    #[test]
    fn rfc8489_6_3_arbitrary_client_datagrams_get_only_well_formed_responses(
        no_auth in any::<bool>(),
        input in vec((0usize..3, datagram()), 1..8),
    ) {
        let World { mut h, clients } = world(no_auth);
        let third = client(2);
        for (who, d) in &input {
            let tuple = match who {
                0 => clients[0].tuple,
                1 => clients[1].tuple,
                _ => third.tuple,
            };
            let bytes = d.render(tuple.client);
            feed(&mut h, &clients, tuple, &bytes);
        }
    }
}

// ====================================================================== peer datagrams

/// What a peer datagram became, checked against RFC 8656 §11.3 (Data
/// indication) and §12.7 (ChannelData), in place in the caller's buffer.
fn check_framed(
    buf: &[u8],
    range: std::ops::Range<usize>,
    payload: &[u8],
    from_peer: SocketAddr,
    channel: Option<u16>,
    stream: bool,
) {
    assert!(range.start <= range.end && range.end <= buf.len());
    let framed = &buf[range];
    match channel {
        Some(number) => {
            let cd = ChannelData::parse(framed).expect("framed ChannelData parses");
            assert_eq!(cd.channel.0, number);
            assert_eq!(cd.data, payload);
            if stream {
                assert_eq!(framed.len() % 4, 0, "RFC 8656 §12.5: padded over streams");
            } else {
                assert_eq!(framed.len(), 4 + payload.len());
            }
        }
        None => {
            let m = Message::parse(framed).expect("framed Data indication parses");
            assert_eq!((m.class(), m.method()), (Class::Indication, Method::DATA));
            assert_eq!(m.get::<XorPeerAddress>().unwrap().unwrap().0, from_peer);
            assert_eq!(m.get::<Data>().unwrap().unwrap().0, payload);
        }
    }
}

fn payload_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 0usize..1500,
        1 => 65_500usize..65_540,
    ]
}

proptest! {
    #![proptest_config(config(192, 0x7e57_0002))]

    /// RFC 8656 §11.3 / §12.7: a peer datagram with any relay address, peer,
    /// payload size, headroom and tailroom never panics; it is forwarded only
    /// to the allocation's client, from a peer with a permission, framed as
    /// ChannelData when a channel is bound to that exact peer and as a Data
    /// indication otherwise; too little room is a drop, not a panic.
    #[test]
    fn rfc8656_11_3_12_7_arbitrary_peer_datagrams_never_panic_and_frame_correctly(
        stream in any::<bool>(),
        bind_channel in any::<bool>(),
        relay_choice in 0usize..3,
        random_relay in any::<(u32, u16)>(),
        peer_choice in prop_oneof![3 => 0usize..2, 1 => 0usize..6],
        random_peer in any::<(u32, u16)>(),
        head in prop_oneof![3 => 0usize..=PEER_HEADROOM + 4, 1 => Just(PEER_HEADROOM)],
        tail in prop_oneof![3 => 0usize..=PEER_TAILROOM + 2, 1 => Just(PEER_TAILROOM)],
        len in payload_len(),
        fill in any::<u8>(),
        advance_s in prop_oneof![3 => Just(0u64), 1 => 0u64..4000],
    ) {
        let mut h = Harness::new(loopback_config(false));
        let mut c = client(0);
        if stream {
            c.tuple.transport = ClientTransport::Stream(7);
        }
        let relay = c.allocate(&mut h).unwrap();
        c.create_permission(&mut h, &[peer(0)]).unwrap();
        if bind_channel {
            c.channel_bind(&mut h, 0x4001, peer(0)).unwrap();
        }
        h.advance(Duration::from_secs(advance_s));
        let to_relay = match relay_choice {
            0 | 1 => relay,
            _ => SocketAddr::from((random_relay.0.to_be_bytes(), random_relay.1)),
        };
        let from = match peer_choice {
            5 => SocketAddr::from((random_peer.0.to_be_bytes(), random_peer.1)),
            i => peer(i),
        };
        let payload: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i as u8)).collect();
        let mut buf = vec![0xEEu8; head + len + tail];
        buf[head..head + len].copy_from_slice(&payload);
        let out = h.server.handle_peer_datagram(h.now, to_relay, from, &mut buf, head..head + len);

        let alive = to_relay == relay && h.server.allocation_count() == 1;
        let permitted = alive && from.ip() == peer(0).ip() && advance_s < 300;
        let channel = (bind_channel && from == peer(0) && advance_s < 600).then_some(0x4001);
        let room = match channel {
            Some(_) => head >= 4 && (!stream || tail >= (4 - (4 + len) % 4) % 4),
            None => {
                let front = if from.is_ipv4() { 36 } else { 48 };
                head >= front && tail >= (4 - len % 4) % 4 && 16 + len.div_ceil(4) * 4 <= 65_535
            }
        };
        match out {
            PeerOutcome::Forward(f) => {
                prop_assert!(permitted, "forwarded without a live permission");
                prop_assert!(room && len <= 65_535, "forwarded without room");
                prop_assert_eq!(f.to, c.tuple.client);
                prop_assert_eq!(f.from, c.tuple.server);
                check_framed(&buf, f.range, &payload, from, channel, stream);
            }
            PeerOutcome::Dropped(reason) => {
                if !alive {
                    prop_assert_eq!(reason, DropReason::NoAllocation);
                } else if !permitted {
                    prop_assert_eq!(reason, DropReason::NoPermission);
                } else {
                    prop_assert!(
                        !room || len > 65_535,
                        "dropped ({:?}) though there was room", reason
                    );
                }
            }
        }
        check_table(&h, &[c]);
    }
}

// ====================================================================== mutated requests

/// One way of damaging a datagram.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    SetByte(usize, u8),
    Truncate(usize),
    Append(Vec<u8>),
    /// Sets the length field of the n-th attribute.
    AttrLen(usize, u16),
    /// Nudges the length field of the n-th attribute.
    AttrLenDelta(usize, i8),
    /// Sets the header's length field (bytes 2..4; ChannelData's too).
    HeaderLen(u16),
    DropAttr(usize),
    DupAttr(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::SetByte(i, v)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => vec(any::<u8>(), 1..12).prop_map(Mutation::Append),
        2 => (any::<usize>(), any::<u16>()).prop_map(|(i, v)| Mutation::AttrLen(i, v)),
        2 => (any::<usize>(), -8i8..=8).prop_map(|(i, d)| Mutation::AttrLenDelta(i, d)),
        1 => any::<u16>().prop_map(Mutation::HeaderLen),
        1 => any::<usize>().prop_map(Mutation::DropAttr),
        1 => any::<usize>().prop_map(Mutation::DupAttr),
    ]
}

/// (offset, padded total size) of each attribute of a well-framed message.
fn attr_spans(msg: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = HEADER_LEN;
    while at + 4 <= msg.len() {
        let len = usize::from(u16::from_be_bytes([msg[at + 2], msg[at + 3]]));
        let size = 4 + len.div_ceil(4) * 4;
        out.push((at, size.min(msg.len() - at)));
        at += size;
    }
    out
}

fn set_header_len(msg: &mut [u8]) {
    if msg.len() >= HEADER_LEN {
        let len = u16::try_from(msg.len() - HEADER_LEN).unwrap_or(u16::MAX);
        msg[2..4].copy_from_slice(&len.to_be_bytes());
    }
}

fn mutate(msg: &mut Vec<u8>, m: &Mutation) {
    let is_stun = matches!(msg.first(), Some(0..=3));
    let spans = if is_stun { attr_spans(msg) } else { Vec::new() };
    match m {
        Mutation::FlipBit(i, b) if !msg.is_empty() => {
            let i = i % msg.len();
            msg[i] ^= 1 << b;
        }
        Mutation::SetByte(i, v) if !msg.is_empty() => {
            let i = i % msg.len();
            msg[i] = *v;
        }
        Mutation::Truncate(n) => {
            let n = n % (msg.len() + 1);
            msg.truncate(n);
        }
        Mutation::Append(bytes) => msg.extend_from_slice(bytes),
        Mutation::AttrLen(i, v) if !spans.is_empty() => {
            let (at, _) = spans[i % spans.len()];
            msg[at + 2..at + 4].copy_from_slice(&v.to_be_bytes());
        }
        Mutation::AttrLenDelta(i, d) if !spans.is_empty() => {
            let (at, _) = spans[i % spans.len()];
            let old = u16::from_be_bytes([msg[at + 2], msg[at + 3]]);
            let new = old.wrapping_add_signed(i16::from(*d));
            msg[at + 2..at + 4].copy_from_slice(&new.to_be_bytes());
        }
        Mutation::HeaderLen(v) if msg.len() >= 4 => {
            msg[2..4].copy_from_slice(&v.to_be_bytes());
        }
        Mutation::DropAttr(i) if !spans.is_empty() => {
            let (at, size) = spans[i % spans.len()];
            msg.drain(at..at + size);
            set_header_len(msg);
        }
        Mutation::DupAttr(i) if !spans.is_empty() => {
            let (at, size) = spans[i % spans.len()];
            let copy = msg[at..at + size].to_vec();
            let end = at + size;
            msg.splice(end..end, copy);
            set_header_len(msg);
        }
        _ => {}
    }
}

/// The valid datagrams the mutations start from.
#[derive(Debug, Clone, Copy)]
enum Valid {
    Allocate,
    AllocateOther,
    Refresh(u32),
    CreatePermission(usize),
    ChannelBind(u16, usize),
    Send(usize),
    ChannelData(u16),
    Binding,
}

fn valid() -> impl Strategy<Value = Valid> {
    prop_oneof![
        Just(Valid::Allocate),
        Just(Valid::AllocateOther),
        prop_oneof![Just(0u32), 0u32..5000].prop_map(Valid::Refresh),
        (0usize..5).prop_map(Valid::CreatePermission),
        (
            prop_oneof![Just(0x4000u16), Just(0x4001), 0x3FF0u16..0x8010],
            0usize..5
        )
            .prop_map(|(n, p)| Valid::ChannelBind(n, p)),
        (0usize..5).prop_map(Valid::Send),
        prop_oneof![Just(0x4000u16), 0x4000u16..0x4010].prop_map(Valid::ChannelData),
        Just(Valid::Binding),
    ]
}

/// Builds the datagram and says who sends it.
fn build_valid(clients: &mut [Client], v: Valid, payload: &[u8]) -> (usize, Vec<u8>) {
    use ringturn::stun::{ChannelNumberAttr, RequestedTransport, TransportProtocol};
    let udp = RequestedTransport(TransportProtocol::UDP);
    match v {
        Valid::Allocate => {
            let c = &mut clients[0];
            let tid = c.fresh_tid();
            (0, c.build(Method::ALLOCATE, tid, &[&udp]))
        }
        Valid::AllocateOther => {
            let c = &mut clients[1];
            let tid = c.fresh_tid();
            (1, c.build(Method::ALLOCATE, tid, &[&udp, &Lifetime(1200)]))
        }
        Valid::Refresh(l) => {
            let c = &mut clients[0];
            let tid = c.fresh_tid();
            (0, c.build(Method::REFRESH, tid, &[&Lifetime(l)]))
        }
        Valid::CreatePermission(p) => {
            let c = &mut clients[0];
            let tid = c.fresh_tid();
            let peers = [XorPeerAddress(peer(p)), XorPeerAddress(peer(p + 2))];
            (
                0,
                c.build(Method::CREATE_PERMISSION, tid, &[&peers[0], &peers[1]]),
            )
        }
        Valid::ChannelBind(n, p) => {
            let c = &mut clients[0];
            let tid = c.fresh_tid();
            (
                0,
                c.build(
                    Method::CHANNEL_BIND,
                    tid,
                    &[&ChannelNumberAttr(n), &XorPeerAddress(peer(p))],
                ),
            )
        }
        Valid::Send(p) => (0, clients[0].send_indication(peer(p), payload)),
        Valid::ChannelData(n) => (0, Client::channel_data(n, payload)),
        Valid::Binding => {
            let c = &mut clients[1];
            let tid = c.fresh_tid();
            (1, c.build(Method::BINDING, tid, &[]))
        }
    }
}

proptest! {
    #![proptest_config(config(256, 0x7e57_0003))]

    /// RFC 8489 §6.3 / §9.2.4, RFC 8656 §5: real requests and data (Allocate,
    /// Refresh, CreatePermission, ChannelBind, Send, ChannelData, Binding),
    /// damaged by bit flips, truncation, appended bytes and attribute length
    /// changes, never panic the server; its outputs stay well-formed; the
    /// allocation table matches the open relays; and the legitimate client
    /// can still use its allocation afterwards.
    #[test]
    fn rfc8489_6_3_mutated_requests_never_corrupt_the_allocation_table(
        no_auth in any::<bool>(),
        cases in vec((valid(), vec(mutation(), 1..4)), 1..6),
        payload in vec(any::<u8>(), 0..64),
    ) {
        let World { mut h, mut clients } = world(no_auth);
        // Whether a mutation happened to leave a deleting Refresh intact.
        let mut deleted = false;
        for (v, muts) in &cases {
            let (who, mut bytes) = build_valid(&mut clients, *v, &payload);
            let original = bytes.clone();
            for m in muts {
                mutate(&mut bytes, m);
            }
            deleted |= matches!(v, Valid::Refresh(0)) && bytes == original;
            let tuple = clients[who].tuple;
            feed(&mut h, &clients, tuple, &bytes);
        }
        // The owner still holds, and can refresh, whatever allocation it has.
        let a = &mut clients[0];
        if h.server.allocation_for_client(&a.tuple).is_some() {
            let granted = a.refresh(&mut h, 1800);
            prop_assert_eq!(granted, Ok(1800));
            let resp = a.transact(&mut h, Method::BINDING, &[]);
            prop_assert!(resp.is_success());
        } else {
            prop_assert!(
                no_auth || deleted,
                "an authenticated allocation vanished under mutated input"
            );
        }
        check_table(&h, &clients);
    }
}

// ====================================================================== operation sequences

#[derive(Debug, Clone)]
enum Op {
    Allocate(usize, Option<u32>),
    Refresh(usize, u32),
    Permission(usize, usize),
    ChannelBind(usize, u16, usize),
    ChannelData(usize, u16, usize),
    Send(usize, usize, usize),
    FromPeer(usize, usize, usize),
    Binding(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    // Mostly the first client, the valid peers and the first channels, so
    // that sequences build allocations up and push data through them.
    let c = prop_oneof![3 => Just(0usize), 2 => 0usize..3];
    let p = prop_oneof![4 => 0usize..3, 1 => 0usize..5];
    let len = 0usize..48;
    let ch = prop_oneof![
        6 => 0x4000u16..0x4003,
        1 => 0x3FFEu16..0x4002,
        1 => 0x7FFEu16..=0x8001,
    ];
    prop_oneof![
        3 => (c.clone(), prop_oneof![Just(None), (0u32..5000).prop_map(Some)])
            .prop_map(|(c, l)| Op::Allocate(c, l)),
        2 => (c.clone(), prop_oneof![1 => Just(0u32), 1 => 1u32..700, 2 => 600u32..5000])
            .prop_map(|(c, l)| Op::Refresh(c, l)),
        3 => (c.clone(), p.clone()).prop_map(|(c, p)| Op::Permission(c, p)),
        3 => (c.clone(), ch.clone(), p.clone()).prop_map(|(c, n, p)| Op::ChannelBind(c, n, p)),
        4 => (c.clone(), ch, len.clone()).prop_map(|(c, n, l)| Op::ChannelData(c, n, l)),
        4 => (c.clone(), p.clone(), len.clone()).prop_map(|(c, p, l)| Op::Send(c, p, l)),
        4 => (p, c.clone(), len).prop_map(|(p, c, l)| Op::FromPeer(p, c, l)),
        1 => c.prop_map(Op::Binding),
        3 => prop_oneof![
            6 => 0u64..5_000,
            2 => 0u64..1_000_000,
            1 => Just(300_000u64),
            1 => Just(600_000u64),
        ]
        .prop_map(Op::Advance),
    ]
}

/// What the model knows about one client's allocation (RFC 8656 §2.2).
#[derive(Debug, Default, Clone)]
struct ModelAlloc {
    relay: Option<SocketAddr>,
    /// When the lifetime granted by the last Allocate/Refresh runs out.
    expires: Option<Instant>,
    /// RFC 8656 §9: by peer IP.
    permissions: HashMap<IpAddr, Instant>,
    /// RFC 8656 §12: (number, peer, end of the binding).
    channels: Vec<(u16, SocketAddr, Instant)>,
}

const DEFAULT_LIFETIME: u64 = 600;
const MAX_LIFETIME: u64 = 3600;
const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
const COOLDOWN: Duration = Duration::from_secs(300);

impl ModelAlloc {
    fn permitted(&self, ip: IpAddr, now: Instant) -> bool {
        self.permissions.get(&ip).is_some_and(|e| now < *e)
    }

    fn live_channel(&self, number: u16, now: Instant) -> Option<SocketAddr> {
        self.channels
            .iter()
            .find(|(n, _, e)| *n == number && now < *e)
            .map(|(_, p, _)| *p)
    }

    fn channel_for(&self, peer: SocketAddr, now: Instant) -> Option<u16> {
        self.channels
            .iter()
            .find(|(_, p, e)| *p == peer && now < *e)
            .map(|(n, _, _)| *n)
    }
}

/// Which error a peer address gets on an IPv4 relay with loopback allowed.
fn peer_error(p: SocketAddr) -> Option<u16> {
    if p.is_ipv6() {
        Some(443)
    } else if p.ip().to_string().starts_with("0.") {
        // 0.0.0.0/8 is never a peer (RFC 8656 §21.3, coturn's default).
        Some(403)
    } else {
        None
    }
}

struct Sim {
    h: Harness,
    clients: Vec<Client>,
    model: Vec<ModelAlloc>,
    /// Also require allocations to go exactly when their granted lifetime ends.
    strict_expiry: bool,
}

impl Sim {
    fn new(strict_expiry: bool) -> Self {
        Self {
            h: Harness::new(loopback_config(false)),
            clients: (0..3).map(client).collect(),
            model: vec![ModelAlloc::default(); 3],
            strict_expiry,
        }
    }

    /// Server truth for "has an allocation", checked against the model: an
    /// allocation lives at least as long as granted (and, when strict, no
    /// longer); when it is gone, so are its permissions, channels and socket.
    fn sync(&mut self) {
        let now = self.h.now;
        for (c, m) in self.clients.iter().zip(self.model.iter_mut()) {
            let alive = self.h.server.allocation_for_client(&c.tuple).is_some();
            let granted = m.expires.is_some_and(|e| now < e);
            if granted {
                assert!(
                    alive,
                    "RFC 8656 §7: allocation of {} gone before its lifetime",
                    c.tuple.client
                );
            }
            if self.strict_expiry && m.expires.is_some() {
                assert_eq!(
                    alive, granted,
                    "RFC 8656 §8.2: allocation of {} outlived its granted lifetime",
                    c.tuple.client
                );
            }
            if !alive {
                if let Some(relay) = m.relay {
                    assert!(
                        !self.h.open_relays.contains(&relay),
                        "relay {relay} left open"
                    );
                }
                *m = ModelAlloc::default();
            }
        }
        check_table(&self.h, &self.clients);
        let alive = self
            .clients
            .iter()
            .filter(|c| self.h.server.allocation_for_client(&c.tuple).is_some())
            .count();
        assert_eq!(alive, self.h.server.allocation_count());
    }

    fn alive(&self, c: usize) -> bool {
        self.h
            .server
            .allocation_for_client(&self.clients[c].tuple)
            .is_some()
    }

    fn run(&mut self, op: &Op) {
        let now = self.h.now;
        match *op {
            Op::Allocate(c, lifetime) => {
                use ringturn::stun::{RequestedTransport, TransportProtocol};
                let had = self.alive(c);
                let udp = RequestedTransport(TransportProtocol::UDP);
                let resp = match lifetime {
                    Some(l) => self.clients[c].transact(
                        &mut self.h,
                        Method::ALLOCATE,
                        &[&udp, &Lifetime(l)],
                    ),
                    None => self.clients[c].transact(&mut self.h, Method::ALLOCATE, &[&udp]),
                };
                if had {
                    // RFC 8656 §7.2 step 2: the 5-tuple is in use.
                    assert_eq!(resp.error_code(), Some(437));
                    return;
                }
                assert!(
                    resp.is_success(),
                    "Allocate failed: {:?}",
                    resp.error_code()
                );
                let m = resp.msg();
                let relay = m.get::<XorRelayedAddress>().unwrap().unwrap().0;
                let granted = m.get::<Lifetime>().unwrap().unwrap().0;
                // RFC 8656 §7.2: at least the default, at most the maximum.
                let want = u64::from(lifetime.unwrap_or(0)).clamp(DEFAULT_LIFETIME, MAX_LIFETIME);
                assert_eq!(u64::from(granted), want);
                assert_eq!(
                    m.get::<XorMappedAddress>().unwrap().unwrap().0,
                    self.clients[c].tuple.client
                );
                assert!(self.h.open_relays.contains(&relay));
                self.model[c] = ModelAlloc {
                    relay: Some(relay),
                    expires: Some(now + Duration::from_secs(u64::from(granted))),
                    ..ModelAlloc::default()
                };
            }
            Op::Refresh(c, l) => {
                let had = self.alive(c);
                let r = self.clients[c].refresh(&mut self.h, l);
                if !had {
                    assert_eq!(r, Err(437));
                    return;
                }
                let granted = r.expect("Refresh of a live allocation");
                if l == 0 {
                    assert_eq!(granted, 0);
                    assert!(!self.alive(c), "RFC 8656 §8.2: LIFETIME 0 deletes");
                    self.model[c].expires = None;
                } else {
                    assert!(granted > 0 && u64::from(granted) <= MAX_LIFETIME);
                    assert!(granted <= l.max(DEFAULT_LIFETIME as u32));
                    self.model[c].expires = Some(now + Duration::from_secs(u64::from(granted)));
                }
            }
            Op::Permission(c, p) => {
                let had = self.alive(c);
                let r = self.clients[c].create_permission(&mut self.h, &[peer(p)]);
                let want = if !had {
                    Err(437)
                } else {
                    peer_error(peer(p)).map_or(Ok(()), Err)
                };
                assert_eq!(r, want, "CreatePermission for {}", peer(p));
                if r.is_ok() {
                    self.model[c]
                        .permissions
                        .insert(peer(p).ip(), now + PERMISSION_LIFETIME);
                }
            }
            Op::ChannelBind(c, n, p) => {
                let had = self.alive(c);
                let pa = peer(p);
                let r = self.clients[c].channel_bind(&mut self.h, n, pa);
                let m = &mut self.model[c];
                let blocking = |e: &Instant| now < *e + COOLDOWN;
                // RFC 8656 §12.2, in the order the checks apply.
                let want = if !had {
                    Err(437)
                } else if !(0x4000..=0x7FFF).contains(&n) {
                    Err(400)
                } else if let Some(code) = peer_error(pa) {
                    Err(code)
                } else {
                    let same_number = m
                        .channels
                        .iter()
                        .position(|(cn, _, e)| *cn == n && blocking(e));
                    let same_peer = m
                        .channels
                        .iter()
                        .position(|(_, cp, e)| *cp == pa && blocking(e));
                    match (same_number, same_peer) {
                        (Some(a), Some(b)) if a == b => Ok(Some(a)),
                        (None, None) => Ok(None),
                        _ => Err(400),
                    }
                };
                assert_eq!(r, want.map(|_| ()), "ChannelBind {n:#06x} to {pa}");
                if let Ok(slot) = want {
                    let end = now + CHANNEL_LIFETIME;
                    match slot {
                        Some(i) => m.channels[i].2 = end,
                        None => {
                            m.channels.retain(|(_, _, e)| blocking(e));
                            m.channels.push((n, pa, end));
                        }
                    }
                    m.permissions.insert(pa.ip(), now + PERMISSION_LIFETIME);
                }
            }
            Op::ChannelData(c, n, len) => {
                let payload = vec![0x5A; len];
                let bytes = Client::channel_data(n, &payload);
                let tuple = self.clients[c].tuple;
                let out = feed(&mut self.h, &self.clients, tuple, &bytes);
                let m = &self.model[c];
                // RFC 8656 §12.6: a live channel and a live permission.
                let want = self
                    .alive(c)
                    .then(|| m.live_channel(n, now))
                    .flatten()
                    .filter(|p| m.permitted(p.ip(), now));
                match (out, want) {
                    (ClientOutcome::Forward(f), Some(p)) => {
                        assert_eq!(f.to, p);
                        assert_eq!(Some(f.from), m.relay);
                    }
                    (ClientOutcome::Dropped(_), None) => {}
                    (out, want) => panic!("ChannelData {n:#06x}: got {out:?}, model says {want:?}"),
                }
            }
            Op::Send(c, p, len) => {
                let payload = vec![0xA5; len];
                let bytes = self.clients[c].send_indication(peer(p), &payload);
                let tuple = self.clients[c].tuple;
                let out = feed(&mut self.h, &self.clients, tuple, &bytes);
                let m = &self.model[c];
                // RFC 8656 §11.2: a permission for the peer's IP.
                let want = self.alive(c) && peer(p).is_ipv4() && m.permitted(peer(p).ip(), now);
                match out {
                    ClientOutcome::Forward(f) => {
                        assert!(want, "Send to {} forwarded without a permission", peer(p));
                        assert_eq!(f.to, peer(p));
                        assert_eq!(Some(f.from), m.relay);
                    }
                    ClientOutcome::Dropped(_) => assert!(!want, "Send to {} dropped", peer(p)),
                    ClientOutcome::Handled => panic!("a Send indication is not a request"),
                }
            }
            Op::FromPeer(p, c, len) => {
                let from = peer(p);
                // The client's relay, or one that was never allocated.
                let relay = self.model[c].relay.unwrap_or_else(|| addr("127.0.0.1:1"));
                let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let out = self.h.peer_sends(relay, from, &payload);
                let m = &self.model[c];
                // RFC 8656 §11.3 / §12.7: a live allocation and a permission;
                // a channel bound to this exact peer frames it as ChannelData.
                let live = self.alive(c) && m.expires.is_some_and(|e| now < e);
                let want = live && m.permitted(from.ip(), now);
                match out {
                    Some((to, framed)) => {
                        assert!(want, "peer {from} delivered without permission");
                        assert_eq!(to, self.clients[c].tuple.client);
                        let channel = m.channel_for(from, now);
                        check_framed(&framed, 0..framed.len(), &payload, from, channel, false);
                    }
                    None => assert!(!want, "peer {from} dropped despite a permission"),
                }
            }
            Op::Binding(c) => {
                let resp = self.clients[c].transact(&mut self.h, Method::BINDING, &[]);
                assert!(resp.is_success());
                assert_eq!(
                    resp.msg().get::<XorMappedAddress>().unwrap().unwrap().0,
                    self.clients[c].tuple.client
                );
            }
            Op::Advance(ms) => self.h.advance(Duration::from_millis(ms)),
        }
        self.sync();
    }
}

fn run_sequence(ops: &[Op], strict_expiry: bool) {
    let mut sim = Sim::new(strict_expiry);
    for op in ops {
        sim.run(op);
    }
    // RFC 8656 §7: with no refresh, nothing outlives the maximum lifetime.
    sim.h.advance(Duration::from_secs(MAX_LIFETIME + 1));
    assert_eq!(
        sim.h.server.allocation_count(),
        0,
        "allocations after the max lifetime"
    );
    assert!(
        sim.h.open_relays.is_empty(),
        "relay sockets after the max lifetime"
    );
    sim.sync();
}

proptest! {
    #![proptest_config(config(160, 0x7e57_0004))]

    /// RFC 8656 §7–§12: random Allocate / Refresh (LIFETIME 0 included) /
    /// CreatePermission / ChannelBind / data both ways / clock jumps for three
    /// clients agree with a model of allocations, permissions and channels;
    /// the table always matches the open relays; and past the maximum
    /// lifetime with no refresh, nothing is left.
    #[test]
    fn rfc8656_7_random_operation_sequences_keep_the_table_consistent(
        ops in vec(op(), 1..60),
    ) {
        run_sequence(&ops, false);
    }
}

proptest! {
    #![proptest_config(config(160, 0x7e57_0005))]

    /// RFC 8656 §8.2: the same sequences, also requiring each allocation to
    /// be gone as soon as the lifetime granted by its last Allocate/Refresh
    /// has passed (not just by the maximum lifetime).
    #[test]
    fn rfc8656_8_2_random_sequences_expire_exactly_when_granted(
        ops in vec(op(), 1..60),
    ) {
        run_sequence(&ops, true);
    }
}

// ====================================================================== found bugs

/// RFC 8656 §8.2 (RFC 5766 §7.2): a Refresh's "desired lifetime" is
/// min(requested, maximum), raised to the default lifetime when below it.
#[test]
fn rfc8656_8_2_refresh_below_the_default_lifetime_gets_the_default() {
    let mut h = Harness::new(test_config());
    let mut c = client(0);
    c.allocate(&mut h).unwrap();
    assert_eq!(c.refresh(&mut h, 30), Ok(600));
}

/// RFC 8656 §8.2: the allocation lives for the lifetime the Refresh granted.
/// A Refresh that shortens it leaves the old timer in the heap, so the
/// allocation stays (relay socket open, 437 to a new Allocate, client data
/// still relayed, a later Refresh resurrects it) until the old deadline.
#[test]
fn rfc8656_8_2_refresh_that_shortens_the_lifetime_expires_on_time() {
    let mut h = Harness::new(test_config());
    let mut c = client(0);
    let udp = ringturn::stun::RequestedTransport(ringturn::stun::TransportProtocol::UDP);
    let resp = c.transact(&mut h, Method::ALLOCATE, &[&udp, &Lifetime(3600)]);
    assert_eq!(resp.msg().get::<Lifetime>().unwrap().unwrap().0, 3600);
    assert_eq!(c.refresh(&mut h, 600), Ok(600));
    h.advance(Duration::from_secs(601));
    assert_eq!(
        h.server.allocation_count(),
        0,
        "allocation outlived its 600 s"
    );
    assert!(h.open_relays.is_empty());
}

/// RFC 8656 §10.2: the server installs the permissions only "if the message is
/// valid and the server is capable of carrying out the request"; a 508 must
/// leave no permission behind (the handler's own doc says "all or nothing").
#[test]
fn rfc8656_10_2_create_permission_508_installs_nothing() {
    let mut h = Harness::new(ServerConfig {
        max_permissions_per_allocation: 1,
        ..loopback_config(false)
    });
    let mut c = client(0);
    let relay = c.allocate(&mut h).unwrap();
    assert_eq!(c.create_permission(&mut h, &[peer(0), peer(2)]), Err(508));
    assert_eq!(
        h.peer_sends(relay, peer(0), b"x"),
        None,
        "a permission from the refused request is live"
    );
}

/// RFC 8656 §12.2: binding a channel installs or refreshes the peer's
/// permission; when that is beyond capacity the answer is 508. The server
/// answers success, binds the channel, and installs no permission, so the
/// channel it confirmed silently drops everything.
#[test]
fn rfc8656_12_2_channel_bind_with_permissions_full_is_508_or_works() {
    let mut h = Harness::new(ServerConfig {
        max_permissions_per_allocation: 1,
        ..loopback_config(false)
    });
    let mut c = client(0);
    let relay = c.allocate(&mut h).unwrap();
    c.create_permission(&mut h, &[peer(0)]).unwrap();
    match c.channel_bind(&mut h, 0x4000, peer(2)) {
        Err(code) => assert_eq!(code, 508),
        Ok(()) => {
            let out = h.input(c.tuple, &Client::channel_data(0x4000, b"hello"));
            assert!(
                matches!(out, ClientOutcome::Forward(_)),
                "the confirmed channel drops data: {out:?}"
            );
            assert!(h.peer_sends(relay, peer(2), b"x").is_some());
        }
    }
}
