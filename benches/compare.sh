#!/usr/bin/env bash
# Signpost vs gdnsd vs a trivial responder (the machine's ceiling), side by side, same data,
# same map, same load. Loopback only; bounded in time (about 6 minutes with the defaults).
#
#   bash benches/compare.sh [ROUNDS] [SECONDS]
#   MAP=sites bash benches/compare.sh ...   # the 16-site subdivision/country/continent map
#
# Needs: the load generator and responder in ../shared/tools/loadgen (built out of tree into
# /tmp/loadgen-target), gdnsd (installed from Debian when missing), and a GeoIP database:
# ../shared/data/geoip/GeoLite2-City-2019-12-24.mmdb when present, else the demo country
# database in testdata/. Results: see docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-10}
ROOT=$(pwd)
W=$(mktemp -d /tmp/signpost-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

# Data, tools, builds, and the same continent → node map for both servers.
source "$ROOT/benches/setup.sh"

# One core for the servers, the other for the load generator.
# start NAME CMD...: runs CMD pinned to core 0, records its PID in the variable NAME.
start() { local var=$1; shift; taskset -c 0 "$@" > "$W/$var.log" 2>&1 & PIDS+=($!); printf -v "$var" '%s' "$!"; }
for p in 5401 5402 5403; do
  if dig @127.0.0.1 -p $p example.test SOA +time=1 +tries=1 >/dev/null 2>&1; then echo "port $p is already in use"; exit 1; fi
done
t0=$(date +%s.%N)
start SP_PID "$SP" serve --config "$W/sp/signpost.yaml"
until dig @127.0.0.1 -p 5401 example.test SOA +short +time=1 +tries=1 >/dev/null 2>&1; do sleep 0.05; done
t1=$(date +%s.%N)
start GD_PID gdnsd -c "$W/gd" start
until dig @127.0.0.1 -p 5402 example.test SOA +short +time=1 +tries=1 >/dev/null 2>&1; do sleep 0.05; done
t2=$(date +%s.%N)
start RS_PID "$LG/responder" --listen 127.0.0.1:5403 --threads 1 --batch 32 --max-seconds 1800
# Memory freed after a build goes back to the system within about a second (jemalloc's decay):
# the resident size is read once that has happened, with the peak during the start beside it.
sleep 2
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
peak() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
echo "database: $DB; map: $MAP"
printf 'startup to first answer: signpost %.2f s (RSS %d MB, peak %d MB), gdnsd %.2f s (RSS %d MB, peak %d MB)\n' \
  "$(echo "$t1 - $t0" | bc)" $(( $(rss "$SP_PID") / 1024 )) $(( $(peak "$SP_PID") / 1024 )) \
  "$(echo "$t2 - $t1" | bc)" $(( $(rss "$GD_PID") / 1024 )) $(( $(peak "$GD_PID") / 1024 ))

# Correctness first: the same answer for the same random /24s.
"$LG/loadgen" --server 127.0.0.1:5401 --qname dl.example.test --ecs random --verify 3000 --seed 7 --out "$W/sp.verify" >/dev/null
"$LG/loadgen" --server 127.0.0.1:5402 --qname dl.example.test --ecs random --verify 3000 --seed 7 --out "$W/gd.verify" >/dev/null
diffs=$(paste "$W/sp.verify" "$W/gd.verify" | awk '$1 != $6 || $2 != $7' | wc -l)
echo "verification: 3000 random /24s, answers that differ: $diffs"
if [ "$diffs" -ne 0 ]; then paste "$W/sp.verify" "$W/gd.verify" | awk '$2 != $7' | head -5; echo "refusing to benchmark servers that disagree"; exit 1; fi
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for f in sp gd; do
  printf 'ECS scope of %s: median /%s, distribution (len:count) %s\n' "$f" \
    "$(awk '{print $3}' "$W/$f.verify" | median)" \
    "$(awk '{c[$3]++} END {for (k in c) printf "%s:%d ", k, c[k]}' "$W/$f.verify" | tr ' ' '\n' | sort -n | tr '\n' ' ')"
done

cpu() { awk '{print $14, $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)
declare -A QPS USER RATIO_GD RATIO_RS
# measure NAME PORT PID CASE ROUND [KEY]: one load run with ECS setting CASE; prints a line,
# records qps and user CPU under KEY (default CASE).
measure() {
  local name=$1 port=$2 pid=$3 case=$4 r=$5 key=${6:-$4}
  read -r u0 s0 < <(cpu "$pid")
  out=$(taskset -c 1 "$LG/loadgen" --server 127.0.0.1:$port --qname dl.example.test --ecs "$case" --duration "$SECS" --threads 1 --sockets 16 --window 8 --label "$name")
  read -r u1 s1 < <(cpu "$pid")
  q=$(grep -o '"qps":[0-9]*' <<<"$out" | cut -d: -f2)
  ans=$(grep -o '"answered":[0-9]*' <<<"$out" | cut -d: -f2)
  p50=$(grep -o '"p50_us":[0-9]*' <<<"$out" | cut -d: -f2)
  p99=$(grep -o '"p99_us":[0-9]*' <<<"$out" | cut -d: -f2)
  to=$(grep -o '"timeouts":[0-9]*' <<<"$out" | cut -d: -f2)
  us=$(echo "scale=2; ($u1 - $u0) * 1000000 / $TCK / $ans" | bc)
  ss=$(echo "scale=2; ($s1 - $s0) * 1000000 / $TCK / $ans" | bc)
  rc=$(grep -o '"rcodes":{[^}]*}' <<<"$out" | cut -d: -f2- || true)
  printf '%-22s round %d %-10s %8s qps  p50 %4s us  p99 %5s us  timeouts %s  rcodes %s  cpu/query user %s us sys %s us  rss %d MB\n' \
    "$case" "$r" "$name" "$q" "$p50" "$p99" "$to" "$rc" "$us" "$ss" $(( $(rss "$pid") / 1024 ))
  QPS[$key,$name]="${QPS[$key,$name]:-} $q"
  USER[$key,$name]="${USER[$key,$name]:-} $us"
  LAST[$name]=$q
}
declare -A LAST
for case in none fixed:81.2.69.0/24 random; do
  for r in $(seq 1 "$ROUNDS"); do
    # Alternate the order from round to round so that a drift of the machine's speed during a
    # round does not favour whoever goes first.
    order="signpost:5401:$SP_PID gdnsd:5402:$GD_PID responder:5403:$RS_PID"
    (( r % 2 == 0 )) && order="responder:5403:$RS_PID gdnsd:5402:$GD_PID signpost:5401:$SP_PID"
    for s in $order; do
      IFS=: read -r name port pid <<<"$s"
      measure "$name" "$port" "$pid" "$case" "$r"
    done
    RATIO_GD[$case]="${RATIO_GD[$case]:-} $(echo "scale=4; ${LAST[signpost]}/${LAST[gdnsd]}" | bc)"
    RATIO_RS[$case]="${RATIO_RS[$case]:-} $(echo "scale=4; ${LAST[signpost]}/${LAST[responder]}" | bc)"
  done
done
# Reloads under load: SIGHUP every second (maps, GeoIP database and all recompiled on the
# reload thread, which shares the servers' core here) while random-ECS load runs; each such
# round is paired with a round without reloads just before it.
for r in $(seq 1 "$ROUNDS"); do
  measure signpost 5401 "$SP_PID" random "$r" random-paired >/dev/null
  base=${LAST[signpost]}
  ( end=$((SECONDS + SECS)); while [ $SECONDS -lt $end ]; do kill -HUP "$SP_PID"; sleep 1; done ) &
  hup=$!
  out=$(taskset -c 1 "$LG/loadgen" --server 127.0.0.1:5401 --qname dl.example.test --ecs random --duration "$SECS" --threads 1 --sockets 16 --window 8)
  wait "$hup" || true
  q=$(grep -o '"qps":[0-9]*' <<<"$out" | cut -d: -f2)
  printf '%-22s round %d %-10s %8s qps (without reloads just before: %s)  timeouts %s  rcodes %s\n' "reload-every-1s" "$r" signpost "$q" "$base" \
    "$(grep -o '"timeouts":[0-9]*' <<<"$out" | cut -d: -f2)" "$(grep -o '"rcodes":{[^}]*}' <<<"$out")"
  QPS[reload,signpost]="${QPS[reload,signpost]:-} $q"
  RATIO_GD[reload]="${RATIO_GD[reload]:-} $(echo "scale=4; $q/$base" | bc)"
done
reloads=$(grep -c "reloaded" "$W/SP_PID.log" || true)
echo "signpost completed $reloads reloads during the reload rounds"

# Unloaded latency: one query in flight.
for s in signpost:5401 gdnsd:5402 responder:5403; do
  IFS=: read -r name port <<<"$s"
  out=$(taskset -c 1 "$LG/loadgen" --server 127.0.0.1:$port --qname dl.example.test --ecs random --duration 5 --threads 1 --sockets 1 --window 1)
  printf 'unloaded (1 in flight) %-10s p50 %s us p99 %s us\n' "$name" "$(grep -o '"p50_us":[0-9]*' <<<"$out" | cut -d: -f2)" "$(grep -o '"p99_us":[0-9]*' <<<"$out" | cut -d: -f2)"
done
echo
med() { tr ' ' '\n' <<<"$1" | grep . | median; }
for case in none fixed:81.2.69.0/24 random; do
  sp=$(med "${QPS[$case,signpost]}"); gd=$(med "${QPS[$case,gdnsd]}"); rs=$(med "${QPS[$case,responder]}")
  ahead=$(tr ' ' '\n' <<<"${RATIO_GD[$case]}" | grep . | awk '$1 >= 1' | wc -l)
  printf 'median %-22s signpost %7.0f  gdnsd %7.0f  responder %7.0f  signpost/gdnsd %.3f (per round: median %.3f, signpost ahead in %d of %d)  signpost/ceiling %.3f (per round: median %.3f)\n' \
    "$case" "$sp" "$gd" "$rs" "$(echo "scale=4; $sp/$gd" | bc)" "$(med "${RATIO_GD[$case]}")" "$ahead" "$ROUNDS" \
    "$(echo "scale=4; $sp/$rs" | bc)" "$(med "${RATIO_RS[$case]}")"
  printf '       %-22s user CPU per query, median: signpost %s us, gdnsd %s us, responder %s us\n' "$case" \
    "$(med "${USER[$case,signpost]}")" "$(med "${USER[$case,gdnsd]}")" "$(med "${USER[$case,responder]}")"
done
printf 'reloads every second, random ECS: signpost median %7.0f qps, %.3f of the paired rounds without reloads (median per round)\n' \
  "$(med "${QPS[reload,signpost]}")" "$(med "${RATIO_GD[reload]}")"
