//! `rank: distance` end to end: a GeoIP2 City database written here with `mmdb-writer`
//! (clients near London, Frankfurt, Sydney and São Paulo, and one network without a
//! location), a map whose regions rank four nodes by great-circle distance (one of them keeping
//! only the two nearest), served by the real binary and asked with `dig +subnet`.

mod common;
use common::*;

use mmdb_writer::Writer;
use serde_json::json;

const LONDON: &str = "11.1.0.0/16";
const FRANKFURT: &str = "11.2.0.0/16";
const SYDNEY: &str = "11.3.0.0/16";
const SAO_PAULO: &str = "11.4.0.0/16";
const NOWHERE: &str = "11.5.0.0/16";

fn city_db() -> Vec<u8> {
    let mut w = Writer::new("GeoIP2-City");
    let at = |cont: &str, country: &str, lat: f64, lon: f64| {
        json!({"continent": {"code": cont}, "country": {"iso_code": country},
               "location": {"latitude": lat, "longitude": lon}})
    };
    for (net, rec) in [
        (LONDON, at("EU", "GB", 51.51, -0.13)),
        (FRANKFURT, at("EU", "DE", 50.11, 8.68)),
        (SYDNEY, at("OC", "AU", -33.87, 151.21)),
        (SAO_PAULO, at("SA", "BR", -23.55, -46.63)),
        (
            NOWHERE,
            json!({"continent": {"code": "EU"}, "country": {"iso_code": "FR"}}),
        ),
    ] {
        w.insert(net.parse::<ipnet::IpNet>().unwrap(), &rec)
            .unwrap();
    }
    w.to_bytes().unwrap()
}

const MAP: &str = r#"nodes:
  - { name: lon1, ipv4: [192.0.2.1], location: { lat: 51.50, lon: -0.12 } }
  - { name: fra1, ipv4: [192.0.2.2], weight: 200, location: { lat: 50.12, lon: 8.70 } }
  - { name: syd1, ipv4: [192.0.2.3], location: { lat: -33.86, lon: 151.20 } }
  - { name: gru1, ipv4: [192.0.2.4], location: { lat: -23.43, lon: -46.47 } }
  - { name: spare, ipv4: [192.0.2.9] }
regions:
  - { name: near, nodes: [lon1, fra1, syd1, gru1], rank: distance }
  - { name: near2, nodes: [lon1, fra1, syd1, gru1], rank: distance, limit: 2 }
  - { name: rest, nodes: [spare] }
services:
  - names: [dl.example.test]
    rules:
      - { default: true, regions: [near, rest] }
  - names: [two.example.test]
    rules:
      - { default: true, regions: [near2, rest] }
"#;

fn setup() -> (TempDir, std::path::PathBuf) {
    let dir = TempDir::new("distance");
    std::fs::write(dir.path("city.mmdb"), city_db()).unwrap();
    std::fs::create_dir_all(dir.path("maps")).unwrap();
    dir.write("maps/map.yaml", MAP);
    let cfg = dir.write(
        "signpost.yaml",
        "zones:\n  - apex: example.test\n    soa: { mname: ns1, rname: hostmaster }\n    ns: [ns1]\nmaps: [maps/]\ngeoip:\n  - { path: city.mmdb }\n",
    );
    (dir, cfg)
}

/// The address answered for `name` to a client in `net`, and the ECS scope.
fn ask(s: &Server, name: &str, net: &str) -> (String, String) {
    s.answer_and_scope(name, &net.replace("/16", "/24"))
}

fn set(s: &Server, node: &str, state: &str) {
    assert!(s.ctl(&["set", node, state]).0, "ctl set {node} {state}");
}

#[test]
fn nearest_node_by_great_circle_distance() {
    let (dir, cfg) = setup();
    let s = Server::with_control(&cfg, &dir);
    let dl = "dl.example.test";
    // Each client gets its nearest node; the scope is the database network's /16.
    for (net, want) in [
        (LONDON, "192.0.2.1"),
        (FRANKFURT, "192.0.2.2"),
        (SYDNEY, "192.0.2.3"),
        (SAO_PAULO, "192.0.2.4"),
    ] {
        assert_eq!(ask(&s, dl, net), (want.into(), "16".into()), "client {net}");
    }
    // Without coordinates: weight order (fra1, weight 200), all members kept.
    assert_eq!(ask(&s, dl, NOWHERE).0, "192.0.2.2");
    assert_eq!(
        ask(&s, dl, "12.0.0.0/24").0,
        "192.0.2.2",
        "not in the database"
    );

    // The nearest down: the second nearest (for London, Frankfurt; for Sydney, São Paulo at
    // about 13 400 km, before London at about 17 000 km).
    set(&s, "lon1", "down");
    assert_eq!(ask(&s, dl, LONDON).0, "192.0.2.2");
    set(&s, "syd1", "down");
    assert_eq!(ask(&s, dl, SYDNEY).0, "192.0.2.4");
    set(&s, "syd1", "up");

    // limit 2: London's two nearest are lon1 and fra1; with both down the chain's next
    // region answers, while the unlimited region goes on to São Paulo.
    let two = "two.example.test";
    assert_eq!(ask(&s, two, LONDON).0, "192.0.2.2");
    set(&s, "fra1", "down");
    assert_eq!(ask(&s, two, LONDON).0, "192.0.2.9", "beyond the limit");
    assert_eq!(
        ask(&s, dl, LONDON).0,
        "192.0.2.4",
        "no limit: the third nearest"
    );
    // Sydney's two nearest (syd1, gru1) are up: the limit changes nothing there.
    assert_eq!(ask(&s, two, SYDNEY).0, "192.0.2.3");
    // Without coordinates the limited region keeps every member: weight order among the up
    // ones (gru1 and syd1 weigh the same: by name).
    assert_eq!(ask(&s, two, NOWHERE).0, "192.0.2.4");

    // The explanation shows each member's distance and which are beyond the limit.
    let explain = |name: &str, addr: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_signpost"))
            .args(["explain", "--socket"])
            .arg(s.control.as_ref().unwrap())
            .args([addr, name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = explain(two, "11.1.0.1");
    assert!(text.contains("near2 (by distance, nearest 2)"), "{text}");
    assert!(text.contains("lon1 w100 down 1 km"), "{text}");
    assert!(text.contains("fra1 w200 down 639 km"), "{text}");
    assert!(
        text.contains("gru1 w100 up 9") && text.contains(" km (beyond the limit)"),
        "{text}"
    );
    assert!(
        text.contains("answer: spare [192.0.2.9] from region rest"),
        "{text}"
    );
    let text = explain(dl, "11.5.0.1");
    assert!(
        text.contains("near (by weight: no client coordinates)"),
        "{text}"
    );
}

/// The coordinates are kept only while a map ranks by distance: a server started with a map
/// that does not shows `location: not kept` in `_why`; a reload that adds a distance region
/// reads the database again with its coordinates and ranks by them at once.
#[test]
fn coordinates_are_kept_when_a_map_first_ranks_by_distance() {
    let (dir, cfg) = setup();
    dir.write(
        "maps/map.yaml",
        r#"nodes:
  - { name: lon1, ipv4: [192.0.2.1], location: { lat: 51.50, lon: -0.12 } }
  - { name: fra1, ipv4: [192.0.2.2], weight: 200, location: { lat: 50.12, lon: 8.70 } }
regions:
  - { name: both, nodes: [lon1, fra1] }
services:
  - names: [dl.example.test]
    rules:
      - { default: true, regions: [both] }
"#,
    );
    let s = Server::with_control(&cfg, &dir);
    let why = |s: &Server| s.short(&["TXT", "_why.dl.example.test", "+subnet=11.1.0.0/24"]);
    assert_eq!(
        ask(&s, "dl.example.test", LONDON).0,
        "192.0.2.2",
        "by weight"
    );
    let text = why(&s);
    assert!(
        text.contains("\"location: not kept (no map ranks by distance"),
        "{text}"
    );
    // The offline lookup reads the file itself and shows the coordinates.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["lookup", "--config", cfg.to_str().unwrap(), "11.1.0.1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("location: 51.5100,-0.1300 (from "), "{text}");

    dir.write("maps/map.yaml", MAP);
    assert!(s.ctl(&["reload"]).0, "reload");
    assert!(
        wait_for(10, || ask(&s, "dl.example.test", LONDON).0 == "192.0.2.1"),
        "the nearest node after the reload"
    );
    assert_eq!(ask(&s, "dl.example.test", SYDNEY).0, "192.0.2.3");
    let text = why(&s);
    assert!(
        text.contains("\"location: 51.5100,-0.1300 (from "),
        "{text}"
    );
}
