//! GeoIP layouts with exact expectations: databases written here with `mmdb-writer` (the flat
//! DB-IP / ip-location-db layout, and a GeoIP2 City layout with subdivisions), read back by
//! Signpost, and a map compiled over them served by the real binary.

mod common;
use common::*;

use mmdb_writer::Writer;
use serde_json::json;
use signpost::geo::{GeoDb, Layout};

fn flat_db() -> Vec<u8> {
    let mut w = Writer::new("DBIP-Country-Lite");
    w.insert(
        "1.2.3.0/24".parse::<ipnet::IpNet>().unwrap(),
        &json!({"country_code": "NZ"}),
    )
    .unwrap();
    w.insert(
        "5.6.0.0/16".parse::<ipnet::IpNet>().unwrap(),
        &json!({"country_code": "BR", "latitude": -23.5, "longitude": -46.6}),
    )
    .unwrap();
    w.insert(
        "2a01:1::/32".parse::<ipnet::IpNet>().unwrap(),
        &json!({"country_code": "DE"}),
    )
    .unwrap();
    // Inside the City database's 9.9.12.0/22 (US-NY): the first database wins there.
    w.insert(
        "9.9.12.0/24".parse::<ipnet::IpNet>().unwrap(),
        &json!({"country_code": "NZ"}),
    )
    .unwrap();
    w.to_bytes().unwrap()
}

fn city_db() -> Vec<u8> {
    let mut w = Writer::new("GeoIP2-City");
    let rec = |cont: &str, country: &str, sub: &str| json!({"continent": {"code": cont}, "country": {"iso_code": country}, "subdivisions": [{"iso_code": sub}], "location": {"latitude": 37.3, "longitude": -121.9}});
    w.insert(
        "9.9.8.0/22".parse::<ipnet::IpNet>().unwrap(),
        &rec("NA", "US", "CA"),
    )
    .unwrap();
    w.insert(
        "9.9.12.0/22".parse::<ipnet::IpNet>().unwrap(),
        &rec("NA", "US", "NY"),
    )
    .unwrap();
    w.insert(
        "9.9.16.0/20".parse::<ipnet::IpNet>().unwrap(),
        &rec("NA", "US", "CA"),
    )
    .unwrap();
    w.to_bytes().unwrap()
}

#[test]
fn flat_and_city_layouts() {
    let flat = GeoDb::open("flat", flat_db(), None).unwrap();
    assert_eq!(flat.layout, Layout::Flat);
    let ((continent, country, _), len) = flat.lookup("1.2.3.4".parse().unwrap()).key.unwrap();
    assert_eq!(
        (country.as_deref(), continent.as_deref(), len),
        (Some("NZ"), Some("OC"), 24),
        "continent derived from the country"
    );
    let found = flat.lookup("5.6.7.8".parse().unwrap());
    let ((_, country, _), len) = found.key.unwrap();
    assert_eq!(
        (country.as_deref(), found.location, len),
        (Some("BR"), Some(((-23.5, -46.6), 16)), 16)
    );
    assert_eq!(
        flat.lookup("2a01:1::5".parse().unwrap())
            .key
            .unwrap()
            .0
            .0
            .as_deref(),
        Some("EU")
    );
    assert_eq!(flat.lookup("7.7.7.7".parse().unwrap()), Default::default());
    // Layout forced by configuration.
    assert_eq!(
        GeoDb::open("flat", flat_db(), Some(Layout::Flat))
            .unwrap()
            .layout,
        Layout::Flat
    );
    // An unknown format name is refused where the configuration is read (a typed choice; the
    // golden case `bad-data-format` shows the message).

    let city = GeoDb::open("city", city_db(), None).unwrap();
    assert_eq!(city.layout, Layout::GeoIp2);
    let ((_, _, subdivision), len) = city.lookup("9.9.9.9".parse().unwrap()).key.unwrap();
    assert_eq!((subdivision.as_deref(), len), (Some("US-CA"), 22));
    // The flattened layer: three ranges (CA, NY, CA), the first and last with the same key.
    let v4: Vec<_> = city.layer.spans.v4.iter().collect();
    assert_eq!(v4.len(), 3, "{v4:?}");
    assert_eq!(v4[0].2, v4[2].2);
    assert_ne!(v4[0].2, v4[1].2);
    assert_eq!(
        (v4[0].0, v4[2].1),
        (0x0909_0800, 0x0909_1fff),
        "9.9.8.0 to 9.9.31.255"
    );
    // Without its coordinates kept, the same layer and no location.
    let bare = GeoDb::open_with("city", city_db(), None, false).unwrap();
    assert_eq!(bare.layer.spans, city.layer.spans);
    assert!(bare.locations.is_none());
    assert_eq!(bare.lookup("9.9.9.9".parse().unwrap()).location, None);
    assert_eq!(
        city.lookup("9.9.9.9".parse().unwrap()).location,
        Some(((37.3, -121.9), 21)),
        "one location for all three networks: 9.9.8.0/21 holds the address"
    );
}

#[test]
fn subdivision_and_country_rules_over_built_databases() {
    let dir = TempDir::new("geodata");
    std::fs::write(dir.path("city.mmdb"), city_db()).unwrap();
    std::fs::write(dir.path("flat.mmdb"), flat_db()).unwrap();
    std::fs::create_dir_all(dir.path("maps")).unwrap();
    dir.write(
        "maps/map.yaml",
        r#"nodes:
  - { name: west, ipv4: [192.0.2.1] }
  - { name: east, ipv4: [192.0.2.2] }
  - { name: nz, ipv4: [192.0.2.3] }
  - { name: other, ipv4: [192.0.2.4] }
regions:
  - { name: west, nodes: [west] }
  - { name: east, nodes: [east] }
  - { name: nz, nodes: [nz] }
  - { name: other, nodes: [other] }
services:
  - names: [dl.example.test]
    rules:
      - { subdivisions: [US-CA], regions: [west] }
      - { countries: [US], regions: [east] }
      - { countries: [NZ], regions: [nz] }
      - { default: true, regions: [other] }
"#,
    );
    let cfg = dir.write(
        "signpost.yaml",
        "zones:\n  - apex: example.test\n    soa: { mname: ns1, rname: hostmaster }\n    ns: [ns1]\nmaps: [maps/]\ngeoip:\n  - { path: city.mmdb }\n  - { path: flat.mmdb }\n",
    );
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    let ask = |subnet: &str| s.answer_and_scope("dl.example.test", subnet);
    assert_eq!(
        ask("9.9.9.0/24"),
        ("192.0.2.1".into(), "22".into()),
        "subdivision US-CA"
    );
    assert_eq!(
        ask("9.9.13.0/24"),
        ("192.0.2.2".into(), "22".into()),
        "country US (NY has no rule)"
    );
    assert_eq!(
        ask("9.9.12.0/24"),
        ("192.0.2.2".into(), "22".into()),
        "the City database comes first: the flat database's NZ /24 inside it does not count"
    );
    assert_eq!(
        ask("9.9.20.0/24"),
        ("192.0.2.1".into(), "20".into()),
        "US-CA again, merged to its /20"
    );
    // Where the first location database knows nothing, the second one decides.
    assert_eq!(
        ask("1.2.3.0/24"),
        ("192.0.2.3".into(), "24".into()),
        "NZ from the flat database"
    );
    // BR has no rule: the default, like everything around it in 4.0.0.0/6.
    assert_eq!(ask("5.6.7.0/24"), ("192.0.2.4".into(), "6".into()), "BR");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args([
            "lookup",
            "--config",
            cfg.to_str().unwrap(),
            "1.2.3.4",
            "9.9.9.9",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("country: NZ") && text.contains("flat.mmdb, valid for /24"),
        "{text}"
    );
    assert!(text.contains("subdivision: US-CA"), "{text}");
}

/// City-layout records with and without their own location fields.
fn located_db() -> Vec<u8> {
    let mut w = Writer::new("GeoIP2-City");
    for (net, rec) in [
        // A network located in Europe (continent only), registered to a US company.
        (
            "31.0.0.0/16",
            json!({"continent": {"code": "EU"}, "registered_country": {"iso_code": "US"}}),
        ),
        // Located in Germany, registered in the US.
        (
            "31.1.0.0/16",
            json!({"continent": {"code": "EU"}, "country": {"iso_code": "DE"}, "registered_country": {"iso_code": "US"}}),
        ),
        // No location at all: only where it is registered.
        (
            "32.0.0.0/16",
            json!({"registered_country": {"iso_code": "NZ"}}),
        ),
        // Nothing usable: the default rule.
        ("33.0.0.0/16", json!({"names": {"en": "nowhere"}})),
    ] {
        w.insert(net.parse::<ipnet::IpNet>().unwrap(), &rec)
            .unwrap();
    }
    w.to_bytes().unwrap()
}

#[test]
fn the_records_own_location_decides_before_the_registered_country() {
    let db = GeoDb::open("located", located_db(), None).unwrap();
    let info = |a: &str| {
        let ((continent, country, _), _) = db.lookup(a.parse().unwrap()).key.unwrap();
        (continent, country)
    };
    let eu = info("31.0.1.1");
    assert_eq!(
        (eu.0.as_deref(), eu.1.as_deref()),
        (Some("EU"), None),
        "located in Europe: the US registration is not used"
    );
    let de = info("31.1.1.1");
    assert_eq!((de.0.as_deref(), de.1.as_deref()), (Some("EU"), Some("DE")));
    let nz = info("32.0.1.1");
    assert_eq!(
        (nz.0.as_deref(), nz.1.as_deref()),
        (Some("OC"), Some("NZ")),
        "no location at all: the registered country, and its continent"
    );
    assert_eq!(
        db.lookup("33.0.1.1".parse().unwrap()).key,
        None,
        "nothing usable"
    );

    let dir = TempDir::new("geodata-located");
    std::fs::write(dir.path("city.mmdb"), located_db()).unwrap();
    std::fs::create_dir_all(dir.path("maps")).unwrap();
    dir.write(
        "maps/map.yaml",
        r#"nodes:
  - { name: us, ipv4: [192.0.2.1] }
  - { name: eu, ipv4: [192.0.2.2] }
  - { name: nz, ipv4: [192.0.2.3] }
  - { name: de, ipv4: [192.0.2.5] }
  - { name: other, ipv4: [192.0.2.4] }
regions:
  - { name: us, nodes: [us] }
  - { name: eu, nodes: [eu] }
  - { name: nz, nodes: [nz] }
  - { name: de, nodes: [de] }
  - { name: other, nodes: [other] }
services:
  - names: [dl.example.test]
    rules:
      - { countries: [US], regions: [us] }
      - { countries: [NZ], regions: [nz] }
      - { countries: [DE], regions: [de] }
      - { continents: [EU], regions: [eu] }
      - { default: true, regions: [other] }
"#,
    );
    let cfg = dir.write(
        "signpost.yaml",
        "zones:\n  - apex: example.test\n    soa: { mname: ns1, rname: hostmaster }\n    ns: [ns1]\nmaps: [maps/]\ngeoip:\n  - { path: city.mmdb }\n",
    );
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    let ask = |subnet: &str| s.answer_and_scope("dl.example.test", subnet).0;
    assert_eq!(ask("31.0.5.0/24"), "192.0.2.2", "EU continent rule, not US");
    assert_eq!(ask("31.1.5.0/24"), "192.0.2.5", "its own country DE");
    assert_eq!(ask("32.0.5.0/24"), "192.0.2.3", "registered NZ");
    assert_eq!(ask("33.0.5.0/24"), "192.0.2.4", "nothing known: default");
}

/// The walk runs in two parts (the lower half of IPv4; the upper half and IPv6) that are
/// merged: a record on both sides of 128.0.0.0 gives one range, and IPv6 networks, shorter and
/// longer than /64, keep their bounds.
#[test]
fn the_two_parts_of_the_walk_join() {
    let mut w = Writer::new("GeoIP2-Country");
    let de = json!({"continent": {"code": "EU"}, "country": {"iso_code": "DE"}});
    let jp = json!({"continent": {"code": "AS"}, "country": {"iso_code": "JP"}});
    for (net, rec) in [
        ("127.255.0.0/16", &de),
        ("128.0.0.0/16", &de),
        ("200.1.0.0/16", &jp),
        ("2001:db8::/32", &jp),
        ("2001:db9::/73", &de),
        ("2001:db9:0:0:8000::/65", &jp),
    ] {
        w.insert(net.parse::<ipnet::IpNet>().unwrap(), rec).unwrap();
    }
    let db = GeoDb::open("split", w.to_bytes().unwrap(), None).unwrap();
    let v4: Vec<_> = db.layer.spans.v4.iter().collect();
    assert_eq!(v4.len(), 2, "{v4:?}");
    assert_eq!(
        (v4[0].0, v4[0].1),
        (0x7fff_0000, 0x8000_ffff),
        "one range across the halves"
    );
    let found = |a: &str| {
        let ((_, country, _), len) = db.lookup(a.parse().unwrap()).key.unwrap();
        (country.unwrap(), len)
    };
    assert_eq!(found("127.255.1.1"), ("DE".into(), 16));
    assert_eq!(found("128.0.1.1"), ("DE".into(), 16));
    assert_eq!(found("200.1.2.3"), ("JP".into(), 16));
    assert_eq!(found("2001:db8:1::1"), ("JP".into(), 32));
    assert_eq!(found("2001:db9::1"), ("DE".into(), 73));
    assert_eq!(found("2001:db9::8000:0:0:1"), ("JP".into(), 65));
    assert_eq!(db.lookup("2001:db9::4000:0:0:1".parse().unwrap()).key, None);
    assert_eq!(db.lookup("129.0.0.1".parse().unwrap()).key, None);
}
