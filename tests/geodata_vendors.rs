//! GeoIP databases as other vendors write them, read by the real binary: the committed files
//! `testdata/geoip/mixed-layouts.mmdb` (a GeoIP2-typed database whose records use the GeoIP2
//! layout, the flat layout, text in place of the GeoIP2 maps, or a mix) and
//! `testdata/geoip/ipv6-no-ipv4-subtree.mmdb` (an IPv6 database with a record at `::/8`, so
//! without an IPv4 subtree), each under `signpost lookup` and `serve` + dig. Both files are
//! written here with `mmdb-writer`: the first test checks that the committed files are exactly
//! what it writes, and with `SIGNPOST_BLESS=1` writes them (then update their SHA-256 in
//! `testdata/README.md`).

mod common;
use common::*;

use std::time::{Duration, UNIX_EPOCH};

use mmdb_writer::{Ipv4Aliasing, Writer};
use serde_json::{Value, json};

/// The build time written into both files, so that writing them again gives the same bytes.
const BUILD_EPOCH: u64 = 1_764_892_800;

/// A GeoIP2-typed database (`database_type` GeoIP2-City) with records in every layout seen in
/// the wild.
fn mixed_layouts() -> Vec<u8> {
    let mut w = Writer::builder("GeoIP2-City")
        .build_epoch(UNIX_EPOCH + Duration::from_secs(BUILD_EPOCH))
        .build();
    let records: [(&str, Value); 9] = [
        // The GeoIP2 layout.
        (
            "45.1.0.0/16",
            json!({"continent": {"code": "NA"}, "country": {"iso_code": "US"},
                   "subdivisions": [{"iso_code": "CA"}],
                   "location": {"latitude": 37.34, "longitude": -121.89}}),
        ),
        // The continent as text, the country as a GeoIP2 map.
        (
            "45.2.0.0/16",
            json!({"continent": "EU", "country": {"iso_code": "DE"}}),
        ),
        // Only a continent, as text.
        ("45.3.0.0/16", json!({"continent": "OC"})),
        // The flat layout: country code and coordinates at the top level.
        (
            "45.4.0.0/16",
            json!({"country_code": "NZ", "latitude": -41.29, "longitude": 174.78}),
        ),
        // Flat, with a continent code.
        (
            "45.5.0.0/16",
            json!({"continent_code": "AS", "country_code": "JP"}),
        ),
        // Country and continent as text under their GeoIP2 names.
        ("45.6.0.0/16", json!({"country": "BR", "continent": "SA"})),
        // GeoIP2 country and continent, flat coordinates.
        (
            "45.7.0.0/16",
            json!({"continent": {"code": "EU"}, "country": {"iso_code": "FR"},
                   "latitude": 48.86, "longitude": 2.35}),
        ),
        // Located in Europe (text continent), registered in the US: Europe.
        (
            "45.8.0.0/16",
            json!({"continent": "EU", "registered_country": {"iso_code": "US"}}),
        ),
        // Flat, in IPv6.
        ("2a02:1::/32", json!({"country_code": "SE"})),
    ];
    for (net, rec) in records {
        w.insert(net.parse::<ipnet::IpNet>().unwrap(), &rec)
            .unwrap();
    }
    w.to_bytes().unwrap()
}

/// An IPv6 GeoIP2-typed database with a record at `::/8`, which holds `::/96`: the database
/// has no IPv4 subtree. `2a04::/16` has the same record as `::/8` (one data record, two tree
/// leaves pointing at it).
fn ipv6_no_ipv4_subtree() -> Vec<u8> {
    let mut w = Writer::builder("GeoIP2-Country")
        .build_epoch(UNIX_EPOCH + Duration::from_secs(BUILD_EPOCH))
        .ipv4_aliasing(Ipv4Aliasing::Disabled)
        .build();
    let se = json!({"continent": {"code": "EU"}, "country": {"iso_code": "SE"}});
    let jp = json!({"continent": {"code": "AS"}, "country": {"iso_code": "JP"}});
    for (net, rec) in [("::/8", &se), ("2a03:1::/32", &jp), ("2a04::/16", &se)] {
        w.insert(net.parse::<ipnet::IpNet>().unwrap(), rec).unwrap();
    }
    w.to_bytes().unwrap()
}

/// A committed file: its path under `testdata/`, and what writes it.
type Made = (&'static str, fn() -> Vec<u8>);

/// The committed files.
fn files() -> [Made; 2] {
    [
        ("geoip/mixed-layouts.mmdb", mixed_layouts),
        ("geoip/ipv6-no-ipv4-subtree.mmdb", ipv6_no_ipv4_subtree),
    ]
}

#[test]
fn the_committed_databases_are_what_the_writer_makes() {
    let bless = std::env::var_os("SIGNPOST_BLESS").is_some();
    for (path, write) in files() {
        let bytes = write();
        assert_eq!(bytes, write(), "{path}: the writer is deterministic");
        if bless {
            std::fs::write(testdata(path), &bytes).unwrap();
        } else {
            let committed = std::fs::read(testdata(path)).unwrap();
            assert!(
                committed == bytes,
                "testdata/{path} differs from what this test writes: run \
                 `SIGNPOST_BLESS=1 cargo test --test geodata_vendors` and update its SHA-256 \
                 in testdata/README.md"
            );
        }
    }
}

/// A configuration over the `testdata/` GeoIP file `file`, and a map with a region (and a node,
/// 192.0.2.N in this order) per country and per continent, and a default region (192.0.2.99).
fn config(dir: &TempDir, file: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.path("maps")).unwrap();
    let mut nodes = String::new();
    let mut regions = String::new();
    let mut rules = String::new();
    let places = [
        ("countries", "US"),
        ("countries", "DE"),
        ("countries", "NZ"),
        ("countries", "JP"),
        ("countries", "BR"),
        ("countries", "FR"),
        ("countries", "SE"),
        ("continents", "OC"),
        ("continents", "EU"),
    ];
    for (i, (kind, code)) in places.iter().enumerate() {
        let name = code.to_ascii_lowercase();
        nodes += &format!("  - {{ name: {name}, ipv4: [192.0.2.{}] }}\n", i + 1);
        regions += &format!("  - {{ name: {name}, nodes: [{name}] }}\n");
        rules += &format!("      - {{ {kind}: [{code}], regions: [{name}] }}\n");
    }
    nodes += "  - { name: other, ipv4: [192.0.2.99] }\n";
    regions += "  - { name: other, nodes: [other] }\n";
    rules += "      - { default: true, regions: [other] }\n";
    dir.write(
        "maps/map.yaml",
        &format!(
            "nodes:\n{nodes}regions:\n{regions}services:\n  - names: [dl.example.test]\n    rules:\n{rules}"
        ),
    );
    dir.write(
        "signpost.yaml",
        &format!(
            "zones:\n  - apex: example.test\n    soa: {{ mname: ns1, rname: hostmaster }}\n    ns: [ns1]\nmaps: [maps/]\ngeoip:\n  - {{ path: {} }}\n",
            testdata(file),
        ),
    )
}

/// What `signpost lookup` prints for each of `addresses` with `config`: the lines under each
/// address, by address.
fn lookup(config: &std::path::Path, addresses: &[&str]) -> Vec<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["lookup", "--config", config.to_str().unwrap()])
        .args(addresses)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    addresses
        .iter()
        .map(|a| {
            let start = text
                .find(&format!("{a}\n"))
                .unwrap_or_else(|| panic!("{a} missing:\n{text}"));
            text[start + a.len() + 1..]
                .lines()
                .take_while(|l| l.starts_with("  "))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

/// `signpost lookup` reads each record of the GeoIP2-typed database in its own layout.
#[test]
fn lookup_reads_each_record_in_its_own_layout() {
    let dir = TempDir::new("geodata-vendors-lookup-mixed");
    let cfg = config(&dir, "geoip/mixed-layouts.mmdb");
    let expected: [(&str, &[&str]); 9] = [
        (
            "45.1.1.1",
            &["continent: NA", "country: US", "subdivision: US-CA"],
        ),
        ("45.2.1.1", &["continent: EU", "country: DE"]),
        ("45.3.1.1", &["continent: OC", "country: unknown"]),
        (
            "45.4.1.1",
            &[
                "continent: OC",
                "country: NZ",
                "location: -41.2900,174.7800",
            ],
        ),
        ("45.5.1.1", &["continent: AS", "country: JP"]),
        ("45.6.1.1", &["continent: SA", "country: BR"]),
        ("45.7.1.1", &["country: FR", "location: 48.8600,2.3500"]),
        ("45.8.1.1", &["continent: EU", "country: unknown"]),
        ("2a02:1::1", &["continent: EU", "country: SE"]),
    ];
    let addresses: Vec<&str> = expected.iter().map(|e| e.0).collect();
    for ((address, lines), found) in expected.iter().zip(lookup(&cfg, &addresses)) {
        for line in *lines {
            assert!(found.contains(line), "{address}: {line:?} in\n{found}");
        }
        assert!(
            found.contains("mixed-layouts.mmdb, valid for /"),
            "{address}:\n{found}"
        );
    }
}

/// `signpost lookup` finds the IPv6 database's `::/8` record outside `::/96`, at the leaf that
/// shares it, and for IPv4 (which the database's readers look up at `::a.b.c.d`).
#[test]
fn lookup_finds_the_record_at_a_short_v6_prefix() {
    let dir = TempDir::new("geodata-vendors-lookup-v6");
    let cfg = config(&dir, "geoip/ipv6-no-ipv4-subtree.mmdb");
    let expected = [
        ("::1:0:0:1", "country: SE (from", "valid for /8)"),
        ("2a04:1::1", "country: SE (from", "valid for /16)"),
        ("2a03:1::1", "country: JP (from", "valid for /32)"),
        ("99.1.1.1", "country: SE (from", "valid for /0)"),
        ("100::1", "country: unknown", ""),
    ];
    let addresses: Vec<&str> = expected.iter().map(|e| e.0).collect();
    for ((address, country, valid), found) in expected.iter().zip(lookup(&cfg, &addresses)) {
        assert!(
            found.contains(country) && found.contains(valid),
            "{address}: {country:?} {valid:?} in\n{found}"
        );
    }
}

/// The real server routes by the records of every layout.
#[test]
fn the_server_routes_by_records_of_every_layout() {
    let dir = TempDir::new("geodata-vendors-serve-mixed");
    let cfg = config(&dir, "geoip/mixed-layouts.mmdb");
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    let ask = |subnet: &str| s.answer_and_scope("dl.example.test", subnet);
    let node = |n: u8| (format!("192.0.2.{n}"), "16".to_string());
    assert_eq!(ask("45.1.1.0/24"), node(1), "US, the GeoIP2 layout");
    assert_eq!(ask("45.2.1.0/24"), node(2), "DE, text continent");
    assert_eq!(ask("45.3.1.0/24"), node(8), "OC, a text continent only");
    assert_eq!(ask("45.4.1.0/24"), node(3), "NZ, flat");
    assert_eq!(ask("45.5.1.0/24"), node(4), "JP, flat");
    assert_eq!(ask("45.6.1.0/24"), node(5), "BR, text country");
    assert_eq!(ask("45.7.1.0/24"), node(6), "FR");
    assert_eq!(ask("45.8.1.0/24"), node(9), "EU, not the registered US");
    assert_eq!(ask("2a02:1::/48").0, node(7).0, "SE, flat in IPv6");
}

/// The real server routes by the IPv6 database's `::/8` record.
#[test]
fn the_server_routes_by_the_record_at_a_short_v6_prefix() {
    let dir = TempDir::new("geodata-vendors-serve-v6");
    let cfg = config(&dir, "geoip/ipv6-no-ipv4-subtree.mmdb");
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    let ask = |subnet: &str| s.answer_and_scope("dl.example.test", subnet).0;
    assert_eq!(ask("::1:0:0:0/112"), "192.0.2.7", "SE, the record at ::/8");
    assert_eq!(ask("2a04:1::/48"), "192.0.2.7", "SE, the leaf sharing it");
    assert_eq!(ask("2a03:1::/48"), "192.0.2.4", "JP");
    assert_eq!(ask("99.1.1.0/24"), "192.0.2.7", "IPv4, inside ::/8");
    assert_eq!(ask("2a05::/48"), "192.0.2.99", "unknown: the default");
}
