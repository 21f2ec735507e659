//! The DNSSEC part of an answer from a signed zone, to a query with the DO bit (RFC 4035
//! §3.1): the signatures made when the snapshot was built, copied after the sets they cover,
//! and the NSEC records (with theirs) that prove a name or a type absent.
//!
//! Nothing is signed here and nothing allocates: a negative answer finds its NSEC by the name's
//! own place in the chain (NODATA) or by a binary search over the chain (NXDOMAIN, and the
//! wildcard that does not exist either, RFC 4035 §3.1.3.2).

use crate::wire::{MAX_NAME, Section, Writer};
use crate::zone::{Denial, Signed, Zone, ZoneNode, answer_key};

/// Writes the RRSIG bodies `sigs` at `owner` into `section`, with `ttl` when given.
#[inline]
pub fn sigs(
    w: &mut Writer<'_>,
    section: Section,
    owner: &[u8],
    sigs: &[Box<[u8]>],
    ttl: Option<u32>,
) {
    for s in sigs {
        w.record(section, owner, s, ttl);
    }
}

/// What of an address answer (`nodes`) can be sent signed: how many of its nodes, and their
/// signatures. All of them when their set was signed, else the first one alone (whose own set
/// was), else all of them unsigned (a node added since the signing, which a rebuild signs).
#[cold]
#[inline(never)]
pub fn narrow<'z>(at: &'z ZoneNode, v6: bool, nodes: &[usize]) -> (usize, &'z [Box<[u8]>]) {
    let Some(table) = at.answers.as_deref() else {
        return (nodes.len(), &[]);
    };
    let mut buf = [0u32; 9];
    if let Some(s) = answer_key(v6, nodes, &mut buf).and_then(|k| table.get(k)) {
        return (nodes.len(), s);
    }
    let first = &nodes[..nodes.len().min(1)];
    match answer_key(v6, first, &mut buf).and_then(|k| table.get(k)) {
        Some(s) => (first.len(), s),
        None => (nodes.len(), &[]),
    }
}

/// Answers an NSEC query at `node` with its NSEC, and its signatures when `with_sigs`.
pub fn own_nsec(w: &mut Writer<'_>, signed: &Signed, node: &ZoneNode, with_sigs: bool) {
    if let Some(d) = node.denial.and_then(|i| signed.chain.get(i as usize)) {
        w.record(Section::Answer, &d.owner, &d.nsec, None);
        if with_sigs {
            sigs(w, Section::Answer, &d.owner, &d.sigs, None);
        }
    }
}

/// Writes an NSEC record of the chain and its signatures into the authority section.
fn write_denial(w: &mut Writer<'_>, d: &Denial) {
    w.record(Section::Authority, &d.owner, &d.nsec, None);
    sigs(w, Section::Authority, &d.owner, &d.sigs, None);
}

/// The proof that `node` has no set of the type asked (NODATA): its own NSEC; for an empty
/// address answer at a service name (`empty_family`: AAAA when true), the variant of it
/// without that family, since other clients do get addresses of it there.
pub fn no_data(w: &mut Writer<'_>, signed: &Signed, node: &ZoneNode, empty_family: Option<bool>) {
    let Some(d) = node.denial.and_then(|i| signed.chain.get(i as usize)) else {
        return;
    };
    match (empty_family, d.family_gone.as_deref()) {
        (Some(v6), Some(variants)) => {
            let (nsec, sigs) = &variants[usize::from(v6)];
            w.record(Section::Authority, &d.owner, nsec, None);
            self::sigs(w, Section::Authority, &d.owner, sigs, None);
        }
        _ => write_denial(w, d),
    }
}

/// The proof that `name` (lowercase wire form, inside `zone`) does not exist (NXDOMAIN): the
/// NSEC covering it, and the one covering the wildcard at its closest encloser.
pub fn no_name(w: &mut Writer<'_>, zone: &Zone, signed: &Signed, name: &[u8]) {
    let covering = signed.covering(name);
    write_denial(w, covering);
    // The closest encloser: the longest existing ancestor (the apex at least).
    let mut i = 0;
    let mut encloser = &zone.apex[..];
    while i < name.len() && name[i] != 0 {
        i += 1 + usize::from(name[i]);
        if zone.node(&name[i..]).is_some() {
            encloser = &name[i..];
            break;
        }
    }
    let mut wildcard = [0u8; MAX_NAME];
    let len = 2 + encloser.len();
    if len > MAX_NAME {
        return;
    }
    wildcard[..2].copy_from_slice(b"\x01*");
    wildcard[2..len].copy_from_slice(encloser);
    let wild = signed.covering(&wildcard[..len]);
    if !std::ptr::eq(wild, covering) {
        write_denial(w, wild);
    }
}
