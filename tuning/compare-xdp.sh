#!/usr/bin/env bash
# The kernel fast path measured (issue 11): ringturn with xdp-interface,
# ringturn without it, and coturn (Debian's turnserver), each relaying the
# same turnutils_uclient load over a veth pair between two network
# namespaces (TESTING.md), runs interleaved A B C A B C. The server is pinned
# to SERVER_CPU; uclient and turnutils_peer live in the client namespace on
# CLIENT_CPU.
#
# Per relayed packet (2 x echoed messages) it reports:
#   server_ns     the server process's CPU (utime+stime from /proc/PID/stat)
#   xdp_ns        the XDP program's own run time as the kernel measures it
#                 (kernel.bpf_stats_enabled: run_time_ns / relayed packets;
#                 set back to its old value at the end)
#   machine_ns    all busy CPU of the machine (/proc/stat, both cores)
# How CPU is attributed here: on veth, native XDP runs in the softirq of the
# CPU that sent the frame, and this kernel charges softirq time to whatever
# runs there, so the program's time lands on uclient, not on ringturn; the
# same happens to coturn's receive path. So ringturn-xdp's cost is taken as
# server_ns + xdp_ns (the program counted in full), coturn's as its server_ns
# alone (its kernel receive path not counted): conservative for the fast path.
#
# With LOADGEN_PPS set (e.g. 2500), each round also runs ringturn-loadgen in
# the client namespace against each server: 20 clients at LOADGEN_PPS each
# (every packet echoed: the server relays twice that), SIZE bytes, 10 s, for
# the round-trip p99 and the loss at the same offered load.
#
# usage (as root): tuning/compare-xdp.sh [rounds] [messages-per-client] [clients] [size] [interval-ms]
set -euo pipefail
ROUNDS=${1:-3}
N=${2:-2000}
M=${3:-10}
SIZE=${4:-100}
INTERVAL=${5:-0}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RINGTURN=${RINGTURN:-$ROOT/target/release/ringturn}
LOADGEN=${LOADGEN:-$ROOT/target/release/ringturn-loadgen}
LOADGEN_PPS=${LOADGEN_PPS:-}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
OUT=${OUT:-/tmp/compare-xdp}

if [ -z "${IN_NETNS:-}" ]; then
  exec env IN_NETNS=1 RINGTURN="$RINGTURN" LOADGEN="$LOADGEN" LOADGEN_PPS="$LOADGEN_PPS" OUT="$OUT" unshare --net bash "$0" "$@"
fi
mkdir -p "$OUT"
ip link set lo up
unshare --net sleep 3600 & CLIENT=$!
trap 'kill $CLIENT 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  [ "$(readlink /proc/$CLIENT/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break; sleep 0.05
done
ip link add vs type veth peer name vc
ip link set vc netns "$CLIENT"
ip addr add 198.51.100.1/24 dev vs
ip link set vs up
echo 1 > /proc/sys/net/ipv4/conf/vs/forwarding
C() { nsenter -t "$CLIENT" -n "$@"; }
C ip link set lo up
C ip addr add 198.51.100.2/24 dev vc
C ip addr add 198.51.100.3/24 dev vc
C ip link set vc up
# A NIC's receive path, not a veth's: full checksums from the senders, and an
# XDP program on the client end so frames the server's XDP sends arrive
# (tests/xdp_relay.rs says why). The object passes everything there.
C ethtool -K vc tx off > /dev/null
OBJ=$(ls -t "$ROOT"/target/release/build/ringturn-*/out/relay.bpf.o | head -1)
C ip link set dev vc xdp obj "$OBJ" sec xdp

TICKS=$(getconf CLK_TCK)
OLD_STATS=$(cat /proc/sys/kernel/bpf_stats_enabled)
echo 1 > /proc/sys/kernel/bpf_stats_enabled
trap 'echo "$OLD_STATS" > /proc/sys/kernel/bpf_stats_enabled; kill $CLIENT 2>/dev/null || true' EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
# The run time (ns) and runs of the program attached to vs (ringturn's; the
# pass-through copy on vc is not counted); 0 0 when none is attached.
prog_stats() {
  local id
  id=$(ip -d link show vs | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p' | head -1)
  if [ -z "$id" ]; then echo "0 0"; return; fi
  bpftool -j prog show id "$id" 2>/dev/null \
    | python3 -c 'import json,sys
p=json.load(sys.stdin)
print(p.get("run_time_ns",0), p.get("run_cnt",0))' || echo "0 0"
}

COMMON=(--listening-ip=198.51.100.1 --listening-port=3478 --relay-ip=198.51.100.1
        --min-port=49152 --max-port=65535 --lt-cred-mech --user=test:test --realm=example.org)

run_one() { # name, command...
  local name=$1; shift
  taskset -c "$SERVER_CPU" "$@" > "$OUT/$name.log" 2>&1 &
  local pid=$!
  sleep 1
  C taskset -c "$CLIENT_CPU" turnutils_peer -L 198.51.100.3 -p 3480 > /dev/null 2>&1 &
  local peer=$!
  sleep 0.3
  local before busy0 prog0
  before=$(cpu_ticks "$pid"); busy0=$(busy_ticks); prog0=$(prog_stats)
  local out
  out=$(C taskset -c "$CLIENT_CPU" timeout 300 turnutils_uclient -u test -w test -e 198.51.100.3 -r 3480 \
        -n "$N" -m "$M" -l "$SIZE" -z "$INTERVAL" -c 198.51.100.1 2>&1 \
        | grep -E "tot_send_msgs=[0-9]+, tot_recv_msgs=[0-9]+$|lost packets|round trip" | tail -3)
  local after busy1 prog1
  after=$(cpu_ticks "$pid"); busy1=$(busy_ticks); prog1=$(prog_stats)
  if [ -n "$LOADGEN_PPS" ]; then
    C taskset -c "$CLIENT_CPU" "$LOADGEN" relay -s 198.51.100.1:3478 -u test -w test -c 20 \
      --pps "$LOADGEN_PPS" --size "$SIZE" -d 10 --warmup 1 --client-ips 1 --client-ip-base 198.51.100.2 \
      --peer-ip 198.51.100.3 --server-pid "$pid" --label "$name" --json "$OUT/$name-loadgen.json" \
      > /dev/null 2>&1 || true
    python3 - "$OUT/$name-loadgen.json" "$name" >> "$OUT/loadgen-results" <<'PY' || true
import json, sys
r = json.load(open(sys.argv[1]))
c, l, s = r["counts"], r["latency_us"] or {}, r.get("server") or {}
print("%s offered=%.0f received_pps=%.0f lost=%d p50_us=%.0f p99_us=%.0f max_us=%.0f server_ns=%.0f" % (
    sys.argv[2], r.get("offered_pps") or 0, r["received_pps"], c["lost"], l.get("p50", 0),
    l.get("p99", 0), l.get("max", 0), s.get("cpu_ns_per_unit") or 0))
PY
  fi
  kill -TERM "$pid" "$peer" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  wait "$peer" 2>/dev/null || true
  local recv sent rtt
  recv=$(echo "$out" | sed -n 's/.*tot_recv_msgs=\([0-9]*\)$/\1/p' | tail -1)
  sent=$(echo "$out" | sed -n 's/.*tot_send_msgs=\([0-9]*\),.*/\1/p' | tail -1)
  rtt=$(echo "$out" | sed -n 's/.*Average round trip delay \([0-9.]*\) ms.*/\1/p' | tail -1)
  local relayed=$(( 2 * ${recv:-0} ))
  local prog_ns=$(( ${prog1% *} - ${prog0% *} ))
  awk -v n="$name" -v s="${sent:-0}" -v r="${recv:-0}" -v rel="$relayed" -v t=$((after - before)) \
      -v b=$((busy1 - busy0)) -v hz="$TICKS" -v x="$prog_ns" -v rtt="${rtt:-?}" 'BEGIN{
    if (rel == 0) rel = 1;
    printf "%s sent=%d echoed=%d rtt_avg_ms=%s server_ns=%.0f xdp_ns=%.0f machine_ns=%.0f\n",
      n, s, r, rtt, t / hz * 1e9 / rel, x / rel, b / hz * 1e9 / rel }' | tee -a "$OUT/results"
}

: > "$OUT/results"
: > "$OUT/loadgen-results"
for _ in $(seq 1 "$ROUNDS"); do
  run_one ringturn-xdp "$RINGTURN" "${COMMON[@]}" --workers=1 --xdp-interface=vs
  run_one ringturn "$RINGTURN" "${COMMON[@]}" --workers=1
  run_one coturn turnserver -n "${COMMON[@]}" --no-tls --no-dtls --no-cli --log-file=stdout
done
echo "--- per relayed packet, median of $ROUNDS ($M clients x $N messages of $SIZE B, interval $INTERVAL ms)"
for name in ringturn-xdp ringturn coturn; do
  grep "^$name " "$OUT/results" | NAME=$name python3 -c '
import os, sys, statistics
rows = [dict(kv.split("=") for kv in l.split()[1:]) for l in sys.stdin]
def med(k):
    return statistics.median(float(r[k]) for r in rows)
echoed = min(int(r["echoed"]) for r in rows)
print("%s server_ns=%.0f xdp_ns=%.0f cost_ns=%.0f machine_ns=%.0f echoed=%d/%s" % (
    os.environ["NAME"], med("server_ns"), med("xdp_ns"), med("server_ns") + med("xdp_ns"),
    med("machine_ns"), echoed, rows[0]["sent"]))'
done | tee "$OUT/summary"
if [ -n "$LOADGEN_PPS" ]; then
  echo "--- ringturn-loadgen relay, 20 clients x $LOADGEN_PPS pps x $SIZE B, each round"
  cat "$OUT/loadgen-results"
fi
