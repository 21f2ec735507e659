#!/usr/bin/env bash
# Reloads and health flaps under load: while the load generator sends random-ECS queries, the
# maps, the GeoIP database and the BGP table are replaced ten times (good and broken versions
# alternating, by rename as deploy tools do) and a node flaps through the control socket.
# Passes when no query is lost, every answer is NOERROR with a node's address, and the
# server kept serving the last good data after every broken replacement.
#
#   bash benches/reload-under-load.sh [SECONDS]     (default 30; loopback only)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-30}
ROOT=$(pwd)
LG=/tmp/loadgen-target/release
[ -x "$LG/loadgen" ] || cargo build -q --release --manifest-path "$ROOT/../shared/tools/loadgen/Cargo.toml" --target-dir /tmp/loadgen-target
cargo build -q --release
W=$(mktemp -d /tmp/signpost-reload.XXXXXX)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

mkdir -p "$W/maps"
cp maps/*.yaml "$W/maps/"
cp testdata/geoip/GeoLite2-Country-2018-08-07.mmdb "$W/geo.mmdb"
cp testdata/bgp/demo-ipasn-20151101.txt "$W/table.txt"
cat > "$W/signpost.yaml" <<YAML
listen: ["127.0.0.1:5431"]
workers: 1
zones:
  - apex: example.test
    soa: { mname: ns1, rname: hostmaster }
    ns: [{ name: ns1.example.test., addresses: [127.0.0.1] }]
maps: [maps/]
geoip: [{ path: geo.mmdb }]
bgp: [{ path: table.txt, format: pyasn }]
reload_debounce_ms: 100
YAML
./target/release/signpost serve --config "$W/signpost.yaml" --control "$W/ctl.sock" > "$W/log" 2>&1 &
PID=$!
until dig @127.0.0.1 -p 5431 example.test SOA +time=1 +tries=1 >/dev/null 2>&1; do sleep 0.1; done
ctl() { ./target/release/signpost ctl --socket "$W/ctl.sock" "$@" >/dev/null; }
put() { cp "$1" "$2.tmp"; mv "$2.tmp" "$2"; }

cp "$W/maps/services.yaml" "$W/good-services.yaml"
sed 's/regions: \[europe, north-america\]/regions: [europa, north-america]/' "$W/good-services.yaml" > "$W/bad-services.yaml"
cp "$W/geo.mmdb" "$W/good-geo.mmdb"; head -c 100000 "$W/good-geo.mmdb" > "$W/bad-geo.mmdb"
cp "$W/table.txt" "$W/good-table.txt"; printf '8.8.8.0/24\tnot-a-number\n' > "$W/bad-table.txt"

"$LG/loadgen" --server 127.0.0.1:5431 --qname dl.example.test --ecs random --duration "$SECS" --threads 1 --sockets 8 --window 4 > "$W/load.json" &
LOAD=$!
step=$(echo "scale=2; $SECS / 12" | bc)
failures=0
for i in $(seq 1 10); do
  sleep "$step"
  case $((i % 3)) in
    0) what=services; src=maps/services.yaml ;;
    1) what=geo; src=geo.mmdb ;;
    2) what=table; src=table.txt ;;
  esac
  if [ $((i % 2)) -eq 1 ]; then kind=bad; else kind=good; fi
  case $what in
    services) put "$W/$kind-services.yaml" "$W/$src" ;;
    geo) put "$W/$kind-geo.mmdb" "$W/$src" ;;
    table) put "$W/$kind-table.txt" "$W/$src" ;;
  esac
  # Health flaps at the same time.
  if [ $((i % 2)) -eq 1 ]; then ctl set fra1 down --reason flap; else ctl clear fra1; fi
  sleep 0.5
  status=$(./target/release/signpost ctl --socket "$W/ctl.sock" --json status)
  ok=$(grep -o '"ok":[a-z]*' <<<"${status#*last_reload}" | head -1 | cut -d: -f2)
  echo "replacement $i: $kind $what -> last reload ok=$ok"
  if [ "$kind" = bad ] && [ "$ok" != false ]; then echo "  a broken $what was not refused"; failures=$((failures + 1)); fi
  # Put the good version back before the next step so that every broken file is refused alone.
  if [ "$kind" = bad ]; then
    case $what in
      services) put "$W/good-services.yaml" "$W/$src" ;;
      geo) put "$W/good-geo.mmdb" "$W/$src" ;;
      table) put "$W/good-table.txt" "$W/$src" ;;
    esac
  fi
done
wait "$LOAD"
out=$(cat "$W/load.json")
sent=$(grep -o '"sent":[0-9]*' <<<"$out" | cut -d: -f2)
answered=$(grep -o '"answered":[0-9]*' <<<"$out" | cut -d: -f2)
timeouts=$(grep -o '"timeouts":[0-9]*' <<<"$out" | cut -d: -f2)
rcodes=$(grep -o '"rcodes":{[^}]*}' <<<"$out")
answers=$(grep -o '"answers":{[^}]*}' <<<"$out")
reloads=$(grep -c "reloaded" "$W/log" || true)
refused=$(grep -c "reload failed" "$W/log" || true)
echo "queries sent $sent, answered $answered, timeouts $timeouts, $rcodes"
echo "answers by address: $answers"
echo "reloads: $reloads applied, $refused refused"
nodes="192.0.2.10 192.0.2.11 192.0.2.12 198.51.100.10 198.51.100.11 203.0.113.10 203.0.113.20 203.0.113.30"
for a in $(grep -o '"[0-9.]*":' <<<"$answers" | tr -d '":'); do
  case " $nodes " in *" $a "*) ;; *) echo "unexpected answer $a"; failures=$((failures + 1)) ;; esac
done
[ "$timeouts" -eq 0 ] || { echo "lost queries"; failures=$((failures + 1)); }
[ "$rcodes" = '"rcodes":{"0":'"$answered"'}' ] || { echo "non-NOERROR answers"; failures=$((failures + 1)); }
if [ "$failures" -eq 0 ]; then echo "PASS: zero lost queries, zero wrong answers"; else echo "FAIL: $failures problem(s)"; exit 1; fi
