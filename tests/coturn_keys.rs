//! What coturn's keys do, on the virtual clock (issue 12): `secure-stun`,
//! `keep-address-family` / `allocation-default-address-family`, `max-bps`,
//! `bps-capacity`, `no-loopback-peers` (the session log lines are in
//! `session_log.rs`, a process of their own for the log capture). The same keys run end to end with coturn's clients in
//! `coturn_dropin.rs`.

mod common;

use std::time::Duration;

use common::{addr, Client, Harness};
use ringturn::stun::{AttributeType, Class, Method};
use ringturn::turn::{ClientOutcome, DefaultFamily, DropReason, ServerConfig};

fn config() -> ServerConfig {
    ServerConfig {
        relay_ips: vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
        ..common::test_config()
    }
}

/// coturn's `secure-stun`: a Binding without credentials gets 401 with a
/// nonce, and with them an answer signed with the user's key.
#[test]
fn secure_stun_binding_needs_credentials() {
    let mut h = Harness::new(ServerConfig {
        secure_stun: true,
        ..config()
    });
    let mut c = Client::new("192.0.2.1:5000", "alice", "secret");
    let tid = c.fresh_tid();
    let plain = c.build(Method::BINDING, tid, &[]);
    let resp = c.send_raw(&mut h, &plain).expect("an answer");
    assert_eq!(resp.error_code(), Some(401), "no credentials: 401");
    assert!(resp.msg().has(AttributeType::NONCE) && resp.msg().has(AttributeType::REALM));
    let resp = c.transact(&mut h, Method::BINDING, &[]);
    assert_eq!(resp.class(), Class::SuccessResponse);
    assert!(resp.msg().has(AttributeType::XOR_MAPPED_ADDRESS));
    assert!(
        resp.msg().verify_integrity(&c.key()).is_ok(),
        "signed with the user's key"
    );
    // A wrong password gets no mapped address.
    let mut wrong = Client::new("192.0.2.2:5000", "alice", "nope");
    let resp = wrong.transact(&mut h, Method::BINDING, &[]);
    assert_eq!(resp.error_code(), Some(401));

    // Without secure-stun (coturn's default) Binding stays open.
    let mut h = Harness::new(config());
    let mut c = Client::new("192.0.2.1:5000", "alice", "secret");
    let tid = c.fresh_tid();
    let plain = c.build(Method::BINDING, tid, &[]);
    assert_eq!(
        c.send_raw(&mut h, &plain).unwrap().class(),
        Class::SuccessResponse
    );
}

/// RFC 8656 §7.2 gives IPv4 without REQUESTED-ADDRESS-FAMILY; coturn's
/// `keep-address-family` gives the family the client came in on.
#[test]
fn keep_address_family_relays_in_the_clients_family() {
    let relayed_family = |family: DefaultFamily, client: &str| {
        let mut h = Harness::new(ServerConfig {
            default_family: family,
            ..config()
        });
        let mut c = Client::new(client, "alice", "secret");
        c.tuple.server = if client.starts_with('[') {
            addr("[::1]:3478")
        } else {
            common::server_addr()
        };
        let relayed = c.allocate(&mut h).expect("allocated");
        h.run_commands();
        relayed.is_ipv6()
    };
    assert!(!relayed_family(DefaultFamily::Ipv4, "[2001:db8::1]:5000"));
    assert!(relayed_family(DefaultFamily::Keep, "[2001:db8::1]:5000"));
    assert!(!relayed_family(DefaultFamily::Keep, "192.0.2.1:5000"));
    assert!(relayed_family(DefaultFamily::Ipv6, "192.0.2.1:5000"));
}

/// Relays `n` ChannelData datagrams of `size` bytes at `per_second` over the
/// virtual clock; returns how many were forwarded and how many dropped for
/// the rate.
fn offer(h: &mut Harness, c: &Client, per_second: u32, n: u32, size: usize) -> (u32, u32) {
    let frame = Client::channel_data(0x4000, &vec![7u8; size]);
    let gap = Duration::from_secs(1) / per_second;
    let (mut passed, mut limited) = (0, 0);
    for _ in 0..n {
        h.now += gap;
        match h.server.handle_client_datagram(h.now, c.tuple, &frame) {
            ClientOutcome::Forward(_) => passed += 1,
            ClientOutcome::Dropped(DropReason::RateLimited) => limited += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    (passed, limited)
}

fn bound_client(h: &mut Harness, name: &str) -> Client {
    let mut c = Client::new(name, "alice", "secret");
    c.allocate(h).expect("allocated");
    let peer = addr("192.0.2.200:7000");
    c.channel_bind(h, 0x4000, peer).expect("bound");
    h.drain();
    c
}

/// coturn's `max-bps`: each allocation relays at most that many bytes a
/// second each way (plus a second's burst); the rest is dropped and counted.
#[test]
fn max_bps_caps_each_allocation_each_way() {
    let mut h = Harness::new(ServerConfig {
        max_bps: 10_000,
        ..config()
    });
    let c = bound_client(&mut h, "192.0.2.1:5000");
    // 100 datagrams of 200 bytes a second (20 kB/s) for 10 s.
    let (passed, limited) = offer(&mut h, &c, 100, 1000, 200);
    let bytes = u64::from(passed) * 200;
    assert!(
        (100_000..=112_000).contains(&bytes),
        "≈ 10 s × 10 kB/s + a second's burst passed, got {bytes}"
    );
    assert_eq!(passed + limited, 1000);
    assert_eq!(
        h.server.stats().drops[DropReason::RateLimited.index()],
        u64::from(limited)
    );
    // Peer → client is limited on its own bucket.
    let relay = c.relayed.unwrap();
    let peer = addr("192.0.2.200:7000");
    let mut delivered = 0;
    for _ in 0..200 {
        h.now += Duration::from_millis(10);
        if h.peer_sends(relay, peer, &[1u8; 200]).is_some() {
            delivered += 1;
        }
    }
    // 2 s at 20 kB/s offered: 2 × 10 kB + the burst left.
    assert!((100..=160).contains(&delivered), "{delivered} of 200");

    // Another allocation has buckets of its own.
    let d = bound_client(&mut h, "192.0.2.2:5000");
    let (passed, _) = offer(&mut h, &d, 10, 20, 200);
    assert_eq!(passed, 20, "4 kB over 2 s is under the limit");
}

/// coturn's `bps-capacity`: all allocations together (this worker's share).
#[test]
fn bps_capacity_caps_the_server() {
    let mut h = Harness::new(ServerConfig {
        bps_capacity: 10_000,
        ..config()
    });
    let a = bound_client(&mut h, "192.0.2.1:5000");
    let b = bound_client(&mut h, "192.0.2.2:5000");
    let frame = Client::channel_data(0x4000, &[7u8; 200]);
    let mut passed = 0u64;
    // Each sends 100 × 200 bytes a second (40 kB/s together) for 5 s.
    for _ in 0..500 {
        h.now += Duration::from_millis(10);
        for c in [&a, &b] {
            if let ClientOutcome::Forward(_) =
                h.server.handle_client_datagram(h.now, c.tuple, &frame)
            {
                passed += 200;
            }
        }
    }
    assert!(
        (50_000..=62_000).contains(&passed),
        "≈ 5 s × 10 kB/s + a second's burst for both together, got {passed}"
    );
}

/// `no-loopback-peers` (Jitsi's and BigBlueButton's configs): a permission
/// for a loopback peer is refused with 403 (RFC 8656 §9.1), read from the
/// config as an operator writes it.
#[test]
fn no_loopback_peers_refuses_loopback_permissions() {
    let host = [ringturn::config::InterfaceAddress {
        interface: "lo".into(),
        ip: "127.0.0.1".parse().unwrap(),
        loopback: true,
    }];
    let config = ringturn::config::Config::parse_on_host(
        "turnserver.conf",
        "realm=example.org\nuser=alice:secret\nno-loopback-peers\nno-cli\nmin-port=50000\nmax-port=50999\n",
        &[],
        &host,
    )
    .unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let mut h = Harness::new(config.server_config(0, 1));
    let mut c = Client::new("192.0.2.1:5000", "alice", "secret");
    c.allocate(&mut h).expect("allocated");
    assert_eq!(
        c.create_permission(&mut h, &[addr("127.0.0.1:9")]),
        Err(403),
        "loopback peer refused"
    );
    assert_eq!(
        c.create_permission(&mut h, &[addr("192.0.2.200:9")]),
        Ok(())
    );
}
