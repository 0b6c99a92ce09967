//! Every loadgen mode against an in-process ringturn on loopback: the counts
//! must add up exactly (sent = received + lost, nothing duplicated, nothing
//! foreign) and, on a clean loopback run, nothing is lost.

mod common;

use std::time::{Duration, Instant};

use ringturn_loadgen::config::{Credentials, Mode, Rate, SizeMix};
use ringturn_loadgen::report::Report;
use ringturn_loadgen::run;

/// The invariants every data run must satisfy.
fn assert_counts_add_up(r: &Report) {
    let c = &r.counts;
    assert!(c.sent > 0, "{}: nothing sent\n{}", r.label, r.table());
    assert_eq!(
        c.sent,
        c.received + c.lost,
        "sent = received + lost\n{}",
        r.table()
    );
    assert_eq!(c.duplicated, 0, "no duplicates\n{}", r.table());
    assert_eq!(c.foreign, 0, "nothing foreign\n{}", r.table());
    assert!(c.sent_all >= c.sent && c.received_all >= c.received);
    let lat = r.latency_us.expect("latency measured");
    assert_eq!(
        lat.count, c.received,
        "one latency sample per received packet"
    );
    assert!(lat.min > 0.0 && lat.min <= lat.p50 && lat.p50 <= lat.p99 && lat.p99 <= lat.max);
    assert!(r.setup_failures.is_empty(), "{:?}", r.setup_failures);
}

fn assert_clean(r: &Report) {
    assert_counts_add_up(r);
    assert_eq!(
        r.counts.lost,
        0,
        "clean loopback run loses nothing\n{}",
        r.table()
    );
    assert_eq!(r.clients_ready as usize, r.clients);
}

#[test]
fn relay_channel_data_paced() {
    let s = common::ringturn(1, common::port_base(0));
    let mut c = common::quick(Mode::Relay, s.addr);
    c.rate = Rate::Pps(200.0);
    c.pps_given = true;
    c.server_pid = Some(std::process::id());
    let r = run(c).expect("run");
    assert_clean(&r);
    // 8 clients × 200 pps × 0.8 s, give or take a scheduling tick.
    assert!((1000..=1500).contains(&r.counts.sent), "{}", r.counts.sent);
    assert!(
        r.counts.echoed >= r.counts.received,
        "the echo peers bounced every packet"
    );
    let server = r.server.as_ref().expect("server stats with --server-pid");
    assert_eq!(
        server.units,
        2 * r.counts.received,
        "an echo is relayed twice"
    );
    assert!(!r.timeline.is_empty() && r.warmup_end_s > 0.1);
    assert!(r.offered_pps.is_some_and(|o| (o - 1600.0).abs() < 1.0));
}

#[test]
fn relay_send_indications_with_rest_credentials() {
    let s = common::ringturn(2, common::port_base(1));
    let mut c = common::quick(Mode::Relay, s.addr);
    c.credentials = Credentials::Rest {
        secret: common::SECRET.into(),
        user: "lg".into(),
        ttl_s: 600,
        realm: None,
    };
    c.indications = true;
    c.rate = Rate::Pps(100.0);
    c.pps_given = true;
    c.clients = 12;
    let r = run(c).expect("run");
    assert_clean(&r);
}

#[test]
fn relay_max_rate_audio_video_mix_on_two_threads() {
    let s = common::ringturn(2, common::port_base(2));
    let mut c = common::quick(Mode::Relay, s.addr);
    c.threads = 2;
    c.clients = 8;
    c.rate = Rate::Max { window: 4 };
    c.size = SizeMix::Av;
    let r = run(c).expect("run");
    assert_clean(&r);
    assert!(r.counts.sent > 500, "as fast as it can: {}", r.counts.sent);
    assert_eq!(r.generator.threads, 2);
    assert!(r.throughput_mbps > 0.0);
}

#[test]
fn pair_relay_to_relay_across_workers() {
    let s = common::ringturn(2, common::port_base(3));
    let mut c = common::quick(Mode::Pair, s.addr);
    c.clients = 10;
    c.size = SizeMix::Audio;
    c.rate = Rate::Pps(50.0);
    c.client_ips = ringturn_loadgen::config::default_client_ips(5);
    let r = run(c).expect("run");
    assert_clean(&r);
    // 10 senders × 50 pps × 0.8 s.
    assert!((350..=450).contains(&r.counts.sent), "{}", r.counts.sent);
}

#[test]
fn pair_max_rate_counts_add_up() {
    let s = common::ringturn(1, common::port_base(4));
    let mut c = common::quick(Mode::Pair, s.addr);
    c.clients = 4;
    c.rate = Rate::Max { window: 8 };
    let r = run(c).expect("run");
    assert_clean(&r);
}

#[test]
fn allocate_storm_cycles() {
    let s = common::ringturn(1, common::port_base(5));
    let mut c = common::quick(Mode::Allocate, s.addr);
    c.clients = 4;
    let r = run(c).expect("run");
    let a = r.allocations.as_ref().expect("allocation stats");
    assert!(a.completed > 20, "{}", r.table());
    assert!(a.per_second > 0.0);
    assert!(a.errors.is_empty(), "{:?}", a.errors);
    assert_eq!(a.timeouts, 0);
    assert_eq!(
        a.requests, a.responses,
        "every request answered on loopback"
    );
    assert_eq!(r.latency_us.expect("latency").count, a.completed);
    assert!(r.setup_failures.is_empty(), "{:?}", r.setup_failures);
}

/// Issue 16: `allocate --pps` is honoured — cycles per second per client
/// across the run, not as fast as the server answers.
#[test]
fn allocate_storm_paced_by_pps() {
    let s = common::ringturn(1, common::port_base(5));
    let mut c = common::quick(Mode::Allocate, s.addr);
    c.clients = 4;
    c.rate = Rate::Pps(20.0);
    c.pps_given = true;
    let r = run(c).expect("run");
    let a = r.allocations.as_ref().expect("allocation stats");
    // 4 clients × 20 cycles/s × 0.8 s measured = 64, give or take a tick.
    assert!(
        (52..=72).contains(&a.completed),
        "{} cycles\n{}",
        a.completed,
        r.table()
    );
    assert!(
        (60.0..=100.0).contains(&a.per_second),
        "{} cycles/s",
        a.per_second
    );
    assert!(a.errors.is_empty(), "{:?}", a.errors);
    assert_eq!(a.timeouts, 0);
}

#[test]
fn allocate_hold_keeps_then_releases_them() {
    let s = common::ringturn(2, common::port_base(6));
    let mut c = common::quick(Mode::Allocate, s.addr);
    c.clients = 60;
    c.hold = Some(Duration::from_millis(300));
    c.server_pid = Some(std::process::id());
    let r = run(c).expect("run");
    let a = r.allocations.as_ref().expect("allocation stats");
    assert_eq!(a.completed, 60, "{}", r.table());
    assert_eq!(a.held, Some(60));
    assert_eq!(a.released, 60, "every allocation released at the end");
    assert!(r.server.as_ref().is_some_and(|s| s.rss_kib_start.is_some()));
}

#[test]
fn binding_requests_paced_and_max() {
    let s = common::ringturn(1, common::port_base(7));
    let mut c = common::quick(Mode::Binding, s.addr);
    c.clients = 4;
    c.rate = Rate::Pps(250.0);
    c.pps_given = true;
    let r = run(c.clone()).expect("run");
    assert_clean(&r);
    assert!((700..=900).contains(&r.counts.sent), "{}", r.counts.sent);
    c.rate = Rate::Max { window: 8 };
    let r = run(c).expect("run");
    assert_clean(&r);
}

#[test]
fn count_bound_stops_the_run_early() {
    let s = common::ringturn(1, common::port_base(8));
    let mut c = common::quick(Mode::Relay, s.addr);
    c.clients = 4;
    c.rate = Rate::Pps(500.0);
    c.pps_given = true;
    c.duration = Duration::from_secs(30);
    c.count = Some(150);
    let t = Instant::now();
    let r = run(c).expect("run");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stopped at the count, not the duration"
    );
    assert_eq!(r.counts.sent, 150);
    assert_clean(&r);
}

#[test]
fn wrong_password_fails_setup_and_says_why() {
    let s = common::ringturn(1, common::port_base(9));
    let mut c = common::quick(Mode::Relay, s.addr);
    c.credentials = Credentials::LongTerm {
        user: common::USER.into(),
        password: "wrong".into(),
        realm: None,
    };
    c.clients = 3;
    let r = run(c).expect("a run that reports");
    assert_eq!(r.clients_ready, 0);
    assert_eq!(r.counts.sent, 0);
    let why: Vec<_> = r.setup_failures.keys().collect();
    assert!(why.iter().any(|k| k.contains("401")), "{why:?}");
}
