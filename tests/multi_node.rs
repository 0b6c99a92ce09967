//! Two TURN nodes as one service (issue 14): node A, with coturn's
//! `alternate-server`, answers Allocate 300 (Try Alternate) and coturn's own
//! `turnutils_uclient` follows it to node B (127.0.0.2), over UDP and TCP —
//! the same as with coturn's `turnserver` as node A, run beside it for
//! reference. In a network namespace of its own (TESTING.md). Chromium
//! following the 300, and `max-allocations-before-redirect` with it, are in
//! `interop_chromium.rs`; the threshold's rules in `turn_redirect.rs`.
//!
//! uclient is not a client for the threshold: it follows a 300 only when
//! every one of its allocations is redirected; when a later one is (its third,
//! after two stayed), it exits with status 255.

mod common;

use std::time::Duration;

use common::process::{require_tool, run_in_netns, uclient_totals, Run};

/// Node B (ringturn) on 127.0.0.2 and node A (`$NODE_A`) on 127.0.0.1
/// redirecting to it; uclient against A over UDP (2 allocations) and TCP
/// (2 more); each node's allocations counted from its log.
const SCRIPT: &str = r#"
D=$(mktemp -d)
USERS="--lt-cred-mech --user=alice:secret --realm=example.org --allow-loopback-peers"
"$RINGTURN" --listening-ip=127.0.0.2 --relay-ip=127.0.0.2 $USERS > "$D/b.log" 2>&1 &
B=$!
if [ "$NODE_A" = coturn ]; then
  turnserver -n --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 --alternate-server=127.0.0.2:3478 \
    $USERS --no-tls --no-dtls --no-cli --log-file=stdout > "$D/a.log" 2>&1 &
else
  "$RINGTURN" --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 --alternate-server=127.0.0.2:3478 \
    $USERS > "$D/a.log" 2>&1 &
fi
A=$!
turnutils_peer -L 127.0.0.1 -p 23480 > /dev/null 2>&1 &
PEER=$!
for i in $(seq 1 50); do
  timeout 2 turnutils_stunclient -p 3478 127.0.0.1 > /dev/null 2>&1 \
    && timeout 2 turnutils_stunclient -p 3478 127.0.0.2 > /dev/null 2>&1 && break
  sleep 0.1
done
UC="turnutils_uclient -p 3478 -e 127.0.0.1 -r 23480 -u alice -w secret -m 1"
created() { grep -c 'allocation created' "$1"; }
echo "=== udp"
timeout 30 $UC -n 20 -z 5 127.0.0.1 2>&1 | grep -E 'tot_send_msgs|error 300' | sort | uniq -c
echo "=== tcp"
timeout 30 $UC -n 20 -z 5 -t 127.0.0.1 2>&1 | grep -E 'tot_send_msgs|error 300' | sort | uniq -c
kill -TERM $A $B $PEER
wait $A $B
echo "=== allocations"
# ringturn's "allocation created" session lines (coturn as A logs none).
echo "A $(created "$D/a.log")"
echo "B $(created "$D/b.log")"
echo "=== end"
rm -rf "$D"
"#;

/// (allocations on A, allocations on B) from the script's last section.
fn allocations(run: &Run) -> (u32, u32) {
    let s = run.section("allocations");
    let count = |node: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(node)?.trim().parse().ok())
            .unwrap_or(u32::MAX)
    };
    (count("A "), count("B "))
}

fn two_nodes(node_a: &str) -> Run {
    for tool in [
        "turnutils_uclient",
        "turnutils_peer",
        "turnutils_stunclient",
        "turnserver",
    ] {
        require_tool(tool);
    }
    run_in_netns(
        SCRIPT,
        &[
            ("RINGTURN", env!("CARGO_BIN_EXE_ringturn")),
            ("NODE_A", node_a),
        ],
        Duration::from_secs(120),
    )
}

fn assert_relayed(o: &Run, transport: &str) {
    assert_eq!(
        uclient_totals(&o.section(transport)),
        (40, 40),
        "uclient over {transport} relays every message\n{}",
        o.transcript()
    );
}

#[test]
fn rfc8489_10_uclient_follows_ringturns_300_to_the_alternate_node_as_with_coturn() {
    let ours = two_nodes("ringturn");
    let reference = two_nodes("coturn");
    for o in [&ours, &reference] {
        assert_relayed(o, "udp");
        assert_relayed(o, "tcp");
        assert!(
            o.section("udp").contains("error 300"),
            "uclient saw the 300\n{}",
            o.transcript()
        );
    }
    assert_eq!(
        allocations(&ours),
        (0, 4),
        "every allocation landed on B\n{}",
        ours.transcript()
    );
    assert_eq!(
        allocations(&reference).1,
        4,
        "coturn as A sends all four to B too\n{}",
        reference.transcript()
    );
}
