//! The answer path: one query in, one response out, synchronously, from one snapshot.
//!
//! Staged: decode (cheapest rejection first) → CHAOS identity → zone → name → records or the
//! service's `route` + `pick` → encode, then truncate for UDP. [`respond`] is the one function
//! the transports call; it does not allocate, lock or block, except when it builds the text
//! of a `_why` explanation, which is a debugging aid and not on the path of real answers.

use std::net::IpAddr;

pub use crate::snapshot::ServiceAnswer;
use crate::snapshot::{Snapshot, client_key};
use crate::wire::{self, AA, CD, MAX_NAME, Query, RD, Section, Writer, rcode, rtype};
use crate::zone::{MAX_CNAME_LINKS, RecordSet, Signed, Zone, ZoneNode};

use super::client::echoed_scope;

pub use super::outcome::{Outcome, Transport};
pub use super::prepared::{Prepared, Route, Target, prepare, prepare_into};
use crate::wire::QNAME_PTR;

/// Answers `packet` from `src` into `out` (which should hold 65535 bytes).
pub fn respond(
    snap: &Snapshot,
    packet: &[u8],
    src: IpAddr,
    transport: Transport,
    out: &mut [u8],
) -> Outcome {
    let mut scratch = [0; MAX_NAME];
    complete(
        snap,
        &prepare(snap, packet, src, &mut scratch),
        transport,
        out,
    )
}

/// Writes the response to a prepared query into `out` (the second half of [`respond`]).
pub fn complete(
    snap: &Snapshot,
    prepared: &Prepared<'_, '_>,
    transport: Transport,
    out: &mut [u8],
) -> Outcome {
    let mut outcome = Outcome::Dropped;
    complete_into(&mut outcome, snap, prepared, transport, out);
    outcome
}

/// [`complete`] into `outcome`, where the caller keeps it: what a service decided is written
/// there once, not built aside and moved.
#[inline]
pub fn complete_into(
    outcome: &mut Outcome,
    snap: &Snapshot,
    prepared: &Prepared<'_, '_>,
    transport: Transport,
    out: &mut [u8],
) {
    let (q, src, target) = match prepared {
        Prepared::Drop => {
            *outcome = Outcome::Dropped;
            return;
        }
        Prepared::Error { echo, packet, code } => {
            *outcome = super::rejected::error(snap, *echo, packet, *code, out);
            return;
        }
        Prepared::Query { q, src, target } => (q, *src, target),
    };
    *outcome = Outcome::Answered {
        len: 0,
        rcode: 0,
        truncated: false,
        qtype: q.qtype,
        ecs: q.edns.is_some_and(|e| e.ecs.is_some()),
        service: None,
        cookie: 0,
    };
    let Outcome::Answered { service, .. } = outcome else {
        return;
    };
    let mut w = Writer::new(out, q.id, q.flags & (RD | CD | 0x7800), q.question);
    let question_end = w.len();
    let code = match *target {
        Target::Chaos => super::chaos::chaos(snap, q, &mut w),
        Target::Refused => rcode::REFUSED,
        Target::Name { zone, node, route } => {
            w.set_flags(AA);
            let mut a = Answering {
                snap,
                zone,
                q,
                w: &mut w,
                service,
                signed: zone
                    .signed
                    .as_deref()
                    .filter(|_| q.edns.is_some_and(|e| e.dnssec_ok)),
            };
            lookup(&mut a, node, route, src)
        }
    };
    w.set_rcode(code);
    // Options that ask for something back, and errors an Extended DNS Error explains, take
    // the long way; the common query does not.
    const EXPLAINED: u32 = 1 << rcode::REFUSED | 1 << rcode::SERVFAIL;
    if let Some(e) = q.edns
        && (e.asks != 0 || (1u32 << (code & 31)) & EXPLAINED != 0)
    {
        *outcome = long_way(snap, prepared, question_end, code, service, transport, w);
        return;
    }
    finish(snap, q, w, question_end, code, outcome, transport);
}

/// The end of an answer that [`super::edns`] completes.
#[cold]
#[inline(never)]
fn long_way(
    snap: &Snapshot,
    prepared: &Prepared<'_, '_>,
    question_end: usize,
    code: u16,
    service: &Option<ServiceAnswer>,
    transport: Transport,
    w: Writer<'_>,
) -> Outcome {
    let Prepared::Query { q, src, target } = prepared else {
        return Outcome::Dropped;
    };
    let done = super::edns::Done {
        q,
        src: *src,
        asked: match target {
            Target::Chaos => super::edns::Asked::Chaos,
            Target::Refused => super::edns::Asked::Refused,
            Target::Name { .. } => super::edns::Asked::Name,
        },
        question_end,
        code,
        service,
        transport,
    };
    super::edns::finish(snap, &done, w)
}

/// Adds OPT, applies the size limit, and completes the message; fills in `outcome` (an
/// [`Outcome::Answered`] whose service part is already written).
#[inline(always)]
fn finish(
    snap: &Snapshot,
    q: &Query<'_>,
    mut w: Writer<'_>,
    question_end: usize,
    code: u16,
    outcome: &mut Outcome,
    transport: Transport,
) {
    let Outcome::Answered {
        len,
        rcode,
        truncated,
        service,
        cookie,
        ..
    } = outcome
    else {
        return;
    };
    let scope = service.as_ref().map_or(0, |s| s.scope);
    let limit = match (transport, q.edns) {
        (Transport::Tcp, _) => 65535,
        (Transport::Udp, Some(e)) => {
            e.udp_size.min(snap.settings.udp_nocookie_max).max(512) as usize
        }
        (Transport::Udp, None) => 512,
    };
    let opt_len = q.edns.map_or(0, |e| wire::opt_len(e.ecs));
    if w.overflow || w.len() + opt_len > limit {
        // RFC 2181 §9: drop the sections, set TC; the client retries over TCP.
        *cookie =
            super::edns::nocookie_truncation(snap, q, transport, w.len() + opt_len, w.overflow);
        w.truncate_to_question(question_end);
        w.set_flags(wire::TC);
        *truncated = true;
    }
    if let Some(e) = q.edns {
        w.opt(
            snap.settings.udp_payload_max,
            code,
            e.dnssec_ok,
            e.ecs.map(|s| (s, scope)),
        );
    }
    *len = w.finish();
    *rcode = code;
}

/// A compression pointer to where `suffix` (a suffix of the question name) starts.
fn pointer_to_suffix(q: &Query<'_>, suffix_len: usize) -> [u8; 2] {
    let off = 12 + q.name.len() - suffix_len;
    [0xc0 | (off >> 8) as u8, off as u8]
}

/// Writes the zone's SOA into the authority section (negative answers).
fn soa_authority(zone: &Zone, q: &Query<'_>, w: &mut Writer<'_>) {
    let owner = pointer_to_suffix(q, zone.apex.len());
    w.record(
        Section::Authority,
        &owner,
        &zone.soa,
        Some(zone.negative_ttl),
    );
}

/// The authority section of a negative answer about `name` (lowercase wire form): the SOA,
/// and, signed, its signatures and the NSEC proof (`node` is the name's node when it exists:
/// NODATA; otherwise NXDOMAIN).
#[inline(never)]
fn negative(
    a: &mut Answering<'_, '_, '_>,
    name: &[u8],
    node: Option<&ZoneNode>,
    empty_family: Option<bool>,
) {
    let (zone, q) = (a.zone, a.q);
    soa_authority(zone, q, a.w);
    if let Some(signed) = a.signed {
        let owner = pointer_to_suffix(q, zone.apex.len());
        let ttl = Some(zone.negative_ttl);
        super::signed::sigs(a.w, Section::Authority, &owner, &signed.soa_sigs, ttl);
        match node {
            Some(node) => super::signed::no_data(a.w, signed, node, empty_family),
            None => super::signed::no_name(a.w, zone, signed, name),
        }
    }
}

/// Writes a static set at `owner` into the answer section, with its signatures when signed.
#[inline(never)]
fn write_set(a: &mut Answering<'_, '_, '_>, owner: &[u8], set: &RecordSet) {
    for r in &set.records {
        a.w.record(Section::Answer, owner, r, None);
    }
    if a.signed.is_some() {
        super::signed::sigs(a.w, Section::Answer, owner, &set.sigs, None);
    }
}

/// One answer being written for a name inside a zone: what every step of it reads and writes.
struct Answering<'a, 'q, 'w> {
    snap: &'a Snapshot,
    /// The zone holding the question's name.
    zone: &'a Zone,
    q: &'a Query<'q>,
    w: &'a mut Writer<'w>,
    /// What a service answered, for the counters and the query log.
    service: &'a mut Option<ServiceAnswer>,
    /// The zone's signatures, when it is signed and the query has the DO bit.
    signed: Option<&'a Signed>,
}

/// Answers a name inside the zone.
#[inline(always)]
fn lookup(
    a: &mut Answering<'_, '_, '_>,
    node: Option<&ZoneNode>,
    route: Option<Route>,
    src: IpAddr,
) -> u16 {
    let (snap, zone, q) = (a.snap, a.zone, a.q);
    let Some(node) = node else {
        negative(a, q.name(), None, None);
        return rcode::NXDOMAIN;
    };
    if let Some(s) = node.why
        && (q.qtype == rtype::TXT || q.qtype == rtype::ANY)
    {
        return super::why::why_answer(snap, s, q, src, a.w);
    }
    // Before the route: for an alias, `route` is the one of the service at the chain's end.
    if let Some(target) = &node.cname_target
        && q.qtype != rtype::CNAME
    {
        return cname_chain(a, node, target, route);
    }
    if let Some(route) = route {
        return service_answer(a, route, &QNAME_PTR, node);
    }
    if q.qtype == rtype::ANY {
        // RFC 8482 §4.1: answer with one RRset of the name, or HINFO when it has none here
        // (a signed zone has the HINFO as a set of its own).
        match node.sets.first() {
            Some(set) => write_set(a, &QNAME_PTR, set),
            None if node.service.is_some() => {
                let hinfo = crate::zone::RFC8482_HINFO;
                a.w.record(Section::Answer, &QNAME_PTR, hinfo, None);
            }
            None => negative(a, q.name(), Some(node), None),
        }
        return rcode::NOERROR;
    }
    if q.qtype == rtype::NSEC
        && let Some(signed) = &zone.signed
    {
        // The name's own NSEC is a set of it like any other (RFC 4035 §3.1).
        super::signed::own_nsec(a.w, signed, node, a.signed.is_some());
        return rcode::NOERROR;
    }
    match node.set(q.qtype) {
        Some(set) => {
            write_set(a, &QNAME_PTR, set);
            if q.qtype == rtype::NS && q.name() == &*zone.apex {
                for g in &zone.glue {
                    a.w.record(Section::Additional, &g.owner, &g.body, None);
                }
            }
        }
        None => negative(a, q.name(), Some(node), None),
    }
    rcode::NOERROR
}

/// Follows a CNAME chain inside the zone (at most [`MAX_CNAME_LINKS`] links, never the same
/// name twice) and answers at its end: from the static records there, or, for a service name
/// and an address query, as the service answers this client (`route`, found by `prepare` for
/// the chain's end), with its scope and TTL.
fn cname_chain(
    a: &mut Answering<'_, '_, '_>,
    first: &ZoneNode,
    target: &[u8],
    route: Option<Route>,
) -> u16 {
    let (snap, zone, q) = (a.snap, a.zone, a.q);
    if let Some(set) = first.set(rtype::CNAME) {
        write_set(a, &QNAME_PTR, set);
    }
    // The names already answered, so that a loop (refused when the zone is loaded) could
    // still never repeat a record.
    let mut seen: [&ZoneNode; MAX_CNAME_LINKS + 1] = [first; MAX_CNAME_LINKS + 1];
    let mut target: &[u8] = target;
    for link in 1..=MAX_CNAME_LINKS {
        if !crate::zone::is_within(target, &zone.apex) {
            return rcode::NOERROR;
        }
        let Some(node) = zone.node(target) else {
            // A name inside a zone of its own below this one (served here too) is that
            // zone's to answer: the resolver follows the CNAME there.
            if snap
                .zone_for(target)
                .is_some_and(|z| !std::ptr::eq(z, zone))
            {
                return rcode::NOERROR;
            }
            negative(a, target, None, None);
            return rcode::NXDOMAIN;
        };
        if seen[..link].iter().any(|n| std::ptr::eq(*n, node)) {
            return rcode::NOERROR;
        }
        seen[link] = node;
        if let Some(set) = node.set(rtype::CNAME) {
            write_set(a, target, set);
            match &node.cname_target {
                Some(t) => target = t,
                None => return rcode::NOERROR,
            }
            continue;
        }
        if let Some(route) = route
            && node.service == Some(route.service)
        {
            return service_answer(a, route, target, node);
        }
        match node.set(q.qtype) {
            Some(set) => write_set(a, target, set),
            None => negative(a, target, Some(node), None),
        }
        return rcode::NOERROR;
    }
    rcode::NOERROR
}

/// A/AAAA for a service name; the records are owned by `owner` (the question name, or the
/// name a CNAME chain led to), whose node is `at`.
#[inline(always)]
fn service_answer(a: &mut Answering<'_, '_, '_>, route: Route, owner: &[u8], at: &ZoneNode) -> u16 {
    let (snap, q, signed) = (a.snap, a.q, a.signed);
    let answer = &mut *a.service;
    let svc = &snap.services[route.service];
    let (client, ecs_used) = (route.client, route.ecs_used);
    let sa = answer.insert(ServiceAnswer::new(route.service, ecs_used));
    let Some((decision, block)) = svc.route(client) else {
        return rcode::SERVFAIL;
    };
    let v6 = q.qtype == rtype::AAAA;
    let mut chosen = None;
    let pick = svc.pick_in(
        decision,
        v6,
        client_key(client),
        &snap.nodes,
        &snap.health,
        &mut chosen,
    );
    let mut count = pick.count;
    let mut sigs: &[Box<[u8]>] = &[];
    if signed.is_some() {
        (count, sigs) = super::signed::narrow(at, v6, pick.nodes());
    }
    if ecs_used {
        sa.scope = echoed_scope(svc.scope(block, client), client, q);
    }
    sa.rule = Some(decision.rule);
    sa.region = pick.region;
    sa.nodes = pick.nodes;
    sa.count = count;
    sa.fallback = pick.all_down
        || pick
            .region
            .is_some_and(|r| decision.chain.first() != Some(&r));
    sa.degraded = pick.degraded && count > 0;
    sa.all_down = pick.all_down;
    if pick.servfail {
        return rcode::SERVFAIL;
    }
    let ttl = svc.ttl(pick);
    sa.ttl = ttl;
    let w = &mut *a.w;
    for &n in &pick.nodes[..count] {
        for r in snap.nodes[n].records(v6) {
            w.record(Section::Answer, owner, r, Some(ttl));
        }
    }
    super::signed::sigs(w, Section::Answer, owner, sigs, Some(ttl));
    if count == 0 {
        negative(a, owner, Some(at), Some(v6));
    }
    rcode::NOERROR
}
