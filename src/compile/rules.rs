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
use crate::snapshot::{PrefixFile, RuleInfo, RuleKind};
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

impl RuleDraft {
    /// What the snapshot keeps of the rule (for explanations).
    pub fn info(&self) -> RuleInfo {
        RuleInfo {
            kind: self.kind,
            location: self.location.clone(),
            prefix_file: self.prefix_file.clone(),
        }
    }
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

/// What a service's rules are read against.
pub(super) struct RuleInputs<'a> {
    /// The map file's document.
    pub d: &'a Document,
    /// The map file.
    pub map: &'a MapText,
    /// The regions rules name.
    pub regions: &'a RegionSet,
    /// The nodes the regions hold.
    pub nodes: &'a NodeSet,
    /// Reads `prefix_file`s.
    pub files: &'a ReadFile<'a>,
}

/// The rules being read: the result so far and the prefixes already claimed.
struct Reader<'a> {
    inputs: &'a RuleInputs<'a>,
    out: Rules,
    /// Each operator prefix and where the rule that claimed it is.
    seen_prefix: HashMap<IpNetwork, String>,
}

/// Decodes the rules of service `s` (at path `p`), reporting every problem.
pub(super) fn rules(inputs: &RuleInputs, p: &str, s: &ServiceSpec, errors: &mut Errors) -> Rules {
    let mut reader = Reader {
        inputs,
        out: Rules {
            drafts: Vec::new(),
            prefixes: [Vec::new(), Vec::new()],
            by_asn: HashMap::new(),
            by_sub: HashMap::new(),
            by_country: HashMap::new(),
            by_cont: HashMap::new(),
            default_rule: None,
        },
        seen_prefix: HashMap::new(),
    };
    for (rp, r) in inputs
        .d
        .decode_each::<RuleSpec>(&format!("{p}.rules"), &s.rules, errors)
    {
        reader.rule(&rp, &r, errors);
    }
    reader.out
}

/// The code lists a rule may select by, besides prefixes and ASNs.
#[derive(Clone, Copy)]
enum Codes {
    Subdivision,
    Country,
    Continent,
}

impl Reader<'_> {
    /// Reads rule `r` (at `rp`).
    fn rule(&mut self, rp: &str, r: &RuleSpec, errors: &mut Errors) {
        let d = self.inputs.d;
        let kinds: Vec<RuleKind> = RuleKind::ALL
            .into_iter()
            .filter(|k| selects_by(r, *k))
            .collect();
        if kinds.len() != 1 {
            errors.0.push(d.error(rp, "a rule needs exactly one of `prefixes`/`prefix_file`, `asns`, `subdivisions`, `countries`, `continents` or `default: true`"));
            return;
        }
        let kind = kinds[0];
        let chain = self.chain(rp, &r.regions, errors);
        let (line, col) = d.position(rp);
        let location = format!("{}:{}:{}", d.file, line, col);
        let mut prefix_file = None;
        match kind {
            RuleKind::Prefix => prefix_file = self.prefixes(rp, r, &location, errors),
            RuleKind::Asn => {
                let idx = self.out.drafts.len() as u32;
                for (i, a) in r.asns.iter().flatten().enumerate() {
                    if let Some(&other) = self.out.by_asn.get(a) {
                        errors.0.push(d.error(&format!("{rp}.asns[{i}]"), format!("AS{a} is already matched by the rule at {}; this entry can never fire", rules_loc(&self.out.drafts, other))));
                    } else {
                        self.out.by_asn.insert(*a, idx);
                    }
                }
            }
            RuleKind::Subdivision => self.codes(
                Codes::Subdivision,
                rp,
                r.subdivisions.iter().flatten(),
                errors,
            ),
            RuleKind::Country => {
                self.codes(Codes::Country, rp, r.countries.iter().flatten(), errors)
            }
            RuleKind::Continent => {
                self.codes(Codes::Continent, rp, r.continents.iter().flatten(), errors)
            }
            RuleKind::Default => {
                if let Some(other) = self.out.default_rule {
                    errors.0.push(d.error(
                        rp,
                        format!(
                            "a default rule already exists at {}",
                            rules_loc(&self.out.drafts, other)
                        ),
                    ));
                }
                self.out.default_rule = Some(self.out.drafts.len() as u32);
            }
        }
        self.out.drafts.push(RuleDraft {
            kind,
            chain,
            location,
            prefix_file,
        });
    }

    /// The rule's chain of regions (indices), each listed once.
    fn chain(&self, rp: &str, names: &[String], errors: &mut Errors) -> Vec<usize> {
        let (d, regions) = (self.inputs.d, self.inputs.regions);
        let mut chain = Vec::new();
        for (i, name) in names.iter().enumerate() {
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
        if names.is_empty() {
            errors
                .0
                .push(d.error(&format!("{rp}.regions"), "a rule needs at least one region"));
        }
        super::rank::ranked_once(
            d,
            rp,
            names,
            &chain,
            &regions.regions,
            &self.inputs.nodes.nodes,
            errors,
        );
        chain
    }

    /// The operator prefixes of a prefix rule (at `location`), written in the map and read
    /// from its `prefix_file`; returns the file and its counts.
    fn prefixes(
        &mut self,
        rp: &str,
        r: &RuleSpec,
        location: &str,
        errors: &mut Errors,
    ) -> Option<PrefixFile> {
        let d = self.inputs.d;
        let idx = self.out.drafts.len() as u32;
        let mut prefix_file = None;
        // Each prefix, where it is written, and whether it comes from the file.
        let mut list: Vec<(String, String, bool)> = r
            .prefixes
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, c)| (c.clone(), format!("{rp}.prefixes[{i}]"), false))
            .collect();
        if let Some(f) = &r.prefix_file {
            match read_prefix_file(self.inputs.files, &self.inputs.map.source, f) {
                Ok((file, lines)) => {
                    prefix_file = Some(PrefixFile {
                        file,
                        counts: [0; 2],
                    });
                    list.extend(
                        lines
                            .into_iter()
                            .map(|(n, c)| (c, format!("{rp}.prefix_file (line {n})"), true)),
                    )
                }
                Err(e) => errors.0.push(d.error(&format!("{rp}.prefix_file"), e)),
            }
        }
        for (c, path, from_file) in list {
            match parse_cidr(&c) {
                Ok(net) => {
                    if let Some(prev) = self.seen_prefix.get(&net) {
                        errors.0.push(d.error(&path, format!("{net} is already matched by the rule at {prev}; this entry can never fire")));
                        continue;
                    }
                    self.seen_prefix.insert(net, location.to_string());
                    let (fam, start) = match net {
                        IpNetwork::V4(n) => (0, u32::from(n.network_address()) as u128),
                        IpNetwork::V6(n) => (1, u128::from(n.network_address())),
                    };
                    self.out.prefixes[fam].push((start, net.netmask(), idx));
                    if let Some(f) = prefix_file.as_mut().filter(|_| from_file) {
                        f.counts[fam] += 1;
                    }
                }
                Err(e) => errors.0.push(d.error(&path, e.to_string())),
            }
        }
        prefix_file
    }

    /// The subdivision, country or continent codes of a rule, each checked and claimed.
    fn codes<'s>(
        &mut self,
        which: Codes,
        rp: &str,
        list: impl Iterator<Item = &'s String>,
        errors: &mut Errors,
    ) {
        let d = self.inputs.d;
        let idx = self.out.drafts.len() as u32;
        for (i, c) in list.enumerate() {
            let c = c.to_ascii_uppercase();
            let (path, refusal) = match which {
                Codes::Subdivision => {
                    let ok = c.split_once('-').is_some_and(|(cc, sub)| {
                        geo::is_country(cc)
                            && (1..=3).contains(&sub.len())
                            && sub.bytes().all(|b| b.is_ascii_alphanumeric())
                    });
                    let why = format!("{} is not an ISO 3166-2 code like \"US-CA\"", quote(&c));
                    (format!("{rp}.subdivisions[{i}]"), (!ok).then_some(why))
                }
                Codes::Country => {
                    let why = format!("{} is not an ISO 3166-1 alpha-2 country code", quote(&c));
                    (
                        format!("{rp}.countries[{i}]"),
                        (!geo::is_country(&c)).then_some(why),
                    )
                }
                Codes::Continent => {
                    let why = format!(
                        "{} is not a continent code; expected one of {}",
                        quote(&c),
                        geo::CONTINENTS.join(" ")
                    );
                    (
                        format!("{rp}.continents[{i}]"),
                        (!geo::CONTINENTS.contains(&c.as_str())).then_some(why),
                    )
                }
            };
            if let Some(why) = refusal {
                errors.0.push(d.error(&path, why));
                continue;
            }
            let map = match which {
                Codes::Subdivision => &mut self.out.by_sub,
                Codes::Country => &mut self.out.by_country,
                Codes::Continent => &mut self.out.by_cont,
            };
            if let Some(&other) = map.get(&c) {
                errors.0.push(d.error(
                    &path,
                    format!(
                        "{c} is already matched by the rule at {}; this entry can never fire",
                        rules_loc(&self.out.drafts, other)
                    ),
                ));
            } else {
                map.insert(c, idx);
            }
        }
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
