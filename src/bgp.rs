//! BGP prefix tables: prefix → origin ASN, loaded from text tables and kept for longest-match
//! lookups and for compilation.
//!
//! Inputs, plain, gzip or bzip2:
//! - MRT (RFC 6396), parsed with `bgpkit-parser`: RIB dumps (TABLE_DUMP, TABLE_DUMP_V2 with
//!   ADD-PATH and IPv6) and BGP4MP update streams, applied in order (announce, withdraw) per
//!   peer and path. For each prefix the origin is the most common origin ASN across the peers'
//!   routes (ties: the smaller ASN), and the shortest AS path length seen is kept. The origin is
//!   the last AS of the path; when the path ends in an AS_SET, the set's first ASN is used.
//! - Text: pyasn (`prefix/len<TAB>asn`) and CAIDA pfx2as (`prefix<TAB>len<TAB>asn`), `;` or `#`
//!   comment lines. A multi-origin entry `a_b` and an AS-set entry `a,b` are recorded with
//!   their first ASN.
//!
//! Malformed lines and records are counted and the first few reported (line number, or MRT
//! record number and reason); a file that yields no prefix is an error. Only used off the query
//! path.

use std::io::Read;
use std::net::IpAddr;

use ip_network::IpNetwork;
use ip_network_table::IpNetworkTable;

/// The current route of each (peer, ADD-PATH id) for one prefix: (origin ASN, AS path length).
type PeerRoutes = std::collections::HashMap<(IpAddr, u32), (u32, u32)>;

/// How a prefix table is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableFormat {
    /// MRT (TABLE_DUMP, TABLE_DUMP_V2, BGP4MP).
    Mrt,
    /// Text: pyasn or CAIDA pfx2as lines.
    Text,
}

/// Why a prefix table cannot be loaded.
#[derive(Debug)]
pub enum TableError {
    /// The file is empty.
    Empty,
    /// The file starts like gzip but does not decompress.
    Gzip(std::io::Error),
    /// The file starts like bzip2 and not even its start decompresses.
    Bzip2(std::io::Error),
    /// Not MRT, and not UTF-8 text either.
    NotUtf8,
    /// Nothing in the file gave a prefix; the first problem found, or what was missing.
    NoPrefix(String),
}

impl std::fmt::Display for TableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TableError::Empty => f.write_str("empty file"),
            TableError::Gzip(e) => write!(f, "bad gzip data: {e}"),
            TableError::Bzip2(e) => write!(f, "bad bzip2 data: {e}"),
            TableError::NotUtf8 => f.write_str("neither MRT nor a text prefix table (not UTF-8)"),
            TableError::NoPrefix(why) => write!(f, "no usable prefix ({why})"),
        }
    }
}

impl std::error::Error for TableError {}

/// A loaded prefix table.
pub struct BgpTable {
    /// Where it came from.
    pub name: String,
    /// IPv4 prefixes: (start, length, origin ASN).
    pub v4: Vec<(u128, u8, u32)>,
    /// IPv6 prefixes.
    pub v6: Vec<(u128, u8, u32)>,
    /// Longest-match index.
    table: IpNetworkTable<u32>,
    /// Lines that could not be used, with the first few reasons.
    pub skipped: usize,
    /// The first few problems (`line N: reason`).
    pub problems: Vec<String>,
    /// Shortest AS path length per prefix (MRT inputs only).
    pub path_len: std::collections::HashMap<IpNetwork, u32>,
}

impl std::fmt::Debug for BgpTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BgpTable({}, {} v4, {} v6)",
            self.name,
            self.v4.len(),
            self.v6.len()
        )
    }
}

impl BgpTable {
    /// Parses a table from its bytes, in `format` (`None`: MRT when the bytes look like MRT,
    /// else text).
    pub fn load(
        name: &str,
        bytes: &[u8],
        format: Option<TableFormat>,
    ) -> Result<BgpTable, TableError> {
        if bytes.is_empty() {
            return Err(TableError::Empty);
        }
        let data = decompress(bytes)?;
        let mrt = match format {
            Some(f) => f == TableFormat::Mrt,
            None => looks_like_mrt(&data),
        };
        if mrt {
            return BgpTable::load_mrt(name, &data);
        }
        let text = String::from_utf8(data).map_err(|_| TableError::NotUtf8)?;
        let mut t = BgpTable::empty(name);
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
                continue;
            }
            match parse_line(line) {
                Ok((net, asn)) => t.add(net, asn),
                Err(e) => {
                    t.skipped += 1;
                    if t.problems.len() < 5 {
                        t.problems.push(format!("line {}: {e}", i + 1));
                    }
                }
            }
        }
        if t.v4.is_empty() && t.v6.is_empty() {
            let why = t
                .problems
                .first()
                .cloned()
                .unwrap_or_else(|| "no prefix lines".into());
            return Err(TableError::NoPrefix(why));
        }
        Ok(t)
    }

    fn empty(name: &str) -> BgpTable {
        BgpTable {
            name: name.into(),
            v4: Vec::new(),
            v6: Vec::new(),
            table: IpNetworkTable::new(),
            skipped: 0,
            problems: Vec::new(),
            path_len: std::collections::HashMap::new(),
        }
    }

    fn add(&mut self, net: IpNetwork, asn: u32) {
        match net {
            IpNetwork::V4(n) => {
                self.v4
                    .push((u32::from(n.network_address()) as u128, n.netmask(), asn))
            }
            IpNetwork::V6(n) => self
                .v6
                .push((u128::from(n.network_address()), n.netmask(), asn)),
        }
        self.table.insert(net, asn);
    }

    /// Parses MRT data (already decompressed).
    pub fn load_mrt(name: &str, data: &[u8]) -> Result<BgpTable, TableError> {
        use bgpkit_parser::models::{ElemType, MrtMessage, TableDumpV2Message};
        use std::collections::HashMap;
        // Per prefix, the current route of each (peer, path id): (origin, path length).
        let mut routes: HashMap<IpNetwork, PeerRoutes> = HashMap::new();
        let mut t = BgpTable::empty(name);
        let parser = bgpkit_parser::BgpkitParser::from_reader(std::io::Cursor::new(data));
        let mut elementor = bgpkit_parser::Elementor::new();
        let mut n = 0usize;
        for item in parser.into_fallible_record_iter() {
            n += 1;
            let record = match item {
                Ok(r) => r,
                Err(e) => {
                    t.skipped += 1;
                    if t.problems.len() < 5 {
                        t.problems.push(format!("MRT record {n}: {}", e.error));
                    }
                    if t.skipped > 10_000 {
                        break;
                    }
                    continue;
                }
            };
            // The elements of an ADD-PATH RIB record do not carry their entries' path ids;
            // they come out one per entry, in order, so take the ids from the record.
            let path_ids: Vec<Option<u32>> = match &record.message {
                MrtMessage::TableDumpV2Message(TableDumpV2Message::RibAfi(r)) => {
                    r.rib_entries.iter().map(|e| e.path_id).collect()
                }
                _ => Vec::new(),
            };
            for (i, elem) in elementor.record_to_elems(record).into_iter().enumerate() {
                let Ok(net) = IpNetwork::new_truncate(
                    elem.prefix.prefix.addr(),
                    elem.prefix.prefix.prefix_len(),
                ) else {
                    continue;
                };
                let path_id = path_ids
                    .get(i)
                    .copied()
                    .flatten()
                    .or(elem.prefix.path_id)
                    .unwrap_or(0);
                let key = (elem.peer_ip, path_id);
                match elem.elem_type {
                    ElemType::ANNOUNCE => {
                        let origin = elem
                            .origin_asns
                            .as_ref()
                            .and_then(|o| o.first())
                            .map(|a| a.to_u32());
                        let len = elem
                            .as_path
                            .as_ref()
                            .map(|p| p.route_len() as u32)
                            .unwrap_or(0);
                        if let Some(origin) = origin {
                            routes.entry(net).or_default().insert(key, (origin, len));
                        }
                    }
                    ElemType::WITHDRAW => {
                        if let Some(r) = routes.get_mut(&net) {
                            r.remove(&key);
                        }
                    }
                }
            }
        }
        let mut nets: Vec<_> = routes.into_iter().filter(|(_, r)| !r.is_empty()).collect();
        nets.sort_by_key(|(n, _)| (n.is_ipv6(), *n));
        for (net, peers) in nets {
            let mut votes: HashMap<u32, usize> = HashMap::new();
            for (origin, _) in peers.values() {
                *votes.entry(*origin).or_default() += 1;
            }
            let origin = votes
                .iter()
                .map(|(a, c)| (std::cmp::Reverse(*c), *a))
                .min()
                .map(|(_, a)| a)
                .unwrap_or(0);
            let shortest = peers.values().map(|(_, l)| *l).min().unwrap_or(0);
            t.path_len.insert(net, shortest);
            t.add(net, origin);
        }
        if t.v4.is_empty() && t.v6.is_empty() {
            let why = t
                .problems
                .first()
                .cloned()
                .unwrap_or_else(|| "no route in the file".into());
            return Err(TableError::NoPrefix(why));
        }
        Ok(t)
    }

    /// The longest matching prefix of `addr` and its origin ASN.
    pub fn lookup(&self, addr: IpAddr) -> Option<(IpNetwork, u32)> {
        self.table.longest_match(addr).map(|(n, a)| (n, *a))
    }
}

/// Undoes gzip or bzip2 compression, recognised by their magic bytes.
fn decompress(bytes: &[u8]) -> Result<Vec<u8>, TableError> {
    let mut out = Vec::new();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(TableError::Gzip)?;
    } else if bytes.starts_with(b"BZh") {
        // A dump cut mid-stream still yields what came before the cut.
        let r = bzip2::read::MultiBzDecoder::new(bytes).read_to_end(&mut out);
        if let Err(e) = r
            && out.is_empty()
        {
            return Err(TableError::Bzip2(e));
        }
    } else {
        out.extend_from_slice(bytes);
    }
    Ok(out)
}

/// True when `data` starts with an MRT header of a type Signpost reads.
fn looks_like_mrt(data: &[u8]) -> bool {
    let Some(h) = data.get(..12) else {
        return false;
    };
    let mrt_type = u16::from_be_bytes([h[4], h[5]]);
    // TABLE_DUMP, TABLE_DUMP_V2, BGP4MP, BGP4MP_ET.
    matches!(mrt_type, 12 | 13 | 16 | 17)
        && !h[..4].iter().all(|b| b.is_ascii_graphic() || *b == b'\t')
}

fn parse_line(line: &str) -> Result<(IpNetwork, u32), String> {
    let fields: Vec<&str> = line.split(['\t', ' ']).filter(|f| !f.is_empty()).collect();
    let (prefix, len, asn) = match fields.as_slice() {
        [p, a] => {
            let (ip, l) = p.split_once('/').ok_or("expected PREFIX/LEN")?;
            (ip, l, *a)
        }
        [p, l, a] => (*p, *l, *a),
        _ => return Err("expected 2 or 3 fields".into()),
    };
    let ip: IpAddr = prefix
        .parse()
        .map_err(|_| format!("bad address {prefix:?}"))?;
    let len: u8 = len
        .parse()
        .map_err(|_| format!("bad prefix length {len:?}"))?;
    let first = asn.split(['_', ',']).next().unwrap_or("");
    let asn: u32 = first.parse().map_err(|_| format!("bad ASN {asn:?}"))?;
    let net = IpNetwork::new_truncate(ip, len).map_err(|e| format!("bad prefix: {e}"))?;
    Ok((net, asn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_text_formats_and_bad_lines() {
        let text = "; comment\n8.8.8.0/24\t15169\n1.0.0.0\t24\t13335\n2001:db8::/32\t64500_64501\n9.9.9.0/24\tx\n";
        let t = BgpTable::load("t", text.as_bytes(), None).unwrap();
        assert_eq!(t.v4.len(), 2);
        assert_eq!(t.v6.len(), 1);
        assert_eq!(t.skipped, 1);
        assert_eq!(t.problems[0], "line 5: bad ASN \"x\"");
        let (net, asn) = t.lookup("8.8.8.8".parse().unwrap()).unwrap();
        assert_eq!((net.to_string().as_str(), asn), ("8.8.8.0/24", 15169));
        assert_eq!(t.lookup("2001:db8::1".parse().unwrap()).unwrap().1, 64500);
        assert!(BgpTable::load("t", b"garbage\n", None).is_err());
        assert!(BgpTable::load("t", b"", None).is_err());
    }
}
