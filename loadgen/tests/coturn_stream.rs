//! loadgen over TCP and TLS against Debian's coturn (`turnserver`): short,
//! bounded relay runs where every packet must come back (loss 0), in
//! ChannelData mode and in Send-indication mode, plus relay-to-relay pairs,
//! an allocation storm, a --max run (backpressure), and a certificate that
//! must be refused. CI runs them; without coturn they are skipped with a
//! message — except under CI, where they fail.
//!
//! As root (CI) each test re-executes itself inside a private network
//! namespace holding only loopback (`unshare --net`, TESTING.md), where fixed
//! ports are safe; otherwise it uses free ports on loopback. coturn runs in
//! its own process group and is killed on every path.

#[path = "../../tests/common/process.rs"]
mod process;

mod common;
use common::assert_lossless;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ringturn_loadgen::config::{LoadConfig, Mode, Rate, SizeMix, Transport};
use ringturn_loadgen::report::Report;
use ringturn_loadgen::tls::{self, CertFiles, TlsSettings};

const IN_NETNS: &str = "RINGTURN_LOADGEN_STREAM_TEST_IN_NETNS";

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// False (after saying why) when the test should not run here.
fn coturn_available(test: &str) -> bool {
    if on_path("turnserver") {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "turnserver (coturn) is not installed, and CI must run {test}: apt-get install coturn"
    );
    eprintln!(
        "SKIPPED {test}: turnserver (coturn) is not installed; apt-get install coturn to run it"
    );
    false
}

/// Runs `test` of this binary again inside a fresh network namespace when we
/// may (root, unshare, ip); true when that happened (and passed), false when
/// the caller should run the body here.
fn ran_in_private_netns(test: &str) -> bool {
    if std::env::var_os(IN_NETNS).is_some() {
        let st = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .expect("ip link set lo up");
        assert!(st.success(), "ip link set lo up");
        return false;
    }
    if !(is_root() && on_path("unshare") && on_path("ip")) {
        return false;
    }
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = Command::new("unshare");
    cmd.arg("--net")
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(IN_NETNS, "1");
    let run = process::run_bounded(cmd, Duration::from_secs(120));
    eprintln!("{}", run.transcript());
    assert!(
        run.status.is_some_and(|s| s.success()),
        "{test} failed inside its network namespace:\n{}",
        run.transcript()
    );
    assert!(
        run.stdout.contains("1 passed"),
        "the re-executed test did not run:\n{}",
        run.transcript()
    );
    true
}

/// A free TCP+UDP port P on 127.0.0.1 with P+1 free too (coturn's alternate port).
fn free_port_pair(avoid: &[u16]) -> u16 {
    for _ in 0..500 {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let p = s.local_addr().expect("addr").port();
        if p >= 60_000 || avoid.iter().any(|a| a.abs_diff(p) <= 1) {
            continue;
        }
        let ok = TcpListener::bind(("127.0.0.1", p)).is_ok()
            && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
            && TcpListener::bind(("127.0.0.1", p + 1)).is_ok();
        if ok {
            return p;
        }
    }
    panic!("no free port pair on 127.0.0.1");
}

struct Coturn {
    _guard: process::GroupGuard,
    tcp: SocketAddr,
    tls: SocketAddr,
    log: PathBuf,
    cert: CertFiles,
    dir: PathBuf,
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// coturn with TESTING.md's flags, serving TCP on one port and TLS on another
/// (a self-signed certificate made for it), waited for until it answers a
/// Binding over TCP and over TLS.
fn start_coturn(name: &str, relay_ports: (u16, u16)) -> Coturn {
    let netns = std::env::var_os(IN_NETNS).is_some();
    let dir = std::env::temp_dir().join(format!("loadgen-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cert = tls::self_signed(&dir).expect("self-signed certificate");
    let (listen, tls_port, (min, max)) = if netns {
        (3478, 5349, (49152, 65535))
    } else {
        let l = free_port_pair(&[]);
        (l, free_port_pair(&[l]), relay_ports)
    };
    let log = dir.join("coturn.log");
    let mut cmd = Command::new("turnserver");
    cmd.args([
        "-n",
        "--listening-ip=127.0.0.1",
        &format!("--listening-port={listen}"),
        &format!("--tls-listening-port={tls_port}"),
        &format!("--cert={}", cert.cert.display()),
        &format!("--pkey={}", cert.key.display()),
        "--relay-ip=127.0.0.1",
        &format!("--min-port={min}"),
        &format!("--max-port={max}"),
        "--lt-cred-mech",
        "--user=test:test",
        "--realm=example.org",
        "--allow-loopback-peers",
        "--no-dtls",
        "--no-cli",
        "--no-stdout-log",
        &format!("--log-file={}", log.display()),
        "--simple-log",
    ]);
    let guard = process::GroupGuard::spawn(cmd);
    let tcp = SocketAddr::from(([127, 0, 0, 1], listen));
    let tls_addr = SocketAddr::from(([127, 0, 0, 1], tls_port));
    let client = settings(&cert).client(tls_addr).expect("TLS client");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = tls::probe(tcp, Transport::Tcp, None, Duration::from_millis(500)).is_ok()
            && tls::probe(
                tls_addr,
                Transport::Tls,
                Some(&client),
                Duration::from_millis(1000),
            )
            .is_ok();
        if ready {
            break;
        }
        assert!(
            !guard.leader_exited(),
            "coturn exited; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        assert!(
            Instant::now() < deadline,
            "coturn did not answer over TCP and TLS within 20 s; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Coturn {
        _guard: guard,
        tcp,
        tls: tls_addr,
        log,
        cert,
        dir,
    }
}

fn settings(cert: &CertFiles) -> TlsSettings {
    TlsSettings {
        ca: Some(cert.cert.clone()),
        ..TlsSettings::default()
    }
}

/// A short paced relay run over `transport`.
fn quick(c: &Coturn, mode: Mode, transport: Transport) -> LoadConfig {
    let server = match transport {
        Transport::Tls => c.tls,
        _ => c.tcp,
    };
    let mut cfg = LoadConfig::new(mode, server, "test", "test");
    cfg.transport = transport;
    cfg.tls = settings(&c.cert);
    cfg.clients = 6;
    cfg.rate = Rate::Pps(200.0);
    cfg.pps_given = true;
    cfg.warmup = Duration::from_millis(200);
    cfg.duration = Duration::from_millis(700);
    cfg.drain = Duration::from_secs(2);
    cfg.setup_timeout = Duration::from_secs(10);
    cfg.label = format!("coturn over {}", transport.name());
    cfg
}

fn run(cfg: LoadConfig, log: &Path) -> Report {
    let started = Instant::now();
    let r = ringturn_loadgen::run(cfg).expect("run");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a bounded run took {:?}",
        started.elapsed()
    );
    assert!(
        r.setup_failures.is_empty(),
        "{}\ncoturn log:\n{}",
        r.table(),
        std::fs::read_to_string(log).unwrap_or_default()
    );
    r
}

fn relay_runs(transport: Transport, test: &str, relay_ports: (u16, u16)) {
    let c = start_coturn(test, relay_ports);

    // 101-byte payloads: every ChannelData message carries 3 bytes of padding
    // (RFC 8656 §12.5), which coturn must find where it belongs.
    let mut cfg = quick(&c, Mode::Relay, transport);
    cfg.size = SizeMix::Fixed(101);
    let r = run(cfg, &c.log);
    assert_lossless(&r, "ChannelData");
    // 6 clients × 200 pps × 0.7 s.
    assert!((700..=1000).contains(&r.counts.sent), "{}", r.counts.sent);
    assert!(r.table().contains(&format!("over {}", transport.name())));

    let mut cfg = quick(&c, Mode::Relay, transport);
    cfg.indications = true;
    cfg.size = SizeMix::Fixed(103);
    let r = run(cfg, &c.log);
    assert_lossless(&r, "Send indications");

    // Relay to relay: both clients on streams, their relays UDP.
    let mut cfg = quick(&c, Mode::Pair, transport);
    cfg.clients = 4;
    cfg.client_ips = ringturn_loadgen::config::default_client_ips(2);
    let r = run(cfg, &c.log);
    assert_lossless(&r, "pairs");

    // As fast as the window allows, bounded by a count: the send buffers fill
    // and drain; a stream still loses nothing.
    let mut cfg = quick(&c, Mode::Relay, transport);
    cfg.rate = Rate::Max { window: 16 };
    cfg.clients = 4;
    cfg.size = SizeMix::Fixed(1201);
    cfg.count = Some(4000);
    let r = run(cfg, &c.log);
    assert_lossless(&r, "--max");
    assert_eq!(r.counts.sent, 4000);

    // An allocation storm: a new connection per allocation.
    let mut cfg = quick(&c, Mode::Allocate, transport);
    cfg.clients = 4;
    cfg.duration = Duration::from_millis(500);
    let r = run(cfg, &c.log);
    let a = r.allocations.as_ref().expect("allocation stats");
    assert!(a.completed > 5, "{}", r.table());
    assert!(a.errors.is_empty(), "{:?}\n{}", a.errors, r.table());
    assert_eq!(a.timeouts, 0, "{}", r.table());
}

#[test]
fn coturn_over_tcp_every_packet_comes_back() {
    let test = "coturn_over_tcp_every_packet_comes_back";
    if !coturn_available(test) || ran_in_private_netns(test) {
        return;
    }
    relay_runs(Transport::Tcp, test, (52_000, 52_999));
}

#[test]
fn coturn_over_tls_every_packet_comes_back() {
    let test = "coturn_over_tls_every_packet_comes_back";
    if !coturn_available(test) || ran_in_private_netns(test) {
        return;
    }
    relay_runs(Transport::Tls, test, (53_000, 53_999));
}

#[test]
fn coturn_over_tls_with_an_untrusted_certificate_fails_setup_quickly() {
    let test = "coturn_over_tls_with_an_untrusted_certificate_fails_setup_quickly";
    if !coturn_available(test) || ran_in_private_netns(test) {
        return;
    }
    let c = start_coturn(test, (54_000, 54_999));
    let other = tls::self_signed(&c.dir.join("other")).expect("another certificate");
    let mut cfg = quick(&c, Mode::Relay, Transport::Tls);
    cfg.tls = settings(&other);
    cfg.clients = 2;
    let started = Instant::now();
    let r = ringturn_loadgen::run(cfg).expect("a run that reports");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(r.clients_ready, 0);
    assert_eq!(r.counts.sent, 0);
    let why: Vec<_> = r.setup_failures.keys().collect();
    assert!(
        why.iter().any(|k| k.contains("certificate")),
        "the reason names the certificate: {why:?}"
    );
}
