#!/usr/bin/env bash
# Two Signpost binaries (say, before and after a change) side by side: the same configuration
# as compare.sh (benches/setup.sh), the same random-ECS load, measured in turns within one run,
# the order reversed every other round. Loopback only; bounded in time (about ROUNDS × 2 ×
# SECONDS plus start-up: under 2 minutes with the defaults).
#
#   bash benches/old-new.sh OLD_BINARY NEW_BINARY [ROUNDS] [SECONDS]
#
# OLD_EXTRA / NEW_EXTRA (environment): YAML appended to one side's configuration, to compare
# one binary with and without a setting, e.g. the query log:
#   NEW_EXTRA='query_log: {path: queries.jsonl}' \
#     bash benches/old-new.sh target/release/signpost target/release/signpost 9 8
#
# OLD_SED / NEW_SED: a sed script applied to one side's map, to compare two map policies with
# one binary, e.g. `spread: weighted` against `spread: capacity` (docs/benchmarks.md):
#   OLD_SED='s/^    ttl: 60$/&\n    spread: weighted/' \
#   NEW_SED='s/ipv4: \[\([^]]*\)\] }/ipv4: [\1], capacity: 1000 }/; s/^    ttl: 60$/&\n    spread: capacity/' \
#     bash benches/old-new.sh target/release/signpost target/release/signpost 9 8
#
# For example, with each commit built in its own worktree:
#   bash benches/old-new.sh ../wt-old/target/release/signpost target/release/signpost 5 8
#
# Prints each round's qps and user CPU per query for both, the per-round ratio new/old, and
# the median of those ratios (the machine's speed drifts by a quarter within minutes, so only
# ratios taken a few seconds apart mean anything). Results: see docs/benchmarks.md.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 OLD_BINARY NEW_BINARY [ROUNDS] [SECONDS]"; exit 2; }
OLD=$(realpath "$1")
NEW=$(realpath "$2")
[ -x "$OLD" ] && [ -x "$NEW" ] || { echo "both binaries must exist and be executable"; exit 2; }
cd "$(dirname "$0")/.."
ROUNDS=${3:-5}
SECS=${4:-8}
ROOT=$(pwd)
W=$(mktemp -d /tmp/signpost-old-new.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

# Data, tools and the continent -> node map (the gdnsd half of it is not used here).
source "$ROOT/benches/setup.sh"
# The same configuration for both, on two ports.
mkdir -p "$W/old" "$W/new"
for v in old new; do cp "$W/sp/map.yaml" "$W/$v/"; done
sed 's/127\.0\.0\.1:5401/127.0.0.1:5411/' "$W/sp/signpost.yaml" > "$W/old/signpost.yaml"
sed 's/127\.0\.0\.1:5401/127.0.0.1:5412/' "$W/sp/signpost.yaml" > "$W/new/signpost.yaml"
if [ -n "${OLD_SED:-}" ]; then sed -i "$OLD_SED" "$W/old/map.yaml"; fi
if [ -n "${NEW_SED:-}" ]; then sed -i "$NEW_SED" "$W/new/map.yaml"; fi
if [ -n "${OLD_EXTRA:-}" ]; then printf '%s\n' "$OLD_EXTRA" >> "$W/old/signpost.yaml"; fi
if [ -n "${NEW_EXTRA:-}" ]; then printf '%s\n' "$NEW_EXTRA" >> "$W/new/signpost.yaml"; fi

for p in 5411 5412; do
  if dig @127.0.0.1 -p $p example.test SOA +time=1 +tries=1 >/dev/null 2>&1; then echo "port $p is already in use"; exit 1; fi
done
# Servers on core 0, the load generator on core 1, as in compare.sh.
start() { local var=$1; shift; taskset -c 0 "$@" > "$W/$var.log" 2>&1 & PIDS+=($!); printf -v "$var" '%s' "$!"; }
wait_for() {
  local port=$1 pid=$2 end=$((SECONDS + 120))
  until dig @127.0.0.1 -p "$port" example.test SOA +short +time=1 +tries=1 >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { echo "server on port $port exited"; exit 1; }
    [ $SECONDS -lt $end ] || { echo "server on port $port did not answer within 120 s"; exit 1; }
    sleep 0.05
  done
}
start OLD_PID "$OLD" serve --config "$W/old/signpost.yaml"
wait_for 5411 "$OLD_PID"
start NEW_PID "$NEW" serve --config "$W/new/signpost.yaml"
wait_for 5412 "$NEW_PID"
echo "database: $DB"
echo "old: $OLD"
echo "new: $NEW"

# Correctness first: the same answer and scope for the same random /24s.
"$LG/loadgen" --server 127.0.0.1:5411 --qname dl.example.test --ecs random --verify 3000 --seed 7 --out "$W/old.verify" >/dev/null
"$LG/loadgen" --server 127.0.0.1:5412 --qname dl.example.test --ecs random --verify 3000 --seed 7 --out "$W/new.verify" >/dev/null
diffs=$(paste "$W/old.verify" "$W/new.verify" | awk '{n = NF / 2; for (i = 1; i <= n; i++) if ($i != $(i + n)) {print; break}}' | wc -l)
echo "verification: 3000 random /24s, answers or scopes that differ: $diffs"
[ "$diffs" -eq 0 ] || { echo "refusing to compare binaries that disagree"; exit 1; }

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu() { awk '{print $14}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)
declare -A LAST
# measure NAME PORT PID ROUND: one random-ECS load run; prints a line, sets LAST[NAME].
measure() {
  local name=$1 port=$2 pid=$3 r=$4
  local u0 u1 out q ans to us
  u0=$(cpu "$pid")
  out=$(taskset -c 1 "$LG/loadgen" --server 127.0.0.1:$port --qname dl.example.test --ecs random --duration "$SECS" --threads 1 --sockets 16 --window 8 --label "$name")
  u1=$(cpu "$pid")
  q=$(grep -o '"qps":[0-9]*' <<<"$out" | cut -d: -f2)
  ans=$(grep -o '"answered":[0-9]*' <<<"$out" | cut -d: -f2)
  to=$(grep -o '"timeouts":[0-9]*' <<<"$out" | cut -d: -f2)
  us=$(echo "scale=2; ($u1 - $u0) * 1000000 / $TCK / $ans" | bc)
  printf 'round %d %-4s %8s qps  timeouts %s  user CPU/query %s us  rss %d MB\n' "$r" "$name" "$q" "$to" "$us" $(( $(rss "$pid") / 1024 ))
  LAST[$name]=$q
}
RATIOS=""
QOLD=""
QNEW=""
for r in $(seq 1 "$ROUNDS"); do
  order="old:5411:$OLD_PID new:5412:$NEW_PID"
  (( r % 2 == 0 )) && order="new:5412:$NEW_PID old:5411:$OLD_PID"
  for s in $order; do
    IFS=: read -r name port pid <<<"$s"
    measure "$name" "$port" "$pid" "$r"
  done
  ratio=$(echo "scale=4; ${LAST[new]}/${LAST[old]}" | bc)
  printf 'round %d new/old %.3f\n' "$r" "$ratio"
  RATIOS="$RATIOS $ratio"; QOLD="$QOLD ${LAST[old]}"; QNEW="$QNEW ${LAST[new]}"
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mo=$(median <<<"$QOLD"); mn=$(median <<<"$QNEW")
ahead=$(tr ' ' '\n' <<<"$RATIOS" | grep . | awk '$1 >= 1' | wc -l)
printf 'per-round new/old:%s\n' "$RATIOS"
printf 'median random ECS  old %7.0f  new %7.0f  new/old %.3f (per round: median %.3f, min %.3f, max %.3f; new ahead in %d of %d)\n' \
  "$mo" "$mn" "$(echo "scale=4; $mn/$mo" | bc)" "$(median <<<"$RATIOS")" \
  "$(tr ' ' '\n' <<<"$RATIOS" | grep . | sort -n | head -1)" "$(tr ' ' '\n' <<<"$RATIOS" | grep . | sort -n | tail -1)" "$ahead" "$ROUNDS"
