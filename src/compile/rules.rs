//! A service's rules: each decoded into its kind (one selector per rule), its chain of regions
//! and where it is, with every duplicate that could never fire reported; the result is the
//! lookup tables the route-table compiler reads (operator prefixes, and rule by ASN,
//! subdivision, country and continent).

use std::collections::HashMap;

use ip_network::IpNetwork;

use super::nodes::{NodeSet, RegionSet};
use super::{MapText, ReadFile, hint};
use crate::config::DataSource;
use crate::geo;
use crate::snapshot::{PrefixFile, Ranking, Region, RuleKind};
use crate::source::{Document, Errors, quote};
use crate::spec::{RuleSpec, ServiceSpec, parse_cidr};

/// A rule as compiled: what it selects by, its regions in order, and where it is written.
pub(super) struct RuleDraft {
    /// What it selects by.
    pub kind: RuleKind,
    /// Region indices, in order of preference.
    pub chain: Vec<usize>,
    /// `file:line:col` of the rule.
    pub location: String,
    /// Its `prefix_file` and the prefixes read from it.
    pub prefix_file: Option<PrefixFile>,
}

/// A service's rules and the selectors they define.
pub(super) struct Rules {
    /// Rules, in file order (a decision's rule index points here).
    pub drafts: Vec<RuleDraft>,
    /// Operator prefixes per family (IPv4, IPv6): (start, length, rule).
    pub prefixes: [Vec<(u128, u8, u32)>; 2],
    /// Rule by origin ASN.
    pub by_asn: HashMap<u32, u32>,
    /// Rule by ISO 3166-2 subdivision.
    pub by_sub: HashMap<String, u32>,
    /// Rule by country.
    pub by_country: HashMap<String, u32>,
    /// Rule by continent.
    pub by_cont: HashMap<String, u32>,
    /// The default rule.
    pub default_rule: Option<u32>,
}

/// Whether `r` has the selector of `kind`.
fn selects_by(r: &RuleSpec, kind: RuleKind) -> bool {
    match kind {
        RuleKind::Prefix => r.prefixes.is_some() || r.prefix_file.is_some(),
        RuleKind::Asn => r.asns.is_some(),
        RuleKind::Subdivision => r.subdivisions.is_some(),
        RuleKind::Country => r.countries.is_some(),
        RuleKind::Continent => r.continents.is_some(),
        RuleKind::Default => r.default,
    }
}

/// Decodes the rules of service `s` (at path `p` of `d`, from `map`), reporting every problem.
#[allow(clippy::too_many_arguments)]
pub(super) fn rules(
    d: &Document,
    map: &MapText,
    p: &str,
    s: &ServiceSpec,
    regions: &RegionSet,
    nodes: &NodeSet,
    files: &ReadFile<'_>,
    errors: &mut Errors,
) -> Rules {
    let mut rules: Vec<RuleDraft> = Vec::new();
    let mut prefix_rules: [Vec<(u128, u8, u32)>; 2] = [Vec::new(), Vec::new()];
    let mut seen_prefix: HashMap<IpNetwork, String> = HashMap::new();
    let mut by_asn: HashMap<u32, u32> = HashMap::new();
    let mut by_sub: HashMap<String, u32> = HashMap::new();
    let mut by_country: HashMap<String, u32> = HashMap::new();
    let mut by_cont: HashMap<String, u32> = HashMap::new();
    let mut default_rule: Option<u32> = None;
    for (rp, r) in d.decode_each::<RuleSpec>(&format!("{p}.rules"), &s.rules, errors) {
        let idx = rules.len() as u32;
        let kinds: Vec<RuleKind> = RuleKind::ALL
            .into_iter()
            .filter(|k| selects_by(&r, *k))
            .collect();
        if kinds.len() != 1 {
            errors.0.push(d.error(&rp, "a rule needs exactly one of `prefixes`/`prefix_file`, `asns`, `subdivisions`, `countries`, `continents` or `default: true`"));
            continue;
        }
        let kind = kinds[0];
        let mut chain = Vec::new();
        for (i, name) in r.regions.iter().enumerate() {
            match regions.index.get(name) {
                Some(&ri) if chain.contains(&ri) => errors.0.push(d.error(
                    &format!("{rp}.regions[{i}]"),
                    format!("region {} is listed twice", quote(name)),
                )),
                Some(&ri) => chain.push(ri),
                None if regions.broken.covers(name) => {}
                None => errors.0.push(d.error(
                    &format!("{rp}.regions[{i}]"),
                    format!(
                        "unknown region {}{}",
                        quote(name),
                        hint(name, regions.index.keys())
                    ),
                )),
            }
        }
        if r.regions.is_empty() {
            errors
                .0
                .push(d.error(&format!("{rp}.regions"), "a rule needs at least one region"));
        }
        ranked_once(d, &rp, &r.regions, &chain, regions, nodes, errors);
        let (line, col) = d.position(&rp);
        let location = format!("{}:{}:{}", d.file, line, col);
        let claim =
            |map: &mut HashMap<String, u32>, key: String, path: String, errors: &mut Errors| {
                if let Some(&other) = map.get(&key) {
                    errors.0.push(d.error(
                        &path,
                        format!(
                            "{key} is already matched by the rule at {}; this entry can never fire",
                            rules_loc(&rules, other)
                        ),
                    ));
                } else {
                    map.insert(key, idx);
                }
            };
        let mut prefix_file = None;
        match kind {
            RuleKind::Prefix => {
                // Each prefix, where it is written, and whether it comes from the file.
                let mut list: Vec<(String, String, bool)> = r
                    .prefixes
                    .iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, c)| (c.clone(), format!("{rp}.prefixes[{i}]"), false))
                    .collect();
                if let Some(f) = &r.prefix_file {
                    match read_prefix_file(files, &map.source, f) {
                        Ok((file, lines)) => {
                            prefix_file = Some(PrefixFile {
                                file,
                                counts: [0; 2],
                            });
                            list.extend(
                                lines.into_iter().map(|(n, c)| {
                                    (c, format!("{rp}.prefix_file (line {n})"), true)
                                }),
                            )
                        }
                        Err(e) => errors.0.push(d.error(&format!("{rp}.prefix_file"), e)),
                    }
                }
                for (c, path, from_file) in list {
                    match parse_cidr(&c) {
                        Ok(net) => {
                            if let Some(prev) = seen_prefix.get(&net) {
                                errors.0.push(d.error(&path, format!("{net} is already matched by the rule at {prev}; this entry can never fire")));
                                continue;
                            }
                            seen_prefix.insert(net, location.clone());
                            let (fam, start) = match net {
                                IpNetwork::V4(n) => (0, u32::from(n.network_address()) as u128),
                                IpNetwork::V6(n) => (1, u128::from(n.network_address())),
                            };
                            prefix_rules[fam].push((start, net.netmask(), idx));
                            if let Some(f) = prefix_file.as_mut().filter(|_| from_file) {
                                f.counts[fam] += 1;
                            }
                        }
                        Err(e) => errors.0.push(d.error(&path, e.to_string())),
                    }
                }
            }
            RuleKind::Asn => {
                for (i, a) in r.asns.iter().flatten().enumerate() {
                    if let Some(&other) = by_asn.get(a) {
                        errors.0.push(d.error(&format!("{rp}.asns[{i}]"), format!("AS{a} is already matched by the rule at {}; this entry can never fire", rules_loc(&rules, other))));
                    } else {
                        by_asn.insert(*a, idx);
                    }
                }
            }
            RuleKind::Subdivision => {
                for (i, c) in r.subdivisions.iter().flatten().enumerate() {
                    let c = c.to_ascii_uppercase();
                    let ok = c.split_once('-').is_some_and(|(cc, sub)| {
                        geo::is_country(cc)
                            && (1..=3).contains(&sub.len())
                            && sub.bytes().all(|b| b.is_ascii_alphanumeric())
                    });
                    if !ok {
                        errors.0.push(d.error(
                            &format!("{rp}.subdivisions[{i}]"),
                            format!("{} is not an ISO 3166-2 code like \"US-CA\"", quote(&c)),
                        ));
                        continue;
                    }
                    claim(&mut by_sub, c, format!("{rp}.subdivisions[{i}]"), errors);
                }
            }
            RuleKind::Country => {
                for (i, c) in r.countries.iter().flatten().enumerate() {
                    let c = c.to_ascii_uppercase();
                    if !geo::is_country(&c) {
                        errors.0.push(d.error(
                            &format!("{rp}.countries[{i}]"),
                            format!("{} is not an ISO 3166-1 alpha-2 country code", quote(&c)),
                        ));
                        continue;
                    }
                    claim(&mut by_country, c, format!("{rp}.countries[{i}]"), errors);
                }
            }
            RuleKind::Continent => {
                for (i, c) in r.continents.iter().flatten().enumerate() {
                    let c = c.to_ascii_uppercase();
                    if !geo::CONTINENTS.contains(&c.as_str()) {
                        errors.0.push(d.error(
                            &format!("{rp}.continents[{i}]"),
                            format!(
                                "{} is not a continent code; expected one of {}",
                                quote(&c),
                                geo::CONTINENTS.join(" ")
                            ),
                        ));
                        continue;
                    }
                    claim(&mut by_cont, c, format!("{rp}.continents[{i}]"), errors);
                }
            }
            RuleKind::Default => {
                if let Some(other) = default_rule {
                    errors.0.push(d.error(
                        &rp,
                        format!(
                            "a default rule already exists at {}",
                            rules_loc(&rules, other)
                        ),
                    ));
                }
                default_rule = Some(idx);
            }
        }
        rules.push(RuleDraft {
            kind,
            chain,
            location,
            prefix_file,
        });
    }
    Rules {
        drafts: rules,
        prefixes: prefix_rules,
        by_asn,
        by_sub,
        by_country,
        by_cont,
        default_rule,
    }
}

/// Where rule `idx` is, for messages.
pub(super) fn rules_loc(rules: &[RuleDraft], idx: u32) -> String {
    rules
        .get(idx as usize)
        .map(|r| r.location.clone())
        .unwrap_or_else(|| "this same rule".into())
}

/// Reads a file of prefixes (one per line, `#` comments) relative to the map file, through the
/// caller's reader: its name in messages, and each prefix with its line number.
fn read_prefix_file(
    files: &ReadFile<'_>,
    map: &DataSource,
    rel: &str,
) -> Result<(String, Vec<(usize, String)>), String> {
    let source = map.sibling(rel);
    let bytes = files(&source).map_err(|e| format!("{}: {e}", source.display()))?;
    let text =
        String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", source.display()))?;
    let lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split('#').next().unwrap_or("").trim().to_string()))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    Ok((source.display(), lines))
}

/// A decision holds one rank per node, so in one chain a node may be ranked by one region
/// only: not by a `proximity` and a `distance` region, nor by two `distance` regions when
/// either keeps only its nearest (`limit`). Reports each conflict at the later region.
fn ranked_once(
    d: &Document,
    rp: &str,
    names: &[String],
    chain: &[usize],
    regions: &RegionSet,
    nodes: &NodeSet,
    errors: &mut Errors,
) {
    let limited = |r: &Region| r.distance().is_some_and(|x| x.limit.is_some());
    for (k, &b) in chain.iter().enumerate() {
        let rb = &regions.regions[b];
        for &a in &chain[..k] {
            let ra = &regions.regions[a];
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
                    quote(&nodes.nodes[n].name),
                    quote(&ra.name),
                    quote(&rb.name),
                ),
            ));
        }
    }
}
