//! The TURN core's hot paths with 100,000 live allocations, and the cost of
//! an authenticated Allocate (nonce check, key lookup, HMAC, response).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ringturn::auth::{keys::md5_key, Credentials, NonceKey};
use ringturn::stun::{
    ChannelData, ChannelNumber, ChannelNumberAttr, Class, MessageType, MessageWriter, Method,
    Nonce, Realm, RequestedTransport, TransactionId, TransportProtocol, Username, XorPeerAddress,
};
use ringturn::turn::{
    ClientOutcome, ClientTuple, Command, PeerOutcome, PeerPolicy, Server, ServerConfig,
    PEER_HEADROOM,
};

const REALM: &str = "example.org";
const UNIX: u64 = 1_800_000_000;
const LIVE: u32 = 100_000;

fn server_addr() -> SocketAddr {
    "127.0.0.1:3478".parse().unwrap()
}

fn client(i: u32) -> ClientTuple {
    ClientTuple::udp(
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 40000),
        server_addr(),
    )
}

fn peer(i: u32) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + (i % 200))),
        5000 + (i % 1000) as u16,
    )
}

fn request(
    method: Method,
    tid: u32,
    attrs: &[&dyn ringturn::stun::EncodeAttribute],
    auth: Option<(&str, &[u8])>,
) -> Vec<u8> {
    let mut buf = vec![0u8; 512];
    let mut t = [0u8; 12];
    t[..4].copy_from_slice(&tid.to_be_bytes());
    let mut w = MessageWriter::new(
        &mut buf,
        MessageType::new(method, Class::Request),
        TransactionId(t),
    )
    .unwrap();
    for a in attrs {
        w.add(*a).unwrap();
    }
    if let Some((nonce, key)) = auth {
        w.add(&Username("alice")).unwrap();
        w.add(&Realm(REALM)).unwrap();
        w.add(&Nonce(nonce)).unwrap();
        w.add_message_integrity(key).unwrap();
    }
    let n = w.finish();
    buf.truncate(n);
    buf
}

fn open_relays(server: &mut Server, now: Instant) {
    while let Some(cmd) = server.poll_command() {
        if let Command::OpenRelay { relay } = cmd {
            server.handle_relay_opened(now, relay, Ok(()));
        }
    }
}

/// A server holding `LIVE` allocations, each with one channel to a public peer.
fn loaded_server(now: Instant) -> (Server, Vec<SocketAddr>) {
    let relay_ips: Vec<IpAddr> = (1..=3)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
        .collect();
    let config = ServerConfig {
        no_auth: true,
        relay_ips,
        min_port: 1024,
        max_port: 65535,
        peer_policy: PeerPolicy::default(),
        ..ServerConfig::default()
    };
    let mut server = Server::new(
        config,
        Credentials::new(REALM),
        NonceKey::new([1; 32]),
        now,
        UNIX,
    );
    let mut relays = Vec::with_capacity(LIVE as usize);
    for i in 0..LIVE {
        let c = client(i);
        let alloc = request(
            Method::ALLOCATE,
            i,
            &[&RequestedTransport(TransportProtocol::UDP)],
            None,
        );
        server.handle_client_datagram(now, c, &alloc);
        open_relays(&mut server, now);
        let bind = request(
            Method::CHANNEL_BIND,
            i + LIVE,
            &[&ChannelNumberAttr(0x4000), &XorPeerAddress(peer(i))],
            None,
        );
        server.handle_client_datagram(now, c, &bind);
        while server.poll_transmit().is_some() {}
        relays.push(server.allocation_for_client(&c).unwrap().relay);
    }
    assert_eq!(server.allocation_count(), LIVE as usize);
    (server, relays)
}

fn hot_path(c: &mut Criterion) {
    let now = Instant::now();
    let (mut server, relays) = loaded_server(now);
    let payload = [0x5au8; 100];
    let mut frame = [0u8; 104];
    ChannelData::encode(ChannelNumber(0x4000), &payload, &mut frame, false).unwrap();

    let mut g = c.benchmark_group("turn_hot_path_100k_allocations");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u32;
    g.bench_function("channel_data_client_to_peer", |b| {
        b.iter(|| {
            i = (i.wrapping_mul(7919).wrapping_add(1)) % LIVE;
            match server.handle_client_datagram(now, client(i), black_box(&frame)) {
                ClientOutcome::Forward(f) => black_box(f),
                other => panic!("{other:?}"),
            };
        })
    });
    // Real traffic arrives in bursts per flow (one recvmmsg batch holds many
    // packets of the same call): 16 packets per allocation before moving on.
    let mut k = 0u32;
    g.bench_function("channel_data_client_to_peer_bursts_of_16", |b| {
        b.iter(|| {
            k = k.wrapping_add(1);
            let flow = (k / 16).wrapping_mul(7919) % LIVE;
            match server.handle_client_datagram(now, client(flow), black_box(&frame)) {
                ClientOutcome::Forward(f) => black_box(f),
                other => panic!("{other:?}"),
            };
        })
    });
    let mut buf = vec![0u8; PEER_HEADROOM + 100 + 3];
    let mut j = 0u32;
    g.bench_function("channel_data_peer_to_client", |b| {
        b.iter(|| {
            j = (j.wrapping_mul(7919).wrapping_add(1)) % LIVE;
            let relay = relays[j as usize];
            match server.handle_peer_datagram(
                now,
                relay,
                peer(j),
                black_box(&mut buf),
                PEER_HEADROOM..PEER_HEADROOM + 100,
            ) {
                PeerOutcome::Forward(f) => black_box(f),
                other => panic!("{other:?}"),
            };
        })
    });
    g.finish();
}

fn authenticated_allocate(c: &mut Criterion) {
    let key = md5_key("alice", REALM, "secret");
    let nonce_key = NonceKey::new([9; 32]);
    let mut g = c.benchmark_group("turn_control");
    // One iteration handles 1000 Allocates from new clients.
    g.throughput(Throughput::Elements(1000));
    g.bench_function("authenticated_allocate_x1000", |b| {
        b.iter_batched(
            || {
                let now = Instant::now();
                let mut creds = Credentials::new(REALM);
                creds.add_user("alice", "secret");
                let config = ServerConfig {
                    min_port: 1024,
                    max_port: 65535,
                    ..ServerConfig::default()
                };
                let server = Server::new(config, creds, nonce_key.clone(), now, UNIX);
                let reqs: Vec<(ClientTuple, Vec<u8>)> = (0..1000u32)
                    .map(|i| {
                        let c = client(i);
                        let nonce = nonce_key.issue(UNIX, c.client);
                        let req = request(
                            Method::ALLOCATE,
                            i,
                            &[&RequestedTransport(TransportProtocol::UDP)],
                            Some((nonce.as_str(), &key)),
                        );
                        (c, req)
                    })
                    .collect();
                (server, reqs, now)
            },
            |(mut server, reqs, now)| {
                for (c, req) in &reqs {
                    server.handle_client_datagram(now, *c, req);
                    open_relays(&mut server, now);
                    let t = server.poll_transmit().unwrap();
                    black_box(t);
                }
                assert_eq!(server.allocation_count(), reqs.len());
                server
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
}

criterion_group! { name = benches; config = config(); targets = hot_path, authenticated_allocate }
criterion_main!(benches);
