//! Issue 11: the core decides which channels the kernel fast path may relay
//! (`Command::OffloadChannel` / `WithdrawChannel`), on the virtual clock.
//! The oracle is the socket path itself: an offloaded route must be one the
//! core would relay both ways right now and until its deadline, and every
//! channel the core would relay must be offloaded.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use ringturn::turn::{
    ChannelRoute, ClientOutcome, ClientTransport, PeerPolicy, RelaySocketMode, ServerConfig,
};

fn config() -> ServerConfig {
    ServerConfig {
        fast_path: true,
        peer_policy: PeerPolicy {
            allow_loopback: true,
            ..Default::default()
        },
        ..test_config()
    }
}

const PEER: &str = "127.0.0.2:40000";

/// What the socket path does with ChannelData on `route` and with a datagram
/// from its peer: true when it relays both, exactly as the route says.
fn socket_path_relays(h: &mut Harness, client: &Client, route: &ChannelRoute) -> bool {
    let to_peer = match h.input(client.tuple, &Client::channel_data(route.channel, b"up")) {
        ClientOutcome::Forward(f) => f.from == route.relay && f.to == route.peer,
        _ => false,
    };
    let to_client = match h.peer_sends(route.relay, route.peer, b"down") {
        Some((to, bytes)) => to == route.client && bytes[..2] == route.channel.to_be_bytes(),
        None => false,
    };
    to_peer && to_client
}

fn one_channel(h: &mut Harness) -> (Client, ChannelRoute) {
    let mut c = Client::new("192.0.2.10:5000", "alice", "secret");
    let relay = c.allocate(h).unwrap();
    c.channel_bind(h, 0x4001, addr(PEER)).unwrap();
    let route = ChannelRoute {
        client: c.tuple.client,
        listening: server_addr(),
        channel: 0x4001,
        relay,
        peer: addr(PEER),
    };
    (c, route)
}

#[test]
fn issue11_channel_bind_offloads_until_the_first_expiry() {
    let mut h = Harness::new(config());
    let (mut c, route) = one_channel(&mut h);
    // RFC 8656 §9: the permission (300 s) expires before the channel and
    // the allocation (600 s each): that is the kernel's deadline.
    assert_eq!(
        h.offloaded.get(&route),
        Some(&(h.now + Duration::from_secs(300)))
    );
    assert_eq!(h.offloaded.len(), 1);
    assert!(socket_path_relays(&mut h, &c, &route));
    assert_eq!(h.server.offloaded_channels(), 1);
    // Binding again (a refresh, RFC 8656 §11.3) with nothing else moving
    // keeps the entry; a second channel gets its own.
    h.advance(Duration::from_secs(10));
    c.channel_bind(&mut h, 0x4001, addr(PEER)).unwrap();
    assert_eq!(
        h.offloaded.get(&route),
        Some(&(h.now + Duration::from_secs(300))),
        "the refresh moved the permission, so the deadline"
    );
    c.channel_bind(&mut h, 0x4002, addr("127.0.0.3:40000"))
        .unwrap();
    assert_eq!(h.offloaded.len(), 2);
}

#[test]
fn rfc8656_9_permission_refresh_moves_and_expiry_withdraws() {
    let mut h = Harness::new(config());
    let (mut c, route) = one_channel(&mut h);
    h.advance(Duration::from_secs(100));
    c.create_permission(&mut h, &[addr(PEER)]).unwrap();
    assert_eq!(
        h.offloaded.get(&route),
        Some(&(h.now + Duration::from_secs(300)))
    );
    // Up to a moment before the deadline both paths relay...
    h.advance(Duration::from_secs(299));
    assert!(h.offloaded.contains_key(&route));
    assert!(socket_path_relays(&mut h, &c, &route));
    // ...and at it, neither does.
    h.advance(Duration::from_secs(1));
    assert!(h.offloaded.is_empty(), "{:?}", h.offloaded);
    assert!(!socket_path_relays(&mut h, &c, &route));
    // A new permission while the channel (600 s from t=0) still lives puts it back.
    c.create_permission(&mut h, &[addr(PEER)]).unwrap();
    let channel_expiry = h.now + Duration::from_secs(200);
    assert_eq!(h.offloaded.get(&route), Some(&channel_expiry));
    assert!(socket_path_relays(&mut h, &c, &route));
    // RFC 8656 §12: the channel's expiry withdraws it even with a permission.
    h.advance(Duration::from_secs(200));
    assert!(h.offloaded.is_empty());
    assert!(!socket_path_relays(&mut h, &c, &route));
}

#[test]
fn rfc8656_7_refresh_zero_and_allocation_expiry_withdraw() {
    let mut h = Harness::new(config());
    let (mut c, route) = one_channel(&mut h);
    c.refresh(&mut h, 0).unwrap();
    assert!(h.offloaded.is_empty());
    assert_eq!(h.fast_path_log, vec![(true, route), (false, route)]);

    // An allocation that lives 100 s bounds its channels' deadline too.
    let mut h = Harness::new(ServerConfig {
        default_lifetime: Duration::from_secs(100),
        ..config()
    });
    let (_c, route) = one_channel(&mut h);
    assert_eq!(
        h.offloaded.get(&route),
        Some(&(h.now + Duration::from_secs(100)))
    );
    h.advance(Duration::from_secs(100));
    assert!(h.offloaded.is_empty());
    assert_eq!(h.server.allocation_count(), 0);
}

/// RFC 8656 §21.3 (denied-peer-ip): a denied peer gets no channel, so the
/// kernel never learns a route to it.
#[test]
fn a_denied_peer_is_never_offloaded() {
    let mut h = Harness::new(ServerConfig {
        peer_policy: PeerPolicy {
            allow_loopback: true,
            denied: vec!["127.0.0.3".parse().unwrap()],
            ..Default::default()
        },
        ..config()
    });
    let mut c = Client::new("192.0.2.10:5000", "alice", "secret");
    c.allocate(&mut h).unwrap();
    assert_eq!(
        c.channel_bind(&mut h, 0x4001, addr("127.0.0.3:40000")),
        Err(403)
    );
    assert!(h.fast_path_log.is_empty());
    c.channel_bind(&mut h, 0x4002, addr(PEER)).unwrap();
    assert_eq!(h.offloaded.len(), 1);
}

#[test]
fn without_a_fast_path_the_core_says_nothing() {
    let mut h = Harness::new(ServerConfig {
        fast_path: false,
        ..config()
    });
    let (c, route) = one_channel(&mut h);
    assert!(socket_path_relays(&mut h, &c, &route));
    assert!(h.fast_path_log.is_empty());
}

/// Issue 12: `max-bps` with the kernel fast path. A channel under its rate
/// stays offloaded (what the kernel relayed is read once a second, counted
/// in the session and charged to the buckets); once it goes over, the
/// allocation leaves the fast path — the socket path's buckets then drop the
/// excess — and comes back after `RATE_HOLD`.
#[test]
fn issue12_max_bps_takes_an_allocation_over_its_rate_off_the_fast_path() {
    let mut h = Harness::new(ServerConfig {
        max_bps: 10_000,
        ..config()
    });
    let (_c, route) = one_channel(&mut h);
    assert!(
        h.offloaded.contains_key(&route),
        "offloaded under a rate too"
    );
    // What the kernel relayed so far: [packets, bytes] to the peer, to the client.
    let mut kernel = [0u64; 4];
    let poll = |h: &mut Harness, kernel: &mut [u64; 4], to_peer_bytes: u64| {
        kernel[0] += to_peer_bytes / 100;
        kernel[1] += to_peer_bytes;
        let now = h.now;
        let seen = *kernel;
        h.server
            .poll_fast_path_rates(now, &mut |r| (*r == route).then_some(seen));
        h.run_commands();
    };
    // 8 kB a second: under 10 kB/s, for five seconds.
    for _ in 0..5 {
        h.now += Duration::from_secs(1);
        poll(&mut h, &mut kernel, 8_000);
        assert!(h.offloaded.contains_key(&route), "under its rate: stays");
    }
    // 30 kB in the next second: over.
    h.now += Duration::from_secs(1);
    poll(&mut h, &mut kernel, 30_000);
    assert!(
        !h.offloaded.contains_key(&route),
        "over its rate: withdrawn"
    );
    assert_eq!(h.fast_path_log.last(), Some(&(false, route)));
    // Still held a few seconds on.
    h.now += Duration::from_secs(5);
    poll(&mut h, &mut kernel, 0);
    assert!(!h.offloaded.contains_key(&route));
    // After the hold it goes back (the kernel's counters start from zero).
    h.now += ringturn::turn::fast_path::RATE_HOLD;
    kernel = [0; 4];
    poll(&mut h, &mut kernel, 0);
    assert!(h.offloaded.contains_key(&route), "back after the hold");
}

#[test]
fn stream_clients_stay_on_the_socket_path() {
    let mut h = Harness::new(config());
    let mut c = Client::new("192.0.2.10:5000", "alice", "secret");
    c.tuple.transport = ClientTransport::Stream(7);
    c.allocate(&mut h).unwrap();
    c.channel_bind(&mut h, 0x4001, addr(PEER)).unwrap();
    assert!(h.fast_path_log.is_empty(), "{:?}", h.fast_path_log);
}

#[test]
fn shared_relay_sockets_offload_the_claimed_peer() {
    let mut h = Harness::new(ServerConfig {
        relay_socket_mode: RelaySocketMode::Shared,
        ..config()
    });
    let (c, route) = one_channel(&mut h);
    let mut b = Client::new("192.0.2.11:5000", "bob", "hunter2");
    let relay_b = b.allocate(&mut h).unwrap();
    assert_eq!(relay_b, route.relay, "one shared relay address");
    // The peer endpoint is claimed by the first allocation: not for bob.
    assert!(b.channel_bind(&mut h, 0x4001, addr(PEER)).is_err());
    b.channel_bind(&mut h, 0x4001, addr("127.0.0.2:40001"))
        .unwrap();
    assert_eq!(h.offloaded.len(), 2);
    assert!(socket_path_relays(&mut h, &c, &route));
    let keys: HashSet<(SocketAddr, SocketAddr)> =
        h.offloaded.keys().map(|r| (r.peer, r.relay)).collect();
    assert_eq!(keys.len(), 2, "each peer → relay key names one allocation");
}

#[derive(Debug, Clone)]
enum Op {
    Allocate(usize),
    Bind(usize, u16, usize),
    Permit(usize, usize),
    Refresh(usize, u32),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..2usize).prop_map(Op::Allocate),
        (0..2usize, 0..3u16, 0..3usize).prop_map(|(c, n, p)| Op::Bind(c, 0x4000 + n, p)),
        (0..2usize, 0..3usize).prop_map(|(c, p)| Op::Permit(c, p)),
        (0..2usize, prop_oneof![Just(0u32), Just(60), Just(600)])
            .prop_map(|(c, l)| Op::Refresh(c, l)),
        (1..400u64).prop_map(Op::Advance),
    ]
}

/// The kernel's view (an entry relays while `now < until`) and the socket
/// path's agree on every route: nothing relayed in the kernel that the core
/// would refuse, nothing the core relays left to the slow path.
fn check_agreement(
    h: &mut Harness,
    clients: &[Client],
    peers: &[SocketAddr],
) -> Result<(), TestCaseError> {
    let now = h.now;
    let offloaded: Vec<_> = h.offloaded.iter().map(|(r, u)| (*r, *u)).collect();
    for (route, until) in &offloaded {
        if *until <= now {
            continue; // the kernel passes it: the socket path decides
        }
        let client = clients
            .iter()
            .find(|c| c.tuple.client == route.client)
            .unwrap();
        prop_assert!(
            socket_path_relays(h, client, route),
            "the kernel would relay what the core refuses: {route:?} until {until:?}, now {now:?}"
        );
    }
    for c in clients {
        let Some(relay) = c.relayed else { continue };
        for n in 0x4000..0x4003u16 {
            for p in peers {
                let route = ChannelRoute {
                    client: c.tuple.client,
                    listening: server_addr(),
                    channel: n,
                    relay,
                    peer: *p,
                };
                if socket_path_relays(h, c, &route) {
                    prop_assert!(
                        h.offloaded.get(&route).is_some_and(|u| *u > now),
                        "relayed but not offloaded: {route:?}"
                    );
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the clients do and however time passes, the fast path holds
    /// exactly the channels the socket path relays — checked after every
    /// step, and when time has moved but the timers have not fired yet
    /// (the kernel's own deadline must already stop it).
    #[test]
    fn issue11_offloaded_channels_are_exactly_what_the_socket_path_relays(
        ops in proptest::collection::vec(op(), 1..30)
    ) {
        let mut h = Harness::new(config());
        let peers = [addr(PEER), addr("127.0.0.2:40001"), addr("127.0.0.3:40000")];
        let mut clients = [
            Client::new("192.0.2.10:5000", "alice", "secret"),
            Client::new("192.0.2.11:5000", "bob", "hunter2"),
        ];
        for op in ops {
            match op {
                Op::Allocate(c) => { let _ = clients[c].allocate(&mut h); }
                Op::Bind(c, n, p) => { let _ = clients[c].channel_bind(&mut h, n, peers[p]); }
                Op::Permit(c, p) => { let _ = clients[c].create_permission(&mut h, &[peers[p]]); }
                Op::Refresh(c, l) => { let _ = clients[c].refresh(&mut h, l); }
                Op::Advance(s) => {
                    h.now += Duration::from_secs(s);
                    check_agreement(&mut h, &clients, &peers)?;
                    h.advance(Duration::ZERO);
                }
            }
            check_agreement(&mut h, &clients, &peers)?;
        }
    }
}
