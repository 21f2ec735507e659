#!/usr/bin/env bash
# User-space instructions per answered query, Signpost vs gdnsd, counted by valgrind's
# callgrind: the same map, database and random-ECS load as compare.sh. Instruction counts do
# not depend on what else the machine is doing, so this comparison is repeatable where the
# throughput one is noisy (it does not see cache misses, which compare.sh does).
#
#   bash benches/instructions.sh [SECONDS]
#   OLD=path/to/older/signpost bash benches/instructions.sh [SECONDS]   # and that build's count
#   NEW_SED=... OLD_SED=...: sed scripts applied to the map of the Signpost run and of the OLD
#   run, to count two map policies (OLD may be the same binary); see benches/old-new.sh.
#
# Each server starts under callgrind (slow: Signpost walks the whole GeoIP database at start,
# about two minutes under valgrind), its counters are zeroed once it answers, then it gets
# SECONDS (default 20) of random-ECS load. Loopback only; bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-20}
ROOT=$(pwd)
W=$(mktemp -d /tmp/signpost-instr.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
# Data, tools, builds, and the same continent → node map for both servers.
source "$ROOT/benches/setup.sh"

# count NAME PORT CMD...: instructions per answered query of CMD under callgrind.
count() {
  local name=$1 port=$2; shift 2
  valgrind --tool=callgrind --callgrind-out-file="$W/$name.cg" "$@" > "$W/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  local waited=0
  until dig @127.0.0.1 -p "$port" example.test SOA +short +time=1 +tries=1 >/dev/null 2>&1; do
    sleep 1; waited=$((waited + 1))
    if [ $waited -gt 600 ]; then echo "$name did not start"; exit 1; fi
  done
  sleep 1
  callgrind_control -z "$pid" >/dev/null 2>&1
  out=$(taskset -c 1 "$LG/loadgen" --server 127.0.0.1:$port --qname dl.example.test --ecs random --duration "$SECS" --threads 1 --sockets 16 --window 8)
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill "$pid"; wait "$pid" 2>/dev/null || true
  ans=$(grep -o '"answered":[0-9]*' <<<"$out" | cut -d: -f2)
  to=$(grep -o '"timeouts":[0-9]*' <<<"$out" | cut -d: -f2)
  # The dump taken after the load holds the counts since the zeroing (the file written at
  # exit holds what came after the dump, which is next to nothing; both are added).
  ir=$(cat "$W/$name.cg"* | awk '/^(summary|totals):/ {s += $2} END {printf "%.0f", s / 2}')
  printf '%-9s answered %8d (timeouts %s)  user-space instructions %13s  per query %5d\n' \
    "$name" "$ans" "$to" "$ir" $((ir / ans))
  eval "IPQ_$name=$((ir / ans))"
}
echo "database: $DB; random ECS, ${SECS} s of load per server under callgrind"
mkdir -p "$W/old"
cp "$W/sp/signpost.yaml" "$W/sp/map.yaml" "$W/old/"
if [ -n "${NEW_SED:-}" ]; then sed -i "$NEW_SED" "$W/sp/map.yaml"; fi
if [ -n "${OLD_SED:-}" ]; then sed -i "$OLD_SED" "$W/old/map.yaml"; fi
count signpost 5401 "$SP" serve --config "$W/sp/signpost.yaml"
count gdnsd 5402 gdnsd -c "$W/gd" start
printf 'instructions per query, signpost/gdnsd: %.3f\n' "$(echo "scale=4; $IPQ_signpost/$IPQ_gdnsd" | bc)"
if [ -n "${OLD:-}" ]; then
  count old 5401 "$OLD" serve --config "$W/old/signpost.yaml"
  printf 'instructions per query, signpost/old: %.3f\n' "$(echo "scale=4; $IPQ_signpost/$IPQ_old" | bc)"
fi
