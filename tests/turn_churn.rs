//! Issue 16: allocation churn must not grow a shard's state. On the virtual
//! clock, a million Allocate / Refresh(0) cycles (with permissions and
//! channels on some, and abandoned allocations left to expire) while 200
//! allocations stay live; every table is checked against what is live
//! through `Server::table_sizes`, never by wall time.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use ringturn::turn::{PeerPolicy, ServerConfig, TableSizes};

const STEADY: usize = 200;
const CHURNERS: usize = 10;
const CYCLES: usize = 1_000_000;
/// Virtual time per cycle: a million cycles span 1,000 s, longer than every
/// lifetime (allocation 600 s, permission 300 s, cache 40 s).
const TICK: Duration = Duration::from_millis(1);

fn config() -> ServerConfig {
    ServerConfig {
        peer_policy: PeerPolicy {
            allow_loopback: true,
            ..Default::default()
        },
        min_port: 10000,
        max_port: 60000,
        ..test_config()
    }
}

fn client(i: usize) -> Client {
    let a = u32::try_from(i).unwrap();
    let ip = std::net::Ipv4Addr::from(0x0a00_0000 + a);
    Client::new(
        &SocketAddr::new(ip.into(), 5000).to_string(),
        "alice",
        "secret",
    )
}

/// Every timer the queue holds belongs to something live.
fn assert_tables_match_live_state(t: &TableSizes, when: &str) {
    assert_eq!(
        t.timers,
        t.allocations + t.permissions + t.channels + t.reservations,
        "{when}: timers queued must be one per live object: {t:?}"
    );
    assert!(
        t.transaction_generations <= 5,
        "{when}: answers of at most 1¼ lifetimes: {t:?}"
    );
    assert_eq!(t.by_client, t.allocations, "{when}: {t:?}");
    assert_eq!(t.by_relay, t.allocations, "{when}: {t:?}");
    assert_eq!(t.pending, 0, "{when}: {t:?}");
    assert!(t.users <= 1, "{when}: {t:?}");
    assert!(
        t.transactions <= 100_000,
        "{when}: the cache is capped: {t:?}"
    );
}

#[test]
fn a_million_allocate_refresh0_cycles_leave_every_table_at_its_live_size() {
    // Without credentials (`no-auth`): the tables are the same, and a
    // million HMACs in an unoptimised test build would take minutes. The
    // cap test below and `turn_scenarios` cover the authenticated path.
    let mut h = Harness::new(ServerConfig {
        no_auth: true,
        ..config()
    });
    let peer = addr("127.0.0.2:40000");
    let mut steady: Vec<Client> = (0..STEADY).map(client).collect();
    for c in &mut steady {
        c.allocate(&mut h).unwrap();
        c.channel_bind(&mut h, 0x4001, peer).unwrap();
    }
    let mut churners: Vec<Client> = (0..CHURNERS).map(|i| client(STEADY + i)).collect();
    let mut abandoned = 0usize;
    let mut peak_live = 0usize;
    for cycle in 0..CYCLES {
        let i = cycle % CHURNERS;
        if cycle % 1000 == 999 {
            // Now and then a client vanishes without Refresh(0): its
            // allocation, permission and channel must expire on their own.
            let mut gone = client(1_000_000 + abandoned);
            abandoned += 1;
            gone.allocate(&mut h).unwrap();
            gone.channel_bind(&mut h, 0x4002, peer).unwrap();
        } else {
            let c = &mut churners[i];
            c.allocate(&mut h).unwrap();
            if cycle % 4 == 0 {
                c.create_permission(&mut h, &[peer]).unwrap();
                c.channel_bind(&mut h, 0x4001, peer).unwrap();
            }
            assert_eq!(c.refresh(&mut h, 0), Ok(0));
        }
        h.advance(TICK);
        if cycle % 50_000 == 0 {
            // The steady allocations stay alive as a relaying client's would.
            for c in &mut steady {
                c.refresh(&mut h, 600).unwrap();
                c.channel_bind(&mut h, 0x4001, peer).unwrap();
            }
        }
        if cycle % 100_000 == 99_999 {
            let t = h.server.table_sizes();
            peak_live = peak_live.max(t.allocations);
            assert_tables_match_live_state(&t, &format!("after {} cycles", cycle + 1));
        }
    }
    let t = h.server.table_sizes();
    assert_tables_match_live_state(&t, "at the end");
    // 200 steady plus the abandoned of the last 600 s (one a second).
    assert!((STEADY..=STEADY + 601).contains(&t.allocations), "{t:?}");
    // Slots are reused: they never exceed the peak of live allocations.
    assert!(
        t.allocation_slots <= peak_live.max(t.allocations) + CHURNERS + 1,
        "{t:?}"
    );
    // Before the fix the queue held every freed allocation's timer until its
    // deadline: ~600,000 entries here. Now: live objects, and memory to match.
    assert!(t.timers < 5_000, "{t:?}");
    assert!(
        t.timer_bytes < 32 * 1024 * 1024,
        "timer queue memory follows the live timers: {t:?}"
    );

    // Everyone leaves: once the last lifetimes pass, nothing is left queued.
    h.advance(Duration::from_secs(3600));
    let t = h.server.table_sizes();
    assert_eq!(
        (
            t.allocations,
            t.timers,
            t.transactions,
            t.permissions,
            t.channels
        ),
        (0, 0, 0, 0, 0),
        "{t:?}"
    );
    assert!(h.open_relays.is_empty());
    assert!(
        t.timer_bytes < 256 * 1024,
        "an empty queue gives its memory back: {t:?}"
    );
}

/// RFC 8489 §6.3.4 asks for answers to be kept for retransmissions; the
/// cache is capped per shard, and the cap is counted when it bites.
#[test]
fn rfc8489_6_3_4_transaction_cache_is_capped_and_the_cap_counted() {
    let mut h = Harness::new(ServerConfig {
        max_cached_transactions: 50,
        ..config()
    });
    let peer = addr("127.0.0.2:40000");
    let mut c = client(1);
    c.allocate(&mut h).unwrap();
    for _ in 0..100 {
        c.create_permission(&mut h, &[peer]).unwrap();
    }
    let t = h.server.table_sizes();
    assert_eq!(t.transactions, 50, "{t:?}");
    assert_eq!(
        h.server.stats().transaction_cache_full,
        51,
        "100 permissions + the Allocate, 50 kept"
    );
    assert_tables_match_live_state(&t, "at the cap");
    h.advance(Duration::from_secs(41));
    assert_eq!(h.server.table_sizes().transactions, 0);
}
