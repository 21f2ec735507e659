//! Zones from their specs: the SOA, NS and static records of each zone, encoded ahead of time,
//! with glue, CNAME rules and every problem reported at its `file:line:column`.

use std::collections::{BTreeMap, HashMap, HashSet};

use hickory_proto::rr::Name;
use serde_yaml::Value;

use super::spec::{NsSpec, RecordSpec, ZoneSpec};
use crate::source::{Document, Errors, quote};
use crate::wire::rtype;
use crate::zone::{self, Glue, RecordSet, Zone};

/// Decodes and builds every zone, collecting all problems; the key files of signed zones are
/// added to `key_files` (for the reload's watch).
pub(super) fn load_zones(
    doc: &Document,
    value: &Value,
    resolve: &dyn Fn(&str) -> super::DataSource,
    errors: &mut Errors,
    key_files: &mut Vec<super::DataSource>,
) -> Vec<Zone> {
    let mut zones: Vec<Zone> = Vec::new();
    let mut paths: Vec<String> = Vec::new();
    for (path, spec) in doc.decode_each::<ZoneSpec>("zones", value, errors) {
        if let Some(z) = build_zone(doc, &path, spec, resolve, errors, key_files) {
            if zones.iter().any(|o| o.apex == z.apex) {
                errors.0.push(doc.error(
                    &format!("{path}.apex"),
                    format!("zone {} is declared twice", z.apex_text),
                ));
                continue;
            }
            zones.push(z);
            paths.push(path);
        }
    }
    // A zone served below a signed one would need a signed delegation (NS and DS at the cut),
    // which Signpost does not serve: validators would find the child's answers bogus.
    for (z, path) in zones.iter().zip(&paths) {
        if let Some(parent) = zones
            .iter()
            .find(|p| p.dnssec.is_some() && p.apex != z.apex && zone::is_within(&z.apex, &p.apex))
        {
            errors.0.push(doc.error(
                &format!("{path}.apex"),
                format!(
                    "zone {} is inside the signed zone {}: a signed zone cannot have a zone of its own served below it",
                    z.apex_text, parent.apex_text
                ),
            ));
        }
    }
    zones
}

/// Record bodies by (owner, type), with the order of first appearance.
type RecordSets = BTreeMap<(Box<[u8]>, u16), (usize, Vec<Box<[u8]>>)>;

/// One zone's records while they are read: by (owner, type) in the order of first
/// appearance, with the glue and where each owner's CNAME records are written.
struct Draft<'a> {
    doc: &'a Document,
    /// The zone's YAML path.
    path: &'a str,
    apex: Name,
    apex_wire: Box<[u8]>,
    /// The zone's default TTL.
    ttl: u32,
    sets: RecordSets,
    order: usize,
    glue: Vec<Glue>,
    /// Where each owner's CNAME records are written, for the CNAME rules' messages.
    cname_paths: BTreeMap<Box<[u8]>, Vec<String>>,
    /// The owners in the order of their first CNAME.
    cname_owners: Vec<Box<[u8]>>,
    /// The zone is signed.
    signed: bool,
}

fn build_zone(
    doc: &Document,
    path: &str,
    spec: ZoneSpec,
    resolve: &dyn Fn(&str) -> super::DataSource,
    errors: &mut Errors,
    key_files: &mut Vec<super::DataSource>,
) -> Option<Zone> {
    let before = errors.0.len();
    let apex = match zone::parse_name(&spec.apex, &Name::root()) {
        Ok(n) => n,
        Err(e) => {
            errors
                .0
                .push(doc.error(&format!("{path}.apex"), e.to_string()));
            return None;
        }
    };
    let mut draft = Draft {
        doc,
        path,
        apex_wire: zone::wire(&apex),
        apex,
        ttl: spec.ttl,
        sets: BTreeMap::new(),
        order: 0,
        glue: Vec::new(),
        cname_paths: BTreeMap::new(),
        cname_owners: Vec::new(),
        signed: spec.dnssec.is_some(),
    };
    let mname = draft.name("soa.mname", &spec.soa.mname, errors);
    let rname = draft.name("soa.rname", &spec.soa.rname, errors);
    let soa_ttl = spec.soa.ttl.unwrap_or(spec.ttl);
    draft.name_servers(&spec.ns, errors);
    for (rpath, r) in
        doc.decode_each::<RecordSpec>(&format!("{path}.records"), &spec.records, errors)
    {
        draft.record(&rpath, &r, errors);
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
    let apex_text = draft.apex.to_ascii();
    let dnssec = spec.dnssec.as_ref().and_then(|d| {
        let at = format!("{path}.dnssec");
        super::dnssec::load(doc, &at, d, &draft.apex_wire, resolve, errors, key_files)
    });
    let (apex_wire, nodes, glue) = draft.finish(soa.clone(), errors);
    if errors.0.len() > before {
        return None;
    }
    Some(Zone {
        apex: apex_wire,
        apex_text,
        soa,
        negative_ttl: soa_ttl.min(s.minimum),
        nodes,
        glue,
        ttl: spec.ttl,
        dnssec,
        signed: None,
    })
}

/// True when a label of `name` (wire form) is `*`.
fn has_star_label(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() && name[i] != 0 {
        if name[i] == 1 && name.get(i + 1) == Some(&b'*') {
            return true;
        }
        i += 1 + usize::from(name[i]);
    }
    false
}

impl Draft<'_> {
    /// The name `text` (relative to the apex) at `field`.
    fn name(&self, field: &str, text: &str, errors: &mut Errors) -> Option<Name> {
        match zone::parse_name(text, &self.apex) {
            Ok(n) => Some(n),
            Err(e) => {
                errors.0.push(
                    self.doc
                        .error(&format!("{}.{field}", self.path), e.to_string()),
                );
                None
            }
        }
    }

    fn add(&mut self, owner: Box<[u8]>, rt: u16, body: Box<[u8]>) {
        self.order += 1;
        let order = self.order;
        self.sets
            .entry((owner, rt))
            .or_insert_with(|| (order, Vec::new()))
            .1
            .push(body);
    }

    /// The apex's NS records, and the glue of those inside the zone.
    fn name_servers(&mut self, list: &[NsSpec], errors: &mut Errors) {
        let path = self.path;
        if list.is_empty() {
            errors.0.push(self.doc.error(
                &format!("{path}.ns"),
                "a zone needs at least one name server",
            ));
        }
        for (i, ns) in list.iter().enumerate() {
            let (name, addrs) = match ns {
                NsSpec::Name(n) => (n, &[][..]),
                NsSpec::WithGlue(g) => (&g.name, &g.addresses[..]),
            };
            let Some(n) = self.name(&format!("ns[{i}]"), name, errors) else {
                continue;
            };
            let w = zone::wire(&n);
            let body = zone::body(rtype::NS, self.ttl, &w);
            self.add(self.apex_wire.clone(), rtype::NS, body);
            if !addrs.is_empty() && !zone::is_within(&w, &self.apex_wire) {
                errors.0.push(self.doc.error(
                    &format!("{path}.ns[{i}].addresses"),
                    "glue is only for name servers inside the zone",
                ));
            }
            for a in addrs {
                let (rt, rd) = match a {
                    std::net::IpAddr::V4(v4) => (rtype::A, v4.octets().to_vec()),
                    std::net::IpAddr::V6(v6) => (rtype::AAAA, v6.octets().to_vec()),
                };
                let b = zone::body(rt, self.ttl, &rd);
                self.add(w.clone(), rt, b.clone());
                self.glue.push(Glue {
                    owner: w.clone(),
                    body: b,
                });
            }
        }
    }

    /// One static record entry (at `rpath`), with its values.
    fn record(&mut self, rpath: &str, r: &RecordSpec, errors: &mut Errors) {
        let doc = self.doc;
        let Some(rt) = zone::type_from_str(&r.rtype) else {
            errors.0.push(doc.error(
                &format!("{rpath}.type"),
                format!(
                    "unsupported type {}; expected A, AAAA, CNAME, TXT, MX, CAA, SRV, NS or PTR",
                    quote(&r.rtype)
                ),
            ));
            return;
        };
        let owner = match zone::parse_name(&r.name, &self.apex) {
            Ok(n) => zone::wire(&n),
            Err(e) => {
                errors
                    .0
                    .push(doc.error(&format!("{rpath}.name"), e.to_string()));
                return;
            }
        };
        if !zone::is_within(&owner, &self.apex_wire) {
            errors.0.push(doc.error(
                &format!("{rpath}.name"),
                format!("{} is outside the zone {}", r.name, self.apex),
            ));
            return;
        }
        if self.signed && has_star_label(&owner) {
            errors.0.push(doc.error(
                &format!("{rpath}.name"),
                "a signed zone cannot have a `*` label: Signpost does not expand wildcards, and validators would expect it to",
            ));
            return;
        }
        let values: Vec<&String> = match (&r.value, &r.values) {
            (Some(v), None) => vec![v],
            (None, Some(vs)) if !vs.is_empty() => vs.iter().collect(),
            _ => {
                errors
                    .0
                    .push(doc.error(rpath, "give exactly one of `value` or `values` (non-empty)"));
                return;
            }
        };
        let ttl = r.ttl.unwrap_or(self.ttl);
        if rt == rtype::CNAME {
            let paths = self.cname_paths.entry(owner.clone()).or_default();
            if paths.is_empty() {
                self.cname_owners.push(owner.clone());
            }
            paths.push(rpath.to_string());
        }
        for (vi, v) in values.iter().enumerate() {
            match zone::rdata(rt, v, &self.apex) {
                Ok(rd) => self.add(owner.clone(), rt, zone::body(rt, ttl, &rd)),
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

    /// Where the CNAME records of `owner` are first written (or the `n`-th when it has one).
    fn cname_at(&self, owner: &[u8], n: usize) -> String {
        self.cname_paths
            .get(owner)
            .and_then(|p| p.get(n).or(p.first()).cloned())
            .unwrap_or_else(|| format!("{}.records", self.path))
    }

    /// The zone's nodes with `soa` at the apex, checking the CNAME rules: (apex, nodes, glue).
    fn finish(
        mut self,
        soa: Box<[u8]>,
        errors: &mut Errors,
    ) -> (Box<[u8]>, zone::NodeMap, Vec<Glue>) {
        let doc = self.doc;
        let mut nodes = zone::NodeMap::default();
        nodes.or_default(&self.apex_wire).sets.push(RecordSet {
            rtype: rtype::SOA,
            records: vec![soa],
            sigs: Vec::new(),
        });
        let mut ordered: Vec<_> = std::mem::take(&mut self.sets).into_iter().collect();
        ordered.sort_by_key(|(_, (o, _))| *o);
        for ((owner, rt), (_, records)) in ordered {
            zone::add_ancestors(&mut nodes, &owner, &self.apex_wire);
            let node = nodes.or_default(&owner);
            if rt == rtype::CNAME {
                if records.len() > 1 {
                    // At the second CNAME of the name.
                    errors.0.push(doc.error(
                        &self.cname_at(&owner, 1),
                        format!("{} has more than one CNAME", show(&owner)),
                    ));
                }
                node.cname_target = Some(records[0][10..].into());
            }
            node.sets.push(RecordSet {
                rtype: rt,
                records,
                sigs: Vec::new(),
            });
        }
        for (owner, node) in nodes.iter() {
            if node.cname_target.is_some() && node.sets.len() > 1 {
                errors.0.push(doc.error(
                    &self.cname_at(owner, 0),
                    format!(
                        "{} has a CNAME and other records (RFC 1034 §3.6.2)",
                        show(owner)
                    ),
                ));
            }
        }
        for cycle in cname_loops(&nodes, &self.cname_owners, &self.apex_wire) {
            let mut names: Vec<String> = cycle.iter().map(|n| show(n)).collect();
            names.push(show(&cycle[0]));
            errors.0.push(doc.error(
                &self.cname_at(&cycle[0], 0),
                format!(
                    "{} is in a CNAME loop: {}",
                    show(&cycle[0]),
                    names.join(" → ")
                ),
            ));
        }
        (self.apex_wire, nodes, self.glue)
    }
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
