//! How UPDATEs are read, malformed ones included: these pin down what bgpkit-parser does with
//! bad attributes (it keeps going and reports warnings, or fails outright) and what Signpost
//! makes of it.

use super::super::notice::Notice;
use super::super::open::Negotiated;
use super::super::update::{Changes, decode};
use super::speaker::{end_of_rib_v4, end_of_rib_v6, path, raw_update, update};
use super::*;

const BOTH: Negotiated = Negotiated {
    hold_time: 90,
    ipv4: true,
    ipv6: true,
    peer_id: Ipv4Addr::new(10, 9, 9, 9),
};

const ORIGIN: [u8; 4] = [0x40, 1, 1, 0];
const AS_PATH_65001: [u8; 9] = [0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9];
const NEXT_HOP: [u8; 7] = [0x40, 3, 4, 192, 0, 2, 1];

fn attrs(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn ebgp(msg: &bytes::Bytes) -> Result<Changes, Notice> {
    decode(msg, &BOTH, 65001, false)
}

#[test]
fn well_formed_update_in_both_families() {
    let c = ebgp(&update(
        &["10.1.0.0/16", "2001:db8::/32"],
        &["10.9.0.0/16", "2001:db8:9::/48"],
        &path(&[65001, 65002, 65003], &[7, 8, 9]),
    ))
    .unwrap();
    assert_eq!(c.announce_v4, vec![v4("10.1.0.0/16")]);
    assert_eq!(c.announce_v6, vec![v6("2001:db8::/32")]);
    assert_eq!(c.withdraw_v4, vec![v4("10.9.0.0/16")]);
    assert_eq!(c.withdraw_v6, vec![v6("2001:db8:9::/48")]);
    let r = c.route.unwrap();
    assert_eq!((r.origin, r.path_len), (7, 4));
    assert!(c.treat_as_withdraw.is_none());
}

#[test]
fn families_not_negotiated_are_ignored() {
    let only4 = Negotiated {
        ipv6: false,
        ..BOTH
    };
    let msg = update(&["10.1.0.0/16", "2001:db8::/32"], &[], &path(&[65001], &[]));
    let c = decode(&msg, &only4, 65001, false).unwrap();
    assert_eq!((c.announce_v4.len(), c.announce_v6.len()), (1, 0));
}

#[test]
fn end_of_rib_per_family() {
    let c = ebgp(&end_of_rib_v4()).unwrap();
    assert!(c.end_of_rib_v4 && !c.end_of_rib_v6);
    let c = ebgp(&end_of_rib_v6()).unwrap();
    assert!(!c.end_of_rib_v4 && c.end_of_rib_v6);
    let c = ebgp(&update(&[], &["10.1.0.0/16"], &path(&[], &[]))).unwrap();
    assert!(!c.end_of_rib_v4 && !c.end_of_rib_v6);
}

#[test]
fn bad_origin_length_is_treat_as_withdraw() {
    // bgpkit-parser reports an attribute length error and keeps going.
    let a = attrs(&[&[0x40, 1, 2, 0, 0], &AS_PATH_65001, &NEXT_HOP]);
    let c = ebgp(&raw_update(&[], &a, &[16, 10, 1])).unwrap();
    assert!(c.treat_as_withdraw.is_some());
    assert!(c.announce_v4.is_empty());
    assert_eq!(c.withdraw_v4, vec![v4("10.1.0.0/16")]);
}

#[test]
fn truncated_as_path_is_treat_as_withdraw() {
    // AS_PATH claims 2 ASNs but carries one: bgpkit-parser keeps it raw and warns.
    let a = attrs(&[&ORIGIN, &[0x40, 2, 6, 2, 2, 0, 0, 0xfd, 0xe9], &NEXT_HOP]);
    let c = ebgp(&raw_update(&[], &a, &[16, 10, 1])).unwrap();
    assert!(c.treat_as_withdraw.is_some(), "{c:?}");
    assert_eq!(c.withdraw_v4, vec![v4("10.1.0.0/16")]);
}

#[test]
fn missing_as_path_is_treat_as_withdraw() {
    let a = attrs(&[&ORIGIN, &NEXT_HOP]);
    let c = ebgp(&raw_update(&[], &a, &[16, 10, 1])).unwrap();
    assert!(c.treat_as_withdraw.is_some());
}

#[test]
fn attribute_overrunning_its_section_is_treat_as_withdraw() {
    // NEXT_HOP claims 9 bytes where 4 remain: bgpkit-parser silently stops reading attributes;
    // the section's framing check catches it.
    let a = attrs(&[&ORIGIN, &AS_PATH_65001, &[0x40, 3, 9, 192, 0, 2, 1]]);
    let c = ebgp(&raw_update(&[], &a, &[16, 10, 1])).unwrap();
    assert!(c.treat_as_withdraw.is_some());
    assert_eq!(c.withdraw_v4, vec![v4("10.1.0.0/16")]);
}

#[test]
fn malformed_aggregator_is_discarded() {
    // AGGREGATOR of 3 bytes: attribute-discard (RFC 7606 §7.7), the route is used.
    let a = attrs(&[&ORIGIN, &AS_PATH_65001, &NEXT_HOP, &[0xc0, 7, 3, 1, 2, 3]]);
    let c = ebgp(&raw_update(&[], &a, &[16, 10, 1])).unwrap();
    assert!(c.treat_as_withdraw.is_none(), "{c:?}");
    assert_eq!(c.announce_v4, vec![v4("10.1.0.0/16")]);
}

#[test]
fn empty_as_path_is_withdraw_from_ebgp_and_local_from_ibgp() {
    let msg = update(&["10.1.0.0/16"], &[], &path(&[], &[]));
    assert!(ebgp(&msg).unwrap().treat_as_withdraw.is_some());
    let c = decode(&msg, &BOTH, LOCAL_ASN, true).unwrap();
    let r = c.route.unwrap();
    assert_eq!((r.origin, r.path_len), (LOCAL_ASN, 0));
}

#[test]
fn bad_nlri_resets() {
    let a = attrs(&[&ORIGIN, &AS_PATH_65001, &NEXT_HOP]);
    assert_eq!(
        ebgp(&raw_update(&[], &a, &[33, 10, 1, 0, 0, 0])).unwrap_err(),
        Notice::new(3, 10)
    );
    // Truncated withdrawn routes field: a /24 with one byte.
    assert_eq!(
        ebgp(&raw_update(&[24, 10], &[], &[])).unwrap_err(),
        Notice::new(3, 10)
    );
}

#[test]
fn garbage_mp_reach_resets() {
    // MP_REACH_NLRI for IPv6 with a next-hop length running past the attribute.
    let a = attrs(&[&ORIGIN, &AS_PATH_65001, &[0x80, 14, 5, 0, 2, 1, 200, 1]]);
    assert!(ebgp(&raw_update(&[], &a, &[])).is_err());
}

#[test]
fn length_fields_overrunning_the_message_reset() {
    // bgpkit-parser fails outright: UPDATE Message Error / Malformed Attribute List.
    let mut msg = raw_update(&[], &[], &[]).to_vec();
    msg[19..21].copy_from_slice(&100u16.to_be_bytes());
    assert_eq!(ebgp(&msg.into()).unwrap_err(), Notice::new(3, 1));
}

/// Mutated UPDATEs (bytes flipped, cut short, lengths changed) are decoded or refused with a
/// NOTIFICATION, never a panic, and every announced prefix is a valid prefix.
#[test]
fn mutated_updates_never_panic() {
    let base = update(
        &["10.1.0.0/16", "2001:db8::/32", "192.0.2.0/24"],
        &["10.9.0.0/16", "2001:db8:9::/48"],
        &path(&[65001, 65002, 65003], &[7, 8, 9]),
    );
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..20_000 {
        let mut m = base.to_vec();
        for _ in 0..1 + next() % 4 {
            let i = (next() as usize) % m.len();
            match next() % 4 {
                0 => m[i] = next() as u8,
                1 => m[i] ^= 1 << (next() % 8),
                2 => m.truncate(i.max(19)),
                _ => m.insert(i, next() as u8),
            }
        }
        // Keep the header's length field consistent, as framing would have.
        if m.len() >= 19 {
            let len = (m.len() as u16).to_be_bytes();
            m[16] = len[0];
            m[17] = len[1];
        }
        match ebgp(&bytes::Bytes::from(m)) {
            Ok(c) => {
                ok += 1;
                assert!(c.announce_v4.iter().all(|&(_, l)| l <= 32));
                assert!(c.announce_v6.iter().all(|&(_, l)| l <= 128));
            }
            Err(_) => refused += 1,
        }
    }
    assert!(ok > 0 && refused > 0, "{ok} decoded, {refused} refused");
}
