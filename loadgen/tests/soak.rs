//! `soak` against an in-process ringturn: both halves run at once, the
//! server is sampled throughout (RSS and descriptors from /proc, allocations
//! and timers from its /metrics), and the report carries all of it.

mod common;

use clap::Parser as _;
use ringturn_loadgen::cli::{Cli, Command};
use ringturn_loadgen::soak;

#[test]
fn soak_runs_relay_and_churn_together_and_samples_the_server() {
    let s = common::ringturn(2, common::port_base(3));
    let running = s.running.as_ref().expect("running");
    let metrics = ringturn::metrics::spawn(
        "127.0.0.1:0".parse().expect("address"),
        running.metrics_source(),
    )
    .expect("metrics endpoint");
    let pid = std::process::id().to_string();
    let server = s.addr.to_string();
    let metrics_addr = metrics.local_addr().to_string();
    let cli = Cli::try_parse_from([
        "ringturn-loadgen",
        "soak",
        "-s",
        &server,
        "-u",
        common::USER,
        "-w",
        common::PASSWORD,
        "-c",
        "6",
        "--size-mix",
        "av",
        "-d",
        "3",
        "--warmup",
        "0.5",
        "--churn-clients",
        "2",
        "--churn-pps",
        "40",
        "--server-pid",
        &pid,
        "--metrics",
        &metrics_addr,
        "--sample-every",
        "0.5",
        "--quiet",
    ])
    .expect("soak flags parse");
    let Command::Soak(args) = cli.command else {
        panic!("not the soak command");
    };
    let r = soak::run(&args).expect("soak runs");
    let table = r.table();
    assert!(r.samples.len() >= 6, "{} samples\n{table}", r.samples.len());
    assert!(r
        .samples
        .iter()
        .all(|x| x.rss_kib.is_some() && x.open_fds.is_some()));
    // The relay half's 6 allocations (and the churn's) show in /metrics while it runs.
    assert!(r.memory.allocations_max.is_some_and(|a| a >= 6), "{table}");
    assert!(
        r.memory.timers_queued_max.is_some_and(|t| t >= 6),
        "{table}"
    );
    assert!(r.memory.longest_turn_us.is_some(), "{table}");
    // Work is part of wall time: the CPU a turn used never exceeds the longest turn.
    assert!(
        r.memory.longest_turn_cpu_us.is_some_and(|cpu| r
            .memory
            .longest_turn_us
            .is_some_and(|wall| cpu <= wall + 1_000)),
        "{table}"
    );
    assert_eq!(r.relay.counts.lost, 0, "{table}");
    assert!(r.relay.counts.received > 0, "{table}");
    let churn = r.churn.allocations.as_ref().expect("churn stats");
    // 2 clients × 40 cycles/s × 3 s measured = 240, give or take a tick.
    assert!((200..=280).contains(&churn.completed), "{table}");
    assert_eq!(churn.timeouts, 0, "{table}");
    assert!(churn.errors.is_empty(), "{table}");
    let svg = r.to_svg();
    assert!(svg.contains("server RSS (MiB)") && svg.contains("live allocations"));
    assert!(svg.matches("<polyline").count() >= 3);
    let json: serde_json::Value =
        serde_json::from_str(&r.to_json().expect("json")).expect("parses");
    assert!(json["samples"]
        .as_array()
        .is_some_and(|a| a.len() == r.samples.len()));
    assert!(json["memory"]["rss_kib_max"].as_u64().is_some());
    metrics.stop();
}

#[test]
fn soak_needs_the_server_pid() {
    let cli = Cli::try_parse_from(["ringturn-loadgen", "soak", "-d", "1"]).expect("parses");
    let Command::Soak(args) = cli.command else {
        panic!("not the soak command");
    };
    let err = soak::run(&args).expect_err("no --server-pid");
    assert!(err.to_string().contains("--server-pid"), "{err}");
}
