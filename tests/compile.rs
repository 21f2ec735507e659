//! The compiled route tables against the raw data: for random addresses, the decision the
//! table gives must be the one the rules give when applied by hand to the GeoIP and BGP
//! lookups, and so must every address inside the returned ECS scope; and each scope is maximal
//! (the enclosing block one bit wider holds a different decision).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use signpost::snapshot::Snapshot;

/// The demo map's rules (maps/services.yaml), applied by hand: the kind of rule and its first
/// region.
fn by_hand(snap: &Snapshot, a: IpAddr) -> (&'static str, &'static str) {
    let info = snap.client.lookup(a);
    if let IpAddr::V4(v4) = a
        && (u32::from(v4) >> 17) == (u32::from(Ipv4Addr::new(198, 18, 0, 0)) >> 17)
    {
        return ("prefix", "europe");
    }
    if info.asn.as_ref().is_some_and(|s| s.value == 3320) && info.prefix.is_some() {
        return ("asn", "europe");
    }
    if info.country.as_ref().is_some_and(|c| c.value == "NZ") {
        return ("country", "oceania");
    }
    match info.continent.as_ref().map(|c| c.value.as_str()) {
        Some("EU") | Some("AF") => ("continent", "europe"),
        Some("NA") => ("continent", "north-america"),
        Some("SA") => ("continent", "south-america"),
        Some("OC") => ("continent", "oceania"),
        Some("AS") => ("continent", "asia"),
        _ => ("default", "north-america"),
    }
}

fn decided(snap: &Snapshot, a: IpAddr) -> (&'static str, String, u8) {
    let svc = &snap.services[0];
    let (d, len) = svc.route(a).expect("every address routes");
    (
        svc.rules[d.rule].kind.as_str(),
        svc.regions[d.chain[0]].name.clone(),
        len,
    )
}

#[test]
fn compiled_tables_agree_with_the_raw_data_and_scopes_are_exact() {
    let (_, snap) = signpost::load::load(None, None).expect("embedded default");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut checked = 0;
    for i in 0..3000 {
        let a = if i % 3 == 2 {
            // IPv6 from the populated part of the space.
            IpAddr::V6(Ipv6Addr::from(
                ((0x2000u128 | (next() as u128 & 0x0fff)) << 112) | (next() as u128) << 48,
            ))
        } else {
            IpAddr::V4(Ipv4Addr::from(next() as u32))
        };
        let (kind, region, len) = decided(&snap, a);
        let (want_kind, want_region) = by_hand(&snap, a);
        assert_eq!((kind, region.as_str()), (want_kind, want_region), "{a}");
        // Every address inside the scope decides the same, by hand too.
        let bits = if a.is_ipv4() { 32 } else { 128 };
        let base = match a {
            IpAddr::V4(v) => u32::from(v) as u128,
            IpAddr::V6(v) => u128::from(v),
        };
        let host = bits - len as u32;
        let start = if host >= 128 {
            0
        } else {
            base & !((1u128 << host) - 1)
        };
        let span = if host >= 128 {
            u128::MAX
        } else {
            (1u128 << host) - 1
        };
        for probe in [start, start + span, start + span / 2, start + span / 3] {
            let p = if a.is_ipv4() {
                IpAddr::V4(Ipv4Addr::from(probe as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from(probe))
            };
            let (k2, r2, _) = decided(&snap, p);
            assert_eq!(
                (k2, &r2),
                (kind, &region),
                "{p} is inside the /{len} scope of {a}"
            );
            assert_eq!(
                by_hand(&snap, p),
                (want_kind, want_region),
                "{p} by hand, inside the /{len} of {a}"
            );
        }
        // Maximal: the block one bit wider contains another decision.
        if len > 0 {
            let wider = if host + 1 >= 128 {
                0
            } else {
                base & !((1u128 << (host + 1)) - 1)
            };
            let other_half = if start == wider {
                start + span + 1
            } else {
                wider
            };
            let p = if a.is_ipv4() {
                IpAddr::V4(Ipv4Addr::from(other_half as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from(other_half))
            };
            let svc = &snap.services[0];
            let (d1, _) = svc.route(a).unwrap();
            let (d2, len2) = svc.route(p).unwrap();
            // The other half is one block of the same decision only if the wider block was
            // uniform, i.e. if the scope could have been a bit wider.
            assert!(
                !(d1 == d2 && len2 <= len),
                "the /{} around {a} would have been a valid scope",
                len - 1
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 3000);
}
