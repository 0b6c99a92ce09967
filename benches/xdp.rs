//! The XDP program's own cost per relayed packet, as the kernel measures it:
//! `BPF_PROG_TEST_RUN` runs the program `iters` times on one frame and
//! reports the mean run time (issue 11). Client → peer and peer → client,
//! IPv4 and IPv6, 100 B and 1,200 B of media.
//!
//! Needs root (a private network namespace with a veth pair, so the
//! program's route and neighbour lookups have something to find) and the
//! program built; says so and measures nothing otherwise.
//!
//!     cargo bench --bench xdp

#[path = "../tests/xdp_support/mod.rs"]
mod xdp_support;

use std::time::Duration;

use criterion::{criterion_group, Criterion};
use ringturn::xdp::test_run::{self, XDP_TX};
use ringturn::xdp::FastPath;
use xdp_support::*;

fn relay(c: &mut Criterion) {
    let (ifindex, mac) = topology();
    let mut fast = FastPath::load().expect("the XDP program loads");
    fast.serve_interface(ifindex, mac).expect("interface");
    let mut group = c.benchmark_group("xdp_relay");
    for v6 in [false, true] {
        let ch = channel(v6);
        fast.offload(&ch, u64::MAX).expect("offload");
        for size in [100usize, 1200] {
            let media = vec![0x5a; size];
            let family = if v6 { "v6" } else { "v4" };
            let frames = [
                (
                    "client_to_peer",
                    frame(
                        mac,
                        CLIENT_MAC,
                        ch.client,
                        ch.listening,
                        &channel_data(ch.channel, &media, false),
                        true,
                    ),
                ),
                (
                    "peer_to_client",
                    frame(mac, PEER_MAC, ch.peer, ch.relay, &media, true),
                ),
            ];
            for (direction, f) in frames {
                let fd = fast.program_fd().expect("fd");
                let probe = test_run::run(fd, &f, ifindex, 1).expect("test run");
                assert_eq!(
                    probe.verdict, XDP_TX,
                    "{direction} {family} {size} must be relayed"
                );
                group.bench_function(format!("{direction}/{family}/{size}B"), |b| {
                    b.iter_custom(|iters| {
                        let repeat = u32::try_from(iters.max(1)).unwrap_or(u32::MAX);
                        let fd = fast.program_fd().expect("fd");
                        let run = test_run::run(fd, &f, ifindex, repeat).expect("test run");
                        // The kernel reports the mean per run.
                        Duration::from_nanos(u64::from(run.duration_ns) * u64::from(repeat))
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, relay);

fn main() {
    if ringturn::xdp::PROGRAM.is_none() {
        eprintln!("xdp bench: the program was not built (clang, libbpf-dev at build time)");
        return;
    }
    if std::env::var_os(IN_NETNS).is_none() {
        // Run again inside a private network namespace (a veth pair of our own).
        let exe = std::env::current_exe().expect("bench binary");
        let status = std::process::Command::new("unshare")
            .args(["--net", "--"])
            .arg(exe)
            .args(std::env::args_os().skip(1))
            .env(IN_NETNS, "1")
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => eprintln!("xdp bench: the run in its namespace ended with {s} (needs root)"),
            Err(e) => eprintln!("xdp bench: cannot run unshare: {e}"),
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
