//! GeoIP databases (MaxMind DB format): opening, layout detection, and one walk over every
//! network that flattens the database into what Signpost keeps of it ([`layer`]); lookups for
//! the tools are answered from that, the file itself is dropped after the walk.
//!
//! Three layouts are understood: GeoIP2/GeoLite2 City and Country (`continent.code`,
//! `country.iso_code`, `subdivisions[0].iso_code`, `location.latitude/longitude`),
//! GeoLite2-ASN (`autonomous_system_number`), and the flat layout of DB-IP Lite and
//! ip-location-db (`country_code`, `latitude`, `longitude`). The layout only says which
//! reading to try first: each record is read in whichever layout its fields are in (text in
//! place of a GeoIP2 map, flat fields in a GeoIP2 database; `geo::record`). The continent is
//! derived from the country when the database has none. This module is only used off the
//! query path.

pub mod layer;
mod record;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use maxminddb::{Reader, WithinOptions};

use crate::hash::IntMap;
use crate::ranges;
use layer::SpansBuilder;
pub use layer::{Families, GeoKey, GeoLayer, Locations, Spans, V6Starts};

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
    /// The reader failed on the search tree or a record.
    Read(maxminddb::MaxMindDbError),
    /// Walking the whole database found no network with usable data.
    NoData,
    /// A record lies beyond 4 GiB into the data section.
    TooLarge,
    /// Walking the database while opening it failed (the cause is inside).
    Corrupt(Box<GeoError>),
}

impl std::fmt::Display for GeoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GeoError::Empty => f.write_str("empty file"),
            GeoError::NotMaxMind(e) => write!(f, "not a MaxMind DB: {e}"),
            GeoError::Read(e) => write!(f, "{e}"),
            GeoError::NoData => f.write_str("the database maps no network to usable data"),
            GeoError::TooLarge => f.write_str("a record lies beyond 4 GiB into the data section"),
            GeoError::Corrupt(e) => write!(f, "corrupt MaxMind DB: {e}"),
        }
    }
}

impl std::error::Error for GeoError {}

/// What a database says about an address, each item with the length of the widest block
/// around the address that has the same value (what the item is valid for).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Found {
    /// (continent, country, subdivision) of a location database.
    pub key: Option<(GeoKey, u8)>,
    /// Latitude and longitude, when the database has them and they were kept.
    pub location: Option<((f64, f64), u8)>,
    /// The ASN of an ASN database.
    pub asn: Option<(u32, u8)>,
}

/// An open GeoIP database: what was kept of it after the walk.
pub struct GeoDb {
    /// Where it came from, for messages.
    pub name: String,
    /// Its layout.
    pub layout: Layout,
    /// `database_type` and build time from the metadata.
    pub version: String,
    /// The build time from the metadata (Unix seconds).
    pub build_epoch: u64,
    /// The whole database flattened.
    pub layer: Arc<GeoLayer>,
    /// The coordinates, when they were asked for ([`GeoDb::open_with`]); empty when the
    /// database has none.
    pub locations: Option<Arc<Locations>>,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GeoDb({}, {:?})", self.name, self.layout)
    }
}

/// The CIDRs that cover IPv6 except `::/96` (where an IPv6 database keeps its IPv4 subtree,
/// walked as IPv4), in ascending order: the sibling of `::/96` at each depth.
fn v6_outside_v4() -> impl Iterator<Item = (u128, u8)> {
    (1..=96u8)
        .rev()
        .map(|len| (1u128 << (128 - len as u32), len))
}

impl GeoDb {
    /// Opens a database from its bytes, keeping its coordinates; see [`GeoDb::open_with`].
    pub fn open(name: &str, bytes: Vec<u8>, layout: Option<Layout>) -> Result<GeoDb, GeoError> {
        GeoDb::open_with(name, bytes, layout, true)
    }

    /// Opens a database from its bytes: detects the layout, walks every network (checking
    /// the search tree and decoding every record, so that a corrupt file is refused here and
    /// never reaches the query path), keeps the flattened layer (and the coordinates when
    /// `locations` is set and the database has any) and drops the bytes. `layout` is the one
    /// the operator declared; `None` detects it from the database's type.
    pub fn open_with(
        name: &str,
        bytes: Vec<u8>,
        layout: Option<Layout>,
        locations: bool,
    ) -> Result<GeoDb, GeoError> {
        if bytes.is_empty() {
            return Err(GeoError::Empty);
        }
        let reader = Reader::from_source(bytes).map_err(GeoError::NotMaxMind)?;
        let db_type = reader.metadata().database_type.clone();
        let layout = match layout {
            Some(l) => l,
            None => {
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
        };
        let build_epoch = reader.metadata().build_epoch;
        let version = format!("{db_type} built {build_epoch}");
        let t = std::time::Instant::now();
        let keep_locations = locations && layout != Layout::Asn;
        let walked =
            walk(&reader, layout, keep_locations).map_err(|e| GeoError::Corrupt(Box::new(e)))?;
        drop(reader);
        let (v4_values, v4_points) = (walked.v4.0.finish(), walked.v4.1.finish());
        let (v6_values, v6_points) = (walked.v6.0.finish(), walked.v6.1.finish());
        let layer = GeoLayer {
            keys: walked.keys,
            spans: Families {
                v4: v4_values,
                v6: v6_values,
            },
        };
        if layer.spans.v4.is_empty() && layer.spans.v6.is_empty() {
            return Err(GeoError::Corrupt(Box::new(GeoError::NoData)));
        }
        let locations = keep_locations.then(|| {
            let mut points = walked.points;
            points.shrink_to_fit();
            Arc::new(Locations {
                points,
                spans: Families {
                    v4: v4_points,
                    v6: v6_points,
                },
            })
        });
        tracing::debug!(
            file = name,
            ms = t.elapsed().as_millis() as u64,
            v4 = layer.spans.v4.len(),
            v6 = layer.spans.v6.len(),
            keys = layer.keys.len(),
            bytes = layer.spans.bytes(),
            location_bytes = locations.as_ref().map_or(0, |l| l.spans.bytes()),
            "GeoIP database walked"
        );
        Ok(GeoDb {
            name: name.to_string(),
            layout,
            version,
            build_epoch,
            layer: Arc::new(layer),
            locations,
        })
    }

    /// The same database without its coordinates (sharing everything else).
    pub fn without_locations(&self) -> GeoDb {
        GeoDb {
            name: self.name.clone(),
            layout: self.layout,
            version: self.version.clone(),
            build_epoch: self.build_epoch,
            layer: self.layer.clone(),
            locations: None,
        }
    }

    /// Looks `addr` up in what was kept of the database.
    pub fn lookup(&self, addr: IpAddr) -> Found {
        let (v6, a, bits) = match addr {
            IpAddr::V4(a) => (false, u32::from(a) as u128, 32),
            IpAddr::V6(a) => (true, u128::from(a), 128),
        };
        let valid = |(s, e, v): (u128, u128, u32)| (v, ranges::widest_block(a, s, e, bits));
        let mut out = Found::default();
        if let Some((v, len)) = self.layer.spans.find(v6, a).map(valid) {
            if self.layout == Layout::Asn {
                out.asn = Some((v, len));
            } else if let Some(k) = self.layer.keys.get(v as usize) {
                out.key = Some((k.clone(), len));
            }
        }
        if let Some(l) = &self.locations
            && let Some((v, len)) = l.spans.find(v6, a).map(valid)
        {
            out.location = l.points.get(v as usize).map(|&p| (p, len));
        }
        out
    }
}

/// What a walk of (part of) a database builds: the location keys and coordinates it met, by
/// id, and per family the ranges of values (key ids, or ASNs) and of coordinate ids.
struct Part {
    keys: Vec<GeoKey>,
    key_ids: HashMap<String, u32>,
    points: Vec<(f64, f64)>,
    point_ids: IntMap<(u64, u64), u32>,
    v4: (SpansBuilder<Vec<u32>>, SpansBuilder<Vec<u32>>),
    v6: (SpansBuilder<V6Starts>, SpansBuilder<V6Starts>),
}

impl Part {
    /// An empty part whose IPv4 ranges start at `v4_from`.
    fn new(v4_from: u128) -> Part {
        Part {
            keys: Vec::new(),
            key_ids: HashMap::new(),
            points: Vec::new(),
            point_ids: IntMap::default(),
            v4: (SpansBuilder::from(v4_from), SpansBuilder::from(v4_from)),
            v6: Default::default(),
        }
    }

    /// Appends `next` (which covers addresses after this part's, in each family), its key and
    /// coordinate ids renumbered into this part's.
    fn append(&mut self, next: Part, asn: bool) {
        let keys: Vec<u32> = next
            .key_ids
            .iter()
            .map(|(text, &id)| (id, text))
            .collect::<std::collections::BTreeMap<u32, &String>>()
            .into_values()
            .zip(next.keys)
            .map(|(text, key)| {
                *self.key_ids.entry(text.clone()).or_insert_with(|| {
                    self.keys.push(key);
                    (self.keys.len() - 1) as u32
                })
            })
            .collect();
        let points: Vec<u32> = next
            .points
            .into_iter()
            .map(|(lat, lon)| {
                *self
                    .point_ids
                    .entry((lat.to_bits(), lon.to_bits()))
                    .or_insert_with(|| {
                        self.points.push((lat, lon));
                        (self.points.len() - 1) as u32
                    })
            })
            .collect();
        let key = |v: u32| if asn { v } else { keys[v as usize] };
        let point = |v: u32| points[v as usize];
        self.v4.0.append(next.v4.0, key);
        self.v4.1.append(next.v4.1, point);
        self.v6.0.append(next.v6.0, key);
        self.v6.1.append(next.v6.1, point);
    }
}

/// Walks every network of `reader` that has data, once, in two parts on two threads when the
/// process may use two cores (the lower half of IPv4; the upper half and IPv6), merged in
/// order; in one part otherwise.
/// IPv4 networks come from the IPv4 subtree; in IPv6, the IPv4-compatible range (`::/96`) and
/// the aliases of the IPv4 subtree are skipped. An IPv6 database without an IPv4 subtree (its
/// tree ends at `::/d`, d ≤ 96, with a record or none) is walked from `::/0`, `::/d` included,
/// with no network skipped as an alias (the reader would skip every leaf holding the `::/d`
/// record); its IPv4 addresses get the `::/d` record, as its readers answer them.
fn walk(reader: &Reader<Vec<u8>>, layout: Layout, locations: bool) -> Result<Part, GeoError> {
    let half = 1u128 << 31;
    let first: Vec<(bool, u128, u8)> = vec![(false, 0, 1)];
    let mut second: Vec<(bool, u128, u8)> = vec![(false, half, 1)];
    let mut options = WithinOptions::default();
    if reader.metadata().ip_version == 6 {
        if has_ipv4_subtree(reader)? {
            second.extend(v6_outside_v4().map(|(s, l)| (true, s, l)));
        } else {
            second.push((true, 0, 0));
            options = options.include_aliased_networks();
        }
    }
    let part = |cidrs: &[(bool, u128, u8)], v4_from| {
        walk_part(reader, layout, locations, cidrs, v4_from, options)
    };
    let two = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    let (a, b) = if two {
        std::thread::scope(|scope| {
            let other = scope.spawn(|| part(&second, half));
            let a = part(&first, 0);
            let b = other
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (a, b)
        })
    } else {
        // One core: one part, so that no record is decoded twice.
        let all: Vec<(bool, u128, u8)> = first.into_iter().chain(second).collect();
        return part(&all, 0);
    };
    let mut out = a?;
    out.append(b?, layout == Layout::Asn);
    Ok(out)
}

/// True when an IPv6 database keeps IPv4 in a subtree at `::/96`: its search tree goes on past
/// `::/96` (an address there is looked up to a network longer than /96).
fn has_ipv4_subtree(reader: &Reader<Vec<u8>>) -> Result<bool, GeoError> {
    let found = reader
        .lookup(IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED))
        .map_err(GeoError::Read)?;
    Ok(found.network().map_err(GeoError::Read)?.prefix() > 96)
}

/// Walks the networks of `cidrs` (ascending; `(IPv6, start, length)`), each distinct record
/// decoded once (by data offset).
fn walk_part(
    reader: &Reader<Vec<u8>>,
    layout: Layout,
    locations: bool,
    cidrs: &[(bool, u128, u8)],
    v4_from: u128,
    options: WithinOptions,
) -> Result<Part, GeoError> {
    let t0 = std::time::Instant::now();
    let mut out = Part::new(v4_from);
    // Record offset → value, and → point id when coordinates are kept (apart, so that the
    // map the walk always needs has 8-byte entries: its lookups are the walk's main cost);
    // neighbouring networks often share a record, so the last one is checked first.
    let mut ids: IntMap<u32, u32> = IntMap::default();
    let mut point_of: IntMap<u32, u32> = IntMap::default();
    let mut last: Option<(u32, (u32, u32))> = None;
    let mut text = String::new();
    for &(v6, cidr_start, cidr_len) in cidrs {
        let bits = if v6 { 128 } else { 32 };
        let addr = if v6 {
            IpAddr::from(cidr_start.to_be_bytes())
        } else {
            IpAddr::from((cidr_start as u32).to_be_bytes())
        };
        let iter = reader
            .within(
                format!("{addr}/{cidr_len}")
                    .parse()
                    .map_err(|e| GeoError::Read(maxminddb::MaxMindDbError::InvalidNetwork(e)))?,
                options,
            )
            .map_err(GeoError::Read)?;
        for item in iter {
            let item = item.map_err(GeoError::Read)?;
            let net = item.network().map_err(GeoError::Read)?;
            let (start, len) = match net.ip() {
                IpAddr::V4(a) if !v6 => (u32::from(a) as u128, net.prefix()),
                IpAddr::V6(a) if v6 => (u128::from(a), net.prefix()),
                // An IPv4 CIDR of a database without an IPv4 subtree lies inside one IPv6
                // network (`::/d`), whose record holds all of it.
                IpAddr::V6(_) if !v6 => (cidr_start, cidr_len),
                _ => continue,
            };
            let Some(offset) = item.offset() else {
                continue;
            };
            // Kept in 32 bits: the map of offsets is the walk's largest working set.
            let Ok(offset) = u32::try_from(offset) else {
                return Err(GeoError::TooLarge);
            };
            let (value, point) = match last {
                Some((o, found)) if o == offset => found,
                _ => {
                    let found = match ids.get(&offset) {
                        Some(&value) if !locations => (value, layer::GAP),
                        Some(&value) => (value, point_of[&offset]),
                        None => {
                            let found = decode(&item, layout, locations, &mut out, &mut text)?;
                            ids.insert(offset, found.0);
                            if locations {
                                point_of.insert(offset, found.1);
                            }
                            found
                        }
                    };
                    last = Some((offset, found));
                    found
                }
            };
            let end = ranges::block_end(start, len, bits);
            if v6 {
                if value != layer::GAP {
                    out.v6.0.push(start, end, value);
                }
                if point != layer::GAP {
                    out.v6.1.push(start, end, point);
                }
            } else {
                if value != layer::GAP {
                    out.v4.0.push(start, end, value);
                }
                if point != layer::GAP {
                    out.v4.1.push(start, end, point);
                }
            }
        }
    }
    tracing::debug!(
        ms = t0.elapsed().as_millis() as u64,
        records = ids.len(),
        "part walked"
    );
    Ok(out)
}

/// Decodes the record of `item`: (its value, its coordinate id), interning new keys and
/// coordinates into `out`; [`layer::GAP`] where the record has neither.
fn decode(
    item: &maxminddb::LookupResult<'_, Vec<u8>>,
    layout: Layout,
    locations: bool,
    out: &mut Part,
    text: &mut String,
) -> Result<(u32, u32), GeoError> {
    let decoded = if layout == Layout::GeoIp2 {
        record::Record::of_geoip2(item, locations)
    } else {
        item.decode::<record::Lenient>().map(|r| r.map(|r| r.0))
    };
    let r = match decoded {
        Ok(Some(r)) => r,
        Ok(None) => return Ok((layer::GAP, layer::GAP)),
        Err(e) => return Err(GeoError::Read(e)),
    };
    if layout == Layout::Asn {
        return Ok((r.asn.unwrap_or(layer::GAP), layer::GAP));
    }
    let p = r.placed();
    let key = if p.continent.is_none() && p.country.is_none() {
        // A record with no location does not know the address: a later database (or the
        // default rule) decides for it.
        layer::GAP
    } else {
        key_id(&p, text, &mut out.key_ids, &mut out.keys)
    };
    let point = match p.location.filter(|_| locations) {
        Some((lat, lon)) => *out
            .point_ids
            .entry((lat.to_bits(), lon.to_bits()))
            .or_insert_with(|| {
                out.points.push((lat, lon));
                (out.points.len() - 1) as u32
            }),
        None => layer::GAP,
    };
    Ok((key, point))
}

/// The id of a record's location key, adding it to `keys` when new; `text` is scratch space.
fn key_id(
    p: &record::Placed,
    text: &mut String,
    key_ids: &mut HashMap<String, u32>,
    keys: &mut Vec<GeoKey>,
) -> u32 {
    let code = |c: Option<[u8; 2]>| c.map(|c| String::from_utf8_lossy(&c).into_owned());
    // Three characters per code, the first saying whether it is there: no two keys share a
    // text, whatever bytes the codes hold.
    text.clear();
    for part in [p.continent, p.country] {
        match part {
            Some(c) => {
                text.push('+');
                text.push(c[0] as char);
                text.push(c[1] as char);
            }
            None => text.push_str("-  "),
        }
    }
    if let Some(s) = &p.subdivision {
        text.push_str(s);
    }
    if let Some(&id) = key_ids.get(text.as_str()) {
        return id;
    }
    let country = code(p.country);
    let subdivision = match (&country, &p.subdivision) {
        (Some(c), Some(s)) => Some(format!("{c}-{s}")),
        _ => None,
    };
    keys.push((code(p.continent), country, subdivision));
    let id = (keys.len() - 1) as u32;
    key_ids.insert(text.clone(), id);
    id
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
mod tests;
