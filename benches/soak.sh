#!/usr/bin/env bash
# Soak: sustained random-ECS load with a reload every 10 s (maps rewritten, SIGHUP) and a
# health flap every 10 s, for SECONDS (default 600, at most 600); samples resident memory and
# open file descriptors every 10 s and fails if either grows.
#
#   bash benches/soak.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-600}
[ "$SECS" -le 600 ] || SECS=600
LG=/tmp/loadgen-target/release
[ -x "$LG/loadgen" ] || cargo build -q --release --manifest-path ../shared/tools/loadgen/Cargo.toml --target-dir /tmp/loadgen-target
cargo build -q --release
W=$(mktemp -d /tmp/signpost-soak.XXXXXX)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
mkdir -p "$W/maps"; cp maps/*.yaml "$W/maps/"
cat > "$W/signpost.yaml" <<YAML
listen: ["127.0.0.1:5441"]
workers: 1
zones:
  - apex: example.test
    soa: { mname: ns1, rname: hostmaster }
    ns: [{ name: ns1.example.test., addresses: [127.0.0.1] }]
maps: [maps/]
geoip: [{ path: $(pwd)/testdata/geoip/GeoLite2-Country-2018-08-07.mmdb }]
bgp: [{ path: $(pwd)/testdata/bgp/demo-ipasn-20151101.txt, format: pyasn }]
YAML
./target/release/signpost serve --config "$W/signpost.yaml" --control "$W/ctl.sock" > "$W/log" 2>&1 &
PID=$!
until dig @127.0.0.1 -p 5441 example.test SOA +time=1 +tries=1 >/dev/null 2>&1; do sleep 0.1; done
"$LG/loadgen" --server 127.0.0.1:5441 --qname dl.example.test --ecs random --duration "$SECS" --threads 1 --sockets 8 --window 4 > "$W/load.json" &
LOAD=$!
samples=()
for t in $(seq 10 10 "$SECS"); do
  sleep 10
  echo "# soak $t s" >> "$W/maps/services.yaml"
  kill -HUP "$PID"
  if [ $((t % 20)) -eq 0 ]; then ./target/release/signpost ctl --socket "$W/ctl.sock" set ams1 down >/dev/null; else ./target/release/signpost ctl --socket "$W/ctl.sock" clear ams1 >/dev/null 2>&1 || true; fi
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
  fds=$(ls "/proc/$PID/fd" | wc -l)
  samples+=("$t $rss $fds")
  echo "t=${t}s rss=${rss}kB fds=$fds"
done
wait "$LOAD"
grep -o '"qps":[0-9]*\|"timeouts":[0-9]*\|"answered":[0-9]*' "$W/load.json" | tr '\n' ' '; echo
echo "reloads applied: $(grep -c reloaded "$W/log" || true)"
# After a minute of warm-up, resident memory must stay within 4 MB and fds must not grow.
first=""; fail=0
for s in "${samples[@]}"; do
  read -r t rss fds <<<"$s"
  [ "$t" -lt 60 ] && continue
  if [ -z "$first" ]; then first=$rss; fd0=$fds; continue; fi
  [ $((rss - first)) -le 4096 ] || { echo "RSS grew to $rss kB (from $first)"; fail=1; }
  [ "$fds" -le "$fd0" ] || { echo "fds grew to $fds (from $fd0)"; fail=1; }
done
[ "$fail" -eq 0 ] && echo "PASS: resident memory and file descriptors flat" || { echo FAIL; exit 1; }
