//! GeoIP databases (MaxMind DB format): opening, layout detection, per-address lookup and
//! walking every network for compilation.
//!
//! Three layouts are understood: GeoIP2/GeoLite2 City and Country (`continent.code`,
//! `country.iso_code`, `subdivisions[0].iso_code`, `location.latitude/longitude`),
//! GeoLite2-ASN (`autonomous_system_number`), and the flat layout of DB-IP Lite and
//! ip-location-db (`country_code`, `latitude`, `longitude`). The continent is derived from the
//! country when the database has none. This module is only used off the query path.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use maxminddb::{Reader, WithinOptions};
use serde::Deserialize;

use crate::ranges::{self, Range};

/// How a database stores its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// GeoIP2 / GeoLite2 City or Country.
    GeoIp2,
    /// GeoLite2-ASN.
    Asn,
    /// `country_code` at the top level.
    Flat,
}

/// Why a database cannot be opened, walked or looked up in.
#[derive(Debug)]
pub enum GeoError {
    /// The file is empty.
    Empty,
    /// The bytes are not a MaxMind DB (no readable metadata).
    NotMaxMind(maxminddb::MaxMindDbError),
    /// The `format` is not `auto`, `geoip2`, `asn` or `flat`.
    UnknownFormat(String),
    /// The reader failed on the search tree or a record.
    Read(maxminddb::MaxMindDbError),
    /// Walking the whole database found no network with usable data.
    NoData,
    /// Walking the database while opening it failed (the cause is inside).
    Corrupt(Box<GeoError>),
}

impl std::fmt::Display for GeoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GeoError::Empty => f.write_str("empty file"),
            GeoError::NotMaxMind(e) => write!(f, "not a MaxMind DB: {e}"),
            GeoError::UnknownFormat(other) => write!(
                f,
                "unknown GeoIP format {other:?}; expected auto, geoip2, asn or flat"
            ),
            GeoError::Read(e) => write!(f, "{e}"),
            GeoError::NoData => f.write_str("the database maps no network to usable data"),
            GeoError::Corrupt(e) => write!(f, "corrupt MaxMind DB: {e}"),
        }
    }
}

impl std::error::Error for GeoError {}

/// What a database says about an address.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GeoInfo {
    /// Two-letter continent code.
    pub continent: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    /// ISO 3166-2 subdivision code, with the country: `US-CA`.
    pub subdivision: Option<String>,
    /// Latitude and longitude.
    pub location: Option<(f64, f64)>,
    /// Autonomous system number.
    pub asn: Option<u32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CodeOrText<'a> {
    Text(&'a str),
    Code {
        #[serde(default)]
        code: Option<&'a str>,
    },
}

#[derive(Deserialize)]
struct IsoCode<'a> {
    #[serde(default, borrow)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Location {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(default, borrow)]
    continent: Option<CodeOrText<'a>>,
    #[serde(default, borrow)]
    country: Option<IsoCode<'a>>,
    #[serde(default, borrow)]
    registered_country: Option<IsoCode<'a>>,
    #[serde(default, borrow)]
    subdivisions: Option<Vec<IsoCode<'a>>>,
    #[serde(default)]
    location: Option<Location>,
    #[serde(default, borrow)]
    country_code: Option<&'a str>,
    #[serde(default, borrow)]
    continent_code: Option<&'a str>,
    #[serde(default)]
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
    #[serde(default)]
    autonomous_system_number: Option<u32>,
}

impl Record<'_> {
    /// The record's own location fields decide: its country (where the user is believed
    /// to be), else its continent. The registered country (where the network is registered)
    /// is used only when the record has no location at all (no country, no continent, no
    /// coordinates): a network located in Europe but registered to a US company stays in
    /// Europe.
    fn info(&self) -> GeoInfo {
        let two = |c: &str| c.len() == 2;
        let own_country = self
            .country
            .as_ref()
            .and_then(|c| c.iso_code)
            .or(self.country_code)
            .filter(|c| two(c))
            .map(|c| c.to_ascii_uppercase());
        let own_continent = match &self.continent {
            Some(CodeOrText::Text(t)) => Some(*t),
            Some(CodeOrText::Code { code }) => *code,
            None => self.continent_code,
        }
        .filter(|c| two(c))
        .map(|c| c.to_ascii_uppercase());
        let location = match (&self.location, self.latitude, self.longitude) {
            (
                Some(Location {
                    latitude: Some(a),
                    longitude: Some(o),
                }),
                _,
                _,
            ) => Some((*a, *o)),
            (_, Some(a), Some(o)) => Some((a, o)),
            _ => None,
        };
        let located = own_country.is_some() || own_continent.is_some() || location.is_some();
        let country = if located {
            own_country.clone()
        } else {
            self.registered_country
                .as_ref()
                .and_then(|c| c.iso_code)
                .filter(|c| two(c))
                .map(|c| c.to_ascii_uppercase())
        };
        let continent = own_continent.or_else(|| {
            country
                .as_deref()
                .and_then(continent_of)
                .map(str::to_string)
        });
        // A subdivision belongs to the record's own country only.
        let subdivision = match (
            &own_country,
            self.subdivisions
                .as_ref()
                .and_then(|s| s.first())
                .and_then(|s| s.iso_code),
        ) {
            (Some(c), Some(s)) => Some(format!("{c}-{}", s.to_ascii_uppercase())),
            _ => None,
        };
        GeoInfo {
            continent,
            country,
            subdivision,
            location,
            asn: self.autonomous_system_number,
        }
    }
}

/// An open GeoIP database.
pub struct GeoDb {
    /// Where it came from, for messages.
    pub name: String,
    /// Its layout.
    pub layout: Layout,
    /// `database_type` and build time from the metadata.
    pub version: String,
    /// The build time from the metadata (Unix seconds).
    pub build_epoch: u64,
    reader: Reader<Vec<u8>>,
    /// The whole database flattened, built when it is opened.
    pub layer: Arc<GeoLayer>,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GeoDb({}, {:?})", self.name, self.layout)
    }
}

impl GeoDb {
    /// Opens a database from its bytes, checking its search tree and data section so that a
    /// corrupt file is refused here and never reaches the query path. `format` is `auto`,
    /// `geoip2`, `asn` or `flat`.
    pub fn open(name: &str, bytes: Vec<u8>, format: &str) -> Result<GeoDb, GeoError> {
        if bytes.is_empty() {
            return Err(GeoError::Empty);
        }
        let reader = Reader::from_source(bytes).map_err(GeoError::NotMaxMind)?;
        let db_type = reader.metadata().database_type.clone();
        let layout = match format {
            "geoip2" => Layout::GeoIp2,
            "asn" => Layout::Asn,
            "flat" => Layout::Flat,
            "auto" => {
                let t = db_type.to_ascii_lowercase();
                if t.contains("asn") && !t.contains("country") && !t.contains("city") {
                    Layout::Asn
                } else if t.starts_with("geoip2")
                    || t.starts_with("geolite2")
                    || t.contains("geoip2")
                {
                    Layout::GeoIp2
                } else {
                    Layout::Flat
                }
            }
            other => return Err(GeoError::UnknownFormat(other.to_string())),
        };
        let version = format!("{} built {}", db_type, reader.metadata().build_epoch);
        let mut db = GeoDb {
            name: name.to_string(),
            layout,
            version,
            build_epoch: reader.metadata().build_epoch,
            reader,
            layer: Arc::new(GeoLayer::default()),
        };
        let t = std::time::Instant::now();
        db.layer = Arc::new(db.flatten().map_err(|e| GeoError::Corrupt(Box::new(e)))?);
        tracing::debug!(
            file = name,
            ms = t.elapsed().as_millis() as u64,
            v4 = db.layer.v4.len(),
            v6 = db.layer.v6.len(),
            "GeoIP database walked"
        );
        Ok(db)
    }

    /// Looks `addr` up: its info and the prefix length of the network it came from.
    pub fn lookup(&self, addr: IpAddr) -> Result<Option<(GeoInfo, u8)>, GeoError> {
        let r = self.reader.lookup(addr).map_err(GeoError::Read)?;
        let len = r.network().map_err(GeoError::Read)?.prefix();
        match r.decode::<Record>() {
            Ok(Some(rec)) => Ok(Some((rec.info(), len))),
            Ok(None) => Ok(None),
            Err(e) => Err(GeoError::Read(e)),
        }
    }

    /// Walks every network of one family that has data: `intern` is called once per distinct
    /// record (decoded once per data offset) and returns its id; `f` gets every network with
    /// that id. IPv4 networks come from the IPv4 subtree; in IPv6, the IPv4-compatible range
    /// (`::/96`) and the aliases of the IPv4 subtree are skipped.
    fn walk_ids(
        &self,
        v6: bool,
        mut intern: impl FnMut(GeoInfo) -> u32,
        mut f: impl FnMut(u128, u8, u32),
    ) -> Result<(), GeoError> {
        if v6 && self.reader.metadata().ip_version != 6 {
            return Ok(());
        }
        let cidr = if v6 { "::/0" } else { "0.0.0.0/0" };
        let mut ids: HashMap<usize, u32> = HashMap::new();
        let iter = self
            .reader
            .within(cidr.parse().expect("valid CIDR"), WithinOptions::default())
            .map_err(GeoError::Read)?;
        for item in iter {
            let item = item.map_err(GeoError::Read)?;
            let net = item.network().map_err(GeoError::Read)?;
            let (start, len) = match net.ip() {
                IpAddr::V4(a) if !v6 => (u32::from(a) as u128, net.prefix()),
                IpAddr::V6(a) if v6 => {
                    let s = u128::from(a);
                    // ::/96 mirrors the IPv4 subtree.
                    if s >> 32 == 0 && net.prefix() >= 96 {
                        continue;
                    }
                    (s, net.prefix())
                }
                _ => continue,
            };
            let Some(offset) = item.offset() else {
                continue;
            };
            let id = match ids.get(&offset) {
                Some(&id) => id,
                None => {
                    let id = match item.decode::<Record>() {
                        Ok(Some(r)) => intern(r.info()),
                        Ok(None) => u32::MAX,
                        Err(e) => return Err(GeoError::Read(e)),
                    };
                    ids.insert(offset, id);
                    id
                }
            };
            if id != u32::MAX {
                f(start, len, id);
            }
        }
        Ok(())
    }

    /// Every network of the database as merged ranges, for compilation: for location
    /// databases the value indexes `GeoLayer::keys`; for ASN databases it is the ASN. Walking
    /// the whole tree and decoding every record also proves the file is sound.
    pub fn flatten(&self) -> Result<GeoLayer, GeoError> {
        let mut layer = GeoLayer::default();
        let mut key_ids: HashMap<GeoKey, u32> = HashMap::new();
        let asn = self.layout == Layout::Asn;
        for v6 in [false, true] {
            let bits = if v6 { 128 } else { 32 };
            let mut out: Vec<Range> = Vec::new();
            let keys = &mut layer.keys;
            self.walk_ids(
                v6,
                |info| {
                    if asn {
                        return info.asn.unwrap_or(u32::MAX);
                    }
                    let key = (info.continent, info.country, info.subdivision);
                    // A record with no location does not know the address: a later
                    // database (or the default rule) decides for it.
                    if key == (None, None, None) {
                        return u32::MAX;
                    }
                    *key_ids.entry(key.clone()).or_insert_with(|| {
                        keys.push(key);
                        (keys.len() - 1) as u32
                    })
                },
                |start, len, id| {
                    ranges::push_merged(&mut out, start, ranges::block_end(start, len, bits), id)
                },
            )?;
            if v6 {
                layer.v6 = out;
            } else {
                layer.v4 = out;
            }
        }
        if layer.v4.is_empty() && layer.v6.is_empty() {
            return Err(GeoError::NoData);
        }
        Ok(layer)
    }

    /// Every network that has a location, as merged ranges per family (IPv4, IPv6) whose
    /// value indexes the returned `(latitude, longitude)` list (equal coordinates share an
    /// id). Computed on demand, only for maps that rank by distance, and not kept.
    #[allow(clippy::type_complexity)]
    pub fn location_ranges(&self) -> Result<(Vec<(f64, f64)>, [Vec<Range>; 2]), GeoError> {
        let mut points: Vec<(f64, f64)> = Vec::new();
        let mut ids: HashMap<(u64, u64), u32> = HashMap::new();
        let mut out: [Vec<Range>; 2] = [Vec::new(), Vec::new()];
        for (fam, v6) in [(0usize, false), (1, true)] {
            let bits = if v6 { 128 } else { 32 };
            let list = &mut out[fam];
            self.walk_ids(
                v6,
                |info| match info.location {
                    Some((lat, lon)) => {
                        *ids.entry((lat.to_bits(), lon.to_bits()))
                            .or_insert_with(|| {
                                points.push((lat, lon));
                                (points.len() - 1) as u32
                            })
                    }
                    None => u32::MAX,
                },
                |start, len, id| {
                    ranges::push_merged(list, start, ranges::block_end(start, len, bits), id)
                },
            )?;
        }
        Ok((points, out))
    }
}

/// (continent, country, subdivision).
pub type GeoKey = (Option<String>, Option<String>, Option<String>);

/// A database flattened for compilation: sorted, non-overlapping, merged ranges per family.
#[derive(Debug, Default)]
pub struct GeoLayer {
    /// Location keys (empty for ASN databases).
    pub keys: Vec<GeoKey>,
    /// IPv4 ranges.
    pub v4: Vec<Range>,
    /// IPv6 ranges.
    pub v6: Vec<Range>,
}

impl GeoLayer {
    /// Several location databases as one layer, the first database that knows an address
    /// winning (configuration order): a later database fills only what the earlier ones lack.
    /// One database is returned as it is; none gives an empty layer.
    pub fn merged(layers: &[Arc<GeoLayer>]) -> Arc<GeoLayer> {
        match layers {
            [] => Arc::new(GeoLayer::default()),
            [one] => one.clone(),
            _ => {
                let mut out = GeoLayer::default();
                let mut key_ids: HashMap<GeoKey, u32> = HashMap::new();
                // Each database's key ids, renumbered into the merged key list.
                let renumber: Vec<Vec<u32>> = layers
                    .iter()
                    .map(|l| {
                        l.keys
                            .iter()
                            .map(|k| {
                                *key_ids.entry(k.clone()).or_insert_with(|| {
                                    out.keys.push(k.clone());
                                    (out.keys.len() - 1) as u32
                                })
                            })
                            .collect()
                    })
                    .collect();
                for v6 in [false, true] {
                    let bits = if v6 { 128 } else { 32 };
                    let family: Vec<Vec<Range>> = layers
                        .iter()
                        .zip(&renumber)
                        .map(|(l, ids)| {
                            let list = if v6 { &l.v6 } else { &l.v4 };
                            list.iter()
                                .map(|&(s, e, k)| (s, e, ids[k as usize]))
                                .collect()
                        })
                        .collect();
                    let mut merged = ranges::overlay(&family, bits, |v| {
                        v.iter().flatten().next().copied().unwrap_or(u32::MAX)
                    });
                    merged.retain(|r| r.2 != u32::MAX);
                    if v6 {
                        out.v6 = merged;
                    } else {
                        out.v4 = merged;
                    }
                }
                Arc::new(out)
            }
        }
    }
}

/// The continent of a country (ISO 3166-1 alpha-2), per the continent codes MaxMind uses.
pub fn continent_of(country: &str) -> Option<&'static str> {
    const AF: &str = "AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW KE KM LR LS LY MA MG ML MR MU MW MZ NA NE NG RE RW SC SD SH SL SN SO SS ST SZ TD TG TN TZ UG YT ZA ZM ZW";
    const AN: &str = "AQ BV GS HM TF";
    const AS: &str = "AE AF AM AZ BD BH BN BT CC CN CX GE HK ID IL IN IO IQ IR JO JP KG KH KP KR KW KZ LA LB LK MM MN MO MV MY NP OM PH PK PS QA SA SG SY TH TJ TL TM TR TW UZ VN YE";
    const EU: &str = "AD AL AT AX BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS IT JE LI LT LU LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM UA VA XK";
    const NA: &str = "AG AI AW BB BL BM BQ BS BZ CA CR CU CW DM DO GD GL GP GT HN HT JM KN KY LC MF MQ MS MX NI PA PM PR SV SX TC TT US VC VG VI";
    const OC: &str =
        "AS AU CK FJ FM GU KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TO TV UM VU WF WS";
    const SA: &str = "AR BO BR CL CO EC FK GF GY PE PY SR UY VE";
    let c = country.to_ascii_uppercase();
    for (code, list) in [
        ("AF", AF),
        ("AN", AN),
        ("AS", AS),
        ("EU", EU),
        ("NA", NA),
        ("OC", OC),
        ("SA", SA),
    ] {
        if list.split(' ').any(|x| x == c) {
            return Some(code);
        }
    }
    None
}

/// True for a known ISO 3166-1 alpha-2 code (one that has a continent).
pub fn is_country(code: &str) -> bool {
    code.len() == 2 && continent_of(code).is_some()
}

/// The continent codes.
pub const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continents() {
        assert_eq!(continent_of("gb"), Some("EU"));
        assert_eq!(continent_of("AU"), Some("OC"));
        assert_eq!(continent_of("ZZ"), None);
    }
}
