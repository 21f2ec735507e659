#!/usr/bin/env bash
# dnsviz's analysis of the signed demo zone: starts the demo (release build) on loopback,
# probes it with `dnsviz probe` (the zone's DS given as its delegation, so no parent or root is
# needed), and runs `dnsviz grok` at level "warning": it must print nothing. Then prints the
# chain as `dnsviz print` shows it. Loopback only; bounded (the probe waits at most 120 s).
#
#   bash benches/dnsviz.sh [DNSVIZ]
#
# DNSVIZ is the dnsviz command (default: dnsviz on PATH). dnsviz 0.11 from PyPI works; Debian
# 12's package (0.9.4) cannot load its python3-pygraphviz. `dnsviz probe -N` starts BIND's
# named (Debian package bind9) for the delegation it is given.
#
# Not part of the test command: dnsviz and named are not in it. Results: docs/dnssec.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DNSVIZ=${1:-dnsviz}
command -v "$DNSVIZ" >/dev/null || { echo "dnsviz not found (pip install dnsviz)"; exit 1; }
command -v named >/dev/null || { echo "named not found (apt-get install bind9)"; exit 1; }
cargo build -q --release
W=$(mktemp -d /tmp/signpost-dnsviz.XXXXXX)
PORT=5417
./target/release/signpost serve --listen "127.0.0.1:$PORT" --control "$W/ctl.sock" > "$W/server.log" 2>&1 &
PID=$!
cleanup() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
for _ in $(seq 100); do
  dig @127.0.0.1 -p "$PORT" example.test SOA +short +time=1 +tries=1 >/dev/null 2>&1 && break
  sleep 0.1
done
KEY=testdata/demo/keys/Kexample.test.+013+01841
DS=$(./target/release/signpost dnssec ds "$KEY" | awk '{print $4" "$5" "$6" "$7}')
grep -v '^;' "$KEY.key" > "$W/trusted-keys"
SERVER="ns1.example.test=127.0.0.1:$PORT"
timeout 120 "$DNSVIZ" probe -A -x "example.test:$SERVER" -N "example.test:$SERVER" \
  -D "example.test:$DS" example.test dl.example.test todl.example.test www.example.test \
  nothere.example.test _https._tcp.dl.example.test > "$W/probe.json" 2> "$W/probe.log"
"$DNSVIZ" grok -t "$W/trusted-keys" -l warning < "$W/probe.json" > "$W/warnings.json"
"$DNSVIZ" print -t "$W/trusted-keys" < "$W/probe.json"
if [ -s "$W/warnings.json" ]; then
  echo "dnsviz reports warnings or errors:"; cat "$W/warnings.json"; exit 1
fi
echo "dnsviz: no errors or warnings ($(git rev-parse --short HEAD))"
