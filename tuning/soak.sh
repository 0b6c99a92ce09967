#!/usr/bin/env bash
# The allocation-churn soak of issue 16, against ringturn or coturn (Debian's
# turnserver): 200 relay clients (audio/video mix, ~20k relayed packets/s)
# and 10 clients cycling Allocate / Refresh(0) at 200 cycles/s each, for
# DURATION seconds, with the server's RSS, descriptors and (ringturn's
# /metrics) allocations and queued timers sampled every 5 s.
#
# usage (as root): tuning/soak.sh ringturn|coturn [duration-s] [out-dir]
# Runs inside its own network namespace: only loopback, fixed ports are safe.
# SERVER_CPUS / LOADGEN_CPUS (taskset lists, e.g. 0 and 1) pin the server and
# the generators apart, so a stall the soak sees is the server's, not the
# scheduler sharing two cores among three busy processes.
# Both servers run with their defaults plus what the test needs (a user, a
# realm, loopback peers allowed); ringturn with 2 workers.
set -euo pipefail
SERVER=${1:?usage: soak.sh ringturn|coturn [duration-s] [out-dir]}
DURATION=${2:-1200}
OUT=${3:-/tmp/soak-$SERVER}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RINGTURN=${RINGTURN:-$ROOT/target/release/ringturn}
LOADGEN=${LOADGEN:-$ROOT/target/release/ringturn-loadgen}

if [ -z "${IN_NETNS:-}" ]; then
  exec env IN_NETNS=1 unshare --net bash "$0" "$@"
fi
ip link set lo up
mkdir -p "$OUT"
COMMON=(--listening-ip=127.0.0.1 --listening-port=3478 --relay-ip=127.0.0.1
        --lt-cred-mech --user=test:test --realm=example.org --allow-loopback-peers)
METRICS=()
PIN_SERVER=(); PIN_LOADGEN=()
[ -n "${SERVER_CPUS:-}" ] && PIN_SERVER=(taskset -c "$SERVER_CPUS")
[ -n "${LOADGEN_CPUS:-}" ] && PIN_LOADGEN=(taskset -c "$LOADGEN_CPUS")
case "$SERVER" in
  ringturn)
    "${PIN_SERVER[@]}" "$RINGTURN" "${COMMON[@]}" --workers=2 --prometheus --prometheus-port=9641 \
      > "$OUT/server.log" 2>&1 &
    METRICS=(--metrics 127.0.0.1:9641) ;;
  coturn)
    "${PIN_SERVER[@]}" turnserver -n "${COMMON[@]}" --no-tls --no-dtls --no-cli --log-file=stdout \
      > "$OUT/server.log" 2>&1 & ;;
  *) echo "unknown server $SERVER" >&2; exit 2 ;;
esac
PID=$!
trap 'kill -TERM $PID 2>/dev/null || true; wait $PID 2>/dev/null || true' EXIT
sleep 1.5
"${PIN_LOADGEN[@]}" "$LOADGEN" soak -s 127.0.0.1:3478 -u test -w test -c 200 --size-mix av \
  --churn-clients 10 --churn-pps 200 -d "$DURATION" --warmup 2 --server-pid "$PID" \
  "${METRICS[@]}" --sample-every 5 --label "$SERVER" --quiet \
  --json "$OUT/soak.json" --report "$OUT/soak.html" 2> "$OUT/samples.log" | tee "$OUT/table.txt"
