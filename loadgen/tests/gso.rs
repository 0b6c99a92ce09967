//! `--gso`: clients and echo peers send equal-size runs as one UDP_SEGMENT
//! send. Against ringturn (UDP GRO on relay and listening sockets by default)
//! those arrive coalesced and are split before the TURN worker sees them; the
//! counts must still add up exactly and nothing may be lost.

mod common;

use std::sync::atomic::Ordering;

use ringturn_loadgen::config::{Mode, Rate, SizeMix};
use ringturn_loadgen::run;

#[test]
fn gso_senders_through_gro_sockets_count_exactly() {
    let s = common::ringturn(1, common::port_base(5));
    for (mode, size) in [(Mode::Relay, 1200), (Mode::Pair, 100)] {
        let mut c = common::quick(mode, s.addr);
        c.clients = 8;
        c.rate = Rate::Max { window: 16 };
        c.size = SizeMix::Fixed(size);
        c.gso = true;
        let r = run(c).expect("run");
        let n = &r.counts;
        assert!(n.sent > 1000, "{mode:?}: {}", r.table());
        assert_eq!(n.sent, n.received + n.lost, "{}", r.table());
        assert_eq!(
            (n.lost, n.duplicated, n.foreign),
            (0, 0, 0),
            "{}",
            r.table()
        );
    }
    let metrics = s.running.as_ref().expect("running").metrics_source();
    let coalesced: u64 = metrics
        .workers
        .iter()
        .map(|w| w.gro_receives.load(Ordering::Relaxed))
        .sum();
    assert!(coalesced > 0, "some receives arrived coalesced");
}
