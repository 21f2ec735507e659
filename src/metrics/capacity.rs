//! The capacity steering's metric families: each node's capacity and load, each steered
//! service's weight factors, shares and overflow fractions (`docs/metrics.md`, Capacity).

use super::family::{Builder, Kind, Value, labels};
use crate::serving::Serving;

/// Capacity steering: each node's capacity and load, each steered service's weight factors,
/// shares and overflow fractions. Families appear only when some node has a capacity.
pub(super) fn families(b: &mut Builder, serving: &Serving, snap: &crate::snapshot::Snapshot) {
    if !snap.nodes.iter().any(|n| n.capacity.is_some()) {
        return;
    }
    let cap = serving.published().capacity();
    let f = b.family(
        "node_capacity",
        "What each node can carry, in the maps' capacity unit.",
        Kind::Gauge,
    );
    for n in snap.nodes.iter().filter(|n| n.capacity.is_some()) {
        f.samples.push((
            labels(&[("node", &n.name)]),
            Value::Float(n.capacity.unwrap_or(0.0)),
        ));
    }
    let mut loads = Vec::new();
    let mut valid = Vec::new();
    for n in snap.nodes.iter().filter(|n| n.capacity.is_some()) {
        let st = cap.status_now(&n.name);
        if let Some((l, _)) = st.load() {
            loads.push((n.name.clone(), l));
        }
        valid.push((n.name.clone(), st.load().is_some()));
    }
    let f = b.family(
        "node_load",
        "Each node's current load (pushed or scraped), in the capacity unit; absent while none is valid.",
        Kind::Gauge,
    );
    for (n, l) in &loads {
        f.samples.push((labels(&[("node", n)]), Value::Float(*l)));
    }
    let f = b.family(
        "node_load_valid",
        "1 while the node has a valid load, 0 while it falls back to its static weight.",
        Kind::Gauge,
    );
    for (n, v) in &valid {
        f.samples.push((
            labels(&[("node", n)]),
            Value::Float(if *v { 1.0 } else { 0.0 }),
        ));
    }
    drop(cap);
    let factor = b.family(
        "node_weight_factor",
        "The capacity controller's factor on each node's static weight, per steered service.",
        Kind::Gauge,
    );
    let mut shares = Vec::new();
    let mut overflow = Vec::new();
    for s in &snap.services {
        let Some(steer) = &s.steering else { continue };
        let name = s.names.first().map_or("", |n| n.as_str());
        let mut seen = std::collections::BTreeSet::new();
        for (r, region) in s.regions.iter().enumerate() {
            if !steer.used(r) {
                continue;
            }
            overflow.push((name, region.name.as_str(), steer.overflow(r)));
            for &(n, _) in &region.members {
                if seen.insert(n) {
                    factor.samples.push((
                        labels(&[("service", name), ("node", &snap.nodes[n].name)]),
                        Value::Float(steer.factor(n)),
                    ));
                }
                shares.push((
                    name,
                    region.name.as_str(),
                    snap.nodes[n].name.as_str(),
                    crate::capacity::share(snap, s, r, n),
                ));
            }
        }
    }
    let f = b.family(
        "node_share",
        "The fraction of a region's clients (of those it keeps) each node gets, per steered service.",
        Kind::Gauge,
    );
    for (s, r, n, v) in shares {
        f.samples.push((
            labels(&[("service", s), ("region", r), ("node", n)]),
            Value::Float(v),
        ));
    }
    let f = b.family(
        "region_overflow",
        "The fraction of a region's clients sent on to the next region of their chain (capacity).",
        Kind::Gauge,
    );
    for (s, r, v) in overflow {
        f.samples
            .push((labels(&[("service", s), ("region", r)]), Value::Float(v)));
    }
}
