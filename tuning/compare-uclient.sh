#!/usr/bin/env bash
# Side by side: ringturn vs coturn (Debian's turnserver), both pinned to the
# same core with taskset, turnutils_uclient + turnutils_peer on the other core,
# runs interleaved A B A B. Reports relayed packets per server CPU-second
# (2 x echoed messages / (utime+stime)), the figure that holds on a noisy host.
#
# usage (as root): tuning/compare-uclient.sh [rounds] [messages-per-client] [clients] [size]
# Runs inside its own network namespace: only loopback, fixed ports are safe.
set -euo pipefail
ROUNDS=${1:-3}
N=${2:-2000}
M=${3:-20}
SIZE=${4:-100}
RINGTURN=${RINGTURN:-$(dirname "$0")/../target/release/ringturn}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

if [ -z "${IN_NETNS:-}" ]; then
  exec env IN_NETNS=1 RINGTURN="$RINGTURN" RT_EXTRA="${RT_EXTRA:-}" unshare --net bash "$0" "$@"
fi
ip link set lo up
TICKS=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_one() { # name, command...
  local name=$1; shift
  taskset -c "$SERVER_CPU" "$@" > "/tmp/compare-$name.log" 2>&1 &
  local pid=$!
  sleep 1
  taskset -c "$CLIENT_CPU" turnutils_peer -L 127.0.0.1 -p 23480 > /dev/null 2>&1 &
  local peer=$!
  sleep 0.3
  local before; before=$(cpu_ticks "$pid")
  local out
  out=$(taskset -c "$CLIENT_CPU" timeout 300 turnutils_uclient -p 3478 -u test -w test -e 127.0.0.1 -r 23480 \
        -n "$N" -m "$M" -l "$SIZE" -z 0 -c 127.0.0.1 2>&1 | grep -E "tot_send_msgs=[0-9]+, tot_recv_msgs=[0-9]+$|lost packets|round trip" | tail -3)
  local after; after=$(cpu_ticks "$pid")
  kill -TERM "$pid" "$peer" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  wait "$peer" 2>/dev/null || true
  local recv; recv=$(echo "$out" | sed -n 's/.*tot_recv_msgs=\([0-9]*\)$/\1/p' | tail -1)
  local sent; sent=$(echo "$out" | sed -n 's/.*tot_send_msgs=\([0-9]*\),.*/\1/p' | tail -1)
  local ticks=$((after - before))
  local pps=0
  if [ "$ticks" -gt 0 ]; then pps=$(( 2 * recv * TICKS / ticks )); fi
  echo "$name sent=$sent echoed=$recv server_cpu_s=$(awk "BEGIN{print $ticks/$TICKS}") relayed_per_cpu_s=$pps"
  echo "$name $pps" >> /tmp/compare-results
}

: > /tmp/compare-results
for r in $(seq 1 "$ROUNDS"); do
  run_one ringturn "$RINGTURN" --listening-ip=127.0.0.1 --listening-port=3478 --relay-ip=127.0.0.1 \
    --min-port=49152 --max-port=65535 --lt-cred-mech --user=test:test --realm=example.org \
    --allow-loopback-peers --workers=1 --cpu-affinity="$SERVER_CPU" ${RT_EXTRA:-}
  run_one coturn turnserver -n --listening-ip=127.0.0.1 --listening-port=3478 --relay-ip=127.0.0.1 \
    --min-port=49152 --max-port=65535 --lt-cred-mech --user=test:test --realm=example.org \
    --allow-loopback-peers --no-tls --no-dtls --no-cli --log-file=stdout
done
echo "--- relayed packets per server CPU-second (median of $ROUNDS)"
for name in ringturn coturn; do
  printf '%s ' "$name"; grep "^$name " /tmp/compare-results | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END{print "median=" a[int((NR+1)/2)] " min=" a[1] " max=" a[NR]}'
done
rt=$(grep '^ringturn ' /tmp/compare-results | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
ct=$(grep '^coturn ' /tmp/compare-results | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
awk "BEGIN{ if ($ct > 0) printf \"ratio ringturn/coturn = %.2f\n\", $rt/$ct }"
