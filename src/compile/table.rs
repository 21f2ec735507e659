//! The route tables of one service: every address's decision from the rules, the GeoIP layer
//! and the BGP data, cut into maximal ranges of equal decision, then into CIDR blocks whose
//! lengths are the ECS scopes.
//!
//! For an address the decision is: the longest operator prefix rule that covers it; else the
//! rule for the origin ASN of its longest BGP prefix; else its subdivision, country or
//! continent rule; else the default rule. Local-only nodes add a bit to the decision for the
//! clients they may serve.

use std::collections::HashMap;

use ip_network::IpNetwork;

use super::live::Live;
use super::nodes::LocalNode;
use super::rank::{Locations, Ranker};
use super::rules::Rules;
use crate::client::ClientData;
use crate::geo::{GeoLayer, Layout};
use crate::ranges::{self, Layer, Range};
use crate::snapshot::{Decision, Pick, Region, RouteTable, V6Table};

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
    let chains: Vec<&[usize]> = rules.drafts.iter().map(|r| &r.chain[..]).collect();
    let (ranker, prox_nodes) = Ranker::new(&chains, inputs.regions, inputs.locations);
    let [v4_prefixes, v6_prefixes] = std::mem::take(&mut rules.prefixes);
    let mut decider = Decider {
        rules,
        inputs,
        classes: &classes.list,
        ranker,
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
        // Neighbouring pieces often have the same layer values: decide those once. Each
        // merged range goes into the table as it is found, its blocks being the table's
        // entries: no list of the whole family's ranges is held beside them.
        let mut last: (Vec<Option<u32>>, u32) = (Vec::new(), u32::MAX);
        let decide = |v: &[Option<u32>]| {
            if last.1 != u32::MAX && last.0 == v {
                return last.1;
            }
            let d = decider.decide(&positions.piece(v));
            last.0.clear();
            last.0.extend_from_slice(v);
            last.1 = d;
            d
        };
        for range in ranges::Overlay::new(layers, bits, decide) {
            ranges::range_blocks(range, bits, |start, len, dec| {
                if fam == 0 {
                    tables.0.push(start as u32, dec, len);
                } else {
                    tables.1.push(start, dec, len);
                }
            });
        }
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
            .chain(inputs.live.route_origins());
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
    ) -> (Vec<Layer<'a>>, Positions) {
        let inputs = self.inputs;
        // Merge neighbours that select the same rule.
        let mut geo_ranges: Vec<Range> = Vec::new();
        for (start, end, k) in inputs.geo.spans.ranges(fam == 1) {
            ranges::push_merged(&mut geo_ranges, start, end, self.geo_rule[k as usize]);
        }
        // Owned layers made here, borrowed ones shared by every service of the build, and the
        // live feeds' computed as they are read; in the order of `Positions`.
        let owned = |r: Vec<Range>| -> Layer<'a> { Box::new(r.into_iter()) };
        let mut layers: Vec<Layer<'a>> = vec![
            owned(geo_ranges),
            owned(self.asn_ranges(fam, bits)),
            owned(ranges::flatten(prefixes, bits)),
        ];
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
            layers.push(owned(ranges::flatten(list, bits)));
        }
        let local_layers = Positions::FIRST_NODE_LAYER..layers.len();
        // Proximity: one layer per node of a proximity region, its AS-path length.
        let prox_base = layers.len();
        for &n in self.prox_nodes {
            layers.push(
                inputs
                    .live
                    .paths(n, fam)
                    .unwrap_or_else(|| Box::new(std::iter::empty())),
            );
        }
        // Distance: one layer, the id of the client's location.
        let loc_layer = inputs.locations.map(|l| {
            layers.push(Box::new(l.ranges[fam].iter().copied()));
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
        // Live feeds decide wherever one of them covers the address (see `live`). Their
        // origins are flattened as they are read, their classes looked up on the way.
        if inputs.live.has_routes(fam) {
            let live: Layer = Box::new(
                ranges::Flat::new(inputs.live.origins(fam), bits)
                    .map(|(s, e, asn)| (s, e, class_of[&asn])),
            );
            let file: Layer = Box::new(asn_ranges.iter().copied());
            asn_ranges = ranges::Overlay::new(vec![live, file], bits, |v| {
                v.iter().flatten().next().copied().unwrap_or(0)
            })
            .collect();
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
    /// The per-node ranks of each rule's ranked regions.
    ranker: Ranker<'a>,
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
        let ranks = self.ranker.ranks(rule, piece.paths, piece.location);
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
            usual: [Pick::empty(); 2],
        });
        let d = (self.decisions.len() - 1) as u32;
        self.decision_of.insert(key, d);
        if plain {
            self.plain_decision[rule as usize] = Some(d);
        }
        d
    }
}
