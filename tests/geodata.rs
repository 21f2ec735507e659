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
    let flat = GeoDb::open("flat", flat_db(), "auto").unwrap();
    assert_eq!(flat.layout, Layout::Flat);
    let (info, len) = flat.lookup("1.2.3.4".parse().unwrap()).unwrap().unwrap();
    assert_eq!(
        (info.country.as_deref(), info.continent.as_deref(), len),
        (Some("NZ"), Some("OC"), 24),
        "continent derived from the country"
    );
    let (info, len) = flat.lookup("5.6.7.8".parse().unwrap()).unwrap().unwrap();
    assert_eq!(
        (info.country.as_deref(), info.location, len),
        (Some("BR"), Some((-23.5, -46.6)), 16)
    );
    assert_eq!(
        flat.lookup("2a01:1::5".parse().unwrap())
            .unwrap()
            .unwrap()
            .0
            .continent
            .as_deref(),
        Some("EU")
    );
    assert!(flat.lookup("7.7.7.7".parse().unwrap()).unwrap().is_none());
    // Layout forced by configuration.
    assert_eq!(
        GeoDb::open("flat", flat_db(), "flat").unwrap().layout,
        Layout::Flat
    );
    assert!(GeoDb::open("flat", flat_db(), "banana").is_err());

    let city = GeoDb::open("city", city_db(), "auto").unwrap();
    assert_eq!(city.layout, Layout::GeoIp2);
    let (info, len) = city.lookup("9.9.9.9".parse().unwrap()).unwrap().unwrap();
    assert_eq!((info.subdivision.as_deref(), len), (Some("US-CA"), 22));
    // The flattened layer: three ranges (CA, NY, CA), the first and last with the same key.
    assert_eq!(city.layer.v4.len(), 3, "{:?}", city.layer.v4);
    assert_eq!(city.layer.v4[0].2, city.layer.v4[2].2);
    assert_ne!(city.layer.v4[0].2, city.layer.v4[1].2);
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
    let db = GeoDb::open("located", located_db(), "auto").unwrap();
    let info = |a: &str| db.lookup(a.parse().unwrap()).unwrap().unwrap().0;
    let eu = info("31.0.1.1");
    assert_eq!(
        (eu.continent.as_deref(), eu.country.as_deref()),
        (Some("EU"), None),
        "located in Europe: the US registration is not used"
    );
    let de = info("31.1.1.1");
    assert_eq!(
        (de.continent.as_deref(), de.country.as_deref()),
        (Some("EU"), Some("DE"))
    );
    let nz = info("32.0.1.1");
    assert_eq!(
        (nz.continent.as_deref(), nz.country.as_deref()),
        (Some("OC"), Some("NZ")),
        "no location at all: the registered country, and its continent"
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
