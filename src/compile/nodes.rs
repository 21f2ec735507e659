//! Nodes and regions of the maps: each node validated and its answers encoded ahead of time,
//! its health check resolved; each region's members resolved to nodes with their weights,
//! heaviest first.

use std::collections::HashMap;

use ip_network::IpNetwork;

use super::hint;
use crate::check::Check;
use crate::snapshot::{Node, Region};
use crate::source::{Document, Errors, quote};
use crate::spec::{MemberSpec, NodeSpec, RegionSpec, parse_cidr};
use crate::wire::rtype;
use crate::zone;

/// A node that serves only clients of its own networks.
pub(super) struct LocalNode {
    /// Its prefixes.
    pub prefixes: Vec<IpNetwork>,
    /// Its ASNs.
    pub asns: Vec<u32>,
}

/// The nodes of the maps, by index and by name.
pub(super) struct NodeSet {
    /// Nodes, in definition order.
    pub nodes: Vec<Node>,
    /// Index by name.
    pub index: HashMap<String, usize>,
    /// Local-only nodes; the position in this list is the node's bit in a decision's mask.
    pub local: Vec<LocalNode>,
    /// Names of nodes whose definition could not be read (its problem is reported there), or
    /// every name when a map file could not be read at all: a reference to one of them is not
    /// reported again as unknown.
    pub broken: Broken,
}

/// Names whose definitions failed to decode, so that references to them add no follow-on
/// "unknown" errors.
#[derive(Default)]
pub(super) struct Broken {
    /// The names.
    pub names: std::collections::HashSet<String>,
    /// A whole map file could not be read: any name may be one of its.
    pub all: bool,
}

impl Broken {
    /// Whether a reference to `name` was already accounted for.
    pub fn covers(&self, name: &str) -> bool {
        self.all || self.names.contains(name)
    }
}

/// A node spec with the document and path it came from.
pub(super) type Sourced<'a, T> = (&'a Document, String, T);

/// Validates the node specs and builds the nodes.
pub(super) fn nodes(specs: &[Sourced<'_, NodeSpec>], errors: &mut Errors) -> NodeSet {
    let mut nodes: Vec<Node> = Vec::new();
    let mut node_index: HashMap<String, usize> = HashMap::new();
    let mut local_nodes: Vec<LocalNode> = Vec::new();
    for (d, p, n) in specs {
        if node_index.contains_key(&n.name) {
            errors.0.push(d.error(
                &format!("{p}.name"),
                format!("node {} is defined twice", quote(&n.name)),
            ));
            continue;
        }
        if !(1..=65535).contains(&n.weight) {
            errors
                .0
                .push(d.error(&format!("{p}.weight"), "must be 1..=65535"));
        }
        if n.ipv4.is_empty() && n.ipv6.is_empty() {
            errors
                .0
                .push(d.error(p, "a node needs at least one address in `ipv4` or `ipv6`"));
        }
        let mut prefixes = Vec::new();
        for (i, c) in n.prefixes.iter().enumerate() {
            match parse_cidr(c) {
                Ok(net) => prefixes.push(net),
                Err(e) => errors
                    .0
                    .push(d.error(&format!("{p}.prefixes[{i}]"), e.to_string())),
            }
        }
        if let Some(l) = n.location
            && (!(-90.0..=90.0).contains(&l.lat) || !(-180.0..=180.0).contains(&l.lon))
        {
            errors.0.push(d.error(
                &format!("{p}.location"),
                "lat must be -90..=90 and lon -180..=180",
            ));
        }
        let local_bit = if n.local_only {
            if prefixes.is_empty() && n.asns.is_empty() {
                errors.0.push(d.error(
                    &format!("{p}.local_only"),
                    "a local-only node needs `asns` or `prefixes`",
                ));
            }
            if local_nodes.len() >= 64 {
                errors.0.push(d.error(
                    &format!("{p}.local_only"),
                    "at most 64 local-only nodes are supported",
                ));
            }
            local_nodes.push(LocalNode {
                prefixes,
                asns: n.asns.clone(),
            });
            Some((local_nodes.len() - 1) as u32)
        } else {
            None
        };
        node_index.insert(n.name.clone(), nodes.len());
        nodes.push(Node {
            name: n.name.clone(),
            key: crate::hash::name_key(&n.name),
            v4: n.ipv4.clone(),
            v6: n.ipv6.clone(),
            weight: n.weight,
            local_bit,
            a: n.ipv4
                .iter()
                .map(|a| zone::body(rtype::A, 0, &a.octets()))
                .collect(),
            aaaa: n
                .ipv6
                .iter()
                .map(|a| zone::body(rtype::AAAA, 0, &a.octets()))
                .collect(),
            check: None,
            capacity: None,
            load: None,
        });
        if let Some(c) = n.capacity
            && !(c.is_finite() && c > 0.0 && c <= crate::meter::MAX_LOAD)
        {
            errors.0.push(d.error(
                &format!("{p}.capacity"),
                "must be a number above 0 (in the maps' capacity unit)",
            ));
        }
        // Kept even when refused (the build fails anyway): a service needing it adds no
        // follow-on error.
        nodes.last_mut().expect("just pushed").capacity = n.capacity;
        if let Some(l) = &n.load {
            if n.capacity.is_none() {
                errors.0.push(d.error(
                    &format!("{p}.load"),
                    "a load source needs the node's `capacity` (utilisation is load / capacity)",
                ));
            }
            match crate::meter::LoadSource::from_spec(l) {
                Ok(src) => nodes.last_mut().expect("just pushed").load = Some(src),
                Err(e) => errors
                    .0
                    .push(d.error(&format!("{p}.load.{}", e.key()), e.to_string())),
            }
        }
        if let Some(c) = &n.check {
            match Check::from_spec(c, n) {
                Ok(c) => nodes.last_mut().expect("just pushed").check = Some(c),
                Err(e) => errors.0.push(d.error(&format!("{p}.check"), e.to_string())),
            }
        }
    }
    NodeSet {
        nodes,
        index: node_index,
        local: local_nodes,
        broken: Broken::default(),
    }
}

impl NodeSet {
    /// Resolves region or last-resort members to (node, weight), heaviest first, reporting
    /// unknown and repeated nodes and bad weights.
    pub(super) fn members(
        &self,
        d: &Document,
        p: &str,
        list: &[MemberSpec],
        errors: &mut Errors,
    ) -> Vec<(usize, u32)> {
        let mut out: Vec<(usize, u32)> = Vec::new();
        for (i, m) in list.iter().enumerate() {
            match self.index.get(m.node()) {
                Some(&n) => {
                    let w = m.weight().unwrap_or(self.nodes[n].weight);
                    if m.weight().is_some() && !(1..=65535).contains(&w) {
                        errors
                            .0
                            .push(d.error(&format!("{p}[{i}].weight"), "must be 1..=65535"));
                    }
                    if out.iter().any(|&(o, _)| o == n) {
                        errors.0.push(d.error(
                            &format!("{p}[{i}]"),
                            format!("node {} is listed twice", quote(m.node())),
                        ));
                    }
                    out.push((n, w));
                }
                None if self.broken.covers(m.node()) => {}
                None => errors.0.push(d.error(
                    &format!("{p}[{i}]"),
                    format!(
                        "unknown node {}{}",
                        quote(m.node()),
                        hint(m.node(), self.index.keys())
                    ),
                )),
            }
        }
        out.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then_with(|| self.nodes[a.0].name.cmp(&self.nodes[b.0].name))
        });
        out
    }
}

/// The regions of the maps, by index and by name.
pub(super) struct RegionSet {
    /// Regions, in definition order.
    pub regions: Vec<Region>,
    /// Index by name.
    pub index: HashMap<String, usize>,
    /// Regions whose definition could not be read.
    pub broken: Broken,
}

/// Validates the region specs and builds the regions; a region's default check is given to
/// those of its nodes that have none of their own.
pub(super) fn regions(
    specs: &[Sourced<'_, RegionSpec>],
    node_specs: &[Sourced<'_, NodeSpec>],
    set: &mut NodeSet,
    errors: &mut Errors,
) -> RegionSet {
    let mut regions: Vec<Region> = Vec::new();
    let mut region_index: HashMap<String, usize> = HashMap::new();
    // Region default checks, given to their nodes once every region is read.
    let mut region_checks: Vec<(usize, Check)> = Vec::new();
    // Each node's declared location, by name (what a `rank: distance` region checks); the
    // first node of a name declared twice, as the node set keeps it.
    let mut location_of: HashMap<&str, Option<(f64, f64)>> = HashMap::new();
    for (_, _, s) in node_specs {
        location_of
            .entry(s.name.as_str())
            .or_insert(s.location.map(|l| (l.lat, l.lon)));
    }
    for (d, p, r) in specs {
        if region_index.contains_key(&r.name) {
            errors.0.push(d.error(
                &format!("{p}.name"),
                format!("region {} is defined twice", quote(&r.name)),
            ));
            continue;
        }
        let m = set.members(d, &format!("{p}.nodes"), &r.nodes, errors);
        if r.nodes.is_empty() {
            errors
                .0
                .push(d.error(&format!("{p}.nodes"), "a region needs at least one node"));
        }
        if let Some(c) = &r.check {
            for &(n, _) in &m {
                let Some((_, _, spec)) = node_specs
                    .iter()
                    .find(|(_, _, s)| s.name == set.nodes[n].name)
                else {
                    continue;
                };
                if spec.check.is_some() || region_checks.iter().any(|(k, _)| *k == n) {
                    continue;
                }
                match Check::from_spec(c, spec) {
                    Ok(chk) => region_checks.push((n, chk)),
                    Err(e) => errors.0.push(d.error(
                        &format!("{p}.check"),
                        format!("for node {}: {e}", spec.name),
                    )),
                }
            }
        }
        // Each member's name and declared location, for the ranking's checks.
        let located: Vec<(&str, Option<(f64, f64)>)> = m
            .iter()
            .map(|&(n, _)| {
                let name = set.nodes[n].name.as_str();
                (name, location_of.get(name).copied().flatten())
            })
            .collect();
        let rank = super::rank::ranking(
            &super::rank::Member {
                d,
                p,
                r,
                members: &located,
            },
            errors,
        );
        region_index.insert(r.name.clone(), regions.len());
        regions.push(Region {
            name: r.name.clone(),
            members: m,
            rank,
        });
    }
    for (n, c) in region_checks {
        set.nodes[n].check = Some(c);
    }
    RegionSet {
        regions,
        index: region_index,
        broken: Broken::default(),
    }
}
