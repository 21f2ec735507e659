//! Everything known about client addresses: the GeoIP databases and BGP tables of one
//! configuration, loaded together, and the combined per-address answer used by
//! `signpost lookup`, explanations and compilation.
//!
//! Loading happens off the query path; a bad input is an error naming the file, so that the
//! caller can keep the previous data serving.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use crate::bgp::{BgpTable, TableFormat};
use crate::config::{BgpFormat, DataFile, GeoipFormat};
use crate::geo::{GeoDb, Layout};
use crate::source::Errors;

/// The client data of one configuration.
#[derive(Debug, Default)]
pub struct ClientData {
    /// GeoIP databases, in configuration order (earlier ones win), with the file stamp they
    /// were read at.
    geo: Vec<(Option<Stamp>, Arc<GeoDb>)>,
    /// BGP tables, in configuration order (earlier ones win).
    bgp: Vec<(Option<Stamp>, Arc<BgpTable>)>,
}

/// The declared format of an input file (part of its [`Stamp`]: a file read again under
/// another format is not the same input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Geoip(GeoipFormat),
    Bgp(BgpFormat),
}

/// The layout a declared GeoIP format asks for (`None`: detect it).
fn layout(format: GeoipFormat) -> Option<Layout> {
    match format {
        GeoipFormat::Auto => None,
        GeoipFormat::Geoip2 => Some(Layout::GeoIp2),
        GeoipFormat::Asn => Some(Layout::Asn),
        GeoipFormat::Flat => Some(Layout::Flat),
    }
}

/// The table format a declared BGP format asks for (`None`: detect it).
fn table_format(format: BgpFormat) -> Option<TableFormat> {
    match format {
        BgpFormat::Auto => None,
        BgpFormat::Mrt => Some(TableFormat::Mrt),
        BgpFormat::Pyasn | BgpFormat::Pfx2as => Some(TableFormat::Text),
    }
}

/// What identifies one version of an input file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    source: crate::config::DataSource,
    format: Format,
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

impl Stamp {
    /// The stamp of `source` now; None when it cannot be read (it will be read, and fail).
    fn of(source: &crate::config::DataSource, format: Format) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        match source {
            crate::config::DataSource::File(p) => {
                let m = std::fs::metadata(p).ok()?;
                Some(Stamp {
                    source: source.clone(),
                    format,
                    len: m.len(),
                    modified: m.modified().ok(),
                    inode: m.ino(),
                })
            }
            crate::config::DataSource::Embedded(_) => Some(Stamp {
                source: source.clone(),
                format,
                len: 0,
                modified: None,
                inode: 0,
            }),
        }
    }
}

/// A value with where it came from and the prefix length it holds for.
#[derive(Clone, Debug, PartialEq)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// The input it came from.
    pub source: String,
    /// The length of the network it is valid for.
    pub prefix_len: u8,
}

/// Everything known about one address.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClientInfo {
    /// Continent code.
    pub continent: Option<Sourced<String>>,
    /// Country code.
    pub country: Option<Sourced<String>>,
    /// Subdivision code (`US-CA`).
    pub subdivision: Option<Sourced<String>>,
    /// Latitude, longitude.
    pub location: Option<Sourced<(f64, f64)>>,
    /// Origin ASN.
    pub asn: Option<Sourced<u32>>,
    /// The routed prefix the ASN came from (BGP tables only).
    pub prefix: Option<String>,
    /// Whether the first location database's coordinates were kept (they are when a map
    /// ranks by distance, and for the offline tools); without them `location` is unknown.
    pub locations_kept: bool,
}

impl ClientData {
    /// Loads every input, keeping the coordinates of the location databases; all failures
    /// are reported, each naming its file.
    pub fn load(
        geo: &[DataFile<GeoipFormat>],
        bgp: &[DataFile<BgpFormat>],
    ) -> Result<ClientData, Errors> {
        ClientData::load_reusing(geo, bgp, None, true)
    }

    /// Like [`ClientData::load`], but the coordinates of the location databases are kept only
    /// when `locations` is set (a map ranks by distance, or a tool shows them), and an input
    /// whose file is unchanged since `previous` was loaded (same path, size, modification
    /// time and inode) is reused instead of read again, so that a reload costs only what
    /// changed. A database loaded without coordinates is read again when they are wanted.
    pub fn load_reusing(
        geo: &[DataFile<GeoipFormat>],
        bgp: &[DataFile<BgpFormat>],
        previous: Option<&ClientData>,
        locations: bool,
    ) -> Result<ClientData, Errors> {
        let mut errors = Errors::default();
        let mut data = ClientData::default();
        for f in geo {
            let name = f.source.display();
            let stamp = Stamp::of(&f.source, Format::Geoip(f.format));
            // Only the first location database's coordinates are used (by distance ranking and
            // the lookups): the ones after it keep none.
            let locations = locations && data.geo.iter().all(|(_, d)| d.layout == Layout::Asn);
            if let Some((stamp, old)) =
                previous.and_then(|p| p.geo.iter().find(|(s, _)| stamp.is_some() && *s == stamp))
            {
                let has = old.locations.is_some() || old.layout == Layout::Asn;
                if !locations {
                    data.geo
                        .push((stamp.clone(), Arc::new(old.without_locations())));
                    continue;
                }
                if has {
                    data.geo.push((stamp.clone(), old.clone()));
                    continue;
                }
            }
            match f.source.read().map_err(|e| e.to_string()).and_then(|b| {
                GeoDb::open_with(&name, b, layout(f.format), locations).map_err(|e| e.to_string())
            }) {
                Ok(db) => data.geo.push((stamp, Arc::new(db))),
                Err(e) => errors.file(&name, e),
            }
        }
        for f in bgp {
            let name = f.source.display();
            let stamp = Stamp::of(&f.source, Format::Bgp(f.format));
            if let Some(old) =
                previous.and_then(|p| p.bgp.iter().find(|(s, _)| stamp.is_some() && *s == stamp))
            {
                data.bgp.push(old.clone());
                continue;
            }
            match f.source.read().map_err(|e| e.to_string()).and_then(|b| {
                BgpTable::load(&name, &b, table_format(f.format)).map_err(|e| e.to_string())
            }) {
                Ok(t) => {
                    if t.skipped > 0 {
                        tracing::warn!(file = %name, skipped = t.skipped, first = ?t.problems, "prefix table lines skipped");
                    }
                    data.bgp.push((stamp, Arc::new(t)))
                }
                Err(e) => errors.file(&name, e),
            }
        }
        errors.into_result(data)
    }

    /// The GeoIP databases, in configuration order.
    pub fn geo(&self) -> impl Iterator<Item = &GeoDb> {
        self.geo.iter().map(|(_, d)| &**d)
    }

    /// The BGP tables, in configuration order.
    pub fn bgp(&self) -> impl Iterator<Item = &BgpTable> + Clone {
        self.bgp.iter().map(|(_, t)| &**t)
    }

    /// Looks `addr` up in every input, as compilation sees it: continent, country and
    /// subdivision come together from the first location database that knows the address,
    /// coordinates from the first location database (the one distance ranking uses; only
    /// when its coordinates were kept), the ASN from the first BGP table that covers it, else
    /// the first ASN database. Each item's prefix length is the widest block around `addr`
    /// with the same value in that input.
    pub fn lookup(&self, addr: IpAddr) -> ClientInfo {
        // An IPv4-mapped IPv6 address is the IPv4 address, as in the answer path.
        let addr = addr.to_canonical();
        fn src<T>(value: T, db: &GeoDb, prefix_len: u8) -> Option<Sourced<T>> {
            Some(Sourced {
                value,
                source: db.name.clone(),
                prefix_len,
            })
        }
        // Without any location database there is nothing to keep: the location is unknown.
        let mut out = ClientInfo {
            locations_kept: true,
            ..ClientInfo::default()
        };
        let mut first_location_db = true;
        for db in self.geo() {
            let found = db.lookup(addr);
            if db.layout == Layout::Asn {
                if let (None, Some((asn, len))) = (&out.asn, found.asn) {
                    out.asn = src(asn, db, len);
                }
                continue;
            }
            if std::mem::replace(&mut first_location_db, false) {
                out.locations_kept = db.locations.is_some();
                out.location = found.location.and_then(|(v, len)| src(v, db, len));
            }
            let known = out.continent.is_some() || out.country.is_some();
            if let (false, Some(((continent, country, subdivision), len))) = (known, found.key) {
                out.continent = continent.and_then(|v| src(v, db, len));
                out.country = country.and_then(|v| src(v, db, len));
                out.subdivision = subdivision.and_then(|v| src(v, db, len));
            }
        }
        for t in self.bgp() {
            if let Some((net, asn)) = t.lookup(addr) {
                out.asn = Some(Sourced {
                    value: asn,
                    source: t.name.clone(),
                    prefix_len: net.netmask(),
                });
                out.prefix = Some(net.to_string());
                break;
            }
        }
        out
    }

    /// A one-line description of the inputs, for `status` and `_why`.
    pub fn versions(&self) -> String {
        let mut s = String::new();
        for db in self.geo() {
            let _ = write!(s, "geoip {} ({}); ", short(&db.name), db.version);
        }
        for t in self.bgp() {
            let _ = write!(
                s,
                "bgp {} ({} v4 + {} v6 prefixes); ",
                short(&t.name),
                t.v4.len(),
                t.v6.len()
            );
        }
        s.trim_end_matches("; ").to_string()
    }
}

fn short(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

impl ClientInfo {
    /// Human-readable lines, one per attribute.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        fn line<T: std::fmt::Display>(out: &mut Vec<String>, key: &str, v: &Option<Sourced<T>>) {
            match v {
                Some(s) => out.push(format!(
                    "{key}: {} (from {}, valid for /{})",
                    s.value, s.source, s.prefix_len
                )),
                None => out.push(format!("{key}: unknown")),
            }
        }
        line(&mut out, "continent", &self.continent);
        line(&mut out, "country", &self.country);
        line(&mut out, "subdivision", &self.subdivision);
        match &self.location {
            Some(s) => out.push(format!(
                "location: {:.4},{:.4} (from {}, valid for /{})",
                s.value.0, s.value.1, s.source, s.prefix_len
            )),
            None if !self.locations_kept => out.push(
                "location: not kept (no map ranks by distance; `signpost lookup` shows it)".into(),
            ),
            None => out.push("location: unknown".into()),
        }
        match (&self.asn, &self.prefix) {
            (Some(a), Some(p)) => out.push(format!(
                "asn: AS{} (prefix {p}, from {})",
                a.value, a.source
            )),
            (Some(a), None) => out.push(format!(
                "asn: AS{} (from {}, valid for /{})",
                a.value, a.source, a.prefix_len
            )),
            _ => out.push("asn: unknown".into()),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Coordinates are kept for the first location database only, the one that is used.
    #[test]
    fn only_the_first_location_database_keeps_coordinates() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/geoip/mixed-layouts.mmdb"
        );
        let file = DataFile {
            source: crate::config::DataSource::File(path.into()),
            format: GeoipFormat::Auto,
        };
        let data = ClientData::load_reusing(&[file.clone(), file], &[], None, true).unwrap();
        let kept: Vec<bool> = data.geo().map(|d| d.locations.is_some()).collect();
        assert_eq!(kept, [true, false]);
        // Reused on a reload as they are.
        let again = ClientData::load_reusing(
            &[
                DataFile {
                    source: crate::config::DataSource::File(path.into()),
                    format: GeoipFormat::Auto,
                },
                DataFile {
                    source: crate::config::DataSource::File(path.into()),
                    format: GeoipFormat::Auto,
                },
            ],
            &[],
            Some(&data),
            true,
        )
        .unwrap();
        let kept: Vec<bool> = again.geo().map(|d| d.locations.is_some()).collect();
        assert_eq!(kept, [true, false]);
    }

    #[test]
    fn no_location_database_means_an_unknown_location_not_a_dropped_one() {
        let lines = ClientData::default()
            .lookup("192.0.2.1".parse().unwrap())
            .lines();
        assert!(
            lines.contains(&"location: unknown".to_string()),
            "{lines:?}"
        );
    }
}
