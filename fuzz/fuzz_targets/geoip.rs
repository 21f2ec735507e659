//! GeoIP database loading (MaxMind DB through the `maxminddb` crate, walked and flattened by
//! `geo`): a database or an error, never a panic or a hang; what is kept answers lookups
//! everywhere, consistently with its own ranges.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

fuzz_target!(|data: &[u8]| {
    use signpost::geo::Layout;
    for format in [
        None,
        Some(Layout::GeoIp2),
        Some(Layout::Asn),
        Some(Layout::Flat),
    ] {
        let Ok(db) = signpost::geo::GeoDb::open("fuzz", data.to_vec(), format) else {
            continue;
        };
        let layer = &db.layer;
        assert!(!layer.spans.v4.is_empty() || !layer.spans.v6.is_empty());
        // Every kept IPv4 range answers at its ends, with its own value; ranges are ordered.
        let mut last_end: Option<u128> = None;
        for (s, e, v) in layer.spans.v4.iter().take(64) {
            assert!(s <= e && e <= u32::MAX as u128);
            assert!(last_end.is_none_or(|l| l < s));
            last_end = Some(e);
            for a in [s, e] {
                assert_eq!(layer.spans.v4.find(a), Some((s, e, v)));
                let _ = db.lookup(IpAddr::from((a as u32).to_be_bytes()));
            }
        }
        let mut last_end: Option<u128> = None;
        for (s, e, v) in layer.spans.v6.iter().take(64) {
            assert!(s <= e);
            assert!(last_end.is_none_or(|l| l < s));
            last_end = Some(e);
            for a in [s, e] {
                assert_eq!(layer.spans.v6.find(a), Some((s, e, v)));
                let _ = db.lookup(IpAddr::from(a.to_be_bytes()));
            }
        }
    }
});
