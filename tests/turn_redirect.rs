//! Allocations spread over nodes with ALTERNATE-SERVER (RFC 8489 §10, issue
//! 14) on the sans-IO core: coturn's `alternate-server` answers an
//! authenticated Allocate 300 (Try Alternate), signed, naming the next
//! alternate round robin; `max-allocations-before-redirect` redirects only
//! once the node holds that many. The real clients' view is in
//! `interop_coturn_clients.rs` (uclient) and `interop_chromium.rs`.

mod common;

use common::*;
use ringturn::stun::{
    AlternateServer, EvenPort, Method, RequestedTransport, ReservationToken, TransportProtocol,
};
use ringturn::turn::{Redirect, ServerConfig};

fn redirecting(from_allocations: usize) -> ServerConfig {
    ServerConfig {
        redirect: Redirect {
            alternates: vec![addr("192.0.2.200:3478"), addr("192.0.2.201:3478")],
            tls_alternates: vec![],
            tls_port: None,
            from_allocations,
        },
        ..test_config()
    }
}

fn allocate_request(c: &mut Client) -> Vec<u8> {
    let tid = c.fresh_tid();
    c.build(
        Method::ALLOCATE,
        tid,
        &[&RequestedTransport(TransportProtocol::UDP)],
    )
}

#[test]
fn rfc8489_10_authenticated_allocate_gets_a_signed_300_round_robin() {
    let mut h = Harness::new(redirecting(0));
    let mut c = Client::new("198.51.100.10:5555", "alice", "secret");

    // §10: never to a request without MESSAGE-INTEGRITY: that one is challenged.
    let req = allocate_request(&mut c);
    let first = c.send_raw(&mut h, &req).unwrap();
    assert_eq!(first.error_code(), Some(401));

    let resp = c.transact(
        &mut h,
        Method::ALLOCATE,
        &[&RequestedTransport(TransportProtocol::UDP)],
    );
    assert_eq!(resp.error_code(), Some(300));
    let m = resp.msg();
    assert!(
        m.verify_message_integrity(&c.key()).is_ok(),
        "§10: the 300 is protected with MESSAGE-INTEGRITY"
    );
    assert_eq!(
        m.get::<AlternateServer>().unwrap().unwrap().0,
        addr("192.0.2.200:3478")
    );
    assert_eq!(h.server.allocation_count(), 0, "nothing allocated here");
    assert!(h.open_relays.is_empty());

    // The next Allocate goes to the next alternate, and round again.
    let next: Vec<_> = (0..3)
        .map(|i| {
            let mut d = Client::new(&format!("198.51.100.11:{}", 6000 + i), "bob", "hunter2");
            let r = d.transact(
                &mut h,
                Method::ALLOCATE,
                &[&RequestedTransport(TransportProtocol::UDP)],
            );
            r.msg().get::<AlternateServer>().unwrap().unwrap().0
        })
        .collect();
    assert_eq!(
        next,
        [
            addr("192.0.2.201:3478"),
            addr("192.0.2.200:3478"),
            addr("192.0.2.201:3478")
        ]
    );
}

#[test]
fn rfc8489_6_3_4_a_retransmitted_allocate_gets_the_same_300() {
    let mut h = Harness::new(redirecting(0));
    let mut c = Client::new("198.51.100.10:5555", "alice", "secret");
    // Learn the nonce, then send one signed Allocate twice.
    let req = allocate_request(&mut c);
    let challenge = c.send_raw(&mut h, &req).unwrap();
    let m = challenge.msg();
    c.nonce = Some(
        m.get::<ringturn::stun::Nonce>()
            .unwrap()
            .unwrap()
            .0
            .to_owned(),
    );
    c.realm = Some(REALM.to_owned());
    let signed = allocate_request(&mut c);
    let a = c.send_raw(&mut h, &signed).unwrap();
    let b = c.send_raw(&mut h, &signed).unwrap();
    assert_eq!(a.error_code(), Some(300));
    assert_eq!(a.bytes, b.bytes, "the same answer, the same alternate");
    let mut d = Client::new("198.51.100.12:5555", "bob", "hunter2");
    let r = d.transact(
        &mut h,
        Method::ALLOCATE,
        &[&RequestedTransport(TransportProtocol::UDP)],
    );
    assert_eq!(
        r.msg().get::<AlternateServer>().unwrap().unwrap().0,
        addr("192.0.2.201:3478"),
        "the retransmission did not advance the round robin"
    );
}

#[test]
fn max_allocations_before_redirect_sheds_load_only_once_the_node_holds_that_many() {
    let mut h = Harness::new(ServerConfig {
        peer_policy: ringturn::turn::PeerPolicy {
            allow_loopback: true,
            ..Default::default()
        },
        ..redirecting(2)
    });
    let mut a = Client::new("198.51.100.1:1", "alice", "secret");
    let mut b = Client::new("198.51.100.1:2", "alice", "secret");
    let mut c = Client::new("198.51.100.1:3", "bob", "hunter2");
    assert!(a.allocate(&mut h).is_ok());
    assert!(b.allocate(&mut h).is_ok());
    assert_eq!(
        c.allocate(&mut h),
        Err(300),
        "full: the third goes elsewhere"
    );
    // Requests on allocations the node holds are never redirected.
    assert_eq!(a.refresh(&mut h, 600), Ok(600));
    assert_eq!(
        a.create_permission(&mut h, &[addr("127.0.0.2:40000")]),
        Ok(())
    );
    // One freed: the node takes the next one itself.
    assert_eq!(b.refresh(&mut h, 0), Ok(0));
    assert!(c.allocate(&mut h).is_ok());
    assert_eq!(h.server.allocation_count(), 2);
}

#[test]
fn without_credentials_nothing_is_redirected() {
    // `no-auth`: a 300 would be unsigned, which §10 forbids; allocate here.
    let mut h = Harness::new(ServerConfig {
        no_auth: true,
        ..redirecting(0)
    });
    let mut c = Client::new("198.51.100.10:5555", "", "");
    let req = allocate_request(&mut c);
    let resp = c.send_raw(&mut h, &req).expect("an answer");
    assert!(resp.is_success(), "{:?}", resp.error_code());
}

#[test]
fn rfc8656_7_2_an_allocate_with_a_reservation_token_is_never_redirected() {
    // The reserved port is on this node; another node knows nothing of it.
    let mut h = Harness::new(redirecting(1));
    let mut c = Client::new("198.51.100.1:1", "alice", "secret");
    let resp = c.transact(
        &mut h,
        Method::ALLOCATE,
        &[
            &RequestedTransport(TransportProtocol::UDP),
            &EvenPort { reserve_next: true },
        ],
    );
    assert!(resp.is_success());
    let token = resp.msg().get::<ReservationToken>().unwrap().unwrap();
    let mut d = Client::new("198.51.100.1:2", "alice", "secret");
    let resp = d.transact(
        &mut h,
        Method::ALLOCATE,
        &[&RequestedTransport(TransportProtocol::UDP), &token],
    );
    assert!(resp.is_success(), "{:?}", resp.error_code());
    let mut e = Client::new("198.51.100.1:3", "bob", "hunter2");
    assert_eq!(
        e.allocate(&mut h),
        Err(300),
        "the node is over its threshold"
    );
}

#[test]
fn rfc8489_9_2_4_a_foreign_nonce_gets_438_a_shared_key_nonce_is_taken_as_it_is() {
    // What a browser does after a 300: the same request, with the nonce it
    // has, to node B — whose nonces come from another key.
    let mut a = Harness::new(redirecting(0));
    let mut b = Harness::with_nonce_key(test_config(), test_credentials(), [7; 32]);
    let mut c = Client::new("198.51.100.10:5555", "alice", "secret");
    let resp = c.transact(
        &mut a,
        Method::ALLOCATE,
        &[&RequestedTransport(TransportProtocol::UDP)],
    );
    assert_eq!(resp.error_code(), Some(300));
    let req = allocate_request(&mut c);
    let at_b = c.send_raw(&mut b, &req).unwrap();
    assert_eq!(
        at_b.error_code(),
        Some(438),
        "a nonce B cannot vouch for is stale, not a wrong password"
    );
    assert!(at_b.msg().get::<ringturn::stun::Nonce>().is_some());
    // transact takes the fresh nonce from the 438 and retries.
    assert!(c.allocate(&mut b).is_ok());
    assert_eq!(b.server.allocation_count(), 1);

    // Nodes with one nonce key (derived from their shared REST secret) take
    // each other's nonces: the redirected request succeeds as it is, which
    // is what browsers need (they stop at B's first error).
    let mut shared = Harness::new(test_config());
    let mut d = Client::new("198.51.100.11:5555", "bob", "hunter2");
    let resp = d.transact(
        &mut a,
        Method::ALLOCATE,
        &[&RequestedTransport(TransportProtocol::UDP)],
    );
    assert_eq!(resp.error_code(), Some(300));
    let req = allocate_request(&mut d);
    let at_shared = d.send_raw(&mut shared, &req).unwrap();
    assert!(at_shared.is_success(), "{:?}", at_shared.error_code());
}
