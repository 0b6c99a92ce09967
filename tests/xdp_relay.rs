//! Issue 11, end to end: ringturn with `xdp-interface` on one side of a veth
//! pair, coturn's `turnutils_uclient` and `turnutils_peer` in another network
//! namespace on the other side (TESTING.md). Every message must come back,
//! the `ringturn_xdp_*` counters must account for at least 99 % of the
//! relayed ChannelData (`ringturn_relayed_channel_data_*`, both paths), and after SIGTERM no XDP program may stay attached.
//! On both I/O backends, both relay-socket modes, IPv4 and IPv6.
//!
//! Needs root, the program built (clang, libbpf-dev), coturn's clients and
//! ethtool (see the script for why the client's veth end needs both). Skipped without the program,
//! except under `CI`, where it is built and a skip is a failure.

mod common;

use std::time::Duration;

use common::process::{require_tool, run_in_netns};

const SCRIPT: &str = r#"
set -e
unshare --net sleep 120 & CLIENT=$!
for i in $(seq 1 50); do [ "$(readlink /proc/$CLIENT/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break; sleep 0.05; done
ip link add vs type veth peer name vc
ip link set vc netns $CLIENT
ip addr add 198.51.100.1/24 dev vs
ip -6 addr add 2001:db8::1/64 dev vs nodad
ip link set vs up
# The program's route lookup answers only where forwarding is on.
echo 1 > /proc/sys/net/ipv4/conf/vs/forwarding
echo 1 > /proc/sys/net/ipv6/conf/vs/forwarding
C() { nsenter -t $CLIENT -n "$@"; }
C ip link set lo up
C ip addr add 198.51.100.2/24 dev vc
C ip addr add 198.51.100.3/24 dev vc
C ip -6 addr add 2001:db8::2/64 dev vc nodad
C ip -6 addr add 2001:db8::3/64 dev vc nodad
C ip link set vc up
# Like a NIC, not like a veth: the clients' stack computes full UDP
# checksums (with offload a veth leaves a partial sum the program would
# update into garbage), and the client end runs an XDP program (here the
# same object, which passes everything there: it serves no interface of that
# namespace) because a veth receives frames the other end's XDP sends only
# through its own XDP path.
C ethtool -K vc tx off > /dev/null
C ip link set dev vc xdp obj "$PASS_OBJ" sec xdp
set +e
"$RINGTURN" --listening-ip=$SERVER_IP --listening-port=3478 --relay-ip=$SERVER_IP \
  --min-port=49152 --max-port=49999 --realm=example.org --lt-cred-mech --user=test:test \
  --io-backend="$BACKEND" --workers=2 --relay-socket-mode=$RELAY_MODE \
  --xdp-interface=vs --prometheus --prometheus-port=9641 > "$LOG" 2>&1 &
RT=$!
C turnutils_peer -L $PEER_IP -p 3480 > /dev/null 2>&1 &
PEER=$!
for i in $(seq 1 50); do grep -q started "$LOG" && break; sleep 0.1; done
echo "attached: $(ip -d link show vs | grep -o 'prog/xdp[^ ]*' | head -1)"
C timeout 60 turnutils_uclient -u test -w test -e $PEER_IP -r 3480 -n $MSGS -m $CLIENTS -l 120 -z 5 -c $SERVER_IP
echo "uclient-exit=$?"
exec 3<>/dev/tcp/127.0.0.1/9641
printf 'GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n' >&3
echo "--- metrics"
cat <&3
echo "--- end metrics"
kill -TERM $RT
wait $RT
echo "ringturn-exit=$?"
echo "after: $(ip -d link show vs | grep -c 'xdp') xdp lines"
kill $PEER $CLIENT
"#;

fn metric_sum(metrics: &str, name: &str, label: Option<&str>) -> u64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let Some(rest) = l.strip_prefix(name) else {
                return false;
            };
            (rest.starts_with('{') || rest.starts_with(' '))
                && label.is_none_or(|want| rest.contains(want))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn relay_through_xdp(backend: &str, relay_mode: &str, v6: bool) {
    if ringturn::xdp::PROGRAM.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the XDP program must be built in CI (clang, libbpf-dev)"
        );
        eprintln!("skipping: the XDP program was not built (no clang at build time)");
        return;
    }
    require_tool("turnutils_uclient");
    require_tool("turnutils_peer");
    require_tool("ethtool");
    let (server_ip, peer_ip) = if v6 {
        ("2001:db8::1", "2001:db8::3")
    } else {
        ("198.51.100.1", "198.51.100.3")
    };
    let log = std::env::temp_dir().join(format!(
        "ringturn-xdp-{backend}-{relay_mode}-{}-{}.log",
        if v6 { "v6" } else { "v4" },
        std::process::id()
    ));
    let log_path = log.to_string_lossy().into_owned();
    let object = log.with_extension("bpf.o");
    std::fs::write(&object, ringturn::xdp::PROGRAM.unwrap_or_default()).expect("write the object");
    let object_path = object.to_string_lossy().into_owned();
    // Shared relay sockets: one allocation per worker may claim the peer
    // endpoint, and uclient's clients all use the same one.
    let (clients, msgs) = if relay_mode == "shared" {
        (1u64, 600u64)
    } else {
        (4, 300)
    };
    let total = clients * msgs;
    let run = run_in_netns(
        SCRIPT,
        &[
            ("RINGTURN", env!("CARGO_BIN_EXE_ringturn")),
            ("BACKEND", backend),
            ("RELAY_MODE", relay_mode),
            ("SERVER_IP", server_ip),
            ("PEER_IP", peer_ip),
            ("LOG", &log_path),
            ("PASS_OBJ", &object_path),
            ("CLIENTS", &clients.to_string()),
            ("MSGS", &msgs.to_string()),
        ],
        Duration::from_secs(100),
    );
    let server_log = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&object);
    let out = &run.stdout;
    let all = format!("{}\n--- ringturn log\n{server_log}", run.transcript());
    assert!(
        out.contains("attached: prog/xdp"),
        "the program must be attached to vs while ringturn runs\n{all}"
    );
    let summary = out
        .lines()
        .rev()
        .find_map(|l| {
            let rest = l.split("tot_send_msgs=").nth(1)?;
            let (sent, rest) = rest.split_once(", tot_recv_msgs=")?;
            if rest.contains(',') {
                return None;
            }
            Some((
                sent.trim().parse::<u64>().ok()?,
                rest.trim().parse::<u64>().ok()?,
            ))
        })
        .unwrap_or((0, 0));
    assert_eq!(summary, (total, total), "every message echoed\n{all}");
    let metrics = out
        .split("--- metrics")
        .nth(1)
        .and_then(|m| m.split("--- end metrics").next())
        .unwrap_or("");
    let fast_c2p = metric_sum(
        metrics,
        "ringturn_xdp_relayed_packets_client_to_peer_total",
        None,
    );
    let fast_p2c = metric_sum(
        metrics,
        "ringturn_xdp_relayed_packets_peer_to_client_total",
        None,
    );
    let all_c2p = metric_sum(
        metrics,
        "ringturn_relayed_packets_client_to_peer_total",
        None,
    );
    let all_p2c = metric_sum(
        metrics,
        "ringturn_relayed_packets_peer_to_client_total",
        None,
    );
    // The totals include the fast path's row (worker="xdp").
    assert_eq!(
        metric_sum(
            metrics,
            "ringturn_relayed_packets_client_to_peer_total",
            Some("worker=\"xdp\"")
        ),
        fast_c2p,
        "{metrics}"
    );
    assert!(all_c2p >= total && all_p2c >= total, "{metrics}\n{all}");
    // Of the ChannelData relayed (socket path and fast path), the fast path
    // must have carried at least 99 %.
    let cd_c2p = metric_sum(
        metrics,
        "ringturn_relayed_channel_data_client_to_peer_total",
        None,
    );
    let cd_p2c = metric_sum(
        metrics,
        "ringturn_relayed_channel_data_peer_to_client_total",
        None,
    );
    assert!(
        fast_c2p * 100 >= cd_c2p * 99 && fast_p2c * 100 >= cd_p2c * 99 && cd_c2p >= total,
        "the fast path must carry ≥ 99 % of the ChannelData: client→peer {fast_c2p}/{cd_c2p}, \
         peer→client {fast_p2c}/{cd_p2c}\n{all}"
    );
    assert!(
        metrics.contains("ringturn_xdp_attached{interface=\"vs\",mode=\"native\"} 1"),
        "veth takes native XDP\n{metrics}"
    );
    assert!(
        out.contains("ringturn-exit=0"),
        "SIGTERM stops ringturn cleanly\n{all}"
    );
    assert!(
        out.contains("after: 0 xdp lines"),
        "after SIGTERM no XDP program stays on vs\n{all}"
    );
}

#[test]
fn issue11_uclient_channels_relay_in_the_kernel_uring_per_allocation() {
    relay_through_xdp("uring", "per-allocation", false);
}

#[test]
fn issue11_uclient_channels_relay_in_the_kernel_batch_per_allocation() {
    relay_through_xdp("batch", "per-allocation", false);
}

#[test]
fn issue11_uclient_channels_relay_in_the_kernel_uring_shared() {
    relay_through_xdp("uring", "shared", false);
}

#[test]
fn issue11_uclient_channels_relay_in_the_kernel_batch_shared() {
    relay_through_xdp("batch", "shared", false);
}

#[test]
fn issue11_uclient_channels_relay_in_the_kernel_ipv6() {
    relay_through_xdp("uring", "per-allocation", true);
}
