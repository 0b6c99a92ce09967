//! ringturn as a drop-in for coturn's turnserver.conf (issue 12), driven by
//! coturn's own clients in a network namespace of the test's own (TESTING.md):
//! a dummy interface there carries documentation-range addresses, so "the
//! host's interfaces" are exactly what the test made.

mod common;

use std::time::Duration;

use common::process::{require_tool, run_in_netns, uclient_totals, Run};

/// The namespace's interfaces: lo, and eth0 (one end of a veth pair: the
/// `dummy` module is not in every kernel) with two IPv4 addresses and one
/// IPv6 address for ringturn plus one of each family for the peer.
const HOST: &str = r#"
ip link add eth0 type veth peer name eth1
ip link set eth0 up
ip link set eth1 up
ip addr add 198.51.100.10/24 dev eth0
ip addr add 203.0.113.10/24 dev eth0
ip addr add 198.51.100.20/24 dev eth0
ip -6 addr add 2001:db8::10/64 dev eth0 nodad
ip -6 addr add 2001:db8::20/64 dev eth0 nodad
"#;

fn run_script(script: &str, envs: &[(&str, &str)]) -> Run {
    let mut all = vec![("RINGTURN", env!("CARGO_BIN_EXE_ringturn"))];
    all.extend_from_slice(envs);
    run_in_netns(&format!("{HOST}\n{script}"), &all, Duration::from_secs(120))
}

/// Issue 12: a config without listening-ip or relay-ip (Nextcloud Talk's,
/// Debian's default) starts, listens on every address of every interface
/// that is up — loopback included — and relays from them; uclient reaches
/// ringturn on each address and gets every answer from the address it sent
/// to (uclient's UDP sockets are connected: an answer from another source
/// address would never reach it, and it would report nothing received).
#[test]
fn without_listening_ip_every_interface_address_answers_from_itself() {
    require_tool("turnutils_uclient");
    require_tool("turnutils_peer");
    let run = run_script(
        r#"
CONF=$(mktemp -d)/turnserver.conf
printf 'listening-port=3478\nrealm=example.org\nuser=test:test\nlt-cred-mech\nallow-loopback-peers\nworkers=2\n' > "$CONF"
"$RINGTURN" -c "$CONF" --check-config
echo "check-config-exit=$?"
"$RINGTURN" -c "$CONF" > "$CONF.log" 2>&1 &
RT=$!
turnutils_peer -L 198.51.100.20 -L 2001:db8::20 -p 23480 > /dev/null 2>&1 &
PEER=$!
for i in $(seq 1 50); do grep -q started "$CONF.log" && break; sleep 0.1; done
for target in 127.0.0.1 198.51.100.10 203.0.113.10 2001:db8::10; do
  case $target in *:*) peer=2001:db8::20 ;; *) peer=198.51.100.20 ;; esac
  echo "=== target $target"
  timeout 30 turnutils_uclient -p 3478 -u test -w test -n 50 -m 2 -l 120 -z 5 \
    -e $peer -r 23480 $target 2>&1 | grep tot_send_msgs | tail -1
done
kill -TERM $RT $PEER
wait $RT
echo "ringturn-exit=$?"
cat "$CONF.log"
"#,
        &[],
    );
    let out = run.transcript();
    assert!(out.contains("check-config-exit=0"), "{out}");
    for found in [
        "lo 127.0.0.1",
        "eth0 198.51.100.10",
        "eth0 203.0.113.10",
        "eth0 2001:db8::10",
    ] {
        assert!(out.contains(found), "--check-config lists {found}\n{out}");
    }
    assert!(
        !out.contains("fe80:"),
        "IPv6 link-local addresses are left out\n{out}"
    );
    for target in ["127.0.0.1", "198.51.100.10", "203.0.113.10", "2001:db8::10"] {
        let section = run
            .stdout
            .split(&format!("=== target {target}\n"))
            .nth(1)
            .and_then(|s| s.split("===").next())
            .unwrap_or_default();
        let (sent, received) = uclient_totals(section);
        assert_eq!(
            (sent, received),
            (100, 100),
            "uclient via {target}: every message relayed and echoed\n{out}"
        );
    }
    assert!(out.contains("ringturn-exit=0"), "{out}");
}
