//! The real `ringturn` binary with `relay-socket-mode=shared` over loopback
//! UDP: two clients on one worker get the same relayed address, and each
//! exchanges data with its own peer both ways through it; a peer endpoint
//! one allocation claimed is refused to the other (508). The server runs in
//! its own process group (tests/common/process.rs), killed on every path.

mod common;

use common::long_term::TurnRequests;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::process::GroupGuard;
use common::udp_client::UdpTurnClient;
use ringturn::stun::{Class, MessageType, MessageWriter, Method, TransactionId};

/// `n` consecutive free UDP ports on 127.0.0.1 (checked by binding them);
/// `salt` keeps tests running side by side apart.
fn free_port_run(n: u16, salt: u16) -> u16 {
    let seed = u16::try_from(std::process::id() % 2000).unwrap_or(0) + salt * 997;
    for i in 0..400u16 {
        let base = 20000 + ((seed + i * 37) % 9000) * 4;
        let held: Vec<_> = (base..base + n)
            .map_while(|p| UdpSocket::bind(("127.0.0.1", p)).ok())
            .collect();
        if held.len() == usize::from(n) {
            return base;
        }
    }
    panic!("no run of {n} free UDP ports");
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls with STUN Binding requests until the server answers.
fn wait_until_serving(server: SocketAddr, guard: &GroupGuard) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut req = [0u8; 64];
    let n = MessageWriter::new(
        &mut req,
        MessageType::new(Method::BINDING, Class::Request),
        TransactionId([7; 12]),
    )
    .unwrap()
    .finish();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        assert!(!guard.leader_exited(), "ringturn exited at start");
        let _ = sock.send_to(&req[..n], server);
        if sock.recv_from(&mut buf).is_ok() {
            return;
        }
    }
    panic!("ringturn did not answer a Binding request within 10 s");
}

fn peer_socket() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

fn recv_from(sock: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = [0u8; 2048];
    loop {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => return Some((buf[..n].to_vec(), from)),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
}

#[test]
fn shared_mode_binary_two_clients_one_relayed_port_each_with_its_own_peer() {
    for backend in ["uring", "batch"] {
        let min_port = free_port_run(4, 1);
        let listen = free_udp_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringturn"));
        cmd.args([
            "--listening-ip=127.0.0.1",
            &format!("--listening-port={listen}"),
            "--relay-ip=127.0.0.1",
            &format!("--min-port={min_port}"),
            &format!("--max-port={}", min_port + 3),
            "--realm=example.org",
            "--user=alice:secret",
            "--user=bob:hunter2",
            "--allow-loopback-peers",
            "--workers=1",
            &format!("--io-backend={backend}"),
            "--relay-socket-mode=shared",
        ]);
        let mut guard = GroupGuard::spawn(cmd);
        let server: SocketAddr = format!("127.0.0.1:{listen}").parse().unwrap();
        wait_until_serving(server, &guard);

        let mut a = UdpTurnClient::new("127.0.0.1:0", server, "alice", "secret");
        let mut b = UdpTurnClient::new("127.0.0.1:0", server, "bob", "hunter2");
        let ra = a.allocate().unwrap();
        let rb = b.allocate().unwrap();
        assert_eq!(
            ra, rb,
            "{backend}: both allocations share the relayed address"
        );
        assert_eq!(
            ra.port(),
            min_port,
            "{backend}: the worker's port of the range"
        );

        let (pa, pa_addr) = peer_socket();
        let (pb, pb_addr) = peer_socket();
        a.channel_bind(0x4001, pa_addr).unwrap();
        b.channel_bind(0x4002, pb_addr).unwrap();
        // B may not take A's peer endpoint (508, Insufficient Capacity).
        assert_eq!(b.channel_bind(0x4003, pa_addr), Err(508), "{backend}");

        for n in 0..10u8 {
            a.send_channel_data(0x4001, &[n; 100]);
            let (data, from) = recv_from(&pa).expect("peer A got nothing");
            assert_eq!((data, from), (vec![n; 100], ra), "{backend}");
            b.send_channel_data(0x4002, &[n + 100; 60]);
            let (data, from) = recv_from(&pb).expect("peer B got nothing");
            assert_eq!((data, from), (vec![n + 100; 60], rb), "{backend}");

            // Back: each peer's datagram reaches only its own client.
            pa.send_to(&[n; 30], ra).unwrap();
            pb.send_to(&[n; 40], rb).unwrap();
            assert_eq!(
                a.recv_channel_data(0x4001).as_deref(),
                Some(&[n; 30][..]),
                "{backend}"
            );
            assert_eq!(
                b.recv_channel_data(0x4002).as_deref(),
                Some(&[n; 40][..]),
                "{backend}"
            );
        }
        // A peer endpoint nobody claimed reaches nobody.
        let (stranger, _) = peer_socket();
        stranger.send_to(b"who?", ra).unwrap();
        a.sock
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        b.sock
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 256];
        assert!(a.recv(&mut buf).is_none(), "{backend}");
        assert!(b.recv(&mut buf).is_none(), "{backend}");
        a.sock
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        a.refresh(0).unwrap();
        b.sock
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        // A is gone: its peer endpoint is free for B now.
        assert_eq!(b.channel_bind(0x4003, pa_addr), Ok(()), "{backend}");
        guard.kill_and_reap().unwrap();
    }
}

/// Relay to relay in shared mode, in-process with two workers: an allocation
/// on worker 0 and one on worker 1 (distinct shared addresses) reach each
/// other, with the worker-to-worker shortcut and through the kernel. (Two
/// allocations of ONE worker share an address, so they cannot reach each
/// other: that endpoint is the same for both.)
#[test]
fn shared_mode_relay_to_relay_across_workers_with_and_without_the_shortcut() {
    use ringturn::auth::Credentials;

    use ringturn::io::BackendKind;
    use ringturn::run::{start, RunSettings};
    use ringturn::turn::{PeerPolicy, RelaySocketMode, ServerConfig};

    for backend in [BackendKind::Uring, BackendKind::Batch] {
        for shortcut in [true, false] {
            let min_port = free_port_run(4, 2);
            let mut creds = Credentials::new("example.org");
            creds.add_user("alice", "secret");
            let configs = (0..2u16)
                .map(|w| ServerConfig {
                    min_port,
                    max_port: min_port + 3,
                    port_offset: w,
                    port_stride: 2,
                    peer_policy: PeerPolicy {
                        allow_loopback: true,
                        ..Default::default()
                    },
                    relay_shortcut: shortcut,
                    relay_socket_mode: RelaySocketMode::Shared,
                    ..ServerConfig::default()
                })
                .collect();
            let server = start(RunSettings {
                backend: Some(backend),
                ..RunSettings::new(vec!["127.0.0.1:0".parse().unwrap()], configs, creds)
            })
            .unwrap();
            let addr = server.listening[0];
            // Allocate until each worker holds one (the kernel hashes client ports to workers).
            let mut on: [Option<(UdpTurnClient, SocketAddr)>; 2] = [None, None];
            for _ in 0..64 {
                if on.iter().all(Option::is_some) {
                    break;
                }
                let mut c = UdpTurnClient::new("127.0.0.1:0", addr, "alice", "secret");
                let r = c.allocate().unwrap();
                assert!((min_port..=min_port + 3).contains(&r.port()), "{r}");
                // Ports are dealt to workers in pairs (ringturn::turn::ports::shard_of_port).
                let w = ringturn::turn::ports::shard_of_port(r.port(), min_port, 2);
                if on[w].is_none() {
                    on[w] = Some((c, r));
                }
            }
            let [Some((mut a, ra)), Some((mut b, rb))] = on else {
                panic!("{backend:?}: 64 clients all landed on one worker");
            };
            a.channel_bind(0x4000, rb).unwrap();
            b.channel_bind(0x4000, ra).unwrap();
            for n in 0..5u8 {
                a.send_channel_data(0x4000, &[n; 50]);
                assert_eq!(
                    b.recv_channel_data(0x4000).as_deref(),
                    Some(&[n; 50][..]),
                    "{backend:?} shortcut={shortcut}: a → b"
                );
                b.send_channel_data(0x4000, &[n; 70]);
                assert_eq!(
                    a.recv_channel_data(0x4000).as_deref(),
                    Some(&[n; 70][..]),
                    "{backend:?} shortcut={shortcut}: b → a"
                );
            }
            server.stop().unwrap();
        }
    }
}
