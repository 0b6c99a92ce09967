//! TURN over TCP and TLS against the real server (RFC 8656 §3.1): allocate
//! over a stream, relay to a UDP peer both ways in ChannelData (padded per
//! §12.5) and Send/Data-indication modes, on both I/O backends; the
//! allocation dies with its connection; and the protections a public server
//! needs: garbage, a stream that stops mid-frame, a TLS handshake that never
//! completes, connection limits.

mod common;

use common::long_term::TurnRequests;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::stream_client::{connect_tcp, connect_tls, tls_config, StreamTurnClient};
use ringturn::io::stream::StreamLimits;
use ringturn::io::BackendKind;
use ringturn::run::{start, RunningServer, StreamSettings};
use ringturn::stun::{Message, Method};
use ringturn::tls::{TlsReloader, TlsSettings};

struct TestCert {
    dir: std::path::PathBuf,
    settings: TlsSettings,
    pem: String,
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A self-signed certificate for "localhost", made now (never committed).
fn make_cert(tag: &str) -> TestCert {
    let dir = std::env::temp_dir().join(format!("ringturn-stream-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = write_cert(&dir);
    TestCert {
        settings: TlsSettings {
            cert: dir.join("cert.pem"),
            pkey: dir.join("key.pem"),
            tls12: true,
            tls12_ciphers: None,
        },
        dir,
        pem,
    }
}

fn write_cert(dir: &std::path::Path) -> String {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("cert.pem"), c.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), c.signing_key.serialize_pem()).unwrap();
    c.cert.pem()
}

fn start_server(
    backend: BackendKind,
    min_port: u16,
    cert: Option<&TestCert>,
    limits: StreamLimits,
) -> RunningServer {
    let mut settings =
        common::server::settings(backend, 2, min_port, common::server::loopback_peers());
    let tls = cert.map(|c| TlsReloader::new(c.settings.clone()).unwrap());
    settings.streams = StreamSettings {
        tcp: true,
        tls_listen: if tls.is_some() {
            vec!["127.0.0.1:0".parse().unwrap()]
        } else {
            vec![]
        },
        tls,
        limits,
    };
    start(settings).unwrap()
}

fn peer() -> UdpSocket {
    let p = UdpSocket::bind("127.0.0.1:0").unwrap();
    p.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    p
}

fn allocations(server: &RunningServer) -> u64 {
    server
        .metrics
        .iter()
        .map(|m| m.allocations.load(std::sync::atomic::Ordering::Relaxed))
        .sum()
}

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Allocate, then relay 20 messages each way in both modes; returns the client.
fn relay_both_ways(mut client: StreamTurnClient) -> StreamTurnClient {
    let relay = client.allocate().expect("allocate over the stream");
    assert_eq!(relay.ip().to_string(), "127.0.0.1");
    let peer = peer();
    let peer_addr = peer.local_addr().unwrap();
    // Send/Data indications (RFC 8656 §11).
    client.create_permission(peer_addr).expect("permission");
    for i in 0..20u8 {
        let payload = vec![i; 17 + usize::from(i)];
        client.send_indication(peer_addr, &payload);
        let mut buf = [0u8; 2048];
        let (n, from) = peer.recv_from(&mut buf).expect("peer receives");
        assert_eq!((from, &buf[..n]), (relay, &payload[..]));
        peer.send_to(&payload, relay).unwrap();
        let (from_peer, data) = client.recv_data_indication().expect("data indication");
        assert_eq!((from_peer, data), (peer_addr, payload));
    }
    // ChannelData (RFC 8656 §12), odd lengths so padding matters.
    client
        .channel_bind(0x4001, peer_addr)
        .expect("channel bind");
    for i in 0..20u8 {
        let payload = vec![i ^ 0x5a; 1 + 3 * usize::from(i)];
        client.send_channel_data(0x4001, &payload);
        let mut buf = [0u8; 2048];
        let (n, _) = peer
            .recv_from(&mut buf)
            .expect("peer receives channel data");
        assert_eq!(&buf[..n], &payload[..]);
        peer.send_to(&payload, relay).unwrap();
        assert_eq!(client.recv_channel_data(), Some((0x4001, payload)));
    }
    client
}

#[test]
fn rfc8656_3_1_turn_over_tcp_relays_both_ways_on_each_backend() {
    for (i, backend) in [BackendKind::Uring, BackendKind::Batch]
        .into_iter()
        .enumerate()
    {
        let server = start_server(
            backend,
            52000 + 400 * i as u16,
            None,
            StreamLimits::default(),
        );
        let addr = server.tcp_listening[0];
        assert_eq!(addr, server.listening[0], "TCP on the UDP listening port");
        let client = StreamTurnClient::new(Box::new(connect_tcp(addr)), "alice", "secret");
        let client = relay_both_ways(client);
        // The connection closes: its allocation goes at once.
        assert_eq!(allocations(&server), 1);
        drop(client);
        wait_until(
            "the allocation to go with its connection",
            Duration::from_secs(2),
            || allocations(&server) == 0,
        );
        server.stop().unwrap();
    }
}

#[test]
fn rfc8656_3_1_turn_over_tls_relays_both_ways_with_alpn() {
    let cert = make_cert("tls");
    for (i, backend) in [BackendKind::Uring, BackendKind::Batch]
        .into_iter()
        .enumerate()
    {
        let server = start_server(
            backend,
            53000 + 400 * i as u16,
            Some(&cert),
            StreamLimits::default(),
        );
        let tls = connect_tls(server.tls_listening[0], tls_config(&cert.pem));
        // RFC 7443: the server picks "stun.turn".
        assert_eq!(tls.conn.alpn_protocol(), Some(&b"stun.turn"[..]));
        let client = relay_both_ways(StreamTurnClient::new(Box::new(tls), "alice", "secret"));
        drop(client);
        wait_until(
            "the allocation to go with its connection",
            Duration::from_secs(2),
            || allocations(&server) == 0,
        );
        server.stop().unwrap();
    }
}

#[test]
fn tls_1_2_clients_are_served_too() {
    let cert = make_cert("tls12");
    let server = start_server(
        BackendKind::Batch,
        54000,
        Some(&cert),
        StreamLimits::default(),
    );
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(cert.pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tls = connect_tls(server.tls_listening[0], Arc::new(config));
    assert_eq!(
        tls.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let mut client = StreamTurnClient::new(Box::new(tls), "alice", "secret");
    client.allocate().expect("allocate over TLS 1.2");
    server.stop().unwrap();
}

fn short_limits() -> StreamLimits {
    StreamLimits {
        handshake_timeout: Duration::from_secs(1),
        first_message_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        ..StreamLimits::default()
    }
}

/// Reads until EOF or reset; how long it took, or None if still open at `limit`.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => continue, // a TLS alert, say
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(start.elapsed())
            }
            Err(_) => return None,
        }
    }
}

fn binding_answered_over_tcp(server: SocketAddr) {
    let mut c = StreamTurnClient::new(Box::new(connect_tcp(server)), "alice", "secret");
    let resp = c.transact_once(Method::BINDING, &[]);
    assert!(Message::parse(&resp).unwrap().class() == ringturn::stun::Class::SuccessResponse);
}

#[test]
fn a_garbage_stream_is_cut_off_at_once_and_others_are_served() {
    let server = start_server(BackendKind::Uring, 54400, None, short_limits());
    let addr = server.tcp_listening[0];
    let mut bad = connect_tcp(addr);
    bad.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let took = closed_within(&mut bad, Duration::from_secs(3)).expect("cut off");
    assert!(
        took < Duration::from_millis(900),
        "at once, not at the deadline: {took:?}"
    );
    // Valid STUN, then bytes that are neither STUN nor ChannelData.
    let mut bad = connect_tcp(addr);
    let mut c = StreamTurnClient::new(Box::new(bad.try_clone().unwrap()), "alice", "secret");
    c.transact_once(Method::BINDING, &[]);
    bad.write_all(&[0xC0; 64]).unwrap();
    assert!(closed_within(&mut bad, Duration::from_secs(3)).is_some());
    binding_answered_over_tcp(addr);
    server.stop().unwrap();
}

#[test]
fn a_stream_that_stops_mid_frame_is_cut_off_within_its_deadline() {
    let server = start_server(BackendKind::Batch, 54600, None, short_limits());
    let addr = server.tcp_listening[0];
    // Half a Binding request, then silence: the first-message deadline (1 s).
    let mut half = connect_tcp(addr);
    half.write_all(&[0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 1, 2])
        .unwrap();
    let took = closed_within(&mut half, Duration::from_secs(4)).expect("cut off");
    assert!(
        took >= Duration::from_millis(800),
        "not before its deadline: {took:?}"
    );
    // A whole message, then half a ChannelData frame and silence: the idle deadline.
    let mut stalled = connect_tcp(addr);
    let mut c = StreamTurnClient::new(Box::new(stalled.try_clone().unwrap()), "alice", "secret");
    c.transact_once(Method::BINDING, &[]);
    stalled
        .write_all(&[0x40, 0x01, 0x00, 0x40, 1, 2, 3])
        .unwrap();
    assert!(closed_within(&mut stalled, Duration::from_secs(4)).is_some());
    binding_answered_over_tcp(addr);
    server.stop().unwrap();
}

#[test]
fn a_tls_handshake_that_never_completes_is_cut_off() {
    let cert = make_cert("stall");
    let server = start_server(BackendKind::Uring, 54800, Some(&cert), short_limits());
    // Connects to the TLS port and says nothing.
    let mut silent = connect_tcp(server.tls_listening[0]);
    let took = closed_within(&mut silent, Duration::from_secs(4)).expect("cut off");
    assert!(took >= Duration::from_millis(800), "{took:?}");
    // Half a ClientHello record.
    let mut partial = connect_tcp(server.tls_listening[0]);
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    assert!(closed_within(&mut partial, Duration::from_secs(4)).is_some());
    // Plain STUN on the TLS port is not TLS: refused with an alert and closed.
    let mut plain = connect_tcp(server.tls_listening[0]);
    plain
        .write_all(&[
            0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ])
        .unwrap();
    let took = closed_within(&mut plain, Duration::from_secs(4)).expect("cut off");
    assert!(took < Duration::from_millis(900), "{took:?}");
    // A real client is still served.
    let tls = connect_tls(server.tls_listening[0], tls_config(&cert.pem));
    StreamTurnClient::new(Box::new(tls), "alice", "secret")
        .allocate()
        .expect("allocate");
    server.stop().unwrap();
}

#[test]
fn connections_past_the_per_address_limit_are_refused() {
    let limits = StreamLimits {
        max_per_ip: 3,
        ..StreamLimits::default()
    };
    let server = start_server(BackendKind::Batch, 55000, None, limits);
    let addr = server.tcp_listening[0];
    let held: Vec<TcpStream> = (0..3).map(|_| connect_tcp(addr)).collect();
    wait_until("three connections", Duration::from_secs(2), || {
        server.streams.open() == 3
    });
    let mut fourth = connect_tcp(addr);
    assert!(
        closed_within(&mut fourth, Duration::from_secs(2)).is_some(),
        "refused"
    );
    drop(held);
    wait_until("the slots to free", Duration::from_secs(2), || {
        server.streams.open() == 0
    });
    binding_answered_over_tcp(addr);
    server.stop().unwrap();
}

#[test]
fn an_idle_connection_with_an_allocation_stays_and_one_without_goes() {
    let server = start_server(BackendKind::Uring, 55200, None, short_limits());
    let addr = server.tcp_listening[0];
    let mut with = StreamTurnClient::new(Box::new(connect_tcp(addr)), "alice", "secret");
    with.allocate().unwrap();
    let mut without = connect_tcp(addr);
    let mut c = StreamTurnClient::new(Box::new(without.try_clone().unwrap()), "alice", "secret");
    c.transact_once(Method::BINDING, &[]);
    // Past the 1 s idle timeout: the one without an allocation is gone.
    assert!(closed_within(&mut without, Duration::from_secs(3)).is_some());
    // The allocation's lifetime governs the other one: still usable.
    with.refresh(600)
        .expect("the connection with an allocation is alive");
    server.stop().unwrap();
}

#[test]
fn sighup_reload_serves_the_new_certificate_and_keeps_live_connections() {
    let cert = make_cert("reload");
    let server = start_server(
        BackendKind::Uring,
        55400,
        Some(&cert),
        StreamLimits::default(),
    );
    let addr = server.tls_listening[0];
    let mut old = StreamTurnClient::new(
        Box::new(connect_tls(addr, tls_config(&cert.pem))),
        "alice",
        "secret",
    );
    old.allocate().unwrap();
    let new_pem = write_cert(&cert.dir);
    server.tls.as_ref().unwrap().reload().unwrap();
    // A new connection gets the new certificate (it trusts only the new one).
    let mut new = StreamTurnClient::new(
        Box::new(connect_tls(addr, tls_config(&new_pem))),
        "alice",
        "secret",
    );
    new.allocate().unwrap();
    // The live connection and its allocation are untouched.
    old.refresh(600).expect("old connection alive after reload");
    assert_eq!(allocations(&server), 2);
    server.stop().unwrap();
}

/// A free TCP+UDP port on 127.0.0.1 (released again; the server binds it next).
fn free_port() -> u16 {
    for _ in 0..50 {
        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn spawn_ringturn(args: &[String]) -> common::process::GroupGuard {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ringturn"));
    cmd.args(args);
    common::process::GroupGuard::spawn(cmd)
}

fn wait_for_tcp(addr: SocketAddr) {
    wait_until("the server to listen", Duration::from_secs(10), || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
    });
}

#[test]
fn ten_thousand_idle_connections_are_cut_off_and_others_are_served() {
    const IDLE: usize = 10_000;
    let limit = ringturn::io::raise_fd_limit().unwrap();
    assert!(
        limit >= IDLE as u64 + 500,
        "this test needs an open-file limit above {IDLE} (ulimit -Hn is {limit})"
    );
    let port = free_port();
    let server = spawn_ringturn(&[
        "--listening-ip=127.0.0.1".into(),
        format!("--listening-port={port}"),
        "--relay-ip=127.0.0.1".into(),
        "--realm=example.org".into(),
        "--user=alice:secret".into(),
        "--workers=2".into(),
        "--max-connections-per-ip=0".into(),
        "--stream-first-message-timeout=3".into(),
    ]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_for_tcp(addr);
    let baseline = open_fds(server.pid());
    let started = Instant::now();
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap());
    }
    let opened = started.elapsed();
    // While they hang, others are served: over TCP and over UDP.
    binding_answered_over_tcp(addr);
    let udp = peer();
    let mut client = common::udp_client::UdpTurnClient::new("127.0.0.1:0", addr, "alice", "secret");
    client
        .allocate()
        .expect("allocate over UDP while 10,000 connections idle");
    drop(udp);
    // Every idle one is cut off at its first-message deadline (3 s after its accept).
    for s in &idle {
        s.set_nonblocking(true).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut open: Vec<&TcpStream> = idle.iter().collect();
    while !open.is_empty() && Instant::now() < deadline {
        open.retain(|s| {
            let mut b = [0u8; 16];
            let mut s: &TcpStream = s;
            matches!(s.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        });
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        open.is_empty(),
        "{} of {IDLE} idle connections still open 15 s after the deadline (opened in {opened:?})",
        open.len()
    );
    // And the server gave their descriptors back.
    wait_until(
        "the server's descriptors to return",
        Duration::from_secs(5),
        || open_fds(server.pid()) <= baseline + 8,
    );
    binding_answered_over_tcp(addr);
    drop(server);
}

#[test]
fn a_real_sighup_reloads_the_certificate() {
    let cert = make_cert("sighup");
    let port = free_port();
    let tls_port = free_port();
    let mut server = spawn_ringturn(&[
        "--listening-ip=127.0.0.1".into(),
        format!("--listening-port={port}"),
        format!("--tls-listening-port={tls_port}"),
        format!("--cert={}", cert.settings.cert.display()),
        format!("--pkey={}", cert.settings.pkey.display()),
        "--relay-ip=127.0.0.1".into(),
        "--realm=example.org".into(),
        "--user=alice:secret".into(),
    ]);
    let addr: SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    wait_for_tcp(addr);
    let mut old = StreamTurnClient::new(
        Box::new(connect_tls(addr, tls_config(&cert.pem))),
        "alice",
        "secret",
    );
    old.allocate().unwrap();
    let new_pem = write_cert(&cert.dir);
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // New connections get the new certificate once the reload is done.
    let config = tls_config(&new_pem);
    wait_until("the new certificate", Duration::from_secs(5), || {
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
        let mut sock = connect_tcp(addr);
        let mut ok = true;
        while conn.is_handshaking() && ok {
            ok = conn.complete_io(&mut sock).is_ok();
        }
        ok
    });
    old.refresh(600)
        .expect("the connection from before the reload lives on");
    server.kill_and_reap().unwrap();
}

fn process_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime (fields 14 and 15 of stat).
    [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|v| v.parse::<u64>().ok()))
        .sum()
}

#[test]
fn out_of_descriptors_the_server_pauses_accepting_instead_of_spinning() {
    let port = free_port();
    // A hard limit of 48 descriptors (the server cannot raise it): a few
    // dozen connections exhaust it.
    let mut cmd = std::process::Command::new("sh");
    cmd.args([
        "-c",
        &format!(
            "ulimit -n 48 && exec {} --listening-ip=127.0.0.1 --listening-port={port} \
             --relay-ip=127.0.0.1 --realm=example.org --user=alice:secret --workers=1 \
             --max-connections-per-ip=0 --io-backend=batch",
            env!("CARGO_BIN_EXE_ringturn")
        ),
    ]);
    let server = common::process::GroupGuard::spawn(cmd);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_for_tcp(addr);
    let held: Vec<TcpStream> = (0..80)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let before = process_ticks(server.pid());
    std::thread::sleep(Duration::from_secs(1));
    let used = process_ticks(server.pid()) - before;
    assert!(
        used < 50,
        "the server used {used} ticks in a second with its descriptors exhausted"
    );
    // Once descriptors are free again, new clients are served.
    drop(held);
    wait_until("a Binding answered again", Duration::from_secs(10), || {
        let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
            return false;
        };
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut c = StreamTurnClient::new(Box::new(s), "alice", "secret");
        let (_, req) = c.auth.request(Method::BINDING, &[]);
        c.stream.write_all(&req).is_ok() && c.read_frame().is_some()
    });
    drop(server);
}
