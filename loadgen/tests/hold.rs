//! `ringturn-loadgen hold` against an in-process ringturn: allocations made a
//! batch of sockets at a time, refreshed by binding each 5-tuple again, and
//! released; the server's RSS is read from /proc.

mod common;

use clap::Parser as _;
use ringturn_loadgen::cli::{Cli, Command};

#[test]
fn hold_makes_refreshes_and_releases_more_allocations_than_sockets_open_at_once() {
    let s = common::ringturn(2, common::port_base(0));
    let cli = Cli::try_parse_from([
        "ringturn-loadgen",
        "hold",
        "-s",
        &s.addr.to_string(),
        "-u",
        common::USER,
        "-w",
        common::PASSWORD,
        "-c",
        "300",
        "--open",
        "64",
        "--client-ips",
        "3",
        "--client-ip-base",
        "127.0.9.1",
        "--hold",
        "0.5",
        "--refresh-every",
        "0.2",
        "--release",
        "--server-pid",
        &std::process::id().to_string(),
    ])
    .expect("arguments");
    let Command::Hold(args) = cli.command else {
        panic!("not the hold subcommand");
    };
    let r = ringturn_loadgen::hold::run(&args).expect("run");
    assert_eq!(r.allocated, 300, "{}", r.table());
    assert_eq!(r.failed, 0, "{}", r.table());
    // Per-allocation mode: every allocation its own relayed address.
    assert_eq!(r.distinct_relayed_addresses, 300, "{}", r.table());
    assert!(r.refresh_rounds >= 1 && r.refreshed >= 300, "{}", r.table());
    assert_eq!(r.refresh_failed, 0, "{}", r.table());
    assert_eq!(r.released, 300, "{}", r.table());
    assert!(r.rss_kib_peak.is_some_and(|p| p > 0));
}
