//! IPv6 (RFC 6156, RFC 8656 §7.2, §18.12, §18.13): IPv6 relayed addresses on
//! request, dual allocations with one IPv4 and one IPv6 relayed address,
//! 440 and 443, and peers of either family where the allocation has it —
//! first on the sans-IO core, then over real sockets on ::1.

mod common;

use common::long_term::TurnRequests;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::stream_client::{connect_tcp, StreamTurnClient};
use common::udp_client::UdpTurnClient;
use common::{addr, Client, Harness};
use ringturn::io::BackendKind;
use ringturn::run::{start, RunningServer};
use ringturn::stun::{
    AdditionalAddressFamily, AddressErrorCode, AddressFamily, Attribute, ChannelNumberAttr,
    Message, Method, RequestedAddressFamily, RequestedTransport, TransportProtocol, XorPeerAddress,
};
use ringturn::turn::{ClientTuple, PeerPolicy, ServerConfig};

fn dual_stack_config() -> ServerConfig {
    ServerConfig {
        min_port: 50000,
        max_port: 50999,
        relay_ips: vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
        peer_policy: PeerPolicy {
            allow_loopback: true,
            ..Default::default()
        },
        ..ServerConfig::default()
    }
}

fn relayed_addresses(bytes: &[u8]) -> Vec<SocketAddr> {
    Message::parse(bytes)
        .unwrap()
        .decoded_attributes()
        .filter_map(|a| match a {
            Ok(Attribute::XorRelayedAddress(r)) => Some(r.0),
            _ => None,
        })
        .collect()
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
fn rfc6156_requested_address_family_ipv6_gets_an_ipv6_relay_and_relays() {
    let mut h = Harness::new(dual_stack_config());
    let mut c = Client::new("[::1]:40000", "alice", "secret");
    c.tuple = ClientTuple::udp(addr("[::1]:40000"), addr("[::1]:3478"));
    let resp = allocate_with(&mut h, &mut c, &RequestedAddressFamily(AddressFamily::V6));
    assert!(resp.is_success(), "{:?}", resp.error_code());
    let relays = relayed_addresses(&resp.bytes);
    assert_eq!(relays.len(), 1);
    let relay = relays[0];
    assert!(relay.is_ipv6(), "{relay}");
    let peer = addr("[::1]:7000");
    c.create_permission(&mut h, &[peer]).unwrap();
    let (to, framed) = h.peer_sends(relay, peer, b"hello v6").expect("delivered");
    assert_eq!(to, addr("[::1]:40000"));
    let m = Message::parse(&framed).unwrap();
    assert_eq!(m.get::<XorPeerAddress>().unwrap().unwrap().0, peer);
}

#[test]
fn rfc8656_7_2_dual_allocation_relays_to_peers_of_both_families() {
    let mut h = Harness::new(dual_stack_config());
    let mut c = Client::new("127.0.0.1:40001", "alice", "secret");
    let resp = allocate_with(&mut h, &mut c, &AdditionalAddressFamily(AddressFamily::V6));
    assert!(resp.is_success(), "{:?}", resp.error_code());
    let relays = relayed_addresses(&resp.bytes);
    assert_eq!(relays.len(), 2, "an IPv4 and an IPv6 relayed address");
    let (v4, v6) = (relays[0], relays[1]);
    assert!(v4.is_ipv4() && v6.is_ipv6(), "{relays:?}");
    assert!(
        Message::parse(&resp.bytes)
            .unwrap()
            .get::<AddressErrorCode>()
            .is_none(),
        "no ADDRESS-ERROR-CODE when both families are served"
    );
    assert!(h.open_relays.contains(&v4) && h.open_relays.contains(&v6));
    let peer4 = addr("127.0.0.1:7000");
    let peer6 = addr("[::1]:7000");
    c.create_permission(&mut h, &[peer4, peer6])
        .expect("permissions for both families");
    // Client → peer: each goes out of the relay of its family.
    for (peer, relay) in [(peer4, v4), (peer6, v6)] {
        let ind = c.send_indication(peer, b"ping");
        match h.input(c.tuple, &ind) {
            ringturn::turn::ClientOutcome::Forward(f) => {
                assert_eq!((f.from, f.to), (relay, peer));
            }
            other => panic!("not forwarded to {peer}: {other:?}"),
        }
        assert!(
            h.peer_sends(relay, peer, b"pong").is_some(),
            "{peer} answers through {relay}"
        );
    }
    // A channel to the IPv6 peer.
    let resp = c.transact(
        &mut h,
        Method::CHANNEL_BIND,
        &[&ChannelNumberAttr(0x4002), &XorPeerAddress(peer6)],
    );
    assert!(resp.is_success());
    let (_, framed) = h.peer_sends(v6, peer6, b"on a channel").unwrap();
    assert_eq!(&framed[..2], &[0x40, 0x02]);
    // Deleting it closes both relay sockets.
    c.refresh(&mut h, 0).unwrap();
    assert!(h.open_relays.is_empty(), "{:?}", h.open_relays);
}

#[test]
fn rfc8656_7_2_dual_allocation_without_an_ipv6_relay_succeeds_with_address_error_440() {
    let mut h = Harness::new(ServerConfig {
        relay_ips: vec!["127.0.0.1".parse().unwrap()],
        ..dual_stack_config()
    });
    let mut c = Client::new("127.0.0.1:40002", "alice", "secret");
    let resp = allocate_with(&mut h, &mut c, &AdditionalAddressFamily(AddressFamily::V6));
    assert!(resp.is_success());
    assert_eq!(relayed_addresses(&resp.bytes).len(), 1);
    let m = Message::parse(&resp.bytes).unwrap();
    let err = m.get::<AddressErrorCode>().unwrap().unwrap();
    assert_eq!((err.family, err.code.0), (AddressFamily::V6, 440));
}

#[test]
fn rfc8656_7_2_requested_family_without_a_relay_of_it_gets_440() {
    let mut h = Harness::new(ServerConfig {
        relay_ips: vec!["127.0.0.1".parse().unwrap()],
        ..dual_stack_config()
    });
    let mut c = Client::new("127.0.0.1:40003", "alice", "secret");
    let resp = allocate_with(&mut h, &mut c, &RequestedAddressFamily(AddressFamily::V6));
    assert_eq!(resp.error_code(), Some(440));
}

#[test]
fn rfc8656_9_1_peer_of_a_family_the_allocation_lacks_gets_443() {
    let mut h = Harness::new(dual_stack_config());
    let mut c = Client::new("127.0.0.1:40004", "alice", "secret");
    let relay = c.allocate(&mut h).unwrap();
    assert!(
        relay.is_ipv4(),
        "IPv4 unless asked otherwise (RFC 8656 §7.2)"
    );
    assert_eq!(c.create_permission(&mut h, &[addr("[::1]:7000")]), Err(443));
    // RFC 8656 §7.3: Refresh naming a family the allocation lacks.
    let resp = c.transact(
        &mut h,
        Method::REFRESH,
        &[&RequestedAddressFamily(AddressFamily::V6)],
    );
    assert_eq!(resp.error_code(), Some(443));
}

// ---------------------------------------------------------------- real sockets

fn ipv6_available() -> bool {
    match UdpSocket::bind("[::1]:0") {
        Ok(_) => true,
        Err(e) if std::env::var_os("CI").is_some() => panic!("::1 must work in CI: {e}"),
        Err(e) => {
            eprintln!("skipping: no IPv6 loopback here: {e}");
            false
        }
    }
}

fn start_dual_stack(backend: BackendKind, min_port: u16) -> RunningServer {
    let mut settings = common::server::settings(backend, 2, min_port, dual_stack_config());
    settings.listen.push("[::1]:0".parse().unwrap());
    settings.streams.tcp = true;
    start(settings).unwrap()
}

fn udp_peer(bind: &str) -> UdpSocket {
    let p = UdpSocket::bind(bind).unwrap();
    p.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    p
}

fn echo_through(client: &mut UdpTurnClient, relay: SocketAddr, peer: &UdpSocket, channel: u16) {
    let peer_addr = peer.local_addr().unwrap();
    client
        .channel_bind(channel, peer_addr)
        .expect("channel bind");
    for i in 0..10u8 {
        let payload = vec![i; 33];
        client.send_channel_data(channel, &payload);
        let mut buf = [0u8; 2048];
        let (n, from) = peer.recv_from(&mut buf).expect("peer receives");
        assert_eq!((from, &buf[..n]), (relay, &payload[..]));
        peer.send_to(&payload, relay).unwrap();
        assert_eq!(client.recv_channel_data(channel), Some(payload));
    }
}

#[test]
fn rfc6156_allocations_over_ipv6_loopback_relay_both_ways_on_each_backend() {
    if !ipv6_available() {
        return;
    }
    for (i, backend) in [BackendKind::Uring, BackendKind::Batch]
        .into_iter()
        .enumerate()
    {
        let server = start_dual_stack(backend, 56000 + 400 * i as u16);
        let v6_listener = server.listening[1];
        assert!(v6_listener.is_ipv6());
        let mut client = UdpTurnClient::new("[::1]:0", v6_listener, "alice", "secret");
        let resp = client
            .transact(
                Method::ALLOCATE,
                &[
                    &RequestedTransport(TransportProtocol::UDP),
                    &RequestedAddressFamily(AddressFamily::V6),
                ],
            )
            .expect("IPv6 allocation");
        let relays = relayed_addresses(&resp);
        assert_eq!(relays.len(), 1);
        assert!(relays[0].is_ipv6(), "{relays:?}");
        echo_through(&mut client, relays[0], &udp_peer("[::1]:0"), 0x4001);
        // TURN over TCP on ::1 too.
        let mut tcp = StreamTurnClient::new(
            Box::new(connect_tcp(server.tcp_listening[1])),
            "alice",
            "secret",
        );
        assert!(
            tcp.allocate().unwrap().is_ipv4(),
            "IPv4 relay by default, whatever the client's family"
        );
        server.stop().unwrap();
    }
}

#[test]
fn rfc8656_7_2_dual_allocation_over_real_sockets_reaches_both_peers() {
    if !ipv6_available() {
        return;
    }
    let server = start_dual_stack(BackendKind::Uring, 57000);
    let mut client = UdpTurnClient::new("127.0.0.1:0", server.listening[0], "alice", "secret");
    let resp = client
        .transact(
            Method::ALLOCATE,
            &[
                &RequestedTransport(TransportProtocol::UDP),
                &AdditionalAddressFamily(AddressFamily::V6),
            ],
        )
        .expect("dual allocation");
    let relays = relayed_addresses(&resp);
    assert_eq!(relays.len(), 2, "{relays:?}");
    echo_through(&mut client, relays[0], &udp_peer("127.0.0.1:0"), 0x4001);
    echo_through(&mut client, relays[1], &udp_peer("[::1]:0"), 0x4002);
    server.stop().unwrap();
}
