//! Zones from their specs: the SOA, NS and static records of each zone, encoded ahead of time,
//! with glue, CNAME rules and every problem reported at its `file:line:column`.

use std::collections::{BTreeMap, HashMap, HashSet};

use hickory_proto::rr::Name;
use serde_yaml::Value;

use super::spec::{NsSpec, RecordSpec, ZoneSpec};
use crate::source::{Document, Errors, quote};
use crate::wire::rtype;
use crate::zone::{self, Glue, RecordSet, Zone};

/// Decodes and builds every zone, collecting all problems.
pub(super) fn load_zones(doc: &Document, value: &Value, errors: &mut Errors) -> Vec<Zone> {
    let mut zones: Vec<Zone> = Vec::new();
    for (path, spec) in doc.decode_each::<ZoneSpec>("zones", value, errors) {
        if let Some(z) = build_zone(doc, &path, spec, errors) {
            if zones.iter().any(|o| o.apex == z.apex) {
                errors.0.push(doc.error(
                    &format!("{path}.apex"),
                    format!("zone {} is declared twice", z.apex_text),
                ));
                continue;
            }
            zones.push(z);
        }
    }
    zones
}

/// Record bodies by (owner, type), with the order of first appearance.
type RecordSets = BTreeMap<(Box<[u8]>, u16), (usize, Vec<Box<[u8]>>)>;

fn build_zone(doc: &Document, path: &str, spec: ZoneSpec, errors: &mut Errors) -> Option<Zone> {
    let before = errors.0.len();
    let root = Name::root();
    let apex = match zone::parse_name(&spec.apex, &root) {
        Ok(n) => n,
        Err(e) => {
            errors
                .0
                .push(doc.error(&format!("{path}.apex"), e.to_string()));
            return None;
        }
    };
    let apex_wire = zone::wire(&apex);
    let name_of = |field: &str, text: &str, errors: &mut Errors| match zone::parse_name(text, &apex)
    {
        Ok(n) => Some(n),
        Err(e) => {
            errors
                .0
                .push(doc.error(&format!("{path}.{field}"), e.to_string()));
            None
        }
    };
    let mname = name_of("soa.mname", &spec.soa.mname, errors);
    let rname = name_of("soa.rname", &spec.soa.rname, errors);
    let soa_ttl = spec.soa.ttl.unwrap_or(spec.ttl);
    let mut sets: RecordSets = BTreeMap::new();
    let mut order = 0usize;
    let mut add = |owner: Box<[u8]>, rt: u16, body: Box<[u8]>| {
        order += 1;
        sets.entry((owner, rt))
            .or_insert_with(|| (order, Vec::new()))
            .1
            .push(body);
    };
    let mut glue = Vec::new();
    if spec.ns.is_empty() {
        errors.0.push(doc.error(
            &format!("{path}.ns"),
            "a zone needs at least one name server",
        ));
    }
    for (i, ns) in spec.ns.iter().enumerate() {
        let (name, addrs) = match ns {
            NsSpec::Name(n) => (n, &[][..]),
            NsSpec::WithGlue { name, addresses } => (name, &addresses[..]),
        };
        let Some(n) = name_of(&format!("ns[{i}]"), name, errors) else {
            continue;
        };
        let w = zone::wire(&n);
        add(
            apex_wire.clone(),
            rtype::NS,
            zone::body(rtype::NS, spec.ttl, &w),
        );
        if !addrs.is_empty() && !zone::is_within(&w, &apex_wire) {
            errors.0.push(doc.error(
                &format!("{path}.ns[{i}].addresses"),
                "glue is only for name servers inside the zone",
            ));
        }
        for a in addrs {
            let (rt, rd) = match a {
                std::net::IpAddr::V4(v4) => (rtype::A, v4.octets().to_vec()),
                std::net::IpAddr::V6(v6) => (rtype::AAAA, v6.octets().to_vec()),
            };
            let b = zone::body(rt, spec.ttl, &rd);
            add(w.clone(), rt, b.clone());
            glue.push(Glue {
                owner: w.clone(),
                body: b,
            });
        }
    }
    // Where each owner's CNAME records are written, for the CNAME rules' messages, and the
    // owners in the order of their first CNAME.
    let mut cname_paths: BTreeMap<Box<[u8]>, Vec<String>> = BTreeMap::new();
    let mut cname_owners: Vec<Box<[u8]>> = Vec::new();
    for (rpath, r) in
        doc.decode_each::<RecordSpec>(&format!("{path}.records"), &spec.records, errors)
    {
        let Some(rt) = zone::type_from_str(&r.rtype) else {
            errors.0.push(doc.error(
                &format!("{rpath}.type"),
                format!(
                    "unsupported type {}; expected A, AAAA, CNAME, TXT, MX, CAA, SRV, NS or PTR",
                    quote(&r.rtype)
                ),
            ));
            continue;
        };
        let owner = match zone::parse_name(&r.name, &apex) {
            Ok(n) => zone::wire(&n),
            Err(e) => {
                errors
                    .0
                    .push(doc.error(&format!("{rpath}.name"), e.to_string()));
                continue;
            }
        };
        if !zone::is_within(&owner, &apex_wire) {
            errors.0.push(doc.error(
                &format!("{rpath}.name"),
                format!("{} is outside the zone {}", r.name, apex),
            ));
            continue;
        }
        let values: Vec<&String> = match (&r.value, &r.values) {
            (Some(v), None) => vec![v],
            (None, Some(vs)) if !vs.is_empty() => vs.iter().collect(),
            _ => {
                errors.0.push(doc.error(
                    &rpath,
                    "give exactly one of `value` or `values` (non-empty)",
                ));
                continue;
            }
        };
        let ttl = r.ttl.unwrap_or(spec.ttl);
        if rt == rtype::CNAME {
            let paths = cname_paths.entry(owner.clone()).or_default();
            if paths.is_empty() {
                cname_owners.push(owner.clone());
            }
            paths.push(rpath.clone());
        }
        for (vi, v) in values.iter().enumerate() {
            match zone::rdata(rt, v, &apex) {
                Ok(rd) => add(owner.clone(), rt, zone::body(rt, ttl, &rd)),
                Err(e) => {
                    let vp = if r.values.is_some() {
                        format!("{rpath}.values[{vi}]")
                    } else {
                        format!("{rpath}.value")
                    };
                    errors.0.push(doc.error(&vp, e.to_string()));
                }
            }
        }
    }
    let (Some(mname), Some(rname)) = (mname, rname) else {
        return None;
    };
    let s = &spec.soa;
    let soa = zone::body(
        rtype::SOA,
        soa_ttl,
        &zone::soa_rdata(
            &mname,
            &rname,
            [s.serial, s.refresh, s.retry, s.expire, s.minimum],
        ),
    );
    let mut nodes = zone::NodeMap::default();
    nodes
        .entry(apex_wire.clone())
        .or_default()
        .sets
        .push(RecordSet {
            rtype: rtype::SOA,
            records: vec![soa.clone()],
        });
    let mut ordered: Vec<_> = sets.into_iter().collect();
    ordered.sort_by_key(|(_, (o, _))| *o);
    for ((owner, rt), (_, records)) in ordered {
        zone::add_ancestors(&mut nodes, &owner, &apex_wire);
        let node = nodes.entry(owner.clone()).or_default();
        if rt == rtype::CNAME {
            if records.len() > 1 {
                // At the second CNAME of the name.
                let at = cname_paths
                    .get(&owner)
                    .and_then(|p| p.get(1).or(p.first()).cloned())
                    .unwrap_or_else(|| format!("{path}.records"));
                errors
                    .0
                    .push(doc.error(&at, format!("{} has more than one CNAME", show(&owner))));
            }
            node.cname_target = Some(records[0][10..].into());
        }
        node.sets.push(RecordSet { rtype: rt, records });
    }
    for (owner, node) in &nodes {
        if node.cname_target.is_some() && node.sets.len() > 1 {
            let at = cname_paths
                .get(owner)
                .and_then(|p| p.first().cloned())
                .unwrap_or_else(|| format!("{path}.records"));
            errors.0.push(doc.error(
                &at,
                format!(
                    "{} has a CNAME and other records (RFC 1034 §3.6.2)",
                    show(owner)
                ),
            ));
        }
    }
    for cycle in cname_loops(&nodes, &cname_owners, &apex_wire) {
        let at = cname_paths
            .get(&cycle[0])
            .and_then(|p| p.first().cloned())
            .unwrap_or_else(|| format!("{path}.records"));
        let mut names: Vec<String> = cycle.iter().map(|n| show(n)).collect();
        names.push(show(&cycle[0]));
        errors.0.push(doc.error(
            &at,
            format!(
                "{} is in a CNAME loop: {}",
                show(&cycle[0]),
                names.join(" → ")
            ),
        ));
    }
    if errors.0.len() > before {
        return None;
    }
    Some(Zone {
        apex: apex_wire,
        apex_text: apex.to_ascii(),
        soa,
        negative_ttl: soa_ttl.min(s.minimum),
        nodes,
        glue,
    })
}

/// Every CNAME loop inside the zone (the links the answer path follows: targets inside the
/// apex), once each, as its names starting from the one whose CNAME comes first in `owners`
/// (the owners of CNAME records, in configuration order). Each name is walked once.
fn cname_loops(nodes: &zone::NodeMap, owners: &[Box<[u8]>], apex: &[u8]) -> Vec<Vec<Box<[u8]>>> {
    let rank: HashMap<&[u8], usize> = owners.iter().enumerate().map(|(i, o)| (&**o, i)).collect();
    // Names whose chain is known: it ends, or it runs into a loop already found.
    let mut done: HashSet<&[u8]> = HashSet::new();
    let mut loops: Vec<Vec<Box<[u8]>>> = Vec::new();
    for start in owners {
        // The current walk, and where each of its names is in it.
        let mut walk: Vec<&[u8]> = Vec::new();
        let mut at: HashMap<&[u8], usize> = HashMap::new();
        let mut name: &[u8] = start;
        loop {
            if done.contains(name) {
                break;
            }
            if let Some(&i) = at.get(name) {
                let cycle = &walk[i..];
                let first = (0..cycle.len())
                    .min_by_key(|&k| rank.get(cycle[k]).copied().unwrap_or(usize::MAX))
                    .unwrap_or(0);
                loops.push(
                    cycle[first..]
                        .iter()
                        .chain(&cycle[..first])
                        .map(|n| Box::<[u8]>::from(*n))
                        .collect(),
                );
                break;
            }
            at.insert(name, walk.len());
            walk.push(name);
            match nodes.get(name).and_then(|n| n.cname_target.as_deref()) {
                Some(t) if zone::is_within(t, apex) && nodes.contains_key(t) => name = t,
                _ => break,
            }
        }
        done.extend(walk);
    }
    loops.sort_by_key(|l| rank.get(&*l[0]).copied().unwrap_or(usize::MAX));
    loops
}

/// A wire-form name as text, for messages.
pub fn show(wire: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < wire.len() && wire[i] != 0 {
        let l = wire[i] as usize;
        let end = (i + 1 + l).min(wire.len());
        out.push_str(&String::from_utf8_lossy(&wire[i + 1..end]));
        out.push('.');
        i = end;
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}
