//! The reload guard: decides whether a new snapshot takes away more than an operator would do
//! on purpose. A reload whose snapshot no longer serves a zone or a service name that the
//! serving snapshot serves, or whose GeoIP or BGP file data shrink by more than the configured
//! share, or whose maps' prefix files (`prefix_file`, each file and family on its own) do, is
//! *held* by the reload thread: the old snapshot keeps serving until the operator confirms
//! (`signpost ctl reload --confirm`).
//!
//! Everything here is pure: [`Inventory::of`] counts what a snapshot serves, and [`compare`]
//! lists what shrank between two inventories. Live BGP feeds are not counted: a session that
//! drops is routing, handled by the feeds' stale timers, and never waits for an operator.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::ReloadGuard;
use crate::snapshot::Snapshot;

/// One measured quantity of the client data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Measure {
    /// IPv4 prefixes of the BGP tables (all files together).
    BgpV4,
    /// IPv6 prefixes of the BGP tables.
    BgpV6,
    /// IPv4 ranges of the GeoIP databases (all files together).
    GeoV4,
    /// IPv6 ranges of the GeoIP databases.
    GeoV6,
}

impl Measure {
    /// Every measure, in report order.
    pub const ALL: [Measure; 4] = [
        Measure::BgpV4,
        Measure::BgpV6,
        Measure::GeoV4,
        Measure::GeoV6,
    ];

    /// The name used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Measure::BgpV4 => "BGP table IPv4 prefixes",
            Measure::BgpV6 => "BGP table IPv6 prefixes",
            Measure::GeoV4 => "GeoIP IPv4 ranges",
            Measure::GeoV6 => "GeoIP IPv6 ranges",
        }
    }
}

/// What a snapshot serves, as far as the guard cares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Zone apexes, lowercase, without the final dot.
    pub zones: BTreeSet<String>,
    /// Service names answered from the maps, lowercase, without the final dot.
    pub names: BTreeSet<String>,
    /// The count of each measure, in [`Measure::ALL`] order.
    pub counts: [u64; 4],
    /// The prefixes of each prefix file the maps' rules read, per family (IPv4, IPv6).
    pub prefix_files: BTreeMap<String, [u64; 2]>,
}

/// Lowercase, without the final dot: the form names are compared in.
fn normal(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Inventory {
    /// The inventory of `snap`: its zones, its service names, and the size of the GeoIP and
    /// BGP file data it was built from.
    pub fn of(snap: &Snapshot) -> Inventory {
        let mut counts = [0u64; 4];
        for t in snap.client.bgp() {
            counts[0] += t.v4.len() as u64;
            counts[1] += t.v6.len() as u64;
        }
        for db in snap.client.geo() {
            counts[2] += db.layer.spans.v4.len() as u64;
            counts[3] += db.layer.spans.v6.len() as u64;
        }
        let mut prefix_files = BTreeMap::new();
        for f in snap
            .services
            .iter()
            .flat_map(|s| &s.rules)
            .filter_map(|r| r.prefix_file.as_ref())
        {
            let counts: &mut [u64; 2] = prefix_files.entry(f.file.clone()).or_default();
            counts[0] += f.counts[0];
            counts[1] += f.counts[1];
        }
        Inventory {
            zones: snap.zones.iter().map(|z| normal(&z.apex_text)).collect(),
            names: snap
                .services
                .iter()
                .flat_map(|s| s.names.iter().map(|n| normal(n)))
                .collect(),
            counts,
            prefix_files,
        }
    }

    /// The count of `m`.
    pub fn count(&self, m: Measure) -> u64 {
        self.counts[m as usize]
    }
}

/// One thing a reload would take away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shrink {
    /// A zone would no longer be served.
    Zone(String),
    /// A service name would no longer be answered from the maps.
    Name(String),
    /// A measure would shrink by more than the share allowed.
    Data {
        /// What shrank.
        measure: Measure,
        /// Serving now.
        before: u64,
        /// In the new snapshot.
        after: u64,
        /// The share allowed, in per cent.
        allowed: u8,
    },
    /// The prefixes of one family in a map's prefix file would shrink by more than the share
    /// allowed.
    PrefixFile {
        /// The file.
        file: String,
        /// IPv6 (else IPv4).
        v6: bool,
        /// Serving now.
        before: u64,
        /// In the new snapshot.
        after: u64,
        /// The share allowed, in per cent.
        allowed: u8,
    },
}

/// `what: before -> after (-x %, more than the n % allowed)`.
fn shrank(
    f: &mut std::fmt::Formatter<'_>,
    what: std::fmt::Arguments<'_>,
    before: u64,
    after: u64,
    allowed: u8,
) -> std::fmt::Result {
    let percent = (before - after) as f64 * 100.0 / before as f64;
    write!(
        f,
        "{what}: {} -> {} (-{percent:.1} %, more than the {allowed} % allowed)",
        thousands(before),
        thousands(after),
    )
}

/// Whether going from `before` to `after` loses more than `allowed` per cent of `before`.
fn too_much(before: u64, after: u64, allowed: u8) -> bool {
    // Integer arithmetic: (before - after) / before > allowed / 100.
    let lost = before.saturating_sub(after) as u128;
    lost * 100 > u128::from(allowed) * before as u128
}

/// `12345` as `12,345`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl std::fmt::Display for Shrink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shrink::Zone(z) => write!(f, "zone {z} would no longer be served"),
            Shrink::Name(n) => write!(
                f,
                "service name {n} would no longer be answered from the maps"
            ),
            Shrink::Data {
                measure,
                before,
                after,
                allowed,
            } => shrank(
                f,
                format_args!("{}", measure.as_str()),
                *before,
                *after,
                *allowed,
            ),
            Shrink::PrefixFile {
                file,
                v6,
                before,
                after,
                allowed,
            } => shrank(
                f,
                format_args!("prefix file {file} IPv{} prefixes", if *v6 { 6 } else { 4 }),
                *before,
                *after,
                *allowed,
            ),
        }
    }
}

/// What `new` takes away from `old` beyond what `guard` allows: every zone and service name
/// gone, then every measure that shrinks by more than `max_shrink_percent` of its count in
/// `old`, then every family of a prefix file read by both that does. A prefix file that no
/// rule reads any more is a change of the maps, not a shrink. Empty when the guard is off or
/// nothing shrank too much.
pub fn compare(old: &Inventory, new: &Inventory, guard: &ReloadGuard) -> Vec<Shrink> {
    if !guard.enabled {
        return Vec::new();
    }
    let mut out: Vec<Shrink> = old
        .zones
        .difference(&new.zones)
        .map(|z| Shrink::Zone(z.clone()))
        .collect();
    out.extend(
        old.names
            .difference(&new.names)
            .map(|n| Shrink::Name(n.clone())),
    );
    for m in Measure::ALL {
        let (before, after) = (old.count(m), new.count(m));
        if too_much(before, after, guard.max_shrink_percent) {
            out.push(Shrink::Data {
                measure: m,
                before,
                after,
                allowed: guard.max_shrink_percent,
            });
        }
    }
    for (file, was) in &old.prefix_files {
        let Some(now) = new.prefix_files.get(file) else {
            continue;
        };
        for (fam, (&before, &after)) in was.iter().zip(now).enumerate() {
            if too_much(before, after, guard.max_shrink_percent) {
                out.push(Shrink::PrefixFile {
                    file: file.clone(),
                    v6: fam == 1,
                    before,
                    after,
                    allowed: guard.max_shrink_percent,
                });
            }
        }
    }
    out
}

/// The lines `status` and the log show for a held reload: what shrank, then how to accept it.
pub fn report(shrinks: &[Shrink]) -> Vec<String> {
    let mut lines: Vec<String> = shrinks
        .iter()
        .map(|s| format!("reload held: {s}"))
        .collect();
    lines.push(
        "the previous data keeps serving; to accept the new data run `signpost ctl reload \
         --confirm` (reload_guard in signpost.yaml)"
            .into(),
    );
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    const ON: ReloadGuard = ReloadGuard {
        enabled: true,
        max_shrink_percent: 10,
    };

    fn inv(zones: &[&str], names: &[&str], counts: [u64; 4]) -> Inventory {
        Inventory {
            zones: zones.iter().map(|z| z.to_string()).collect(),
            names: names.iter().map(|n| n.to_string()).collect(),
            counts,
            prefix_files: BTreeMap::new(),
        }
    }

    #[test]
    fn nothing_lost_nothing_held() {
        let a = inv(&["example.test"], &["dl.example.test"], [7000, 100, 50, 50]);
        assert!(compare(&a, &a, &ON).is_empty());
        // Growth and new names are never held.
        let b = inv(
            &["example.test", "example.org"],
            &["dl.example.test", "cdn.example.org"],
            [9000, 200, 60, 60],
        );
        assert!(compare(&a, &b, &ON).is_empty());
    }

    #[test]
    fn a_name_or_zone_gone_is_held() {
        let a = inv(
            &["example.test", "example.org"],
            &["dl.example.test", "cdn.example.org"],
            [1, 1, 1, 1],
        );
        let b = inv(&["example.test"], &["dl.example.test"], [1, 1, 1, 1]);
        assert_eq!(
            compare(&a, &b, &ON),
            vec![
                Shrink::Zone("example.org".into()),
                Shrink::Name("cdn.example.org".into())
            ]
        );
        // Every name gone is listed, zones kept or not.
        let c = inv(&["example.test", "example.org"], &[], [1, 1, 1, 1]);
        assert_eq!(
            compare(&a, &c, &ON),
            vec![
                Shrink::Name("cdn.example.org".into()),
                Shrink::Name("dl.example.test".into())
            ]
        );
    }

    #[test]
    fn shrinking_past_the_share_is_held() {
        let a = inv(&[], &[], [7115, 3411, 1000, 0]);
        // Exactly 10 % is allowed; one more is not.
        assert!(compare(&a, &inv(&[], &[], [7115, 3411, 900, 0]), &ON).is_empty());
        let held = compare(&a, &inv(&[], &[], [7115, 3411, 899, 0]), &ON);
        assert_eq!(
            held,
            vec![Shrink::Data {
                measure: Measure::GeoV4,
                before: 1000,
                after: 899,
                allowed: 10
            }]
        );
        // The case: a table cut to 3,000 prefixes, IPv6 gone.
        let held = compare(&a, &inv(&[], &[], [3000, 0, 1000, 0]), &ON);
        assert_eq!(held.len(), 2);
        assert_eq!(
            held[0].to_string(),
            "BGP table IPv4 prefixes: 7,115 -> 3,000 (-57.8 %, more than the 10 % allowed)"
        );
        assert_eq!(
            held[1].to_string(),
            "BGP table IPv6 prefixes: 3,411 -> 0 (-100.0 %, more than the 10 % allowed)"
        );
        // A measure that was empty cannot shrink.
        assert!(compare(&inv(&[], &[], [0; 4]), &inv(&[], &[], [0; 4]), &ON).is_empty());
    }

    #[test]
    fn the_share_and_the_switch_are_honoured() {
        let a = inv(
            &["example.test"],
            &["dl.example.test"],
            [100, 100, 100, 100],
        );
        let b = inv(&[], &[], [50, 50, 50, 50]);
        let half = ReloadGuard {
            enabled: true,
            max_shrink_percent: 50,
        };
        assert_eq!(compare(&a, &b, &half).len(), 2, "only the names");
        let all = ReloadGuard {
            enabled: true,
            max_shrink_percent: 100,
        };
        assert_eq!(compare(&a, &inv(&[], &[], [0; 4]), &all).len(), 2);
        let strict = ReloadGuard {
            enabled: true,
            max_shrink_percent: 0,
        };
        assert_eq!(
            compare(
                &a,
                &inv(&["example.test"], &["dl.example.test"], [99, 100, 100, 100]),
                &strict
            )
            .len(),
            1
        );
        let off = ReloadGuard {
            enabled: false,
            max_shrink_percent: 10,
        };
        assert!(compare(&a, &inv(&[], &[], [0; 4]), &off).is_empty());
    }

    #[test]
    fn a_prefix_file_cut_is_held_per_file_and_family() {
        let with = |files: &[(&str, [u64; 2])]| Inventory {
            prefix_files: files.iter().map(|(f, c)| (f.to_string(), *c)).collect(),
            ..Inventory::default()
        };
        let a = with(&[("maps/lab.txt", [1000, 40]), ("maps/big.txt", [90_000, 0])]);
        // Another file's size does not hide a cut one.
        let b = with(&[("maps/lab.txt", [3, 40]), ("maps/big.txt", [90_000, 0])]);
        let held = compare(&a, &b, &ON);
        assert_eq!(
            held,
            vec![Shrink::PrefixFile {
                file: "maps/lab.txt".into(),
                v6: false,
                before: 1000,
                after: 3,
                allowed: 10
            }]
        );
        assert_eq!(
            held[0].to_string(),
            "prefix file maps/lab.txt IPv4 prefixes: 1,000 -> 3 (-99.7 %, more than the 10 % allowed)"
        );
        // A family gone is held on its own.
        let c = with(&[("maps/lab.txt", [1000, 0]), ("maps/big.txt", [90_000, 0])]);
        assert_eq!(compare(&a, &c, &ON).len(), 1);
        // Within the share, growth, or a file no rule reads any more: published.
        let d = with(&[("maps/lab.txt", [900, 40]), ("maps/other.txt", [1, 0])]);
        assert!(compare(&a, &d, &ON).is_empty());
        let off = ReloadGuard {
            enabled: false,
            max_shrink_percent: 10,
        };
        assert!(compare(&a, &b, &off).is_empty());
    }

    #[test]
    fn the_report_says_how_to_confirm() {
        let lines = report(&[Shrink::Name("dl.example.test".into())]);
        assert_eq!(
            lines[0],
            "reload held: service name dl.example.test would no longer be answered from the maps"
        );
        assert!(
            lines[1].contains("signpost ctl reload --confirm"),
            "{lines:?}"
        );
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn the_inventory_of_a_snapshot() {
        let inv = Inventory::of(&Snapshot::empty());
        assert_eq!(inv, Inventory::default());
    }
}
