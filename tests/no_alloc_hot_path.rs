//! The relay hot paths allocate nothing: ChannelData both ways, Send and Data
//! indications through `turn::Server`, counted with a counting global allocator.

mod common;
#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::Duration;

use common::*;
use counting_alloc::allocations_during;
use ringturn::turn::{
    ClientOutcome, PeerOutcome, PeerPolicy, ServerConfig, PEER_HEADROOM, PEER_TAILROOM,
};

#[test]
fn the_counter_counts() {
    let n = allocations_during(|| {
        std::hint::black_box(vec![1u8; 64]);
    });
    assert!(n >= 1, "a Vec allocation must be seen");
}

#[test]
fn channel_data_and_indications_allocate_nothing_in_either_direction() {
    let mut h = Harness::new(ServerConfig {
        peer_policy: PeerPolicy {
            allow_loopback: true,
            ..Default::default()
        },
        ..test_config()
    });
    let mut c = Client::new("192.0.2.10:5555", "alice", "secret");
    let relayed = c.allocate(&mut h).unwrap();
    let peer = addr("127.0.0.2:40000");
    let other = addr("127.0.0.2:40001"); // permitted (same IP), no channel: Data indications
    c.channel_bind(&mut h, 0x4001, peer).unwrap();
    let channel_data = Client::channel_data(0x4001, &[0x42; 160]);
    let send_indication = c.send_indication(other, &[0x43; 160]);
    let mut buf = vec![0u8; PEER_HEADROOM + 160 + PEER_TAILROOM];
    let payload = PEER_HEADROOM..PEER_HEADROOM + 160;
    let now = h.now;
    let tuple = c.tuple;

    // Warm up once (lazily sized internals), then count.
    let _ = h.server.handle_client_datagram(now, tuple, &channel_data);
    let n = allocations_during(|| {
        for _ in 0..10_000 {
            assert!(matches!(
                h.server.handle_client_datagram(now, tuple, &channel_data),
                ClientOutcome::Forward(_)
            ));
            assert!(matches!(
                h.server
                    .handle_client_datagram(now, tuple, &send_indication),
                ClientOutcome::Forward(_)
            ));
            assert!(matches!(
                h.server
                    .handle_peer_datagram(now, relayed, peer, &mut buf, payload.clone()),
                PeerOutcome::Forward(_)
            ));
            assert!(matches!(
                h.server
                    .handle_peer_datagram(now, relayed, other, &mut buf, payload.clone()),
                PeerOutcome::Forward(_)
            ));
        }
    });
    assert_eq!(n, 0, "40,000 relayed datagrams made {n} heap allocations");
}

#[test]
fn shared_relay_socket_demultiplexing_allocates_nothing() {
    // relay-socket-mode=shared: every datagram looks up the peer-endpoint
    // claim table (client → peer to check or take the claim, peer → client to
    // find the allocation). Once the endpoints are claimed, no heap at all.
    let mut h = Harness::new(ServerConfig {
        relay_socket_mode: ringturn::turn::RelaySocketMode::Shared,
        peer_policy: PeerPolicy {
            allow_loopback: true,
            ..Default::default()
        },
        ..test_config()
    });
    let mut a = Client::new("192.0.2.10:5555", "alice", "secret");
    let mut b = Client::new("192.0.2.11:5555", "bob", "hunter2");
    let relayed = a.allocate(&mut h).unwrap();
    assert_eq!(b.allocate(&mut h).unwrap(), relayed);
    let peer = addr("127.0.0.2:40000");
    let other = addr("127.0.0.2:40001");
    a.channel_bind(&mut h, 0x4001, peer).unwrap();
    b.create_permission(&mut h, &[other]).unwrap();
    let channel_data = Client::channel_data(0x4001, &[0x42; 160]);
    let send_indication = b.send_indication(other, &[0x43; 160]);
    let unclaimed = addr("127.0.0.2:40002");
    let mut buf = vec![0u8; PEER_HEADROOM + 160 + PEER_TAILROOM];
    let payload = PEER_HEADROOM..PEER_HEADROOM + 160;
    let now = h.now;
    let (ta, tb) = (a.tuple, b.tuple);

    // Warm up once: B's Send indication takes its claim here.
    let _ = h.server.handle_client_datagram(now, ta, &channel_data);
    let _ = h.server.handle_client_datagram(now, tb, &send_indication);
    let n = allocations_during(|| {
        for _ in 0..10_000 {
            assert!(matches!(
                h.server.handle_client_datagram(now, ta, &channel_data),
                ClientOutcome::Forward(_)
            ));
            assert!(matches!(
                h.server.handle_client_datagram(now, tb, &send_indication),
                ClientOutcome::Forward(_)
            ));
            assert!(matches!(
                h.server
                    .handle_peer_datagram(now, relayed, peer, &mut buf, payload.clone()),
                PeerOutcome::Forward(f) if f.to == ta.client
            ));
            assert!(matches!(
                h.server
                    .handle_peer_datagram(now, relayed, other, &mut buf, payload.clone()),
                PeerOutcome::Forward(f) if f.to == tb.client
            ));
            assert!(matches!(
                h.server
                    .handle_peer_datagram(now, relayed, unclaimed, &mut buf, payload.clone()),
                PeerOutcome::Dropped(_)
            ));
        }
    });
    assert_eq!(
        n, 0,
        "50,000 shared-socket datagrams made {n} heap allocations"
    );
}

#[test]
fn backends_receive_and_send_in_place_without_allocating() {
    use ringturn::io::socket::{bind_listener, BufferSizes};
    use ringturn::io::{create_backend, BackendKind};
    for kind in [BackendKind::Batch, BackendKind::Uring] {
        let Ok((mut backend, _)) = create_backend(Some(kind)) else {
            assert!(std::env::var_os("CI").is_none(), "io_uring must work in CI");
            continue;
        };
        let server = bind_listener("127.0.0.1:0".parse().unwrap(), BufferSizes::default()).unwrap();
        let addr = server.local_addr().unwrap();
        let fd = server.as_raw_fd();
        backend.register(fd, 1).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buf = [0u8; 256];
        let mut round_trips = |backend: &mut Box<dyn ringturn::io::Backend>, n: usize| {
            for i in 0..n {
                client.send_to(&[i as u8; 100], addr).unwrap();
                let mut echoed = 0;
                for _ in 0..100 {
                    backend
                        .poll(Duration::from_millis(20), &mut |q, rx| {
                            // Frame in place and send back from the receive buffer.
                            let start = rx.payload.start - 4;
                            rx.buf[start..rx.payload.start].copy_from_slice(&[0x40, 0, 0, 100]);
                            q.send_received(fd, rx.from, rx.buf_id, start..rx.payload.end);
                            echoed += 1;
                        })
                        .unwrap();
                    if echoed > 0 {
                        break;
                    }
                }
                let (len, _) = client.recv_from(&mut buf).unwrap();
                assert_eq!(len, 104);
            }
        };
        round_trips(&mut backend, 200); // warm up: buffers and slots reach their working size
        let n = allocations_during(|| round_trips(&mut backend, 1000));
        assert_eq!(
            n, 0,
            "{kind:?}: 1000 received-and-forwarded datagrams made {n} heap allocations"
        );
        backend.deregister(fd, 1).unwrap();
    }
}

#[test]
fn backends_split_gro_bursts_without_allocating() {
    use ringturn::io::socket::{bind_relay, BufferSizes};
    use ringturn::io::{create_backend, BackendKind, RecvOptions};
    const SEGMENTS: usize = 16;
    for kind in [BackendKind::Batch, BackendKind::Uring] {
        let Ok((mut backend, _)) = create_backend(Some(kind)) else {
            assert!(std::env::var_os("CI").is_none(), "io_uring must work in CI");
            continue;
        };
        let sizes = BufferSizes {
            rcvbuf: Some(8 << 20),
            sndbuf: Some(8 << 20),
        };
        let relay = bind_relay("127.0.0.1:0".parse().unwrap(), sizes).unwrap();
        let to = relay.local_addr().unwrap();
        let fd = relay.as_raw_fd();
        backend
            .register_with(fd, 1, RecvOptions { gro: true })
            .unwrap();
        // The peer sends GSO bursts from its own thread (its allocations are not counted here).
        let (go, bursts) = std::sync::mpsc::channel::<usize>();
        let peer = std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            let (mut tx, _) = create_backend(Some(BackendKind::Batch)).unwrap();
            for n in bursts {
                for b in 0..n {
                    for s in 0..SEGMENTS {
                        tx.send_owned(sock.as_raw_fd(), to, vec![(b + s) as u8; 1200]);
                    }
                    tx.flush().unwrap();
                }
            }
        });
        let receive = |backend: &mut Box<dyn ringturn::io::Backend>, bursts: usize| {
            let want = bursts * SEGMENTS;
            let mut got = 0;
            let end = std::time::Instant::now() + Duration::from_secs(10);
            while got < want && std::time::Instant::now() < end {
                backend
                    .poll(Duration::from_millis(20), &mut |q, rx| {
                        let start = rx.payload.start - 4;
                        rx.buf[start..rx.payload.start].copy_from_slice(&[0x40, 0, 4, 176]);
                        q.send_received(fd, rx.from, rx.buf_id, start..rx.payload.end);
                        got += 1;
                    })
                    .unwrap();
            }
            assert_eq!(got, want, "{kind:?}: every segment delivered");
        };
        // Warm up with the same load: queues reach their working size.
        go.send(200).unwrap();
        receive(&mut backend, 200);
        go.send(200).unwrap();
        let n = allocations_during(|| receive(&mut backend, 200));
        assert_eq!(
            n, 0,
            "{kind:?}: 3,200 datagrams from coalesced receives made {n} heap allocations"
        );
        assert!(
            backend.counters().gro_receives > 0,
            "{kind:?}: the bursts arrived coalesced"
        );
        drop(go);
        peer.join().unwrap();
        backend.deregister(fd, 1).unwrap();
    }
}
