//! TCP relaying (RFC 6062): on the sans-IO core with a virtual clock and a
//! fake I/O layer, then over real sockets — a peer connecting in
//! (ConnectionAttempt) and the client connecting out (Connect), each with a
//! bound data connection carrying bytes both ways.

mod common;

use common::long_term::TurnRequests;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::stream_client::{connect_tcp, StreamTurnClient};
use common::{addr, Client, Harness};
use ringturn::io::BackendKind;
use ringturn::run::{start, RunningServer};
use ringturn::stun::{
    ConnectionId, Message, Method, RequestedTransport, TransportProtocol, XorPeerAddress,
};
use ringturn::turn::{
    ClientTransport, ClientTuple, PeerPolicy, ServerConfig, CONNECTION_BIND_TIMEOUT,
};

fn config() -> ServerConfig {
    ServerConfig {
        peer_policy: PeerPolicy {
            allow_loopback: true,
            ..Default::default()
        },
        ..common::test_config()
    }
}

fn stream_client(port: u16, conn: u64, user: &str, password: &str) -> Client {
    let mut c = Client::new(&format!("127.0.0.1:{port}"), user, password);
    c.tuple = ClientTuple {
        client: addr(&format!("127.0.0.1:{port}")),
        server: common::server_addr(),
        transport: ClientTransport::Stream(conn),
    };
    c
}

fn tcp_allocate(h: &mut Harness, c: &mut Client) -> SocketAddr {
    let resp = c.transact(
        h,
        Method::ALLOCATE,
        &[&RequestedTransport(TransportProtocol::TCP)],
    );
    assert!(resp.is_success(), "{:?}", resp.error_code());
    resp.msg()
        .get::<ringturn::stun::XorRelayedAddress>()
        .unwrap()
        .unwrap()
        .0
}

/// Sends Connect; the answer waits for the fake I/O layer's handshake.
fn connect(h: &mut Harness, c: &mut Client, peer: SocketAddr, ok: bool) -> common::Response {
    let tid = c.fresh_tid();
    let req = c.build(Method::CONNECT, tid, &[&XorPeerAddress(peer)]);
    h.input(c.tuple, &req);
    if let Some(immediate) = h.drain().pop() {
        return common::Response {
            bytes: immediate.payload,
        };
    }
    let (connection, _, to) = h
        .connects
        .pop()
        .expect("the core asks the I/O layer to connect");
    assert_eq!(to, peer);
    let result = if ok {
        Ok(())
    } else {
        Err(std::io::ErrorKind::ConnectionRefused)
    };
    h.server.handle_peer_connected(h.now, connection, result);
    h.run_commands();
    common::Response {
        bytes: h.drain().pop().expect("the Connect answer").payload,
    }
}

fn connection_id(resp: &common::Response) -> u32 {
    resp.msg().get::<ConnectionId>().unwrap().unwrap().0
}

#[test]
fn rfc6062_5_1_tcp_allocation_needs_a_stream_and_refuses_udp_only_attributes() {
    let _alone = alone();
    let mut h = Harness::new(config());
    let mut udp = Client::new("127.0.0.1:5000", "alice", "secret");
    let resp = udp.transact(
        &mut h,
        Method::ALLOCATE,
        &[&RequestedTransport(TransportProtocol::TCP)],
    );
    assert_eq!(resp.error_code(), Some(400));
    let mut c = stream_client(5001, 1, "alice", "secret");
    let resp = c.transact(
        &mut h,
        Method::ALLOCATE,
        &[
            &RequestedTransport(TransportProtocol::TCP),
            &ringturn::stun::EvenPort {
                reserve_next: false,
            },
        ],
    );
    assert_eq!(resp.error_code(), Some(400));
    let relay = tcp_allocate(&mut h, &mut c);
    assert!(
        h.open_relays.contains(&relay),
        "a TCP listener on the relayed address"
    );
}

#[test]
fn rfc6062_5_2_connect_answers_with_a_connection_id_and_refuses_duplicates() {
    let _alone = alone();
    let mut h = Harness::new(config());
    let mut c = stream_client(5002, 1, "alice", "secret");
    // Connect on a UDP allocation is refused.
    let mut u = Client::new("127.0.0.1:5003", "alice", "secret");
    u.allocate(&mut h).unwrap();
    let resp = connect(&mut h, &mut u, addr("127.0.0.1:9000"), true);
    assert_eq!(resp.error_code(), Some(400));
    tcp_allocate(&mut h, &mut c);
    let peer = addr("127.0.0.1:9000");
    let resp = connect(&mut h, &mut c, peer, true);
    assert!(resp.is_success(), "{:?}", resp.error_code());
    assert_ne!(connection_id(&resp), 0);
    // §5.2: a second Connect to the same peer is 446.
    let resp = connect(&mut h, &mut c, peer, true);
    assert_eq!(resp.error_code(), Some(446));
    // A failed handshake is 447.
    let resp = connect(&mut h, &mut c, addr("127.0.0.1:9001"), false);
    assert_eq!(resp.error_code(), Some(447));
    // A forbidden peer is 403.
    let resp = connect(&mut h, &mut c, addr("0.0.0.0:9"), true);
    assert_eq!(resp.error_code(), Some(403));
}

#[test]
fn rfc6062_5_4_connection_bind_joins_a_new_connection_and_checks_it() {
    let _alone = alone();
    let mut h = Harness::new(config());
    let mut c = stream_client(5004, 1, "alice", "secret");
    tcp_allocate(&mut h, &mut c);
    let resp = connect(&mut h, &mut c, addr("127.0.0.1:9000"), true);
    let cid = connection_id(&resp);
    // On the control connection (which has the allocation): 400.
    let resp = c.transact(&mut h, Method::CONNECTION_BIND, &[&ConnectionId(cid)]);
    assert_eq!(resp.error_code(), Some(400));
    // Another user may not take it: 441.
    let mut bob = stream_client(5005, 2, "bob", "hunter2");
    let resp = bob.transact(&mut h, Method::CONNECTION_BIND, &[&ConnectionId(cid)]);
    assert_eq!(resp.error_code(), Some(441));
    // Unknown CONNECTION-ID: 400.
    let mut data = stream_client(5006, 3, "alice", "secret");
    let resp = data.transact(
        &mut h,
        Method::CONNECTION_BIND,
        &[&ConnectionId(cid ^ 0x100)],
    );
    assert_eq!(resp.error_code(), Some(400));
    // The owner, on a new connection: success, and the I/O layer joins them.
    let resp = data.transact(&mut h, Method::CONNECTION_BIND, &[&ConnectionId(cid)]);
    assert!(resp.is_success(), "{:?}", resp.error_code());
    assert_eq!(h.bound, vec![(cid, data.tuple)]);
    // Bound once only.
    let mut again = stream_client(5007, 4, "alice", "secret");
    let resp = again.transact(&mut h, Method::CONNECTION_BIND, &[&ConnectionId(cid)]);
    assert_eq!(resp.error_code(), Some(400));
}

#[test]
fn rfc6062_5_3_peer_connections_need_a_permission_and_are_announced() {
    let _alone = alone();
    let mut h = Harness::new(config());
    let mut c = stream_client(5008, 1, "alice", "secret");
    let relay = tcp_allocate(&mut h, &mut c);
    let peer = addr("127.0.0.1:7777");
    assert_eq!(
        h.server.handle_peer_connection(h.now, relay, peer),
        None,
        "no permission"
    );
    c.create_permission(&mut h, &[peer]).unwrap();
    let cid = h
        .server
        .handle_peer_connection(h.now, relay, peer)
        .expect("accepted");
    let attempt = h.drain().pop().expect("ConnectionAttempt indication");
    assert_eq!(attempt.to, c.tuple);
    let m = Message::parse(&attempt.payload).unwrap();
    assert_eq!(m.method(), Method::CONNECTION_ATTEMPT);
    assert_eq!(m.get::<ConnectionId>().unwrap().unwrap().0, cid);
    assert_eq!(m.get::<XorPeerAddress>().unwrap().unwrap().0, peer);
    // §5.3: not bound within 30 s: closed.
    h.advance(CONNECTION_BIND_TIMEOUT + Duration::from_secs(1));
    assert_eq!(h.closed_peers, vec![cid]);
    assert_eq!(h.server.tcp_connection_count(), 0);
}

#[test]
fn rfc6062_peer_connections_end_with_their_allocation() {
    let _alone = alone();
    let mut h = Harness::new(config());
    let mut c = stream_client(5009, 1, "alice", "secret");
    tcp_allocate(&mut h, &mut c);
    let cid = connection_id(&connect(&mut h, &mut c, addr("127.0.0.1:9000"), true));
    // The control connection closes: allocation and peer connection go.
    h.server.handle_client_closed(&c.tuple);
    h.run_commands();
    assert_eq!(h.closed_peers, vec![cid]);
    assert!(h.open_relays.is_empty());
}

// ---------------------------------------------------------------- real sockets

/// Relay ports below Linux's ephemeral range (32768-60999): a test run just
/// before this one (the signaling tests' thousands of loopback connections)
/// leaves TIME_WAIT sockets on ephemeral ports, and an RFC 6062 relay
/// listener on such a port was seen refusing the peer's connection (see the
/// notes of issue 14); here the relay ports cannot be an earlier connection's.
const RELAY_PORTS_BASE: u16 = 30000;

fn start_server(backend: BackendKind, min_port: u16, workers: usize) -> RunningServer {
    let base = ServerConfig {
        relay_ips: vec!["127.0.0.1".parse().unwrap()],
        ..config()
    };
    let mut settings = common::server::settings(backend, workers, min_port, base);
    settings.streams.tcp = true;
    start(settings).unwrap()
}

fn alloc_tcp(server: &RunningServer) -> (StreamTurnClient, SocketAddr) {
    let mut c = StreamTurnClient::new(
        Box::new(connect_tcp(server.tcp_listening[0])),
        "alice",
        "secret",
    );
    let resp = c
        .transact(
            Method::ALLOCATE,
            &[&RequestedTransport(TransportProtocol::TCP)],
        )
        .expect("TCP allocation");
    let relay = Message::parse(&resp)
        .unwrap()
        .get::<ringturn::stun::XorRelayedAddress>()
        .unwrap()
        .unwrap()
        .0;
    (c, relay)
}

/// A data connection bound to `cid`, authenticated like `control`.
fn bind(server: &RunningServer, control: &StreamTurnClient, cid: u32) -> TcpStream {
    let stream = connect_tcp(server.tcp_listening[0]);
    let mut data = StreamTurnClient::new(Box::new(stream.try_clone().unwrap()), "alice", "secret");
    data.auth.realm = control.auth.realm.clone();
    data.auth.nonce = control.auth.nonce.clone();
    data.transact(Method::CONNECTION_BIND, &[&ConnectionId(cid)])
        .expect("ConnectionBind");
    stream
}

fn exchange(data: &mut TcpStream, peer: &mut TcpStream) {
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    data.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    // Big enough to need several reads and writes on the way.
    let up: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let writer = {
        let mut d = data.try_clone().unwrap();
        let up = up.clone();
        std::thread::spawn(move || d.write_all(&up).unwrap())
    };
    let mut got = vec![0u8; up.len()];
    peer.read_exact(&mut got).expect("the peer gets every byte");
    writer.join().unwrap();
    assert!(got == up, "bytes arrive in order and intact");
    peer.write_all(b"and back").unwrap();
    let mut back = [0u8; 8];
    data.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"and back");
}

#[test]
fn rfc6062_outgoing_and_incoming_connections_carry_bytes_both_ways() {
    let _alone = alone();
    for (i, backend) in [BackendKind::Uring, BackendKind::Batch]
        .into_iter()
        .enumerate()
    {
        let server = start_server(backend, RELAY_PORTS_BASE + 400 * i as u16, 2);
        let (mut control, relay) = alloc_tcp(&server);
        // Outgoing (§4.3): Connect to a listening peer.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer_addr = listener.local_addr().unwrap();
        let resp = control
            .transact(Method::CONNECT, &[&XorPeerAddress(peer_addr)])
            .expect("Connect");
        let cid = Message::parse(&resp)
            .unwrap()
            .get::<ConnectionId>()
            .unwrap()
            .unwrap()
            .0;
        let (mut peer, from) = listener.accept().unwrap();
        assert_eq!(from, relay, "the peer sees the relayed address");
        let mut data = bind(&server, &control, cid);
        exchange(&mut data, &mut peer);
        // Incoming (§4.4): a peer with a permission connects to the relayed address.
        let mut peer2 = TcpStream::connect(relay).unwrap();
        let attempt = control.read_frame().expect("ConnectionAttempt");
        let m = Message::parse(&attempt).unwrap();
        assert_eq!(m.method(), Method::CONNECTION_ATTEMPT);
        assert_eq!(
            m.get::<XorPeerAddress>().unwrap().unwrap().0,
            peer2.local_addr().unwrap()
        );
        let cid2 = m.get::<ConnectionId>().unwrap().unwrap().0;
        let mut data2 = bind(&server, &control, cid2);
        exchange(&mut data2, &mut peer2);
        // Plain TCP data connections are spliced, and every byte was counted.
        let sum = |f: fn(&ringturn::metrics::WorkerMetrics) -> u64| -> u64 {
            server.metrics.iter().map(|m| f(m)).sum()
        };
        wait_for(|| {
            sum(|m| {
                m.tcp_relay_spliced
                    .load(std::sync::atomic::Ordering::Relaxed)
            }) == 2
        });
        // 300,000 bytes up and 8 back on each of the two.
        wait_for(|| {
            sum(|m| m.tcp_relay_bytes.load(std::sync::atomic::Ordering::Relaxed)) == 2 * 300_008
        });
        // The peer hangs up: its data connection is closed.
        drop(peer2);
        let mut b = [0u8; 1];
        // Closed (EOF or reset), not merely silent: a read timeout fails this.
        let end = data2.read(&mut b);
        assert!(
            matches!(&end, Ok(0))
                || matches!(&end, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "data connection closed: {end:?}"
        );
        server.stop().unwrap();
    }
}

fn wait_for(mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn rfc6062_tcp_allocations_keep_their_own_address_in_shared_relay_socket_mode() {
    let _alone = alone();
    let mut h = Harness::new(ServerConfig {
        relay_socket_mode: ringturn::turn::RelaySocketMode::Shared,
        ..config()
    });
    let mut udp = Client::new("192.0.2.10:5555", "alice", "secret");
    let shared = udp.allocate(&mut h).unwrap();
    let mut c = stream_client(5010, 1, "alice", "secret");
    let relay = tcp_allocate(&mut h, &mut c);
    assert_ne!(
        relay, shared,
        "a TCP listener of its own, not the shared UDP socket"
    );
    assert!(h.open_relays.contains(&relay));
    let cid = connection_id(&connect(&mut h, &mut c, addr("127.0.0.1:9000"), true));
    assert_ne!(cid, 0);
    // Deleting it closes its listener and its peer connection; the shared socket stays.
    c.refresh(&mut h, 0).unwrap();
    assert!(!h.open_relays.contains(&relay));
    assert!(h.open_relays.contains(&shared));
    assert_eq!(h.closed_peers, vec![cid]);
}

/// CPU ticks the worker threads of this process have used.
/// One test of this file at a time: `worker_ticks` counts every
/// `ringturn-w*` thread of the process, so another test's busy workers
/// would be charged to the idle one being measured.
fn alone() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}

fn worker_ticks() -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("ringturn-w") {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // utime and stime: fields 14 and 15 of stat, 12 and 13 after the name.
        total += fields
            .get(11)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        total += fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

#[test]
fn a_peer_that_resets_before_its_bind_does_not_keep_a_worker_busy() {
    let _alone = alone();
    let server = start_server(BackendKind::Batch, RELAY_PORTS_BASE + 1400, 1);
    let (mut control, relay) = alloc_tcp(&server);
    control
        .create_permission("127.0.0.1:1".parse().unwrap())
        .unwrap();
    let peer = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    peer.connect(&relay.into()).unwrap();
    let attempt = control.read_frame().expect("ConnectionAttempt");
    assert_eq!(
        Message::parse(&attempt).unwrap().method(),
        Method::CONNECTION_ATTEMPT
    );
    // A reset (linger 0), before any ConnectionBind: the server's socket for
    // it is waiting for errors only, and must not spin on the hang-up.
    peer.set_linger(Some(Duration::ZERO)).unwrap();
    drop(peer);
    std::thread::sleep(Duration::from_millis(200));
    let before = worker_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let used = worker_ticks() - before;
    // An idle worker uses next to nothing; a spinning one a whole core (~100 ticks).
    assert!(used < 50, "the worker used {used} ticks in an idle second");
    server.stop().unwrap();
}
