//! loadgen over TCP and TLS against an in-process ringturn (RFC 8656 §3.1:
//! TCP on the listening port, TLS on its own port with a certificate made at
//! test time): relay in ChannelData and in Send-indication mode, pairs
//! (relay to relay) and an allocation storm, each over `tcp` and over `tls`.
//! A stream loses nothing, so every packet must come back exactly once, and
//! the report must name the transport. Short, bounded runs (sub-second
//! phases, as `common::quick`).

mod common;
use common::assert_lossless;

use std::time::{Duration, Instant};

use ringturn_loadgen::config::{LoadConfig, Mode, Rate, SizeMix, Transport};
use ringturn_loadgen::report::Report;

/// A short paced run over `transport` against `s` (started with
/// `common::ringturn_streams`).
fn quick(s: &common::Server, mode: Mode, transport: Transport) -> LoadConfig {
    let mut c = common::quick(mode, s.addr_for(transport));
    c.transport = transport;
    c.tls = s.client_tls();
    c.clients = 6;
    c.rate = Rate::Pps(200.0);
    c.pps_given = true;
    c.label = format!("in-process ringturn over {}", transport.name());
    c
}

/// Runs `c`, which must go over `transport` to `s`: it sets up every client,
/// the server accepts a stream connection per client at least, and the
/// report names the transport.
fn run(s: &common::Server, c: LoadConfig, transport: Transport) -> Report {
    let accepted = s.stream_accepted();
    let clients = c.clients as u64;
    let started = Instant::now();
    let r = ringturn_loadgen::run(c).expect("run");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a bounded run took {:?}",
        started.elapsed()
    );
    assert!(
        r.setup_failures.is_empty(),
        "{:?}\n{}",
        r.setup_failures,
        r.table()
    );
    let says = format!("over {}", transport.name());
    assert!(
        r.table().contains(&says),
        "the report says the transport ({says}):\n{}",
        r.table()
    );
    assert_eq!(r.config.transport, transport);
    let now = s.stream_accepted() - accepted;
    assert!(
        now >= clients,
        "ringturn accepted {now} stream connections for {clients} clients"
    );
    r
}

fn channel_data(transport: Transport, slot: u16) {
    let s = common::ringturn_streams(2, common::port_base(slot));
    // 101-byte payloads: every ChannelData message carries 3 bytes of
    // padding (RFC 8656 §12.5) that ringturn must skip on the way in and
    // add on the way out.
    let mut c = quick(&s, Mode::Relay, transport);
    c.size = SizeMix::Fixed(101);
    c.server_pid = Some(std::process::id());
    let r = run(&s, c, transport);
    assert_lossless(&r, "ChannelData");
    // 6 clients × 200 pps × 0.8 s, give or take a scheduling tick.
    assert!((800..=1200).contains(&r.counts.sent), "{}", r.counts.sent);
    let server = r.server.as_ref().expect("server stats with --server-pid");
    assert_eq!(server.units, 2 * r.counts.received, "an echo relays twice");

    // As fast as a window of 16 allows, bounded by a count: the send buffers
    // fill and drain (backpressure both ways); a stream still loses nothing.
    let mut c = quick(&s, Mode::Relay, transport);
    c.rate = Rate::Max { window: 16 };
    c.clients = 4;
    c.size = SizeMix::Fixed(1201);
    c.count = Some(4000);
    let r = run(&s, c, transport);
    assert_lossless(&r, "--max");
    assert_eq!(r.counts.sent, 4000);
}

fn send_indications(transport: Transport, slot: u16) {
    let s = common::ringturn_streams(2, common::port_base(slot));
    let mut c = quick(&s, Mode::Relay, transport);
    c.indications = true;
    c.size = SizeMix::Fixed(103);
    let r = run(&s, c, transport);
    assert_lossless(&r, "Send indications");
    assert!((800..=1200).contains(&r.counts.sent), "{}", r.counts.sent);
}

fn pairs(transport: Transport, slot: u16) {
    let s = common::ringturn_streams(2, common::port_base(slot));
    // Relay to relay: both clients on streams, their relays UDP.
    let mut c = quick(&s, Mode::Pair, transport);
    c.clients = 6;
    c.size = SizeMix::Audio;
    c.rate = Rate::Pps(100.0);
    c.client_ips = ringturn_loadgen::config::default_client_ips(3);
    let r = run(&s, c, transport);
    assert_lossless(&r, "pairs");
    // 6 senders × 100 pps × 0.8 s.
    assert!((400..=600).contains(&r.counts.sent), "{}", r.counts.sent);
}

fn allocations(transport: Transport, slot: u16) {
    let s = common::ringturn_streams(1, common::port_base(slot));
    // An allocation storm: a new connection (and, over TLS, a handshake) per
    // allocation.
    let mut c = quick(&s, Mode::Allocate, transport);
    c.clients = 4;
    c.duration = Duration::from_millis(500);
    let r = run(&s, c, transport);
    let a = r.allocations.as_ref().expect("allocation stats");
    assert!(a.completed > 5, "{}", r.table());
    assert!(a.errors.is_empty(), "{:?}\n{}", a.errors, r.table());
    assert_eq!(a.timeouts, 0, "{}", r.table());
    assert_eq!(a.requests, a.responses, "every request answered");
    assert_eq!(r.latency_us.expect("latency").count, a.completed);

    // Allocations held over their connections, then released.
    let mut c = quick(&s, Mode::Allocate, transport);
    c.clients = 20;
    c.hold = Some(Duration::from_millis(300));
    let r = run(&s, c, transport);
    let a = r.allocations.as_ref().expect("allocation stats");
    assert_eq!(a.completed, 20, "{}", r.table());
    assert_eq!(a.held, Some(20));
    assert_eq!(a.released, 20, "every allocation released at the end");
}

#[test]
fn ringturn_over_tcp_channel_data_every_packet_comes_back() {
    channel_data(Transport::Tcp, 0);
}

#[test]
fn ringturn_over_tls_channel_data_every_packet_comes_back() {
    channel_data(Transport::Tls, 1);
}

#[test]
fn ringturn_over_tcp_send_indications_every_packet_comes_back() {
    send_indications(Transport::Tcp, 2);
}

#[test]
fn ringturn_over_tls_send_indications_every_packet_comes_back() {
    send_indications(Transport::Tls, 3);
}

#[test]
fn ringturn_over_tcp_pairs_every_packet_arrives() {
    pairs(Transport::Tcp, 4);
}

#[test]
fn ringturn_over_tls_pairs_every_packet_arrives() {
    pairs(Transport::Tls, 5);
}

#[test]
fn ringturn_over_tcp_allocation_storm_and_hold() {
    allocations(Transport::Tcp, 6);
}

#[test]
fn ringturn_over_tls_allocation_storm_and_hold() {
    allocations(Transport::Tls, 7);
}
