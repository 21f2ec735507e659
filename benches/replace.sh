#!/usr/bin/env bash
# Restart without losing a query, under load: while the load generator sends random-ECS UDP
# queries and a loop sends `dig +tcp` queries, the server is replaced ten times with
# `signpost ctl replace` (a new process takes over the sockets, node states and counters; the
# old one exits). Passes when every replace succeeded, no UDP query timed out, every TCP query
# was answered, every old process exited, and the admin override set at the start is still in
# force at the end.
#
#   bash benches/replace.sh [SECONDS]     (default 30; loopback only)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-30}
ROOT=$(pwd)
LG=/tmp/loadgen-target/release
[ -x "$LG/loadgen" ] || cargo build -q --release --manifest-path "$ROOT/../shared/tools/loadgen/Cargo.toml" --target-dir /tmp/loadgen-target
cargo build -q --release
BIN=$ROOT/target/release/signpost
W=$(mktemp -d /tmp/signpost-replace.XXXXXX)
PID=""
cleanup() {
  [ -f "$W/tcp.stop" ] || touch "$W/tcp.stop"
  [ -n "$PID" ] && kill "$PID" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

mkdir -p "$W/maps"
cp maps/*.yaml "$W/maps/"
cat > "$W/signpost.yaml" <<YAML
listen: ["127.0.0.1:5432"]
workers: 2
zones:
  - apex: example.test
    soa: { mname: ns1, rname: hostmaster }
    ns: [{ name: ns1.example.test., addresses: [127.0.0.1] }]
maps: [maps/]
geoip: [{ path: $ROOT/testdata/geoip/GeoLite2-Country-2018-08-07.mmdb }]
bgp: [{ path: $ROOT/testdata/bgp/demo-ipasn-20151101.txt, format: pyasn }]
YAML
"$BIN" serve --config "$W/signpost.yaml" --control "$W/ctl.sock" > "$W/log" 2>&1 &
PID=$!
for _ in $(seq 1 300); do
  dig @127.0.0.1 -p 5432 example.test SOA +time=1 +tries=1 >/dev/null 2>&1 && break
  sleep 0.1
done
ctl() { "$BIN" ctl --socket "$W/ctl.sock" "$@"; }
ctl set fra1 down --reason "set before the replaces" >/dev/null

"$LG/loadgen" --server 127.0.0.1:5432 --qname dl.example.test --ecs random --duration "$SECS" --threads 1 --sockets 8 --window 4 > "$W/load.json" &
LOAD=$!
# TCP: one query per connection, back to back, each must be answered.
(
  ok=0; failed=0
  while [ ! -f "$W/tcp.stop" ]; do
    if a=$(dig @127.0.0.1 -p 5432 +tcp +time=2 +tries=1 +short dl.example.test +subnet=8.8.8.0/24) && [ -n "$a" ]; then
      ok=$((ok + 1))
    else
      failed=$((failed + 1))
    fi
  done
  echo "$ok $failed" > "$W/tcp.result"
) &
step=$(echo "scale=2; $SECS / 12" | bc)
failures=0
for i in $(seq 1 10); do
  sleep "$step"
  old=$PID
  if out=$(ctl replace 2>&1); then
    PID=${out##* }
    # The old process finishes what it holds and exits.
    for _ in $(seq 1 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$old" 2>/dev/null; then echo "  old process $old still running"; failures=$((failures + 1)); fi
    echo "replace $i: $out"
  else
    echo "replace $i FAILED: $out"; failures=$((failures + 1))
  fi
done
wait "$LOAD"
touch "$W/tcp.stop"
for _ in $(seq 1 50); do [ -f "$W/tcp.result" ] && break; sleep 0.1; done
read -r tcp_ok tcp_failed < "$W/tcp.result"
out=$(cat "$W/load.json")
sent=$(grep -o '"sent":[0-9]*' <<<"$out" | cut -d: -f2)
answered=$(grep -o '"answered":[0-9]*' <<<"$out" | cut -d: -f2)
timeouts=$(grep -o '"timeouts":[0-9]*' <<<"$out" | cut -d: -f2)
late=$(grep -o '"late_or_stray":[0-9]*' <<<"$out" | cut -d: -f2)
rcodes=$(grep -o '"rcodes":{[^}]*}' <<<"$out")
qps=$(grep -o '"qps":[0-9]*' <<<"$out" | cut -d: -f2)
why=$(ctl --json nodes | grep -o '"name":"fra1","state":"[a-z]*"' || true)
counted=$(ctl --json stats | grep -o '"udp_queries":[0-9]*' | cut -d: -f2)
echo "UDP: sent $sent, answered $answered, timeouts $timeouts, late $late, $rcodes, $qps qps"
echo "TCP: $tcp_ok answered, $tcp_failed failed"
echo "after 10 replaces: $why; udp_queries counted $counted"
[ "$timeouts" -eq 0 ] || { echo "lost UDP queries"; failures=$((failures + 1)); }
[ "$rcodes" = '"rcodes":{"0":'"$answered"'}' ] || { echo "non-NOERROR answers"; failures=$((failures + 1)); }
[ "$tcp_failed" -eq 0 ] || { echo "failed TCP queries"; failures=$((failures + 1)); }
[ "$why" = '"name":"fra1","state":"down"' ] || { echo "the override was lost"; failures=$((failures + 1)); }
[ "$counted" -ge "$answered" ] || { echo "counters were not carried"; failures=$((failures + 1)); }
if [ "$failures" -eq 0 ]; then echo "PASS: 10 replaces, zero lost or failed queries"; else echo "FAIL: $failures problem(s)"; exit 1; fi
