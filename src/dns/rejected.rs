//! The response to a query that could not be accepted (FORMERR, BADVERS, NOTIMP and the
//! other errors decided while decoding): the header and question echoed as far as they could
//! be read, the rcode, and an OPT record (with an Extended DNS Error saying why) when the
//! query had one.

use crate::snapshot::Snapshot;
use crate::wire::{self, CD, RD, Writer};

use super::outcome::Outcome;

/// A response to a query that could not be accepted.
pub(super) fn error(
    snap: &Snapshot,
    q: Option<wire::Echo<'_>>,
    packet: &[u8],
    code: u16,
    out: &mut [u8],
) -> Outcome {
    let (id, flags, question) = match &q {
        Some(q) => (q.id, q.flags, q.question),
        None => (
            u16::from_be_bytes([packet[0], packet[1]]),
            u16::from_be_bytes([packet[2], packet[3]]),
            &[][..],
        ),
    };
    let mut w = Writer::new(out, id, flags & (RD | CD | 0x7800), question);
    w.set_rcode(code);
    if let Some(q) = &q
        && let Some(e) = q.edns
    {
        // RFC 6891 §7: a query with an OPT record gets one back, errors included (a resolver
        // that sees none may conclude that the server has no EDNS). BADVERS is carried in it
        // (§6.1.3), with version 0. A refused ECS option is not echoed.
        let opt_start = w.len();
        w.opt(snap.settings.udp_payload_max, code, e.dnssec_ok, None);
        if let Some(why) = q.why {
            super::edns::ede(&mut w, opt_start, super::edns::OTHER, why.text());
        }
    }
    let len = w.finish();
    Outcome::Answered {
        len,
        rcode: code,
        truncated: false,
        qtype: q.filter(|q| q.question.len() >= 4).map_or(0, |q| {
            let t = q.question.len() - 4;
            u16::from_be_bytes([q.question[t], q.question[t + 1]])
        }),
        ecs: q.is_some_and(|q| q.edns.is_some_and(|e| e.ecs.is_some())),
        service: None,
        cookie: 0,
    }
}
