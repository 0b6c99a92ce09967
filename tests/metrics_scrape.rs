//! `/metrics` end to end: the server in-process with the metrics endpoint on
//! a free port, known traffic through it (allocations, a channel, ChannelData
//! both ways through a UDP echo peer, a wrong password, garbage), then a
//! scrape over plain HTTP whose counters must agree exactly with what was sent.

mod common;

use common::long_term::TurnRequests;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::udp_client::UdpTurnClient;
use ringturn::auth::Credentials;
use ringturn::io::BackendKind;
use ringturn::run::{start, RunSettings, RunningServer};
use ringturn::turn::{PeerPolicy, ServerConfig};

const WORKERS: usize = 2;
const PACKETS: usize = 50;
const PAYLOAD: usize = 160;

fn start_server(backend: BackendKind, min_port: u16) -> RunningServer {
    let mut creds = Credentials::new("example.org");
    creds.add_user("alice", "secret");
    let configs = (0..WORKERS)
        .map(|w| ServerConfig {
            min_port,
            max_port: min_port + 399,
            port_offset: w as u16,
            port_stride: WORKERS as u16,
            peer_policy: PeerPolicy {
                allow_loopback: true,
                ..Default::default()
            },
            rng_seed: 7 + w as u64,
            ..ServerConfig::default()
        })
        .collect();
    start(RunSettings {
        backend: Some(backend),
        ..RunSettings::new(vec!["127.0.0.1:0".parse().unwrap()], configs, creds)
    })
    .unwrap()
}

/// GET `path` with a plain TcpStream: (status line, headers, body).
fn http_get(addr: SocketAddr, path: &str) -> (String, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a header/body separator");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_owned(), headers.to_owned(), body.to_owned())
}

/// One sample: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the text exposition format strictly enough to catch malformed output:
/// every sample's family has `# HELP` and `# TYPE` lines before it.
fn parse_exposition(body: &str) -> Vec<Sample> {
    let mut helped = BTreeSet::new();
    let mut typed = BTreeMap::new();
    let mut samples = Vec::new();
    for line in body.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has a name and a text");
            assert!(!help.is_empty(), "empty help for {name}");
            assert!(helped.insert(name.to_owned()), "HELP twice for {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a name and a type");
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "unexpected type {kind} for {name}"
            );
            assert!(helped.contains(name), "TYPE before HELP for {name}");
            assert!(typed.insert(name.to_owned(), kind.to_owned()).is_none());
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment line {line:?}");
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = value.parse().expect("a numeric value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').expect("labels end with }");
                let mut labels = BTreeMap::new();
                for pair in inner.split(',') {
                    let (k, v) = pair.split_once('=').expect("label=value");
                    assert!(
                        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "bad label name {k:?}"
                    );
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .expect("quoted label value");
                    labels.insert(k.to_owned(), v.to_owned());
                }
                (name, labels)
            }
            None => (series, BTreeMap::new()),
        };
        assert!(
            name.starts_with("ringturn_"),
            "metric {name} lacks the prefix"
        );
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad metric name {name:?}"
        );
        // A histogram's samples are its family name with _bucket (with an
        // `le` label), _sum or _count.
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .find(|f| typed.get(*f).is_some_and(|k| k == "histogram"))
            .unwrap_or(name);
        let kind = typed
            .get(family)
            .unwrap_or_else(|| panic!("sample of {name} before its TYPE"));
        if kind == "histogram" && name.ends_with("_bucket") {
            assert!(labels.contains_key("le"), "bucket {name} without le");
        }
        if kind == "counter" {
            assert!(
                name.ends_with("_total"),
                "counter {name} should end in _total"
            );
        }
        samples.push((name.to_owned(), labels, value));
    }
    samples
}

/// The sum of `name` over every worker, for samples whose labels include `want`.
fn sum(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> u64 {
    samples
        .iter()
        .filter(|(n, labels, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v as u64)
        .sum()
}

/// Scrapes until `ready` holds (the workers publish at the end of each loop
/// turn) or two seconds pass; returns the last scrape either way.
fn scrape_until(addr: SocketAddr, ready: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (status, headers, body) = http_get(addr, "/metrics");
        assert!(status.contains(" 200 "), "status {status:?}");
        assert!(
            headers
                .to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "headers {headers:?}"
        );
        let samples = parse_exposition(&body);
        if ready(&samples) || Instant::now() > deadline {
            return samples;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A UDP peer that echoes every datagram back to its sender, and counts them.
fn echo_peer() -> (SocketAddr, Arc<AtomicBool>, std::thread::JoinHandle<usize>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let mut echoed = 0;
        let mut buf = [0u8; 2048];
        while !flag.load(Ordering::Relaxed) {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                sock.send_to(&buf[..n], from).unwrap();
                echoed += 1;
            }
        }
        echoed
    });
    (addr, stop, handle)
}

#[test]
fn metrics_agree_with_the_traffic_sent() {
    for (i, backend) in [BackendKind::Uring, BackendKind::Batch]
        .into_iter()
        .enumerate()
    {
        // Relay ports below the kernel's ephemeral range (32768-60999 by default):
        // an echo peer on a port that is also one of our relay addresses would
        // take the relay-to-relay short-circuit and count as a probe drop.
        let server = start_server(backend, 12000 + 1000 * i as u16);
        let metrics =
            ringturn::metrics::spawn("127.0.0.1:0".parse().unwrap(), server.metrics_source())
                .unwrap();
        let maddr = metrics.local_addr();
        let addr = server.listening[0];
        let (peer_addr, peer_stop, peer) = echo_peer();

        // Allocate (401 challenge, then success) and bind a channel.
        let mut client = UdpTurnClient::new("127.0.0.1:0", addr, "alice", "secret");
        client.allocate().unwrap();
        client.channel_bind(0x4001, peer_addr).unwrap();

        // ChannelData out to the echo peer and back, one at a time.
        let mut received = 0;
        for n in 0..PACKETS {
            let payload = vec![n as u8; PAYLOAD];
            client.send_channel_data(0x4001, &payload);
            if client.recv_channel_data(0x4001).as_deref() == Some(&payload[..]) {
                received += 1;
            }
        }
        assert_eq!(received, PACKETS, "{backend:?}: every packet came back");

        // A wrong password: the challenge, then 401 again.
        let mut intruder = UdpTurnClient::new("127.0.0.1:0", addr, "alice", "wrong");
        assert_eq!(intruder.allocate(), Err(401));

        // Garbage, a channel never bound, and ChannelData without an allocation.
        client.sock.send_to(&[0xFF; 12], addr).unwrap();
        client.send_channel_data(0x4002, b"nobody");
        intruder.send_channel_data(0x4001, b"no allocation");

        let drops = |s: &[Sample], reason: &str| {
            sum(s, "ringturn_dropped_datagrams_total", &[("reason", reason)])
        };
        let s = scrape_until(maddr, |s| {
            drops(s, "not_stun_or_channel_data") >= 1
                && drops(s, "no_channel") >= 1
                && drops(s, "no_allocation") >= 1
                && sum(s, "ringturn_relayed_packets_peer_to_client_total", &[]) >= PACKETS as u64
        });

        let info: Vec<_> = s.iter().filter(|(n, _, _)| n == "ringturn_info").collect();
        assert_eq!(info.len(), 1);
        assert_eq!(
            info[0].1.get("backend").map(String::as_str),
            Some(backend.name())
        );
        assert_eq!(info[0].1.get("workers").map(String::as_str), Some("2"));
        assert_eq!(info[0].2, 1.0);

        let n = PACKETS as u64;
        let bytes = (PACKETS * PAYLOAD) as u64;
        let get = |name: &str| sum(&s, name, &[]);
        assert_eq!(
            get("ringturn_relayed_packets_client_to_peer_total"),
            n,
            "{backend:?}"
        );
        assert_eq!(
            get("ringturn_relayed_packets_peer_to_client_total"),
            n,
            "{backend:?}"
        );
        assert_eq!(get("ringturn_relayed_bytes_client_to_peer_total"), bytes);
        assert_eq!(get("ringturn_relayed_bytes_peer_to_client_total"), bytes);
        assert_eq!(get("ringturn_allocations"), 1);
        // Issue 16: one timer per live object (the allocation, its permission,
        // its channel), answers cached for retransmissions, and the workers'
        // busy turns counted.
        assert_eq!(get("ringturn_timers_queued"), 3);
        let cached = get("ringturn_cached_transactions");
        assert!(cached >= 1, "{cached} cached answers");
        assert_eq!(get("ringturn_transaction_cache_full_total"), 0);
        assert!(get("ringturn_worker_busy_turn_seconds_count") > 0);
        // A turn's CPU is part of its wall time (1 ms for clock granularity).
        assert!(
            get("ringturn_worker_longest_turn_cpu_microseconds")
                <= get("ringturn_worker_longest_turn_microseconds") + 1_000
        );
        // No xdp-interface: no fast-path rows.
        assert!(!s
            .iter()
            .any(|(name, _, _)| name.starts_with("ringturn_xdp_")));
        assert_eq!(get("ringturn_allocations_created_total"), 1);
        assert_eq!(get("ringturn_channels_bound_total"), 1);
        assert_eq!(get("ringturn_permissions_installed_total"), 1);
        // Allocate ×2 and ChannelBind from alice, Allocate ×2 from the intruder.
        assert_eq!(get("ringturn_requests_total"), 5);
        let responses = |method: &str, result: &str| {
            sum(
                &s,
                "ringturn_responses_total",
                &[("method", method), ("result", result)],
            )
        };
        assert_eq!(responses("allocate", "success"), 1, "{backend:?}");
        assert_eq!(responses("allocate", "401"), 3, "{backend:?}");
        assert_eq!(responses("channel_bind", "success"), 1, "{backend:?}");
        assert_eq!(get("ringturn_responses_total"), 5, "one answer per request");
        assert_eq!(drops(&s, "not_stun_or_channel_data"), 1);
        assert_eq!(drops(&s, "no_channel"), 1);
        assert_eq!(drops(&s, "no_allocation"), 1, "{backend:?}");
        assert_eq!(get("ringturn_dropped_datagrams_total"), 3, "no other drops");
        // Every worker reports every per-worker family.
        for name in [
            "ringturn_gso_sends_total",
            "ringturn_gso_fallbacks_total",
            "ringturn_gro_receives_total",
            "ringturn_gro_fallbacks_total",
            "ringturn_send_dropped_total",
            "ringturn_cross_worker_forwards_total",
        ] {
            let workers: BTreeSet<_> = s
                .iter()
                .filter(|(n, _, _)| n == name)
                .filter_map(|(_, l, _)| l.get("worker").cloned())
                .collect();
            assert_eq!(workers.len(), WORKERS, "{name}");
        }

        // Anything but /metrics is 404.
        let (status, _, _) = http_get(maddr, "/");
        assert!(status.contains(" 404 "), "{status}");

        peer_stop.store(true, Ordering::Relaxed);
        assert_eq!(peer.join().unwrap(), PACKETS);
        let stopping = Instant::now();
        metrics.stop();
        server.stop().unwrap();
        assert!(stopping.elapsed() < Duration::from_secs(1), "a prompt stop");
        assert!(
            TcpStream::connect_timeout(&maddr, Duration::from_millis(200)).is_err(),
            "the endpoint is closed after stop"
        );
    }
}

#[test]
fn prometheus_keys_are_supported_with_coturn_defaults() {
    let c = ringturn::config::Config::parse(
        "t.conf",
        "no-auth\nlistening-ip=127.0.0.1\nprometheus\n",
        &[],
    )
    .unwrap();
    assert!(c.prometheus);
    assert_eq!(c.prometheus_port, 9641);
    assert_eq!(
        c.prometheus_address,
        "127.0.0.1".parse::<std::net::IpAddr>().unwrap()
    );
    assert!(
        c.warnings
            .iter()
            .all(|w| !w.to_string().contains("prometheus")),
        "{:?}",
        c.warnings
    );
    let c = ringturn::config::Config::parse(
        "t.conf",
        "no-auth\nlistening-ip=127.0.0.1\nprometheus\nprometheus-port=9100\nprometheus-address=::1\n",
        &[],
    )
    .unwrap();
    assert_eq!(c.prometheus_port, 9100);
    assert!(
        c.summary().contains("http://[::1]:9100/metrics"),
        "{}",
        c.summary()
    );
    assert_eq!(
        c.prometheus_address,
        "::1".parse::<std::net::IpAddr>().unwrap()
    );
    let off = ringturn::config::Config::parse("t.conf", "no-auth\nlistening-ip=127.0.0.1\n", &[])
        .unwrap();
    assert!(!off.prometheus);
    assert!(ringturn::config::Config::parse(
        "t.conf",
        "no-auth\nlistening-ip=127.0.0.1\nprometheus-port=notaport\n",
        &[]
    )
    .is_err());
}

/// The binary with `prometheus` on: `/metrics` answers, and SIGTERM stops
/// the endpoint with the rest within a second.
#[test]
fn binary_serves_metrics_and_stops_on_sigterm() {
    let free_udp = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let free_tcp = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("rt-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("turnserver.conf");
    std::fs::write(
        &conf,
        format!(
            "no-auth\nlistening-ip=127.0.0.1\nlistening-port={free_udp}\nmin-port=14000\n\
             max-port=14199\nworkers=2\nprometheus\nprometheus-port={free_tcp}\n"
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ringturn"))
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let maddr: SocketAddr = format!("127.0.0.1:{free_tcp}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&maddr, Duration::from_millis(100)).is_err() {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("the metrics endpoint never came up");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let samples = scrape_until(maddr, |_| true);
    assert!(
        samples
            .iter()
            .any(|(n, l, _)| n == "ringturn_info"
                && l.get("workers").map(String::as_str) == Some("2"))
    );

    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let sent = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if sent.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            panic!("no exit after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status:?}");
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "{:?}",
        sent.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
