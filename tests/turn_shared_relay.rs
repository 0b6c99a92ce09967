//! Scenario tests of the shared relay socket mode (`relay-socket-mode=shared`)
//! on the sans-IO core and a virtual clock: one relay socket per shard and
//! relay IP, peers demultiplexed by their exact address (see `turn::shared`).

mod common;

use std::time::Duration;

use common::*;
use ringturn::stun::{
    EvenPort, Method, RequestedTransport, ReservationToken, TransportProtocol, XorRelayedAddress,
};
use ringturn::turn::{ClientOutcome, DropReason, PeerPolicy, RelaySocketMode, ServerConfig};

fn shared() -> ServerConfig {
    ServerConfig {
        relay_socket_mode: RelaySocketMode::Shared,
        peer_policy: PeerPolicy {
            allow_loopback: true,
            ..Default::default()
        },
        ..test_config()
    }
}

const P: &str = "127.0.0.2:40000";
const Q: &str = "127.0.0.2:40001";

fn drops(h: &Harness, reason: DropReason) -> u64 {
    h.server.stats().drops[reason.index()]
}

#[test]
fn rfc8656_7_2_two_allocations_of_a_shard_share_one_relayed_address() {
    let mut h = Harness::new(shared());
    let mut a = Client::new("192.0.2.10:5555", "alice", "secret");
    let mut b = Client::new("192.0.2.11:6666", "bob", "hunter2");
    let ra = a.allocate(&mut h).unwrap();
    let rb = b.allocate(&mut h).unwrap();
    assert_eq!(ra, rb, "one XOR-RELAYED-ADDRESS for every allocation");
    // The shard's lowest port of the range, so a firewall rule can name it.
    assert_eq!(ra, addr("127.0.0.1:50000"));
    assert_eq!(
        h.open_relays,
        vec![ra],
        "one socket, not one per allocation"
    );
    assert_eq!(h.server.allocation_count(), 2);
    assert!(h.server.has_relay(ra));
    // Deleting one allocation leaves the socket to the other.
    assert_eq!(a.refresh(&mut h, 0), Ok(0));
    assert_eq!(h.open_relays, vec![ra]);
    assert_eq!(h.server.allocation_count(), 1);
}

#[test]
fn shared_socket_opens_before_answering_and_skips_a_busy_port() {
    // Learn a nonce on another harness with the same key, so the first
    // datagram the shared server sees is an authenticated Allocate: it waits
    // for the shared socket, which is first refused (port busy) and then
    // opened on the next even port.
    let mut warm = Harness::new(shared());
    let mut a = Client::new("192.0.2.10:5555", "alice", "secret");
    a.allocate(&mut warm).unwrap();
    let mut h = Harness::new(shared());
    h.busy_ports = vec![50000];
    let relayed = a.allocate(&mut h).unwrap();
    assert_eq!(relayed, addr("127.0.0.1:50002"));
    assert_eq!(h.open_relays, vec![relayed]);
    let mut b = Client::new("192.0.2.11:6666", "bob", "hunter2");
    assert_eq!(b.allocate(&mut h), Ok(relayed));
}

#[test]
fn rfc8656_11_2_channel_bind_to_a_peer_claimed_by_another_allocation_gets_508() {
    let mut h = Harness::new(shared());
    let mut a = Client::new("192.0.2.10:5555", "alice", "secret");
    let mut b = Client::new("192.0.2.11:6666", "bob", "hunter2");
    a.allocate(&mut h).unwrap();
    b.allocate(&mut h).unwrap();
    let (p, q) = (addr(P), addr(Q));
    a.channel_bind(&mut h, 0x4001, p).unwrap();
    assert_eq!(b.channel_bind(&mut h, 0x4001, p), Err(508));
    // The claim is by exact endpoint: another port of the same host is free.
    assert_eq!(b.channel_bind(&mut h, 0x4001, q), Ok(()));
    // The holder may refresh its own binding.
    assert_eq!(a.channel_bind(&mut h, 0x4001, p), Ok(()));
    assert_eq!(h.server.claimed_peers(), 2);
}

#[test]
fn rfc8656_10_2_send_indication_to_a_claimed_peer_is_dropped_and_counted() {
    let mut h = Harness::new(shared());
    let mut a = Client::new("192.0.2.10:5555", "alice", "secret");
    let mut b = Client::new("192.0.2.11:6666", "bob", "hunter2");
    let relayed = a.allocate(&mut h).unwrap();
    b.allocate(&mut h).unwrap();
    let p = addr(P);
    a.create_permission(&mut h, &[p]).unwrap();
    b.create_permission(&mut h, &[p]).unwrap();
    // A Send indication claims the endpoint for A.
    let ind = a.send_indication(p, b"from a");
    match h.input(a.tuple, &ind) {
        ClientOutcome::Forward(f) => assert_eq!((f.from, f.to), (relayed, p)),
        other => panic!("expected a forward, got {other:?}"),
    }
    let ind = b.send_indication(p, b"from b");
    assert_eq!(
        h.input(b.tuple, &ind),
        ClientOutcome::Dropped(DropReason::PeerClaimed)
    );
    assert_eq!(drops(&h, DropReason::PeerClaimed), 1);
}

#[test]
fn rfc8656_10_3_data_from_a_peer_reaches_only_the_allocation_that_claimed_it() {
    let mut h = Harness::new(shared());
    let mut a = Client::new("192.0.2.10:5555", "alice", "secret");
    let mut b = Client::new("192.0.2.11:6666", "bob", "hunter2");
    let relayed = a.allocate(&mut h).unwrap();
    b.allocate(&mut h).unwrap();
    let (p, q) = (addr(P), addr(Q));
    a.channel_bind(&mut h, 0x4001, p).unwrap();
    b.channel_bind(&mut h, 0x4002, q).unwrap();
    // Both allocations have a permission for 127.0.0.2 (§9: by IP), yet each
    // endpoint's datagrams go only to the allocation that claimed it.
    let (to, framed) = h.peer_sends(relayed, p, b"to a").unwrap();
    assert_eq!(to, a.tuple.client);
    assert_eq!(&framed[..2], &0x4001u16.to_be_bytes());
    let (to, framed) = h.peer_sends(relayed, q, b"to b").unwrap();
    assert_eq!(to, b.tuple.client);
    assert_eq!(&framed[..2], &0x4002u16.to_be_bytes());
    // A third port of the same host is nobody's: dropped and counted.
    assert_eq!(h.peer_sends(relayed, addr("127.0.0.2:40002"), b"?"), None);
    assert_eq!(drops(&h, DropReason::Unclaimed), 1);
    // ChannelData out claims nothing new and goes from the shared address.
    match h.input(b.tuple, &Client::channel_data(0x4002, b"hi q")) {
        ClientOutcome::Forward(f) => assert_eq!((f.from, f.to), (relayed, q)),
        other => panic!("expected a forward, got {other:?}"),
    }
}

#[test]
fn rfc8656_10_3_a_claimed_peer_still_needs_the_permission() {
    let mut h = Harness::new(shared());
    let mut a = Client::new("192.0.2.10:5555", "alice", "secret");
    let relayed = a.allocate(&mut h).unwrap();
    let p = addr(P);
    a.channel_bind(&mut h, 0x4001, p).unwrap();
    assert!(h.peer_sends(relayed, p, b"x").is_some());
    // §9: the permission lapses after 300 s; the claim goes with it (the rule in
    // `turn::shared`), and the peer's datagrams are dropped.
    h.advance(Duration::from_secs(301));
    assert_eq!(h.peer_sends(relayed, p, b"x"), None);
    assert_eq!(h.server.claimed_peers(), 0);
}

#[test]
fn rfc8656_9_claim_is_released_when_the_permission_expires() {
    let mut h = Harness::new(shared());
    let mut a = Client::new("192.0.2.10:5555", "alice", "secret");
    let mut b = Client::new("192.0.2.11:6666", "bob", "hunter2");
    a.allocate(&mut h).unwrap();
    b.allocate(&mut h).unwrap();
    let p = addr(P);
    a.channel_bind(&mut h, 0x4001, p).unwrap();
    assert_eq!(b.channel_bind(&mut h, 0x4001, p), Err(508));
    h.advance(Duration::from_secs(301));
    // Keep the allocations alive; A's permission is gone, so is its claim.
    a.refresh(&mut h, 600).unwrap();
    b.refresh(&mut h, 600).unwrap();
    assert_eq!(b.channel_bind(&mut h, 0x4001, p), Ok(()));
    // A's channel is still bound (600 s) but sending on it no longer reaches P.
    a.create_permission(&mut h, &[p]).unwrap();
    assert_eq!(
        h.input(a.tuple, &Client::channel_data(0x4001, b"x")),
        ClientOutcome::Dropped(DropReason::PeerClaimed)
    );
}

#[test]
fn rfc8656_7_4_claims_are_released_by_refresh_zero_and_by_expiry() {
    let mut h = Harness::new(shared());
    let mut a = Client::new("192.0.2.10:5555", "alice", "secret");
    let mut b = Client::new("192.0.2.11:6666", "bob", "hunter2");
    let mut c = Client::new("192.0.2.12:7777", "alice", "secret");
    let relayed = a.allocate(&mut h).unwrap();
    b.allocate(&mut h).unwrap();
    let p = addr(P);
    a.channel_bind(&mut h, 0x4001, p).unwrap();
    assert_eq!(b.channel_bind(&mut h, 0x4001, p), Err(508));
    // Refresh with LIFETIME 0 deletes A and frees P.
    assert_eq!(a.refresh(&mut h, 0), Ok(0));
    assert_eq!(h.server.claimed_peers(), 0);
    assert_eq!(b.channel_bind(&mut h, 0x4001, p), Ok(()));
    let (to, _) = h.peer_sends(relayed, p, b"now b's").unwrap();
    assert_eq!(to, b.tuple.client);
    // B expires (600 s default lifetime, its permission refreshed on the way).
    c.allocate(&mut h).unwrap();
    h.advance(Duration::from_secs(250));
    c.refresh(&mut h, 600).unwrap();
    b.create_permission(&mut h, &[p]).unwrap();
    h.advance(Duration::from_secs(360));
    assert_eq!(h.server.allocation_count(), 1, "b expired, c is alive");
    assert_eq!(h.server.claimed_peers(), 0);
    assert_eq!(c.channel_bind(&mut h, 0x4001, p), Ok(()));
    assert_eq!(
        h.open_relays,
        vec![relayed],
        "the shared socket outlives them"
    );
}

fn allocate_with(
    h: &mut Harness,
    c: &mut Client,
    extra: &dyn ringturn::stun::EncodeAttribute,
) -> common::Response {
    c.transact(
        h,
        Method::ALLOCATE,
        &[&RequestedTransport(TransportProtocol::UDP), extra],
    )
}

#[test]
fn rfc8656_7_2_reservation_token_and_even_port_r_bit_get_508_in_shared_mode() {
    let mut h = Harness::new(shared());
    let mut c = Client::new("192.0.2.1:1", "alice", "secret");
    // R=1 asks to hold the next port for a later Allocate: nothing to hold.
    let resp = allocate_with(&mut h, &mut c, &EvenPort { reserve_next: true });
    assert_eq!(resp.error_code(), Some(508));
    let resp = allocate_with(&mut h, &mut c, &ReservationToken([1, 2, 3, 4, 5, 6, 7, 8]));
    assert_eq!(resp.error_code(), Some(508));
    assert_eq!(h.server.allocation_count(), 0);
    // Without them the same client is served.
    let resp = c.transact(
        &mut h,
        Method::ALLOCATE,
        &[&RequestedTransport(TransportProtocol::UDP)],
    );
    assert!(resp.msg().get::<XorRelayedAddress>().is_some());
}

#[test]
fn rfc8656_7_2_even_port_without_r_is_served_only_by_an_even_shared_port() {
    // The shared socket takes the lowest even port of the shard's share, so
    // EVEN-PORT R=0 (coturn's uclient sends it) is satisfied.
    let mut h = Harness::new(shared());
    let mut c = Client::new("192.0.2.1:1", "alice", "secret");
    let resp = allocate_with(
        &mut h,
        &mut c,
        &EvenPort {
            reserve_next: false,
        },
    );
    let relayed = resp.msg().get::<XorRelayedAddress>().unwrap().unwrap().0;
    assert_eq!(relayed.port() % 2, 0);
    // A range with only an odd port: the request cannot be satisfied (508).
    let mut odd = Harness::new(ServerConfig {
        min_port: 50001,
        max_port: 50001,
        ..shared()
    });
    let mut d = Client::new("192.0.2.1:2", "alice", "secret");
    assert_eq!(d.allocate(&mut odd), Ok(addr("127.0.0.1:50001")));
    let mut e = Client::new("192.0.2.1:3", "alice", "secret");
    let resp = allocate_with(
        &mut odd,
        &mut e,
        &EvenPort {
            reserve_next: false,
        },
    );
    assert_eq!(resp.error_code(), Some(508));
}

#[test]
fn peer_endpoint_cap_per_allocation_gets_508_and_drops() {
    let mut h = Harness::new(ServerConfig {
        max_claimed_peers: 2,
        ..shared()
    });
    let mut a = Client::new("192.0.2.10:5555", "alice", "secret");
    a.allocate(&mut h).unwrap();
    a.channel_bind(&mut h, 0x4001, addr("127.0.0.2:1")).unwrap();
    a.channel_bind(&mut h, 0x4002, addr("127.0.0.2:2")).unwrap();
    assert_eq!(
        a.channel_bind(&mut h, 0x4003, addr("127.0.0.2:3")),
        Err(508)
    );
    let ind = a.send_indication(addr("127.0.0.2:4"), b"x");
    assert_eq!(
        h.input(a.tuple, &ind),
        ClientOutcome::Dropped(DropReason::PeerLimit)
    );
    // Endpoints it holds still work.
    let ind = a.send_indication(addr("127.0.0.2:1"), b"x");
    assert!(matches!(h.input(a.tuple, &ind), ClientOutcome::Forward(_)));
    assert_eq!(drops(&h, DropReason::PeerLimit), 1);
}

#[test]
fn shared_mode_is_not_limited_by_the_port_range() {
    // Two relay ports: per-allocation mode serves two allocations, shared mode many.
    let tiny = |mode| ServerConfig {
        min_port: 50000,
        max_port: 50001,
        relay_socket_mode: mode,
        ..test_config()
    };
    let mut per = Harness::new(tiny(RelaySocketMode::PerAllocation));
    let mut sh = Harness::new(tiny(RelaySocketMode::Shared));
    let mut per_ok = 0;
    let mut shared_ok = 0;
    for i in 0..50u16 {
        let client = format!("192.0.2.20:{}", 1000 + i);
        if Client::new(&client, "alice", "secret")
            .allocate(&mut per)
            .is_ok()
        {
            per_ok += 1;
        }
        if Client::new(&client, "alice", "secret")
            .allocate(&mut sh)
            .is_ok()
        {
            shared_ok += 1;
        }
    }
    assert_eq!(per_ok, 2);
    assert_eq!(shared_ok, 50);
    assert_eq!(sh.open_relays.len(), 1);
}

#[test]
fn relay_to_relay_between_shards_demultiplexes_by_the_sending_relay() {
    // Two shards (as two workers): their shared addresses differ, and each
    // allocation reaches the other's relayed address by claiming it.
    let shard = |offset| ServerConfig {
        port_offset: offset,
        port_stride: 2,
        ..shared()
    };
    let mut h0 = Harness::new(shard(0));
    let mut h1 = Harness::new(shard(1));
    let mut a = Client::new("192.0.2.10:5555", "alice", "secret");
    let mut b = Client::new("192.0.2.11:6666", "bob", "hunter2");
    let ra = a.allocate(&mut h0).unwrap();
    let rb = b.allocate(&mut h1).unwrap();
    assert_eq!((ra.port(), rb.port()), (50000, 50002));
    a.channel_bind(&mut h0, 0x4001, rb).unwrap();
    b.channel_bind(&mut h1, 0x4001, ra).unwrap();
    let (to, _) = h1.peer_sends(rb, ra, b"a to b").unwrap();
    assert_eq!(to, b.tuple.client);
    let (to, _) = h0.peer_sends(ra, rb, b"b to a").unwrap();
    assert_eq!(to, a.tuple.client);
}

// ====================================================================== model

mod model {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::time::Duration;

    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::test_runner::RngSeed;
    use ringturn::stun::{Method, RequestedTransport, TransportProtocol};
    use ringturn::turn::{ClientOutcome, DropReason};

    use super::common::*;

    const PEERS: [&str; 4] = [
        "127.0.0.2:4000",
        "127.0.0.2:4001",
        "127.0.0.3:4000",
        "127.0.0.3:4001",
    ];

    #[derive(Debug, Clone)]
    pub enum Op {
        Allocate(usize),
        Delete(usize),
        Bind(usize, usize),
        Permit(usize, usize),
        Send(usize, usize),
        PeerSends(usize),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..3usize).prop_map(Op::Allocate),
            1 => (0..3usize).prop_map(Op::Delete),
            3 => (0..3usize, 0..4usize).prop_map(|(c, p)| Op::Bind(c, p)),
            2 => (0..3usize, 0..4usize).prop_map(|(c, p)| Op::Permit(c, p)),
            3 => (0..3usize, 0..4usize).prop_map(|(c, p)| Op::Send(c, p)),
            3 => (0..4usize).prop_map(Op::PeerSends),
            2 => (1..400u64).prop_map(Op::Advance),
        ]
    }

    /// What the server should hold: allocations, permissions by (client, IP)
    /// and claims by peer endpoint, all in virtual seconds.
    #[derive(Default)]
    struct Model {
        t: u64,
        alloc: [Option<u64>; 3],
        perm: HashMap<(usize, std::net::IpAddr), u64>,
        claims: HashMap<SocketAddr, usize>,
    }

    impl Model {
        fn permitted(&self, c: usize, p: SocketAddr) -> bool {
            self.perm.get(&(c, p.ip())).is_some_and(|e| self.t < *e)
        }

        fn alive(&self, c: usize) -> bool {
            self.alloc[c].is_some_and(|e| self.t < e)
        }

        fn drop_client(&mut self, c: usize) {
            self.alloc[c] = None;
            self.perm.retain(|(k, _), _| *k != c);
            self.claims.retain(|_, k| *k != c);
        }

        /// The clock moved: what is due goes (RFC 8656 §7 allocations, §9
        /// permissions), and with a permission the claims on its IP.
        fn settle(&mut self) {
            for c in 0..3 {
                if self.alloc[c].is_some_and(|e| e <= self.t) {
                    self.drop_client(c);
                }
            }
            let t = self.t;
            self.perm.retain(|_, e| t < *e);
            let perm = &self.perm;
            self.claims
                .retain(|p, c| perm.get(&(*c, p.ip())).is_some_and(|e| t < *e));
        }
    }

    fn run(ops: &[Op]) {
        let mut h = Harness::new(super::shared());
        // The shared socket is asked for at start-up; the fake I/O layer opens it.
        h.run_commands();
        let mut clients: Vec<Client> = (0..3)
            .map(|i| Client::new(&format!("192.0.2.{}:5000", 10 + i), "alice", "secret"))
            .collect();
        let peers: Vec<SocketAddr> = PEERS.iter().map(|p| addr(p)).collect();
        let mut m = Model::default();
        let relay = addr("127.0.0.1:50000");
        for op in ops {
            match *op {
                Op::Allocate(c) => {
                    let udp = RequestedTransport(TransportProtocol::UDP);
                    let resp = clients[c].transact(&mut h, Method::ALLOCATE, &[&udp]);
                    if m.alive(c) {
                        assert_eq!(resp.error_code(), Some(437));
                    } else {
                        assert!(resp.is_success(), "{:?}", resp.error_code());
                        m.alloc[c] = Some(m.t + 600);
                    }
                }
                Op::Delete(c) => {
                    let r = clients[c].refresh(&mut h, 0);
                    assert_eq!(r.is_ok(), m.alive(c), "{r:?}");
                    m.drop_client(c);
                }
                Op::Bind(c, p) => {
                    let r = clients[c].channel_bind(&mut h, 0x4000 + p as u16, peers[p]);
                    let want = if !m.alive(c) {
                        Err(437)
                    } else if m.claims.get(&peers[p]).is_some_and(|k| *k != c) {
                        // The endpoint is another allocation's: 508.
                        Err(508)
                    } else {
                        m.perm.insert((c, peers[p].ip()), m.t + 300);
                        m.claims.insert(peers[p], c);
                        Ok(())
                    };
                    assert_eq!(r, want, "{op:?}");
                }
                Op::Permit(c, p) => {
                    let r = clients[c].create_permission(&mut h, &[peers[p]]);
                    if m.alive(c) {
                        assert_eq!(r, Ok(()));
                        m.perm.insert((c, peers[p].ip()), m.t + 300);
                    } else {
                        assert_eq!(r, Err(437));
                    }
                }
                Op::Send(c, p) => {
                    let ind = clients[c].send_indication(peers[p], b"x");
                    let out = h.input(clients[c].tuple, &ind);
                    let want = if !m.alive(c) {
                        ClientOutcome::Dropped(DropReason::NoAllocation)
                    } else if !m.permitted(c, peers[p]) {
                        ClientOutcome::Dropped(DropReason::NoPermission)
                    } else if m.claims.get(&peers[p]).is_some_and(|k| *k != c) {
                        ClientOutcome::Dropped(DropReason::PeerClaimed)
                    } else {
                        m.claims.insert(peers[p], c);
                        match out {
                            ClientOutcome::Forward(ref f) => {
                                assert_eq!((f.from, f.to), (relay, peers[p]));
                                out.clone()
                            }
                            ref other => panic!("{op:?}: expected a forward, got {other:?}"),
                        }
                    };
                    assert_eq!(out, want, "{op:?}");
                }
                Op::PeerSends(p) => {
                    let got = h.peer_sends(relay, peers[p], b"y").map(|(to, _)| to);
                    let want = m
                        .claims
                        .get(&peers[p])
                        .filter(|c| m.alive(**c) && m.permitted(**c, peers[p]))
                        .map(|c| clients[*c].tuple.client);
                    assert_eq!(got, want, "{op:?}: delivered to the claimant only");
                }
                Op::Advance(s) => {
                    h.advance(Duration::from_secs(s));
                    m.t += s;
                    m.settle();
                }
            }
            assert_eq!(
                h.server.claimed_peers(),
                m.claims.len(),
                "claims after {op:?}"
            );
            assert_eq!(h.server.stats().peer_claims, m.claims.len(), "the gauge");
            assert_eq!(h.open_relays, vec![relay], "one shared socket, always");
        }
        // Past every lifetime nothing is left but the socket.
        h.advance(Duration::from_secs(3601));
        assert_eq!(h.server.allocation_count(), 0);
        assert_eq!(h.server.claimed_peers(), 0);
        assert_eq!(h.open_relays, vec![relay]);
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            rng_seed: RngSeed::Fixed(0x5_4a2e_d001),
            ..ProptestConfig::with_cases(200)
        })]

        /// RFC 8656 §7–§10 in shared mode: random Allocate / delete /
        /// ChannelBind / CreatePermission / Send / peer data / clock jumps
        /// for three clients and four peer endpoints agree with a model of
        /// claims: a ChannelBind to another's endpoint gets 508, a Send to it
        /// is dropped, a peer's datagram reaches exactly its claimant, and
        /// claims go with the permission or the allocation.
        #[test]
        fn rfc8656_shared_mode_random_sequences_match_the_claim_model(ops in vec(op(), 1..60)) {
            run(&ops);
        }
    }
}
