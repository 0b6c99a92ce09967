//! The whole server in-process over loopback UDP, once per I/O backend:
//! allocate, permission, channel, data both ways, relay to relay across
//! workers, and a clean stop.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::udp_client::UdpTurnClient;
use ringturn::auth::Credentials;
use ringturn::io::socket::BufferSizes;
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
            ..ServerConfig::default()
        })
        .collect();
    start(RunSettings {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        workers,
        cpu_affinity: vec![],
        backend: Some(backend),
        buffers: BufferSizes::default(),
        server_configs: configs,
        credentials: creds,
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
    for (i, backend) in backends().into_iter().enumerate() {
        let server = start_server(backend, 2, 45000 + 1000 * i as u16);
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
