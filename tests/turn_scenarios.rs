//! Scenario tests of the sans-IO TURN core on a virtual clock: whole flows as
//! a client drives them, expiry by moving the clock, never by sleeping.

mod common;

use std::time::Duration;

use common::*;
use ringturn::auth::{Credentials, RestApi};
use ringturn::stun::{
    AttributeType, ChannelData, Class, Data, ErrorCodeAttr, EvenPort, Lifetime, MappedAddress,
    Message, MessageType, MessageWriter, Method, PasswordAlgorithm, PasswordAlgorithmsList,
    RequestedTransport, ReservationToken, TransactionId, TransportProtocol, UnknownAttributes,
    XorMappedAddress, XorPeerAddress, XorRelayedAddress,
};
use ringturn::turn::{ClientOutcome, PeerPolicy, ServerConfig};

fn loopback_ok() -> ServerConfig {
    ServerConfig {
        peer_policy: PeerPolicy {
            allow_loopback: true,
            ..Default::default()
        },
        ..test_config()
    }
}

const PEER: &str = "127.0.0.2:40000";

#[test]
fn rfc8489_7_3_binding_reflects_the_client_address() {
    let mut h = Harness::new(test_config());
    let mut c = Client::new("192.0.2.10:5555", "alice", "secret");
    let tid = c.fresh_tid();
    let resp = c
        .send_raw(&mut h, &c.build(Method::BINDING, tid, &[]))
        .unwrap();
    assert!(resp.is_success());
    assert_eq!(
        resp.msg().get::<XorMappedAddress>().unwrap().unwrap().0,
        addr("192.0.2.10:5555")
    );
    assert!(resp.msg().has(AttributeType::SOFTWARE));
}

#[test]
fn rfc8489_appendix_a_rfc3489_client_gets_mapped_address() {
    let mut h = Harness::new(test_config());
    let c = Client::new("192.0.2.10:5555", "alice", "secret");
    // An RFC 3489 request: no magic cookie, a 128-bit transaction id.
    let mut req = vec![0x00, 0x01, 0x00, 0x00];
    req.extend_from_slice(&[9u8; 16]);
    let out = h.input(c.tuple, &req);
    assert_eq!(out, ClientOutcome::Handled);
    let t = h.drain().pop().unwrap();
    let m = Message::parse(&t.payload).unwrap();
    assert!(m.is_classic());
    assert_eq!(
        &t.payload[4..20],
        &[9u8; 16],
        "the whole 128-bit id is echoed"
    );
    assert_eq!(
        m.get::<MappedAddress>().unwrap().unwrap().0,
        addr("192.0.2.10:5555")
    );
}

#[test]
fn rfc8656_full_flow_allocate_permission_channel_data_refresh_expiry() {
    let mut h = Harness::new(loopback_ok());
    let mut c = Client::new("192.0.2.10:5555", "alice", "secret");
    let peer = addr(PEER);

    // Allocate without credentials: 401 with REALM and NONCE.
    let tid = c.fresh_tid();
    let first = c
        .send_raw(
            &mut h,
            &c.build(
                Method::ALLOCATE,
                tid,
                &[&RequestedTransport(TransportProtocol::UDP)],
            ),
        )
        .unwrap();
    assert_eq!(first.error_code(), Some(401));
    assert!(first.msg().has(AttributeType::REALM) && first.msg().has(AttributeType::NONCE));
    assert!(first.msg().has(AttributeType::PASSWORD_ALGORITHMS));
    assert!(
        !first.msg().has(AttributeType::MESSAGE_INTEGRITY),
        "RFC 8489 §9.2.4: no integrity on a 401"
    );

    // Then with credentials.
    let relayed = c.allocate(&mut h).unwrap();
    assert_eq!(relayed.ip(), addr("127.0.0.1:0").ip());
    assert!((50000..=50999).contains(&relayed.port()));
    assert_eq!(h.open_relays, vec![relayed]);
    assert_eq!(h.server.allocation_count(), 1);

    c.create_permission(&mut h, &[peer]).unwrap();
    c.channel_bind(&mut h, 0x4001, peer).unwrap();

    // Client → peer over the channel: forwarded from the relay address, payload in place.
    let cd = Client::channel_data(0x4001, b"hello peer");
    match h.input(c.tuple, &cd) {
        ClientOutcome::Forward(f) => {
            assert_eq!((f.from, f.to), (relayed, peer));
            assert_eq!(&cd[f.range], b"hello peer");
        }
        other => panic!("expected a forward, got {other:?}"),
    }
    // Peer → client: framed as ChannelData in place.
    let (to, framed) = h.peer_sends(relayed, peer, b"hello client").unwrap();
    assert_eq!(to, c.tuple.client);
    let parsed = ChannelData::parse(&framed).unwrap();
    assert_eq!(
        (parsed.channel.0, parsed.data),
        (0x4001, &b"hello client"[..])
    );

    // Send indication to a permitted peer on another port, Data indication back.
    let other_port = addr("127.0.0.2:40001");
    let ind = c.send_indication(other_port, b"via send");
    match h.input(c.tuple, &ind) {
        ClientOutcome::Forward(f) => {
            assert_eq!(f.to, other_port);
            assert_eq!(&ind[f.range], b"via send");
        }
        other => panic!("expected a forward, got {other:?}"),
    }
    let (_, framed) = h.peer_sends(relayed, other_port, b"data!").unwrap();
    let m = Message::parse(&framed).unwrap();
    assert_eq!(
        m.message_type(),
        MessageType::new(Method::DATA, Class::Indication)
    );
    assert_eq!(m.get::<XorPeerAddress>().unwrap().unwrap().0, other_port);
    assert_eq!(m.get::<Data>().unwrap().unwrap().0, b"data!");

    // Refresh keeps it alive past the first lifetime.
    assert_eq!(c.refresh(&mut h, 600), Ok(600));
    h.advance(Duration::from_secs(500));
    assert_eq!(c.refresh(&mut h, 600), Ok(600));
    h.advance(Duration::from_secs(500));
    assert_eq!(h.server.allocation_count(), 1);

    // Without refresh it expires, and its relay socket is closed.
    h.advance(Duration::from_secs(601));
    assert_eq!(h.server.allocation_count(), 0);
    assert!(h.open_relays.is_empty());
    assert_eq!(h.peer_sends(relayed, peer, b"late"), None);
    assert_eq!(c.refresh(&mut h, 600), Err(437));
}

#[test]
fn rfc8656_9_permission_expires_after_300_seconds() {
    let mut h = Harness::new(loopback_ok());
    let mut c = Client::new("192.0.2.10:5555", "alice", "secret");
    let relayed = c.allocate(&mut h).unwrap();
    let peer = addr(PEER);
    c.create_permission(&mut h, &[peer]).unwrap();
    assert!(h.peer_sends(relayed, peer, b"x").is_some());
    // Permissions match the IP only (RFC 8656 §9): another port of the same host gets through.
    assert!(h.peer_sends(relayed, addr("127.0.0.2:1"), b"x").is_some());
    assert!(h.peer_sends(relayed, addr("127.0.0.3:1"), b"x").is_none());
    h.advance(Duration::from_secs(299));
    assert!(h.peer_sends(relayed, peer, b"x").is_some());
    h.advance(Duration::from_secs(2));
    assert!(h.peer_sends(relayed, peer, b"x").is_none());
    assert!(matches!(
        h.input(c.tuple, &c.send_indication(peer, b"x")),
        ClientOutcome::Dropped(_)
    ));
    // CreatePermission brings it back.
    c.create_permission(&mut h, &[peer]).unwrap();
    assert!(h.peer_sends(relayed, peer, b"x").is_some());
}

#[test]
fn rfc8656_12_channel_expires_and_its_number_cools_down() {
    let mut h = Harness::new(loopback_ok());
    let mut c = Client::new("192.0.2.10:5555", "alice", "secret");
    let relayed = c.allocate(&mut h).unwrap();
    let peer = addr(PEER);
    let other = addr("127.0.0.3:40000");
    c.channel_bind(&mut h, 0x4000, peer).unwrap();
    // §11: a number belongs to one peer, a peer to one number.
    assert_eq!(c.channel_bind(&mut h, 0x4000, other), Err(400));
    assert_eq!(c.channel_bind(&mut h, 0x4002, peer), Err(400));
    // Rebinding the same pair refreshes it.
    assert_eq!(c.channel_bind(&mut h, 0x4000, peer), Ok(()));

    // Keep the permission alive, let the channel lapse.
    for _ in 0..3 {
        h.advance(Duration::from_secs(200));
        c.create_permission(&mut h, &[peer]).unwrap();
        c.refresh(&mut h, 600).unwrap();
    }
    h.advance(Duration::from_secs(1));
    assert!(matches!(
        h.input(c.tuple, &Client::channel_data(0x4000, b"x")),
        ClientOutcome::Dropped(_)
    ));
    // The peer's data now arrives as a Data indication.
    let (_, framed) = h.peer_sends(relayed, peer, b"x").unwrap();
    assert!(Message::parse(&framed).is_ok());
    // Within 5 minutes of expiry the number cannot go to another peer...
    c.create_permission(&mut h, &[other]).unwrap();
    assert_eq!(c.channel_bind(&mut h, 0x4000, other), Err(400));
    // ...after that it can.
    h.advance(Duration::from_secs(301));
    c.refresh(&mut h, 600).unwrap();
    c.create_permission(&mut h, &[other]).unwrap();
    assert_eq!(c.channel_bind(&mut h, 0x4000, other), Ok(()));
}

#[test]
fn rfc8656_7_2_lifetime_is_negotiated_within_default_and_max() {
    let mut h = Harness::new(test_config());
    let mut c = Client::new("192.0.2.10:5555", "alice", "secret");
    let resp = c.transact(
        &mut h,
        Method::ALLOCATE,
        &[
            &RequestedTransport(TransportProtocol::UDP),
            &Lifetime(100_000),
        ],
    );
    assert_eq!(resp.msg().get::<Lifetime>().unwrap().unwrap().0, 3600);
    let mut d = Client::new("192.0.2.11:5555", "alice", "secret");
    let resp = d.transact(
        &mut h,
        Method::ALLOCATE,
        &[&RequestedTransport(TransportProtocol::UDP), &Lifetime(30)],
    );
    assert_eq!(resp.msg().get::<Lifetime>().unwrap().unwrap().0, 600);
    assert_eq!(c.refresh(&mut h, 99_999), Ok(3600));
    assert_eq!(c.refresh(&mut h, 0), Ok(0));
    assert_eq!(h.server.allocation_count(), 1);
}

#[test]
fn rfc8656_7_2_stale_nonce_gets_438_and_a_fresh_nonce() {
    let mut h = Harness::new(ServerConfig {
        nonce_lifetime: Duration::from_secs(100),
        ..test_config()
    });
    let mut c = Client::new("192.0.2.10:5555", "alice", "secret");
    c.allocate(&mut h).unwrap();
    let old_nonce = c.nonce.clone();
    h.advance(Duration::from_secs(101));
    let tid = c.fresh_tid();
    let resp = c
        .send_raw(&mut h, &c.build(Method::REFRESH, tid, &[&Lifetime(600)]))
        .unwrap();
    assert_eq!(resp.error_code(), Some(438));
    let fresh = resp
        .msg()
        .get::<ringturn::stun::Nonce>()
        .unwrap()
        .unwrap()
        .0
        .to_owned();
    assert_ne!(Some(fresh), old_nonce);
    // The client's retry with the new nonce succeeds.
    assert_eq!(c.refresh(&mut h, 600), Ok(600));
}

#[test]
fn rfc8656_21_3_loopback_peer_is_forbidden_unless_allowed() {
    let mut h = Harness::new(test_config());
    let mut c = Client::new("192.0.2.10:5555", "alice", "secret");
    c.allocate(&mut h).unwrap();
    assert_eq!(c.create_permission(&mut h, &[addr(PEER)]), Err(403));
    assert_eq!(c.channel_bind(&mut h, 0x4000, addr(PEER)), Err(403));
    assert_eq!(
        c.create_permission(&mut h, &[addr("224.0.0.5:1")]),
        Err(403)
    );
    assert_eq!(
        c.create_permission(&mut h, &[addr("203.0.113.5:1")]),
        Ok(())
    );
    // All or nothing: one forbidden peer refuses the whole request.
    assert_eq!(
        c.create_permission(&mut h, &[addr("203.0.113.6:1"), addr(PEER)]),
        Err(403)
    );
    assert!(h
        .peer_sends(c.relayed.unwrap(), addr("203.0.113.6:1"), b"x")
        .is_none());

    let mut h = Harness::new(loopback_ok());
    let mut c = Client::new("192.0.2.10:5555", "alice", "secret");
    c.allocate(&mut h).unwrap();
    assert_eq!(c.create_permission(&mut h, &[addr(PEER)]), Ok(()));
    assert_eq!(
        c.create_permission(&mut h, &[addr("[::1]:5")]),
        Err(443),
        "family mismatch"
    );
}

/// Learns the nonce with an unauthenticated Binding-free 401 round.
fn learn_nonce(h: &mut Harness, c: &mut Client) {
    let tid = c.fresh_tid();
    let resp = c
        .send_raw(
            h,
            &c.build(
                Method::ALLOCATE,
                tid,
                &[&RequestedTransport(TransportProtocol::UDP)],
            ),
        )
        .unwrap();
    assert_eq!(resp.error_code(), Some(401));
    c.nonce = Some(
        resp.msg()
            .get::<ringturn::stun::Nonce>()
            .unwrap()
            .unwrap()
            .0
            .to_owned(),
    );
    c.realm = Some(REALM.to_owned());
}

#[test]
fn rfc8489_6_3_4_retransmissions_get_the_same_answer_without_acting_twice() {
    let mut h = Harness::new(loopback_ok());
    let mut c = Client::new("192.0.2.10:5555", "alice", "secret");
    learn_nonce(&mut h, &mut c);
    let tid = c.fresh_tid();
    let allocate = c.build(
        Method::ALLOCATE,
        tid,
        &[&RequestedTransport(TransportProtocol::UDP)],
    );
    let first = c.send_raw(&mut h, &allocate).unwrap();
    assert!(first.is_success());
    let again = c.send_raw(&mut h, &allocate).unwrap();
    assert_eq!(
        first.bytes, again.bytes,
        "RFC 8656 §7.2: a retransmitted Allocate gets the same success"
    );
    assert_eq!(h.server.allocation_count(), 1);
    assert_eq!(h.open_relays.len(), 1);
    // A new Allocate on the same 5-tuple is a mismatch.
    let tid2 = c.fresh_tid();
    let other = c
        .send_raw(
            &mut h,
            &c.build(
                Method::ALLOCATE,
                tid2,
                &[&RequestedTransport(TransportProtocol::UDP)],
            ),
        )
        .unwrap();
    assert_eq!(other.error_code(), Some(437));

    // Refresh(0) retransmitted after the deletion still gets its success, not 437.
    let tid3 = c.fresh_tid();
    let delete = c.build(Method::REFRESH, tid3, &[&Lifetime(0)]);
    let r1 = c.send_raw(&mut h, &delete).unwrap();
    let r2 = c.send_raw(&mut h, &delete).unwrap();
    assert!(r1.is_success());
    assert_eq!(r1.bytes, r2.bytes);
    assert_eq!(h.server.allocation_count(), 0);

    // The cache is bounded in time.
    h.advance(Duration::from_secs(41));
    let r3 = c.send_raw(&mut h, &delete).unwrap();
    assert_eq!(r3.error_code(), Some(437));
}

#[test]
fn rfc8656_7_2_user_and_total_quotas_answer_486() {
    let mut h = Harness::new(ServerConfig {
        user_quota: 2,
        total_quota: 3,
        ..test_config()
    });
    let mut a1 = Client::new("192.0.2.1:1", "alice", "secret");
    let mut a2 = Client::new("192.0.2.1:2", "alice", "secret");
    let mut a3 = Client::new("192.0.2.1:3", "alice", "secret");
    a1.allocate(&mut h).unwrap();
    a2.allocate(&mut h).unwrap();
    assert_eq!(a3.allocate(&mut h), Err(486));
    let mut b1 = Client::new("192.0.2.2:1", "bob", "hunter2");
    let mut b2 = Client::new("192.0.2.2:2", "bob", "hunter2");
    b1.allocate(&mut h).unwrap();
    assert_eq!(b2.allocate(&mut h), Err(486), "total quota");
    // Freeing one makes room again.
    assert_eq!(a1.refresh(&mut h, 0), Ok(0));
    assert!(a3.allocate(&mut h).is_ok());
}

#[test]
fn rfc8656_7_2_empty_port_pool_answers_508() {
    let mut h = Harness::new(ServerConfig {
        min_port: 50000,
        max_port: 50001,
        ..test_config()
    });
    let mut clients: Vec<Client> = (1..=3)
        .map(|i| Client::new(&format!("192.0.2.1:{i}"), "alice", "secret"))
        .collect();
    assert!(clients[0].allocate(&mut h).is_ok());
    assert!(clients[1].allocate(&mut h).is_ok());
    assert_eq!(clients[2].allocate(&mut h), Err(508));
    assert_eq!(clients[0].refresh(&mut h, 0), Ok(0));
    assert!(
        clients[2].allocate(&mut h).is_ok(),
        "the port went back to the pool"
    );
}

#[test]
fn relay_port_in_use_elsewhere_is_skipped_then_508() {
    let mut h = Harness::new(ServerConfig {
        min_port: 50000,
        max_port: 50003,
        ..test_config()
    });
    h.busy_ports = vec![50000, 50001, 50002];
    let mut c = Client::new("192.0.2.1:1", "alice", "secret");
    assert_eq!(c.allocate(&mut h).unwrap().port(), 50003);
    h.busy_ports.push(50003);
    let mut h2 = Harness::new(ServerConfig {
        min_port: 50000,
        max_port: 50003,
        relay_open_attempts: 3,
        ..test_config()
    });
    h2.busy_ports = vec![50000, 50001, 50002, 50003];
    let mut d = Client::new("192.0.2.1:2", "alice", "secret");
    assert_eq!(d.allocate(&mut h2), Err(508));
    assert_eq!(h2.server.allocation_count(), 0);
}

#[test]
fn rfc8489_9_2_4_wrong_password_gets_401_and_no_allocation() {
    let mut h = Harness::new(test_config());
    let mut c = Client::new("192.0.2.1:1", "alice", "wrong");
    assert_eq!(c.allocate(&mut h), Err(401));
    let mut d = Client::new("192.0.2.1:2", "mallory", "x");
    assert_eq!(d.allocate(&mut h), Err(401));
    assert_eq!(h.server.allocation_count(), 0);
    assert!(h.open_relays.is_empty());
}

#[test]
fn rfc8656_7_2_requested_transport_rules() {
    let mut h = Harness::new(test_config());
    let mut c = Client::new("192.0.2.1:1", "alice", "secret");
    let resp = c.transact(&mut h, Method::ALLOCATE, &[]);
    assert_eq!(resp.error_code(), Some(400));
    let resp = c.transact(
        &mut h,
        Method::ALLOCATE,
        &[&RequestedTransport(TransportProtocol(99))],
    );
    assert_eq!(resp.error_code(), Some(442));
    // Errors after authentication are signed (RFC 8489 §9.2.4).
    assert!(resp.msg().verify_message_integrity(&c.key()).is_ok());
    // RFC 6062 §5.1: TCP relaying needs a TCP or TLS client connection.
    let resp = c.transact(
        &mut h,
        Method::ALLOCATE,
        &[&RequestedTransport(TransportProtocol::TCP)],
    );
    assert_eq!(resp.error_code(), Some(400));
}

#[test]
fn rfc8489_6_3_1_unknown_comprehension_required_attribute_gets_420() {
    let mut h = Harness::new(test_config());
    let mut c = Client::new("192.0.2.1:1", "alice", "secret");
    let unknown = ringturn::stun::Attribute::Unknown {
        attr_type: AttributeType(0x7F01),
        value: b"??",
    };
    let optional = ringturn::stun::Attribute::Unknown {
        attr_type: AttributeType(0xC001),
        value: b"ok",
    };
    let tid = c.fresh_tid();
    let resp = c
        .send_raw(
            &mut h,
            &c.build(Method::BINDING, tid, &[&unknown, &optional]),
        )
        .unwrap();
    assert_eq!(resp.error_code(), Some(420));
    let list: Vec<AttributeType> = resp
        .msg()
        .get::<UnknownAttributes>()
        .unwrap()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(list, vec![AttributeType(0x7F01)]);
    // Comprehension-optional ones are ignored.
    let tid = c.fresh_tid();
    let resp = c
        .send_raw(&mut h, &c.build(Method::BINDING, tid, &[&optional]))
        .unwrap();
    assert!(resp.is_success());
}

#[test]
fn turn_rest_api_credentials_work_until_they_expire() {
    let mut creds = Credentials::new(REALM);
    let api = RestApi::new(vec![b"old-secret".to_vec(), b"new-secret".to_vec()], ':');
    creds.rest_api = Some(api.clone());
    let mut h = Harness::with_credentials(test_config(), creds);
    let (user, pass) = api.mint("alice", UNIX_START + 3600).unwrap();
    let mut c = Client::new("192.0.2.1:1", &user, &pass);
    assert!(c.allocate(&mut h).is_ok());
    // A credential from the second (rotated-in) secret works too.
    let rotated = RestApi::new(vec![b"new-secret".to_vec()], ':');
    let (user2, pass2) = rotated.mint("bob", UNIX_START + 3600).unwrap();
    assert!(Client::new("192.0.2.1:2", &user2, &pass2)
        .allocate(&mut h)
        .is_ok());
    // Expired usernames are refused.
    let (old_user, old_pass) = api.mint("carol", UNIX_START - 1).unwrap();
    assert_eq!(
        Client::new("192.0.2.1:3", &old_user, &old_pass).allocate(&mut h),
        Err(401)
    );
    // And one minted for an hour stops working after it.
    h.advance(Duration::from_secs(3601));
    assert_eq!(
        Client::new("192.0.2.1:4", &user, &pass).allocate(&mut h),
        Err(401)
    );
}

#[test]
fn rfc8656_7_2_even_port_reserves_the_next_port_for_a_token() {
    let mut h = Harness::new(test_config());
    let mut c = Client::new("192.0.2.1:1", "alice", "secret");
    let resp = c.transact(
        &mut h,
        Method::ALLOCATE,
        &[
            &RequestedTransport(TransportProtocol::UDP),
            &EvenPort { reserve_next: true },
        ],
    );
    assert!(resp.is_success());
    let relayed = resp.msg().get::<XorRelayedAddress>().unwrap().unwrap().0;
    assert_eq!(relayed.port() % 2, 0);
    let token = resp.msg().get::<ReservationToken>().unwrap().unwrap();
    let mut d = Client::new("192.0.2.1:2", "alice", "secret");
    let resp = d.transact(
        &mut h,
        Method::ALLOCATE,
        &[&RequestedTransport(TransportProtocol::UDP), &token],
    );
    assert_eq!(
        resp.msg()
            .get::<XorRelayedAddress>()
            .unwrap()
            .unwrap()
            .0
            .port(),
        relayed.port() + 1
    );
    // A token together with EVEN-PORT is a bad request.
    let mut e = Client::new("192.0.2.1:3", "alice", "secret");
    let resp = e.transact(
        &mut h,
        Method::ALLOCATE,
        &[
            &RequestedTransport(TransportProtocol::UDP),
            &token,
            &EvenPort {
                reserve_next: false,
            },
        ],
    );
    assert_eq!(resp.error_code(), Some(400));
}

#[test]
fn rfc8489_9_2_4_sha256_password_algorithm_with_integrity_sha256() {
    let mut h = Harness::new(test_config());
    let mut c = Client::new("192.0.2.1:1", "alice", "secret");
    learn_nonce(&mut h, &mut c);
    let key = ringturn::auth::keys::sha256_key("alice", REALM, "secret");
    let offered = [PasswordAlgorithm::MD5, PasswordAlgorithm::SHA256];
    let build = |c: &mut Client,
                 list: &[PasswordAlgorithm<'static>],
                 chosen: PasswordAlgorithm<'static>| {
        let tid = c.fresh_tid();
        let mut buf = vec![0u8; 512];
        let mut w = MessageWriter::new(
            &mut buf,
            MessageType::new(Method::ALLOCATE, Class::Request),
            tid,
        )
        .unwrap();
        w.add(&RequestedTransport(TransportProtocol::UDP)).unwrap();
        w.add(&ringturn::stun::Userhash(ringturn::auth::keys::userhash(
            "alice", REALM,
        )))
        .unwrap();
        w.add(&ringturn::stun::Realm(REALM)).unwrap();
        w.add(&ringturn::stun::Nonce(c.nonce.as_deref().unwrap()))
            .unwrap();
        w.add(&PasswordAlgorithmsList(list)).unwrap();
        w.add(&chosen).unwrap();
        w.add_message_integrity_sha256(&key).unwrap();
        let n = w.finish();
        buf.truncate(n);
        buf
    };
    // USERHASH instead of USERNAME, SHA-256 key, MESSAGE-INTEGRITY-SHA256.
    let req = build(&mut c, &offered, PasswordAlgorithm::SHA256);
    let resp = c.send_raw(&mut h, &req).unwrap();
    assert!(resp.is_success(), "got {:?}", resp.error_code());
    assert!(
        resp.msg().verify_message_integrity_sha256(&key).is_ok(),
        "answered in kind"
    );
    // A PASSWORD-ALGORITHMS list that is not what we offered: 400 (downgrade protection).
    let mut d = Client::new("192.0.2.1:2", "alice", "secret");
    learn_nonce(&mut h, &mut d);
    let req = build(
        &mut d,
        &[PasswordAlgorithm::SHA256],
        PasswordAlgorithm::SHA256,
    );
    assert_eq!(d.send_raw(&mut h, &req).unwrap().error_code(), Some(400));
}

#[test]
fn rfc8656_5_another_user_cannot_use_the_allocation_441() {
    let mut h = Harness::new(test_config());
    let mut c = Client::new("192.0.2.1:1", "alice", "secret");
    c.allocate(&mut h).unwrap();
    // Same 5-tuple, bob's valid credentials.
    let mut b = Client::new("192.0.2.1:1", "bob", "hunter2");
    assert_eq!(b.refresh(&mut h, 600), Err(441));
}

#[test]
fn rfc8656_12_channel_number_ranges() {
    let mut h = Harness::new(loopback_ok());
    let mut c = Client::new("192.0.2.1:1", "alice", "secret");
    c.allocate(&mut h).unwrap();
    assert_eq!(c.channel_bind(&mut h, 0x3FFF, addr(PEER)), Err(400));
    assert_eq!(c.channel_bind(&mut h, 0x8000, addr(PEER)), Err(400));
    // RFC 5766's wider range, used by coturn 4.6's uclient, is accepted by default.
    assert_eq!(c.channel_bind(&mut h, 0x7ABC, addr(PEER)), Ok(()));
    let out = h.input(c.tuple, &Client::channel_data(0x7ABC, b"wide"));
    assert!(matches!(out, ClientOutcome::Forward(_)));

    let strict = ServerConfig {
        channel_range: ringturn::stun::ChannelRange::Rfc8656,
        ..loopback_ok()
    };
    let mut h = Harness::new(strict);
    let mut c = Client::new("192.0.2.1:1", "alice", "secret");
    c.allocate(&mut h).unwrap();
    assert_eq!(c.channel_bind(&mut h, 0x5000, addr(PEER)), Err(400));
    assert_eq!(c.channel_bind(&mut h, 0x4FFF, addr(PEER)), Ok(()));
}

#[test]
fn data_without_allocation_or_channel_is_dropped() {
    let mut h = Harness::new(loopback_ok());
    let mut c = Client::new("192.0.2.1:1", "alice", "secret");
    assert!(matches!(
        h.input(c.tuple, &Client::channel_data(0x4000, b"x")),
        ClientOutcome::Dropped(_)
    ));
    let relayed = c.allocate(&mut h).unwrap();
    assert!(matches!(
        h.input(c.tuple, &Client::channel_data(0x4000, b"x")),
        ClientOutcome::Dropped(_)
    ));
    assert!(matches!(
        h.input(c.tuple, &c.send_indication(addr(PEER), b"x")),
        ClientOutcome::Dropped(_)
    ));
    assert!(h.peer_sends(relayed, addr(PEER), b"x").is_none());
    assert!(h
        .peer_sends(addr("127.0.0.1:1"), addr(PEER), b"x")
        .is_none());
    assert!(h.drain().is_empty(), "nothing is ever answered to data");
}

#[test]
fn responses_are_signed_and_fingerprinted_when_configured() {
    let mut h = Harness::new(ServerConfig {
        fingerprint: true,
        software: None,
        ..test_config()
    });
    let mut c = Client::new("192.0.2.1:1", "alice", "secret");
    let resp = c.transact(
        &mut h,
        Method::ALLOCATE,
        &[&RequestedTransport(TransportProtocol::UDP)],
    );
    let m = resp.msg();
    assert!(!m.is_classic() && resp.is_success());
    assert_eq!(m.verify_fingerprint(), Some(true));
    assert!(m.verify_message_integrity(&c.key()).is_ok());
    assert!(!m.has(AttributeType::SOFTWARE), "no-software-attribute");
    let _ = ErrorCodeAttr::new(ringturn::stun::ErrorCode::BAD_REQUEST);
    let _ = TransactionId([0; 12]);
}

#[test]
fn many_allocations_expire_through_the_timer_heap() {
    let mut h = Harness::new(ServerConfig {
        no_auth: true,
        min_port: 10000,
        max_port: 60000,
        ..test_config()
    });
    let req = |i: u32| {
        let mut buf = vec![0u8; 64];
        let mut t = [0u8; 12];
        t[..4].copy_from_slice(&i.to_be_bytes());
        let mut w = MessageWriter::new(
            &mut buf,
            MessageType::new(Method::ALLOCATE, Class::Request),
            TransactionId(t),
        )
        .unwrap();
        w.add(&RequestedTransport(TransportProtocol::UDP)).unwrap();
        let n = w.finish();
        buf.truncate(n);
        buf
    };
    for i in 0..5000u32 {
        let tuple = ringturn::turn::ClientTuple::udp(
            std::net::SocketAddr::new(std::net::Ipv4Addr::from(0x0a00_0000 + i).into(), 4000),
            server_addr(),
        );
        h.input(tuple, &req(i));
    }
    assert_eq!(h.drain().len(), 5000);
    assert_eq!(h.server.allocation_count(), 5000);
    h.advance(Duration::from_secs(599));
    assert_eq!(h.server.allocation_count(), 5000);
    h.advance(Duration::from_secs(2));
    assert_eq!(h.server.allocation_count(), 0);
    assert!(h.open_relays.is_empty());
}
