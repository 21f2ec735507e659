//! Handing established sessions to a process that takes over (`ctl replace`), and resuming
//! them there without a new OPEN.
//!
//! The old process stops each established session at a message boundary (the session loop
//! only pauses between whole messages it has read and sent; bytes of a message not read
//! whole yet stay in the read buffer and go along as [`CarriedSession::unread`]), and hands
//! the connected socket with what the session needs to go on: the negotiated hold time,
//! families and peer identifier, whether the anycast prefixes are announced on it, and the
//! peer's routes as they stand. The new process waits for the sessions it was told about
//! instead of connecting or accepting, takes the peer's table over as it was (fresh routes
//! fresh), sends a KEEPALIVE at once and goes on reading UPDATEs. A session that does not
//! arrive (it ended in between, the old process went away) is connected again as at any
//! start.

use std::sync::Arc;
use std::time::Instant;

use super::open::Negotiated;
pub use super::shared::Handed;
use super::shared::{PeerShared, lock};
use super::table::PeerTable;
pub use crate::live::CarriedSession;
use crate::live::{FeedTable, Route};

/// The state of the session on `shared` to hand over.
pub(crate) fn carry(
    shared: &PeerShared,
    negotiated: &Negotiated,
    keepalive: std::time::Duration,
    announced: bool,
    unread: Vec<u8>,
) -> CarriedSession {
    let (v4, v6) = {
        let mut t = lock(&shared.table);
        (t.v4.export(), t.v6.export())
    };
    let up_ms = lock(&shared.status)
        .up_since
        .map_or(0, |t| t.elapsed().as_millis() as u64);
    let flat = |r: &Route| (r.origin, r.path_len, r.stale);
    CarriedSession {
        peer: shared.peer.name.clone(),
        address: super::settings::canonical(shared.peer.address),
        peer_asn: shared.peer.asn,
        local_asn: shared.local_asn,
        hold_time: negotiated.hold_time,
        keepalive_ms: keepalive.as_millis() as u64,
        four_octet: true,
        ipv4: negotiated.ipv4,
        ipv6: negotiated.ipv6,
        peer_id: negotiated.peer_id,
        announced,
        up_ms,
        unread,
        v4: v4
            .iter()
            .map(|&(s, l, r)| {
                let (o, p, st) = flat(&r);
                (s, l, o, p, st)
            })
            .collect(),
        v6: v6
            .iter()
            .map(|&(s, l, r)| {
                let (o, p, st) = flat(&r);
                (s, l, o, p, st)
            })
            .collect(),
    }
}

/// What was negotiated, as carried.
pub(crate) fn negotiated(c: &CarriedSession) -> Negotiated {
    Negotiated {
        hold_time: c.hold_time,
        ipv4: c.ipv4,
        ipv6: c.ipv6,
        peer_id: c.peer_id,
    }
}

/// Whether a carried session belongs to `shared`'s peer as this process configures it (same
/// address, ASes and families the session can carry); another one is closed, and the peer
/// connected again.
pub(crate) fn fits(c: &CarriedSession, shared: &PeerShared) -> bool {
    let p = &shared.peer;
    c.peer == p.name
        && c.address == super::settings::canonical(p.address)
        && c.peer_asn == p.asn
        && c.local_asn == shared.local_asn
        && c.four_octet
        && (!c.ipv4 || p.ipv4)
        && (!c.ipv6 || p.ipv6)
}

/// The peer's table as the old process held it: fresh routes fresh, stale ones stale until
/// `until`; at most `limit` routes per family.
pub(crate) fn table(c: &CarriedSession, limit: usize, until: Instant) -> PeerTable {
    let pick = |stale: bool| FeedTable {
        peer: c.peer.clone(),
        v4: routes(&c.v4, stale),
        v6: routes(&c.v6, stale),
    };
    // The stale routes first, made stale; then the fresh ones on top.
    let mut t = PeerTable::seeded(&pick(true), limit, until);
    let fresh = pick(false);
    for &(s, l, r) in fresh.v4.iter() {
        let _ = t.v4.announce((s, l), r, limit);
    }
    for &(s, l, r) in fresh.v6.iter() {
        let _ = t.v6.announce((s, l), r, limit);
    }
    t
}

/// The carried routes of one family that are stale (or fresh), as routes of a table.
fn routes<K: Copy>(list: &[(K, u8, u32, u32, bool)], stale: bool) -> Arc<[(K, u8, Route)]> {
    list.iter()
        .filter(|r| r.4 == stale)
        .map(|&(s, l, origin, path_len, _)| {
            let route = Route {
                origin,
                path_len,
                stale: false,
            };
            (s, l, route)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_carried_table_keeps_fresh_and_stale_routes_apart() {
        let c = CarriedSession {
            peer: "rtr".into(),
            address: "127.0.0.1".parse().unwrap(),
            peer_asn: 65001,
            local_asn: 65000,
            hold_time: 9,
            keepalive_ms: 3000,
            four_octet: true,
            ipv4: true,
            ipv6: false,
            peer_id: "127.0.0.1".parse().unwrap(),
            announced: true,
            up_ms: 5,
            unread: vec![0xff; 3],
            v4: vec![
                (10 << 24, 8, 64500, 2, false),
                (11 << 24, 8, 64501, 1, true),
            ],
            v6: vec![(1 << 120, 8, 64502, 3, false)],
        };
        let bytes = postcard::to_stdvec(&c).unwrap();
        let back: CarriedSession = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, c);
        let mut t = table(
            &back,
            100,
            Instant::now() + std::time::Duration::from_secs(60),
        );
        assert_eq!((t.v4.fresh(), t.v4.stale(), t.v6.fresh()), (1, 1, 1));
        let v4 = t.v4.export();
        assert_eq!(v4.len(), 2);
        assert!(!v4[0].2.stale && v4[1].2.stale);
        assert!(t.next_expiry().is_some());
    }
}
