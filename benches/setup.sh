# Shared by compare.sh and instructions.sh (sourced with ROOT = the project, W = a scratch
# directory): picks the GeoIP database ($DB), installs gdnsd and builds the load generator when
# missing, builds Signpost ($SP), and writes the same continent -> node map for both servers
# into $W (Signpost on 127.0.0.1:5401, gdnsd on 127.0.0.1:5402). Sets LG to the load
# generator's directory.
TOOLS=$ROOT/../shared/tools/loadgen
LG=/tmp/loadgen-target/release
DB=$ROOT/../shared/data/geoip/GeoLite2-City-2019-12-24.mmdb
[ -f "$DB" ] || DB=$ROOT/testdata/geoip/GeoLite2-Country-2018-08-07.mmdb
command -v gdnsd >/dev/null || { apt-get update -qq && apt-get install -y -qq gdnsd >/dev/null; }
[ -x "$LG/loadgen" ] || cargo build -q --release --manifest-path "$TOOLS/Cargo.toml" --target-dir /tmp/loadgen-target
cargo build -q --release
SP=$ROOT/target/release/signpost

conts="EU:eu:192.0.2.10 NA:na:198.51.100.10 OC:oc:203.0.113.10 AS:as:203.0.113.20 SA:sa:203.0.113.30 AF:af:192.0.2.40 AN:an:192.0.2.50"
mkdir -p "$W/gd/zones" "$W/gd/run" "$W/gd/state" "$W/sp"
{
  echo "options => { listen => [ 127.0.0.1:5402 ], udp_threads => 1, tcp_threads => 1, run_dir => $W/gd/run, state_dir => $W/gd/state }"
  echo "plugins => { geoip => { maps => { conts => { geoip2_db => $DB"
  echo "  datacenters => [na, eu, oc, as, sa, af, an]"
  echo -n "  map => { "; for c in $conts; do IFS=: read -r C d _ <<<"$c"; echo -n "$C => [$d], "; done; echo "}"
  echo "} }"
  echo -n "resources => { dl => { map => conts, dcmap => { "; for c in $conts; do IFS=: read -r _ d a <<<"$c"; echo -n "$d => $a, "; done; echo "} } } } }"
} > "$W/gd/config"
printf '@ 3600 SOA ns1 hostmaster 1 7200 900 1209600 300\n@ 3600 NS ns1\nns1 3600 A 127.0.0.1\ndl 60 DYNA geoip!dl\n' > "$W/gd/zones/example.test"
{
  echo "nodes:"; for c in $conts; do IFS=: read -r _ d a <<<"$c"; echo "  - { name: $d, ipv4: [$a] }"; done
  echo "regions:"; for c in $conts; do IFS=: read -r _ d _ <<<"$c"; echo "  - { name: $d, nodes: [$d] }"; done
  echo "services:"; echo "  - names: [dl.example.test]"; echo "    ttl: 60"; echo "    rules:"
  for c in $conts; do IFS=: read -r C d _ <<<"$c"; echo "      - { continents: [$C], regions: [$d] }"; done
  echo "      - { default: true, regions: [na] }"
} > "$W/sp/map.yaml"
cat > "$W/sp/signpost.yaml" <<YAML
listen: ["127.0.0.1:5401"]
workers: 1
zones:
  - apex: example.test
    soa: { mname: ns1, rname: hostmaster, minimum: 300 }
    ns: [{ name: ns1.example.test., addresses: [127.0.0.1] }]
maps: [map.yaml]
geoip: [{ path: $DB }]
YAML
