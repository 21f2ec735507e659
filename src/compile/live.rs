//! The live BGP feeds as compiler input: each feed's table joined with the nodes whose view it
//! is (validated against the maps), the origin of every prefix any feed has (for `asns` rules),
//! and, for every node of a proximity region, the AS-path length from its own feeds to every
//! address (for the ranks).
//!
//! Precedence for the origin ASN: the rule of [`LiveData::origin`], applied here to whole
//! ranges (every prefix of any feed with its majority origin, flattened so that the longest
//! prefix wins; the route tables put these above the file tables). Stale routes (of a dropped
//! session, within its stale time) count like fresh ones. A test checks that the two agree.
//!
//! Nothing here is computed ahead: the origins and the path lengths are read from the feeds'
//! tables as the route tables are built ([`ranges::Flat`], [`ranges::Overlay`]), once per
//! family and service. With full tables a list of them would hold millions of ranges for the
//! whole build, beside the tables it is made from; reading the tables again costs a few
//! milliseconds per million routes.

use std::collections::HashMap;

use crate::config::Config;
use crate::live::{FeedTable, LiveData, LiveFeed, Route, majority};
use crate::ranges::{self, Layer};
use crate::source::{Errors, quote};

use super::nodes::NodeSet;

/// What the route-table compiler reads of the live feeds.
#[derive(Default)]
pub(super) struct Live {
    /// Node index → the feeds (indexes into `data.feeds`) of each node of a proximity region.
    node_feeds: HashMap<usize, Vec<usize>>,
    /// The feeds with their nodes, for the snapshot.
    pub data: LiveData,
}

impl Live {
    /// Joins `tables` with the configured peers, reports peers naming unknown nodes, and
    /// notes the feeds of `proximity_nodes`.
    pub(super) fn prepare(
        config: &Config,
        tables: &[FeedTable],
        nodes: &NodeSet,
        proximity_nodes: &[usize],
        errors: &mut Errors,
    ) -> Live {
        let mut live = Live::default();
        let Some(feeds) = &config.feeds else {
            return live;
        };
        for peer in &feeds.peers {
            for (name, at) in &peer.nodes {
                match nodes.index.get(name) {
                    Some(&n) => {
                        if proximity_nodes.contains(&n) {
                            let feed = live.data.feeds.len();
                            live.node_feeds.entry(n).or_default().push(feed);
                        }
                    }
                    None if nodes.broken.covers(name) => {}
                    None => {
                        let mut e = at.clone();
                        e.message = format!(
                            "unknown node {}{}",
                            quote(name),
                            super::hint(name, nodes.index.keys())
                        );
                        errors.0.push(e);
                    }
                }
            }
            let table = tables
                .iter()
                .find(|t| t.peer == peer.name)
                .cloned()
                .unwrap_or_else(|| FeedTable {
                    peer: peer.name.clone(),
                    v4: Default::default(),
                    v6: Default::default(),
                });
            live.data.feeds.push(LiveFeed {
                table,
                nodes: peer.nodes.iter().map(|(n, _)| n.clone()).collect(),
            });
        }
        live
    }

    /// Whether any feed has a route of family `fam` (0: IPv4, 1: IPv6).
    pub(super) fn has_routes(&self, fam: usize) -> bool {
        self.data.feeds.iter().any(|f| match fam {
            0 => !f.table.v4.is_empty(),
            _ => !f.table.v6.is_empty(),
        })
    }

    /// Every origin ASN of every feed's routes, repeated (a superset of the origins that
    /// [`Live::origins`] gives).
    pub(super) fn route_origins(&self) -> impl Iterator<Item = u32> + '_ {
        self.data.feeds.iter().flat_map(|f| {
            let t = &f.table;
            t.v4.iter()
                .map(|r| r.2.origin)
                .chain(t.v6.iter().map(|r| r.2.origin))
        })
    }

    /// Family `fam`'s (start, length, origin ASN) of every prefix any feed has, sorted by
    /// (start, length): the origin most feeds announce (ties: the smaller ASN).
    pub(super) fn origins(&self, fam: usize) -> Box<dyn Iterator<Item = (u128, u8, u32)> + '_> {
        let feeds = &self.data.feeds;
        match fam {
            0 => Box::new(origins(feeds.iter().map(|f| &*f.table.v4).collect())),
            _ => Box::new(origins(feeds.iter().map(|f| &*f.table.v6).collect())),
        }
    }

    /// Family `fam`'s shortest AS-path length from the feeds of proximity node `node` to every
    /// address any of them covers, as ranges; `None` for a node without feeds.
    pub(super) fn paths(&self, node: usize, fam: usize) -> Option<Layer<'_>> {
        let feeds = self.node_feeds.get(&node)?;
        let bits = if fam == 0 { 32 } else { 128 };
        let flat = |f: usize| -> Layer<'_> {
            let t = &self.data.feeds[f].table;
            if fam == 0 {
                let list = t.v4.iter().map(|&(s, l, r)| (s as u128, l, r.path_len));
                Box::new(ranges::Flat::new(list, bits))
            } else {
                let list = t.v6.iter().map(|&(s, l, r)| (s, l, r.path_len));
                Box::new(ranges::Flat::new(list, bits))
            }
        };
        if let [one] = feeds[..] {
            return Some(flat(one));
        }
        // A node with several feeds: the shortest path any of them has.
        let layers: Vec<Layer<'_>> = feeds.iter().map(|&f| flat(f)).collect();
        let shortest = |v: &[Option<u32>]| v.iter().flatten().min().copied().unwrap_or(u32::MAX);
        Some(Box::new(
            ranges::Overlay::new(layers, bits, shortest).filter(|r| r.2 != u32::MAX),
        ))
    }
}

/// The origin of every prefix any of `feeds` has: the one most feeds announce (ties: the
/// smaller ASN). Each feed's list is sorted by (start, length) and holds a prefix once; the
/// lists are merged in step (a prefix's entries are at the heads of the lists that have it),
/// so that nothing is allocated: with full tables the lists hold millions of routes.
fn origins<K: Copy + Ord + Into<u128>>(
    feeds: Vec<&[(K, u8, Route)]>,
) -> impl Iterator<Item = (u128, u8, u32)> + '_ {
    let mut at = vec![0usize; feeds.len()];
    let mut here: Vec<u32> = Vec::with_capacity(feeds.len());
    std::iter::from_fn(move || {
        let key = feeds
            .iter()
            .zip(&at)
            .filter_map(|(f, &i)| f.get(i).map(|e| (e.0, e.1)))
            .min()?;
        here.clear();
        for (f, i) in feeds.iter().zip(at.iter_mut()) {
            if let Some(e) = f.get(*i)
                && (e.0, e.1) == key
            {
                here.push(e.2.origin);
                *i += 1;
            }
        }
        here.sort_unstable();
        let origin = majority(here.iter().copied()).expect("the key came from a head");
        Some((key.0.into(), key.1, origin))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    /// The compiler's origins over whole ranges and the explanations' point rule
    /// ([`LiveData::origin`]) give every address the same origin: nested prefixes, feeds that
    /// disagree (majority, ties to the smaller ASN), a prefix only one feed has.
    #[test]
    fn live_origins_agree_with_the_point_rule() {
        let route = |origin| Route {
            origin,
            path_len: 2,
            stale: false,
        };
        // (feed, [(start, length, origin)]), each list sorted by (start, length).
        let a = |o1, o2, o3| -> Vec<(u32, u8, Route)> {
            vec![
                (0x0a00_0000, 8, route(o1)),
                (0x0a01_0000, 16, route(o2)),
                (0x0a01_0200, 24, route(o3)),
            ]
        };
        let feeds = [
            ("r1", a(100, 200, 300)),
            ("r2", a(100, 201, 301)),
            ("r3", {
                let mut v = a(101, 201, 300);
                v.push((0x0a02_0000, 16, route(400)));
                v
            }),
        ];
        let data = LiveData {
            feeds: feeds
                .iter()
                .map(|(peer, v4)| LiveFeed {
                    table: FeedTable {
                        peer: peer.to_string(),
                        v4: v4.clone().into(),
                        v6: Vec::new().into(),
                    },
                    nodes: Vec::new(),
                })
                .collect(),
        };
        let v4: Vec<&[(u32, u8, Route)]> = data.feeds.iter().map(|f| &*f.table.v4).collect();
        let ranges = ranges::flatten(origins(v4).collect(), 32);
        let mut x: u32 = 12345;
        let mut checked = 0;
        for i in 0..20_000u32 {
            // Addresses in and around 10.0.0.0/8, and the edges of every prefix.
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let addr = match i % 4 {
                0 => 0x0a00_0000 | (x & 0x00ff_ffff),
                1 => 0x0a01_0000 | (x & 0x0000_ffff),
                2 => 0x0a01_0200 | (x & 0x0000_01ff),
                _ => 0x0900_0000 | (x & 0x02ff_ffff),
            };
            let compiled = ranges
                .iter()
                .find(|r| r.0 <= addr as u128 && addr as u128 <= r.1)
                .map(|r| r.2);
            let point = data.origin(IpAddr::V4(Ipv4Addr::from(addr))).map(|o| o.asn);
            assert_eq!(compiled, point, "{}", Ipv4Addr::from(addr));
            checked += usize::from(point.is_some());
        }
        assert!(checked > 10_000, "{checked}");
        // The rule as written: the /24 has 300 twice (r1, r3), the /16 201 twice (r2, r3), the
        // /8 100 twice (r1, r2); 10.2/16 is r3's alone.
        let at = |a: [u8; 4]| data.origin(IpAddr::from(a)).map(|o| o.asn);
        assert_eq!(at([10, 1, 2, 9]), Some(300));
        assert_eq!(at([10, 1, 9, 9]), Some(201));
        assert_eq!(at([10, 9, 9, 9]), Some(100));
        assert_eq!(at([10, 2, 0, 1]), Some(400));
        assert_eq!(at([11, 0, 0, 1]), None);
    }
}
