# Shared by compare.sh and instructions.sh (sourced with ROOT = the project, W = a scratch
# directory): picks the GeoIP database ($DB), installs gdnsd and builds the load generator when
# missing, builds Signpost ($SP), and writes the same continent -> node map for both servers
# into $W (MAP=continents or MAP=sites; Signpost on 127.0.0.1:5401, gdnsd on 127.0.0.1:5402). Sets LG to the load
# generator's directory.
TOOLS=$ROOT/../shared/tools/loadgen
LG=/tmp/loadgen-target/release
DB=$ROOT/../shared/data/geoip/GeoLite2-City-2019-12-24.mmdb
[ -f "$DB" ] || DB=$ROOT/testdata/geoip/GeoLite2-Country-2018-08-07.mmdb
command -v gdnsd >/dev/null || { apt-get update -qq && apt-get install -y -qq gdnsd >/dev/null; }
[ -x "$LG/loadgen" ] || cargo build -q --release --manifest-path "$TOOLS/Cargo.toml" --target-dir /tmp/loadgen-target
cargo build -q --release
SP=$ROOT/target/release/signpost

mkdir -p "$W/gd/zones" "$W/gd/run" "$W/gd/state" "$W/sp"
# MAP=continents (the default): seven sites, one per continent. MAP=sites: sixteen sites chosen
# by subdivision, country and continent (US west coast states, four European and three Asian
# countries, the continents for the rest).
MAP=${MAP:-continents}
case $MAP in
  continents)
    # site:address, then the rules as kind:code:site (kind sub, country or cont).
    sites="eu:192.0.2.10 na:198.51.100.10 oc:203.0.113.10 as:203.0.113.20 sa:203.0.113.30 af:192.0.2.40 an:192.0.2.50"
    rules="cont:EU:eu cont:NA:na cont:OC:oc cont:AS:as cont:SA:sa cont:AF:af cont:AN:an"
    gdmap="EU => [eu], NA => [na], OC => [oc], AS => [as], SA => [sa], AF => [af], AN => [an]" ;;
  sites)
    sites="de:192.0.2.1 gb:192.0.2.2 fr:192.0.2.3 nl:192.0.2.4 eu:192.0.2.5 usw:198.51.100.1 use:198.51.100.2 ca:198.51.100.3 na:198.51.100.4 jp:203.0.113.1 sg:203.0.113.2 in:203.0.113.3 as:203.0.113.4 au:203.0.113.5 br:203.0.113.6 za:203.0.113.7"
    rules="sub:US-CA:usw sub:US-WA:usw sub:US-OR:usw sub:US-NV:usw country:US:use country:CA:ca country:DE:de country:GB:gb country:FR:fr country:NL:nl country:JP:jp country:SG:sg country:IN:in cont:EU:eu cont:NA:na cont:AS:as cont:OC:au cont:SA:br cont:AF:za"
    gdmap="EU => { default => [eu], DE => [de], GB => [gb], FR => [fr], NL => [nl] }, NA => { default => [na], US => { default => [use], CA => [usw], WA => [usw], OR => [usw], NV => [usw] }, CA => [ca] }, AS => { default => [as], JP => [jp], SG => [sg], IN => [in] }, OC => [au], SA => [br], AF => [za]" ;;
  *) echo "MAP must be continents or sites"; exit 1 ;;
esac
names=$(for s in $sites; do echo -n "${s%%:*}, "; done)
{
  echo "options => { listen => [ 127.0.0.1:5402 ], udp_threads => 1, tcp_threads => 1, run_dir => $W/gd/run, state_dir => $W/gd/state }"
  echo "plugins => { geoip => { maps => { conts => { geoip2_db => $DB"
  echo "  datacenters => [${names%, }]"
  echo "  map => { default => [na], $gdmap }"
  echo "} }"
  echo -n "resources => { dl => { map => conts, dcmap => { "; for s in $sites; do echo -n "${s%%:*} => ${s#*:}, "; done; echo "} } } } }"
} > "$W/gd/config"
printf '@ 3600 SOA ns1 hostmaster 1 7200 900 1209600 300\n@ 3600 NS ns1\nns1 3600 A 127.0.0.1\ndl 60 DYNA geoip!dl\n' > "$W/gd/zones/example.test"
{
  echo "nodes:"; for s in $sites; do echo "  - { name: ${s%%:*}, ipv4: [${s#*:}] }"; done
  echo "regions:"; for s in $sites; do echo "  - { name: ${s%%:*}, nodes: [${s%%:*}] }"; done
  echo "services:"; echo "  - names: [dl.example.test]"; echo "    ttl: 60"; echo "    rules:"
  for r in $rules; do
    IFS=: read -r kind code site <<<"$r"
    case $kind in sub) key=subdivisions ;; country) key=countries ;; cont) key=continents ;; esac
    echo "      - { $key: [$code], regions: [$site] }"
  done
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
