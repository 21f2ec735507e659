//! The end of an answer whose query asks for more than the common one: the EDNS options that
//! ask for something back (COOKIE, NSID, edns-tcp-keepalive) and the Extended DNS Errors
//! (RFC 8914) that tell an operator why a query was refused or failed. Only queries with an
//! OPT record come here, and only when they carry such an option or the answer is REFUSED or
//! SERVFAIL: the common answer is completed by `answer::finish` without looking at any of it.

use std::net::IpAddr;

use super::cookie::{self, status};
use super::outcome::{Outcome, Transport};
use crate::snapshot::{ServiceAnswer, Snapshot};
use crate::wire::{
    self, CLASS_ANY, CLASS_IN, Malformed, OPT_COOKIE, OPT_EDE, OPT_KEEPALIVE, OPT_NSID, Query,
    Writer, ask, rcode, rtype,
};

/// INFO-CODE 0, Other Error (RFC 8914 §4.1): the EXTRA-TEXT says what.
pub const OTHER: u16 = 0;
/// INFO-CODE 18, Prohibited: refused by the server's policy for this client.
const PROHIBITED: u16 = 18;
/// INFO-CODE 20, Not Authoritative: the name is in no zone served here.
const NOT_AUTHORITATIVE: u16 = 20;
/// INFO-CODE 21, Not Supported: the server does not do what was asked.
const NOT_SUPPORTED: u16 = 21;

/// What a query was about, as far as its extended error goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Asked {
    /// A CHAOS name.
    Chaos,
    /// Not ours, not a class we serve, or a zone transfer.
    Refused,
    /// A name in one of our zones.
    Name,
}

/// An answer written up to its rcode, with what the end of it needs.
pub(super) struct Done<'q> {
    /// The query.
    pub q: &'q Query<'q>,
    /// Where it came from.
    pub src: IpAddr,
    /// What it was about.
    pub asked: Asked,
    /// The length of the message up to the end of the question.
    pub question_end: usize,
    /// The rcode written.
    pub code: u16,
    /// For A/AAAA of a service name: how the service decided.
    pub service: &'q Option<ServiceAnswer>,
    /// How it came.
    pub transport: Transport,
}

/// Appends an Extended DNS Error option to the OPT record at `opt_start`.
pub fn ede(w: &mut Writer<'_>, opt_start: usize, code: u16, text: &str) {
    let text = &text.as_bytes()[..text.len().min(200)];
    let mut data = [0u8; 202];
    data[..2].copy_from_slice(&code.to_be_bytes());
    data[2..2 + text.len()].copy_from_slice(text);
    w.opt_option(opt_start, OPT_EDE, &data[..2 + text.len()]);
}

/// Why a query was refused or failed, as an Extended DNS Error, when it can be said.
fn explain(d: &Done<'_>) -> Option<(u16, &'static str)> {
    let q = d.q;
    match (d.code, d.asked) {
        // RFC 8914 §4.21: a zone transfer, which Signpost never serves.
        (rcode::REFUSED, Asked::Refused) if q.qtype == rtype::AXFR || q.qtype == rtype::IXFR => {
            Some((NOT_SUPPORTED, "zone transfers are not served"))
        }
        // RFC 8914 §4.21 "Not Authoritative": the name (or its class) is not served here. Not
        // 18 "Prohibited", which says an authorised client would get an answer: none would.
        (rcode::REFUSED, Asked::Refused) if q.qclass != CLASS_IN && q.qclass != CLASS_ANY => {
            Some((NOT_AUTHORITATIVE, "class not served"))
        }
        (rcode::REFUSED, Asked::Refused) => {
            Some((NOT_AUTHORITATIVE, "not authoritative for this name"))
        }
        (rcode::REFUSED, Asked::Chaos) => Some((NOT_SUPPORTED, "CHAOS name not answered")),
        // `_why` from an address outside `why.allow`: another client would be answered.
        (rcode::REFUSED, Asked::Name) => Some((PROHIBITED, "_why not allowed from this address")),
        (rcode::SERVFAIL, Asked::Name) if d.service.is_some_and(|s| s.all_down) => Some((
            OTHER,
            "every node of the service is down (all_down: servfail)",
        )),
        (rcode::SERVFAIL, _) => Some((OTHER, "no answer could be decided")),
        _ => None,
    }
}

/// For an answer truncated on the common path: [`status::NOCOOKIE_TRUNCATED`] when it would
/// have fitted without `cookies.max_nocookie_response`, else 0. Inlined: a call here would
/// keep more of the common answer's values alive across it.
#[inline(always)]
pub(super) fn nocookie_truncation(
    snap: &Snapshot,
    q: &Query<'_>,
    transport: Transport,
    size: usize,
    overflow: bool,
) -> u8 {
    match (transport, q.edns) {
        (Transport::Udp, Some(e))
            if !overflow
                && size <= e.udp_size.min(snap.settings.udp_payload_max).max(512) as usize =>
        {
            status::NOCOOKIE_TRUNCATED
        }
        _ => 0,
    }
}

/// Completes the answer of a query with an OPT record that carries options asking for
/// something back, or whose rcode an Extended DNS Error explains: OPT, then the options.
#[cold]
#[inline(never)]
pub(super) fn finish(snap: &Snapshot, d: &Done<'_>, mut w: Writer<'_>) -> Outcome {
    let q = d.q;
    let Some(e) = q.edns else {
        return Outcome::Dropped;
    };
    let mut code = d.code;
    let mut service = *d.service;
    let mut why = explain(d);
    // RFC 7828 §3.2.1: the option has no place over UDP.
    if e.asks & ask::KEEPALIVE != 0 && d.transport == Transport::Udp {
        w.truncate_to_question(d.question_end);
        w.clear_flags(wire::AA);
        code = rcode::FORMERR;
        w.set_rcode(code);
        service = None;
        why = Some((OTHER, Malformed::KeepaliveOverUdp.text()));
    }
    let (cookie_status, cookie_answer) = match e.asks & ask::COOKIE {
        0 => (0, None),
        _ => {
            let (st, a) =
                cookie::check(&snap.settings.cookies.keys, q.cookie, d.src, cookie::now());
            (st, Some(a))
        }
    };
    let nsid = snap
        .settings
        .server_id
        .as_deref()
        .filter(|_| e.asks & ask::NSID != 0);
    let keepalive = e.asks & ask::KEEPALIVE != 0 && d.transport == Transport::Tcp;
    let extra_len = cookie_answer.map_or(0, |a| 4 + a.len())
        + nsid.map_or(0, |n| 4 + n.len().min(255))
        + if keepalive { 6 } else { 0 }
        + why.map_or(0, |(_, t)| 6 + t.len().min(200));
    let opt_len = crate::wire::opt_len(e.ecs) + extra_len;
    let cap = if cookie_status == status::GOOD {
        snap.settings.udp_payload_max
    } else {
        snap.settings.udp_nocookie_max
    };
    let limit = match d.transport {
        Transport::Tcp => 65535,
        Transport::Udp => e.udp_size.min(cap).max(512) as usize,
    };
    let mut truncated = false;
    let mut cookie_bits = cookie_status;
    if w.overflow || w.len() + opt_len > limit {
        if cookie_status != status::GOOD {
            cookie_bits |= nocookie_truncation(snap, q, d.transport, w.len() + opt_len, w.overflow);
        }
        w.truncate_to_question(d.question_end);
        w.set_flags(wire::TC);
        truncated = true;
    }
    let scope = service.map_or(0, |s| s.scope);
    let opt_start = w.len();
    let ecs = e.ecs.filter(|_| code != rcode::FORMERR).map(|s| (s, scope));
    w.opt(snap.settings.udp_payload_max, code, e.dnssec_ok, ecs);
    if let Some(a) = &cookie_answer {
        w.opt_option(opt_start, OPT_COOKIE, a);
    }
    if let Some(n) = nsid {
        w.opt_option(opt_start, OPT_NSID, &n.as_bytes()[..n.len().min(255)]);
    }
    if keepalive {
        w.opt_option(
            opt_start,
            OPT_KEEPALIVE,
            &snap.settings.tcp_idle_timeout.to_be_bytes(),
        );
    }
    if let Some((info, text)) = why {
        ede(&mut w, opt_start, info, text);
    }
    let len = w.finish();
    Outcome::Answered {
        len,
        rcode: code,
        truncated,
        qtype: q.qtype,
        ecs: e.ecs.is_some(),
        service,
        cookie: cookie_bits,
    }
}
