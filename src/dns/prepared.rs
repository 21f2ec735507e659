//! The first half of the answer path: a query decoded and placed in the snapshot
//! ([`Prepared`]): its zone and name, and for an address query of a service name the client
//! address the route lookup will use. A transport holding a batch prepares every query before
//! completing any ([`super::answer::complete`]), so that the batch's cache misses overlap.

use std::net::IpAddr;

use crate::snapshot::Snapshot;
use crate::wire::{self, CLASS_ANY, CLASS_CH, CLASS_IN, MAX_NAME, Query, Reject, rtype};
use crate::zone::{MAX_CNAME_LINKS, Zone, ZoneNode};

use super::client::client_address;

/// A query decoded and placed in the snapshot, not yet answered: the first half of
/// [`super::answer::respond`]. A transport that holds a batch of queries prepares them all, calls
/// [`Prepared::directory_entry`] and [`Prepared::warm_blocks`] on each, then completes them, so that the batch's cache misses on the
/// route tables overlap instead of coming one after the other.
#[derive(Debug)]
pub enum Prepared<'s, 'p> {
    /// Not answered at all.
    Drop,
    /// Answered with an error rcode, echoing what could be read.
    Error {
        /// The parts of the query that could be read.
        echo: Option<wire::Echo<'p>>,
        /// The packet (for the header when nothing else could be read).
        packet: &'p [u8],
        /// The rcode.
        code: u16,
    },
    /// A well-formed query.
    Query {
        /// The decoded query.
        q: Query<'p>,
        /// Where it was sent from.
        src: IpAddr,
        /// What it asks for.
        target: Target<'s>,
    },
}

/// What a well-formed query is about.
#[derive(Debug, Clone, Copy)]
pub enum Target<'s> {
    /// CHAOS identity.
    Chaos,
    /// Not ours, not a class we serve, or a zone transfer.
    Refused,
    /// A name (that may not exist) in one of our zones.
    Name {
        /// The zone.
        zone: &'s Zone,
        /// The name, when it exists.
        node: Option<&'s ZoneNode>,
        /// For A/AAAA of a service name: the service and the client it decides for.
        route: Option<Route>,
    },
}

/// The route-table lookup an A/AAAA query of a service name will make.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// Index of the service in the snapshot.
    pub service: usize,
    /// The address it decides by.
    pub client: IpAddr,
    /// Whether that address came from ECS (the answer then carries a scope).
    pub ecs_used: bool,
}

/// Decodes `packet` and finds what it asks for (the first half of [`super::answer::respond`]); `scratch`
/// receives the lowercase question name.
#[inline]
pub fn prepare<'s, 'p>(
    snap: &'s Snapshot,
    packet: &'p [u8],
    src: IpAddr,
    scratch: &'p mut [u8; MAX_NAME],
) -> Prepared<'s, 'p> {
    let mut slot = Prepared::Drop;
    prepare_into(&mut slot, snap, packet, src, scratch, &mut None);
    slot
}

/// The last query of a batch that was found in a zone, and where: the next query that asks
/// about the same name in the same class, byte for byte, is placed without decoding its name or
/// looking it up again (most of a busy batch asks for the same download name, A and AAAA, from
/// different clients). It lives for one batch, answered from one snapshot, so what it holds is
/// still true.
#[derive(Clone, Copy, Debug)]
pub struct Recent<'s, 'p> {
    /// The query.
    q: Query<'p>,
    /// Its zone and name.
    zone: &'s Zone,
    node: Option<&'s ZoneNode>,
    /// The service answering address queries at the name ([`chain_service`]).
    service: Option<usize>,
}

/// [`prepare`] into `slot`, where the caller keeps it: a batch decodes each query straight
/// into its place, without moving the decoded query, and keeps `recent` from one query to the
/// next (`None` before the first).
#[inline]
pub fn prepare_into<'s, 'p>(
    slot: &mut Prepared<'s, 'p>,
    snap: &'s Snapshot,
    packet: &'p [u8],
    src: IpAddr,
    scratch: &'p mut [u8; MAX_NAME],
    recent: &mut Option<Recent<'s, 'p>>,
) {
    *slot = Prepared::Query {
        q: Query::blank(),
        src,
        target: Target::Refused,
    };
    let Prepared::Query { q, target, .. } = slot else {
        return;
    };
    let decoded = match recent {
        Some(r) => q.parse_after(packet, scratch, &r.q),
        None => q.parse_into(packet, scratch).map(|()| false),
    };
    let same = match decoded {
        Ok(same) => same,
        Err(r) => {
            *slot = match r.reject {
                Reject::Drop => Prepared::Drop,
                Reject::Rcode(code) => Prepared::Error {
                    echo: r.echo(q),
                    packet,
                    code,
                },
            };
            return;
        }
    };
    // The same name and class as the last one found in a zone is in the same place (the
    // type may differ, and is checked here as `place` checks it).
    if same && is_transfer(q.qtype) {
        // Refused, as the slot already says.
        return;
    }
    if !same && let Some(elsewhere) = place(snap, q, recent) {
        *target = elsewhere;
        return;
    }
    let Some(Recent {
        zone,
        node,
        service,
        ..
    }) = *recent
    else {
        return;
    };
    let route = match service {
        Some(s) if q.qtype == rtype::A || q.qtype == rtype::AAAA => {
            Some(service_route(snap, s, q, src))
        }
        _ => None,
    };
    *target = Target::Name { zone, node, route };
}

/// Finds where `q` (not the batch's recent question) is: its zone, name and service, written
/// to `recent`; or, for a query that is not about a name in a zone, what it is about.
#[inline(never)]
fn place<'s, 'p>(
    snap: &'s Snapshot,
    q: &Query<'p>,
    recent: &mut Option<Recent<'s, 'p>>,
) -> Option<Target<'s>> {
    if q.qclass == CLASS_CH {
        return Some(Target::Chaos);
    }
    if (q.qclass != CLASS_IN && q.qclass != CLASS_ANY) || is_transfer(q.qtype) {
        return Some(Target::Refused);
    }
    let Some(zone) = snap.zone_for(q.name()) else {
        return Some(Target::Refused);
    };
    let node = zone.nodes.get_hashed(q.name(), q.name_hash);
    // The service that answers A/AAAA here: the name's own, or the one at the end of its
    // CNAME chain (the chain the answer will follow).
    let service = node.and_then(|n| chain_service(zone, n));
    *recent = Some(Recent {
        q: *q,
        zone,
        node,
        service,
    });
    None
}

/// Zone transfers, refused whatever the name (Signpost serves answers, not zones).
#[inline]
fn is_transfer(qtype: u16) -> bool {
    qtype == rtype::AXFR || qtype == rtype::IXFR
}

/// The route lookup service `s` makes for this query: the client address it decides by, from
/// the query's ECS option or its source address.
#[inline]
fn service_route(snap: &Snapshot, s: usize, q: &Query<'_>, src: IpAddr) -> Route {
    let svc = &snap.services[s];
    let (client, _, ecs_used) = client_address(svc.use_ecs, q.edns.and_then(|e| e.ecs), src);
    Route {
        service: s,
        client,
        ecs_used,
    }
}

/// The service answering address queries at `node`: its own, or, for an alias, the service of
/// the name its CNAME chain ends at inside `zone` (following the links `cname_chain`
/// follows, no more).
#[inline]
fn chain_service(zone: &Zone, node: &ZoneNode) -> Option<usize> {
    let mut node = node;
    for _ in 0..=MAX_CNAME_LINKS {
        let Some(target) = &node.cname_target else {
            return node.service;
        };
        if !crate::zone::is_within(target, &zone.apex) {
            return None;
        }
        node = zone.node(target)?;
    }
    None
}

impl<'s> Prepared<'s, '_> {
    /// The route lookup this query will make, if any.
    #[inline]
    pub fn route(&self) -> Option<Route> {
        match self {
            Prepared::Query {
                target: Target::Name { route, .. },
                ..
            } => *route,
            _ => None,
        }
    }

    /// The route-table directory word the answer will read first, if any. A batch reads
    /// these for all its queries in a tight loop, then calls [`warm_blocks`](Self::warm_blocks)
    /// on each, before completing them: the cache misses of the batch then overlap.
    #[inline]
    pub fn directory_entry(&self, snap: &'s Snapshot) -> Option<&'s u64> {
        let r = self.route()?;
        snap.services.get(r.service)?.directory_entry(r.client)
    }

    /// Reads the first route-table block the answer will search; returns a value derived
    /// from it (for `std::hint::black_box`).
    #[inline]
    pub fn warm_blocks(&self, snap: &Snapshot) -> u64 {
        self.route()
            .and_then(|r| Some(snap.services.get(r.service)?.warm_blocks(r.client)))
            .unwrap_or(0)
    }
}
