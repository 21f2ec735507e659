//! Explanations over a compiled snapshot: why a client gets its answer (`_why` TXT and
//! `signpost explain`), and how much address space moves between two snapshots
//! (`signpost diff`). Reads only the snapshot; the scope and TTL shown come from the same
//! functions that real answers use ([`Service::scope`], [`Service::ttl`]).

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::live::LiveData;
use crate::ranges;
use crate::snapshot::{Ranking, Service, Snapshot, client_key};

/// What each live feed has for `addr`: its longest covering prefix, origin and path length.
pub fn live_lines(live: &LiveData, addr: IpAddr) -> Vec<String> {
    live.feeds
        .iter()
        .map(|f| match f.table.lookup(addr) {
            Some((start, len, r)) => format!(
                "feed {}: {start}/{len} origin AS{} path {}{}",
                f.table.peer,
                r.origin,
                r.path_len,
                if r.stale { " (stale)" } else { "" }
            ),
            None => format!("feed {}: no route", f.table.peer),
        })
        .collect()
}

/// What the snapshot knows of `addr` (`lookup --socket`, and the start of an explanation):
/// the client data's lines, with the live origin as the `asn:` line where a feed covers the
/// address (the origin the rules use), then what each feed has.
pub fn client_lines(snap: &Snapshot, addr: IpAddr) -> Vec<String> {
    let addr = addr.to_canonical();
    let mut data = snap.client.lookup(addr).lines();
    if let Some(o) = snap.live.origin(addr) {
        let line = format!(
            "asn: AS{} (live, prefix {}/{}, from {})",
            o.asn,
            o.prefix.0,
            o.prefix.1,
            o.feeds.join(", ")
        );
        match data.iter_mut().find(|l| l.starts_with("asn:")) {
            Some(l) => *l = line,
            None => data.push(line),
        }
    }
    data.extend(live_lines(&snap.live, addr));
    data
}

/// The shortest AS path to `addr` among the feeds of `node`: (length, feed, prefix), as the
/// proximity ranks use it.
pub fn node_path(live: &LiveData, node: &str, addr: IpAddr) -> Option<(u32, String, String)> {
    live.feeds
        .iter()
        .filter(|f| f.nodes.iter().any(|n| n == node))
        .filter_map(|f| {
            let (start, len, r) = f.table.lookup(addr)?;
            Some((r.path_len, f.table.peer.clone(), format!("{start}/{len}")))
        })
        .min()
}

/// The index of the service answering `name` (case and a final dot ignored).
pub fn service_named(snap: &Snapshot, name: &str) -> Option<usize> {
    let wanted = name.trim_end_matches('.');
    snap.services.iter().position(|s| {
        s.names
            .iter()
            .any(|n| n.trim_end_matches('.').eq_ignore_ascii_case(wanted))
    })
}

/// The explanation of a decision, as lines (used by `_why` and `signpost explain`).
pub fn explain(
    snap: &Snapshot,
    service: usize,
    client: IpAddr,
    how: &str,
    v6: bool,
) -> Vec<String> {
    // An IPv4-mapped IPv6 address is the IPv4 address, as in the answer path.
    let client = client.to_canonical();
    let svc = &snap.services[service];
    let mut out = vec![format!("client {client} ({how})")];
    out.extend(client_lines(snap, client));
    let Some((decision, scope)) = svc.route(client) else {
        out.push("no route (empty table)".into());
        return out;
    };
    let rule = &svc.rules[decision.rule];
    out.push(format!("rule: {} at {}", rule.kind, rule.location));
    let seen = Seen {
        snap,
        svc,
        decision,
        client,
        v6,
        // The location distance regions measure from (the first database with locations,
        // as the compiler uses).
        at: snap.client.lookup(client).location.map(|l| l.value),
    };
    for (i, &r) in decision.chain.iter().enumerate() {
        out.push(seen.region_line(i, r));
    }
    let pick = svc.pick(decision, v6, client_key(client), &snap.nodes, &snap.health);
    out.push(seen.answer_line(&pick));
    if svc.steering.is_some() {
        out.extend(capacity_line(snap, svc, decision, v6, client, &pick));
    }
    out.push(format!(
        "scope: /{}; ttl {}",
        svc.scope(scope, client),
        svc.ttl(&pick)
    ));
    out.push(format!("data: {}", snap.versions));
    out
}

/// One client's decision, as the explanation's lines see it.
struct Seen<'a> {
    snap: &'a Snapshot,
    svc: &'a Service,
    decision: &'a crate::snapshot::Decision,
    client: IpAddr,
    /// AAAA (else A).
    v6: bool,
    /// The client's coordinates.
    at: Option<(f64, f64)>,
}

impl Seen<'_> {
    /// The line of the `i`-th region of the chain (region index `r`), its members in the
    /// order they are tried.
    fn region_line(&self, i: usize, r: usize) -> String {
        let (svc, decision) = (self.svc, self.decision);
        let region = &svc.regions[r];
        // Members in the order they are tried: by proximity rank first in a proximity region.
        let mut order: Vec<(usize, u32)> = region.members.clone();
        if region.ranked() && !decision.ranks.is_empty() {
            order.sort_by_key(|&(n, _)| {
                decision
                    .ranks
                    .get(n)
                    .copied()
                    .unwrap_or(crate::snapshot::NO_ROUTE)
            });
        }
        let members: Vec<String> = order
            .iter()
            .map(|&(n, w)| self.member(region, n, w))
            .collect();
        let overflow = svc
            .steering
            .as_ref()
            .map(|st| st.overflow(r))
            .filter(|&f| f > 0.0 && i + 1 < decision.chain.len())
            .map(|f| format!(" (at capacity: {:.1} % of its clients sent on)", f * 100.0))
            .unwrap_or_default();
        format!(
            "region {}: {}{}{overflow}: {}",
            i + 1,
            region.name,
            region.rank.label(self.at.is_some()),
            members.join(", ")
        )
    }

    /// Member `n` (weight `w`) of `region`: its state and what decides its place.
    fn member(&self, region: &crate::snapshot::Region, n: usize, w: u32) -> String {
        let (snap, decision) = (self.snap, self.decision);
        let node = &snap.nodes[n];
        let mut s = format!("{} w{} {}", node.name, w, snap.health.get(n).as_str());
        if let Some(steer) = &self.svc.steering {
            let f = steer.factor(n);
            if f != 1.0 {
                s.push_str(&format!(" (capacity: weight x{f:.2})"));
            }
        }
        if node
            .local_bit
            .is_some_and(|b| decision.local_mask & (1 << b) == 0)
        {
            s.push_str(" (local-only, not for this client)");
        }
        if node.records(self.v6).is_empty() {
            s.push_str(if self.v6 { " (no IPv6)" } else { " (no IPv4)" });
        }
        if let Some(rank) = region.distance()
            && let Some(at) = self.at
            && let Some(i) = region.members.iter().position(|&(m, _)| m == n)
        {
            let km = crate::distance::haversine_km(at, rank.locations[i]);
            s.push_str(&format!(" {km:.0} km"));
            if decision.ranks.get(n) == Some(&crate::snapshot::BEYOND) {
                s.push_str(" (beyond the limit)");
            }
        }
        if region.rank == Ranking::Proximity {
            match node_path(&snap.live, &node.name, self.client) {
                Some((len, feed, prefix)) => {
                    s.push_str(&format!(" path {len} via {feed} {prefix}"))
                }
                None => s.push_str(" no route"),
            }
        }
        s
    }

    /// The answer line: the picked nodes with their addresses, and from which region.
    fn answer_line(&self, pick: &crate::snapshot::Pick) -> String {
        let answer: Vec<String> = pick
            .nodes()
            .iter()
            .map(|&n| {
                let node = &self.snap.nodes[n];
                let addrs: Vec<String> = if self.v6 {
                    node.v6.iter().map(|a| a.to_string()).collect()
                } else {
                    node.v4.iter().map(|a| a.to_string()).collect()
                };
                format!("{} [{}]", node.name, addrs.join(" "))
            })
            .collect();
        let region = pick
            .region
            .map(|r| self.svc.regions[r].name.as_str())
            .unwrap_or("-");
        let outcome = if pick.servfail {
            "SERVFAIL (all down)".to_string()
        } else if answer.is_empty() {
            "no address".to_string()
        } else {
            answer.join(", ")
        };
        format!(
            "answer: {outcome} from region {region}{}{}",
            if pick.degraded { " (degraded)" } else { "" },
            if pick.all_down {
                " (all-down policy)"
            } else {
                ""
            }
        )
    }
}

/// What capacity steering changed for this client, if anything: sent on by a region at
/// capacity, or moved off the node static weights give it.
fn capacity_line(
    snap: &Snapshot,
    svc: &Service,
    decision: &crate::snapshot::Decision,
    v6: bool,
    client: IpAddr,
    pick: &crate::snapshot::Pick,
) -> Option<String> {
    let key = client_key(client);
    let plain = svc.pick_unsteered(decision, v6, key, &snap.nodes, &snap.health);
    let from = plain
        .nodes()
        .first()
        .map(|&n| snap.nodes[n].name.as_str())
        .unwrap_or("-");
    if let Some(r) = pick.overflowed {
        return Some(format!(
            "capacity: moved to the next region: {} is at capacity and sends this client on \
             (static weights would answer {from})",
            svc.regions[r].name
        ));
    }
    if plain.nodes() != pick.nodes() {
        return Some(format!(
            "capacity: moved from {from} by the weights the controller set (load and headroom)"
        ));
    }
    Some("capacity: not moved (static weights give the same node)".into())
}

/// How much of the address space a map change moves: IPv4 /24s and IPv6 /48s whose first
/// region or first node changes, by old → new region.
pub fn diff(old: &Snapshot, new: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for (si, svc) in new.services.iter().enumerate() {
        let name = svc.names.first().cloned().unwrap_or_default();
        let Some(old_svc) = old
            .services
            .iter()
            .find(|o| o.names == svc.names)
            .or_else(|| old.services.get(si))
        else {
            out.push(format!("{name}: new service"));
            continue;
        };
        let first = |snap: &Snapshot, s: &Service, addr: IpAddr| -> (String, String) {
            match s.route(addr) {
                Some((d, _)) => {
                    let region = d
                        .chain
                        .first()
                        .map(|&r| s.regions[r].name.clone())
                        .unwrap_or_default();
                    let p = s.pick(
                        d,
                        addr.is_ipv6(),
                        client_key(addr),
                        &snap.nodes,
                        &snap.health,
                    );
                    let node = p
                        .nodes()
                        .first()
                        .map(|&n| snap.nodes[n].name.clone())
                        .unwrap_or_else(|| "-".into());
                    (region, node)
                }
                None => ("-".into(), "-".into()),
            }
        };
        for (fam, bits, unit) in [(0, 32u8, 24u8), (1, 128, 48)] {
            // Every boundary of either table, then one sample per /unit between boundaries.
            let mut starts: Vec<u128> = if fam == 0 {
                svc.v4
                    .starts()
                    .chain(old_svc.v4.starts())
                    .map(|s| s as u128)
                    .collect()
            } else {
                svc.v6.starts().chain(old_svc.v6.starts()).collect()
            };
            starts.sort_unstable();
            starts.dedup();
            let mut moved: BTreeMap<(String, String), u128> = BTreeMap::new();
            let mut nodes_moved: u128 = 0;
            let shift = bits - unit;
            for (i, &s) in starts.iter().enumerate() {
                let e = starts
                    .get(i + 1)
                    .map(|n| n - 1)
                    .unwrap_or(ranges::max_addr(bits));
                let units = (e >> shift) - (s >> shift) + 1;
                let addr = if fam == 0 {
                    IpAddr::from(std::net::Ipv4Addr::from(s as u32))
                } else {
                    IpAddr::from(std::net::Ipv6Addr::from(s))
                };
                let (or, on) = first(old, old_svc, addr);
                let (nr, nn) = first(new, svc, addr);
                if or != nr {
                    *moved.entry((or, nr)).or_default() += units;
                }
                if on != nn {
                    nodes_moved += units;
                }
            }
            let total: u128 = 1u128 << unit;
            let family = if fam == 0 { "IPv4 /24s" } else { "IPv6 /48s" };
            let sum: u128 = moved.values().sum();
            out.push(format!("{name}: {family} changing region: {sum} ({:.4} %); changing node: {nodes_moved} ({:.4} %)", pct(sum, total), pct(nodes_moved, total)));
            for ((o, n), c) in moved {
                out.push(format!("  {o} -> {n}: {c} ({:.4} %)", pct(c, total)));
            }
        }
    }
    out
}

fn pct(part: u128, total: u128) -> f64 {
    part as f64 * 100.0 / total as f64
}
