//! CHAOS-class identity answers: `id.server` and `hostname.bind` (the configured
//! `identity.server_id`), `version.bind` and `version.server` (`identity.version`).

use crate::snapshot::Snapshot;
use crate::wire::{CLASS_CH, QNAME_PTR, Query, Section, Writer, rcode, rtype};

/// CHAOS TXT `id.server`, `hostname.bind`, `version.bind`.
pub(super) fn chaos(snap: &Snapshot, q: &Query<'_>, w: &mut Writer<'_>) -> u16 {
    let text = match q.name() {
        b"\x02id\x06server\x00" | b"\x08hostname\x04bind\x00" => snap.settings.server_id.as_deref(),
        b"\x07version\x04bind\x00" | b"\x07version\x06server\x00" => {
            snap.settings.version.as_deref()
        }
        _ => return rcode::REFUSED,
    };
    let Some(text) = text else {
        return rcode::REFUSED;
    };
    if q.qtype != rtype::TXT && q.qtype != rtype::ANY {
        return rcode::NOERROR;
    }
    let bytes = &text.as_bytes()[..text.len().min(255)];
    let mut body = [0u8; 10 + 256];
    body[..2].copy_from_slice(&rtype::TXT.to_be_bytes());
    body[2..4].copy_from_slice(&CLASS_CH.to_be_bytes());
    body[8..10].copy_from_slice(&((bytes.len() + 1) as u16).to_be_bytes());
    body[10] = bytes.len() as u8;
    body[11..11 + bytes.len()].copy_from_slice(bytes);
    w.record(Section::Answer, &QNAME_PTR, &body[..11 + bytes.len()], None);
    rcode::NOERROR
}
