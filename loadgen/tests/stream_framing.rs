//! TURN over a byte stream, without a server: the deframer must give back
//! exactly the messages that were written, however the bytes are split or
//! coalesced, strip ChannelData padding, and answer garbage with an error
//! (never a panic); the send buffer must survive partial, non-blocking writes
//! to a socket nobody reads yet.

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use ringturn::stun::{
    ChannelNumber, Class, Data, MessageType, MessageWriter, Method, TransactionId, XorPeerAddress,
};
use ringturn_loadgen::stream::{
    frame_len, Deframer, Fill, FrameError, OutBuf, StreamConn, MAX_FRAME,
};

/// A ChannelData message as sent over a stream: header, data, zero padding.
fn channel_data(channel: u16, data: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut msg = ringturn::stun::channel_data::write_header(
        ChannelNumber(channel),
        u16::try_from(data.len()).expect("short"),
    )
    .to_vec();
    msg.extend_from_slice(data);
    let mut wire = msg.clone();
    wire.resize(msg.len().next_multiple_of(4), 0);
    (msg, wire)
}

fn binding(tid: u8) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    let n = MessageWriter::new(
        &mut buf,
        MessageType::new(Method::BINDING, Class::Request),
        TransactionId([tid; 12]),
    )
    .expect("writer")
    .finish();
    buf.truncate(n);
    buf
}

fn send_indication(payload_len: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..payload_len).map(|i| i as u8).collect();
    let mut buf = vec![0u8; payload_len + 64];
    let mut w = MessageWriter::new(
        &mut buf,
        MessageType::new(Method::SEND, Class::Indication),
        TransactionId([7; 12]),
    )
    .expect("writer");
    w.add(&XorPeerAddress("127.0.0.2:40000".parse().expect("addr")))
        .expect("peer");
    w.add(&Data(&data)).expect("data");
    let n = w.finish();
    buf.truncate(n);
    buf
}

/// (the messages a reader must get back, the bytes on the wire)
fn conversation() -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut msgs = Vec::new();
    let mut wire = Vec::new();
    for (k, len) in [0usize, 1, 2, 3, 4, 5, 99, 100, 1200, 1201, 1399]
        .iter()
        .enumerate()
    {
        let data: Vec<u8> = (0..*len).map(|i| (i + k) as u8).collect();
        let (m, w) = channel_data(0x4000 + k as u16, &data);
        msgs.push(m);
        wire.extend_from_slice(&w);
        let b = binding(k as u8);
        msgs.push(b.clone());
        wire.extend_from_slice(&b);
        let s = send_indication(*len);
        msgs.push(s.clone());
        wire.extend_from_slice(&s);
    }
    // The top of the RFC 5766 channel range.
    let (m, w) = channel_data(0x7FFF, b"abc");
    msgs.push(m);
    wire.extend_from_slice(&w);
    (msgs, wire)
}

fn drain(d: &mut Deframer, out: &mut Vec<Vec<u8>>) {
    while let Some(f) = d.next_frame().expect("valid stream") {
        out.push(f.to_vec());
    }
}

/// A small deterministic generator (no dependency, reproducible splits).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[test]
fn coalesced_messages_come_out_one_by_one() {
    let (msgs, wire) = conversation();
    let mut d = Deframer::with_capacity(64 << 10);
    assert_eq!(d.extend(&wire), wire.len());
    let mut got = Vec::new();
    drain(&mut d, &mut got);
    assert_eq!(got, msgs);
    assert_eq!(d.buffered(), 0);
}

#[test]
fn split_reads_give_the_same_messages() {
    let (msgs, wire) = conversation();
    // Byte by byte: every possible split point once.
    let mut d = Deframer::with_capacity(256);
    let mut got = Vec::new();
    for b in &wire {
        assert_eq!(d.extend(std::slice::from_ref(b)), 1);
        drain(&mut d, &mut got);
    }
    assert_eq!(got, msgs, "byte by byte");
    // Random chunk sizes, a small starting buffer (it must grow for 1,399-byte data).
    for seed in 1..50u64 {
        let mut rng = Lcg(seed);
        let mut d = Deframer::with_capacity(64);
        let mut got = Vec::new();
        let mut at = 0;
        while at < wire.len() {
            let n = (1 + rng.next() as usize % 3000).min(wire.len() - at);
            let mut fed = 0;
            while fed < n {
                fed += d.extend(&wire[at + fed..at + n]);
                drain(&mut d, &mut got);
            }
            at += n;
        }
        assert_eq!(got, msgs, "seed {seed}");
        assert_eq!(d.buffered(), 0);
        assert!(d.capacity() <= 8 << 10, "grew to {}", d.capacity());
    }
}

#[test]
fn channel_data_padding_is_consumed_not_returned() {
    let (m1, w1) = channel_data(0x4001, &[1, 2, 3, 4, 5]);
    assert_eq!((m1.len(), w1.len()), (9, 12));
    let b = binding(9);
    let mut wire = w1.clone();
    wire.extend_from_slice(&b);
    let mut d = Deframer::with_capacity(128);
    // The first message is complete before its padding arrives, but is held
    // until the padding is there: the next message starts after it.
    d.extend(&wire[..9]);
    assert_eq!(d.next_frame(), Ok(None));
    d.extend(&wire[9..11]);
    assert_eq!(d.next_frame(), Ok(None));
    d.extend(&wire[11..]);
    assert_eq!(d.next_frame().expect("ok").map(<[u8]>::to_vec), Some(m1));
    assert_eq!(d.next_frame().expect("ok").map(<[u8]>::to_vec), Some(b));
    assert_eq!(d.next_frame(), Ok(None));
    assert_eq!(frame_len(&w1), Ok(Some((12, 9))));
}

#[test]
fn the_largest_stun_message_fits() {
    let mut wire = binding(1);
    let len = (MAX_FRAME - 20) as u16;
    wire[2..4].copy_from_slice(&len.to_be_bytes());
    wire.resize(MAX_FRAME, 0xAB);
    let mut d = Deframer::with_capacity(1024);
    let mut at = 0;
    let mut frames = 0;
    while at < wire.len() {
        at += d.extend(&wire[at..(at + 4096).min(wire.len())]);
        while let Some(f) = d.next_frame().expect("valid") {
            assert_eq!(f.len(), MAX_FRAME);
            frames += 1;
        }
    }
    assert_eq!(frames, 1);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let cases: Vec<(Vec<u8>, FrameError)> = vec![
        (vec![0x80, 0, 0, 0], FrameError::NotTurn(0x80)),
        (vec![0xFF; 32], FrameError::NotTurn(0xFF)),
        // A TLS ServerHello seen by a plain TCP client: 0x16 looks like STUN.
        (
            [
                0x16, 0x03, 0x03, 0x00, 0x7a, 0x02, 0x00, 0x00, 0x76, 0x03, 0x03,
            ]
            .into_iter()
            .chain([0u8; 9])
            .collect(),
            FrameError::BadCookie(0x7a02_0000),
        ),
        (vec![0x00, 0x01, 0x00, 0x03], FrameError::BadStunLength(3)),
        (
            {
                let mut b = binding(3);
                b[4] ^= 1;
                b
            },
            FrameError::BadCookie(0x2012_A442),
        ),
    ];
    for (bytes, want) in cases {
        let mut d = Deframer::with_capacity(128);
        d.extend(&bytes);
        assert_eq!(d.next_frame(), Err(want), "{bytes:02x?}");
    }
    // Good messages before the garbage still come out first.
    let (m, w) = channel_data(0x4000, b"hello");
    let mut wire = w;
    wire.push(0xC0);
    let mut d = Deframer::with_capacity(128);
    d.extend(&wire);
    assert_eq!(d.next_frame().expect("ok").map(<[u8]>::to_vec), Some(m));
    assert_eq!(d.next_frame(), Err(FrameError::NotTurn(0xC0)));
    // Random bytes: each step is Ok or Err, bounded, never a panic.
    for seed in 0..300u64 {
        let mut rng = Lcg(seed);
        let mut d = Deframer::with_capacity(64);
        for _ in 0..64 {
            let chunk: Vec<u8> = (0..1 + rng.next() % 40).map(|_| rng.next() as u8).collect();
            if d.extend(&chunk) == 0 {
                break;
            }
            match d.next_frame() {
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
}

#[test]
fn outbuf_pads_channel_data_and_refuses_what_does_not_fit() {
    let mut o = OutBuf::with_capacity(64);
    assert!(o.push(40, |out| {
        out[..4].copy_from_slice(&[0x40, 0x00, 0x00, 0x01]);
        out[4] = 0xEE;
        Some(5)
    }));
    assert_eq!(o.as_slice(), &[0x40, 0, 0, 1, 0xEE, 0, 0, 0]);
    assert!(!o.push(100, |_| Some(1)), "more than the room");
    assert!(!o.push(8, |_| None), "a composer that fails queues nothing");
    assert_eq!(o.pending(), 8);
}

/// A connection to a listener that does not read yet: the send buffer fills,
/// writes are partial and stop at WouldBlock without blocking; once the far
/// side reads, every message arrives, in order, byte for byte.
#[test]
fn partial_writes_and_backpressure_lose_nothing() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let addr = listener.local_addr().expect("addr");
    let mut conn = StreamConn::connect(Ipv4Addr::LOCALHOST, addr, 64 << 10, None).expect("connect");
    let (mut far, _) = listener.accept().expect("accept");
    far.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");

    let mut expected = Vec::new();
    let mut seq = 0u32;
    let started = Instant::now();
    // Queue until the kernel's buffers and ours are full: the push is refused.
    while started.elapsed() < Duration::from_secs(10) {
        let data: Vec<u8> = seq
            .to_be_bytes()
            .iter()
            .copied()
            .cycle()
            .take(1001)
            .collect();
        let (m, _) = channel_data(0x4000, &data);
        if !conn.tx.push_bytes(&m) {
            conn.flush().expect("non-blocking flush");
            if !conn.tx.push_bytes(&m) {
                break;
            }
        }
        expected.push(m);
        seq += 1;
    }
    assert!(
        conn.wants_write(),
        "the far side reads nothing: bytes must be waiting"
    );
    assert!(expected.len() > 100, "{} queued", expected.len());

    // Now read on the far side while flushing here until everything is across.
    let mut d = Deframer::with_capacity(4096);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < expected.len() {
        assert!(
            Instant::now() < deadline,
            "{} of {}",
            got.len(),
            expected.len()
        );
        conn.flush().expect("flush");
        let room = d.spare(16 << 10);
        let n = far.read(room).expect("read");
        assert!(n > 0, "closed early");
        d.commit(n);
        drain(&mut d, &mut got);
    }
    assert!(!conn.wants_write());
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "every message, in order, byte for byte");

    // The server closing the connection is reported as such.
    drop(far);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "close not seen");
        match conn.fill() {
            Ok(Fill::Closed) | Err(_) => break,
            Ok(Fill::Data(_)) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// A "server" that accepts connections and does `what` with each, on its own
/// thread, for at most a few seconds.
fn fake_server(what: fn(std::net::TcpStream)) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(8);
        while Instant::now() < until {
            match listener.accept() {
                Ok((s, _)) => {
                    let _ = s.set_nonblocking(false);
                    what(s);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    addr
}

fn run_against(addr: std::net::SocketAddr) -> ringturn_loadgen::Report {
    use ringturn_loadgen::config::{LoadConfig, Mode, Transport};
    let mut c = LoadConfig::new(Mode::Relay, addr, "test", "test");
    c.transport = Transport::Tcp;
    c.clients = 3;
    c.duration = Duration::from_millis(200);
    c.warmup = Duration::ZERO;
    c.setup_timeout = Duration::from_secs(5);
    let started = Instant::now();
    let r = ringturn_loadgen::run(c).expect("a run that reports");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "no hang: {:?}",
        started.elapsed()
    );
    assert_eq!(r.clients_ready, 0);
    assert_eq!(r.counts.sent, 0);
    r
}

#[test]
fn a_server_that_hangs_up_fails_setup_with_the_reason() {
    let addr = fake_server(|mut s| {
        let mut b = [0u8; 64];
        let _ = s.read(&mut b); // the Allocate request, then hang up
    });
    let r = run_against(addr);
    let why: Vec<_> = r.setup_failures.keys().collect();
    assert!(
        why.iter()
            .any(|k| k.contains("Allocate") && k.contains("closed by the server")),
        "{why:?}"
    );
}

#[test]
fn a_server_that_is_not_turn_fails_setup_with_the_reason() {
    let addr = fake_server(|mut s| {
        use std::io::Write;
        let _ = s.write_all(b"\x80\x00garbage that is not TURN");
        std::thread::sleep(Duration::from_millis(300));
    });
    let r = run_against(addr);
    let why: Vec<_> = r.setup_failures.keys().collect();
    assert!(why.iter().any(|k| k.contains("not TURN")), "{why:?}");
}

/// A TLS echo server (rustls, only `version`) on its own thread: returns its
/// address and, once the handshake is done, the ALPN protocol it agreed to.
fn tls_echo_server(
    cert: &ringturn_loadgen::tls::CertFiles,
    version: &'static rustls::SupportedProtocolVersion,
) -> (
    std::net::SocketAddr,
    std::sync::mpsc::Receiver<Option<Vec<u8>>>,
) {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::PrivateKeyDer;
    use std::io::Write;
    let certs = ringturn_loadgen::tls::load_certs(&cert.cert).expect("cert");
    let key = PrivateKeyDer::from_pem_file(&cert.key).expect("key");
    let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[version])
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    config.alpn_protocols = vec![b"stun.turn".to_vec()];
    let config = std::sync::Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((sock, _)) = listener.accept() else {
            return;
        };
        let _ = sock.set_read_timeout(Some(Duration::from_secs(10)));
        let conn = rustls::ServerConnection::new(config).expect("server connection");
        let mut s = rustls::StreamOwned::new(conn, sock);
        let mut buf = [0u8; 3000];
        let mut told = false;
        // Echo in odd-sized pieces so the client sees splits; bounded by the timeout.
        while let Ok(n) = s.read(&mut buf[..1777]) {
            if n == 0 {
                break;
            }
            if !told {
                let _ = tx.send(s.conn.alpn_protocol().map(<[u8]>::to_vec));
                told = true;
            }
            if s.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    (addr, rx)
}

/// Messages through a real TLS connection (both versions loadgen offers):
/// the handshake runs in the non-blocking loop, ALPN `stun.turn` is agreed,
/// and every message comes back whole, in order.
#[test]
fn tls_connections_carry_messages_both_ways_with_tls_1_2_and_1_3() {
    use ringturn_loadgen::tls::{self, TlsSettings, TlsVersion};
    let dir = std::env::temp_dir().join(format!("loadgen-tls-echo-{}", std::process::id()));
    let cert = tls::self_signed(&dir).expect("certificate");
    for (version, ours) in [
        (&rustls::version::TLS13, TlsVersion::Tls13),
        (&rustls::version::TLS12, TlsVersion::Tls12),
        (&rustls::version::TLS13, TlsVersion::Any),
    ] {
        let (addr, alpn) = tls_echo_server(&cert, version);
        let client = TlsSettings {
            ca: Some(cert.cert.clone()),
            version: ours,
            ..TlsSettings::default()
        }
        .client(addr)
        .expect("client config");
        let mut conn = StreamConn::connect(Ipv4Addr::LOCALHOST, addr, 1 << 20, Some(&client))
            .expect("connect");
        let (msgs, wire) = conversation();
        let mut sent = Vec::new();
        let mut got = Vec::new();
        let mut at = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() < msgs.len() {
            assert!(
                Instant::now() < deadline,
                "{ours:?}: {} of {}",
                got.len(),
                msgs.len()
            );
            // Queue what fits, message by message (frames are whole on the wire).
            while let Some(m) = msgs.get(sent.len()) {
                let Some((len, _)) = frame_len(&wire[at..]).expect("valid") else {
                    break;
                };
                if !conn.tx.push_bytes(&wire[at..at + len]) {
                    break;
                }
                sent.push(m.clone());
                at += len;
            }
            conn.flush().expect("flush");
            match conn.fill().expect("fill") {
                Fill::Closed => panic!("{ours:?}: closed early"),
                Fill::Data(0) => std::thread::sleep(Duration::from_millis(1)),
                Fill::Data(_) => {}
            }
            while let Some(f) = conn.rx.next_frame().expect("TURN") {
                got.push(f.to_vec());
            }
        }
        assert!(
            got == msgs,
            "{ours:?}: every message back, whole and in order"
        );
        assert_eq!(
            alpn.recv_timeout(Duration::from_secs(5))
                .expect("handshake"),
            Some(b"stun.turn".to_vec()),
            "{ours:?}: ALPN"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
