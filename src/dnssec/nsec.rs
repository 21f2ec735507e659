//! The NSEC chain over a zone's names (RFC 4034 §4, RFC 4035 §2.3): every name that owns
//! records, in canonical order (RFC 4034 §6.1), each pointing to the next and the last back to
//! the apex, with the types present at the name (and RRSIG and NSEC themselves).
//!
//! Signpost's names are finite and known when a snapshot is built, so the whole chain is made
//! then; `domain` supplies the canonical order and the type bitmap's encoding.

use std::cmp::Ordering;
use std::fmt;

use domain::base::CanonicalOrd;
use domain::base::Name;
use domain::base::iana::Rtype;
use domain::base::rdata::ComposeRecordData;
use domain::rdata::Nsec;
use domain::rdata::dnssec::RtypeBitmap;

use crate::wire::rtype::{NSEC, RRSIG};

/// One NSEC record of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The owner, in wire form as given.
    pub owner: Box<[u8]>,
    /// The NSEC's RDATA: the next owner and the type bitmap.
    pub rdata: Vec<u8>,
    /// The next owner, in wire form.
    pub next: Box<[u8]>,
}

/// Why a chain could not be made.
#[derive(Debug, PartialEq, Eq)]
pub enum NsecError {
    /// An owner is not a name in wire form.
    Owner,
    /// No name was given.
    Empty,
}

impl fmt::Display for NsecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NsecError::Owner => f.write_str("an owner is not a domain name"),
            NsecError::Empty => f.write_str("an NSEC chain needs at least the apex"),
        }
    }
}

impl std::error::Error for NsecError {}

/// The chain over `names`: each owner (lowercase wire form) with the types of the record sets
/// it owns. An owner given twice has its types merged. The apex must be among the names; the
/// chain starts there (it sorts first in a zone).
pub fn chain(names: &[(&[u8], &[u16])]) -> Result<Vec<Link>, NsecError> {
    let mut owners: Vec<(Name<Vec<u8>>, Vec<u16>)> = Vec::with_capacity(names.len());
    for (owner, types) in names {
        let name = Name::from_octets(owner.to_vec()).map_err(|_| NsecError::Owner)?;
        owners.push((name, types.to_vec()));
    }
    owners.sort_by(|a, b| a.0.canonical_cmp(&b.0));
    owners.dedup_by(|later, kept| {
        let same = later.0.canonical_cmp(&kept.0) == Ordering::Equal;
        if same {
            kept.1.append(&mut later.1);
        }
        same
    });
    if owners.is_empty() {
        return Err(NsecError::Empty);
    }
    let links = owners
        .iter()
        .enumerate()
        .map(|(i, (owner, types))| {
            let next = &owners[(i + 1) % owners.len()].0;
            Link {
                owner: owner.as_octets().clone().into_boxed_slice(),
                rdata: rdata(next, types),
                next: next.as_octets().clone().into_boxed_slice(),
            }
        })
        .collect();
    Ok(links)
}

/// The RDATA of an NSEC pointing to `next` (wire form) with the bitmap of `types` (and RRSIG
/// and NSEC): for a variant of a chain's link with fewer types.
pub fn rdata_for(next: &[u8], types: &[u16]) -> Result<Vec<u8>, NsecError> {
    let next = Name::from_octets(next.to_vec()).map_err(|_| NsecError::Owner)?;
    Ok(rdata(&next, types))
}

/// An NSEC's RDATA: `next` and the bitmap of `types` with RRSIG and NSEC.
fn rdata(next: &Name<Vec<u8>>, types: &[u16]) -> Vec<u8> {
    let mut bitmap = RtypeBitmap::<Vec<u8>>::builder();
    for t in types.iter().chain(&[RRSIG, NSEC]) {
        // Adding to a Vec cannot fail.
        if let Err(never) = bitmap.add(Rtype::from_int(*t)) {
            match never {}
        }
    }
    let mut out = Vec::new();
    match Nsec::new(next.clone(), bitmap.finalize()).compose_rdata(&mut out) {
        Ok(()) => out,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(text: &str) -> Vec<u8> {
        let name: Name<Vec<u8>> = text.parse().unwrap();
        name.into_octets()
    }

    /// The next owner: the name at the start of the RDATA.
    fn next_of(link: &Link) -> String {
        let mut end = 0;
        while link.rdata[end] != 0 {
            end += 1 + usize::from(link.rdata[end]);
        }
        Name::from_octets(link.rdata[..=end].to_vec())
            .unwrap()
            .to_string()
    }

    /// RFC 4034 §6.1's example order, in a zone of our own: labels compared from the right,
    /// `\001` before `z`, a shorter name before the longer one with the same ending.
    #[test]
    fn links_follow_the_canonical_order_and_close_the_loop() {
        let names = [
            "z.example.",
            "example.",
            "*.z.example.",
            "a.example.",
            "yljkjljk.a.example.",
            "zabc.a.example.",
            "z.a.example.",
            "\\001.z.example.",
            "\\200.z.example.",
        ];
        let wires: Vec<Vec<u8>> = names.iter().map(|n| wire(n)).collect();
        let input: Vec<(&[u8], &[u16])> = wires.iter().map(|w| (&w[..], &[1u16][..])).collect();
        let links = chain(&input).unwrap();
        let order: Vec<String> = links
            .iter()
            .map(|l| Name::from_octets(l.owner.to_vec()).unwrap().to_string())
            .collect();
        assert_eq!(
            order,
            [
                "example",
                "a.example",
                "yljkjljk.a.example",
                "z.a.example",
                "zabc.a.example",
                "z.example",
                "\\001.z.example",
                "*.z.example",
                "\\200.z.example",
            ]
        );
        for (i, link) in links.iter().enumerate() {
            assert_eq!(next_of(link), order[(i + 1) % order.len()]);
        }
    }

    #[test]
    fn types_of_an_owner_given_twice_are_merged_and_nothing_is_no_chain() {
        let apex = wire("example.org.");
        let links = chain(&[(&apex, &[6]), (&apex, &[2])]).unwrap();
        assert_eq!(links.len(), 1);
        // The next name is the apex itself, then one window of types: NS SOA RRSIG NSEC.
        let bitmap = &links[0].rdata[apex.len()..];
        assert_eq!(bitmap, [0, 6, 0b0010_0010, 0, 0, 0, 0, 0b0000_0011]);
        assert_eq!(chain(&[]), Err(NsecError::Empty));
    }
}
