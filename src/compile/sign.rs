//! Signing the zones of a build (DNSSEC), on the reload thread, so that the answer path only
//! copies signatures: every record set it can send is signed here.
//!
//! - the DNSKEY set at the apex (every published key), and with `cds: true` the CDS and
//!   CDNSKEY sets (the keys that sign it), signed by the key-signing keys;
//! - every static set (SOA, NS, the configured records) and, at a service name, the RFC 8482
//!   HINFO that answers ANY there;
//! - each address set a service name can answer: each node's own set (A and AAAA), each
//!   decision's usual pick of several nodes (`answers: N`), and every combination of up to N
//!   members of a region while there are at most [`COMBINATIONS`] of them; an answer of
//!   several nodes that was not signed here is sent as its first node only, whose set is;
//! - the NSEC chain over every name of the zone (empty non-terminals and `_why` names
//!   included), for negative answers.
//!
//! Signatures are made with the original TTL of the set (for a service, the longer of its
//! `ttl` and `degraded_ttl`, so that an answer with either stays under it). With a
//! [`SignatureCache`], a set signed by an earlier build that has not changed keeps its
//! signature while it is fresh (`sign_cache.rs`).

use std::cell::Cell;
use std::collections::BTreeSet;
use std::sync::Arc;

use super::sign_cache::{SetKey, SignatureCache};
use crate::dnssec::{Ds, Signer, Validity, ZoneKeys, nsec};
use crate::snapshot::{Node, Service};
use crate::source::Errors;
use crate::wire::rtype;
use crate::zone::{self, AnswerSigs, Denial, RecordSet, Signed, Zone, ZoneNode};

/// Signs every zone that has keys, as of `now` (seconds since the epoch), reusing the fresh
/// signatures of `cache` when there is one; a zone that cannot be signed is an error of the
/// build (the serving snapshot stays).
pub(super) fn sign_zones(
    zones: &mut [Zone],
    services: &[Service],
    nodes: &[Node],
    now: u64,
    cache: Option<&SignatureCache>,
    errors: &mut Errors,
) {
    if let Some(c) = cache {
        c.begin();
    }
    let before = errors.0.len();
    for z in zones.iter_mut() {
        let Some(keys) = z.dnssec.clone() else {
            continue;
        };
        if let Err(e) = sign_zone(z, &keys, services, nodes, now, cache) {
            errors.file(&z.apex_text, format!("zone {}: {e}", z.apex_text));
        }
    }
    if let Some(c) = cache
        && errors.0.len() == before
    {
        c.finish();
    }
}

/// What one zone's signing needs at hand.
struct Signing<'a> {
    keys: &'a ZoneKeys,
    /// When (seconds since the epoch), and the validity of a signature made now.
    now: u64,
    validity: Validity,
    cache: Option<&'a SignatureCache>,
    /// Each key's identity in the cache ([`SetKey::signer`]), made once per zone.
    identities: Vec<(&'a Signer, Arc<[u8]>)>,
    /// When the oldest signature of the zone was made (`now` unless one was reused).
    oldest: Cell<u64>,
}

impl<'a> Signing<'a> {
    fn new(keys: &'a ZoneKeys, now: u64, cache: Option<&'a SignatureCache>) -> Signing<'a> {
        let identities = match cache {
            Some(_) => keys
                .keys
                .iter()
                .map(|k| (&k.signer, SetKey::signer(&k.signer)))
                .collect(),
            None => Vec::new(),
        };
        Signing {
            keys,
            now,
            validity: keys.timing.window(now),
            cache,
            identities,
            oldest: Cell::new(now),
        }
    }
}

impl Signing<'_> {
    /// The RRSIG bodies of the set of `rt` at `owner` with `ttl` and the records `rdatas`.
    fn sigs(
        &self,
        owner: &[u8],
        rt: u16,
        ttl: u32,
        rdatas: &[&[u8]],
    ) -> Result<Vec<Box<[u8]>>, String> {
        // RFC 7344 §4.1: CDS and CDNSKEY are signed like the DNSKEY set.
        let key_set = matches!(rt, rtype::DNSKEY | rtype::CDS | rtype::CDNSKEY);
        let canonical = self.cache.map(|_| SetKey::rdatas(rdatas));
        let timing = self.keys.timing;
        self.keys
            .signers(key_set)
            .map(|s| {
                let sign = || {
                    let rrsig = s
                        .sign(owner, rt, ttl, rdatas, self.validity)
                        .map_err(|e| e.to_string())?;
                    Ok(zone::body(rtype::RRSIG, ttl, &rrsig))
                };
                let identity = self.identities.iter().find(|(k, _)| std::ptr::eq(*k, s));
                let (Some(cache), Some(rdatas), Some((_, signer))) =
                    (self.cache, &canonical, identity)
                else {
                    return sign();
                };
                let key = SetKey {
                    signer: signer.clone(),
                    owner: owner.into(),
                    rtype: rt,
                    ttl,
                    rdatas: rdatas.clone(),
                    timing: [timing.validity, timing.refresh, timing.backdate],
                };
                let fresh_for = u64::from(timing.validity - timing.refresh);
                let (body, at) = cache.get_or_sign(key, self.now, fresh_for, sign)?;
                self.oldest.set(self.oldest.get().min(at));
                Ok(body)
            })
            .collect()
    }

    /// Signs a set of record bodies (type, class, TTL, RDLENGTH, RDATA): with the longest of
    /// their TTLs, or `ttl` when given.
    fn sign_bodies(
        &self,
        owner: &[u8],
        rt: u16,
        bodies: &[&[u8]],
        ttl: Option<u32>,
    ) -> Result<Vec<Box<[u8]>>, String> {
        let ttl = ttl.unwrap_or_else(|| bodies.iter().map(|b| body_ttl(b)).max().unwrap_or(0));
        let rdatas: Vec<&[u8]> = bodies.iter().map(|b| &b[10..]).collect();
        self.sigs(owner, rt, ttl, &rdatas)
    }
}

/// The TTL written in a record body.
fn body_ttl(body: &[u8]) -> u32 {
    u32::from_be_bytes([body[4], body[5], body[6], body[7]])
}

fn sign_zone(
    z: &mut Zone,
    keys: &ZoneKeys,
    services: &[Service],
    nodes: &[Node],
    now: u64,
    cache: Option<&SignatureCache>,
) -> Result<(), String> {
    let s = Signing::new(keys, now, cache);
    add_published_sets(z, keys);
    for (owner, node) in z.nodes.iter_mut() {
        for set in &mut node.sets {
            let bodies: Vec<&[u8]> = set.records.iter().map(|r| &r[..]).collect();
            set.sigs = s.sign_bodies(owner, set.rtype, &bodies, None)?;
        }
        if let Some(svc) = node.service.and_then(|i| services.get(i)) {
            node.answers = Some(Box::new(answer_sigs(&s, owner, svc, nodes)?));
        }
    }
    let soa_sigs = z
        .nodes
        .get(&z.apex)
        .and_then(|n| n.set(rtype::SOA))
        .map(|set| set.sigs.clone())
        .unwrap_or_default();
    let chain = denial_chain(&s, z, services, nodes)?;
    let timing = keys.timing;
    // Due when the oldest signature is (every signature is made at once without a cache).
    let oldest = s.oldest.get();
    z.signed = Some(Box::new(Signed {
        soa_sigs,
        chain,
        refresh_at: oldest + u64::from(timing.validity - timing.refresh),
        expires_at: oldest + u64::from(timing.validity),
    }));
    Ok(())
}

/// Adds the DNSKEY set at the apex and the RFC 8482 HINFO at each service name.
fn add_published_sets(z: &mut Zone, keys: &ZoneKeys) {
    let ttl = z.ttl;
    let dnskeys = keys
        .keys
        .iter()
        .map(|k| zone::body(rtype::DNSKEY, ttl, &k.signer.dnskey_rdata()))
        .collect();
    let mut published = vec![(rtype::DNSKEY, dnskeys)];
    if keys.cds {
        // RFC 7344 §4.1: the keys that sign the DNSKEY set, which the parent's DS names.
        let ksks: Vec<&Signer> = keys.signers(true).collect();
        let cds = ksks
            .iter()
            .map(|k| zone::body(rtype::CDS, ttl, &Ds::sha256(k.public()).rdata()))
            .collect();
        let cdnskey = ksks
            .iter()
            .map(|k| zone::body(rtype::CDNSKEY, ttl, &k.dnskey_rdata()))
            .collect();
        published.push((rtype::CDS, cds));
        published.push((rtype::CDNSKEY, cdnskey));
    }
    let apex = z.nodes.or_default(&z.apex);
    for (rt, records) in published {
        apex.sets.retain(|set| set.rtype != rt);
        apex.sets.push(RecordSet {
            rtype: rt,
            records,
            sigs: Vec::new(),
        });
    }
    for node in z.nodes.values_mut() {
        if node.service.is_some() && node.set(rtype::HINFO).is_none() {
            node.sets.push(RecordSet {
                rtype: rtype::HINFO,
                records: vec![zone::RFC8482_HINFO.into()],
                sigs: Vec::new(),
            });
        }
    }
}

/// Every node a service can answer with.
fn service_nodes(svc: &Service) -> BTreeSet<usize> {
    svc.regions
        .iter()
        .flat_map(|r| r.members.iter().map(|&(n, _)| n))
        .chain(svc.last_resort.iter().map(|&(n, _)| n))
        .collect()
}

/// The most sets of several nodes signed per service name beyond the usual picks: every
/// combination of up to `answers` members of each region while they fit (what degraded and
/// spread answers send), else none.
const COMBINATIONS: usize = 4096;

/// Every combination of 2 to `most` of `members` (ascending node indices), or `None` when there
/// are more than `budget`.
fn combinations(members: &[usize], most: usize, budget: usize) -> Option<Vec<Vec<usize>>> {
    fn walk(
        from: &[usize],
        most: usize,
        cur: &mut Vec<usize>,
        out: &mut Vec<Vec<usize>>,
        budget: usize,
    ) -> bool {
        for (i, &n) in from.iter().enumerate() {
            cur.push(n);
            if cur.len() >= 2 {
                if out.len() == budget {
                    return false;
                }
                out.push(cur.clone());
            }
            if cur.len() < most && !walk(&from[i + 1..], most, cur, out, budget) {
                return false;
            }
            cur.pop();
        }
        true
    }
    let mut out = Vec::new();
    walk(members, most, &mut Vec::new(), &mut out, budget).then_some(out)
}

/// The signatures of the address sets `svc` answers at `owner`: each node's own, each
/// decision's usual pick, and every combination of up to `answers` members of a region while
/// they number at most [`COMBINATIONS`].
fn answer_sigs(
    s: &Signing<'_>,
    owner: &[u8],
    svc: &Service,
    nodes: &[Node],
) -> Result<AnswerSigs, String> {
    let ttl = svc.ttl.max(svc.degraded_ttl);
    let mut combos: BTreeSet<Vec<usize>> = service_nodes(svc).iter().map(|&n| vec![n]).collect();
    if svc.answers > 1 {
        let mut budget = COMBINATIONS;
        for r in &svc.regions {
            let mut members: Vec<usize> = r.members.iter().map(|&(n, _)| n).collect();
            members.sort_unstable();
            members.dedup();
            if let Some(all) = combinations(&members, svc.answers, budget) {
                budget -= all.len();
                combos.extend(all);
            }
        }
    }
    for d in &svc.decisions {
        for p in &d.usual {
            if p.count > 1 {
                let mut c = p.nodes().to_vec();
                c.sort_unstable();
                combos.insert(c);
            }
        }
    }
    let mut out = AnswerSigs::default();
    let mut buf = [0u32; 9];
    for combo in &combos {
        for v6 in [false, true] {
            let bodies: Vec<&[u8]> = combo
                .iter()
                .filter_map(|&n| nodes.get(n))
                .flat_map(|n| n.records(v6).iter().map(|r| &r[..]))
                .collect();
            let Some(key) = zone::answer_key(v6, combo, &mut buf) else {
                continue;
            };
            if bodies.is_empty() {
                continue;
            }
            let sigs = s.sign_bodies(owner, family(v6), &bodies, Some(ttl))?;
            out.insert(key.into(), sigs.into_boxed_slice());
        }
    }
    Ok(out)
}

fn family(v6: bool) -> u16 {
    if v6 { rtype::AAAA } else { rtype::A }
}

/// The types present at `node` for its NSEC.
fn types_at(node: &ZoneNode, services: &[Service], nodes: &[Node]) -> Vec<u16> {
    let mut types: Vec<u16> = node.sets.iter().map(|set| set.rtype).collect();
    if let Some(svc) = node.service.and_then(|i| services.get(i)) {
        let members = service_nodes(svc);
        for v6 in [false, true] {
            if members
                .iter()
                .any(|&n| nodes.get(n).is_some_and(|n| !n.records(v6).is_empty()))
            {
                types.push(family(v6));
            }
        }
    }
    if node.why.is_some() {
        types.push(rtype::TXT);
    }
    types
}

/// The signed NSEC chain over every name of the zone; notes each name's place in it.
fn denial_chain(
    s: &Signing<'_>,
    z: &mut Zone,
    services: &[Service],
    nodes: &[Node],
) -> Result<Vec<Denial>, String> {
    let typed: Vec<(Box<[u8]>, Vec<u16>)> = z
        .nodes
        .iter()
        .map(|(owner, node)| (owner.into(), types_at(node, services, nodes)))
        .collect();
    let names: Vec<(&[u8], &[u16])> = typed.iter().map(|(o, t)| (&o[..], &t[..])).collect();
    let links = nsec::chain(&names).map_err(|e| e.to_string())?;
    let types: std::collections::HashMap<&[u8], &[u16]> =
        typed.iter().map(|(o, t)| (&o[..], &t[..])).collect();
    let mut chain = Vec::with_capacity(links.len());
    let ttl = z.negative_ttl;
    for (i, link) in links.iter().enumerate() {
        let sigs = s.sigs(&link.owner, rtype::NSEC, ttl, &[&link.rdata])?;
        let mut family_gone = None;
        if let Some(node) = z.nodes.get_mut(&link.owner) {
            node.denial = Some(i as u32);
            if node.service.is_some() {
                let here = types.get(&link.owner[..]).copied().unwrap_or_default();
                let variant = |gone: u16| -> Result<_, String> {
                    let kept: Vec<u16> = here.iter().copied().filter(|&t| t != gone).collect();
                    let rdata = nsec::rdata_for(&link.next, &kept).map_err(|e| e.to_string())?;
                    let sigs = s.sigs(&link.owner, rtype::NSEC, ttl, &[&rdata])?;
                    Ok((zone::body(rtype::NSEC, ttl, &rdata), sigs))
                };
                family_gone = Some(Box::new([variant(rtype::A)?, variant(rtype::AAAA)?]));
            }
        }
        chain.push(Denial {
            nsec: zone::body(rtype::NSEC, ttl, &link.rdata),
            owner: link.owner.clone(),
            sigs,
            family_gone,
        });
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::combinations;

    #[test]
    fn combinations_of_two_to_most_within_the_budget() {
        let all = combinations(&[1, 2, 3, 4], 3, 100).unwrap();
        // C(4,2) + C(4,3).
        assert_eq!(all.len(), 6 + 4);
        assert!(all.contains(&vec![1, 3]) && all.contains(&vec![2, 3, 4]));
        assert!(all.iter().all(|c| (2..=3).contains(&c.len())));
        assert_eq!(combinations(&[1, 2, 3, 4], 2, 5), None);
        assert_eq!(combinations(&[7], 2, 5), Some(vec![]));
    }
}
