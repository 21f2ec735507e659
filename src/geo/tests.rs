//! Databases as other vendors write them (`testdata/geoip/`, written with `mmdb-writer` by
//! `tests/geodata_vendors.rs`), and the continent table.

use super::*;

fn testdata(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (continent, country, subdivision, prefix length).
type KeyAndLength = (Option<String>, Option<String>, Option<String>, u8);

/// What `db` says about `addr`.
fn key(db: &GeoDb, addr: &str) -> Option<KeyAndLength> {
    db.lookup(addr.parse().unwrap())
        .key
        .map(|((continent, country, subdivision), len)| (continent, country, subdivision, len))
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[test]
fn continents() {
    assert_eq!(continent_of("gb"), Some("EU"));
    assert_eq!(continent_of("AU"), Some("OC"));
    assert_eq!(continent_of("ZZ"), None);
}

/// A GeoIP2-typed database whose records use the GeoIP2 layout, the flat layout, text in
/// place of the GeoIP2 maps, or a mix: each record is read in the layouts it uses.
#[test]
fn a_geoip2_database_is_read_in_whichever_layout_each_record_uses() {
    let db = GeoDb::open("mixed", testdata("geoip/mixed-layouts.mmdb"), None).unwrap();
    assert_eq!(db.layout, Layout::GeoIp2);
    assert_eq!(
        key(&db, "45.1.1.1"),
        Some((some("NA"), some("US"), some("US-CA"), 16)),
        "the GeoIP2 layout"
    );
    assert_eq!(
        key(&db, "45.2.1.1"),
        Some((some("EU"), some("DE"), None, 16)),
        "continent as text"
    );
    assert_eq!(key(&db, "45.3.1.1"), Some((some("OC"), None, None, 16)));
    assert_eq!(
        key(&db, "45.4.1.1"),
        Some((some("OC"), some("NZ"), None, 16)),
        "flat, the continent from the country"
    );
    assert_eq!(
        key(&db, "45.5.1.1"),
        Some((some("AS"), some("JP"), None, 16)),
        "flat continent_code"
    );
    assert_eq!(
        key(&db, "45.6.1.1"),
        Some((some("SA"), some("BR"), None, 16)),
        "country as text"
    );
    assert_eq!(
        key(&db, "45.7.1.1"),
        Some((some("EU"), some("FR"), None, 16))
    );
    assert_eq!(
        key(&db, "45.8.1.1"),
        Some((some("EU"), None, None, 16)),
        "its own text continent, not the registered country"
    );
    assert_eq!(
        key(&db, "2a02:1::1"),
        Some((some("EU"), some("SE"), None, 32))
    );
    assert_eq!(key(&db, "45.9.1.1"), None);
    let at = |a: &str| db.lookup(a.parse().unwrap()).location.map(|l| l.0);
    assert_eq!(at("45.1.1.1"), Some((37.34, -121.89)));
    assert_eq!(at("45.4.1.1"), Some((-41.29, 174.78)), "flat coordinates");
    assert_eq!(
        at("45.7.1.1"),
        Some((48.86, 2.35)),
        "flat coordinates beside GeoIP2 codes"
    );
    assert_eq!(at("45.2.1.1"), None);
    // Without coordinates, the same keys; read as the flat layout, the same too.
    let bare = GeoDb::open_with("mixed", testdata("geoip/mixed-layouts.mmdb"), None, false);
    let flat = GeoDb::open(
        "mixed",
        testdata("geoip/mixed-layouts.mmdb"),
        Some(Layout::Flat),
    )
    .unwrap();
    for other in [bare.unwrap(), flat] {
        assert_eq!(other.layer.keys, db.layer.keys);
        assert_eq!(other.layer.spans, db.layer.spans);
    }
}

/// Corrupt records are still refused with the reader's positioned message, whatever the
/// layout asked for.
#[test]
fn corrupt_records_are_still_refused_with_their_position() {
    for format in [None, Some(Layout::GeoIp2), Some(Layout::Flat)] {
        for (file, expected) in [
            (
                "mmdb/test-data/MaxMind-DB-test-broken-pointers-24.mmdb",
                "at offset 1001000",
            ),
            (
                "mmdb/bad-data/libmaxminddb/libmaxminddb-deep-nesting.mmdb",
                "at offset 1208",
            ),
            (
                "mmdb/bad-data/libmaxminddb/libmaxminddb-oversized-map.mmdb",
                "at offset 4",
            ),
        ] {
            let err = GeoDb::open(file, testdata(file), format).unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, GeoError::Corrupt(_)) && text.contains(expected),
                "{file} as {format:?}: {text}"
            );
        }
    }
}

/// An IPv6 database with a record at `::/8` (so without an IPv4 subtree): that record holds
/// all of `::/8` outside `::/96` too, another leaf with the same record is not an IPv4 alias,
/// and IPv4 addresses, which its readers look up at `::a.b.c.d`, get the `::/8` record.
#[test]
fn an_ipv6_database_without_an_ipv4_subtree_keeps_its_short_v6_records() {
    let db = GeoDb::open("v6", testdata("geoip/ipv6-no-ipv4-subtree.mmdb"), None).unwrap();
    let se = |len| Some((some("EU"), some("SE"), None, len));
    assert_eq!(key(&db, "::1:0:0:1"), se(8), "::/8 outside ::/96");
    assert_eq!(key(&db, "ff::1"), se(8), "the end of ::/8");
    assert_eq!(key(&db, "::5"), se(8), "inside ::/96");
    assert_eq!(
        key(&db, "2a04:1::1"),
        se(16),
        "a leaf sharing the ::/8 record"
    );
    assert_eq!(
        key(&db, "2a03:1::1"),
        Some((some("AS"), some("JP"), None, 32))
    );
    assert_eq!(key(&db, "100::1"), None);
    assert_eq!(key(&db, "2a05::1"), None);
    assert_eq!(key(&db, "1.2.3.4"), se(0), "IPv4, inside ::/8");
    assert_eq!(key(&db, "255.255.255.255"), se(0));
    let v6: Vec<_> = db.layer.spans.v6.iter().collect();
    assert_eq!(
        v6.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(),
        vec![
            (0, (1u128 << 120) - 1),
            (0x2a03_0001u128 << 96, (0x2a03_0002u128 << 96) - 1),
            (0x2a04u128 << 112, (0x2a05u128 << 112) - 1),
        ]
    );
}

/// An IPv6 database with an IPv4 subtree still skips `::/96` and the aliases of the subtree
/// in IPv6: each IPv4 network is kept once, as IPv4.
#[test]
fn an_ipv6_database_with_an_ipv4_subtree_keeps_ipv4_once() {
    let db = GeoDb::open("mixed", testdata("geoip/mixed-layouts.mmdb"), None).unwrap();
    assert_eq!(db.layer.spans.v4.len(), 8);
    assert_eq!(db.layer.spans.v6.len(), 1, "2a02:1::/32 only");
    for aliased in ["::ffff:45.1.1.1", "2002:2d01:101::1", "::45.1.1.1"] {
        assert_eq!(key(&db, aliased), None, "{aliased}");
    }
}

/// Location keys are told apart whatever bytes their codes hold: a continent code and no
/// country is not the same key as no continent and a country code with the same letters.
#[test]
fn location_keys_never_collide_through_their_text() {
    let placed = |continent, country, subdivision: Option<&str>| record::Placed {
        continent,
        country,
        subdivision: subdivision.map(str::to_string),
        location: None,
    };
    let (mut text, mut ids, mut keys) = (String::new(), HashMap::new(), Vec::new());
    let records = [
        placed(Some(*b"/A"), None, None),
        placed(None, Some(*b"A/"), None),
        placed(None, Some(*b"/A"), Some("")),
        placed(Some(*b"/A"), Some(*b"/A"), None),
        placed(Some(*b"EU"), Some(*b"DE"), Some("BE")),
        placed(Some(*b"EU"), Some(*b"DE"), None),
    ];
    let got: Vec<u32> = records
        .iter()
        .map(|p| key_id(p, &mut text, &mut ids, &mut keys))
        .collect();
    assert_eq!(got, [0, 1, 2, 3, 4, 5]);
    // The same record again gets the same id.
    assert_eq!(key_id(&records[4], &mut text, &mut ids, &mut keys), 4);
}
