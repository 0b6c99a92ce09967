//! The whole server in-process over loopback UDP, once per I/O backend:
//! allocate, permission, channel, data both ways, relay to relay across
//! workers, and a clean stop.

mod common;

use common::long_term::TurnRequests;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::udp_client::UdpTurnClient;
use ringturn::auth::Credentials;
use ringturn::io::BackendKind;
use ringturn::run::{start, RunSettings, RunningServer};
use ringturn::turn::{PeerPolicy, ServerConfig};

/// A signal may interrupt a blocking receive (EINTR); real clients retry.
fn recv_retrying(sock: &UdpSocket, buf: &mut [u8]) -> (usize, std::net::SocketAddr) {
    loop {
        match sock.recv_from(buf) {
            Ok(x) => return x,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("peer receive: {e}"),
        }
    }
}

fn backends() -> Vec<BackendKind> {
    vec![BackendKind::Uring, BackendKind::Batch]
}

fn start_server(backend: BackendKind, workers: usize, min_port: u16) -> RunningServer {
    start_server_with_shortcut(backend, workers, min_port, true)
}

fn start_server_with_shortcut(
    backend: BackendKind,
    workers: usize,
    min_port: u16,
    relay_shortcut: bool,
) -> RunningServer {
    let mut creds = Credentials::new("example.org");
    creds.add_user("alice", "secret");
    let configs = (0..workers)
        .map(|w| ServerConfig {
            min_port,
            max_port: min_port + 399,
            port_offset: w as u16,
            port_stride: workers as u16,
            peer_policy: PeerPolicy {
                allow_loopback: true,
                ..Default::default()
            },
            rng_seed: 1 + w as u64,
            relay_shortcut,
            ..ServerConfig::default()
        })
        .collect();
    start(RunSettings {
        backend: Some(backend),
        ..RunSettings::new(vec!["127.0.0.1:0".parse().unwrap()], configs, creds)
    })
    .unwrap()
}

#[test]
fn relays_channel_data_both_ways_on_each_backend() {
    for (i, backend) in backends().into_iter().enumerate() {
        let server = start_server(backend, 2, 41000 + 1000 * i as u16);
        assert_eq!(server.backend, backend);
        let addr = server.listening[0];
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let peer_addr = peer.local_addr().unwrap();

        let mut client = UdpTurnClient::new("127.0.0.1:0", addr, "alice", "secret");
        let relayed = client.allocate().unwrap();
        client.channel_bind(0x4001, peer_addr).unwrap();
        for n in 0..20u8 {
            client.send_channel_data(0x4001, &[n; 100]);
            let mut buf = [0u8; 200];
            let (len, from) = recv_retrying(&peer, &mut buf);
            assert_eq!(
                from, relayed,
                "{backend:?}: data comes from the relayed address"
            );
            assert_eq!(&buf[..len], &[n; 100]);
            peer.send_to(&buf[..len], relayed).unwrap();
            assert_eq!(
                client.recv_channel_data(0x4001).as_deref(),
                Some(&[n; 100][..]),
                "{backend:?}"
            );
        }
        client.refresh(0).unwrap();
        let started = Instant::now();
        server.stop().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "stops within a second"
        );
    }
}

#[test]
fn relay_to_relay_between_two_allocations_on_each_backend() {
    relay_to_relay(true, 45000);
}

#[test]
fn relay_to_relay_through_the_kernel_with_no_relay_shortcut() {
    relay_to_relay(false, 47000);
}

fn relay_to_relay(relay_shortcut: bool, base_port: u16) {
    for (i, backend) in backends().into_iter().enumerate() {
        let server =
            start_server_with_shortcut(backend, 2, base_port + 1000 * i as u16, relay_shortcut);
        let addr = server.listening[0];
        // Several clients so both workers own some allocations.
        let mut clients: Vec<(UdpTurnClient, std::net::SocketAddr)> = (0..6)
            .map(|_| {
                let mut c = UdpTurnClient::new("127.0.0.1:0", addr, "alice", "secret");
                let r = c.allocate().unwrap();
                (c, r)
            })
            .collect();
        let relays: Vec<_> = clients.iter().map(|(_, r)| *r).collect();
        for (k, (c, _)) in clients.iter_mut().enumerate() {
            let other = relays[(k + 1) % relays.len()];
            let prev = relays[(k + relays.len() - 1) % relays.len()];
            c.channel_bind(0x4000, other).unwrap();
            c.create_permission(prev).unwrap();
            c.channel_bind(0x4001, prev).unwrap();
        }
        for (k, (c, _)) in clients.iter().enumerate() {
            c.send_channel_data(0x4000, format!("from {k}").as_bytes());
        }
        for (k, (c, _)) in clients.iter().enumerate() {
            let from = (k + relays.len() - 1) % relays.len();
            assert_eq!(
                c.recv_channel_data(0x4001),
                Some(format!("from {from}").into_bytes()),
                "{backend:?}: client {k} hears its neighbour through relay to relay"
            );
        }
        server.stop().unwrap();
    }
}

fn start_with(
    backend: BackendKind,
    config: ServerConfig,
    credentials: Credentials,
) -> RunningServer {
    let configs = vec![
        ServerConfig {
            port_offset: 0,
            port_stride: 2,
            ..config.clone()
        },
        ServerConfig {
            port_offset: 1,
            port_stride: 2,
            rng_seed: 99,
            ..config
        },
    ];
    start(RunSettings {
        backend: Some(backend),
        ..RunSettings::new(vec!["127.0.0.1:0".parse().unwrap()], configs, credentials)
    })
    .unwrap()
}

#[test]
fn negative_paths_a_user_would_try_on_each_backend() {
    for (i, backend) in backends().into_iter().enumerate() {
        let mut creds = Credentials::new("example.org");
        creds.add_user("alice", "secret");
        let api = ringturn::auth::RestApi::new(vec![b"s3cret".to_vec()], ':');
        creds.rest_api = Some(api.clone());
        let min_port = 52000 + 1000 * i as u16;
        // Default peer policy: loopback peers refused.
        let config = ServerConfig {
            min_port,
            max_port: min_port + 99,
            ..ServerConfig::default()
        };
        let server = start_with(backend, config, creds);
        let addr = server.listening[0];

        // A wrong password gets 401 and no allocation.
        let mut wrong = UdpTurnClient::new("127.0.0.1:0", addr, "alice", "nope");
        assert_eq!(wrong.allocate(), Err(401), "{backend:?}");

        // An expired REST-API username is refused; a fresh one works.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let (old_user, old_pass) = api.mint("bob", now - 10).unwrap();
        assert_eq!(
            UdpTurnClient::new("127.0.0.1:0", addr, &old_user, &old_pass).allocate(),
            Err(401),
            "{backend:?}"
        );
        let (user, pass) = api.mint("bob", now + 600).unwrap();
        let mut rest = UdpTurnClient::new("127.0.0.1:0", addr, &user, &pass);
        assert!(rest.allocate().is_ok(), "{backend:?}");

        // A loopback peer without allow-loopback-peers: 403.
        assert_eq!(
            rest.create_permission("127.0.0.1:9".parse().unwrap()),
            Err(403),
            "{backend:?}"
        );
        assert_eq!(
            rest.channel_bind(0x4000, "127.0.0.1:9".parse().unwrap()),
            Err(403),
            "{backend:?}"
        );
        server.stop().unwrap();
    }
}

#[test]
fn garbage_flood_leaves_binding_answered_on_each_backend() {
    for (i, backend) in backends().into_iter().enumerate() {
        let min_port = 54000 + 1000 * i as u16;
        let server = start_with(
            backend,
            ServerConfig {
                min_port,
                max_port: min_port + 99,
                ..ServerConfig::default()
            },
            Credentials::new("example.org"),
        );
        let addr = server.listening[0];
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        // 10,000 malformed datagrams a second, from many source ports, for at most 3 s.
        let flood = std::thread::spawn(move || {
            let socks: Vec<UdpSocket> = (0..8)
                .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
                .collect();
            let mut sent = 0u64;
            let start = Instant::now();
            let mut x: u32 = 12345;
            while !flag.load(std::sync::atomic::Ordering::Relaxed)
                && start.elapsed() < Duration::from_secs(3)
            {
                for _ in 0..100 {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    let len = 1 + (x as usize % 300);
                    let mut junk = vec![(x >> 8) as u8; len];
                    // Mix in things that look like STUN and ChannelData.
                    junk[0] = [0x00, 0x01, 0x40, 0x7f, 0x17][x as usize % 5];
                    let _ = socks[x as usize % socks.len()].send_to(&junk, addr);
                    sent += 1;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            sent
        });
        let mut client = UdpTurnClient::new("127.0.0.1:0", addr, "nobody", "x");
        for _ in 0..20 {
            let resp = client.transact_once(ringturn::stun::Method::BINDING, &[]);
            let m = ringturn::stun::Message::parse(&resp).unwrap();
            assert_eq!(
                m.class(),
                ringturn::stun::Class::SuccessResponse,
                "{backend:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let sent = flood.join().unwrap();
        assert!(sent > 10_000, "the flood really ran ({sent} datagrams)");
        server.stop().unwrap();
    }
}
