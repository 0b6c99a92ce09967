//! An in-process ringturn for loadgen's tests: loopback only, listening port
//! picked by the kernel, relay ports from a range chosen per test.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ringturn::auth::{Credentials, RestApi};
use ringturn::io::socket::BufferSizes;
use ringturn::run::{start, RunSettings, RunningServer, StreamSettings};
use ringturn::tls::{TlsReloader, TlsSettings};
use ringturn::turn::{PeerPolicy, ServerConfig};
use ringturn_loadgen::config::{LoadConfig, Mode, Transport};
use ringturn_loadgen::report::Report;
use ringturn_loadgen::tls::{self, CertFiles, TlsSettings as ClientTls};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "secret";
pub const SECRET: &str = "s3cret";

pub struct Server {
    pub running: Option<RunningServer>,
    /// The UDP listening address.
    pub addr: SocketAddr,
    /// TURN over TCP and over TLS, when started with [`ringturn_streams`].
    pub tcp: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
    /// The certificate ringturn serves over TLS (self-signed, made by rcgen
    /// for this server), and the directory holding it.
    pub cert: Option<CertFiles>,
    cert_dir: Option<PathBuf>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.running.take() {
            let _ = s.stop();
        }
        if let Some(d) = self.cert_dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// ringturn with `workers` shards, long-term user alice/secret and the REST
/// secret "s3cret", loopback peers allowed, relay ports `min_port..min_port+1999`.
pub fn ringturn(workers: usize, min_port: u16) -> Server {
    let running = start_ringturn(workers, min_port, StreamSettings::none());
    let addr = running.listening[0];
    Server {
        running: Some(running),
        addr,
        tcp: None,
        tls: None,
        cert: None,
        cert_dir: None,
    }
}

/// As [`ringturn`], serving TURN over TCP on the listening address (a kernel-
/// picked port, like UDP's) and over TLS on another (RFC 8656 §3.1), with a
/// self-signed certificate for `localhost` made at test time (rcgen, via
/// loadgen's `tls::self_signed`), TLS 1.2 offered as well as 1.3.
pub fn ringturn_streams(workers: usize, min_port: u16) -> Server {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "loadgen-ringturn-tls-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let cert = tls::self_signed(&dir).expect("self-signed certificate");
    let reloader = TlsReloader::new(TlsSettings {
        cert: cert.cert.clone(),
        pkey: cert.key.clone(),
        tls12: true,
        tls12_ciphers: None,
    })
    .expect("ringturn loads the certificate");
    let running = start_ringturn(
        workers,
        min_port,
        StreamSettings {
            tcp: true,
            tls_listen: vec!["127.0.0.1:0".parse().expect("address")],
            tls: Some(reloader),
            limits: Default::default(),
        },
    );
    let addr = running.listening[0];
    let tcp = *running.tcp_listening.first().expect("a TCP listener");
    let tls_addr = *running.tls_listening.first().expect("a TLS listener");
    Server {
        running: Some(running),
        addr,
        tcp: Some(tcp),
        tls: Some(tls_addr),
        cert: Some(cert),
        cert_dir: Some(dir),
    }
}

impl Server {
    /// Where to reach this server over `transport`.
    pub fn addr_for(&self, transport: Transport) -> SocketAddr {
        match transport {
            Transport::Udp => self.addr,
            Transport::Tcp => self.tcp.expect("started with ringturn_streams"),
            Transport::Tls => self.tls.expect("started with ringturn_streams"),
        }
    }

    /// TCP and TLS connections the server has accepted, all workers together.
    pub fn stream_accepted(&self) -> u64 {
        self.running.as_ref().map_or(0, |r| {
            r.metrics
                .iter()
                .map(|m| m.stream_accepted.load(Ordering::Relaxed))
                .sum()
        })
    }

    /// loadgen's TLS settings trusting exactly this server's certificate.
    pub fn client_tls(&self) -> ClientTls {
        ClientTls {
            ca: Some(self.cert.as_ref().expect("a certificate").cert.clone()),
            ..ClientTls::default()
        }
    }
}

fn start_ringturn(workers: usize, min_port: u16, streams: StreamSettings) -> RunningServer {
    let mut creds = Credentials::new("example.org");
    creds.add_user(USER, PASSWORD);
    creds.rest_api = Some(RestApi::new(vec![SECRET.as_bytes().to_vec()], ':'));
    let configs = (0..workers)
        .map(|w| ServerConfig {
            min_port,
            max_port: min_port + 1999,
            port_offset: w as u16,
            port_stride: workers as u16,
            peer_policy: PeerPolicy {
                allow_loopback: true,
                ..Default::default()
            },
            rng_seed: 7 + w as u64,
            ..ServerConfig::default()
        })
        .collect();
    start(RunSettings {
        buffers: BufferSizes {
            rcvbuf: Some(4 << 20),
            sndbuf: Some(4 << 20),
        },
        streams,
        ..RunSettings::new(
            vec!["127.0.0.1:0".parse().expect("address")],
            configs,
            creds,
        )
    })
    .expect("in-process ringturn starts")
}

/// A short run's config: no progress line, sub-second phases.
pub fn quick(mode: Mode, server: SocketAddr) -> LoadConfig {
    let mut c = LoadConfig::new(mode, server, USER, PASSWORD);
    c.progress = false;
    c.clients = 8;
    c.warmup = Duration::from_millis(200);
    c.duration = Duration::from_millis(800);
    c.drain = Duration::from_secs(2);
    c.setup_timeout = Duration::from_secs(10);
    c.label = "in-process ringturn".into();
    c
}

/// A relay port range per test (test binaries run one after another, so a
/// slot per test in a binary is enough; the server skips a busy port anyway).
pub fn port_base(slot: u16) -> u16 {
    20_000 + (slot % 10) * 2_000
}

/// Every packet came back, exactly once, and nothing else arrived.
pub fn assert_lossless(r: &Report, what: &str) {
    let c = &r.counts;
    assert_eq!(r.clients_ready as usize, r.clients, "{what}\n{}", r.table());
    assert!(c.sent > 0, "{what}: nothing sent\n{}", r.table());
    assert_eq!(c.lost, 0, "{what}: loss over a stream\n{}", r.table());
    assert_eq!(c.received, c.sent, "{what}\n{}", r.table());
    assert_eq!(c.duplicated, 0, "{what}\n{}", r.table());
    assert_eq!(c.foreign, 0, "{what}\n{}", r.table());
    assert_eq!(c.recv_errors, 0, "{what}\n{}", r.table());
    let lat = r.latency_us.expect("latency measured");
    assert_eq!(lat.count, c.received, "{what}");
}
