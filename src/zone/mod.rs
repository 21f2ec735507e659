//! The runtime model of the served zones: names, record sets encoded ahead of time, and the
//! lookups the answer path needs (exact node, empty non-terminal, enclosing zone).
//!
//! Everything here is built once per configuration load and then only read. Record data is
//! stored as wire-format bodies (type, class, TTL, RDLENGTH, RDATA) without the owner name,
//! so the answer path writes the owner as a compression pointer into the question and copies
//! the body. Parsing record values from their presentation form lives here too.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hickory_proto::rr::Name;

use crate::source::quote;
use crate::wire::{CLASS_IN, rtype, same_bytes};

mod names;
pub use names::{NameHasher, NodeMap};

/// The record body of the HINFO that answers ANY at a name with no other set to give (RFC 8482
/// §4.2): CPU "RFC8482", OS empty, TTL 3600.
pub const RFC8482_HINFO: &[u8] = b"\x00\x0d\x00\x01\x00\x00\x0e\x10\x00\x09\x07RFC8482\x00";

/// The most CNAME links the answer path follows inside a zone after the question's own CNAME
/// (a longer chain is answered up to there, and the resolver follows the rest).
pub const MAX_CNAME_LINKS: usize = 8;

/// Why a name or a record value in presentation form cannot be used.
#[derive(Debug)]
pub enum RecordError {
    /// The name is empty.
    EmptyName,
    /// The name is not a valid domain name (or too long once the origin is appended).
    BadName(String, hickory_proto::ProtoError),
    /// An A value that is not an IPv4 address.
    NotIpv4(String),
    /// An AAAA value that is not an IPv6 address.
    NotIpv6(String),
    /// An MX value that is not two fields.
    MxSyntax,
    /// An MX preference that is not a 16-bit number.
    BadMxPreference(String),
    /// An SRV value that is not four fields.
    SrvSyntax,
    /// An SRV priority, weight or port that is not a 16-bit number.
    BadSrvNumber(String),
    /// A CAA value that is not three fields.
    CaaSyntax,
    /// CAA flags that are not an 8-bit number.
    BadCaaFlags(String),
    /// A CAA tag that is empty, longer than 15 characters or not alphanumeric.
    BadCaaTag(String),
    /// A record type without a presentation-form encoder here.
    UnsupportedType(u16),
    /// RDATA longer than 65535 octets.
    TooLong,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::EmptyName => f.write_str("empty name"),
            RecordError::BadName(text, e) => write!(f, "bad name {}: {e}", quote(text)),
            RecordError::NotIpv4(v) => write!(f, "{} is not an IPv4 address", quote(v)),
            RecordError::NotIpv6(v) => write!(f, "{} is not an IPv6 address", quote(v)),
            RecordError::MxSyntax => f.write_str("MX wants \"PREFERENCE HOST\""),
            RecordError::BadMxPreference(p) => write!(f, "bad MX preference {}", quote(p)),
            RecordError::SrvSyntax => f.write_str("SRV wants \"PRIORITY WEIGHT PORT TARGET\""),
            RecordError::BadSrvNumber(p) => write!(f, "bad SRV number {}", quote(p)),
            RecordError::CaaSyntax => f.write_str("CAA wants \"FLAGS TAG VALUE\""),
            RecordError::BadCaaFlags(v) => write!(f, "bad CAA flags {}", quote(v)),
            RecordError::BadCaaTag(t) => write!(f, "bad CAA tag {}", quote(t)),
            RecordError::UnsupportedType(_) => f.write_str("unsupported record type"),
            RecordError::TooLong => f.write_str("record data too long"),
        }
    }
}

impl std::error::Error for RecordError {}

/// One record set at a name, encoded.
#[derive(Clone, Debug)]
pub struct RecordSet {
    /// The record type.
    pub rtype: u16,
    /// Each record's body (type, class, TTL, RDLENGTH, RDATA).
    pub records: Vec<Box<[u8]>>,
    /// In a signed zone: the RRSIG bodies covering the set (one per signing key).
    pub sigs: Vec<Box<[u8]>>,
}

/// Everything at one name of a zone.
#[derive(Clone, Debug, Default)]
pub struct ZoneNode {
    /// Static record sets, in configuration order.
    pub sets: Vec<RecordSet>,
    /// The CNAME target (lowercase wire form), when the name is an alias.
    pub cname_target: Option<Box<[u8]>>,
    /// The service answering A/AAAA here, by index into the snapshot's services.
    pub service: Option<usize>,
    /// Set on `_why.<service name>`: the service this name explains.
    pub why: Option<usize>,
    /// In a signed zone: this name's NSEC, by index into [`Signed::chain`].
    pub denial: Option<u32>,
    /// In a signed zone, at a service name: the signatures of the address sets it answers.
    pub answers: Option<Box<AnswerSigs>>,
}

/// The signatures of a service name's address answers, by [`answer_key`].
pub type AnswerSigs = HashMap<Box<[u32]>, Box<[Box<[u8]>]>, BuildHasherDefault<NameHasher>>;

/// The key of an address answer's signatures: the family (0 for A, 1 for AAAA), then the
/// node indices in ascending order, written into `buf`; `None` for more nodes than it holds.
pub fn answer_key<'b>(v6: bool, nodes: &[usize], buf: &'b mut [u32; 9]) -> Option<&'b [u32]> {
    let n = nodes.len();
    if n + 1 > buf.len() {
        return None;
    }
    buf[0] = u32::from(v6);
    for (slot, &node) in buf[1..=n].iter_mut().zip(nodes) {
        *slot = node as u32;
    }
    buf[1..=n].sort_unstable();
    Some(&buf[..=n])
}

/// One NSEC record of a signed zone, with its signatures.
#[derive(Clone, Debug)]
pub struct Denial {
    /// The owner, lowercase wire form.
    pub owner: Box<[u8]>,
    /// The NSEC record body.
    pub nsec: Box<[u8]>,
    /// Its RRSIG bodies.
    pub sigs: Vec<Box<[u8]>>,
    /// At a service name: the NSEC (body and RRSIG bodies) without A (`[0]`) and without
    /// AAAA (`[1]`), for an empty address answer (no node of the family for this client).
    pub family_gone: Option<Box<[NsecVariant; 2]>>,
}

/// A variant of a name's NSEC with fewer types: its record body and RRSIG bodies.
pub type NsecVariant = (Box<[u8]>, Vec<Box<[u8]>>);

/// What signing added to a zone (the record sets' own signatures are kept beside them).
#[derive(Clone, Debug)]
pub struct Signed {
    /// The SOA's RRSIG bodies.
    pub soa_sigs: Vec<Box<[u8]>>,
    /// The NSEC chain, in canonical order (RFC 4034 §6.1), the apex first.
    pub chain: Vec<Denial>,
    /// When (seconds since the epoch) the signatures should be made again.
    pub refresh_at: u64,
    /// When (seconds since the epoch) the signatures expire.
    pub expires_at: u64,
}

impl Signed {
    /// The NSEC whose owner is the last one at or before `name` in canonical order: the one
    /// covering `name` when `name` does not exist (a binary search; no allocation).
    pub fn covering(&self, name: &[u8]) -> &Denial {
        let i = self
            .chain
            .partition_point(|d| canonical_cmp(&d.owner, name) != std::cmp::Ordering::Greater);
        // The apex sorts first and is at or before every name of the zone.
        &self.chain[i.saturating_sub(1)]
    }
}

/// Compares two lowercase wire-form names in canonical order (RFC 4034 §6.1): label by label
/// from the root, each label as a string of octets, a name before its subdomains.
pub fn canonical_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let (mut sa, mut sb) = ([0u8; 128], [0u8; 128]);
    let (na, nb) = (label_starts(a, &mut sa), label_starts(b, &mut sb));
    for k in 1..=na.min(nb) {
        let (ia, ib) = (usize::from(sa[na - k]), usize::from(sb[nb - k]));
        let la = a.get(ia + 1..ia + 1 + usize::from(a[ia])).unwrap_or(&[]);
        let lb = b.get(ib + 1..ib + 1 + usize::from(b[ib])).unwrap_or(&[]);
        match la.cmp(lb) {
            std::cmp::Ordering::Equal => {}
            other => return other,
        }
    }
    na.cmp(&nb)
}

/// Writes where each label of `name` (not the root) starts into `starts`; returns how many.
fn label_starts(name: &[u8], starts: &mut [u8; 128]) -> usize {
    let (mut i, mut n) = (0usize, 0usize);
    while i < name.len() && name[i] != 0 && n < starts.len() {
        starts[n] = i as u8;
        n += 1;
        i += 1 + usize::from(name[i]);
    }
    n
}

impl ZoneNode {
    /// The record set of `rtype`, if present.
    pub fn set(&self, rtype: u16) -> Option<&RecordSet> {
        self.sets.iter().find(|s| s.rtype == rtype)
    }

    /// True when nothing lives here (an empty non-terminal).
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty() && self.service.is_none() && self.why.is_none()
    }
}

/// Additional-section record: owner and body.
#[derive(Clone, Debug)]
pub struct Glue {
    /// Owner name in wire form.
    pub owner: Box<[u8]>,
    /// Record body.
    pub body: Box<[u8]>,
}

/// A served zone.
#[derive(Clone, Debug)]
pub struct Zone {
    /// The apex in lowercase wire form.
    pub apex: Box<[u8]>,
    /// The apex as text, for messages.
    pub apex_text: String,
    /// The SOA record body.
    pub soa: Box<[u8]>,
    /// The TTL of negative answers: min(SOA TTL, SOA minimum) (RFC 2308 §5).
    pub negative_ttl: u32,
    /// Nodes by lowercase wire name, including empty non-terminals.
    pub nodes: NodeMap,
    /// Address records of in-zone name servers, for the additional section of NS answers.
    pub glue: Vec<Glue>,
    /// The zone's default TTL (the DNSKEY set's, when signed).
    pub ttl: u32,
    /// The keys, when the zone is signed.
    pub dnssec: Option<Arc<crate::dnssec::ZoneKeys>>,
    /// What signing made, once a build has signed the zone.
    pub signed: Option<Box<Signed>>,
}

impl Zone {
    /// The node at `name` (lowercase wire form).
    pub fn node(&self, name: &[u8]) -> Option<&ZoneNode> {
        self.nodes.get(name)
    }
}

/// Lowercase wire form of `name` (which must be fully qualified).
pub fn wire(name: &Name) -> Box<[u8]> {
    let mut out = Vec::with_capacity(64);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(|b| b.to_ascii_lowercase()));
    }
    out.push(0);
    out.into_boxed_slice()
}

/// Parses `text` as a name; relative names (no trailing dot) are relative to `origin`, and
/// `@` is the origin itself.
pub fn parse_name(text: &str, origin: &Name) -> Result<Name, RecordError> {
    let text = text.trim();
    if text == "@" {
        return Ok(origin.clone());
    }
    if text.is_empty() {
        return Err(RecordError::EmptyName);
    }
    let bad = |e| RecordError::BadName(text.to_string(), e);
    let n = Name::from_ascii(text).map_err(bad)?;
    if n.is_fqdn() {
        Ok(n)
    } else {
        n.append_domain(origin).map_err(bad)
    }
}

/// True when `name` is `apex` or below it (both lowercase wire form).
#[inline]
pub fn is_within(name: &[u8], apex: &[u8]) -> bool {
    if name.len() < apex.len() || !same_bytes(&name[name.len() - apex.len()..], apex) {
        return false;
    }
    // The suffix must start on a label boundary.
    let cut = name.len() - apex.len();
    let mut i = 0;
    while i < cut {
        i += 1 + name[i] as usize;
    }
    i == cut
}

/// Builds one record body.
pub fn body(rtype: u16, ttl: u32, rdata: &[u8]) -> Box<[u8]> {
    let mut b = Vec::with_capacity(10 + rdata.len());
    b.extend_from_slice(&rtype.to_be_bytes());
    b.extend_from_slice(&CLASS_IN.to_be_bytes());
    b.extend_from_slice(&ttl.to_be_bytes());
    b.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    b.extend_from_slice(rdata);
    b.into_boxed_slice()
}

/// The record type for a mnemonic, if Signpost serves it statically.
pub fn type_from_str(s: &str) -> Option<u16> {
    Some(match s.to_ascii_uppercase().as_str() {
        "A" => rtype::A,
        "AAAA" => rtype::AAAA,
        "CNAME" => rtype::CNAME,
        "TXT" => rtype::TXT,
        "MX" => rtype::MX,
        "CAA" => rtype::CAA,
        "SRV" => rtype::SRV,
        "NS" => rtype::NS,
        "PTR" => rtype::PTR,
        _ => return None,
    })
}

/// Encodes a record value in presentation form (as in a zone file) into RDATA.
pub fn rdata(rtype: u16, value: &str, origin: &Name) -> Result<Vec<u8>, RecordError> {
    let value = value.trim();
    let mut out = Vec::new();
    match rtype {
        rtype::A => {
            let a: Ipv4Addr = value
                .parse()
                .map_err(|_| RecordError::NotIpv4(value.to_string()))?;
            out.extend_from_slice(&a.octets());
        }
        rtype::AAAA => {
            let a: Ipv6Addr = value
                .parse()
                .map_err(|_| RecordError::NotIpv6(value.to_string()))?;
            out.extend_from_slice(&a.octets());
        }
        rtype::CNAME | rtype::NS | rtype::PTR => {
            out.extend_from_slice(&wire(&parse_name(value, origin)?));
        }
        rtype::MX => {
            let (pref, host) = split2(value).ok_or(RecordError::MxSyntax)?;
            let pref: u16 = pref
                .parse()
                .map_err(|_| RecordError::BadMxPreference(pref.to_string()))?;
            out.extend_from_slice(&pref.to_be_bytes());
            out.extend_from_slice(&wire(&parse_name(host, origin)?));
        }
        rtype::SRV => {
            let parts: Vec<&str> = value.split_whitespace().collect();
            if parts.len() != 4 {
                return Err(RecordError::SrvSyntax);
            }
            for p in &parts[..3] {
                let n: u16 = p
                    .parse()
                    .map_err(|_| RecordError::BadSrvNumber(p.to_string()))?;
                out.extend_from_slice(&n.to_be_bytes());
            }
            out.extend_from_slice(&wire(&parse_name(parts[3], origin)?));
        }
        rtype::TXT => {
            // A TXT value is text; strings longer than 255 octets are split (RFC 1035 §3.3.14).
            let bytes = value.as_bytes();
            if bytes.is_empty() {
                out.push(0);
            }
            for chunk in bytes.chunks(255) {
                out.push(chunk.len() as u8);
                out.extend_from_slice(chunk);
            }
        }
        rtype::CAA => {
            // RFC 8659 §4.1: FLAGS TAG "VALUE".
            let mut it = value.splitn(3, char::is_whitespace);
            let (Some(flags), Some(tag), Some(val)) = (it.next(), it.next(), it.next()) else {
                return Err(RecordError::CaaSyntax);
            };
            let flags: u8 = flags
                .parse()
                .map_err(|_| RecordError::BadCaaFlags(flags.to_string()))?;
            if tag.is_empty() || tag.len() > 15 || !tag.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(RecordError::BadCaaTag(tag.to_string()));
            }
            let val = val.trim();
            let val = val
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(val);
            out.push(flags);
            out.push(tag.len() as u8);
            out.extend_from_slice(tag.to_ascii_lowercase().as_bytes());
            out.extend_from_slice(val.as_bytes());
        }
        other => return Err(RecordError::UnsupportedType(other)),
    }
    if out.len() > 65535 {
        return Err(RecordError::TooLong);
    }
    Ok(out)
}

/// The two whitespace-separated fields of `value`, if it has exactly two.
fn split2(value: &str) -> Option<(&str, &str)> {
    let mut it = value.split_whitespace();
    match (it.next(), it.next(), it.next()) {
        (Some(a), Some(b), None) => Some((a, b)),
        _ => None,
    }
}

/// SOA RDATA (RFC 1035 §3.3.13).
pub fn soa_rdata(mname: &Name, rname: &Name, fields: [u32; 5]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&wire(mname));
    out.extend_from_slice(&wire(rname));
    for f in fields {
        out.extend_from_slice(&f.to_be_bytes());
    }
    out
}

/// Adds every ancestor of `name` below `apex` as an (empty) node, so that empty
/// non-terminals answer NODATA instead of NXDOMAIN.
pub fn add_ancestors(nodes: &mut NodeMap, name: &[u8], apex: &[u8]) {
    let mut i = 0;
    while name.len() - i > apex.len() {
        i += 1 + name[i] as usize;
        nodes.or_default(&name[i..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_rdata() {
        let origin = Name::from_ascii("Example.TEST.").unwrap();
        assert_eq!(
            &*wire(&parse_name("www", &origin).unwrap()),
            b"\x03www\x07example\x04test\x00"
        );
        assert_eq!(
            &*wire(&parse_name("@", &origin).unwrap()),
            b"\x07example\x04test\x00"
        );
        assert_eq!(rdata(rtype::MX, "10 mail", &origin).unwrap()[..2], [0, 10]);
        assert!(rdata(rtype::A, "1.2.3", &origin).is_err());
        let caa = rdata(rtype::CAA, "0 issue \"ca.example\"", &origin).unwrap();
        assert_eq!(caa, b"\x00\x05issueca.example");
        let long = "x".repeat(300);
        let txt = rdata(rtype::TXT, &long, &origin).unwrap();
        assert_eq!((txt[0], txt[256]), (255, 45));
    }

    /// A wire-form name from its labels below `example.test` (written with `.`; `\x01`-style
    /// octets allowed).
    fn below(labels: &[u8]) -> Box<[u8]> {
        let mut out = Vec::new();
        if !labels.is_empty() {
            for l in labels.split(|&b| b == b'.') {
                out.push(l.len() as u8);
                out.extend_from_slice(l);
            }
        }
        out.extend_from_slice(b"\x07example\x04test\x00");
        out.into_boxed_slice()
    }

    /// The answer path's canonical order is the NSEC chain's (`domain`'s): names of mixed
    /// depths, label lengths and octets (a label that is a prefix of another, `\001`, `*`,
    /// high octets) come out of the chain in the order `canonical_cmp` sorts them, and
    /// `covering` finds, for names that are not there, the owner before them.
    #[test]
    fn canonical_order_matches_the_nsec_chain() {
        let names: [&[u8]; 14] = [
            b"",
            b"a",
            b"ab",
            b"b.a",
            b"z.a",
            b"*",
            b"\x01",
            b"\xc8",
            b"zz",
            b"x.zz",
            b"dl",
            b"_why.dl",
            b"_tcp.dl",
            b"_https._tcp.dl",
        ];
        let wires: Vec<Box<[u8]>> = names.iter().map(|n| below(n)).collect();
        let input: Vec<(&[u8], &[u16])> = wires.iter().map(|w| (&w[..], &[1u16][..])).collect();
        let chain = crate::dnssec::nsec::chain(&input).unwrap();
        let from_chain: Vec<Box<[u8]>> = chain.iter().map(|l| l.owner.clone()).collect();
        let mut sorted = wires.clone();
        sorted.sort_by(|a, b| canonical_cmp(a, b));
        assert_eq!(sorted, from_chain);
        let signed = Signed {
            soa_sigs: Vec::new(),
            chain: from_chain
                .iter()
                .map(|o| Denial {
                    owner: o.clone(),
                    nsec: Box::default(),
                    sigs: Vec::new(),
                    family_gone: None,
                })
                .collect(),
            refresh_at: 0,
            expires_at: 0,
        };
        for (missing, before) in [
            (&b"aa"[..], &b"z.a"[..]),
            (b"c.a", b"b.a"),
            (b"zzz", b"x.zz"),
            (b"b", b"ab"),
            (b"\x00", b""),
            (b"_a._tcp.dl", b"_tcp.dl"),
            (b"\xff", b"\xc8"),
        ] {
            let got = &signed.covering(&below(missing)).owner;
            assert_eq!(got, &below(before), "{missing:?}");
        }
    }

    #[test]
    fn within_respects_label_boundaries() {
        assert!(is_within(
            b"\x01a\x07example\x04test\x00",
            b"\x07example\x04test\x00"
        ));
        assert!(!is_within(
            b"\x08xexample\x04test\x00",
            b"\x07example\x04test\x00"
        ));
        assert!(is_within(b"\x00", b"\x00"));
    }
}
