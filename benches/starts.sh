#!/usr/bin/env bash
# Start time and resident size of Signpost and gdnsd, in alternating starts within one run:
# the same database and map as compare.sh (benches/setup.sh; MAP=sites for the 16-site map).
# Loopback only; bounded (each start waits at most 60 s).
#
#   bash benches/starts.sh [STARTS] [PIN]
#
# PIN=1 (the default) pins each server to core 0, as compare.sh does; PIN=0 lets it use every
# core. Prints, per server, each start's time from exec to the first answer to a SOA query and
# its resident size 2.5 s later (once memory freed after the build has gone back).
set -euo pipefail
cd "$(dirname "$0")/.."
STARTS=${1:-4}
PIN=${2:-1}
ROOT=$(pwd)
W=$(mktemp -d /tmp/signpost-starts.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
source "$ROOT/benches/setup.sh"
pre=()
[ "$PIN" = 1 ] && pre=(taskset -c 0)
declare -A TIMES RSS
# one NAME PORT CMD...: one start of CMD.
one() {
  local name=$1 port=$2; shift 2
  local t0 t1 waited=0
  t0=$(date +%s.%N)
  "${pre[@]}" "$@" > "$W/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  until dig @127.0.0.1 -p "$port" example.test SOA +short +time=1 +tries=1 >/dev/null 2>&1; do
    sleep 0.01; waited=$((waited + 1))
    if [ $waited -gt 6000 ]; then echo "$name did not start"; exit 1; fi
  done
  t1=$(date +%s.%N)
  sleep 2.5
  TIMES[$name]="${TIMES[$name]:-} $(printf '%.2f' "$(echo "$t1 - $t0" | bc)")"
  RSS[$name]="${RSS[$name]:-} $(( $(awk '/VmRSS/ {print $2}' "/proc/$pid/status") / 1024 ))"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  sleep 0.3
}
echo "database: $DB; map: $MAP; pinned to one core: $PIN"
for _ in $(seq "$STARTS"); do
  one signpost 5401 "$SP" serve --config "$W/sp/signpost.yaml"
  one gdnsd 5402 gdnsd -c "$W/gd" start
done
for n in signpost gdnsd; do
  echo "$n: start (s)${TIMES[$n]}; RSS (MB)${RSS[$n]}"
done
