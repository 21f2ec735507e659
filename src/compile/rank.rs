//! Ranking inside a region, in one place: how a region's `rank:` becomes its [`Ranking`]
//! (with the checks each mode needs), and how each mode fills a decision's per-node ranks for
//! a piece of the address space (`rank: proximity` from the live feeds' AS-path lengths,
//! `rank: distance` from the client's location). A new mode is a variant of `spec::Rank`, one
//! of `snapshot::Ranking` (with its label) and its arms here.

use std::collections::HashMap;

use crate::ranges::Range;
use crate::snapshot::{BEYOND, DistanceRank, MAX_RANK, NO_ROUTE, Node, Ranking, Region};
use crate::source::{Document, Errors, quote};
use crate::spec::{Rank, RegionSpec};

/// Where the clients are: the locations of the first GeoIP database with locations, for
/// regions that rank by distance. Computed once per build, only when one needs it.
#[derive(Default)]
pub(super) struct Locations {
    /// `(latitude, longitude)` by id.
    pub points: Vec<(f64, f64)>,
    /// Per family (IPv4, IPv6), merged ranges of addresses with the same location id.
    pub ranges: [Vec<Range>; 2],
}

/// A region as its ranking is decided: where it is written, its spec, and each member's name
/// and declared location, in member order.
pub(super) struct Member<'a> {
    pub d: &'a Document,
    /// The region's YAML path.
    pub p: &'a str,
    pub r: &'a RegionSpec,
    pub members: &'a [(&'a str, Option<(f64, f64)>)],
}

/// The ranking of a region: its `rank:` (weight by default) with what the mode needs, every
/// problem reported.
pub(super) fn ranking(region: &Member<'_>, errors: &mut Errors) -> Ranking {
    let (d, p, r) = (region.d, region.p, region.r);
    let rank = match d.choice(&format!("{p}.rank"), &r.rank, errors) {
        None | Some(Rank::Weight) => Ranking::Weight,
        Some(Rank::Proximity) => Ranking::Proximity,
        Some(Rank::Distance) => Ranking::Distance(distance_rank(region, errors)),
    };
    if r.limit.is_some() && !matches!(rank, Ranking::Distance(_)) {
        errors.0.push(d.error(
            &format!("{p}.limit"),
            "`limit` needs `rank: distance` (it keeps the nearest nodes)",
        ));
    }
    rank
}

/// The distance ranking of region `r` (path `p` of `d`) with members `m`: each member's
/// location and the limit, reporting members without a location and a bad limit.
fn distance_rank(region: &Member<'_>, errors: &mut Errors) -> DistanceRank {
    let Member {
        d,
        p,
        r,
        members: m,
    } = *region;
    let mut locations = Vec::with_capacity(m.len());
    for &(name, at) in m {
        match at {
            Some(l) => locations.push(l),
            None => {
                let i = r
                    .nodes
                    .iter()
                    .position(|x| x.node() == name)
                    .unwrap_or_default();
                errors.0.push(d.error(
                    &format!("{p}.nodes[{i}]"),
                    format!(
                        "node {} has no `location`; every member of a `rank: distance` region needs one",
                        quote(name)
                    ),
                ));
                locations.push((0.0, 0.0));
            }
        }
    }
    let limit = match r.limit {
        None => None,
        Some(0) => {
            errors
                .0
                .push(d.error(&format!("{p}.limit"), "must be at least 1"));
            None
        }
        Some(l) => Some(usize::try_from(l).unwrap_or(usize::MAX)),
    };
    DistanceRank { locations, limit }
}

/// A decision holds one rank per node, so in one chain a node may be ranked by one region
/// only: not by a `proximity` and a `distance` region, nor by two `distance` regions when
/// either keeps only its nearest (`limit`). Reports each conflict at the later region.
pub(super) fn ranked_once(
    d: &Document,
    rp: &str,
    names: &[String],
    chain: &[usize],
    regions: &[Region],
    nodes: &[Node],
    errors: &mut Errors,
) {
    let limited = |r: &Region| r.distance().is_some_and(|x| x.limit.is_some());
    for (k, &b) in chain.iter().enumerate() {
        let rb = &regions[b];
        for &a in &chain[..k] {
            let ra = &regions[a];
            let why = match (&ra.rank, &rb.rank) {
                (Ranking::Proximity, Ranking::Distance(_))
                | (Ranking::Distance(_), Ranking::Proximity) => {
                    "one ranks by `proximity`, the other by `distance`"
                }
                (Ranking::Distance(_), Ranking::Distance(_)) if limited(ra) || limited(rb) => {
                    "both rank by `distance` and one has a `limit`"
                }
                _ => continue,
            };
            let Some(&(n, _)) = rb
                .members
                .iter()
                .find(|(n, _)| ra.members.iter().any(|(m, _)| m == n))
            else {
                continue;
            };
            let i = names.iter().position(|x| x == &rb.name).unwrap_or_default();
            errors.0.push(d.error(
                &format!("{rp}.regions[{i}]"),
                format!(
                    "node {} is in regions {} and {} of this chain, and {why}; a node can be ranked by one region of a chain only",
                    quote(&nodes[n].name),
                    quote(&ra.name),
                    quote(&rb.name),
                ),
            ));
        }
    }
}

/// (node index, rank) pairs.
type NodeRanks = Vec<(usize, u8)>;

/// The distance regions of one rule's chain: every node they rank (node index, location),
/// and each limited region's limit with its members (positions in `nodes`).
#[derive(Default)]
pub(super) struct DistanceRule {
    nodes: Vec<(usize, (f64, f64))>,
    limits: Vec<(usize, Vec<usize>)>,
}

/// What fills a decision's ranks for each rule: the ranked nodes of its chain's regions, by
/// mode, and the distance ranks already computed.
pub(super) struct Ranker<'a> {
    /// For each rule, its chain's proximity nodes: (position in the proximity node list,
    /// node index).
    rule_prox: Vec<Vec<(usize, usize)>>,
    /// For each rule, its chain's distance nodes and limits.
    rule_dist: Vec<DistanceRule>,
    /// The clients' locations, when a region ranks by distance.
    locations: Option<&'a Locations>,
    /// Distance ranks by (rule, location id): many pieces of the space share a location.
    dist_memo: HashMap<(u32, Option<u32>), NodeRanks>,
}

impl<'a> Ranker<'a> {
    /// The ranker of rules whose chains are `chains` (one per rule, region indices) over
    /// `regions`, and the nodes of proximity regions (one layer of AS-path lengths each, in
    /// this order).
    pub(super) fn new(
        chains: &[&[usize]],
        regions: &[Region],
        locations: Option<&'a Locations>,
    ) -> (Ranker<'a>, Vec<usize>) {
        let (prox_nodes, rule_prox) = proximity_rules(chains, regions);
        let ranker = Ranker {
            rule_prox,
            rule_dist: distance_rules(chains, regions),
            locations,
            dist_memo: HashMap::new(),
        };
        (ranker, prox_nodes)
    }

    /// The ranks of `rule`'s ranked nodes for a piece whose proximity nodes have AS paths of
    /// `paths` and whose clients are at location `location`, indexed by node; empty when the
    /// rule ranks nothing.
    pub(super) fn ranks(
        &mut self,
        rule: u32,
        paths: &[Option<u32>],
        location: Option<u32>,
    ) -> Vec<u8> {
        let mut ranks = ranks_for(&self.rule_prox[rule as usize], paths);
        let dr = &self.rule_dist[rule as usize];
        if let Some(l) = self.locations
            && !dr.nodes.is_empty()
        {
            let found = self.dist_memo.entry((rule, location)).or_insert_with(|| {
                distance_ranks(dr, location.and_then(|i| l.points.get(i as usize).copied()))
            });
            for &(n, r) in found.iter() {
                if ranks.len() <= n {
                    ranks.resize(n + 1, 0);
                }
                ranks[n] = r;
            }
        }
        ranks
    }
}

/// The nodes of proximity regions, and for each rule those its chain ranks: (position in
/// the node list, node index).
fn proximity_rules(
    chains: &[&[usize]],
    regions: &[Region],
) -> (Vec<usize>, Vec<Vec<(usize, usize)>>) {
    let mut prox_nodes: Vec<usize> = Vec::new();
    let rule_prox = chains
        .iter()
        .map(|chain| {
            let mut list = Vec::new();
            for &ri in chain.iter() {
                let region = &regions[ri];
                if region.rank != Ranking::Proximity {
                    continue;
                }
                for &(n, _) in &region.members {
                    let pos = match prox_nodes.iter().position(|&p| p == n) {
                        Some(p) => p,
                        None => {
                            prox_nodes.push(n);
                            prox_nodes.len() - 1
                        }
                    };
                    if !list.iter().any(|&(_, m)| m == n) {
                        list.push((pos, n));
                    }
                }
            }
            list
        })
        .collect();
    (prox_nodes, rule_prox)
}

/// The nodes of distance regions, for each rule (empty when its chain has none).
fn distance_rules(chains: &[&[usize]], regions: &[Region]) -> Vec<DistanceRule> {
    chains
        .iter()
        .map(|chain| {
            let mut dr = DistanceRule::default();
            for &ri in chain.iter() {
                let region = &regions[ri];
                let Some(rank) = region.distance() else {
                    continue;
                };
                let mut positions = Vec::with_capacity(region.members.len());
                for (&(n, _), &at) in region.members.iter().zip(&rank.locations) {
                    let pos = match dr.nodes.iter().position(|&(m, _)| m == n) {
                        Some(p) => p,
                        None => {
                            dr.nodes.push((n, at));
                            dr.nodes.len() - 1
                        }
                    };
                    positions.push(pos);
                }
                if let Some(limit) = rank.limit {
                    dr.limits.push((limit, positions));
                }
            }
            dr
        })
        .collect()
}

/// The proximity ranks of a rule's ranked nodes for one piece of the address space, indexed
/// by node: 0 for the shortest AS path among them, 1 for the next length, and so on; no route
/// is [`NO_ROUTE`]. Empty when the rule ranks nothing. `paths` holds each proximity node's
/// path length (None: no route), by position.
fn ranks_for(ranked: &[(usize, usize)], paths: &[Option<u32>]) -> Vec<u8> {
    let Some(&max) = ranked.iter().map(|(_, n)| n).max() else {
        return Vec::new();
    };
    let mut lengths: Vec<u32> = ranked.iter().filter_map(|&(p, _)| paths[p]).collect();
    lengths.sort_unstable();
    lengths.dedup();
    let mut out = vec![0u8; max + 1];
    for &(p, n) in ranked {
        out[n] = match paths[p] {
            Some(len) => {
                let r = lengths.partition_point(|&l| l < len);
                (r.min(MAX_RANK as usize)) as u8
            }
            None => NO_ROUTE,
        };
    }
    out
}

/// The distance ranks of a rule's distance nodes for a client at `at`: (node index, rank),
/// 0 for the nearest (nodes within [`TIE_KM`](crate::distance::TIE_KM) share a rank), and
/// [`BEYOND`] for a member of a limited region that has `limit` or more members nearer than
/// it. Without a location, every node ranks 0: the region ranks by weight, all members kept.
fn distance_ranks(dr: &DistanceRule, at: Option<(f64, f64)>) -> NodeRanks {
    let Some(at) = at else {
        return dr.nodes.iter().map(|&(n, _)| (n, 0)).collect();
    };
    let km: Vec<f64> = dr
        .nodes
        .iter()
        .map(|&(_, node)| crate::distance::haversine_km(at, node))
        .collect();
    let mut ranks: Vec<u8> = crate::distance::ranks(&km)
        .into_iter()
        .map(|r| r.min(MAX_RANK as usize) as u8)
        .collect();
    let plain = ranks.clone();
    for (limit, members) in &dr.limits {
        for &p in members {
            let nearer = members.iter().filter(|&&q| plain[q] < plain[p]).count();
            if nearer >= *limit {
                ranks[p] = BEYOND;
            }
        }
    }
    dr.nodes
        .iter()
        .zip(ranks)
        .map(|(&(n, _), r)| (n, r))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_ranks_and_limit() {
        // Nodes 3 (London), 5 (Frankfurt), 7 (Sydney); a region of all three keeps two.
        let dr = DistanceRule {
            nodes: vec![
                (3, (51.5, -0.12)),
                (5, (50.11, 8.68)),
                (7, (-33.87, 151.21)),
            ],
            limits: vec![(2, vec![0, 1, 2])],
        };
        let london = Some((51.51, -0.13));
        assert_eq!(
            distance_ranks(&dr, london),
            vec![(3, 0), (5, 1), (7, BEYOND)]
        );
        let sydney = Some((-33.8, 151.0));
        assert_eq!(
            distance_ranks(&dr, sydney),
            vec![(3, BEYOND), (5, 1), (7, 0)]
        );
        // Without coordinates: one rank, nothing beyond.
        assert_eq!(distance_ranks(&dr, None), vec![(3, 0), (5, 0), (7, 0)]);
        // Without a limit nothing is beyond; ties within 1 km share a rank.
        let tie = DistanceRule {
            nodes: vec![(0, (51.5, -0.12)), (1, (51.5, -0.121))],
            limits: vec![],
        };
        assert_eq!(
            distance_ranks(&tie, Some((40.7, -74.0))),
            vec![(0, 0), (1, 0)]
        );
    }
}
