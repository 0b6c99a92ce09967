//! ringturn's `/metrics` while loadgen runs: the server's own counters must
//! agree with loadgen's counts of what it sent, what the echo peers bounced
//! and what came back.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ringturn_loadgen::config::{Mode, Rate};
use ringturn_loadgen::run;

/// The body of GET /metrics.
fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    assert!(raw.starts_with("HTTP/1.1 200 "), "{raw}");
    raw.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

/// The sum over workers of `name`'s samples whose series contains every label in `want`.
fn sum(body: &str, name: &str, want: &[&str]) -> u64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            series.split('{').next() == Some(name) && want.iter().all(|w| series.contains(w))
        })
        .map(|(_, v)| v.parse::<f64>().expect("a number") as u64)
        .sum()
}

#[test]
fn metrics_agree_with_loadgen_counts() {
    let s = common::ringturn(2, common::port_base(9));
    let running = s.running.as_ref().expect("running");
    let metrics = ringturn::metrics::spawn(
        "127.0.0.1:0".parse().expect("address"),
        running.metrics_source(),
    )
    .expect("metrics endpoint");
    let mut c = common::quick(Mode::Relay, s.addr);
    c.rate = Rate::Pps(500.0);
    c.pps_given = true;
    let r = run(c).expect("run");
    let counts = &r.counts;
    assert_eq!(counts.lost, 0, "a clean loopback run\n{}", r.table());
    assert!(counts.sent_all > 0);

    // The workers publish once per loop turn; loadgen's drain is long past that.
    let body = scrape(metrics.local_addr());
    let to_peers = sum(&body, "ringturn_relayed_packets_client_to_peer_total", &[]);
    let to_clients = sum(&body, "ringturn_relayed_packets_peer_to_client_total", &[]);
    assert_eq!(
        to_peers, counts.sent_all,
        "client → peer = loadgen's sends\n{body}"
    );
    assert_eq!(
        to_clients, counts.echoed,
        "peer → client = the echoes\n{body}"
    );
    assert_eq!(
        counts.received_all, to_clients,
        "every relayed echo arrived"
    );
    assert_eq!(
        sum(&body, "ringturn_relayed_bytes_client_to_peer_total", &[]),
        sum(&body, "ringturn_relayed_bytes_peer_to_client_total", &[]),
        "echoes carry the same bytes back"
    );
    assert_eq!(
        sum(&body, "ringturn_allocations_created_total", &[]),
        r.clients_ready,
        "one allocation per ready client"
    );
    assert_eq!(
        sum(
            &body,
            "ringturn_responses_total",
            &["method=\"allocate\"", "result=\"success\""]
        ),
        r.clients_ready
    );
    assert_eq!(
        sum(
            &body,
            "ringturn_dropped_datagrams_total",
            &["reason=\"no_permission\""]
        ),
        0
    );
    metrics.stop();
}
