//! BGP prefix tables: prefix → origin ASN, loaded from text tables and kept for longest-match
//! lookups and for compilation.
//!
//! Text formats: pyasn (`prefix/len<TAB>asn`) and CAIDA pfx2as (`prefix<TAB>len<TAB>asn`),
//! plain or gzip, `;` or `#` comment lines. A multi-origin entry `a_b` and an AS-set entry
//! `a,b` are recorded with their first ASN (the set is kept in the explanation text only).
//! Malformed lines are counted and the first few reported with their line numbers; a file
//! that yields no prefix is an error. Only used off the query path.

use std::io::Read;
use std::net::IpAddr;

use ip_network::IpNetwork;
use ip_network_table::IpNetworkTable;

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
    /// Parses a table from its bytes; `format` is `auto`, `pyasn` or `pfx2as`.
    pub fn load(name: &str, bytes: &[u8], format: &str) -> Result<BgpTable, String> {
        if bytes.is_empty() {
            return Err("empty file".into());
        }
        let text = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut s = String::new();
            flate2::read::MultiGzDecoder::new(bytes)
                .read_to_string(&mut s)
                .map_err(|e| format!("bad gzip data: {e}"))?;
            s
        } else {
            String::from_utf8(bytes.to_vec()).map_err(|_| {
                "not a text prefix table (not UTF-8); MRT files are not supported yet".to_string()
            })?
        };
        if !matches!(format, "auto" | "pyasn" | "pfx2as") {
            return Err(format!(
                "unknown BGP table format {format:?}; expected auto, pyasn or pfx2as"
            ));
        }
        let mut t = BgpTable {
            name: name.into(),
            v4: Vec::new(),
            v6: Vec::new(),
            table: IpNetworkTable::new(),
            skipped: 0,
            problems: Vec::new(),
        };
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
                continue;
            }
            match parse_line(line) {
                Ok((net, asn)) => {
                    let (start, len) = match net {
                        IpNetwork::V4(n) => (u32::from(n.network_address()) as u128, n.netmask()),
                        IpNetwork::V6(n) => (u128::from(n.network_address()), n.netmask()),
                    };
                    if net.is_ipv4() {
                        t.v4.push((start, len, asn));
                    } else {
                        t.v6.push((start, len, asn));
                    }
                    t.table.insert(net, asn);
                }
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
            return Err(format!("no usable prefix ({why})"));
        }
        Ok(t)
    }

    /// The longest matching prefix of `addr` and its origin ASN.
    pub fn lookup(&self, addr: IpAddr) -> Option<(IpNetwork, u32)> {
        self.table.longest_match(addr).map(|(n, a)| (n, *a))
    }
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
        let t = BgpTable::load("t", text.as_bytes(), "auto").unwrap();
        assert_eq!(t.v4.len(), 2);
        assert_eq!(t.v6.len(), 1);
        assert_eq!(t.skipped, 1);
        assert_eq!(t.problems[0], "line 5: bad ASN \"x\"");
        let (net, asn) = t.lookup("8.8.8.8".parse().unwrap()).unwrap();
        assert_eq!((net.to_string().as_str(), asn), ("8.8.8.0/24", 15169));
        assert_eq!(t.lookup("2001:db8::1".parse().unwrap()).unwrap().1, 64500);
        assert!(BgpTable::load("t", b"garbage\n", "auto").is_err());
        assert!(BgpTable::load("t", b"", "auto").is_err());
    }
}
