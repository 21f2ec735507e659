#!/usr/bin/env bash
# Live BGP feeds at full-table scale: builds the release binary and the load generator, then
# runs the replaying speaker and its measurements (benches/bgp_feed.rs). Loopback only;
# about 5 minutes with the defaults. Arguments go to the bench, e.g.
#
#   bash benches/bgp-feed.sh --secs 10 --rounds 3 --rate 2000 --churn-secs 20
#
# Results: docs/benchmarks.md, "Live BGP feeds at full-table scale".
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /tmp/loadgen-target/release/loadgen ] ||
  cargo build -q --release --manifest-path ../shared/tools/loadgen/Cargo.toml --target-dir /tmp/loadgen-target
cargo build -q --release
cargo bench -q --bench bgp_feed -- "$@"
