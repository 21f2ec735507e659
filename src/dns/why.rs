//! TXT `_why.<service name>`: the explanation of a decision, as text records, for the asking
//! client. A debugging aid: it allocates, unlike every other answer.

use std::net::IpAddr;

use crate::snapshot::Snapshot;
use crate::wire::{CLASS_IN, QNAME_PTR, Query, Section, Writer, rcode, rtype};

use super::client::client_address;

/// TXT `_why.<service name>`: the explanation of the decision for this query's client.
pub(super) fn why_answer(
    snap: &Snapshot,
    s: usize,
    q: &Query<'_>,
    src: IpAddr,
    w: &mut Writer<'_>,
) -> u16 {
    if !snap.settings.why_allow.is_empty()
        && !snap.settings.why_allow.iter().any(|n| n.contains(src))
    {
        return rcode::REFUSED;
    }
    let svc = &snap.services[s];
    let (client, how, _) = client_address(svc.use_ecs, q.edns.and_then(|e| e.ecs), src);
    let lines = crate::explain::explain(snap, s, client, how, false);
    for line in lines {
        let bytes = line.as_bytes();
        let mut body = Vec::with_capacity(bytes.len() + 16);
        body.extend_from_slice(&rtype::TXT.to_be_bytes());
        body.extend_from_slice(&CLASS_IN.to_be_bytes());
        body.extend_from_slice(&0u32.to_be_bytes());
        let chunks: Vec<&[u8]> = bytes.chunks(255).collect();
        let rdlen: usize = chunks.iter().map(|c| c.len() + 1).sum();
        body.extend_from_slice(&(rdlen as u16).to_be_bytes());
        for c in chunks {
            body.push(c.len() as u8);
            body.extend_from_slice(c);
        }
        w.record(Section::Answer, &QNAME_PTR, &body, None);
    }
    rcode::NOERROR
}
