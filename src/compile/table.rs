//! The route tables of one service: every address's decision from the rules, the GeoIP layer
//! and the BGP data, cut into maximal ranges of equal decision, then into CIDR blocks whose
//! lengths are the ECS scopes.
//!
//! For an address the decision is: the longest operator prefix rule that covers it; else the
//! rule for the origin ASN of its longest BGP prefix; else its subdivision, country or
//! continent rule; else the default rule. Local-only nodes add a bit to the decision for the
//! clients they may serve.

use std::borrow::Cow;
use std::collections::HashMap;

use ip_network::IpNetwork;

use super::live::Live;
use super::nodes::LocalNode;
use super::rules::Rules;
use crate::client::ClientData;
use crate::geo::{GeoLayer, Layout};
use crate::ranges::{self, Range};
use crate::snapshot::{BEYOND, Decision, MAX_RANK, NO_ROUTE, Ranking, Region, RouteTable, V6Table};

/// Where the clients are: the locations of the first GeoIP database with locations, for
/// regions that rank by distance. Computed once per build, only when one needs it.
#[derive(Default)]
pub(super) struct Locations {
    /// `(latitude, longitude)` by id.
    pub points: Vec<(f64, f64)>,
    /// Per family (IPv4, IPv6), merged ranges of addresses with the same location id.
    pub ranges: [Vec<Range>; 2],
}

/// (node index, rank) pairs.
type NodeRanks = Vec<(usize, u8)>;

/// The distance regions of one rule's chain: every node they rank (node index, location),
/// and each limited region's limit with its members (positions in `nodes`).
#[derive(Default)]
struct DistanceRule {
    nodes: Vec<(usize, (f64, f64))>,
    limits: Vec<(usize, Vec<usize>)>,
}

/// Where each layer of one family's address space sits in the list given to
/// [`ranges::overlay`], which hands back the values of each piece in that order: the GeoIP
/// rule, the ASN class and the operator's prefix rule first, then one layer per local-only
/// node, one per node of a proximity region and the client's location.
struct Positions {
    /// One layer per local-only node (bit `i` of the mask for the `i`-th): 1 where the node's
    /// own prefixes cover the address.
    local: std::ops::Range<usize>,
    /// One layer per proximity node (in the order of `prox_nodes`): its AS-path length.
    paths: std::ops::Range<usize>,
    /// The id of the client's location, when a region ranks by distance.
    location: Option<usize>,
}

impl Positions {
    /// The rule the GeoIP database selects (by the address's subdivision, country or
    /// continent).
    const GEO_RULE: usize = 0;
    /// The ASN class of the address's origin (an index into the classes).
    const ASN_CLASS: usize = 1;
    /// The rule of the operator's longest prefix covering the address.
    const PREFIX_RULE: usize = 2;
    /// Where the per-node layers start.
    const FIRST_NODE_LAYER: usize = 3;

    /// The values of one piece, named.
    fn piece<'v>(&self, v: &'v [Option<u32>]) -> Piece<'v> {
        Piece {
            geo_rule: v[Self::GEO_RULE],
            asn_class: v[Self::ASN_CLASS],
            prefix_rule: v[Self::PREFIX_RULE],
            local: &v[self.local.clone()],
            paths: &v[self.paths.clone()],
            location: self.location.and_then(|l| v[l]),
        }
    }
}

/// What the layers say about one piece of the address space (see [`Positions`]); `None`
/// where a layer does not cover it.
struct Piece<'v> {
    geo_rule: Option<u32>,
    asn_class: Option<u32>,
    prefix_rule: Option<u32>,
    local: &'v [Option<u32>],
    paths: &'v [Option<u32>],
    location: Option<u32>,
}

/// A service's compiled decisions and route tables.
pub(super) struct Tables {
    /// Distinct decisions.
    pub decisions: Vec<Decision>,
    /// IPv4 route table.
    pub v4: RouteTable<u32>,
    /// IPv6 route table.
    pub v6: V6Table,
}

/// The route tables pack a decision into 23 bits, the last value marking nested IPv6 blocks.
pub(super) const MAX_DECISIONS: usize = crate::snapshot::NESTED as usize;

/// What the route tables of one service are made from, besides its rules.
pub(super) struct Inputs<'a> {
    /// The rule of addresses no other rule selects.
    pub default_rule: u32,
    /// The local-only nodes (bit `i` of a decision's mask for the `i`-th).
    pub local: &'a [LocalNode],
    /// The GeoIP databases and BGP tables of the build.
    pub client: &'a ClientData,
    /// The live feeds' origins and AS paths.
    pub live: &'a Live,
    /// The regions the rules' chains index.
    pub regions: &'a [Region],
    /// The GeoIP layer whose keys select subdivision, country and continent rules.
    pub geo: &'a GeoLayer,
    /// The clients' locations, when a region ranks by distance.
    pub locations: Option<&'a Locations>,
}

/// Compiles the route tables of a service whose rules are `rules`.
pub(super) fn tables(rules: &mut Rules, inputs: &Inputs) -> Tables {
    let geo_rule = geo_rules(rules, inputs);
    let asn_dbs: Vec<&GeoLayer> = inputs
        .client
        .geo()
        .filter(|d| d.layout == Layout::Asn)
        .map(|d| &*d.layer)
        .collect();
    let classes = AsnClasses::new(rules, inputs, &asn_dbs);
    let (prox_nodes, rule_prox) = proximity_rules(rules, inputs.regions);
    let [v4_prefixes, v6_prefixes] = std::mem::take(&mut rules.prefixes);
    let mut decider = Decider {
        rules,
        inputs,
        classes: &classes.list,
        rule_dist: distance_rules(rules, inputs.regions),
        rule_prox,
        dist_memo: HashMap::new(),
        decisions: Vec::new(),
        decision_of: HashMap::new(),
        plain_decision: vec![None; rules.drafts.len()],
    };
    let mut tables: (RouteTable<u32>, RouteTable<u128>) =
        (RouteTable::default(), RouteTable::default());
    for (fam, bits, prefixes) in [(0usize, 32u8, v4_prefixes), (1, 128, v6_prefixes)] {
        let (layers, positions) = Layers {
            inputs,
            geo_rule: &geo_rule,
            classes: &classes,
            asn_dbs: &asn_dbs,
            prox_nodes: &prox_nodes,
        }
        .family(fam, bits, prefixes);
        // Neighbouring pieces often have the same layer values: decide those once.
        let mut last: (Vec<Option<u32>>, u32) = (Vec::new(), u32::MAX);
        let merged = ranges::overlay(&layers, bits, |v| {
            if last.1 != u32::MAX && last.0 == v {
                return last.1;
            }
            let d = decider.decide(&positions.piece(v));
            last.0.clear();
            last.0.extend_from_slice(v);
            last.1 = d;
            d
        });
        ranges::for_each_block(&merged, bits, |start, len, dec| {
            if fam == 0 {
                tables.0.push(start as u32, dec, len);
            } else {
                tables.1.push(start, dec, len);
            }
        });
    }
    tables.0.finish();
    tables.1.finish();
    Tables {
        decisions: decider.decisions,
        v4: tables.0,
        v6: V6Table::from(tables.1),
    }
}

/// The rule each key of the GeoIP layer selects (by subdivision, country, continent).
fn geo_rules(rules: &Rules, inputs: &Inputs) -> Vec<u32> {
    inputs
        .geo
        .keys
        .iter()
        .map(|(cont, country, sub)| {
            sub.as_ref()
                .and_then(|s| rules.by_sub.get(s))
                .or_else(|| country.as_ref().and_then(|c| rules.by_country.get(c)))
                .or_else(|| cont.as_ref().and_then(|c| rules.by_cont.get(c)))
                .copied()
                .unwrap_or(inputs.default_rule)
        })
        .collect()
}

/// The origin ASNs grouped by what they decide: (the rule for the ASN, the local-only nodes
/// whose ASN it is). Class 0 decides nothing.
struct AsnClasses {
    /// The classes, by id.
    list: Vec<(Option<u32>, u64)>,
    /// The class of each origin ASN met in the data.
    of: HashMap<u32, u32>,
}

impl AsnClasses {
    fn new(rules: &Rules, inputs: &Inputs, asn_dbs: &[&GeoLayer]) -> AsnClasses {
        let mut list: Vec<(Option<u32>, u64)> = vec![(None, 0)];
        let mut class_of: HashMap<(Option<u32>, u64), u32> = HashMap::from([((None, 0), 0)]);
        let mut of: HashMap<u32, u32> = HashMap::new();
        let all_asns = inputs
            .client
            .bgp()
            .flat_map(|t| t.v4.iter().chain(&t.v6).map(|p| p.2))
            .chain(asn_dbs.iter().flat_map(|l| {
                l.spans
                    .ranges(false)
                    .chain(l.spans.ranges(true))
                    .map(|r| r.2)
            }))
            .chain(inputs.live.origins.iter().flatten().map(|p| p.2));
        for asn in all_asns {
            if of.contains_key(&asn) {
                continue;
            }
            let mut mask = 0u64;
            for (bit, l) in inputs.local.iter().enumerate() {
                if l.asns.contains(&asn) {
                    mask |= 1 << bit;
                }
            }
            let key = (rules.by_asn.get(&asn).copied(), mask);
            let id = *class_of.entry(key).or_insert_with(|| {
                list.push(key);
                (list.len() - 1) as u32
            });
            of.insert(asn, id);
        }
        AsnClasses { list, of }
    }
}

/// The nodes of proximity regions, and for each rule those its chain ranks: (position in
/// the node list, node index).
fn proximity_rules(rules: &Rules, regions: &[Region]) -> (Vec<usize>, Vec<Vec<(usize, usize)>>) {
    let mut prox_nodes: Vec<usize> = Vec::new();
    let rule_prox = rules
        .drafts
        .iter()
        .map(|r| {
            let mut list = Vec::new();
            for &ri in &r.chain {
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
fn distance_rules(rules: &Rules, regions: &[Region]) -> Vec<DistanceRule> {
    rules
        .drafts
        .iter()
        .map(|r| {
            let mut dr = DistanceRule::default();
            for &ri in &r.chain {
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

/// What one family's layers are made from.
struct Layers<'a> {
    inputs: &'a Inputs<'a>,
    geo_rule: &'a [u32],
    classes: &'a AsnClasses,
    asn_dbs: &'a [&'a GeoLayer],
    prox_nodes: &'a [usize],
}

impl<'a> Layers<'a> {
    /// The layers of family `fam` (0: IPv4 of `bits` 32, 1: IPv6), in the order of the
    /// [`Positions`] returned with them; `prefixes` are the operator's prefix rules.
    fn family(
        &self,
        fam: usize,
        bits: u8,
        prefixes: Vec<(u128, u8, u32)>,
    ) -> (Vec<Cow<'a, [Range]>>, Positions) {
        let inputs = self.inputs;
        // Merge neighbours that select the same rule.
        let mut geo_ranges: Vec<Range> = Vec::new();
        for (start, end, k) in inputs.geo.spans.ranges(fam == 1) {
            ranges::push_merged(&mut geo_ranges, start, end, self.geo_rule[k as usize]);
        }
        // Owned layers made here, borrowed ones shared by every service of the build; in the
        // order of `Positions`.
        let mut layers: Vec<Cow<'a, [Range]>> = vec![Cow::Owned(Vec::new()); 3];
        layers[Positions::GEO_RULE] = Cow::Owned(geo_ranges);
        layers[Positions::ASN_CLASS] = Cow::Owned(self.asn_ranges(fam, bits));
        layers[Positions::PREFIX_RULE] = Cow::Owned(ranges::flatten(prefixes, bits));
        debug_assert_eq!(layers.len(), Positions::FIRST_NODE_LAYER);
        for l in inputs.local {
            let list: Vec<(u128, u8, u32)> = l
                .prefixes
                .iter()
                .filter_map(|n| match (fam, n) {
                    (0, IpNetwork::V4(v)) => {
                        Some((u32::from(v.network_address()) as u128, v.netmask(), 1))
                    }
                    (1, IpNetwork::V6(v)) => {
                        Some((u128::from(v.network_address()), v.netmask(), 1))
                    }
                    _ => None,
                })
                .collect();
            layers.push(Cow::Owned(ranges::flatten(list, bits)));
        }
        let local_layers = Positions::FIRST_NODE_LAYER..layers.len();
        // Proximity: one layer per node of a proximity region, its AS-path length.
        let prox_base = layers.len();
        for &n in self.prox_nodes {
            layers.push(
                inputs
                    .live
                    .paths
                    .get(&n)
                    .map_or(Cow::Borrowed(&[][..]), |p| Cow::Borrowed(&p[fam][..])),
            );
        }
        // Distance: one layer, the id of the client's location.
        let loc_layer = inputs.locations.map(|l| {
            layers.push(Cow::Borrowed(&l.ranges[fam][..]));
            layers.len() - 1
        });
        let positions = Positions {
            local: local_layers,
            paths: prox_base..loc_layer.unwrap_or(layers.len()),
            location: loc_layer,
        };
        (layers, positions)
    }

    /// The ASN class of each address of family `fam`: BGP tables first (earlier tables win),
    /// ASN databases where they cover nothing, live feeds above both wherever they cover.
    fn asn_ranges(&self, fam: usize, bits: u8) -> Vec<Range> {
        let (inputs, class_of) = (self.inputs, &self.classes.of);
        // Earlier tables win, so they go last into `flatten`.
        let mut bgp_prefixes = Vec::new();
        for t in inputs.client.bgp().collect::<Vec<_>>().into_iter().rev() {
            let list = if fam == 0 { &t.v4 } else { &t.v6 };
            bgp_prefixes.extend(list.iter().map(|&(s, l, asn)| (s, l, class_of[&asn])));
        }
        let mut asn_ranges = ranges::flatten(bgp_prefixes, bits);
        if !self.asn_dbs.is_empty() {
            let mut layers = vec![asn_ranges];
            for l in self.asn_dbs {
                layers.push(
                    l.spans
                        .ranges(fam == 1)
                        .map(|(s, e, asn)| (s, e, class_of[&asn]))
                        .collect(),
                );
            }
            asn_ranges = ranges::overlay(&layers, bits, |v| {
                v.iter().flatten().next().copied().unwrap_or(0)
            });
        }
        // Live feeds decide wherever one of them covers the address (see `live`).
        if !inputs.live.origins[fam].is_empty() {
            let live_ranges = ranges::flatten(
                inputs.live.origins[fam]
                    .iter()
                    .map(|&(s, l, asn)| (s, l, class_of[&asn]))
                    .collect(),
                bits,
            );
            asn_ranges = ranges::overlay(&[live_ranges, asn_ranges], bits, |v| {
                v.iter().flatten().next().copied().unwrap_or(0)
            });
        }
        asn_ranges.retain(|r| r.2 != 0);
        asn_ranges
    }
}

/// Turns pieces of the address space into decisions, each distinct decision made once.
struct Decider<'a> {
    rules: &'a Rules,
    inputs: &'a Inputs<'a>,
    classes: &'a [(Option<u32>, u64)],
    rule_prox: Vec<Vec<(usize, usize)>>,
    rule_dist: Vec<DistanceRule>,
    /// Distance ranks by (rule, location id): many pieces of the space share a location.
    dist_memo: HashMap<(u32, Option<u32>), NodeRanks>,
    decisions: Vec<Decision>,
    decision_of: HashMap<(u32, u64, Vec<u8>), u32>,
    /// The decision of each rule for pieces without local-only nodes or ranks.
    plain_decision: Vec<Option<u32>>,
}

impl Decider<'_> {
    /// The decision for one piece.
    fn decide(&mut self, piece: &Piece) -> u32 {
        let class = self.classes[piece.asn_class.unwrap_or(0) as usize];
        // The operator's prefix, then the origin ASN, then the GeoIP location decide.
        let rule = piece
            .prefix_rule
            .or(class.0)
            .or(piece.geo_rule)
            .unwrap_or(self.inputs.default_rule);
        let mut mask = class.1;
        for (bit, val) in piece.local.iter().enumerate() {
            if val.is_some() {
                mask |= 1 << bit;
            }
        }
        let mut ranks = ranks_for(&self.rule_prox[rule as usize], piece.paths);
        let dr = &self.rule_dist[rule as usize];
        if let Some(l) = self.inputs.locations
            && !dr.nodes.is_empty()
        {
            let at = piece.location;
            let found = self.dist_memo.entry((rule, at)).or_insert_with(|| {
                distance_ranks(dr, at.and_then(|i| l.points.get(i as usize).copied()))
            });
            for &(n, r) in found.iter() {
                if ranks.len() <= n {
                    ranks.resize(n + 1, 0);
                }
                ranks[n] = r;
            }
        }
        // Most pieces rank nothing and serve every client: their decision is the rule's.
        let plain = mask == 0 && ranks.is_empty();
        if plain && let Some(&Some(d)) = self.plain_decision.get(rule as usize) {
            return d;
        }
        let key = (rule, mask, ranks);
        if let Some(&d) = self.decision_of.get(&key) {
            return d;
        }
        self.decisions.push(Decision {
            rule: rule as usize,
            chain: self.rules.drafts[rule as usize].chain.clone().into(),
            local_mask: mask,
            ranks: key.2.clone().into_boxed_slice(),
        });
        let d = (self.decisions.len() - 1) as u32;
        self.decision_of.insert(key, d);
        if plain {
            self.plain_decision[rule as usize] = Some(d);
        }
        d
    }
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
